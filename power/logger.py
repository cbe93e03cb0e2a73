"""The sampling loop: fixed rate on absolute deadlines, streamed to disk, never busy-waiting.

Files written into ``out_dir`` (``prefix`` is the model name, or ``idle``):

- ``<prefix>_power_log.log``: the downstream raw format ``timestamp,voltage_mV,current_mA`` of
  the board-input rail (only where the sensor gives voltage and current);
- ``<prefix>_power_rails.csv``: every rail, with ``mono_ns`` (the join clock), ``read_ns`` (how
  long the read took), the wall-clock string and ``board_uW``;
- ``<prefix>_power_summary.json``: written at stop (samples, achieved rate, gaps, errors,
  distinct updates, schedule lateness, sensor configuration).

Lines are collected in memory and written with one ``os.write`` at least every 250 ms, so the
files always end on a whole line and a killed logger leaves valid data up to its last write.
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from common.linefile import FLUSH_S, LineWriter
from power.clock import Clock
from power.sensor import Sensor

HIST_BIN_NS = 10_000  # lateness histogram: 10 µs bins up to 100 ms
HIST_BINS = 10_000


def file_names(prefix: str) -> dict[str, str]:
    """The names of the files the logger writes for ``prefix``."""
    return {
        "raw_log": f"{prefix}_power_log.log",
        "rails_csv": f"{prefix}_power_rails.csv",
        "summary": f"{prefix}_power_summary.json",
    }


def tighten_timer_slack(ns: int = 1000) -> None:
    """Ask Linux for ``ns`` timer slack (default 50 µs) so sleeps end on time; ignored elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(29, ns, 0, 0, 0)  # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


class _Histogram:
    """Bounded-memory distribution of non-negative nanosecond values."""

    def __init__(self) -> None:
        self.counts = [0] * (HIST_BINS + 1)
        self.n = 0
        self.max_ns = 0

    def add(self, ns: int) -> None:
        self.counts[min(max(ns, 0) // HIST_BIN_NS, HIST_BINS)] += 1
        self.n += 1
        self.max_ns = max(self.max_ns, ns)

    def percentile_us(self, q: float) -> float | None:
        if not self.n:
            return None
        target = q / 100.0 * self.n
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= target:
                return (i + 0.5) * HIST_BIN_NS / 1000.0
        return self.max_ns / 1000.0


def log_power(
    sensor: Sensor,
    out_dir: Path,
    prefix: str,
    hz: float | None = None,
    clock: Clock | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    duration_s: float | None = None,
    on_ready: Callable[[], None] | None = None,
    on_sample: Callable[[int, float], None] | None = None,
) -> dict:
    """Sample ``sensor`` until ``should_stop()`` or ``duration_s``; return the summary.

    Samples are due at ``start + k × period`` (absolute deadlines, no drift); a late sample
    skips the slots it missed instead of bunching up. Each sample is stamped with the midpoint
    of ``monotonic_ns()`` before and after the read. Read errors are counted by errno and the
    sample skipped. ``on_ready`` runs after the first samples reached the disk; ``on_sample``
    gets each sample's monotonic stamp and board power (used by the idle measurement).
    """
    clock = clock or Clock.from_env()
    hz = hz or sensor.default_hz()
    period = round(1e9 / hz)
    names = file_names(prefix)
    out_dir.mkdir(parents=True, exist_ok=True)
    tighten_timer_slack()
    columns = sensor.columns
    rails = LineWriter(
        out_dir / names["rails_csv"],
        "mono_ns,read_ns,timestamp,board_uW," + ",".join(columns) + "\n",
    )
    raw = None
    errors: Counter[str] = Counter()
    lateness = _Histogram()
    samples = gaps = skipped_slots = distinct = 0
    longest_gap = 0
    last_stamp = first_stamp = None
    last_row: list[float] | None = None
    power_min, power_max, power_sum = math.inf, -math.inf, 0.0
    read_ns_max = read_ns_sum = 0
    ready = on_ready is None
    start = time.monotonic_ns()
    deadline = start + int(duration_s * 1e9) if duration_s is not None else None
    due = start
    last_flush = start
    try:
        while not should_stop():
            t0 = time.monotonic_ns()
            if deadline is not None and t0 >= deadline:
                break
            lateness.add(t0 - due)
            try:
                row = sensor.read()
            except OSError as exc:
                errors[errno.errorcode.get(exc.errno or 0, str(exc))] += 1
                row = None
            except ValueError:
                errors["EPARSE"] += 1
                row = None
            t1 = time.monotonic_ns()
            if row is not None:
                stamp = (t0 + t1) // 2
                board = sensor.board_power_uw(row)
                wall = clock.wall_string(stamp)
                values = ",".join("" if math.isnan(v) else f"{v:.10g}" for v in row)
                rails.write(f"{stamp},{t1 - t0},{wall},{board:.1f},{values}\n")
                vi = sensor.board_voltage_current(row)
                if vi is not None:
                    if raw is None:
                        raw = LineWriter(out_dir / names["raw_log"], None)
                    raw.write(f"{wall},{vi[0]:.1f},{vi[1]:.1f}\n")
                if last_stamp is not None and stamp - last_stamp > 2 * period:
                    gaps += 1
                    longest_gap = max(longest_gap, stamp - last_stamp)
                if row != last_row:
                    distinct += 1
                last_row, last_stamp = row, stamp
                first_stamp = first_stamp if first_stamp is not None else stamp
                samples += 1
                power_min, power_max = min(power_min, board), max(power_max, board)
                power_sum += board
                read_ns_sum += t1 - t0
                read_ns_max = max(read_ns_max, t1 - t0)
                if on_sample is not None:
                    on_sample(stamp, board)
            if t1 - last_flush >= FLUSH_S * 1e9 or (not ready and samples >= 2):
                rails.flush()
                if raw is not None:
                    raw.flush()
                last_flush = t1
                if not ready and samples >= 2:
                    ready = True
                    on_ready()  # type: ignore[misc]
            due += period
            now = time.monotonic_ns()
            if due <= now:
                missed = (now - due) // period + 1
                skipped_slots += missed
                due += missed * period
            time.sleep((due - now) / 1e9)
    finally:
        rails.close()
        if raw is not None:
            raw.close()
    end = time.monotonic_ns()
    span = (last_stamp - first_stamp) / 1e9 if samples > 1 else 0.0
    summary = {
        "prefix": prefix,
        "simulated": sensor.simulated,
        "sensor": sensor.describe(),
        "clock_origin": {"mono_ns": clock.mono_ns, "wall_ns": clock.wall_ns},
        "start_mono_ns": start,
        "end_mono_ns": end,
        "first_sample_mono_ns": first_stamp,
        "last_sample_mono_ns": last_stamp,
        "target_hz": hz,
        "samples": samples,
        "achieved_hz": (samples - 1) / span if span > 0 else None,
        "gaps_over_two_periods": gaps,
        "longest_gap_ms": longest_gap / 1e6,
        "skipped_slots": skipped_slots,
        "errors": dict(errors),
        "distinct_updates": distinct,
        "lateness_us": {
            "p50": lateness.percentile_us(50),
            "p99": lateness.percentile_us(99),
            "max": lateness.max_ns / 1000.0,
        },
        "read_us": {
            "mean": read_ns_sum / samples / 1000.0 if samples else None,
            "max": read_ns_max / 1000.0,
        },
        "board_power_uW": {
            "min": power_min if samples else None,
            "mean": power_sum / samples if samples else None,
            "max": power_max if samples else None,
        },
        "files": {k: v for k, v in names.items() if k != "raw_log" or raw is not None},
    }
    (out_dir / names["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
