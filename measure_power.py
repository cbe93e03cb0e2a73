#!/usr/bin/env python3
"""Log board power at a fixed rate, or list the power rails of this machine.

Examples:
  python measure_power.py --list
  python measure_power.py --duration 10 --out /tmp/power
  python measure_power.py --source sim --duration 5 --out /tmp/power
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from common.layout import LayoutError
from common.settings import parser, resolve
from power.cli import SENSOR_SETTINGS, resolved_source
from power.discovery import open_sensor
from power.sensor import SensorNotFound
from power.simulated import sensor_root

PROG = "measure_power.py"


def build_parser():
    p = parser(
        SENSOR_SETTINGS,
        prog=PROG,
        description="Log board power (INA3221/INA238 sysfs, NVML or a simulated sensor) to CSV, "
        "or list the rails found.",
    )
    p.add_argument("--list", action="store_true", help="print the rails found and exit")
    p.add_argument("--out", type=Path, default=Path("power_log"), help="folder for the log files")
    p.add_argument("--prefix", default="power", help="file-name prefix (the model name in a run)")
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds to log; default: until SIGTERM or Ctrl-C",
    )
    p.add_argument(
        "--ready",
        action="store_true",
        help="print READY on stdout once the first samples are on disk",
    )
    p.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop when the parent process dies (used by measure_inference_power.py)",
    )
    return p


def parse_args(argv: list[str] | None):
    p = build_parser()
    args = resolve(p, SENSOR_SETTINGS, argv)
    if args.duration is not None and args.duration <= 0:
        p.error("--duration must be positive")
    return args


def list_rails(sensor) -> None:
    """Print one line per rail with its current reading and whether it is board input."""
    row = sensor.read()
    info = sensor.describe()
    board = set(info["board_input_rails"])
    print(
        f"sensor: {info['kind']}{' (SIMULATED)' if sensor.simulated else ''}; "
        f"board input: {info['board_input_rule']}"
    )
    for i, rail in enumerate(info.get("rails", [])):
        mark = "*" if rail["name"] in board else " "
        print(
            f"{mark} {rail['name']:<18} chip {rail['chip']:<8} {rail['driver']:<9} "
            f"{row[3 * i]:>7.0f} mV {row[3 * i + 1]:>7.0f} mA {row[3 * i + 2] / 1e6:>8.3f} W  "
            f"{rail['voltage_file']}"
        )
    if "rails" not in info:
        print(
            f"* {info['board_input_rails'][0]:<18} {info.get('gpu_name', '')} "
            f"{sensor.board_power_uw(row) / 1e6:.3f} W"
        )
    print(f"board-input power: {sensor.board_power_uw(row) / 1e6:.3f} W")
    for note in getattr(sensor, "skipped", []):  # sysfs sensors only
        print(f"  skipped {note}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from common.process import StopFlag, exit_with_parent

    if args.exit_with_parent:
        exit_with_parent()
    stop = StopFlag()
    source = resolved_source(args)
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(sensor_root(source, args.sysfs_root, args.sim_profile))
        try:
            sensor = open_sensor(source, root, args.rail, args.nvml_index)
        except SensorNotFound as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        stack.callback(sensor.close)
        if args.list:
            try:
                list_rails(sensor)
            except (OSError, ValueError) as exc:
                print(
                    f"{PROG}: the sensor was found but a read failed ({exc})",
                    file=sys.stderr,
                )
                return 1
            return 0
        from power.logger import log_power

        def ready() -> None:
            print("READY", flush=True)

        try:
            summary = log_power(
                sensor,
                args.out,
                args.prefix,
                args.hz,
                should_stop=stop,
                duration_s=args.duration,
                on_ready=ready if args.ready else None,
            )
        except (LayoutError, OSError) as exc:  # a full disk or a folder we cannot write
            print(f"{PROG}: error: {exc}; the files end on their last whole line", file=sys.stderr)
            return 1
    print(
        f"{summary['samples']} samples at {summary['achieved_hz'] or 0:.1f} Hz, "
        f"{summary['distinct_updates']} distinct, errors {summary['errors'] or 'none'} -> "
        f"{args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
