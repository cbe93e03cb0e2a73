#!/usr/bin/env python3
"""Measure idle board power and write ``idling_power.json`` into the result folder.

Run it with nothing else busy. Examples:
  python measure_idling_power.py --idle-duration 120 --result-dir raw_data
  python measure_idling_power.py --idle-precision 0.5 --idle-min 20 --idle-duration 120

exit codes: 0 done; 1 the measurement failed; 2 bad flag, no sensor or an unusable result
folder; 130 interrupted (nothing written).
"""

from __future__ import annotations

import sys
from pathlib import Path

from common.layout import IDLE_JSON, LayoutError
from common.process import EXIT_INTERRUPTED, StopFlag
from common.settings import RESULT_DIR, parser, resolve
from power.cli import IDLE_SETTINGS, SENSOR_SETTINGS, resolved_source
from power.sensor import SensorNotFound

PROG = "measure_idling_power.py"
SETTINGS = [
    *SENSOR_SETTINGS,
    *IDLE_SETTINGS,
    RESULT_DIR,
]


def main(argv: list[str] | None = None) -> int:
    doc = __doc__.split("\n\n")
    stop = StopFlag()  # before anything: a Ctrl-C is a flag from here on
    args = resolve(parser(SETTINGS, prog=PROG, description=doc[0], epilog=doc[2]), SETTINGS, argv)
    from power.idle import IdleInterrupted, idle_line, measure_idle_with

    out = Path(args.result_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        result = measure_idle_with(args, resolved_source(args), out, stop)
    except IdleInterrupted:
        print(f"{PROG}: interrupted; no {IDLE_JSON} written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (SensorNotFound, LayoutError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(f"{idle_line(result)} -> {out / IDLE_JSON}")
    if result["drift_warning"]:
        print(
            f"WARNING: idle power drifted {result['drift_pct']:+.2f} % between the two halves "
            "of the window; let the board settle (temperature) and measure again",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
