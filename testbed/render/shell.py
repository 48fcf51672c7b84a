"""Shell words for the rendered script: quoting, and variable references
(a node's namespace name lives in a variable)."""
from __future__ import annotations

import shlex


class Var(str):
    """A shell variable reference; rendered as "$name"."""


def word(tok: object) -> str:
    if isinstance(tok, Var):
        return f'"${tok}"'
    return shlex.quote(str(tok))


def sh(*tokens: object) -> str:
    return " ".join(word(t) for t in tokens)
