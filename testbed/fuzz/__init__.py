"""`testbed fuzz`: stateful fuzzing of the datapath under test through its
configuration (srl2 requests, SIDs) and packets to its SIDs, with crash
handling across `testbed vm` boots and reproducers (docs/fuzz.md).

    steps.py     a step as data (journal, shrinker, reproducer share it)
    frames.py    the bytes of SRHs and frames, malformed on purpose
    requests.py  what a step sends (netlink bytes, frames)
    lab.py       the small valid lab the steps run in
    kernel.py    steps on the kernel datapath;  ref.py: on srl2_ref
    world.py     journal, kernel-log markers, invariants after each step
    machine.py   the hypothesis RuleBasedStateMachine that draws steps
    journal.py   journal, crashes.jsonl, stack signatures
    findings.py  findings across boots, ddmin shrinking state
    repro.py     a finding as a standalone bash script
    run.py       one boot's work: absorb crashes, shrink, replay, fuzz
"""
