# The testbed's pytest plugins: options (--datapath, ...), lab fixtures, stale
# reaping; per-ID verdicts inside a case (the `checks` fixture); run-level
# clean-up (no lab outlives an interrupted run).
pytest_plugins = ["testbed.pytest_plugin", "testbed.pytest_checks", "testbed.pytest_cleanup"]
