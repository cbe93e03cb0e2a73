"""Per-layer power by isolation (NeuralPower, Cai et al. 2017): each layer alone, in a loop.

Folding cannot resolve layers shorter than the sensor's period on a slow or averaging sensor
(NVML's averaged power, a 6.6 ms INA3221). Here every layer's real input is captured once from
one forward pass; then the layer runs alone in a loop: first for ``settle_s`` (clocks, caches and
the sensor's averaging window settle), then until the power logger's file shows at least
``updates`` distinct sensor updates inside the measured window. The logger runs in its own
process; this module only reads its rails CSV as it grows (``PowerTail``).

One row per layer is streamed to ``<model>_layer_isolation.csv`` as soon as the layer is done
(``COLUMNS``). Energy per run is the mean power × the measured window / runs, or, where the
sensor has an energy counter (NVML), the counter's increase over the window / runs. The 95 %
interval is Student's over the distinct readings of the window (one value per sensor update),
which treats consecutive updates as independent: on an averaging sensor they are not, and the
interval is then too narrow. A layer that fails is recorded with its error; the others go on.

How isolation differs from in-model numbers: the layer's input and weights stay in the caches
(in the model the previous layer's output is there instead); the clocks settle to this layer's
load alone; nothing is fused across layer boundaries. On the CPU each run pays its own call,
as in the model; on CUDA, where the model was captured, each layer is replayed from its own
CUDA graph, as the model is, with enough calls per replay to keep the GPU busy
(``torch_backend._Replay``); on the TensorRT backend each run is an enqueue of the layer's own
engine, where in the model one enqueue covers a whole partition.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.layout import LayoutError, ResultPaths, read_idle_uw
from common.linefile import LineWriter

COLUMNS = [
    "layer_name",
    "layer_type",
    "runs",
    "median_runtime_ms",
    "mean_power_W",
    "mean_power_excl_idle_W",
    "ci95_low_W",
    "ci95_high_W",
    "energy_per_run_mJ",
    "energy_per_run_excl_idle_mJ",
    "energy_source",
    "samples",
    "distinct_updates",
    "settle_s",
    "measured_s",
    "prepare_s",
    "error",
]
CHUNK_S = 0.005  # a timed chunk of runs lasts about this long
STALL_S = 5.0  # no new power sample for this long: the logger is gone


def isolation_csv(model_dir: Path, model: str) -> Path:
    """Where the isolation table of ``model`` goes."""
    return ResultPaths(Path(model_dir).parent, model).layer_isolation


class IsolationError(RuntimeError):
    """Isolation cannot go on (no power log, or the logger stopped writing)."""


@dataclass
class Layer:
    """One layer call to run alone: its name, type and a function that runs it once (or
    ``run.reps`` times, where ``run`` has that attribute: each call counts as a run).

    ``prepare`` (if any) readies it (the TensorRT backend compiles the layer there, the CUDA
    path captures its graph) and ``release`` drops what ``prepare`` made; both run inside the
    layer's own failure handling, outside its settle and measured windows."""

    name: str
    type: str
    run: Callable[[], object]
    prepare: Callable[[], None] | None = None
    release: Callable[[], None] | None = None


def capture_leaf_calls(model, example) -> list[tuple[str, object, tuple]]:
    """(call name, leaf module, copy of its positional inputs) of every leaf-module call of one
    forward pass of ``model`` on ``example``, in call order. Names as the PyTorch backend gives
    them: ``<qualified name>:<type>`` (``model`` for a model that is itself a leaf), ``#n`` from
    a module's second call on. Inputs are cloned before the call (an in-place module changes
    its input). The copies are ordinary tensors (made under ``no_grad``, not
    ``inference_mode``), so ``torch.export`` can take them."""
    import torch

    from model.backend import CallNames, leaf_modules

    leaves = leaf_modules(model)
    captured: list[tuple[str, object, tuple]] = []
    call_name = CallNames()

    def hook_for(name):
        def hook(module, inputs):
            call = call_name(name)
            args = tuple(t.clone() if isinstance(t, torch.Tensor) else t for t in inputs)
            captured.append((call, module, args))

        return hook

    handles = [m.register_forward_pre_hook(hook_for(name)) for name, m in leaves]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return captured


