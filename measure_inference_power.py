#!/usr/bin/env python3
"""Measure one model: a power logger and the per-layer profiler as two OS processes.

The logger starts first and must report samples; then the profiler (python -m model) runs
warm-up, timing and profiling passes; the logger records a short tail and stops. The result is
<result-dir>/<model>/ with the profiler's files, the power logs and status.json.

exit codes: 0 complete; 1 profiler failed; 2 bad flag value; 3 model or weights unavailable;
4 backend unavailable; 5 power logger failed; 6 watchdog timeout; 130 interrupted.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from common.cli import OneLineParser
from model.cli import add_model_arguments, model_flags, validate
from power.cli import add_sensor_arguments, resolved_source


def parse_cpus(text: str) -> set[int]:
    """'0', '1-3' or '0,2' → a set of core numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def build_parser() -> OneLineParser:
    doc = __doc__.split("\n\n")
    p = OneLineParser(description=doc[1], epilog=doc[2])
    add_model_arguments(p)
    p.add_argument("--result-dir", type=Path, default=Path("raw_data"), help="result folder")
    add_sensor_arguments(p)
    p.add_argument(
        "--timeout",
        type=float,
        default=3600.0,
        help="watchdog: seconds before a hung profiler is stopped",
    )
    p.add_argument(
        "--tail", type=float, default=1.0, help="seconds of power logged after the profiler ends"
    )
    p.add_argument(
        "--logger-cpus",
        type=parse_cpus,
        default=None,
        help="cores for the logger, e.g. 3; default: the last core (2+ cores)",
    )
    p.add_argument(
        "--profiler-cpus",
        type=parse_cpus,
        default=None,
        help="cores for the profiler, e.g. 0-2; default: all but the logger's",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    validate(args, parser)
    if args.timeout <= 0 or args.tail < 0:
        parser.error("--timeout must be positive and --tail not negative")
    from experiment.measurement import MeasureConfig, default_cpus, measure
    from power.process import PARENT_PID_ENV, exit_with_parent

    if os.environ.get(PARENT_PID_ENV):  # started by the sweep: stop (cleanly) if it dies
        exit_with_parent()
    source = resolved_source(args)
    logger_cpus, profiler_cpus = default_cpus()
    cfg = MeasureConfig(
        model=args.model,
        result_dir=args.result_dir,
        profiler_args=model_flags(args),
        power_source=source,
        sysfs_root=args.sysfs_root,
        rail=args.rail,
        hz=args.hz,
        timeout_s=args.timeout,
        tail_s=args.tail,
        logger_cpus=args.logger_cpus or logger_cpus,
        profiler_cpus=args.profiler_cpus or profiler_cpus,
    )
    status = measure(cfg)
    if status["status"] == "complete":
        print(
            f"{args.model}: complete in {status['duration_s']:.1f} s -> "
            f"{args.result_dir / args.model}"
        )
    else:
        print(f"{args.model}: FAILED ({status['reason']})", file=sys.stderr)
    return status["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
