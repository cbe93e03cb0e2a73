"""The simulated INA3221 follows the chip's physics (``power.sensor_model``): staggered channel
refreshes once per 6.6 ms cycle, a clock that drifts from the CPU's, 8 mA steps. The process is
read as a logger would (open files, ``os.pread``, monotonic stamps around each read); the
stagger (a 2.2 ms offset) is checked on its schedule, since a loaded machine wakes the process
too late to measure it."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from power.sensor_model import Ina3221, refresh_fits
from power.simulated import DEVICE, DRIFT_PPM, refresh_times


def _poll(root, seconds: float):
    hw = next((root / "sys" / DEVICE / "hwmon").iterdir())
    fds = [os.open(hw / f"curr{ch}_input", os.O_RDONLY) for ch in (1, 2)]
    rows = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            t0 = time.monotonic_ns()
            a, b = (int(os.pread(fd, 32, 0) or b"0") for fd in fds)
            rows.append((t0, time.monotonic_ns(), a, b))
            time.sleep(0.0002)
    finally:
        for fd in fds:
            os.close(fd)
    return np.array(rows, dtype=np.float64)


def test_simulated_chip_refreshes_staggered_drifting_and_quantized(sim_tree):
    rows = _poll(sim_tree, 2.0)
    t0, t1, ch1, ch2 = rows.T
    stamp, read = (t0 + t1) / 2, t1 - t0
    assert np.all(ch2 % 8 == 0)  # 8 mA steps (channel 1 carries the update counter in its low bits)
    fit = refresh_fits(stamp.astype(np.int64), read, ch1, 6.6e6)[0]
    assert abs(fit.drift_ppm - DRIFT_PPM) < 1000  # the chip's clock, not the CPU's


def test_simulated_channels_refresh_staggered_within_each_cycle():
    chip = Ina3221()
    first, later = refresh_times(10.0, 0, chip, 1500.0), refresh_times(10.0, 1000, chip, 1500.0)
    # channel 1's shunt conversion ends 1.1 ms into the cycle, channel 2's 2.2 ms later, ...
    assert np.diff(first) == pytest.approx([2.2e-3 * 1.0015] * 2, rel=1e-9)
    assert first[0] - 10.0 == pytest.approx(1.1e-3 * 1.0015, rel=1e-9)
    # ... once per 6.6 ms of the chip's clock, 1 500 ppm slower than the CPU's
    assert (later[0] - first[0]) / 1000 == pytest.approx(6.6e-3 * 1.0015, rel=1e-9)
