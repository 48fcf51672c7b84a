"""Polling with a deadline, for state that has no event to wait on (counters
kept by another process, kernel tables).  Readiness of what the testbed
starts itself uses handshakes instead (keeper pipe, srl2_ref ready fd)."""
from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")
POLL_INTERVAL = 0.01


def until(fn: Callable[[], T], timeout: float = 5.0) -> T:
    """Call `fn` until it returns something true or `timeout` seconds pass;
    return its last value (the caller asserts on it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(POLL_INTERVAL)
