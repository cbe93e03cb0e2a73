"""``torch_tensorrt.dynamo`` double: ``compile`` splits the engine fixture's layers into TensorRT
partitions (``EVB_TRT_DOUBLE_PARTITIONS``, default 1, at most one per op of the graph) with a
PyTorch op between two, each built by the ``tensorrt`` double's builder. Any exported program
compiles (a whole model or one module alone) and gets the fixture's engine, but a graph with no
op, or fewer ops than ``min_block_size``, is returned with no TensorRT partition and a warning,
as ``compile_module`` in ``dynamo/_compiler.py`` does at v2.4.0, v2.8.0 and v2.13.0 (every
``call_function`` node of the exported graph counts as a supported op here; upstream counts the
nodes with a converter after its decompositions). What each version does is in
``torch_tensorrt.__doc__``."""

from __future__ import annotations

import logging
import warnings

import tensorrt as trt
import torch
from torch import fx, nn

import torch_tensorrt

VERSION = torch_tensorrt.VERSION
COMPILE_CALLS: list[dict] = []
TREX_ERROR = (
    "Profiling with TREX can only be enabled when using the C++ runtime. Python runtime "
    "profiling only support cudagraph visualization."
)
CUDAGRAPH_ERROR = (
    "Profiling with Cudagraph can only be enabled when using the Python runtime. C++ runtime "
    "profiling only support TREX/Perfetto visualization."
)
_DEBUGGER: list = []  # the active Debugger's settings, if any


class _DebuggerDouble:
    """``Debugger`` (v2.8.0 ``dynamo/debug/_Debugger.py``): a context manager."""

    def __init__(
        self,
        log_level: str = "debug",
        capture_fx_graph_before=None,
        capture_fx_graph_after=None,
        save_engine_profile: bool = False,
        profile_format: str = "perfetto",
        engine_builder_monitor: bool = True,
        logging_dir: str = "/tmp/torch_tensorrt/debug_logs",
        save_layer_info: bool = False,
    ) -> None:
        if log_level not in ("debug", "info", "warning", "error", "internal_errors", "graphs"):
            raise ValueError(f"Invalid level: {log_level}")
        self.save_engine_profile = save_engine_profile
        self.profile_format = profile_format
        self.engine_builder_monitor = engine_builder_monitor

    def __enter__(self) -> None:
        _DEBUGGER.append(self)

    def __exit__(self, *exc) -> None:
        _DEBUGGER.remove(self)


class _CppEngine:
    """Stands in for ``torch.classes.tensorrt.Engine``: runs its own context; no ``serialize``."""

    def __init__(self, data: bytes) -> None:
        self._engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(data)
        self._context = self._engine.create_execution_context()


def _run(context, names: list[str], args, outputs: list[torch.Tensor]):
    for name, x in zip(names, args, strict=True):
        context.set_input_shape(name, tuple(x.shape))
        context.set_tensor_address(name, x.data_ptr())
    for i, out in enumerate(outputs):
        context.set_tensor_address(context.engine.get_tensor_name(len(names) + i), out.data_ptr())
    if not context.execute_async_v3(0):
        raise RuntimeError("enqueue failed")
    return outputs[0]


class PythonTorchTensorRTModule(nn.Module):
    """v2.4.0 / v2.8.0 ``dynamo/runtime/_PythonTorchTensorRTModule.py``."""

    def __init__(self, serialized_engine: bytes, input_names, output_names, name: str = ""):
        super().__init__()
        if VERSION >= (2, 8):
            self.serialized_engine = serialized_engine
        self.engine = trt.Runtime(trt.Logger()).deserialize_cuda_engine(serialized_engine)
        self.context = self.engine.create_execution_context()
        self.input_names, self.output_names, self.name = input_names, output_names, name
        self.profiling_enabled = False
        self._out = [torch.empty(self.engine.get_tensor_shape(n)) for n in output_names]

    def forward(self, *inputs):
        return _run(self.context, self.input_names, inputs, self._out)

    def enable_profiling(self, profiler=None) -> None:
        if not self.context.profiler:
            self.context.profiler = trt.Profiler() if profiler is None else profiler
        self.profiling_enabled = True

    def disable_profiling(self) -> None:
        self.context = self.engine.create_execution_context()
        self.profiling_enabled = False


_PythonModule = PythonTorchTensorRTModule


class TorchTensorRTModule(nn.Module):
    """v2.4.0 / v2.8.0 / v2.13.0 ``dynamo/runtime/_TorchTensorRTModule.py``: the C++ runtime."""

    def __init__(
        self, serialized_engine: bytes, input_binding_names, output_binding_names, name=""
    ):
        super().__init__()
        if VERSION >= (2, 8):
            self.serialized_engine = serialized_engine
        self.engine = _CppEngine(serialized_engine)
        self.input_binding_names = input_binding_names
        self.output_binding_names = output_binding_names
        self.name = name
        self.profiling_enabled = False
        engine = self.engine._engine
        self._out = [torch.empty(engine.get_tensor_shape(n)) for n in output_binding_names]

    def forward(self, *inputs):
        return _run(self.engine._context, self.input_binding_names, inputs, self._out)

    def enable_profiling(self, profiling_results_dir=None, profile_format="perfetto") -> None:
        self.profiling_enabled = True  # the C++ engine writes trace files; nothing reaches Python


