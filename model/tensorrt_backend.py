"""The TensorRT backend: Torch-TensorRT builds the engines, our own TensorRT objects run them.

This is the only module that imports ``tensorrt`` and ``torch_tensorrt``.

- **Build.** ``torch.export`` → ``torch_tensorrt.dynamo.compile`` (detailed profiling verbosity,
  ``max_aux_streams=0`` unless asked otherwise) gives a graph whose TensorRT partitions
  (``_run_on_acc_0``, ...) may have PyTorch ops between them. Or ``--engine FILE``: a serialized
  engine built elsewhere (trtexec).
- **Run.** Each partition's serialized engine is deserialized with ``trt.Runtime`` into an
  ``ICudaEngine`` and an ``IExecutionContext`` of ours (``_Engine``), which replaces the partition
  module in the graph: torch tensors are bound by name (``set_input_shape``,
  ``set_tensor_address``) and ``execute_async_v3`` enqueues on the current stream. The timing
  pass runs these contexts with no profiler attached.
- **Profile.** Each context gets its own ``IProfiler`` with ``enqueue_emits_profile = False``:
  per partition and run, a synchronize, a host stamp right before the enqueue, the enqueue, a
  synchronize, a host stamp, then ``report_to_profiler()``. Windows are placed between the two
  stamps, the last ending at the second (``model.windows``); the slack (span − Σ layer times) goes
  to the records and its distribution to the summary. A run in which any partition did not report
  each of its layers exactly once is dropped and counted (exceptions in the callback are only
  printed by the bindings). NoOp layers are kept at the 0 ms TensorRT reports. Layers the
  inspector puts on a stream other than 0 get overlapping windows.
- **Isolation** (``--isolation``; not with an engine file): every leaf-module call of the torch
  model is compiled alone through the same path and runtime and run in a loop on its captured
  input (``isolated_layers``, which says why units are leaf calls, not fused groups).
- **Refused:** CUDA graphs on (``torch_tensorrt.runtime.set_cudagraphs_mode(True)``): a captured
  graph hides layers from the profiler.

What differs between Torch-TensorRT versions is in ``compile_options`` and ``partition_engine``
only (checked against pytorch/TensorRT at the tags named there).
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import time
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import torch

from model.backend import Backend, BackendUnavailable, torch_dtype
from model.windows import Segment

AUX_STREAMS_AUTO = -1  # --max-aux-streams value meaning "TensorRT's heuristic"


def _version_tuple(text: str) -> tuple[int, int]:
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:2]]
    major, minor = [*parts, 0, 0][:2]
    return major, minor


# ---- The version-specific part ---------------------------------------------------------------


def compile_options(torch_tensorrt) -> tuple[object, dict, str]:
    """(context to compile in, extra ``compile`` arguments, what was used) for detailed profiling
    verbosity without the slow ``rich`` build monitor.

    - < 2.8 (v2.4.0 ``dynamo/conversion/_TRTInterpreter.py``): DETAILED iff ``debug=True``;
      ``CI_BUILD=1`` keeps the monitor off (#3215). Python runtime: ``PythonTorchTensorRTModule``.
    - 2.8–2.12 (v2.8.0 ``_TRTInterpreter.py``, ``_compiler.py``): DETAILED iff a ``Debugger`` with
      ``save_engine_profile=True``; with ``use_python_runtime=True`` any ``profile_format`` but
      ``"cudagraph"`` raises ``ValueError`` ("Profiling with TREX can only be enabled when using
      the C++ runtime"), so the format is ``"cudagraph"``. We never run their modules, so the
      profiling it turns on there is unused.
    - ≥ 2.13 (v2.13.0 ``_TRTInterpreter.py``): DETAILED whenever a ``Debugger`` is active;
      ``use_python_runtime`` is deprecated and ignored, partitions are ``TorchTensorRTModule``.
    """
    version = _version_tuple(torch_tensorrt.__version__)
    if version < (2, 8):
        os.environ["CI_BUILD"] = "1"
        return nullcontext(), {"debug": True, "use_python_runtime": True}, "debug=True"
    debugger = torch_tensorrt.dynamo.Debugger
    if version < (2, 13):
        context = debugger(
            log_level="info",
            save_engine_profile=True,
            profile_format="cudagraph",
            engine_builder_monitor=False,
        )
        used = "Debugger(save_engine_profile=True, profile_format='cudagraph')"
        return context, {"use_python_runtime": True}, used
    context = debugger(log_level="info", engine_builder_monitor=False)
    return context, {}, "Debugger(engine_builder_monitor=False)"


def partition_engine(module) -> tuple[bytes, list[str], list[str]] | None:
    """(serialized engine, input names, output names) of a Torch-TensorRT partition, or None.

    ``serialized_engine`` with ``input_names``/``output_names`` (``PythonTorchTensorRTModule``
    v2.8.0) or ``input_binding_names``/``output_binding_names`` (``TorchTensorRTModule`` v2.8.0,
    v2.13.0); in v2.4.0 ``PythonTorchTensorRTModule.engine`` is the deserialized ``ICudaEngine``.
    """
    data = getattr(module, "serialized_engine", None)
    if data is None:
        engine = getattr(module, "engine", None)
        if engine is None or not callable(getattr(engine, "serialize", None)):
            return None
        data = engine.serialize()
    inputs = getattr(module, "input_binding_names", None) or getattr(module, "input_names", None)
    outputs = getattr(module, "output_binding_names", None) or getattr(module, "output_names", None)
    if not inputs or not outputs:
        return None
    return bytes(data), list(inputs), list(outputs)


def cudagraphs_on(torch_tensorrt) -> bool:
    """Torch-TensorRT ≥ 2.5 cudagraphs mode (``torch_tensorrt.runtime.get_cudagraphs_mode``)."""
    get = getattr(getattr(torch_tensorrt, "runtime", None), "get_cudagraphs_mode", None)
    return bool(get and get())


# ---- Our TensorRT runtime --------------------------------------------------------------------


def _make_profiler_class(trt):
    class LayerTimes(trt.IProfiler):
        """Collects (layer name, ms) in the order TensorRT reports them."""

        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.times: list[tuple[str, float]] = []

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.times.append((layer_name, float(ms)))

    return LayerTimes


class _Engine(torch.nn.Module):
    """One deserialized engine with our execution context, in place of a partition module."""

    def __init__(self, trt, data: bytes, inputs=None, outputs=None, label="engine"):
        super().__init__()
        self.trt, self.torch, self.label = trt, torch, label
        self.engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(data)
        if self.engine is None:
            raise BackendUnavailable(f"TensorRT could not deserialize {label}: rebuild it here")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = [self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names]
        self.inputs = inputs or [n for n, i in zip(names, is_input, strict=True) if i]
        self.outputs = outputs or [n for n, i in zip(names, is_input, strict=True) if not i]
        self.cuda = torch.cuda.is_available()
        self._buffers: dict[str, object] = {}
        self.profiling = False
        self.span: tuple[int, int] | None = None

    def input_dtype(self):
        return self._torch_dtype(self.engine.get_tensor_dtype(self.inputs[0]))

    def _torch_dtype(self, dtype):
        trt, torch = self.trt, self.torch
        table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16}
        for trt_name, torch_name in (("BF16", "bfloat16"), ("INT8", "int8"), ("INT32", "int32"),
                                     ("INT64", "int64"), ("BOOL", "bool")):  # fmt: skip
            if hasattr(trt.DataType, trt_name):
                table[getattr(trt.DataType, trt_name)] = getattr(torch, torch_name)
        return table[dtype]

    def _bind(self, args) -> list:
        context = self.context
        for name, arg in zip(self.inputs, args, strict=True):
            want = self._torch_dtype(self.engine.get_tensor_dtype(name))
            if isinstance(arg, torch.Tensor) and arg.dtype != want:  # its bytes would be misread
                raise RuntimeError(
                    f"{self.label} takes {name} as {want}, got {arg.dtype}: build the engine "
                    f"for the --dtype it is run with"
                )
            x = torch.as_tensor(arg, device=self.device).contiguous()  # ints of dynamic shapes
            self._buffers[name] = x  # alive until the enqueued work is done
            if not context.set_input_shape(name, tuple(x.shape)):
                raise BackendUnavailable(
                    f"{self.label} does not take input {name} of shape {tuple(x.shape)}: "
                    f"pass the engine's shape with --input-shape"
                )
            context.set_tensor_address(name, x.data_ptr())
        outs = []
        for name in self.outputs:
            shape = tuple(context.get_tensor_shape(name))
            out = self._buffers.get(name)
            if out is None or tuple(out.shape) != shape:
                dtype = self._torch_dtype(self.engine.get_tensor_dtype(name))
                out = self.torch.empty(shape, dtype=dtype, device=self.device)
                self._buffers[name] = out
            context.set_tensor_address(name, out.data_ptr())
            outs.append(out)
        return outs

    @property
    def device(self):
        return self.torch.device("cuda" if self.cuda else "cpu")

    def _sync(self, stream) -> None:
        if stream is not None:
            stream.synchronize()

    def forward(self, *args):
        outs = self._bind(args)
        stream = self.torch.cuda.current_stream() if self.cuda else None
        handle = stream.cuda_stream if stream is not None else 0
        if self.profiling:
            self._sync(stream)
            start = time.monotonic_ns()
            ok = self.context.execute_async_v3(handle)
            self._sync(stream)
            self.span = (start, time.monotonic_ns())
            self.context.report_to_profiler()
        else:
            ok = self.context.execute_async_v3(handle)
        if not ok:
            raise RuntimeError(f"TensorRT could not enqueue {self.label}")
        return outs[0] if len(outs) == 1 else tuple(outs)

    def layers(self) -> list:
        """The engine inspector's layer list (dicts if built DETAILED, else names)."""
        inspector = self.engine.create_engine_inspector()
        inspector.execution_context = self.context
        text = inspector.get_engine_information(self.trt.LayerInformationFormat.JSON)
        return json.loads(text).get("Layers", [])


def _layer_name(layer) -> str:
    return layer["Name"] if isinstance(layer, dict) else str(layer)


def _distribution(values_ms: list[float]) -> dict | None:
    if not values_ms:
        return None
    ordered = sorted(values_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "count": len(ordered),
        "min": ordered[0],
        "p05": pick(0.05),
        "median": statistics.median(ordered),
        "p95": pick(0.95),
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


class TensorRTBackend(Backend):
    """TensorRT engines (Torch-TensorRT partitions or an engine file) run by our contexts."""

    name = "tensorrt"
    record_columns = ("slack_ns", "stream")

    def __init__(
        self,
        dtype: str,
        optimization_level: int,
        min_block_size: int,
        max_aux_streams: int = 0,
        engine_file: str | None = None,
    ) -> None:
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
        self.max_aux_streams = None if max_aux_streams == AUX_STREAMS_AUTO else max_aux_streams
        self.engine_file = engine_file
        self.supports_isolation = engine_file is None  # an engine file has no model to split
        self.model = None
        self.partitions: list[tuple[str, _Engine]] = []
        self.compile_api = "engine file" if engine_file else ""
        self._profilers: dict[str, object] = {}
        self._layers: dict[str, list] = {}
        self._dropped = 0
        self._kept = 0
        self._slack_ms: list[float] = []

    def prepare(self, model, example) -> None:
        if cudagraphs_on(self.torch_tensorrt):
            raise BackendUnavailable(
                "CUDA graphs are on (torch_tensorrt.runtime.set_cudagraphs_mode(True)): a captured "
                "graph hides layers from the profiler; turn them off to profile"
            )
        device = self.torch.device("cuda" if self.cuda else "cpu")
        if self.engine_file:
            engine = _Engine(self.trt, Path(self.engine_file).read_bytes(),
                             label=self.engine_file)  # fmt: skip
            self.compiled, self.partitions = engine, [("engine", engine)]
            self.input = example.to(device, engine.input_dtype())
        else:
            self._compile(model, example.to(device, torch_dtype(self.dtype)))
        self._layers = {name: engine.layers() for name, engine in self.partitions}

    def _compile(self, model, example) -> None:
        self.input = example
        self.model = model.to(example.device, example.dtype).eval()  # kept for isolation
        self.compiled, self.partitions = self._build(
            self.model, (example,), self.min_block_size, "the model"
        )

    def _build(self, module, args: tuple, min_block_size: int, what: str):
        """(compiled graph, [(partition name, our ``_Engine``)]) of ``module`` called on
        ``args``: ``torch.export``, ``torch_tensorrt.dynamo.compile`` with this backend's
        settings, each TensorRT partition replaced by our runtime. The whole model and each
        isolated layer are built here, so both run the same way."""
        exported = self.torch.export.export(module, args)
        context, extra, self.compile_api = compile_options(self.torch_tensorrt)
        try:
            with context:
                compiled = self.torch_tensorrt.dynamo.compile(
                    exported,
                    inputs=list(args),
                    enabled_precisions={args[0].dtype},
                    optimization_level=self.optimization_level,
                    min_block_size=min_block_size,
                    max_aux_streams=self.max_aux_streams,
                    **extra,
                )
        except Exception as exc:  # conversion failures come in many types
            raise BackendUnavailable(
                f"Torch-TensorRT could not compile {what}: {type(exc).__name__}: {exc}"
            ) from exc
        partitions = []
        for name, (data, inputs, outputs) in self._find_partitions(compiled):
            label = name if what == "the model" else f"{name} of {what}"
            engine = _Engine(self.trt, data, inputs, outputs, label=label)
            parent, _, attr = name.rpartition(".")
            setattr(compiled.get_submodule(parent) if parent else compiled, attr, engine)
            partitions.append((name, engine))
        if not partitions:
            raise BackendUnavailable(
                f"the compiled graph of {what} has no TensorRT partition that Torch-TensorRT "
                f"{self.torch_tensorrt.__version__} exposes with its engine"
            )
        return compiled, partitions

    def isolated_layers(self) -> list:
        """One unit per leaf-module call of the torch model, in call order, each compiled alone
        (``_build``: the same export, Torch-TensorRT settings and runtime as the whole model,
        but ``min_block_size=1``: one op would otherwise be left to PyTorch) and run on the
        input it got in one forward pass of the uncompiled model on the device in the run's
        dtype. Each ``run`` calls the unit's compiled graph once, which enqueues its engine
        through our ``_Engine``. The compile is the layer's ``prepare``, so a unit that does not
        compile (or leaves nothing to TensorRT) gets its error in its row and the others go on;
        its engine is dropped when its row is done.

        The mapping rule: a unit is one leaf-module call, named as the PyTorch backend names it
        (``<qualified name>:<type>``, ``#n`` for repeated calls), so the two backends' tables
        line up row for row. Units are not grouped into the fused layers of the whole model's
        engine: the engine layer names do not say reliably which modules they hold. In the real
        inspector output (``tests/fixtures/tensorrt``) many carry no module path (Myelin's
        ``__myl_MaxMinCas_myl2_0``, resnet18's and vgg16's ``[max_pool2d_default]``), nested
        paths are rewritten (mobilenet_v2's ``/features_0/0/`` for ``features.0.0``,
        ``/features/1/conv_0/0/`` for ``features.1.conv.0.0``), a ``ForeignNode`` names only the
        ends of its span, and fused layers hold functional ops that are no module (resnet18's
        ``conv2 + bn2 + add + relu``: the residual add), so a chain of the grouped modules would
        not compute what the fused layer does. The path format itself changed between versions
        (``get_node_name`` in ``dynamo/conversion/converter_utils.py``: a rewritten
        ``nn_module_stack`` key in v2.4.0, the dotted module name from v2.8.0)."""
        from model.isolation import capture_leaf_calls
        from model.torch_backend import TRT_TYPES

        if self.model is None:
            raise BackendUnavailable(
                "isolation needs the torch model to capture and compile each layer; an engine "
                "file has none"
            )
        return [
            self._unit(call, module, args, TRT_TYPES.get(type(module).__name__))
            for call, module, args in capture_leaf_calls(self.model, self.input)
        ]

    def _unit(self, call: str, module, args: tuple, trt_type: str | None):
        """The ``Layer`` of one leaf call: compiled in ``prepare``, dropped in ``release``."""
        from model.isolation import Layer

        held: dict = {}
        unit = module
        if getattr(module, "inplace", False):  # relu_ on a graph input: export it out of place
            unit = copy.copy(module)  # (the same op; the shared model keeps its module)
            unit.inplace = False

        def prepare() -> None:  # export refuses to trace inside the isolation's inference_mode
            with self.torch.inference_mode(False), self.torch.no_grad():
                held["compiled"], _ = self._build(unit, args, 1, f"layer {call}")

        def run():
            return held["compiled"](*args)

        return Layer(call, trt_type or type(module).__name__, run, prepare, held.clear)

    @staticmethod
    def _find_partitions(compiled) -> list[tuple[str, tuple]]:
        """(name, ``partition_engine``) of each TensorRT partition in execution order (graph
        order where the graph is FX)."""
        found = {n: partition_engine(m) for n, m in compiled.named_modules() if n}
        found = {n: engine for n, engine in found.items() if engine is not None}
        names = list(found)
        graph = getattr(compiled, "graph", None)
        if graph is not None:
            order = [
                str(node.target)
                for node in graph.nodes
                if node.op == "call_module" and str(node.target) in names
            ]
            names = order + [n for n in names if n not in order]
        return [(n, found[n]) for n in names]

    def synchronize(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def infer(self) -> None:
        with self.torch.inference_mode():
            self.compiled(self.input)

    def attach_profilers(self) -> None:
        profiler_class = _make_profiler_class(self.trt)
        for name, engine in self.partitions:
            profiler = profiler_class()
            engine.context.enqueue_emits_profile = False  # report after our end stamp
            engine.context.profiler = profiler
            engine.profiling = True
            self._profilers[name] = profiler

    def _streams(self, name: str) -> dict[str, int]:
        return {
            _layer_name(layer): int(layer.get("StreamId", 0)) if isinstance(layer, dict) else 0
            for layer in self._layers[name]
        }

    def profiled_infer(self, anchor_ns: int) -> list[Segment]:
        for name, engine in self.partitions:
            self._profilers[name].times.clear()
            engine.span = None
        self.infer()
        segments = []
        for name, engine in self.partitions:
            times = self._profilers[name].times
            expected = Counter(_layer_name(layer) for layer in self._layers[name])
            if engine.span is None or Counter(n for n, _ in times) != expected:
                self._dropped += 1
                return []
            streams = self._streams(name)
            segments.append(
                Segment(
                    engine.span[0],
                    [(layer, ms, None) for layer, ms in times],
                    end_ns=engine.span[1],
                    streams=[streams[layer] for layer, _ in times],
                )
            )
        self._kept += 1
        if len(self._slack_ms) < 100_000:  # bounded: enough for the distribution
            self._slack_ms.extend(s.slack_ns / 1e6 for s in segments)
        return segments

    def profiling_report(self) -> dict:
        return {
            "kept_runs": self._kept,
            "dropped_runs": self._dropped,
            "slack_ms": _distribution(self._slack_ms),
            "slack_rule": "equal shares before each main-stream layer; last ends at the end stamp",
        }

    def engine_info(self) -> dict:
        return {"Layers": [layer for name, _ in self.partitions for layer in self._layers[name]]}

    def describe(self) -> dict:
        detailed = all(isinstance(layer, dict) for name, _ in self.partitions
                       for layer in self._layers[name])  # fmt: skip
        info = {
            "device": "cuda" if self.cuda else "cpu",
            "torch": self.torch.__version__,
            "torch_tensorrt": self.torch_tensorrt.__version__,
            "tensorrt": self.trt.__version__,
            "engines_from": self.engine_file or "torch_tensorrt.dynamo.compile",
            "build_verbosity_via": self.compile_api,
            "profiling_verbosity": "DETAILED" if detailed else "LAYER_NAMES_ONLY",
            "max_aux_streams": (
                "as built"
                if self.engine_file
                else "tensorrt"
                if self.max_aux_streams is None
                else self.max_aux_streams
            ),
            "runtime": "tensorrt.Runtime + IExecutionContext.execute_async_v3 (this suite's)",
            "partitions": [
                {
                    "name": name,
                    "layers": len(self._layers[name]),
                    "aux_stream_layers": sum(1 for s in self._streams(name).values() if s != 0),
                }
                for name, _ in self.partitions
            ],
        }
        if self.cuda:
            info["gpu_name"] = self.torch.cuda.get_device_name()
        return info
