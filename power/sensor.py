"""What every power sensor offers the sampling loop: named columns, one row per read.

The loop's hot path only calls ``read_raw`` (for sysfs: one ``os.pread`` per file, nothing
else); ``decode`` turns a batch of raw samples into a matrix of values later, off the schedule.
"""

from __future__ import annotations

import errno
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np


class SensorNotFound(RuntimeError):
    """No usable sensor; the message says what was looked for and what to do."""


class SysfsFile:
    """A sysfs attribute opened once and re-read with ``os.pread`` at offset 0.

    ``read()`` is ``os.pread`` bound to the descriptor: one C call, no Python frame.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.read: Callable[[], bytes] = partial(os.pread, self.fd, 64, 0)

    def close(self) -> None:
        os.close(self.fd)


Opener = Callable[[str], SysfsFile]
"""Opens a sysfs attribute; tests inject one whose reads fail like sysfs (ENODATA, EIO)."""

open_readonly: Opener = SysfsFile


def read_int(file: SysfsFile) -> int:
    """Read a sysfs integer through an open file.

    Raises OSError for a failing read (EIO, ETIMEDOUT, ENODATA, ...) and ValueError for text
    that is not an integer. Only the first line counts: sysfs values are one line.
    """
    raw = file.read()
    if not raw:
        raise OSError(errno.ENODATA, "empty read")
    return int(raw.split(b"\n", 1)[0])


@dataclass
class Rail:
    """One measured rail: where its files are and how to turn them into mV, mA and µW."""

    name: str
    chip: str  # bus-address such as "1-0040", or "nvml:0"
    driver: str  # "ina3221", "ina3221x", "ina238", "nvml"
    channel: int
    voltage_file: str | None = None  # mV
    current_file: str | None = None  # mA
    power_file: str | None = None  # µW (ina238 ``power1_input``), read as-is
    config: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """The rail's configuration as recorded in metadata and summaries."""
        return {
            "name": self.name,
            "chip": self.chip,
            "driver": self.driver,
            "channel": self.channel,
            "voltage_file": self.voltage_file,
            "current_file": self.current_file,
            "power_file": self.power_file,
            **self.config,
        }


class Sensor(ABC):
    """A set of rails read together as one row of numbers.

    Subclasses say which columns make up the board-input power (``board_columns``, µW), which
    give its voltage and current (``voltage_current_columns``: mV column, and mA column or None
    where the current is board power / voltage), and which change when the hardware produces a
    new value (``key_columns``, None: all).
    """

    simulated: bool = False
    kind: str = "unknown"
    board_columns: tuple[int, ...]
    voltage_current_columns: tuple[int, int | None] | None = None
    key_columns: tuple[int, ...] | None = None

    @property
    @abstractmethod
    def columns(self) -> list[str]:
        """Names of the values ``read`` returns, in order."""

    @abstractmethod
    def read(self) -> list[float]:
        """One row of values; raises OSError or ValueError when the read fails."""

    def read_raw(self) -> object:
        """One sample as cheaply as possible, for ``decode`` later; raises OSError."""
        return self.read()

    def decode(self, raws: list) -> tuple[np.ndarray, dict[int, str]]:
        """Rows of values (float, NaN where missing) for raw samples, and the index and error
        name (``ENODATA``, ``EPARSE``) of those that could not be decoded."""
        return np.array(raws, dtype=np.float64).reshape(len(raws), len(self.columns)), {}

    def board_power_uw(self, values: np.ndarray | list[float]) -> np.ndarray:
        """Board-input power in µW of one row, or of each row of a matrix."""
        return np.asarray(values, dtype=np.float64)[..., list(self.board_columns)].sum(axis=-1)

    def board_voltage_current(
        self, values: np.ndarray | list[float]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Board-input (mV, mA) of one row or of each row, whose product is the board-input
        power; NaN where there is no usable voltage; None where the sensor has no voltage.

        Where the board input is a sum of rails (AGX Orin, AGX Xavier), the voltage is the first
        summed rail's and the current is the equivalent current at that voltage, so that
        mV × mA is the summed power, as the downstream reader computes it.
        """
        if self.voltage_current_columns is None:
            return None
        values = np.asarray(values, dtype=np.float64)
        v_col, c_col = self.voltage_current_columns
        mv = values[..., v_col]
        mv = np.where(mv == 0, np.nan, mv)
        ma = values[..., c_col] if c_col is not None else self.board_power_uw(values) / mv
        return mv, ma

    @abstractmethod
    def describe(self) -> dict:
        """Sensor configuration for metadata: rails, board-input rule, refresh interval."""

    @abstractmethod
    def refresh_interval_s(self) -> float:
        """How often the hardware produces a new value."""

    def default_hz(self) -> float:
        """Twice per refresh interval, so every new value is seen at least once."""
        return 2.0 / self.refresh_interval_s()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release descriptors or library handles."""
