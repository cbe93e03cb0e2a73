"""A simulated INA3221 (Orin Nano, JetPack 6 layout) for machines without a Jetson.

A separate process writes the ``jetson-sysfs.md`` §6.A tree into a directory and rewrites the
rail values **in place** (same inode, ``os.pwrite`` + ``ftruncate``), so a logger holding the
files open sees each update as it would on a board. The tree carries a marker file, so every
reader reports the power as simulated.

The chip's physics follow ``power.sensor_model.Ina3221`` (the model the estimator uses, checked
against the datasheet timing quoted in ``jetson-sysfs.md`` §3): channel 1's current register
refreshes at the end of its 1.1 ms shunt conversion, then channel 2's 2.2 ms later and channel
3's 2.2 ms after that, once per 6.6 ms cycle; each value is the mean power over its own
conversion window, quantized to 8 mA; the cycle starts at a random phase and the chip's clock
runs ``--drift-ppm`` slow or fast against the CPU's. The bus voltages stay at their nominal
values (an Orin Nano's input voltage moves by well under 1 %). Where the process wakes late,
the register changes late but holds the value of its nominal window.

Profiles: ``sine`` (deterministic, for tests), ``constant``, and ``cpu`` (follows this machine's
CPU load, for demos). The low three bits of ``VDD_IN``'s current count updates, so consecutive
updates always differ and a reader can count the distinct updates it saw (a real chip's
quantized value may repeat).

Run: ``python -m power.simulated DIR [--profile cpu] [--interval-ms 6.6] [--drift-ppm 1500]
[--duration S]``.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.process import PARENT_PID_ENV, exit_with_parent, start_child, stop_child
from power.discovery import SIMULATED_MARKER, sysfs_root
from power.sensor_model import Ina3221

DEVICE = "devices/platform/bus@0/c240000.i2c/i2c-1/1-0040"  # under sys/
# (label, mV, share of the module input): VDD_IN is the input, the others are parts of it
RAILS = [("VDD_IN", 5160, 1.0), ("VDD_CPU_GPU_CV", 5152, 0.35), ("VDD_SOC", 5152, 0.25)]
IDLE_MW = 4582.0
PROFILES = ("sine", "constant", "cpu")
UPDATES_FILE = "simulator_updates"  # how many updates so far (outside sys/, for benchmarks)
DRIFT_PPM = 1500.0  # the simulated chip's clock against the CPU's ("a few thousand ppm")


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)


def _link(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(target)


def write_tree(root: Path, hwmon_index: int = 1) -> Path:
    """Write the Orin Nano hwmon tree (and the context files of §6.E) under ``root``.

    Returns the hwmon directory. The marker file that flags the tree as simulated is written
    last, so its presence means the tree is complete.
    """
    dev = root / "sys" / DEVICE
    hw = dev / "hwmon" / f"hwmon{hwmon_index}"
    _write(dev / "name", "ina3221\n")
    _write(hw / "name", "ina3221\n")
    for ch, (label, mv, _) in enumerate(RAILS, start=1):
        _write(hw / f"in{ch}_label", f"{label}\n")
        _write(hw / f"in{ch}_input", f"{mv}\n")
        _write(hw / f"curr{ch}_input", "0\n")
        _write(hw / f"shunt{ch}_resistor", "5000\n")
        _write(hw / f"in{ch}_enable", "1\n")
    _write(hw / "in7_label", "sum of shunt voltages\n")
    _write(hw / "samples", "1\n")
    _write(hw / "update_interval", "7\n")
    _link(root / "sys/bus/i2c/drivers/ina3221/1-0040", f"../../../../{DEVICE}")
    _link(root / "sys/bus/i2c/devices/1-0040", f"../../../{DEVICE}")
    _link(root / f"sys/class/hwmon/hwmon{hwmon_index}", f"../../{DEVICE}/hwmon/hwmon{hwmon_index}")
    _link(hw / "device", "../../../1-0040")
    _write(
        root / "proc/device-tree/model", b"Simulated Jetson Orin Nano (edge-vision-benchmark)\x00"
    )
    _write(root / SIMULATED_MARKER, "power values are simulated by power.simulated\n")
    return hw


class CpuLoad:
    """This machine's CPU load (0..1) from ``/proc/stat``, refreshed at most every 100 ms."""

    def __init__(self) -> None:
        self._last = self._times()
        self._load = 0.0
        self._at = time.monotonic()

    @staticmethod
    def _times() -> tuple[int, int]:
        with open("/proc/stat", "rb") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields), idle

    def value(self) -> float:
        now = time.monotonic()
        if now - self._at >= 0.1:
            total, idle = self._times()
            d_total, d_idle = total - self._last[0], idle - self._last[1]
            self._load = 1.0 - d_idle / d_total if d_total > 0 else self._load
            self._last, self._at = (total, idle), now
        return self._load


def power_mw(profile: str, t: float, cpu: CpuLoad | None = None) -> float:
    """Board-input power in mW at ``t`` seconds after start, for a profile."""
    if profile == "constant":
        return IDLE_MW
    if profile == "sine":
        return IDLE_MW + 1500.0 * math.sin(2 * math.pi * t / 2.0)
    if profile == "cpu":
        return IDLE_MW + 6000.0 * (cpu.value() if cpu else 0.0)
    raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(PROFILES)}")


