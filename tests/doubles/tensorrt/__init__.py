"""Test double of the ``tensorrt`` 10 Python API: the parts this suite calls, as TensorRT does them.

Checked against NVIDIA/TensorRT at tag v10.1.0 (the TensorRT of JetPack 6.0):

- ``python/src/infer/pyCore.cpp``: the ``IProfiler`` trampoline (``PyProfiler::reportLayerTime``)
  catches any exception raised by a Python ``report_layer_time`` and only prints
  ``[ERROR] Exception caught in report_layer_time(): ...`` to stderr; ``IExecutionContext``
  exposes ``profiler``, ``enqueue_emits_profile``, ``report_to_profiler``, ``set_input_shape``,
  ``get_tensor_shape``, ``set_tensor_address``, ``execute_async_v3(stream_handle)`` → bool;
  ``ICudaEngine`` exposes ``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``,
  ``get_tensor_dtype``, ``get_tensor_shape``, ``serialize``, ``create_execution_context``,
  ``create_engine_inspector``; ``IEngineInspector`` has ``execution_context`` and
  ``get_engine_information(LayerInformationFormat.JSON)``; ``Runtime.deserialize_cuda_engine``
  returns None for bytes that are no engine.
- ``include/NvInferRuntime.h``: with a profiler set, the layer times are reported whenever
  ``profiler`` is set — at the end of the enqueue if ``enqueue_emits_profile`` (the default), else
  only when ``report_to_profiler()`` is called; an engine built with
  ``ProfilingVerbosity.LAYER_NAMES_ONLY`` (the builder default) gives an inspector JSON whose
  ``Layers`` are names only; ``DETAILED`` gives full layer dicts (``LayerType``, ``StreamId``...).

Where it differs from the real thing on purpose (no GPU here):

- A serialized engine (``_build`` stands in for ``Builder.build_serialized_network``) is JSON bytes
  holding the layers of a real engine-inspector file (``tests/fixtures/tensorrt``) and their layer
  times from the real ``IProfiler`` recording (matched by position: the two fixtures come from two
  builds whose names differ in two layers). NoOp layers are reported at 0.0 ms, as recorded.
- ``execute_async_v3`` runs on the host and returns when done. It busy-waits host set-up before
  the first layer, each main-stream layer's time, and gaps between layers, so that Σ layer times /
  span is the fixture's ratio (median Σ IProfiler times / median unprofiled latency ≈ 0.70).
  Layers on an auxiliary stream (``StreamId`` ≠ 0) take no time of their own: they overlap.
- With ``max_aux_streams`` left to TensorRT (None) or > 0, the builder puts the residual
  ``downsample`` branch on stream 1, as TensorRT's heuristic may; with 0 every layer is on stream 0
  (all four fixtures were built that way).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

__version__ = "10.1.0"

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tensorrt"
ENGINE_FIXTURE = FIXTURES / "resnet18_trt_engine_info.json"
LATENCY_FIXTURE = FIXTURES / "resnet18_trt_layer_latency_desktop.json"
SUMMARY_FIXTURE = FIXTURES / "resnet18_tensorrt_desktop.json"
PRE_SHARE = 0.4  # share of the host overhead spent before the first layer; the rest in gaps
EXECUTIONS: list[bool] = []  # per execute_async_v3 call: was a profiler attached?


def _fixture_ratio() -> float:
    """Median Σ IProfiler layer times / median unprofiled latency of the resnet18 fixture."""
    times = json.loads(LATENCY_FIXTURE.read_text())
    sums = [sum(run) for run in zip(*times.values(), strict=True)]
    summary = json.loads(SUMMARY_FIXTURE.read_text())
    summary = json.loads(summary) if isinstance(summary, str) else summary  # stored as a string
    return statistics.median(sums) / (1e3 * statistics.median(summary["latencies"]))


class Logger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self, min_severity: int = WARNING) -> None:
        self.min_severity = min_severity


class DataType:
    FLOAT, HALF, INT8, INT32, BOOL, UINT8, FP8, BF16, INT64, INT4 = range(10)


_DTYPES = {"float32": DataType.FLOAT, "float16": DataType.HALF, "bfloat16": DataType.BF16}


class TensorIOMode:
    NONE, INPUT, OUTPUT = range(3)


class LayerInformationFormat:
    ONELINE, JSON = range(2)


class ProfilingVerbosity:
    LAYER_NAMES_ONLY, NONE, DETAILED = range(3)


class IProfiler:
    def __init__(self) -> None:
        pass

    def report_layer_time(self, layer_name: str, ms: float) -> None:  # pragma: no cover
        raise NotImplementedError


class Profiler(IProfiler):
    """TensorRT's default profiler prints each layer time."""

    def report_layer_time(self, layer_name: str, ms: float) -> None:
        print(f"{layer_name}: {ms}ms")


def _report(profiler: IProfiler, times: list[tuple[str, float]]) -> None:
    for name, ms in times:
        try:
            profiler.report_layer_time(name, ms)
        except Exception as exc:  # the bindings' trampoline swallows it
            print(f"[ERROR] Exception caught in report_layer_time(): {exc}", file=sys.stderr)


def _busy_until(deadline_ns: int) -> None:
    while time.monotonic_ns() < deadline_ns:
        pass