class PowerTail:
    """Reads the logger's rails CSV as it grows: stamps, board power and the energy column."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.energy_col: int | None = None
        self.t = np.zeros(0, dtype=np.int64)
        self.board = np.zeros(0)
        self.energy = np.zeros(0)
        self.last_growth = time.monotonic()

    def poll(self) -> None:
        """Append the complete lines written since the last call."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        if not data:
            if time.monotonic() - self.last_growth > STALL_S:
                raise IsolationError(
                    f"{self.path.name} stopped growing for {STALL_S:.0f} s: the power logger "
                    "is not running (run isolation through measure_inference_power.py)"
                )
            return
        self.offset += len(data)
        self.last_growth = time.monotonic()
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()
        rows = []
        for line in lines:
            cells = line.split(b",")
            if cells[0] == b"mono_ns":
                names = [c.decode() for c in cells]
                energy = [i for i, n in enumerate(names) if n.endswith("_energy_mJ")]
                self.energy_col = energy[0] if energy else None
                continue
            try:
                e = cells[self.energy_col] if self.energy_col is not None else b""
                rows.append((int(cells[0]), float(cells[3]), float(e) if e else math.nan))
            except (ValueError, IndexError):
                continue  # an error line or a cut line: skipped, as the analysis does
        if rows:
            t, board, energy = zip(*rows, strict=True)
            self.t = np.concatenate([self.t, np.array(t, dtype=np.int64)])
            self.board = np.concatenate([self.board, board])
            self.energy = np.concatenate([self.energy, energy])

    def forget_before(self, t_ns: int) -> None:
        """Drop all but the last sample before ``t_ns`` (bounded memory)."""
        keep = max(int(np.searchsorted(self.t, t_ns)) - 1, 0)
        self.t, self.board, self.energy = self.t[keep:], self.board[keep:], self.energy[keep:]

    def updates(self, start_ns: int, end_ns: int | None = None) -> int:
        """Distinct sensor updates seen in [start, end]: changes of the board value, the first
        sample compared with the last one before ``start``."""
        lo = max(int(np.searchsorted(self.t, start_ns)) - 1, 0)
        hi = len(self.t) if end_ns is None else int(np.searchsorted(self.t, end_ns, "right"))
        values = self.board[lo:hi]
        return int((values[1:] != values[:-1]).sum()) if len(values) > 1 else 0

    def has_sample_after(self, t_ns: int) -> bool:
        return len(self.t) > 0 and int(self.t[-1]) > t_ns


def _t95(k: int) -> float:
    """Student's t, two-sided 95 %, for the mean of ``k`` readings (never the normal 1.96)."""
    from scipy.stats import t

    return float(t.ppf(0.975, k - 1)) if k >= 2 else math.inf


def power_row(tail: PowerTail, start_ns: int, end_ns: int, runs: int, idle_uw) -> dict:
    """The power columns of one layer's measured window [start, end] with ``runs`` runs."""
    lo, hi = np.searchsorted(tail.t, start_ns), np.searchsorted(tail.t, end_ns, "right")
    board = tail.board[lo:hi]
    seconds = (end_ns - start_ns) / 1e9
    row: dict = {"samples": int(hi - lo), "distinct_updates": tail.updates(start_ns, end_ns)}
    if not len(board):
        return row
    readings = board[np.r_[True, board[1:] != board[:-1]]]  # one value per update
    mean_w = float(board.mean()) / 1e6
    half = _t95(len(readings)) * float(readings.std(ddof=1)) / len(readings) ** 0.5 / 1e6
    row.update(
        mean_power_W=mean_w,
        ci95_low_W=mean_w - half if len(readings) > 1 else math.nan,
        ci95_high_W=mean_w + half if len(readings) > 1 else math.nan,
        energy_per_run_mJ=1e3 * mean_w * seconds / runs,
        energy_source="mean power x window",
    )
    valid = ~np.isnan(tail.energy)
    t, mj = tail.t[valid], tail.energy[valid]
    if len(t) >= 2 and t[0] <= start_ns and t[-1] >= end_ns:
        joules = float(np.interp(end_ns, t, mj) - np.interp(start_ns, t, mj)) / 1e3
        row.update(energy_per_run_mJ=1e3 * joules / runs, energy_source="energy counter")
    if idle_uw is not None:
        row["mean_power_excl_idle_W"] = mean_w - idle_uw / 1e6
        row["energy_per_run_excl_idle_mJ"] = (
            row["energy_per_run_mJ"] - 1e3 * idle_uw / 1e6 * seconds / runs
        )
    return row


class _Loop:
    """Runs one layer in timed chunks of ``size`` runs (about ``CHUNK_S`` each)."""

    def __init__(self, layer: Layer, timer: Callable[[Callable[[], None]], float]) -> None:
        self.layer, self.timer, self.size = layer, timer, 1
        self.per_run_s: list[float] = []
        self.runs = 0

    def chunk(self, record: bool) -> None:
        run, size = self.layer.run, self.size

        def body() -> None:
            for _ in range(size):
                run()

        seconds = self.timer(body)
        calls = size * getattr(run, "reps", 1)  # a run may call the layer several times
        if record:
            self.runs += calls
            self.per_run_s.append(seconds / calls)
        elif seconds < CHUNK_S:
            self.size = min(self.size * 2, 1 << 20)


