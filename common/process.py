"""Process plumbing every package may use: signals that only set a flag, one way to start a
child process and one way to stop it, and children that die with their parent.

A signal handler here never raises: it records the signal and returns, and the code that owns
the loop (the sweep, the measurement, the logger) looks at the flag where it can act on it. So a
signal can never cut a cleanup short or leave ``status.json`` saying ``running``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
PARENT_PID_ENV = "EVB_PARENT_PID"
STOP_GRACE_S = 2.0
EXIT_INTERRUPTED = 130


class StopFlag:
    """Set by SIGTERM or SIGINT (the first one is kept in ``signal``); ``restore`` puts the
    previous handlers back."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._previous = {s: signal.signal(s, self._set) for s in (signal.SIGTERM, signal.SIGINT)}

    def _set(self, signum, _frame) -> None:
        if self.signal is None:
            self.signal = signal.Signals(signum).name

    def __call__(self) -> bool:
        return self.signal is not None

    def wait(self, seconds: float, step: float = 0.05) -> bool:
        """Sleep up to ``seconds``, waking early when the flag is set; True when it was set."""
        deadline = time.monotonic() + seconds
        while not self() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(step, left))
        return self()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def child_env(extra: dict | None = None) -> dict:
    """This environment plus the project on ``PYTHONPATH``, unbuffered output and our pid (so
    the child can die with us)."""
    path = os.pathsep.join(p for p in (str(PROJECT), os.environ.get("PYTHONPATH")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
        PARENT_PID_ENV: str(os.getpid()),
        **(extra or {}),
    }


def start_child(
    cmd: list[str], cpus: set[int] | None = None, env: dict | None = None, **popen
) -> subprocess.Popen:
    """Start ``cmd`` (``python`` means this interpreter) in its own session, so that a
    terminal's Ctrl-C reaches only us and we stop the child in order; pin it to ``cpus``."""
    if cmd[0] == "python":
        cmd = [sys.executable, *cmd[1:]]
    popen.setdefault("stdin", subprocess.DEVNULL)
    popen.setdefault("cwd", PROJECT)
    proc = subprocess.Popen(cmd, env=child_env(env), start_new_session=True, **popen)
    if cpus:
        try:
            os.sched_setaffinity(proc.pid, cpus)
        except OSError:  # the child is already gone: its exit code tells
            pass
    return proc


def stop_child(proc: subprocess.Popen | None, grace_s: float = STOP_GRACE_S) -> int | None:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL; the exit code (None: never started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def exit_text(code: int | None) -> str:
    """``exit code 3`` or ``signal SIGKILL``."""
    if code is not None and code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def exit_with_parent() -> None:
    """Have Linux send SIGTERM to this process when its parent dies (``PR_SET_PDEATHSIG``).

    Where the parent named itself in ``EVB_PARENT_PID`` and is already gone (it died before
    this call), exit at once: the signal would never come.
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass
    expected = os.environ.get(PARENT_PID_ENV)
    if expected and expected.isdigit() and os.getppid() != int(expected):
        sys.exit(128 + signal.SIGTERM)


def until(done: Callable[[], bool], stop: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``done`` until it holds (True), or ``stop`` is set or time is up (False)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if stop() or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