class IExecutionContext:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.profiler: IProfiler | None = None
        self.enqueue_emits_profile = True
        self._addresses: dict[str, int] = {}
        self._pending: list[tuple[str, float]] | None = None
        self._runs = 0
        self.last_run: list[tuple[int, int]] = []

    def set_input_shape(self, name: str, shape) -> bool:
        if self.engine.get_tensor_mode(name) != TensorIOMode.INPUT:
            return False
        return tuple(shape) == tuple(self.engine.get_tensor_shape(name))  # a static-shape engine

    def get_tensor_shape(self, name: str) -> tuple:
        return self.engine.get_tensor_shape(name)

    def set_tensor_address(self, name: str, memory: int) -> bool:
        if self.engine.get_tensor_mode(name) == TensorIOMode.NONE:
            return False
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        io = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        if any(not self._addresses.get(name) for name in io):
            print("[E] IExecutionContext::enqueueV3: tensor address not set", file=sys.stderr)
            return False
        plan = self.engine._plan
        times = [(name, ms[self._runs % len(ms)] * plan["scale"]) for name, ms in plan["times"]]
        self._runs += 1
        main = [ms for (_, ms), s in zip(times, plan["streams"], strict=True) if s == 0]
        overhead_ns = sum(main) * 1e6 * (1 / plan["ratio"] - 1)
        gap_ns = (1 - PRE_SHARE) * overhead_ns / max(len(main) - 1, 1)
        EXECUTIONS.append(self.profiler is not None)
        deadline = time.monotonic_ns() + PRE_SHARE * overhead_ns
        _busy_until(round(deadline))
        self.last_run = []  # when each main-stream layer really ran: the tests' ground truth
        for i, ms in enumerate(main):
            start = time.monotonic_ns()
            _busy_until(round(start + ms * 1e6))
            self.last_run.append((start, time.monotonic_ns()))
            deadline = time.monotonic_ns() + (gap_ns if i < len(main) - 1 else 0)
            _busy_until(round(deadline))
        if self.profiler is not None:
            if self.enqueue_emits_profile:
                _report(self.profiler, times)
            else:
                self._pending = times
        return True

    def report_to_profiler(self) -> bool:
        if self.profiler is None or self._pending is None:
            return False
        times, self._pending = self._pending, None
        _report(self.profiler, times)
        return True


class IEngineInspector:
    def __init__(self, engine: ICudaEngine) -> None:
        self.engine = engine
        self.execution_context: IExecutionContext | None = None

    def get_engine_information(self, fmt: int) -> str:
        assert fmt == LayerInformationFormat.JSON
        plan = self.engine._plan
        layers = plan["layers"]
        if plan["verbosity"] != ProfilingVerbosity.DETAILED:
            layers = [layer["Name"] for layer in layers]
        return json.dumps({"Layers": layers, "Bindings": [t["name"] for t in plan["io"]]})


class ICudaEngine:
    def __init__(self, plan: dict) -> None:
        self._plan = plan
        self._io = {t["name"]: t for t in plan["io"]}

    @property
    def num_io_tensors(self) -> int:
        return len(self._plan["io"])

    def get_tensor_name(self, index: int) -> str:
        return self._plan["io"][index]["name"]

    def get_tensor_mode(self, name: str) -> int:
        return self._io[name]["mode"] if name in self._io else TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> tuple:
        return tuple(self._io[name]["shape"])

    def get_tensor_dtype(self, name: str) -> int:
        return self._io[name]["dtype"]

    def serialize(self) -> bytes:
        return json.dumps(self._plan).encode()

    def create_execution_context(self) -> IExecutionContext:
        return IExecutionContext(self)

    def create_engine_inspector(self) -> IEngineInspector:
        return IEngineInspector(self)


class Runtime:
    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine) -> ICudaEngine | None:
        try:
            plan = json.loads(bytes(serialized_engine))
        except ValueError:
            print("[E] IRuntime::deserializeCudaEngine: not an engine", file=sys.stderr)
            return None
        return ICudaEngine(plan)


def fixture_layers() -> tuple[list[dict], list[list[float]]]:
    """The layers of the engine fixture and each one's recorded times (ms), by position.

    ``EVB_TRT_DOUBLE_ENGINE`` / ``EVB_TRT_DOUBLE_LATENCY`` override the resnet18 fixtures."""
    info = json.loads(Path(os.environ.get("EVB_TRT_DOUBLE_ENGINE") or ENGINE_FIXTURE).read_text())
    latency = Path(os.environ.get("EVB_TRT_DOUBLE_LATENCY") or LATENCY_FIXTURE)
    recorded = list(json.loads(latency.read_text()).values())
    layers = info["Layers"]
    times = [recorded[i] if i < len(recorded) else [0.02] for i in range(len(layers))]
    return layers, times


def _build(
    layers: list[dict],
    times: list[list[float]],
    inputs: list[tuple[str, tuple, str]],
    outputs: list[tuple[str, tuple, str]],
    verbosity: int = ProfilingVerbosity.LAYER_NAMES_ONLY,
    max_aux_streams: int | None = None,
) -> bytes:
    """The double's ``Builder.build_serialized_network``: a serialized engine of these layers.
    ``inputs``/``outputs``: (name, shape, torch dtype name). ``EVB_TRT_DOUBLE_SCALE`` multiplies
    every layer time (a slower device)."""
    aux = max_aux_streams is None or max_aux_streams > 0
    layers = [
        {
            **layer,
            "StreamId": 1 if aux and "downsample" in layer["Name"] else layer.get("StreamId", 0),
        }
        for layer in layers
    ]
    io = [
        {"name": n, "shape": list(s), "dtype": _DTYPES[d], "mode": mode}
        for mode, tensors in ((TensorIOMode.INPUT, inputs), (TensorIOMode.OUTPUT, outputs))
        for n, s, d in tensors
    ]
    plan = {
        "layers": layers,
        "times": [(layer["Name"], ms) for layer, ms in zip(layers, times, strict=True)],
        "streams": [layer["StreamId"] for layer in layers],
        "verbosity": verbosity,
        "io": io,
        "scale": float(os.environ.get("EVB_TRT_DOUBLE_SCALE") or 1),
        "ratio": _fixture_ratio(),
    }
    return json.dumps(plan).encode()
