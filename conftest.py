# The testbed's pytest plugins: options (--datapath, ...), lab fixtures, stale
# reaping; and run-level clean-up (no lab outlives an interrupted run).
pytest_plugins = ["testbed.pytest_plugin", "testbed.pytest_cleanup"]
