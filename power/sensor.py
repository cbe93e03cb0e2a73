"""What every power sensor offers the sampling loop: named columns, one row per read."""

from __future__ import annotations

import errno
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field


class SensorNotFound(RuntimeError):
    """No usable sensor; the message says what was looked for and what to do."""


class SysfsFile:
    """A sysfs attribute opened once and re-read with ``os.pread`` at offset 0."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def read(self) -> bytes:
        return os.pread(self.fd, 64, 0)

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
    power_file: str | None = None  # read as-is and multiplied by power_scale_uw
    power_scale_uw: float = 1.0
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
    """A set of rails read together as one row of numbers."""

    simulated: bool = False
    kind: str = "unknown"

    @property
    @abstractmethod
    def columns(self) -> list[str]:
        """Names of the values ``read`` returns, in order."""

    @abstractmethod
    def read(self) -> list[float]:
        """One row of values; raises OSError or ValueError when the read fails."""

    @abstractmethod
    def board_power_uw(self, row: list[float]) -> float:
        """Board-input power in µW for one row."""

    def update_key(self, row: list[float]) -> tuple:
        """What changes when the sensor produces a new value (for counting distinct updates)."""
        return tuple(row)

    def board_voltage_current(self, row: list[float]) -> tuple[float, float] | None:
        """(mV, mA) whose product is the board-input power, or None where the sensor has none."""
        return None

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
