"""Shared test set-up: the project root on sys.path and helpers to run entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def run_entry(
    args: list[str], timeout: float = 120, env: dict | None = None, wait: bool = True, **kw
):
    """Run a project entry point (a script path or ``-m module``) with this interpreter; with
    ``wait=False``, start it in its own process group (as a terminal's foreground job) and
    return the ``Popen``."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
    common = dict(cwd=ROOT, text=True, env=full_env, stdin=subprocess.DEVNULL, **kw)
    if not wait:
        pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return subprocess.Popen([sys.executable, *args], start_new_session=True, **pipes, **common)
    return subprocess.run([sys.executable, *args], capture_output=True, timeout=timeout, **common)


def wait_for(predicate, timeout: float, what: str):
    """Poll ``predicate`` every 10 ms until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def lines_in(path: Path) -> int:
    """Whole lines in a file written by another process so far (0 while it does not exist)."""
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.fixture
def sim_tree(tmp_path):
    """A running simulated sensor (its own process) writing a tree under tmp_path/sim."""
    from power.simulated import running_simulator

    root = tmp_path / "sim"
    with running_simulator(root, "sine"):
        yield root
