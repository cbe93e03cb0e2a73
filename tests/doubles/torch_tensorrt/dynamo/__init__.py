"""``torch_tensorrt.dynamo.compile`` double: partitions served from recorded engine output."""

from __future__ import annotations

import json
import os
import time

import tensorrt as trt
import torch
from torch import fx, nn

COMPILE_CALLS: list[dict] = []
DEFAULT_MS = 0.02


def _busy_until(deadline_ns: int) -> None:
    while time.monotonic_ns() < deadline_ns:
        pass


class PythonTorchTensorRTModule(nn.Module):
    """A TensorRT partition: runs its share of the model for as long as its layers take, then
    (when profiling) reports every layer time in one burst, like ``execute_async_v3`` with a
    profiler attached."""

    def __init__(
        self, engine: trt.ICudaEngine, layers: list[tuple[str, list[float]]], compute
    ) -> None:
        super().__init__()
        self.engine = engine
        self.context = engine.create_execution_context()
        self.profiling_enabled = False
        self._layers = layers
        self._compute = compute
        self._runs = 0

    def forward(self, x):
        start = time.monotonic_ns()
        y = self._compute(x)
        times = [(name, values[self._runs % len(values)]) for name, values in self._layers]
        self._runs += 1
        _busy_until(start + round(sum(ms for _, ms in times) * 1e6))
        if self.profiling_enabled and self.context.profiler is not None:
            for name, ms in times:
                self.context.profiler.report_layer_time(name, ms)
        return y

    def enable_profiling(self, profiler=None) -> None:
        if not self.context.profiler:
            self.context.profiler = trt.Profiler() if profiler is None else profiler
        self.profiling_enabled = True

    def disable_profiling(self) -> None:
        self.context = self.engine.create_execution_context()
        self.profiling_enabled = False


class _Graph(nn.Module):
    def __init__(self, parts: list[PythonTorchTensorRTModule]) -> None:
        super().__init__()
        for i, part in enumerate(parts):
            self.add_module(f"_run_on_acc_{i}", part)
        self.n = len(parts)

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"_run_on_acc_{i}")(x)
            if i < self.n - 1:
                x = torch.relu(x)  # a PyTorch op between two TensorRT partitions
        return x


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m, qualname) -> bool:
        return isinstance(m, PythonTorchTensorRTModule) or super().is_leaf_module(m, qualname)


def compile(
    exported_program,
    inputs=None,
    enabled_precisions=None,
    optimization_level=None,
    min_block_size=None,
    use_python_runtime=False,
    debug=False,
    **kwargs,
):
    """Split the recorded engine's layers into partitions and return an FX graph of them."""
    COMPILE_CALLS.append(
        {
            "enabled_precisions": enabled_precisions,
            "debug": debug,
            "use_python_runtime": use_python_runtime,
            "optimization_level": optimization_level,
            "min_block_size": min_block_size,
            "CI_BUILD": os.environ.get("CI_BUILD"),
            **kwargs,
        }
    )
    info = json.loads(open(os.environ["EVB_TRT_DOUBLE_ENGINE"]).read())
    latency = {}
    if os.environ.get("EVB_TRT_DOUBLE_LATENCY"):
        latency = json.loads(open(os.environ["EVB_TRT_DOUBLE_LATENCY"]).read())
    n = int(os.environ.get("EVB_TRT_DOUBLE_PARTITIONS", "1"))
    scale = float(os.environ.get("EVB_TRT_DOUBLE_SCALE", "1"))
    layers = info["Layers"]
    size = -(-len(layers) // n)
    chunks = [layers[i * size : (i + 1) * size] for i in range(n)]
    # Like an engine writing into its output buffer: the values do not matter here, the time
    # does, so the first partition returns a preallocated output of the model's shape.
    output = exported_program.module()(*inputs)
    parts = []
    for i, chunk in enumerate(chunks):
        reported = [
            (layer["Name"], [scale * float(v) for v in latency.get(layer["Name"], [DEFAULT_MS])])
            for layer in chunk
            if layer.get("LayerType") != "NoOp"
        ]
        compute = (lambda x, out=output: out) if i == 0 else (lambda x: x)
        parts.append(
            PythonTorchTensorRTModule(trt.ICudaEngine({"Layers": chunk}), reported, compute)
        )
    graph = _Graph(parts)
    return fx.GraphModule(graph, _Tracer().trace(graph))
