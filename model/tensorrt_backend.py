"""The TensorRT backend: Torch-TensorRT's dynamo path, every TensorRT partition profiled.

``torch.export`` → ``torch_tensorrt.dynamo.compile(..., use_python_runtime=True)`` gives a graph
whose TensorRT partitions (``_run_on_acc_0``, ``_run_on_acc_1``, ...) are
``PythonTorchTensorRTModule``s with a real ``engine`` and ``context``; PyTorch ops may run
between them. This is the only module that imports ``tensorrt`` and ``torch_tensorrt``.

- Engines are built with detailed profiling verbosity (layer parameters in the inspector JSON)
  without the slow ``rich`` progress monitor: Torch-TensorRT < 2.8 through ``debug=True`` with
  ``CI_BUILD=1`` set; ≥ 2.8 through ``Debugger(save_engine_profile=True,
  engine_builder_monitor=False)`` (pytorch/TensorRT #3215).
- Every partition gets its own ``IProfiler``; its ``report_layer_time`` calls arrive in a burst
  after the partition ran, so the callback time is never used. A wrapper takes the host time
  right before each partition runs (after a synchronize); windows are that anchor plus the
  cumulative layer times in execution order (``model.windows``).
- The timing pass runs before any profiler is attached.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext

from model.backend import Backend, BackendUnavailable, torch_dtype
from model.windows import Segment


def _version_tuple(text: str) -> tuple[int, int]:
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:2]]
    major, minor = [*parts, 0, 0][:2]
    return major, minor


def _make_profiler_class(trt):
    class LayerTimes(trt.IProfiler):
        """Collects (layer name, ms) in the order TensorRT reports them."""

        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.times: list[tuple[str, float]] = []

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.times.append((layer_name, float(ms)))

    return LayerTimes


class TensorRTBackend(Backend):
    """A Torch-TensorRT compiled graph with one profiler per TensorRT partition."""

    name = "tensorrt"

    def __init__(self, dtype: str, optimization_level: int, min_block_size: int) -> None:
        try:
            import tensorrt as trt
            import torch
            import torch_tensorrt
        except ImportError as exc:
            raise BackendUnavailable(
                f"TensorRT backend needs tensorrt and torch_tensorrt ({exc}); use --backend torch"
            ) from None
        self.trt, self.torch, self.torch_tensorrt = trt, torch, torch_tensorrt
        self.cuda = torch.cuda.is_available()
        self.dtype = dtype
        self.optimization_level = optimization_level
        self.min_block_size = min_block_size
        self.partitions: list[tuple[str, object]] = []
        self._anchors: dict[str, int] = {}
        self._profilers: dict[str, object] = {}
        self._profiling = False

    def _compile_context(self):
        """Detailed profiling verbosity without the progress monitor, per Torch-TensorRT version."""
        version = _version_tuple(self.torch_tensorrt.__version__)
        if version >= (2, 8):
            debugger = self.torch_tensorrt.dynamo.Debugger(
                log_level="info", save_engine_profile=True, engine_builder_monitor=False
            )
            return debugger, {}
        os.environ["CI_BUILD"] = "1"  # keeps the rich progress monitor off with debug=True
        return nullcontext(), {"debug": True}

    def prepare(self, model, example) -> None:
        torch = self.torch
        device = torch.device("cuda" if self.cuda else "cpu")
        dtype = torch_dtype(self.dtype)
        self.input = example.to(device, dtype)
        model = model.to(device, dtype).eval()
        exported = torch.export.export(model, (self.input,))
        context, extra = self._compile_context()
        try:
            with context:
                self.compiled = self.torch_tensorrt.dynamo.compile(
                    exported,
                    inputs=[self.input],
                    enabled_precisions={dtype},
                    optimization_level=self.optimization_level,
                    min_block_size=self.min_block_size,
                    use_python_runtime=True,
                    **extra,
                )
        except Exception as exc:  # conversion failures come in many types
            raise BackendUnavailable(f"Torch-TensorRT could not compile the model: {exc}") from exc
        self.partitions = self._find_partitions()
        if not self.partitions:
            raise BackendUnavailable("the compiled graph has no TensorRT partition")
        for _, module in self.partitions:
            if getattr(module, "profiling_enabled", False):  # a debugger may have enabled it
                module.disable_profiling()

    def _find_partitions(self) -> list[tuple[str, object]]:
        """TensorRT submodules in execution order (graph order where the graph is FX)."""
        modules = dict(self.compiled.named_modules())
        trt_names = [
            n
            for n, m in modules.items()
            if n
            and hasattr(m, "engine")
            and hasattr(m, "context")
            and hasattr(m, "enable_profiling")
        ]
        graph = getattr(self.compiled, "graph", None)
        if graph is not None:
            order = [
                str(node.target)
                for node in graph.nodes
                if node.op == "call_module" and str(node.target) in trt_names
            ]
            trt_names = order + [n for n in trt_names if n not in order]
        return [(n, modules[n]) for n in trt_names]

    def synchronize(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def infer(self) -> None:
        with self.torch.inference_mode():
            self.compiled(self.input)

    def attach_profilers(self) -> None:
        profiler_class = _make_profiler_class(self.trt)
        for name, module in self.partitions:
            profiler = profiler_class()
            module.context.profiler = None  # enable_profiling keeps an existing profiler
            module.enable_profiling(profiler)
            self._profilers[name] = profiler
            module.forward = self._anchored(name, module.forward)
        self._profiling = True

    def _anchored(self, name: str, forward):
        """Wrap a partition's forward: synchronize, then take its host anchor."""

        def run(*args, **kwargs):
            self.synchronize()
            self._anchors[name] = time.monotonic_ns()
            return forward(*args, **kwargs)

        return run

    def profiled_infer(self, anchor_ns: int) -> list[Segment]:
        for profiler in self._profilers.values():
            profiler.times.clear()
        self._anchors.clear()
        self.infer()
        self.synchronize()
        return [
            Segment(
                self._anchors.get(name, anchor_ns),
                [(layer, ms, None) for layer, ms in self._profilers[name].times],
            )
            for name, _ in self.partitions
        ]

    def _inspect(self, module) -> list:
        """The engine inspector's layer list of one partition."""
        inspector = module.engine.create_engine_inspector()
        text = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
        return json.loads(text).get("Layers", [])

    def engine_info(self) -> dict:
        return {"Layers": [layer for _, m in self.partitions for layer in self._inspect(m)]}

    def describe(self) -> dict:
        info = {
            "device": "cuda" if self.cuda else "cpu",
            "torch": self.torch.__version__,
            "torch_tensorrt": self.torch_tensorrt.__version__,
            "tensorrt": self.trt.__version__,
            "partitions": [
                {"name": name, "layers": len(self._inspect(module))}
                for name, module in self.partitions
            ],
        }
        if self.cuda:
            info["gpu_name"] = self.torch.cuda.get_device_name()
        return info
