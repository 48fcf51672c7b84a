"""The errors a user sees as one clear message (never a traceback).

Kept free of heavy imports so that the CLI can catch them without loading
pyroute2 for verbs that do not need it (`down` stays fast).
"""
from __future__ import annotations


class TestbedError(Exception):
    """Base of every error the CLI reports as `testbed: error: MESSAGE`."""

    __test__ = False  # not a pytest test class, despite the name


class LabError(TestbedError):
    """Bring-up or teardown failed; `where` is the YAML place responsible."""

    def __init__(self, message: str, where=None):
        super().__init__(message)
        self.where = where

    def __str__(self) -> str:
        msg = super().__str__()
        if self.where is not None and self.where.line:
            return f"{self.where}: {msg}"
        return msg


class MissingCapability(LabError):
    """The host lacks what the lab needs (a kernel feature, root, a device):
    raised before anything is built, with what is missing and what to do.
    The pytest plugin turns it into a SKIP with this message."""
