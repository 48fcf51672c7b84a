"""`testbed validate`: the checks a topology carries (docs/topology.md
"Checks"), run against a running lab.

- plan.py    the topology's checks -> probes, one per report line (shared
             with the rendered selftest script, testbed/render/checks.py)
- run.py     each kind as a pair: run the probe in the lab, judge what it saw
- frames.py  frames of `frame` checks: build and judge (standard library
             only: the rendered script embeds it)
- report.py  one line per probe, a summary, JSON

Kept free of imports here, so that the renderer can use plan and frames
without the engine.
"""
