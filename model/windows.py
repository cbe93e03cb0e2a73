"""Rebuild each layer's execution window on the power logger's clock.

TensorRT reports layer times in a burst after the inference has finished, so the host time of
the callback is not when a layer ran (``method.md``). A window is rebuilt from a host anchor
taken after a synchronize, right before the work started, plus either the layer's own measured
offset (CUDA events, host hooks) or the layer times in execution order (TensorRT).

Where a segment also has a host stamp taken after its work ended (``end_ns``: TensorRT), its
layers are placed so that the last one ends at that stamp. The slack (span − Σ layer times: host
set-up before the first kernel and gaps between kernels, which belong to no layer) is spread in
equal shares before each layer. Layers on an auxiliary stream (``streams[i] != 0``) ran
concurrently with main-stream layers: each starts with the main-stream layer reported before it
(they share its input) and does not advance the cursor. Every window lies inside
[anchor_ns, end_ns]; if Σ exceeds the span (clock granularity), main-stream windows are shortened
in proportion to fit it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Segment:
    """Layers that ran one after another from one host anchor (one TensorRT partition, or one
    whole inference). ``layers`` holds (name, latency ms, offset ns from the anchor or None,
    *values of the backend's extra record columns);
    ``end_ns`` the host stamp after the work ended, if taken; ``streams`` each layer's stream."""

    anchor_ns: int
    layers: list[tuple[str, float, int | None]]
    end_ns: int | None = None
    streams: list[int] | None = None

    @property
    def slack_ns(self) -> int | None:
        """Span minus the main-stream layer times, or None without an end stamp."""
        if self.end_ns is None:
            return None
        streams = self.streams or [0] * len(self.layers)
        busy = sum(
            round(ms * 1e6) for (_, ms, _), s in zip(self.layers, streams, strict=True) if s == 0
        )
        return self.end_ns - self.anchor_ns - busy


def _end_aligned(segment: Segment) -> list[tuple]:
    """(name, ms, start, end, slack ns, stream) per layer, the last main-stream one ending at
    ``end_ns`` (module docstring)."""
    streams = segment.streams or [0] * len(segment.layers)
    main = [
        round(ms * 1e6) for (_, ms, _), s in zip(segment.layers, streams, strict=True) if s == 0
    ]
    span = segment.end_ns - segment.anchor_ns
    slack = span - sum(main)
    shrink = min(1.0, span / sum(main)) if sum(main) else 1.0
    gap_total, n = max(slack, 0), max(len(main), 1)
    windows, cursor, i, last_start = [], segment.anchor_ns, 0, None
    for (name, ms, _), stream in zip(segment.layers, streams, strict=True):
        if stream != 0:
            begin = cursor if last_start is None else last_start
            start = max(segment.anchor_ns, min(begin, segment.end_ns - round(ms * 1e6)))
            end = min(start + round(ms * 1e6), segment.end_ns)
            windows.append((name, ms, start, end, slack, stream))
            continue
        start = min(cursor + gap_total * (i + 1) // n - gap_total * i // n, segment.end_ns)
        end, last_start = min(start + round(main[i] * shrink), segment.end_ns), start
        i += 1
        if i == len(main):
            end = segment.end_ns
        windows.append((name, ms, start, end, slack, stream))
        cursor = end
    return windows


def layer_windows(segments: list[Segment]) -> list[tuple]:
    """(name, latency ms, start ns, end ns) per layer, in execution order; segments with an end
    stamp add (slack ns, stream) to each tuple, layers with extra values (after their offset)
    add those."""
    windows = []
    for segment in segments:
        if segment.end_ns is not None:
            windows.extend(_end_aligned(segment))
            continue
        cursor = segment.anchor_ns
        for name, ms, offset, *extra in segment.layers:  # extra: the backend's record columns
            start = segment.anchor_ns + offset if offset is not None else cursor
            end = start + round(ms * 1e6)
            windows.append((name, ms, start, end, *extra))
            cursor = end
    return windows
