"""Rails read from sysfs files (INA3221 hwmon, legacy ina3221x IIO, ina238), kept open."""

from __future__ import annotations

import math

from power.sensor import Opener, Rail, Sensor, SysfsFile, open_readonly, read_int


class BoardInput:
    """Which rails make up the board-input power, and the rule that chose them."""

    def __init__(self, rails: list[str], rule: str) -> None:
        self.rails = rails
        self.rule = rule


class SysfsSensor(Sensor):
    """Reads every rail's voltage and current (and power file where it has one) per row.

    Each file is opened once and re-read with ``os.pread``; power = mV × mA (µW) unless the
    rail has its own power file (ina238 µW).
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
        self._fds: list[tuple[SysfsFile | None, SysfsFile | None, SysfsFile | None]] = []
        try:
            for rail in rails:
                vfile, cfile, pfile = (
                    opener(path) if path else None
                    for path in (rail.voltage_file, rail.current_file, rail.power_file)
                )
                self._fds.append((vfile, cfile, pfile))
        except OSError:
            self.close()
            raise
        index = {rail.name: i for i, rail in enumerate(rails)}
        self._board_idx = [index[name] for name in board.rails]

    @property
    def columns(self) -> list[str]:
        cols = []
        for rail in self.rails:
            cols += [f"{rail.name}_mV", f"{rail.name}_mA", f"{rail.name}_uW"]
        return cols

    def read(self) -> list[float]:
        row: list[float] = []
        for rail, (vfd, cfd, pfd) in zip(self.rails, self._fds, strict=True):
            mv = float(read_int(vfd)) if vfd is not None else float("nan")
            ma = float(read_int(cfd)) if cfd is not None else float("nan")
            if pfd is not None:
                uw = read_int(pfd) * rail.power_scale_uw
            else:
                uw = mv * ma
            row += [mv, ma, uw]
        return row

    def board_power_uw(self, row: list[float]) -> float:
        return sum(row[3 * i + 2] for i in self._board_idx)

    def board_voltage_current(self, row: list[float]) -> tuple[float, float] | None:
        """The board-input rail's (mV, mA).

        Where the board input is a sum of rails (AGX Orin, AGX Xavier), the voltage is the first
        summed rail's and the current is the equivalent current at that voltage, so that
        mV × mA is the summed power, as the downstream reader computes it.
        """
        first = self._board_idx[0]
        mv = row[3 * first]
        if math.isnan(mv) or mv == 0:  # no usable voltage
            return None
        if len(self._board_idx) == 1:
            return mv, row[3 * first + 1]
        return mv, self.board_power_uw(row) / mv

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
        for files in self._fds:
            for file in files:
                if file is not None:
                    file.close()
        self._fds = []
