"""Process plumbing shared by the logger and the profiler: stop flags and parent-death signals."""

from __future__ import annotations

import ctypes
import os
import signal
import sys


class StopFlag:
    """Set by SIGTERM or SIGINT; the sampling loop polls it between samples."""

    def __init__(self) -> None:
        self.stopped = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, *_: object) -> None:
        self.stopped = True

    def __call__(self) -> bool:
        return self.stopped


PARENT_PID_ENV = "EVB_PARENT_PID"


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
