#!/usr/bin/env python3
"""Measure one model: a power logger and the per-layer profiler as two OS processes.

The logger starts first and must report samples; then the profiler (python -m model) runs
warm-up, timing and profiling passes; the logger records a short tail and stops. The result is
<result-dir>/<model>/ with run_spec.json (the settings, which both children read), the
profiler's files, the power logs and status.json.

exit codes: 0 complete; 1 profiler failed; 2 bad flag value; 3 model or weights unavailable;
4 backend unavailable; 5 power logger failed; 6 watchdog timeout; 130 interrupted.
"""

from __future__ import annotations

import os
import sys

from common.layout import LayoutError, ResultPaths, write_json
from common.process import PARENT_PID_ENV, StopFlag, exit_with_parent
from common.settings import parser, resolve, spec_of
from experiment.contract import MEASURE_RUN, RUN_CHECKS
from power.cli import resolved_source

PROG = "measure_inference_power.py"


def build_parser():
    doc = __doc__.split("\n\n")
    return parser(MEASURE_RUN, prog=PROG, description=doc[1], epilog=doc[2])


def parse_args(argv: list[str] | None):
    p = build_parser()
    args = resolve(p, MEASURE_RUN, argv, checks=RUN_CHECKS)
    if not args.model:
        p.error("--model is required")
    return args


def main(argv: list[str] | None = None) -> int:
    stop = StopFlag()  # before anything: a Ctrl-C is a flag from here on
    args = parse_args(argv)
    if os.environ.get(PARENT_PID_ENV):
        exit_with_parent()
    from experiment.measurement import measure

    spec = {**spec_of(args, MEASURE_RUN), "power_source": resolved_source(args)}
    paths = ResultPaths(spec["result_dir"], args.model)
    try:
        paths.model_dir.mkdir(parents=True, exist_ok=True)
        write_json(paths.run_spec, spec)
        status = measure(paths.run_spec, stop)
    except LayoutError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    if status["status"] == "complete":
        print(f"{args.model}: complete in {status['duration_s']:.1f} s -> {paths.model_dir}")
    else:
        print(f"{args.model}: {status['status'].upper()} ({status['reason']})", file=sys.stderr)
    return status["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
