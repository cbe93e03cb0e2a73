"""What the benchmark passes need from a backend (TensorRT or PyTorch)."""

from __future__ import annotations

from abc import ABC, abstractmethod

from model.windows import Segment

DTYPES = ("float16", "bfloat16", "float32")
BACKENDS = ("auto", "tensorrt", "torch")


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

    @abstractmethod
    def timed_infer(self) -> float:
        """One inference, timed on the device (CUDA events) or host; seconds."""

    @abstractmethod
    def attach_profilers(self) -> None:
        """From now on, ``profiled_infer`` reports per-layer times."""

    @abstractmethod
    def profiled_infer(self, anchor_ns: int) -> list[Segment]:
        """One profiled inference started right after ``anchor_ns`` (host monotonic, taken after
        a synchronize); returns when all its layer times are known."""

    @abstractmethod
    def synchronize(self) -> None:
        """Wait for the device."""

    @abstractmethod
    def engine_info(self) -> dict:
        """Layer information in the engine-inspector schema: ``{"Layers": [...]}``."""

    @abstractmethod
    def describe(self) -> dict:
        """Device, versions and partitions, for the summary JSON."""
