# The testbed's pytest plugin: options (--datapath, ...), lab fixtures, stale reaping.
pytest_plugins = ["testbed.pytest_plugin"]
pytest_plugins += ["testbed.pytest_checks"]  # per-ID verdicts inside a case: the `checks` fixture
