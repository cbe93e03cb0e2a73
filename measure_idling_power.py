#!/usr/bin/env python3
"""Measure idle board power and write ``idling_power.json`` into the result folder.

Run it with nothing else busy. Examples:
  python measure_idling_power.py --idle-duration 120 --result-dir raw_data
  python measure_idling_power.py --until-precision 0.5 --min-duration 20 --idle-duration 120
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from common.cli import OneLineParser
from power.cli import add_sensor_arguments, resolved_source
from power.discovery import open_sensor
from power.sensor import SensorNotFound
from power.simulated import sensor_root


def parse_args(argv: list[str] | None):
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--idle-duration",
        type=float,
        default=120.0,
        help="seconds of idle to log (the maximum in adaptive mode)",
    )
    p.add_argument(
        "--result-dir",
        type=Path,
        default=Path("raw_data"),
        help="result folder; idling_power.json and the idle logs go at its top",
    )
    p.add_argument(
        "--until-precision",
        type=float,
        default=None,
        metavar="PCT",
        help="adaptive: stop once the 95%% interval of the mean is within PCT %%",
    )
    p.add_argument(
        "--min-duration",
        type=float,
        default=10.0,
        help="adaptive: never stop before this many seconds",
    )
    p.add_argument(
        "--drift-warn",
        type=float,
        default=2.0,
        metavar="PCT",
        help="warn when the two halves of the window differ by more than PCT %%",
    )
    add_sensor_arguments(p)
    args = p.parse_args(argv)
    if args.idle_duration <= 0 or args.min_duration < 0:
        p.error("--idle-duration must be positive and --min-duration not negative")
    if args.until_precision is not None and args.until_precision <= 0:
        p.error("--until-precision must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from power.idle import measure_idle

    source = resolved_source(args)
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(sensor_root(source, args.sysfs_root))
        try:
            sensor = open_sensor(source, root, args.rail)
        except SensorNotFound as exc:
            print(f"measure_idling_power: {exc}", file=sys.stderr)
            return 2
        stack.callback(sensor.close)
        try:
            result = measure_idle(
                sensor,
                args.result_dir,
                args.idle_duration,
                args.until_precision,
                args.min_duration,
                args.drift_warn,
                args.hz,
            )
        except RuntimeError as exc:
            print(f"measure_idling_power: {exc}", file=sys.stderr)
            return 1
    ci = f" ± {result['ci95_pct']:.2f} %" if result["ci95_pct"] is not None else ""
    sim = " (SIMULATED)" if result["simulated"] else ""
    print(
        f"idle power{sim}: {result['avg_idle_power'] / 1e6:.3f} W{ci} over "
        f"{result['duration_s']:.1f} s, {result['samples']} samples -> "
        f"{args.result_dir / 'idling_power.json'}"
    )
    if result["drift_warning"]:
        print(
            f"WARNING: idle power drifted {result['drift_pct']:+.2f} % between the two halves "
            "of the window; let the board settle (temperature) and measure again",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
