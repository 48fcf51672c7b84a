"""Shard K of N: one run of the suite split over N machines or CI jobs
(docs: README, "Sharding").

Every job collects the same cases and computes the same split, with no
coordination: greedy longest-processing-time over the cases, heaviest
first, each to the shard with the least work so far.  The weights are the
cases' durations in a record (`--shard-durations`, e.g. the baseline's); a
case the record lacks weighs the median of the others (1.0 with no record
at all).  Ties are broken by nodeid, and the order in which a job collected
its cases does not count, so every machine gets the same answer.  Every
case falls in exactly one shard.

`testbed report` and `testbed compare` take the shards' records and merge
them into the record of one run (merge.py).
"""
from __future__ import annotations

import argparse
import re
import statistics
from dataclasses import dataclass
from typing import Iterable, Mapping

from testbed.errors import TestbedError
from testbed.results.compare import case_key
from testbed.results.record import Case, Record, RecordError, read

DEFAULT_WEIGHT = 1.0


class ShardError(TestbedError):
    """A --shard that is not K/N with 1 <= K <= N."""


@dataclass(frozen=True)
class Shard:
    index: int   # K, from 1
    total: int   # N

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"


def parse(text: str, option: str = "--shard") -> Shard:
    """`"2/3"` -> Shard(2, 3); a ShardError naming `option` and what is wrong."""
    where = f"{option} {text}".strip()
    m = re.fullmatch(r"\s*(-?\d+)\s*/\s*(-?\d+)\s*", text)
    if not m:
        raise ShardError(f"{where}: expected K/N, shard K of N (e.g. 1/2)")
    index, total = int(m.group(1)), int(m.group(2))
    if total < 1:
        raise ShardError(f"{where}: N must be at least 1")
    if not 1 <= index <= total:
        raise ShardError(f"{where}: K must be between 1 and N (1/{total} ... {total}/{total})")
    return Shard(index, total)


def option_type(text: str) -> Shard:
    """parse() as an argparse `type` (pytest's --shard): argparse names the option."""
    try:
        return parse(text, option="")
    except ShardError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def weights(nodeids: Iterable[str], record: Record | None = None,
            datapaths: Mapping[str, str] | None = None) -> dict[str, float]:
    """nodeid -> weight: its duration in `record` (matched by nodeid, else
    as `testbed compare` matches cases: path from cases/ on, and the
    datapath parameter left out, so a kernel run's durations weigh a
    reference run's cases); the median of the record's durations for the
    others; DEFAULT_WEIGHT for all without a record.  `datapaths` gives a
    nodeid's datapath parameter, for that second match."""
    nodeids = list(dict.fromkeys(nodeids))
    if record is None:
        return {n: DEFAULT_WEIGHT for n in nodeids}
    exact: dict[str, float] = {}
    loose: dict[str, float] = {}
    for case in record.cases:
        if case.duration > 0:  # a crashed case has none: it is weighed as one missing
            exact[case.nodeid] = case.duration
            loose[case_key(case, True)] = case.duration
    fallback = statistics.median(exact.values()) if exact else DEFAULT_WEIGHT
    out = {}
    for n in nodeids:
        key = case_key(Case(n, datapath=(datapaths or {}).get(n, "-")), True)
        out[n] = exact.get(n, loose.get(key, fallback))
    return out


def split(weighed: Mapping[str, float], total: int) -> list[list[str]]:
    """The nodeids of each of `total` shards (index 0 is shard 1/N), each
    shard's in nodeid order: heaviest first, each to the least loaded shard
    (the lower index on a tie)."""
    loads = [0.0] * total
    shards: list[list[str]] = [[] for _ in range(total)]
    for nodeid in sorted(weighed, key=lambda n: (-weighed[n], n)):
        i = min(range(total), key=lambda j: (loads[j], j))
        shards[i].append(nodeid)
        loads[i] += weighed[nodeid]
    return [sorted(s) for s in shards]


def select(nodeids: Iterable[str], shard: Shard, record: Record | None = None,
           datapaths: Mapping[str, str] | None = None) -> set[str]:
    """The nodeids of `nodeids` that shard K of N runs."""
    return set(split(weights(nodeids, record, datapaths), shard.total)[shard.index - 1])


def deselect(config, items: list) -> None:
    """pytest's side (called from the plugin's collection hook, after -k and
    -m, in every xdist worker alike): --shard K/N keeps shard K's items and
    deselects the rest; --shard-durations RECORD weighs them."""
    import pytest

    shard, path = config.getoption("shard"), config.getoption("shard_durations")
    if shard is None:
        if path:
            raise pytest.UsageError(f"--shard-durations {path}: weighs the cases of a shard: give --shard K/N too")
        return
    try:
        record = read(path) if path else None
    except RecordError as e:
        raise pytest.UsageError(f"--shard-durations: {e}") from None
    datapaths = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "datapath" in callspec.params:
            datapaths[item.nodeid] = str(callspec.params["datapath"])
    mine = select([item.nodeid for item in items], shard, record, datapaths)
    keep = [item for item in items if item.nodeid in mine]
    drop = [item for item in items if item.nodeid not in mine]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
