"""Rebuild each layer's execution window on the power logger's clock.

TensorRT reports layer times in a burst after the inference has finished, so the host time of
the callback is not when a layer ran (``method.md``). A window is rebuilt from a host anchor
taken after a synchronize, right before the work started, plus either the layer's own measured
offset (CUDA events, host hooks) or the cumulative layer times in execution order (TensorRT).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Segment:
    """Layers that ran one after another from one host anchor (one TensorRT partition, or one
    whole inference). ``layers`` holds (name, latency ms, offset ns from the anchor or None)."""

    anchor_ns: int
    layers: list[tuple[str, float, int | None]]


def layer_windows(segments: list[Segment]) -> list[tuple[str, float, int, int]]:
    """(name, latency ms, start ns, end ns) per layer, in execution order."""
    windows = []
    for segment in segments:
        cursor = segment.anchor_ns
        for name, ms, offset in segment.layers:
            start = segment.anchor_ns + offset if offset is not None else cursor
            end = start + round(ms * 1e6)
            windows.append((name, ms, start, end))
            cursor = end
    return windows
