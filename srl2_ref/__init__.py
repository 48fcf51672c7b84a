"""srl2_ref: the bundled userspace reference datapath for srl2, End.DT2U,
End.DX2 and End (see DESIGN.md "The reference datapath").

    python -m srl2_ref --config FILE.json --ready-fd N

runs inside a node's network namespace until SIGTERM/SIGINT or its parent dies.
"""
from .control import query  # noqa: F401

__all__ = ["query"]
