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

FORMAT_BATCH = 16  # samples formatted together
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


def _number(value: float) -> str:
    """Integers as integers (sysfs values are), other numbers in full, NaN as empty."""
    if value != value:  # noqa: PLR0124 - NaN test without a function call
        return ""
    as_int = int(value)
    return str(as_int) if as_int == value else repr(value)


class _Output:
    """Formats a batch of raw samples into the files and keeps the running figures."""

    def __init__(
        self,
        sensor: Sensor,
        out_dir: Path,
        names: dict,
        clock: Clock,
        period: int,
        on_sample: Callable[[int, float], None] | None,
    ) -> None:
        self.sensor, self.out_dir, self.names, self.clock = sensor, out_dir, names, clock
        self.period, self.on_sample = period, on_sample
        self.rails = LineWriter(
            out_dir / names["rails_csv"],
            "mono_ns,read_ns,timestamp,board_uW," + ",".join(sensor.columns) + "\n",
        )
        self.raw: LineWriter | None = None
        self.lateness = _Histogram()
        self.samples = self.gaps = self.distinct = self.longest_gap = 0
        self.read_ns_sum = self.read_ns_max = 0
        self.first_stamp: int | None = None
        self.last_stamp: int | None = None
        self.last_key: tuple | None = None
        self.power_min, self.power_max, self.power_sum = math.inf, -math.inf, 0.0

    def format(self, batch: list[tuple[int, int, int, list]]) -> None:
        """Turn raw samples into lines (written at the next ``flush``) and update figures."""
        sensor, wall_string = self.sensor, self.clock.wall_string
        for due, t0, t1, row in batch:
            stamp = (t0 + t1) // 2
            board = sensor.board_power_uw(row)
            wall = wall_string(stamp)
            values = ",".join(map(_number, row))
            self.rails.write(f"{stamp},{t1 - t0},{wall},{_number(board)},{values}\n")
            vi = sensor.board_voltage_current(row)
            if vi is not None:
                if self.raw is None:
                    self.raw = LineWriter(self.out_dir / self.names["raw_log"])
                self.raw.write(f"{wall},{float(vi[0]):.1f},{float(vi[1]):.1f}\n")
            self.lateness.add(t0 - due)
            if self.last_stamp is not None and stamp - self.last_stamp > 2 * self.period:
                self.gaps += 1
                self.longest_gap = max(self.longest_gap, stamp - self.last_stamp)
            key = sensor.update_key(row)
            if key != self.last_key:
                self.distinct += 1
            if self.first_stamp is None:
                self.first_stamp = stamp
            self.last_key, self.last_stamp = key, stamp
            self.samples += 1
            self.power_min, self.power_max = min(self.power_min, board), max(self.power_max, board)
            self.power_sum += board
            self.read_ns_sum += t1 - t0
            self.read_ns_max = max(self.read_ns_max, t1 - t0)
            if self.on_sample is not None:
                self.on_sample(stamp, board)

    def flush(self) -> None:
        self.rails.flush()
        if self.raw is not None:
            self.raw.flush()

    def close(self) -> None:
        self.rails.close()
        if self.raw is not None:
            self.raw.close()


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
    out = _Output(sensor, out_dir, names, clock, period, on_sample)
    errors: Counter[str] = Counter()
    pending: list[tuple[int, int, int, list]] = []  # (due, t0, t1, row), formatted in batches
    skipped_slots = 0
    read = sensor.read
    monotonic_ns, sleep = time.monotonic_ns, time.sleep
    cpu_start = time.process_time()
    start = monotonic_ns()
    deadline = start + int(duration_s * 1e9) if duration_s is not None else None
    flush_ns = int(FLUSH_S * 1e9)
    due = last_flush = start
    try:
        while not should_stop():
            t0 = monotonic_ns()
            if deadline is not None and t0 >= deadline:
                break
            try:
                row = read()
                pending.append((due, t0, monotonic_ns(), row))  # t1 after the read
            except OSError as exc:
                errors[errno.errorcode.get(exc.errno or 0, str(exc))] += 1
            except ValueError:
                errors["EPARSE"] += 1
            now = monotonic_ns()
            if len(pending) >= FORMAT_BATCH or on_ready is not None:
                out.format(pending)  # small batches: warm caches, short stalls
                pending = []
            if now - last_flush >= flush_ns or (on_ready is not None and out.samples >= 2):
                out.flush()
                last_flush = now
                if on_ready is not None and out.samples >= 2:
                    on_ready()
                    on_ready = None
            due += period
            if due <= now:
                missed = (now - due) // period + 1
                skipped_slots += missed
                due += missed * period
            sleep((due - now) / 1e9)
    finally:
        out.format(pending)
        out.close()
    end = time.monotonic_ns()
    cpu_s = time.process_time() - cpu_start
    samples, first_stamp, last_stamp = out.samples, out.first_stamp, out.last_stamp
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
        "gaps_over_two_periods": out.gaps,
        "longest_gap_ms": out.longest_gap / 1e6,
        "skipped_slots": skipped_slots,
        "cpu_s": cpu_s,
        "cpu_per_wall_s": cpu_s / ((end - start) / 1e9) if end > start else None,
        "errors": dict(errors),
        "distinct_updates": out.distinct,
        "lateness_us": {
            "p50": out.lateness.percentile_us(50),
            "p99": out.lateness.percentile_us(99),
            "max": out.lateness.max_ns / 1000.0,
        },
        "read_us": {
            "mean": out.read_ns_sum / samples / 1000.0 if samples else None,
            "max": out.read_ns_max / 1000.0,
        },
        "board_power_uW": {
            "min": out.power_min if samples else None,
            "mean": out.power_sum / samples if samples else None,
            "max": out.power_max if samples else None,
        },
        "files": {k: v for k, v in names.items() if k != "raw_log" or out.raw is not None},
    }
    (out_dir / names["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
