#!/usr/bin/env python3
"""Power logger overhead and capture: ours at its default rate, ours at 1 kHz, and the seed's
naive loop (open, read and close every file each time, as fast as it can, samples kept in
memory), each for the same time on a simulated Orin Nano tree on tmpfs whose values change
every 6.6 ms with every update distinguishable.

For each it prints CPU seconds per wall second (the sampling loop's own process time), the
share of distinct sensor updates captured, and the interval error p50/p99 against the schedule
(ours); then the CPU ratio naive / ours.
Run: python benchmarks/logger_overhead.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FILES = ("in1_input", "curr1_input", "in2_input", "curr2_input", "in3_input", "curr3_input")


def naive(root: Path, seconds: float) -> None:
    """The seed's way: reopen each file per read, loop flat out, keep everything."""
    hw = next((root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon").iterdir())
    paths = [hw / name for name in FILES]
    samples = []
    cpu0, end = time.process_time(), time.monotonic() + seconds
    while time.monotonic() < end:
        row = []
        for path in paths:
            with open(path) as f:
                row.append(int(f.read()))
        samples.append((time.monotonic_ns(), row))
    cpu = time.process_time() - cpu0
    distinct = sum(1 for a, b in itertools.pairwise(samples) if a[1] != b[1]) + 1
    span = (samples[-1][0] - samples[0][0]) / 1e9
    print(
        json.dumps(
            {
                "cpu_s": cpu,
                "wall_s": seconds,
                "samples": len(samples),
                "distinct": distinct,
                "span_s": span,
            }
        )
    )


def sleep_only(hz: float, seconds: float) -> tuple[float, float, float]:
    """A loop that only sleeps to the same deadlines (same timer slack): the floor that this
    machine's timer wake-ups cost, whatever the loop does. Returns CPU per wall second and the
    p50/p99 lateness in µs."""
    from power.logger import tighten_timer_slack

    tighten_timer_slack()
    period = round(1e9 / hz)
    cpu0, start = time.process_time(), time.monotonic_ns()
    due, late = start, []
    while due < start + seconds * 1e9:
        late.append(time.monotonic_ns() - due)
        due += period
        now = time.monotonic_ns()
        if due <= now:
            due += ((now - due) // period + 1) * period
        time.sleep((due - now) / 1e9)
    late.sort()
    p50, p99 = late[len(late) // 2] / 1e3, late[int(len(late) * 0.99)] / 1e3
    return (time.process_time() - cpu0) / seconds, p50, p99


def updates(root: Path) -> tuple[int, float]:
    from power.simulated import UPDATES_FILE

    return int((root / UPDATES_FILE).read_text() or 0), time.monotonic()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--naive", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.naive:
        naive(Path(args.naive[0]), float(args.naive[1]))
        return
    from power.simulated import running_simulator

    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    results = {}
    with (
        tempfile.TemporaryDirectory(dir=shm) as tree,
        tempfile.TemporaryDirectory() as out,
        running_simulator(Path(tree), "constant", 6.6),
    ):
        root = Path(tree)
        time.sleep(1)
        n0, t0 = updates(root)
        time.sleep(2)
        n1, t1 = updates(root)
        sim_hz = (n1 - n0) / (t1 - t0)
        print(
            f"simulator: {sim_hz:.1f} updates/s (interval {1e3 / sim_hz:.2f} ms), tmpfs: "
            f"{bool(shm)}"
        )
        for name, extra in (("ours, default rate", []), ("ours, 1 kHz", ["--hz", "1000"])):
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "measure_power.py"),
                    "--sysfs-root",
                    tree,
                    "--source",
                    "sim",
                    "--duration",
                    str(args.seconds),
                    "--out",
                    out,
                    "--prefix",
                    "bench",
                    *extra,
                ],
                env=env,
                check=True,
                capture_output=True,
            )
            s = json.loads((Path(out) / "bench_power_summary.json").read_text())
            span = (s["last_sample_mono_ns"] - s["first_sample_mono_ns"]) / 1e9
            results[name] = {
                "cpu": s["cpu_per_wall_s"],
                "hz": s["achieved_hz"],
                "captured": s["distinct_updates"] / (span * sim_hz),
                "p50": s["lateness_us"]["p50"],
                "p99": s["lateness_us"]["p99"],
                "errors": s["errors"],
            }
        done = subprocess.run(
            [sys.executable, __file__, "--naive", tree, str(args.seconds)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        n = json.loads(done.stdout)
        results["naive loop (seed)"] = {
            "cpu": n["cpu_s"] / n["wall_s"],
            "hz": n["samples"] / n["span_s"],
            "captured": n["distinct"] / (n["span_s"] * sim_hz),
            "p50": None,
            "p99": None,
            "errors": {},
        }
    print(
        f"{'logger':<20} {'CPU s/s':>8} {'rate Hz':>9} {'updates seen':>13} "
        f"{'p50 µs':>8} {'p99 µs':>8}"
    )
    for name, r in results.items():
        p50 = f"{r['p50']:8.0f}" if r["p50"] is not None else f"{'n/a':>8}"
        p99 = f"{r['p99']:8.0f}" if r["p99"] is not None else f"{'n/a':>8}"
        print(
            f"{name:<20} {r['cpu']:8.4f} {r['hz']:9.1f} {min(r['captured'], 1):13.2%} "
            f"{p50} {p99}  {r['errors'] or ''}"
        )
    for hz in (results["ours, default rate"]["hz"], 1000):
        cpu, p50, p99 = sleep_only(hz, 3)
        print(
            f"floor on this machine: a loop that only sleeps at {hz:.0f} Hz uses {cpu:.4f} CPU "
            f"s/s, lateness p50/p99 {p50:.0f}/{p99:.0f} µs"
        )
    naive_cpu = results["naive loop (seed)"]["cpu"]
    default, khz = results["ours, default rate"], results["ours, 1 kHz"]
    ratio = naive_cpu / default["cpu"]
    print(
        f"CPU ratio naive / ours: {ratio:.0f}× (default rate), "
        f"{naive_cpu / khz['cpu']:.0f}× (1 kHz)"
    )
    checks = [
        ("default rate sees >= 99 % of updates", default["captured"] >= 0.99),
        ("default rate uses <= 1/20 of the naive loop's CPU", ratio >= 20),
        ("1 kHz uses <= 5 % of one core", khz["cpu"] <= 0.05),
        ("1 kHz p99 interval error <= 0.5 ms", khz["p99"] <= 500),
    ]
    for text, ok in checks:
        print(f"target: {text}: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
