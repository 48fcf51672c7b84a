"""`testbed fuzz`: stateful fuzzing of the datapath under test through its
configuration (requests for the series' device of the revision under test,
SIDs, HMAC keys, VRFs) and packets to its SIDs, with crash handling across
`testbed vm` boots and reproducers (docs/fuzz.md).

    steps.py     a step as data (journal, shrinker, reproducer share it)
    mix.py       which steps and parameters each revision gets
    frames.py    the bytes of SRHs and frames, malformed on purpose
    requests.py  what a step sends (netlink bytes, frames)
    lab.py       the small valid lab the steps run in
    kernel.py    steps on the kernel datapath;  ref.py: on srl2_ref
    world.py     journal, kernel-log markers, invariants after each step
    machine.py   the hypothesis RuleBasedStateMachine that draws steps
    journal.py   journal, crashes.jsonl, stack signatures
    findings.py  findings across boots, ddmin shrinking state
    repro.py     a finding as a standalone bash script
    choose.py    which datapath and revision to fuzz
    run.py       one boot's work: absorb crashes, shrink, replay, fuzz
"""
