"""The PyTorch backend: per-layer times of leaf modules.

Runs on CPU and CUDA, wherever TensorRT is absent. On the CPU, forward hooks read the monotonic
clock around each leaf call. On CUDA the model is captured once in a CUDA graph and every
inference (warm-up, timed, profiled) is a replay of it: an eager batch-1 model is bound by its
kernel launches (on an H100 the GPU was busy 17 % of an eager resnet50 inference), so its
layer times say more about Python than about the layers. Layer times then come from the
replayed kernels' device timestamps (``_KernelTrace``). A model that cannot be captured runs
eager, and the summary says why (``execution``). Layer info uses
the engine-inspector schema (``Name``, ``LayerType``, ``Inputs``/``Outputs`` with
``Dimensions``, ``Kernel``, ``Stride``, ``PrePadding``, ``PostPadding``, ``Dilation``, ...), with
convolutions, GEMMs and pooling typed as TensorRT types them so the downstream readers classify
them the same way. Precision on the CPU: float16 runs as float32 (most CPU kernels have no
half-precision path); the summary records both the asked and the used dtype.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import time

from model.backend import Backend, CallNames, leaf_modules, torch_dtype
from model.windows import Segment

KERNEL_BATCH = 200  # profiled CUDA inferences per kernel trace
RESUME_S = 0.5  # untraced inferences before each traced batch: power and clocks back to load
log = logging.getLogger("model")

TRT_TYPES = {
    "Conv2d": "CaskConvolution",
    "Linear": "CaskGemmConvolution",
    "MaxPool2d": "CaskPooling",
    "AvgPool2d": "CaskPooling",
    "AdaptiveAvgPool2d": "CaskPooling",
    "AdaptiveMaxPool2d": "CaskPooling",
}


def _pair(value) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [int(value), int(value)]


def _tensors(value) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in _tensors(v)]
    return []


def layer_parameters(module, out_shape) -> dict:
    """Inspector-style parameters of a convolution, GEMM or pooling module."""
    from torch import nn

    if isinstance(module, nn.Conv2d):
        pad = _pair(module.padding) if not isinstance(module.padding, str) else [0, 0]
        return {
            "ParameterType": "Convolution",
            "Kernel": _pair(module.kernel_size),
            "PaddingMode": "kEXPLICIT_ROUND_DOWN",
            "PrePadding": pad,
            "PostPadding": pad,
            "Stride": _pair(module.stride),
            "Dilation": _pair(module.dilation),
            "OutMaps": module.out_channels,
            "Groups": module.groups,
            "HasBias": int(module.bias is not None),
        }
    if isinstance(module, nn.Linear):
        return {
            "ParameterType": "Convolution",
            "Kernel": [1, 1],
            "PaddingMode": "kEXPLICIT_ROUND_DOWN",
            "PrePadding": [0, 0],
            "PostPadding": [0, 0],
            "Stride": [1, 1],
            "Dilation": [1, 1],
            "OutMaps": module.out_features,
            "Groups": 1,
            "HasBias": int(module.bias is not None),
        }
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        pad = _pair(module.padding)
        return {
            "ParameterType": "Pooling",
            "PoolingType": "MAX" if isinstance(module, nn.MaxPool2d) else "AVERAGE",
            "WindowSize": _pair(module.kernel_size),
            "PaddingMode": "kEXPLICIT_ROUND_DOWN",
            "PrePadding": pad,
            "PostPadding": pad,
            "Stride": _pair(module.stride or module.kernel_size),
        }
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return {
            "ParameterType": "Pooling",
            "PoolingType": "AVERAGE" if isinstance(module, nn.AdaptiveAvgPool2d) else "MAX",
            "OutputSize": list(out_shape[-2:]) if out_shape else None,
        }
    return {}


class TorchBackend(Backend):
    """PyTorch: on the CPU eager with hooks on every leaf module (profiling pass only); on CUDA
    replayed from a CUDA graph, layer times from the replayed kernels (``_KernelTrace``)."""

    name = "torch"
    supports_isolation = True

    def __init__(self, dtype: str, device: str | None = None) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cuda = self.device.type == "cuda"
        self.asked_dtype = dtype
        self.dtype = dtype if self.cuda or dtype != "float16" else "float32"
        self.layers: list[dict] = []
        self._calls: list[tuple[str, int, int]] = []  # (layer name, start, end) of one inference

    def prepare(self, model, example) -> None:
        dtype = torch_dtype(self.dtype)
        self.model = model.to(self.device, dtype)
        self.input = example.to(self.device, dtype)
        self.leaves = leaf_modules(model)
        self.layers = self._trace_layers()
        self.graph, self.execution, self.layer_kernels, self.prologue = None, "eager", None, 0
        self.record_columns = ("busy_ms",) if self.cuda else ()
        if self.cuda:
            self._use_graph()

    def _use_graph(self) -> None:
        """Replay a CUDA graph of the model from now on, if it can be captured and it launches
        the kernels the calibration counted per layer; else stay eager and say why."""
        cupti_for_graphs(self.torch)
        try:
            graph = self.capture(self.eager)
            self.layer_kernels, self.prologue = calibrate(self, graph)
        except Exception as exc:  # any capture failure: eager is still a valid measurement
            self.execution = f"eager (CUDA graph failed: {_cause(exc)})"[:300]
            log.warning("%s", self.execution)
            self.layer_kernels, self.prologue = calibrate(self, None)
            return
        self.graph, self.execution = graph, "cuda_graph"

    def capture(self, body):
        """A CUDA graph of ``body``, warmed up on a side stream first (as ``torch.cuda.graph``
        asks: lazy initialisations must not happen during capture)."""
        torch = self.torch
        current = torch.cuda.current_stream(self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(current)
        with torch.cuda.stream(side):
            for _ in range(3):
                body()
        current.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.inference_mode(), torch.cuda.graph(graph):
                body()
        finally:  # a capture that fails in capture_end leaves its own stream current
            torch.cuda.set_stream(current)
        return graph

    def _trace_layers(self) -> list[dict]:
        """One forward with shape hooks: inspector-style info per leaf call, in call order."""
        layers: list[dict] = []
        call_name = CallNames()

        def hook_for(name):
            def hook(module, inputs, output):
                call = call_name(name)
                outs = _tensors(output)
                layers.append(
                    {
                        "Name": call,
                        "LayerType": TRT_TYPES.get(type(module).__name__, type(module).__name__),
                        "TorchModule": type(module).__name__,
                        "Inputs": [
                            {
                                "Name": f"{call}.input{i}",
                                "Dimensions": list(t.shape),
                                "Format/Datatype": str(t.dtype),
                            }
                            for i, t in enumerate(_tensors(inputs))
                        ],
                        "Outputs": [
                            {
                                "Name": f"{call}.output{i}",
                                "Dimensions": list(t.shape),
                                "Format/Datatype": str(t.dtype),
                            }
                            for i, t in enumerate(outs)
                        ],
                        **layer_parameters(module, list(outs[0].shape) if outs else None),
                    }
                )

            return hook

        handles = [m.register_forward_hook(hook_for(name)) for name, m in self.leaves]
        try:
            with self.torch.inference_mode():
                self.model(self.input)
        finally:
            for handle in handles:
                handle.remove()
        return layers

    def eager(self) -> None:
        """One eager forward pass (hooks fire; a graph replay runs none)."""
        with self.torch.inference_mode():
            self.model(self.input)

    def infer(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self.eager()

    def isolated_layers(self) -> list:
        """Every leaf call in call order, with a copy of the input it got in one forward pass;
        each runs its module's ``forward`` alone (no hooks); on CUDA replayed from its own graph,
        captured in the layer's ``prepare``."""
        from model.isolation import Layer, capture_leaf_calls

        types = {layer["Name"]: layer["LayerType"] for layer in self.layers}
        layers = []
        for call, m, args in capture_leaf_calls(self.model, self.input):
            kind = types.get(call, type(m).__name__)
            run = lambda m=m, a=args: m.forward(*a)  # noqa: E731
            if self.graph is None:
                layers.append(Layer(call, kind, run))
                continue
            replay = _Replay(self, run)  # as in the model: replayed
            layers.append(Layer(call, kind, replay, replay.prepare, replay.release))
        return layers

    def attach_profilers(self) -> None:
        if self.cuda:
            self._kernels = _KernelTrace(self)
            return
        calls = self._calls

        def pre(name):
            def hook(module, inputs):
                calls.append((name, time.monotonic_ns(), None))

            return hook

        def post(name):
            def hook(module, inputs, output):
                _close(calls, name, time.monotonic_ns())

            return hook

        for name, module in self.leaves:
            module.register_forward_pre_hook(pre(name))
            module.register_forward_hook(post(name))

    def profiled_infer(self, anchor_ns: int) -> list[Segment] | None:
        if self.cuda:  # no hook: the kernels are traced and their times collected in batches
            self.infer()
            self.torch.cuda.synchronize()
            self._kernels.anchors.append(anchor_ns)
            return None
        self._calls.clear()
        self.infer()
        call_name = CallNames()
        layers = [
            (call_name(name), (end - start) / 1e6, start - anchor_ns)
            for name, start, end in self._calls
        ]
        return [Segment(anchor_ns, layers)]

    def completed(self, run, segments):
        if not self.cuda:
            return super().completed(run, segments)
        self._kernels.runs.append(run)
        return self._kernels.collect() if len(self._kernels.runs) >= KERNEL_BATCH else []

    def finish_profiling(self):
        return self._kernels.collect(last=True) if self.cuda else []

    def profiling_report(self) -> dict:
        return self._kernels.describe() if self.cuda else {"layer_times": "host clock in hooks"}

    def pauses(self) -> list[tuple[int, int]]:
        if not self.cuda:
            return []
        out, self._kernels.pauses = self._kernels.pauses, []
        return out

    def synchronize(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def engine_info(self) -> dict:
        return {"Layers": self.layers}

    def describe(self) -> dict:
        torch = self.torch
        info = {
            "device": str(self.device),
            "execution": self.execution,
            "dtype_asked": self.asked_dtype,
            "dtype_used": self.dtype,
            "torch": torch.__version__,
            "partitions": [{"name": self.execution.split()[0], "layers": len(self.layers)}],
        }
        if self.cuda:
            info["gpu_name"] = torch.cuda.get_device_name(self.device)
        return info


def cut_layers(
    kernels: list[tuple[int, int, str]], layers: list[tuple[str, int]]
) -> list[tuple[str, float, int, float]]:
    """One inference's kernels (start ns, end ns, name; in launch order) cut into its layers
    (name, number of kernels): (name, window ms, offset ns from the first kernel's start, busy
    ms) per layer. The windows tile the device span: each runs from the previous layer's end
    (the first kernel's start for the first layer) to the end of the layer's last kernel, so
    the device's gap before a layer's first kernel (its launch) is the layer's, as in TensorRT's
    per-layer times, and the layers add up to the inference. The busy time is the device time
    of the layer's own kernels (the union of their intervals)."""
    origin = cursor = kernels[0][0]
    out, j = [], 0
    for name, n in layers:
        start, busy, reach = cursor, 0, cursor
        for k_start, k_end, _ in sorted(kernels[j : j + n]):
            busy += max(0, k_end - max(k_start, reach))
            reach = max(reach, k_end)
        cursor, j = reach, j + n
        out.append((name, (cursor - start) / 1e6, start - origin, busy / 1e6))
    return out


def device_kernels(profiler) -> list[tuple[int, int, str]]:
    """(start ns, end ns, name) of every device activity in a finished trace, by start."""
    from torch.autograd import DeviceType

    events = profiler.profiler.kineto_results.events()
    out = [
        (e.start_ns(), e.end_ns(), e.name())
        for e in events
        if e.device_type() == DeviceType.CUDA and "sync" not in e.name().lower()
    ]
    out.sort()
    return out


def trace(torch, body) -> list[tuple[int, int, str]]:
    """The device kernels of ``body`` under CUPTI's kernel tracing (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        body()
        torch.cuda.synchronize()
    return device_kernels(prof)


def calibrate(backend: TorchBackend, graph) -> tuple[list[tuple[str, int]], int]:
    """(leaf call, kernels it launches) in call order, and the number of kernels before the
    first leaf call (the prologue: a graph replay's own kernels, such as the two fills of its
    RNG state in torch < 2.7, and the model's code before its first leaf), from one inference
    with a marker kernel (``torch.cuda._sleep(0)``) launched before each leaf call. With a CUDA
    ``graph``, the marked inference is a graph too, and ``graph`` must replay the same kernels
    in the same order (else RuntimeError: its kernels could not be cut into layers)."""
    torch = backend.torch
    calls: list[str] = []
    call_name = CallNames()

    def hook_for(name):
        def hook(module, inputs):
            calls.append(call_name(name))
            torch.cuda._sleep(0)

        return hook

    def marked() -> None:  # only the last pass counts (a capture warms up first)
        calls.clear()
        call_name.counts.clear()
        backend.eager()

    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in backend.leaves]
    try:
        body = marked if graph is None else backend.capture(marked).replay
        kernels = trace(torch, body)
    finally:
        for handle in handles:
            handle.remove()
    per_call: list[int] = []
    prologue = 0
    for _, _, name in kernels:
        if "spin_kernel" in name:
            per_call.append(0)
        elif per_call:
            per_call[-1] += 1
        else:
            prologue += 1
    if len(per_call) != len(calls):
        raise RuntimeError(f"calibration saw {len(per_call)} layer markers for {len(calls)} calls")
    if graph is not None:
        want = [name for *_, name in kernels if "spin_kernel" not in name]
        got = [name for *_, name in trace(torch, graph.replay)]
        if got != want:
            raise RuntimeError(f"the graph replays {len(got)} kernels, the marked one {len(want)}")
    return list(zip(calls, per_call, strict=True)), prologue


def cupti_for_graphs(torch) -> None:
    """What ``torch.profiler`` does before tracing CUDA graphs it knows of (ours it does not):
    below CUDA 12.6, CUPTI must not be torn down and re-initialised while graphs exist (a crash,
    per ``torch/profiler/profiler.py``); and CUPTI is initialised once before the first capture
    (``torch.profiler._utils._init_for_cuda_graphs``, pytorch issue 75504)."""
    from torch.torch_version import TorchVersion

    if TorchVersion(torch.version.cuda or "0.0") < "12.6":
        os.environ["DISABLE_CUPTI_LAZY_REINIT"] = "1"
        os.environ["TEARDOWN_CUPTI"] = "0"
    with torch.autograd.profiler.profile():
        pass


def _cause(exc: BaseException) -> str:
    """The error and, where it followed another (a failed capture's capture_end), that one."""
    text = f"{type(exc).__name__}: {exc}"
    if exc.__context__ is not None:
        text += f" (after {type(exc.__context__).__name__}: {exc.__context__})"
    return text


class _Replay:
    """A layer call replayed from its own CUDA graph, captured in ``prepare``.

    In the model, graph replays keep the GPU busy from one layer to the next; one short layer
    replayed alone would leave it idle while the host launches the next replay, and its power
    would be diluted by idle time. So the graph holds ``reps`` calls of the layer, enough for
    about ``REPLAY_S`` of device time per replay (``model.isolation`` counts each call as a run).
    """

    REPLAY_S = 0.5e-3
    PROBE = 8

    def __init__(self, backend: TorchBackend, body) -> None:
        self.backend, self.body, self.graph, self.reps = backend, body, None, 1

    def _many(self) -> None:
        for _ in range(self.reps):
            self.body()

    def prepare(self) -> None:
        """Time a graph of ``PROBE`` calls (its launch spread over them), then capture ``reps``."""
        self.reps = self.PROBE
        probe = self.backend.capture(self._many)
        seconds = min(self.backend.time_block(probe.replay) for _ in range(5)) / self.PROBE
        self.reps = max(1, min(256, math.ceil(self.REPLAY_S / max(seconds, 1e-7))))
        self.graph = probe if self.reps == self.PROBE else self.backend.capture(self._many)

    def release(self) -> None:
        self.graph = None

    def __call__(self) -> None:
        self.graph.replay()


class _KernelTrace:
    """Per-layer device times on CUDA without hooks in the timed inferences.

    Forward hooks with CUDA events serialize the launches and add their own launch gaps: the
    layer times of resnet50 fp16 summed to 1.34× the unprofiled inference. Here the profiled
    inferences run exactly as the unprofiled ones (graph replays, or eager where the model
    could not be captured), with only CUPTI's kernel tracing on (the PyTorch profiler, CUDA
    activity only). The backend's calibration (``calibrate``) tells how many kernels each leaf
    call launches, in order (kernels of functional code between leaves, such as resnet's
    residual add, go to the leaf before them). Each traced inference's kernels are then cut into
    layers in that order (``cut_layers``): a layer's time is its window, from the end of the
    previous layer's last kernel to the end of its own, so the layers tile the inference's
    device span; the device time of its own kernels is kept beside it (record column
    ``busy_ms``). Windows are placed at the host anchor + their offset from the inference's
    first kernel: early by the launch latency (µs).

    Eager, CUPTI's tracing of the runtime and driver calls adds a few µs of host time per launch
    and a batch-1 model is launch-bound, so the traced device span stretches: on an H100 (torch
    2.11, fp16, batch 1) Σ window medians / unprofiled median was 1.17 for resnet50 (1.74 for
    resnet18) and the busy times summed to 0.17 of it. A graph replay has no host work per
    kernel: 0.97 and 0.84 (``benchmarks/gpu_layer_sum.py``).
    """

    def __init__(self, backend: TorchBackend) -> None:
        self.backend = backend
        self.layers = backend.layer_kernels
        self.prologue = backend.prologue  # kernels of each inference before its first layer
        self.per_inference = self.prologue + sum(n for _, n in self.layers)
        self.anchors: list[int] = []  # host anchors of the inferences traced so far
        self.runs: list[int] = []  # and their run numbers
        self.dropped_batches = 0
        self.pauses: list[tuple[int, int]] = []  # (start, end) host ns of collections
        self.profiler = None
        self._start()

    def _start(self) -> None:
        """Run untraced inferences for ``RESUME_S``, then start the next trace. Collecting a
        trace keeps the host busy and the GPU idle (on an H100, about 1.5 s for 200 resnet50
        inferences: kineto processes each kernel record), so without this each traced batch
        would start on a GPU whose power and clocks fell back towards idle, and the power folded
        into its windows would be too low."""
        from torch.profiler import ProfilerActivity, profile

        deadline = time.monotonic() + RESUME_S
        while time.monotonic() < deadline:  # one at a time: the device time is RESUME_S too
            self.backend.infer()
            self.backend.synchronize()
        self.profiler = profile(activities=[ProfilerActivity.CUDA])
        self.profiler.start()

    def collect(self, last: bool = False) -> list[tuple[int, list[Segment]]]:
        """Stop the trace, cut its kernels into the held-back inferences, restart it. The time
        from the stop to the restart is a pause of the profiling pass (``pauses``)."""
        paused = time.monotonic_ns()
        self.profiler.stop()
        kernels = device_kernels(self.profiler)
        self.profiler = None
        gc.collect()  # a finished trace sits in reference cycles: ~0.6 MB per inference kept
        anchors, runs, self.anchors, self.runs = self.anchors, self.runs, [], []
        if not last:
            self._start()
        self.pauses.append((paused, time.monotonic_ns()))
        k, p = self.per_inference, self.prologue
        if len(kernels) != k * len(anchors):  # an unexpected kernel: this batch is dropped
            self.dropped_batches += 1
            return []
        return [
            (run, [Segment(anchor, cut_layers(kernels[i * k + p : (i + 1) * k], self.layers))])
            for i, (run, anchor) in enumerate(zip(runs, anchors, strict=True))
        ]

    def describe(self) -> dict:
        return {
            "layer_times": "device kernel times (CUPTI through torch.profiler), no hooks",
            "kernels_per_inference": self.per_inference,
            "kernels_before_the_first_layer": self.prologue,
            "kernel_batch": KERNEL_BATCH,
            "dropped_batches": self.dropped_batches,
        }


def _close(calls: list, name: str, end) -> None:
    """Set the end of the latest open call of ``name`` (calls nest only for containers)."""
    for i in range(len(calls) - 1, -1, -1):
        if calls[i][0] == name and calls[i][2] is None:
            calls[i] = (name, calls[i][1], end)
            return
    raise RuntimeError(f"post-hook of {name} without its pre-hook")
