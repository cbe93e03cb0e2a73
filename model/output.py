"""Where the profiler's files go and how they are written (``data-formats.md``).

For the TensorRT backend the layout is the downstream contract exactly: ``<model>/<model>_
tensorrt.json`` and ``<model>/trt_profiling/trt_{engine_info,layer_latency}.json``.
The PyTorch backend uses the same schemas under backend names (``<model>_torch.json``,
``torch_profiling/``). Our additions, beside them:

- ``<short>_profiling/<short>_layer_records.csv``: one line per layer per profiled inference
  (``run,layer,latency_ms,start_mono_ns,end_mono_ns``), streamed while profiling; the
  TensorRT backend adds ``slack_ns,stream`` (its partition's span − Σ layer times in that run,
  and the layer's TensorRT stream, 0 = main);
- ``<short>_profiling/<short>_profile.json``: the trtexec ``--exportProfile`` format, for TREx;
- ``<model>_markers.csv``: phase boundaries and each profiled inference's start, monotonic ns.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from common.layout import ResultPaths, replacing, write_text
from common.linefile import LineWriter

__all__ = [  # ResultPaths is re-exported for the backends that import it from here
    "MARKERS_HEADER",
    "PAUSE",
    "RECORDS_HEADER",
    "MarkerWriter",
    "RecordWriter",
    "ResultPaths",
    "write_layer_latency",
    "write_summary",
]

RECORDS_HEADER = "run,layer,latency_ms,start_mono_ns,end_mono_ns\n"
MARKERS_HEADER = "event,run,mono_ns,timestamp\n"
PAUSE = "trace_pause"  # <PAUSE>_start/_end markers: profiling time that is no inference's


class MarkerWriter:
    """Streams phase markers: ``event,run,mono_ns,timestamp``."""

    def __init__(self, path: Path, clock) -> None:
        self.clock = clock
        self.out = LineWriter(path, MARKERS_HEADER)

    def mark(self, event: str, mono_ns: int, run: int | None = None) -> None:
        self.out.write(
            f"{event},{'' if run is None else run},{mono_ns},{self.clock.wall_string(mono_ns)}\n"
        )
        if run is None:
            self.out.flush()
        else:
            self.out.maybe_flush()

    def close(self) -> None:
        self.out.close()


class RecordWriter:
    """Streams layer records and keeps only the layer-name table in memory."""

    def __init__(self, paths: ResultPaths, extra_columns: tuple[str, ...] = ()) -> None:
        self.paths = paths
        header = RECORDS_HEADER.rstrip("\n") + "".join(f",{c}" for c in extra_columns) + "\n"
        self.out = LineWriter(paths.layer_records, header)
        self.index: dict[str, int] = {}

    def add(self, run: int, windows: list[tuple]) -> None:
        """``windows``: (name, ms, start, end, *extra columns) per layer."""
        for name, ms, start, end, *extra in windows:
            layer = self.index.setdefault(name, len(self.index))
            self.out.write(f"{run},{layer},{ms!r},{start},{end}{''.join(f',{x}' for x in extra)}\n")
        self.out.maybe_flush()

    def close(self) -> list[str]:
        """Flush and write the layer-name table; return the names in first-seen order."""
        self.out.close()
        names = list(self.index)
        write_text(self.paths.layer_names, json.dumps(names, indent=1) + "\n")
        return names


def write_layer_latency(paths: ResultPaths, names: list[str], clock) -> dict:
    """Convert the records into the downstream ``layer → [[ms, end timestamp], ...]`` JSON and
    the trtexec-style profile; return per-layer median latencies (ms).

    The records are loaded as numpy arrays (not Python tuples) and the JSON is written layer by
    layer, so memory stays proportional to the number of records × 24 bytes.
    """
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(
        paths.layer_records,
        dtype={
            "run": np.int64,
            "layer": np.int32,
            "latency_ms": np.float64,
            "start_mono_ns": np.int64,
            "end_mono_ns": np.int64,
        },
    )
    layer = frame["layer"].to_numpy()
    order = np.argsort(layer, kind="stable")  # keeps run order within a layer
    layer, ms, end = (
        layer[order],
        frame["latency_ms"].to_numpy()[order],
        frame["end_mono_ns"].to_numpy()[order],
    )
    bounds = np.searchsorted(layer, np.arange(len(names) + 1))
    runs = int(frame["run"].nunique())
    del frame, order
    medians: dict[str, float] = {}
    profile: list[dict] = [{"count": runs}]
    total_ms = float(ms.sum()) or math.nan
    with replacing(paths.layer_latency) as tmp, open(tmp, "w") as out:
        out.write("{")
        for i, name in enumerate(names):
            lo, hi = bounds[i], bounds[i + 1]
            pairs = ", ".join(
                f'[{m!r}, "{clock.wall_string(int(e))}"]'
                for m, e in zip(ms[lo:hi].tolist(), end[lo:hi].tolist(), strict=True)
            )
            out.write(f"{',' if i else ''}\n  {json.dumps(name)}: [{pairs}]")
            values = ms[lo:hi]
            medians[name] = float(np.median(values)) if hi > lo else math.nan
            profile.append(
                {
                    "name": name,
                    "timeMs": float(values.sum()),
                    "averageMs": float(values.mean()) if hi > lo else math.nan,
                    "medianMs": medians[name],
                    "percentage": 100.0 * float(values.sum()) / total_ms,
                }
            )
        out.write("\n}\n")
    write_text(paths.trex_profile, json.dumps(profile, indent=1) + "\n")
    return medians


def write_summary(
    paths: ResultPaths,
    config: dict,
    latencies: list[float],
    total_time: float,
    timestamp: str,
    extra: dict,
) -> dict:
    """``<model>_<backend>.json``: the downstream keys, then ours."""
    mean = statistics.fmean(latencies)
    summary = {
        "config": config,
        "total_time": total_time,
        "timestamp": timestamp,
        "latencies": latencies,
        "avg_latency": mean,
        "avg_throughput": config["input_shape"][0] / mean,
        **extra,
    }
    write_text(paths.summary_json, json.dumps(summary, indent=2) + "\n")
    return summary
