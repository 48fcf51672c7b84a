"""pytest plugin: options, and lab fixtures that build real labs with names
unique per test and per xdist worker, so `pytest -n auto` never collides."""
from __future__ import annotations

import os
import uuid

import pytest


def pytest_addoption(parser) -> None:
    group = parser.getgroup("testbed")
    group.addoption("--datapath", choices=("auto", "kernel", "ref", "both"), default="auto",
                    help="datapath under test (default auto: kernel where it has srl2, else ref)")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "root: needs root (network namespaces)")


def unique_lab_name(prefix: str = "t") -> str:
    """Short (netns names show up in `ip netns`), unique across workers and runs."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session", autouse=True)
def _reap_stale_labs():
    """Labs left by a run that was SIGKILLed are removed before this run starts."""
    if os.geteuid() == 0:
        from testbed import state

        state.reap_stale()
    yield


@pytest.fixture
def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root to create network namespaces")


@pytest.fixture
def make_lab(need_root):
    """make_lab(topology_or_path, datapath=None) -> running Lab, removed at teardown
    (pass, fail or Ctrl-C)."""
    from testbed import topology
    from testbed.lab import Lab

    labs = []

    def make(topo, datapath=None, name=None):
        if isinstance(topo, (str, os.PathLike)):
            topo = topology.load(str(topo))
        lab = Lab.up(topo, name=name or unique_lab_name(), datapath=datapath)
        labs.append(lab)
        return lab

    yield make
    for lab in reversed(labs):
        lab.down()