def mean_power_mw(profile: str, t0: float, t1: float, cpu: CpuLoad | None = None) -> float:
    """Mean board-input power over ``[t0, t1]`` (one conversion window): five-point rule."""
    return sum(power_mw(profile, t0 + (t1 - t0) * (i + 0.5) / 5, cpu) for i in range(5)) / 5


def refresh_times(cycle0: float, n: int, chip: Ina3221, drift_ppm: float) -> list[float]:
    """When cycle ``n`` (from ``cycle0``, CPU seconds) refreshes each channel's current register:
    the end of that channel's shunt conversion, on the chip's drifting clock."""
    scale = 1.0 + drift_ppm * 1e-6  # CPU seconds per chip second
    cycle = cycle0 + n * chip.period_s * scale
    return [cycle + chip.shunt_end_s(ch) * scale for ch in range(1, chip.channels + 1)]


def run(
    root: Path,
    profile: str,
    interval_s: float,
    duration_s: float | None,
    drift_ppm: float = DRIFT_PPM,
) -> int:
    """Write the tree, then refresh each channel's current at the end of its conversion until
    SIGTERM or ``duration_s``."""
    hw = write_tree(root)
    chip = Ina3221(conversion_s=interval_s / (2 * len(RAILS)), channels=len(RAILS))
    fds = [
        (os.open(hw / f"curr{ch}_input", os.O_WRONLY), mv, share)
        for ch, (_, mv, share) in enumerate(RAILS, start=1)
    ]
    counter = os.open(root / UPDATES_FILE, os.O_WRONLY | os.O_CREAT, 0o644)
    stop = False

    def _stop(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cpu = CpuLoad() if profile == "cpu" else None
    scale = 1.0 + drift_ppm * 1e-6  # chip seconds per CPU second
    start = time.monotonic()
    cycle0 = start - random.uniform(0.0, chip.period_s * scale)  # random phase
    n = 0
    while not stop and (duration_s is None or time.monotonic() - start < duration_s):
        ends = refresh_times(cycle0, n, chip, drift_ppm)
        for i, ((fd, mv, share), end) in enumerate(zip(fds, ends, strict=True)):
            delay = end - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            begin = end - chip.conversion_s * scale
            total = mean_power_mw(profile, begin - start, end - start, cpu)
            ma = int(chip.quantize_ma(total * share * 1000.0 / mv))
            if i == 0:
                ma += n % 8  # every update distinguishable
            data = f"{ma}\n".encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
        n += 1
        os.pwrite(counter, f"{n}\n".encode(), 0)
        behind = time.monotonic() - (cycle0 + n * chip.period_s * scale)
        if behind > chip.period_s:  # suspended or starved: skip the missed cycles
            n += int(behind / (chip.period_s * scale))
    for fd, *_ in fds:
        os.close(fd)
    os.close(counter)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line of the simulator process."""
    parser = argparse.ArgumentParser(
        prog="python -m power.simulated",
        description="Write a simulated Orin Nano INA3221 tree into DIR and keep its values moving.",
    )
    parser.add_argument(
        "dir", type=Path, help="directory that stands for / (--sysfs-root of readers)"
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="cpu",
        help="power profile: cpu follows this machine's load (default), sine and constant are "
        "deterministic",
    )
    parser.add_argument(
        "--interval-ms",
        type=float,
        default=6.6,
        help="refresh interval of the simulated chip in ms (default 6.6, as a JetPack 6 Orin)",
    )
    parser.add_argument(
        "--drift-ppm",
        type=float,
        default=DRIFT_PPM,
        help=f"how much slower the chip's clock runs than the CPU's (default {DRIFT_PPM:g})",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after this many seconds (default: SIGTERM)",
    )
    args = parser.parse_args(argv)
    if os.environ.get(PARENT_PID_ENV):
        exit_with_parent()
    if args.interval_ms <= 0:
        parser.error("--interval-ms must be positive")
    return run(args.dir, args.profile, args.interval_ms / 1000.0, args.duration, args.drift_ppm)


if __name__ == "__main__":
    sys.exit(main())


@contextmanager
def running_simulator(
    root: Path, profile: str = "cpu", interval_ms: float = 6.6, timeout_s: float = 10.0
) -> Iterator[subprocess.Popen]:
    """Run the simulator as its own process while the block runs; stop it afterwards."""
    proc = start_child(  # its own session; dies with whoever started it
        [
            "python",
            "-m",
            "power.simulated",
            str(root),
            "--profile",
            profile,
            "--interval-ms",
            str(interval_ms),
        ]
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not (root / SIMULATED_MARKER).exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the power simulator did not start (exit code {proc.poll()})")
            time.sleep(0.02)
        yield proc
    finally:
        stop_child(proc, 5.0)


@contextmanager
def sensor_root(source: str, explicit: str | None, profile: str = "cpu") -> Iterator[Path]:
    """The directory that stands for ``/`` when reading ``source``.

    For ``sim`` without an explicit root: a fresh tree on tmpfs, kept moving by a simulator
    process while the block runs. Otherwise ``--sysfs-root``, ``$EVB_SYSFS_ROOT`` or ``/``.
    """
    if source != "sim" or explicit is not None:
        yield sysfs_root(explicit)
        return
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="evb-sim-", dir=shm) as tree:
        with running_simulator(Path(tree), profile):
            yield Path(tree)
