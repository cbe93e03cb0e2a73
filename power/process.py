"""Process plumbing shared by the logger and the profiler: stop flags and parent-death signals."""

from __future__ import annotations

import ctypes
import signal


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


def exit_with_parent() -> None:
    """Have Linux send SIGTERM to this process when its parent dies (``PR_SET_PDEATHSIG``)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        pass
