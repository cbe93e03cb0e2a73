"""What the benchmark passes need from a backend (TensorRT or PyTorch)."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

from model.windows import Segment

DTYPES = ("float16", "bfloat16", "float32")
BACKENDS = ("auto", "tensorrt", "torch")


def leaf_modules(model) -> list[tuple[str, object]]:
    """(name, module) of every leaf module of ``model``, named ``<qualified name>:<type>``
    (``model`` for a model that is itself a leaf): the layer names of both backends' tables."""
    return [
        (f"{name or 'model'}:{type(m).__name__}", m)
        for name, m in model.named_modules()
        if not list(m.children())
    ]


class CallNames:
    """The names of successive calls: a leaf's name, then ``name#2``, ``name#3``, ..."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def __call__(self, name: str) -> str:
        n = self.counts[name] = self.counts.get(name, 0) + 1
        return name if n == 1 else f"{name}#{n}"


class BackendUnavailable(RuntimeError):
    """The backend cannot run here (no TensorRT, no GPU, unsupported precision)."""


def torch_dtype(name: str):
    import torch

    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[name]


class Backend(ABC):
    """One compiled model and the three ways the passes run it."""

    name: str

    @abstractmethod
    def prepare(self, model, example) -> None:
        """Compile or place the model; ``example`` is the input tensor on the host."""

    @abstractmethod
    def infer(self) -> None:
        """One inference (may return before the device finished)."""

    cuda: bool = False

    def timed_infer(self) -> float:
        """One inference, timed with CUDA events on a GPU, else on the host clock; seconds."""
        return self.time_block(self.infer)

    def time_block(self, body) -> float:
        """Run ``body`` and return its duration in seconds: CUDA events around it on a GPU (the
        device's time; returns once the device finished), else the host clock."""
        if not self.cuda:
            t0 = time.perf_counter_ns()
            body()
            return (time.perf_counter_ns() - t0) / 1e9
        import torch

        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        body()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    supports_isolation = False

    def isolated_layers(self) -> list:
        """Each layer call with its captured real input, to run alone (``model.isolation``)."""
        raise NotImplementedError(f"the {self.name} backend has no isolation")

    @abstractmethod
    def attach_profilers(self) -> None:
        """From now on, ``profiled_infer`` reports per-layer times."""

    @abstractmethod
    def profiled_infer(self, anchor_ns: int) -> list[Segment] | None:
        """One profiled inference started right after ``anchor_ns`` (host monotonic, taken after
        a synchronize); returns when all its layer times are known. An empty list: the run was
        dropped (incomplete reports), and the backend counts it in ``profiling_report``. None:
        the layer times come later through ``completed``."""

    record_columns: tuple[str, ...] = ()
    """Columns this backend's windows add to the layer records (``model.output``)."""

    def profiling_report(self) -> dict:
        """Figures of the profiling pass for the summary JSON (e.g. dropped runs, slack)."""
        return {}

    def completed(self, run: int, segments: list[Segment] | None) -> list[tuple[int, list]]:
        """The (run, segments) whose layer times are known after ``profiled_infer`` of ``run``
        returned ``segments``: that run's, or, for a backend that collects its layer times in
        batches (``profiled_infer`` returned None), those of the batch that just ended."""
        return [] if segments is None else [(run, segments)]

    def pauses(self) -> list[tuple[int, int]]:
        """(start, end) host monotonic ns of the profiling pass's pauses since the last call:
        time that belongs to no inference (a kernel trace being collected), for the analysis to
        leave out."""
        return []

    def finish_profiling(self) -> list[tuple[int, list]]:
        """The (run, segments) still held back when the profiling pass ends."""
        return []

    @abstractmethod
    def synchronize(self) -> None:
        """Wait for the device."""

    @abstractmethod
    def engine_info(self) -> dict:
        """Layer information in the engine-inspector schema: ``{"Layers": [...]}``."""

    @abstractmethod
    def describe(self) -> dict:
        """Device, versions and partitions, for the summary JSON."""