def isolate_layers(
    layers: list[Layer],
    tail: PowerTail,
    out: Path,
    timer: Callable[[Callable[[], None]], float],
    updates: int,
    settle_s: float,
    idle_uw: float | None = None,
    mark: Callable[[str, int, int | None], None] = lambda *_: None,
    max_layer_s: float = 120.0,
) -> list[dict]:
    """Run every layer alone and stream its row to ``out``; return the rows.

    ``timer(body)`` runs ``body`` and returns its duration in seconds (device time on a GPU);
    ``mark(event, mono_ns, layer index)`` records phase markers on the power log's clock.
    """
    writer = LineWriter(out, ",".join(COLUMNS) + "\n")
    rows = []
    try:
        for i, layer in enumerate(layers):
            row = {"layer_name": layer.name, "layer_type": layer.type, "settle_s": settle_s}
            try:
                if layer.prepare is not None:  # e.g. a compile: before the settle window
                    began = time.monotonic()
                    layer.prepare()
                    row["prepare_s"] = time.monotonic() - began
                row.update(_isolate(layer, i, tail, timer, updates, settle_s, mark, max_layer_s))
                row.update(power_row(tail, row.pop("start"), row.pop("end"), row["runs"], idle_uw))
            except IsolationError:
                raise
            except Exception as exc:  # one layer failing never ends the others
                row["error"] = _error(exc)
            try:
                if layer.release is not None:
                    layer.release()
            except Exception as exc:  # recorded with the row; the others go on
                failed = [row.get("error"), "release: " + _error(exc)]
                row["error"] = "; ".join(filter(None, failed))
            rows.append(row)
            writer.write(",".join(_cell(row.get(c)) for c in COLUMNS) + "\n")
            writer.flush()
    finally:
        writer.close()
    return rows


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]


def _isolate(layer, index, tail, timer, updates, settle_s, mark, max_layer_s) -> dict:
    loop = _Loop(layer, timer)
    begin = time.monotonic_ns()
    mark("isolation_start", begin, index)
    tail.forget_before(begin)
    while True:  # settle: at least one chunk, which also sizes the chunks
        loop.chunk(record=False)
        if time.monotonic_ns() - begin >= settle_s * 1e9:
            break
    start = time.monotonic_ns()
    mark("isolation_measure_start", start, index)
    deadline = start + int(max_layer_s * 1e9)
    next_poll = 0
    while True:
        loop.chunk(record=True)
        now = time.monotonic_ns()
        if now >= next_poll:
            tail.poll()
            next_poll = now + 20_000_000
            if tail.updates(start) >= updates:
                break
        if now > deadline:
            raise TimeoutError(
                f"{tail.updates(start)} of {updates} sensor updates in {max_layer_s:.0f} s"
            )
    end = time.monotonic_ns()
    mark("isolation_measure_end", end, index)
    while not tail.has_sample_after(end):  # the window's last samples reach the file
        time.sleep(0.01)
        tail.poll()
    return {
        "runs": loop.runs,
        "median_runtime_ms": 1e3 * statistics.median(loop.per_run_s),
        "measured_s": (end - start) / 1e9,
        "start": start,
        "end": end,
    }


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, str):
        return '"' + value.replace('"', "'") + '"' if "," in value else value
    return repr(value) if isinstance(value, float) else str(value)


def power_log_path(result_dir, model: str) -> Path:
    """The rails CSV the power logger writes for ``model``."""
    return ResultPaths(result_dir, model).power["rails_csv"]


def _idle_uw(result_dir) -> float | None:
    """The idle power to subtract; an unusable ``idling_power.json`` is said, not used."""
    try:
        return read_idle_uw(result_dir)
    except LayoutError as exc:
        logging.getLogger("model").warning("isolation: no idle correction: %s", exc)
        return None


def run_isolation(cfg, backend, mark) -> dict:
    """The isolation pass of ``model.benchmark``: every layer of ``backend`` alone; returns the
    figures for the summary JSON."""
    import torch

    model_dir = Path(cfg.result_dir) / cfg.model
    tail = PowerTail(power_log_path(cfg.result_dir, cfg.model))
    tail.poll()
    layers = backend.isolated_layers()
    out = isolation_csv(model_dir, cfg.model)
    mark("isolation_start", time.monotonic_ns())
    with torch.inference_mode():
        rows = isolate_layers(
            layers,
            tail,
            out,
            backend.time_block,
            cfg.isolation_updates,
            cfg.isolation_settle_s,
            _idle_uw(cfg.result_dir),
            mark,
        )
    mark("isolation_end", time.monotonic_ns())
    failed = [r["layer_name"] for r in rows if r.get("error")]
    return {"layers": len(rows), "failed": failed, "file": out.name}
