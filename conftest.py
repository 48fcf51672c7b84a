# The testbed's pytest plugin: options (--datapath, ...), lab fixtures, stale reaping.
pytest_plugins = ["testbed.pytest_plugin"]
