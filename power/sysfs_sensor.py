"""Rails read from sysfs files (INA3221 hwmon, legacy ina3221x IIO, ina238), kept open."""

from __future__ import annotations

from itertools import chain

import numpy as np

from power.sensor import Opener, Rail, Sensor, SysfsFile, open_readonly

MAX_READING = 10**12  # beyond any rail in any unit these files use (1 MW in µW): a bad read


class BoardInput:
    """Which rails make up the board-input power, and the rule that chose them."""

    def __init__(self, rails: list[str], rule: str) -> None:
        self.rails = rails
        self.rule = rule


class SysfsSensor(Sensor):
    """Reads every rail's voltage and current (and power file where it has one) per row.

    Each file is opened once and re-read with ``os.pread``; power = mV × mA (µW) unless the
    rail has its own power file (ina238 µW). A raw sample is the list of the files' bytes.
    """

    kind = "sysfs"

    def __init__(
        self,
        rails: list[Rail],
        board: BoardInput,
        refresh_s: float,
        simulated: bool = False,
        opener: Opener = open_readonly,
        skipped: list[str] | None = None,
    ) -> None:
        self.rails = rails
        self.board = board
        self.simulated = simulated
        self.skipped = skipped or []  # channels left out at discovery, with reasons
        self._refresh_s = refresh_s
        self._files: list[SysfsFile] = []
        # per rail: the index in a raw sample of its voltage, current and power file, or None
        self._layout: list[tuple[int | None, int | None, int | None]] = []
        try:
            for rail in rails:
                slots = []
                for path in (rail.voltage_file, rail.current_file, rail.power_file):
                    if path:
                        self._files.append(opener(path))
                    slots.append(len(self._files) - 1 if path else None)
                self._layout.append((slots[0], slots[1], slots[2]))
        except OSError:
            self.close()
            raise
        self._readers = [file.read for file in self._files]
        index = {rail.name: i for i, rail in enumerate(rails)}
        board_idx = [index[name] for name in board.rails]
        self.board_columns = tuple(3 * i + 2 for i in board_idx)
        first = board_idx[0]
        self.voltage_current_columns = (3 * first, 3 * first + 1 if len(board_idx) == 1 else None)

    @property
    def columns(self) -> list[str]:
        cols = []
        for rail in self.rails:
            cols += [f"{rail.name}_mV", f"{rail.name}_mA", f"{rail.name}_uW"]
        return cols

    def read_raw(self) -> list[bytes]:
        return [read() for read in self._readers]

    def read(self) -> list[float]:
        values, failed = self.decode([self.read_raw()])
        if failed:
            raise ValueError(f"unreadable sensor value ({failed[0]})")
        return values[0].tolist()

    def decode(self, raws: list) -> tuple[np.ndarray, dict[int, str]]:
        n, width = len(raws), len(self._files)
        failed: dict[int, str] = {}
        try:  # one C-level pass: int() accepts b"5160\n"
            flat = np.fromiter(map(int, chain.from_iterable(raws)), np.float64, n * width)
        except ValueError:
            flat = np.empty(n * width)
            for i, raw in enumerate(raws):
                try:
                    flat[i * width : (i + 1) * width] = [int(value) for value in raw]
                except ValueError:
                    failed[i] = "ENODATA" if b"" in raw else "EPARSE"
                    flat[i * width : (i + 1) * width] = np.nan
        files = flat.reshape(n, width)
        absurd = np.flatnonzero((np.abs(files) > MAX_READING).any(axis=1))
        for i in absurd.tolist():  # a value no INA3221/INA238 can give: counted, not logged
            failed.setdefault(i, "ERANGE")
            files[i] = np.nan
        values = np.full((n, 3 * len(self.rails)), np.nan)
        for i, (v, c, p) in enumerate(self._layout):
            if v is not None:
                values[:, 3 * i] = files[:, v]
            if c is not None:
                values[:, 3 * i + 1] = files[:, c]
            if p is not None:
                values[:, 3 * i + 2] = files[:, p]
            else:
                values[:, 3 * i + 2] = values[:, 3 * i] * values[:, 3 * i + 1]
        return values, failed

    def refresh_interval_s(self) -> float:
        return self._refresh_s

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "simulated": self.simulated,
            "board_input_rails": self.board.rails,
            "board_input_rule": self.board.rule,
            "refresh_interval_s": self._refresh_s,
            "rails": [rail.describe() for rail in self.rails],
        }

    def close(self) -> None:
        for file in self._files:
            file.close()
        self._files = []
