"""The record of a run and everything derived from it.

One machine-readable record per run (`record.py`: JSON lines, a header and
one line per case, written as each case ends) is the single source of the
catalogue table, KTAP, JUnit, the findings text, the HTML page and the
comparison of two runs (docs: README, "Results, reports and comparisons").
No report here re-reads pytest's output.
"""
