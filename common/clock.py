"""One clock for every file of a run: monotonic nanoseconds, rendered as local wall-clock strings.

The power logger and the profiler run as separate processes. Both stamp events with
``time.monotonic_ns()`` (system-wide on Linux) and render wall-clock strings from one
(monotonic, wall) pair, so an NTP step during a run cannot shift one file against the other.
The parent process fixes the pair and hands it to its children through ``CLOCK_ORIGIN_ENV``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import numpy as np

CLOCK_ORIGIN_ENV = "EVB_CLOCK_ORIGIN"
WALL_FORMAT = "%Y%m%d-%H:%M:%S.%f"  # downstream contract, data-formats.md
STAMP_FORMAT = "%Y%m%d-%H%M%S"


@dataclass(frozen=True)
class Clock:
    """A (monotonic, wall) origin pair taken at one instant."""

    mono_ns: int
    wall_ns: int

    @classmethod
    def now(cls) -> Clock:
        """Take a fresh origin pair (wall read between two monotonic reads)."""
        m0 = time.monotonic_ns()
        w = time.time_ns()
        m1 = time.monotonic_ns()
        return cls((m0 + m1) // 2, w)

    @classmethod
    def from_env(cls) -> Clock:
        """The origin handed down by the parent process, else a fresh one."""
        raw = os.environ.get(CLOCK_ORIGIN_ENV, "")
        try:
            mono, wall = (int(part) for part in raw.split(":"))
            return cls(mono, wall)
        except ValueError:
            return cls.now()

    def env_value(self) -> str:
        """The value of ``CLOCK_ORIGIN_ENV`` that makes a child use this origin."""
        return f"{self.mono_ns}:{self.wall_ns}"

    def wall_ns_of(self, mono_ns: int) -> int:
        """Wall-clock nanoseconds since the epoch for a monotonic stamp."""
        return self.wall_ns + (mono_ns - self.mono_ns)

    def wall_string(self, mono_ns: int) -> str:
        """The downstream timestamp string (local time, microseconds) for a monotonic stamp."""
        seconds, nanos = divmod(self.wall_ns_of(mono_ns), 1_000_000_000)
        return _second_prefix(seconds) + f"{nanos // 1000:06d}"

    def wall_strings(self, mono_ns: np.ndarray) -> list[str]:
        """``wall_string`` of every stamp of an int64 array, for a batch of samples."""
        seconds, nanos = np.divmod(mono_ns - self.mono_ns + self.wall_ns, 1_000_000_000)
        prefixes = map(_second_prefix, seconds.tolist())
        return list(map("%s%06d".__mod__, zip(prefixes, (nanos // 1000).tolist(), strict=True)))

    def stamp(self, mono_ns: int | None = None) -> str:
        """The coarse ``%Y%m%d-%H%M%S`` stamp used in summary files."""
        wall = self.wall_ns_of(time.monotonic_ns() if mono_ns is None else mono_ns)
        return datetime.fromtimestamp(wall / 1e9).strftime(STAMP_FORMAT)


@lru_cache(maxsize=4)
def _second_prefix(seconds: int) -> str:
    return datetime.fromtimestamp(seconds).strftime("%Y%m%d-%H:%M:%S.")


def wall_strings_to_ns(strings) -> np.ndarray:
    """Downstream timestamp strings as int64 nanoseconds of their naive (local) time read as UTC,
    whatever the pandas version: pandas 3 parses ``%f`` to a microsecond resolution, pandas 2
    to nanoseconds, so the unit is fixed here before the cast."""
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(strings, dtype=object), format=WALL_FORMAT)
    return parsed.to_numpy().astype("datetime64[ns]").astype(np.int64)


def parse_wall_string(text: str) -> datetime:
    """Parse a downstream timestamp string back into a naive local datetime."""
    return datetime.strptime(text, WALL_FORMAT)