class _Graph(nn.Module):
    def __init__(self, parts: list[nn.Module]) -> None:
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
        return isinstance(m, (_PythonModule, TorchTensorRTModule)) or (
            super().is_leaf_module(m, qualname)
        )


def _verbosity(debug: bool) -> int:
    """``_TRTInterpreter`` of each version: when the builder gets DETAILED."""
    if VERSION < (2, 8):
        detailed = debug
    elif VERSION < (2, 13):
        detailed = bool(_DEBUGGER) and _DEBUGGER[-1].save_engine_profile
    else:
        detailed = bool(_DEBUGGER)
    return trt.ProfilingVerbosity.DETAILED if detailed else trt.ProfilingVerbosity.LAYER_NAMES_ONLY


def _check_debugger(python_runtime: bool) -> None:
    """``_compiler.py`` (v2.8.0–v2.13.0): the profile format must suit the runtime."""
    if VERSION < (2, 8) or not _DEBUGGER or not _DEBUGGER[-1].save_engine_profile:
        return
    fmt = _DEBUGGER[-1].profile_format
    if python_runtime and fmt != "cudagraph":
        raise ValueError(TREX_ERROR)
    if not python_runtime and fmt == "cudagraph":
        raise ValueError(CUDAGRAPH_ERROR)


def _plans(exported_program, inputs, enabled_precisions, max_aux_streams, debug, n):
    """(serialized engine, input names, output names) per partition."""
    layers, times = trt.fixture_layers()
    size = -(-len(layers) // n)
    x = inputs[0]
    dtype = str(next(iter(enabled_precisions or {x.dtype}))).replace("torch.", "")
    with torch.no_grad():
        out_shape = tuple(exported_program.module()(*inputs).shape)
    plans = []
    for i in range(n):
        name_in = "x" if i == 0 else f"input_{i}"
        name_out = "output0" if i == n - 1 else f"output_{i}"
        shape_in = tuple(x.shape) if i == 0 else out_shape
        data = trt._build(
            layers[i * size : (i + 1) * size],
            times[i * size : (i + 1) * size],
            [(name_in, shape_in, dtype)],
            [(name_out, out_shape, dtype)],
            _verbosity(debug),
            max_aux_streams,
        )
        plans.append((data, [name_in], [name_out]))
    return plans


def _partitions() -> int:
    import os

    return int(os.environ.get("EVB_TRT_DOUBLE_PARTITIONS") or 1)


def compile(
    exported_program,
    inputs=None,
    *,
    enabled_precisions=None,
    optimization_level=None,
    min_block_size=5,
    max_aux_streams=None,
    use_python_runtime=False,
    **kwargs,
):
    """Partitions of the fixture's layers in an FX graph, as each version builds and wraps them."""
    debug = bool(kwargs.pop("debug", False))
    if VERSION >= (2, 8) and debug:
        warnings.warn("`debug` is deprecated. Please use Debugger", DeprecationWarning, 2)
    if VERSION >= (2, 13) and use_python_runtime:
        warnings.warn("use_python_runtime is deprecated", DeprecationWarning, 2)
    python_runtime = use_python_runtime and VERSION < (2, 13)
    COMPILE_CALLS.append(
        {
            "enabled_precisions": enabled_precisions,
            "debug": debug,
            "use_python_runtime": use_python_runtime,
            "optimization_level": optimization_level,
            "min_block_size": min_block_size,
            "max_aux_streams": max_aux_streams,
            "debugger": _DEBUGGER[-1].__dict__.copy() if _DEBUGGER else None,
            "inputs": [tuple(x.shape) for x in inputs or []],  # what was compiled (the tests')
            "ops": sum(n.op == "call_function" for n in exported_program.graph.nodes),
            **kwargs,
        }
    )
    _check_debugger(python_runtime)
    ops = COMPILE_CALLS[-1]["ops"]
    if ops == 0 or ops < min_block_size:
        logging.getLogger("torch_tensorrt.dynamo._compiler").warning(
            f"{ops} supported operations detected in subgraph containing {ops} computational "
            f"nodes. Skipping this subgraph, since min_block_size was detected to be "
            f"{min_block_size}"
        )
        return exported_program.module()
    module = _PythonModule if python_runtime else TorchTensorRTModule
    n = min(_partitions(), ops)
    parts = [
        module(data, ins, outs, name=f"_run_on_acc_{i}")
        for i, (data, ins, outs) in enumerate(
            _plans(exported_program, inputs, enabled_precisions, max_aux_streams, debug, n)
        )
    ]
    graph = _Graph(parts)
    return fx.GraphModule(graph, _Tracer().trace(graph))


def _serialized_engine(exported_program, inputs=None, *, enabled_precisions=None,
                       max_aux_streams=None, debug=False, **kwargs) -> bytes:  # fmt: skip
    """The whole model as one engine (``convert_module_to_trt_engine`` in 2.4,
    ``convert_exported_program_to_serialized_trt_engine`` from 2.8)."""
    plan = _plans(exported_program, inputs, enabled_precisions, max_aux_streams, debug, 1)
    return plan[0][0]


if VERSION < (2, 8):
    convert_module_to_trt_engine = _serialized_engine
else:
    convert_exported_program_to_serialized_trt_engine = _serialized_engine
    Debugger = _DebuggerDouble
if VERSION >= (2, 13):
    del PythonTorchTensorRTModule
