#!/usr/bin/env python3
"""Analyse a result folder from its files alone: per-layer power (window mapping and phase
folding), whole-model figures, summary.csv, plots and report.html (one self-contained page).

Examples:
  python analyze.py raw_data
  python analyze.py raw_data --model resnet18
"""

from __future__ import annotations

import sys
from pathlib import Path

from common.cli import OneLineParser


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n\n")[0])
    p.add_argument("result_dir", type=Path, help="the result folder (holds one folder per model)")
    p.add_argument(
        "--model",
        action="append",
        default=None,
        help="analyse only this model (repeatable); default: every model folder",
    )
    p.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    p.add_argument(
        "--summary-only",
        action="store_true",
        help="only rewrite summary.csv from the per-model analyses",
    )
    args = p.parse_args(argv)
    if not args.result_dir.is_dir():
        p.error(f"{args.result_dir} is not a folder")
    from analysis.html_report import write_report
    from analysis.load import AnalysisError
    from analysis.report import analyse_model
    from analysis.summary import model_dirs, write_summary
    from common.layout import LayoutError

    failed = 0
    if not args.summary_only:
        folders = (
            [args.result_dir / m for m in args.model] if args.model else model_dirs(args.result_dir)
        )
        for folder in folders:
            try:
                result = analyse_model(folder, make_plots=not args.no_plots)
            except (AnalysisError, LayoutError, OSError, ValueError, KeyError) as exc:
                # missing, garbled or truncated inputs, a folder we cannot write: one line each
                print(f"analyze: {folder.name}: {_one_line(exc)}", file=sys.stderr)
                failed += 1
                continue
            print(
                f"{folder.name}: {result['layer_coverage']:.1%} of layer-inferences hold a "
                f"power sample; {result['folded_samples']} samples folded over "
                f"{result['profile_runs']} inferences"
            )
    try:
        write_summary(args.result_dir)
    except (LayoutError, OSError) as exc:
        print(f"analyze: summary: {_one_line(exc)}", file=sys.stderr)
        return 1
    try:
        print(f"report: {write_report(args.result_dir)}")
    except (LayoutError, OSError, ValueError, KeyError) as exc:
        print(f"analyze: report: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _one_line(exc: Exception) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    plain = not isinstance(exc, (ValueError, KeyError)) or isinstance(exc, RuntimeError)
    return text if plain else f"unreadable input ({type(exc).__name__}: {text})"


if __name__ == "__main__":
    sys.exit(main())
