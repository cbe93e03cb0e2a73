"""PNG plots inside a model folder (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.layout import replacing

PHASES = [
    ("load", "#e5e5e5"),
    ("compile", "#bbbbbb"),
    ("warmup", "#ffd27f"),
    ("timing", "#9ecae1"),
    ("profiling", "#a1d99b"),
]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def power_timeline(path: Path, power, phases: dict, title: str) -> None:
    """Board power over the whole run, with the profiler's phases shaded."""
    plt = _pyplot()
    t0 = power.t_ns[0]
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.plot((power.t_ns - t0) / 1e9, power.board_uw / 1e6, lw=0.6, color="black")
    for name, color in PHASES:
        if phases.get(name):
            lo, hi = phases[name]
            ax.axvspan((lo - t0) / 1e9, (hi - t0) / 1e9, color=color, alpha=0.5, label=name)
    ax.set_xlabel("time since the first sample (s)")
    ax.set_ylabel("board-input power (W)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def folded_power(path: Path, centres_us, means_uw, counts, layers, title: str) -> None:
    """Folded power over one inference, with layer boundaries."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ok = counts > 0
    ax.step(centres_us[ok], means_uw[ok] / 1e6, where="mid", color="tab:red", lw=1)
    for start in layers["window_start_us"]:
        ax.axvline(start, color="grey", lw=0.3)
    ax.set_xlabel("time since inference start (µs); grey lines: layer starts (median)")
    ax.set_ylabel("folded board power (W)")
    ax.set_title(title)
    fig.tight_layout()
    _save(fig, path)


def top_layers(path: Path, layers, title: str, top: int = 15, method: str = "folded") -> None:
    """The layers with the longest median runtime and with the most energy (by ``method``)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.3 * top + 1.5))
    for ax, column, label in (
        (axes[0], "median_runtime_ms", "median runtime (ms)"),
        (axes[1], "energy_uJ", f"energy per inference (µJ, {method})"),
    ):
        best = layers.dropna(subset=[column]).nlargest(top, column)[::-1]
        names = [n if len(n) <= 40 else n[:18] + "…" + n[-20:] for n in best["layer_name"]]
        ax.barh(np.arange(len(best)), best[column], color="tab:blue")
        ax.set_yticks(np.arange(len(best)), names, fontsize=7)
        ax.set_xlabel(label)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: Path) -> None:
    """Write the figure as PNG through a temporary file (never a half-written plot)."""
    with replacing(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    _pyplot().close(fig)
