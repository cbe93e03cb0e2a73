"""Read one model's result files into arrays, with one-line errors for what is missing or wrong."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from common.layout import LayoutError, ResultPaths, read_idle_uw, read_json


class AnalysisError(RuntimeError):
    """A result folder that cannot be analysed; the message says why and what to do."""


@dataclass
class PowerLog:
    """Board-input power samples on the monotonic clock, plus every rail's power column."""

    t_ns: np.ndarray
    board_uw: np.ndarray
    rails: dict[str, np.ndarray]
    energy_mj: np.ndarray | None
    dropped_lines: int
    read_ns: np.ndarray | None = None  # how long each read took (its stamp is the midpoint)
    currents: dict[str, np.ndarray] | None = None  # every rail's current column (mA)
    sensor: dict | None = None  # the logger's description of the sensor


@dataclass
class LayerRecords:
    """One row per layer per profiled inference (numpy columns)."""

    run: np.ndarray
    layer: np.ndarray
    latency_ms: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    names: list[str]
    types: list[str]


def load_power(model_dir: Path) -> PowerLog:
    """The rails CSV the logger streamed (tolerates a cut last line)."""
    path = ResultPaths(model_dir.parent, model_dir.name).power["rails_csv"]
    if not path.exists() or path.stat().st_size == 0:
        raise AnalysisError(
            f"{path.name} is missing or empty: the power logger wrote nothing "
            "for this model; measure it again"
        )
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1  # a cut last line (killed writer, copy) is left out
    lines = data.count(b"\n", 0, complete) - 1 + (complete < len(data))
    frame = pd.read_csv(
        io.BytesIO(data[:complete]),
        on_bad_lines="skip",
        engine="c",
        usecols=lambda c: c != "timestamp",  # the wall-clock strings are not needed here
    )
    del data
    if "mono_ns" not in frame or "board_uW" not in frame:
        raise AnalysisError(
            f"{path.name} has no mono_ns/board_uW columns: not a power log of this suite"
        )
    frame = frame.apply(pd.to_numeric, errors="coerce") if frame.dtypes.eq(object).any() else frame
    frame = frame.dropna(subset=["mono_ns", "board_uW"])
    if frame.empty:
        raise AnalysisError(f"{path.name} holds no valid sample")
    frame = frame.sort_values("mono_ns")
    rails = {
        c[:-3]: frame[c].to_numpy(float)
        for c in frame.columns
        if c.endswith("_uW") and c != "board_uW"
    }
    energy_cols = [c for c in frame.columns if c.endswith("_energy_mJ")]
    energy = frame[energy_cols[0]].to_numpy(float) if energy_cols else None
    try:
        summary = read_json(ResultPaths(model_dir.parent, model_dir.name).power["summary"])
        sensor = summary.get("sensor")
    except LayoutError:
        sensor = None
    return PowerLog(
        frame["mono_ns"].to_numpy(np.int64),
        frame["board_uW"].to_numpy(float),
        rails,
        energy,
        lines - len(frame),
        frame["read_ns"].to_numpy(float) if "read_ns" in frame else None,
        {c[:-3]: frame[c].to_numpy(float) for c in frame.columns if c.endswith("_mA")},
        sensor,
    )


def load_records(paths: ResultPaths) -> LayerRecords:
    """Layer records and names/types (from the engine info, keyed by ``Name``)."""
    if not paths.layer_records.exists():
        raise AnalysisError(
            f"{paths.layer_records.name} is missing: the profiler did not reach its profiling pass"
        )
    frame = _csv(
        paths.layer_records, ("run", "layer", "latency_ms", "start_mono_ns", "end_mono_ns")
    )
    frame = frame.dropna()
    if frame.empty:
        raise AnalysisError(f"{paths.layer_records.name} holds no record")
    if paths.layer_names.exists():
        names = read_result_json(paths.layer_names, list)
    else:  # a profiler killed before it wrote the table: index numbers stand for names
        names = [f"layer {i}" for i in range(int(frame["layer"].max()) + 1)]
    types_by_name = {}
    if paths.engine_info.exists():
        for layer in read_result_json(paths.engine_info).get("Layers", []):
            if isinstance(layer, dict):
                types_by_name[layer.get("Name")] = layer.get("LayerType", "")
    return LayerRecords(
        frame["run"].to_numpy(np.int64),
        frame["layer"].to_numpy(np.int64),
        frame["latency_ms"].to_numpy(float),
        frame["start_mono_ns"].to_numpy(np.int64),
        frame["end_mono_ns"].to_numpy(np.int64),
        names,
        [types_by_name.get(n, "") for n in names],
    )


def load_markers(paths: ResultPaths) -> pd.DataFrame:
    """Phase markers (``event, run, mono_ns``)."""
    if not paths.markers.exists():
        raise AnalysisError(f"{paths.markers.name} is missing: the profiler did not start")
    return _csv(paths.markers, ("event", "mono_ns"))


def _csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A CSV of the profiler, with an ``AnalysisError`` naming it when it is garbled."""
    try:
        frame = pd.read_csv(path, on_bad_lines="skip")
    except (ValueError, pd.errors.ParserError) as exc:  # UnicodeDecodeError included
        raise AnalysisError(f"{path.name} is garbled ({exc}); measure this model again") from None
    missing = [c for c in columns if c not in frame]
    if missing:
        raise AnalysisError(f"{path.name} has no {', '.join(missing)} column; measure again")
    return frame


def read_result_json(path: Path, kind: type = dict):
    try:
        return read_json(path, kind)
    except LayoutError as exc:
        raise AnalysisError(f"{exc}; measure this model again") from None


def phase(markers: pd.DataFrame, name: str) -> tuple[int, int] | None:
    """(start, end) ns of a phase from its ``<name>_start``/``<name>_end`` markers."""
    events = markers.set_index("event")["mono_ns"]
    start, end = f"{name}_start", f"{name}_end"
    if start in events.index and end in events.index:
        return int(np.min(events[start])), int(np.max(events[end]))
    return None


def intervals(markers: pd.DataFrame, name: str) -> np.ndarray:
    """(start, end) ns of every ``<name>_start``/``<name>_end`` pair, in time order: shape
    (n, 2). A start without its end (a killed run) is left out."""
    events = markers.set_index("event")["mono_ns"]
    starts = np.sort(np.atleast_1d(events.get(f"{name}_start", pd.Series(dtype="int64"))))
    ends = np.sort(np.atleast_1d(events.get(f"{name}_end", pd.Series(dtype="int64"))))
    n = min(len(starts), len(ends))
    return np.column_stack([starts[:n], ends[:n]]).astype(np.int64)


def load_idle(result_dir: Path) -> float | None:
    """Idle board power (µW) from ``idling_power.json``; None where there is none. A file
    that is there but unusable (truncated, garbled, no figure) is an ``AnalysisError``: the
    idle-corrected figures would silently be missing otherwise."""
    try:
        return read_idle_uw(result_dir)
    except LayoutError as exc:
        raise AnalysisError(f"{exc}; measure idle again (run_experiment.sh --force)") from None


def check_overlap(power: PowerLog, start_ns: int, end_ns: int, what: str) -> None:
    """Fail when the power log does not cover a phase at all (files from different runs)."""
    if power.t_ns[-1] < start_ns or power.t_ns[0] > end_ns:
        raise AnalysisError(
            f"the power log ({power.t_ns[0] / 1e9:.1f}-{power.t_ns[-1] / 1e9:.1f} s) does not "
            f"overlap the {what} ({start_ns / 1e9:.1f}-{end_ns / 1e9:.1f} s, monotonic): the "
            "files are not from the same run or clock"
        )
