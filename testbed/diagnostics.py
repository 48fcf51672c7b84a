"""Error reports against a place in a topology file.

A `Diagnostic` is one problem, printed the way compilers do
(``FILE:LINE:COL: message``); a `TopologyError` carries every problem found
in one file, sorted by position, so that a user fixes them all in one go.
"""
from __future__ import annotations

from dataclasses import dataclass

from testbed.errors import TestbedError
from testbed.model import Where


@dataclass(frozen=True)
class Diagnostic:
    where: Where
    message: str

    def __str__(self) -> str:
        # line 0 means "the file as a whole" (unreadable file, ...)
        if self.where.line <= 0:
            return f"{self.where.file}: {self.message}"
        return f"{self.where}: {self.message}"


def _key(d: Diagnostic) -> tuple[str, int, int]:
    return (d.where.file, d.where.line, d.where.col)


class TopologyError(TestbedError):
    """Every problem found in a topology; str() is one diagnostic per line."""

    def __init__(self, diagnostics: list[Diagnostic]):
        # sorted() is stable: diagnostics at one position keep their order
        self.diagnostics: list[Diagnostic] = sorted(diagnostics, key=_key)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)
