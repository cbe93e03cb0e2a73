"""The sampling loop: fixed rate on absolute deadlines, streamed to disk, never busy-waiting.

Files written into ``out_dir`` (``prefix`` is the model name, or ``idle``):

- ``<prefix>_power_log.log``: the downstream raw format ``timestamp,voltage_mV,current_mA`` of
  the board-input rail (only where the sensor gives voltage and current);
- ``<prefix>_power_rails.csv``: every rail, with ``mono_ns`` (the join clock), ``read_ns`` (how
  long the read took), the wall-clock string and ``board_uW``;
- ``<prefix>_power_summary.json``: written at stop (samples, achieved rate, gaps, errors,
  distinct updates, schedule lateness, sensor configuration).

On schedule the loop only reads (``Sensor.read_raw``: one ``os.pread`` per file) and keeps the
raw sample. Every ``WRITE_S`` it decodes the batch, formats it column by column and writes each
file with one ``os.write``, so the files always end on a whole line and a killed logger leaves
valid data up to its last write (at most ``WRITE_S`` old, well inside the 250 ms promise).
"""

from __future__ import annotations

import ctypes
import errno
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from common.clock import Clock
from common.layout import LayoutError, power_files, write_json
from common.linefile import LineWriter
from power.sensor import Sensor

WRITE_S = 0.1  # decode, format and write the pending samples this often
HIST_BIN_NS = 10_000  # lateness histogram: 10 µs bins up to 100 ms
HIST_BINS = 10_000

Batch = list[tuple[int, int, int, object]]  # (due, t0, t1, raw sample): t0/t1 around the read
SampleHook = Callable[[np.ndarray, np.ndarray], None]  # (stamps, board µW) of a batch


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
        self.counts = np.zeros(HIST_BINS + 1, dtype=np.int64)
        self.max_ns = 0

    def add(self, ns: np.ndarray) -> None:
        if len(ns):
            bins = np.minimum(np.maximum(ns, 0) // HIST_BIN_NS, HIST_BINS)
            self.counts += np.bincount(bins, minlength=HIST_BINS + 1)
            self.max_ns = max(self.max_ns, int(ns.max()))

    def percentile_us(self, q: float) -> float | None:
        n = int(self.counts.sum())
        if not n:
            return None
        i = int(np.searchsorted(np.cumsum(self.counts), q / 100.0 * n))
        if i >= HIST_BINS:
            return self.max_ns / 1000.0
        return (i + 0.5) * HIST_BIN_NS / 1000.0


def _rows_text(stamp: np.ndarray, read_ns: np.ndarray, walls: list[str], table: np.ndarray) -> str:
    """The rails CSV lines of a batch: stamp, read time, wall string, then the ``table`` columns
    as decimal text (integers as integers, as sysfs gives them; other numbers in full; NaN as
    empty)."""
    head = (stamp.tolist(), read_ns.tolist(), walls)
    if np.isfinite(table).all() and (table == np.round(table)).all():
        line = "%d,%d,%s" + ",%d" * table.shape[1] + "\n"
        columns = table.astype(np.int64).T.tolist()
        return "".join(map(line.__mod__, zip(*head, *columns, strict=True)))
    cells = [["" if v != v else repr(v) for v in row] for row in table.tolist()]  # noqa: PLR0124
    cells = [[c[:-2] if c.endswith(".0") else c for c in row] for row in cells]
    return "".join(f"{s},{r},{w},{','.join(c)}\n" for s, r, w, c in zip(*head, cells, strict=True))


class _Output:
    """Decodes batches of raw samples into the files and keeps the running figures."""

    def __init__(
        self,
        sensor: Sensor,
        out_dir: Path,
        names: dict,
        clock: Clock,
        period: int,
        on_samples: SampleHook | None,
    ) -> None:
        self.sensor, self.out_dir, self.names, self.clock = sensor, out_dir, names, clock
        self.period, self.on_samples = period, on_samples
        self.rails = LineWriter(
            out_dir / names["rails_csv"],
            "mono_ns,read_ns,timestamp,board_uW," + ",".join(sensor.columns) + "\n",
        )
        self.raw: LineWriter | None = None
        self.errors: Counter[str] = Counter()
        self.lateness = _Histogram()
        self.read_time = _Histogram()
        self.samples = self.gaps = self.distinct = self.longest_gap = 0
        self.read_ns_sum = self.read_ns_max = 0
        self.first_stamp: int | None = None
        self.last_stamp: int | None = None
        self.last_key: np.ndarray | None = None
        self.power_min, self.power_max, self.power_sum = np.inf, -np.inf, 0.0

    def write(self, batch: Batch) -> None:
        """Decode, format and write a batch of raw samples, and update the figures."""
        if not batch:
            return
        dues, t0s, t1s, raws = zip(*batch, strict=True)
        values, failed = self.sensor.decode(list(raws))
        due, t0, t1 = (np.array(x, dtype=np.int64) for x in (dues, t0s, t1s))
        if failed:
            self.errors.update(failed.values())
            keep = np.ones(len(batch), dtype=bool)
            keep[list(failed)] = False
            values, due, t0, t1 = values[keep], due[keep], t0[keep], t1[keep]
            if not len(values):
                return
        stamp, read_ns = (t0 + t1) // 2, t1 - t0
        board = self.sensor.board_power_uw(values)
        walls = self.clock.wall_strings(stamp)
        self.rails.write(_rows_text(stamp, read_ns, walls, np.column_stack([board, values])))
        self.rails.flush()
        self._write_raw(values, walls)
        self._count(due, t0, stamp, read_ns, values, board)
        if self.on_samples is not None:
            self.on_samples(stamp, board)

    def _write_raw(self, values: np.ndarray, walls: list[str]) -> None:
        """The downstream raw format, for the rows with a usable board-input voltage."""
        vi = self.sensor.board_voltage_current(values)
        if vi is None:
            return
        mv, ma = vi
        usable = np.isfinite(mv) & np.isfinite(ma)
        if not usable.any():
            return
        if self.raw is None:
            self.raw = LineWriter(self.out_dir / self.names["raw_log"])
        if not usable.all():
            walls, mv, ma = np.asarray(walls)[usable].tolist(), mv[usable], ma[usable]
        rows = zip(walls, mv.tolist(), ma.tolist(), strict=True)
        self.raw.write("".join(map("%s,%.1f,%.1f\n".__mod__, rows)))
        self.raw.flush()

    def _count(
        self,
        due: np.ndarray,
        t0: np.ndarray,
        stamp: np.ndarray,
        read_ns: np.ndarray,
        values: np.ndarray,
        board: np.ndarray,
    ) -> None:
        """Update the running figures of the summary with one decoded batch."""
        self.lateness.add(t0 - due)
        steps = np.diff(stamp, prepend=stamp[0] if self.last_stamp is None else self.last_stamp)
        long_steps = steps[steps > 2 * self.period]
        if len(long_steps):
            self.gaps += len(long_steps)
            self.longest_gap = max(self.longest_gap, int(long_steps.max()))
        key_columns = self.sensor.key_columns
        keys = values if key_columns is None else values[:, list(key_columns)]
        if self.last_key is None:  # the first sample is a new value
            self.distinct += 1
            self.last_key = keys[:1]
        previous = np.vstack([self.last_key, keys[:-1]])
        same = (keys == previous) | (np.isnan(keys) & np.isnan(previous))
        self.distinct += int((~same.all(axis=1)).sum())
        self.last_key = keys[-1:]
        if self.first_stamp is None:
            self.first_stamp = int(stamp[0])
        self.last_stamp = int(stamp[-1])
        self.samples += len(stamp)
        self.power_min = min(self.power_min, float(board.min()))
        self.power_max = max(self.power_max, float(board.max()))
        self.power_sum += float(board.sum())
        self.read_time.add(read_ns)
        self.read_ns_sum += int(read_ns.sum())
        self.read_ns_max = max(self.read_ns_max, int(read_ns.max()))

    def summary(self, prefix: str, clock: Clock, run: dict, skipped: int, cpu_s: float) -> dict:
        """The ``<prefix>_power_summary.json`` content, from the running figures."""
        samples, first, last = self.samples, self.first_stamp, self.last_stamp
        span = (last - first) / 1e9 if samples > 1 else 0.0
        wall_s = (run["end_mono_ns"] - run["start_mono_ns"]) / 1e9
        return {
            "prefix": prefix,
            "simulated": self.sensor.simulated,
            "sensor": self.sensor.describe(),
            "clock_origin": {"mono_ns": clock.mono_ns, "wall_ns": clock.wall_ns},
            **run,
            "first_sample_mono_ns": first,
            "last_sample_mono_ns": last,
            "samples": samples,
            "achieved_hz": (samples - 1) / span if span > 0 else None,
            "gaps_over_two_periods": self.gaps,
            "longest_gap_ms": self.longest_gap / 1e6,
            "skipped_slots": skipped,
            "cpu_s": cpu_s,
            "cpu_per_wall_s": cpu_s / wall_s if wall_s > 0 else None,
            "errors": dict(self.errors),
            "distinct_updates": self.distinct,
            "lateness_us": {
                "p50": self.lateness.percentile_us(50),
                "p99": self.lateness.percentile_us(99),
                "max": self.lateness.max_ns / 1000.0,
            },
            "read_us": {
                "mean": self.read_ns_sum / samples / 1000.0 if samples else None,
                "p50": self.read_time.percentile_us(50),
                "p99": self.read_time.percentile_us(99),
                "max": self.read_ns_max / 1000.0,
            },
            "board_power_uW": {
                "min": self.power_min if samples else None,
                "mean": self.power_sum / samples if samples else None,
                "max": self.power_max if samples else None,
            },
            "files": {k: v for k, v in self.names.items() if k != "raw_log" or self.raw},
        }

    def finish(self, pending: Batch) -> LayoutError | None:
        """Write what is pending and close the files; the first write error, if any."""
        failure = None
        for step in (lambda: self.write(pending), self.rails.close, self._close_raw):
            try:
                step()
            except LayoutError as exc:
                failure = failure or exc
        return failure

    def _close_raw(self) -> None:
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
    on_samples: SampleHook | None = None,
) -> dict:
    """Sample ``sensor`` until ``should_stop()`` or ``duration_s``; return the summary.

    Samples are due at ``start + k × period`` (absolute deadlines, no drift); a late sample
    skips the slots it missed instead of bunching up. Each sample is stamped with the midpoint
    of ``monotonic_ns()`` before and after the read. Read errors are counted by errno and the
    sample skipped. ``on_ready`` runs after the first samples reached the disk; ``on_samples``
    gets each written batch's monotonic stamps and board power (used by the idle measurement).
    """
    clock = clock or Clock.from_env()
    hz = hz or sensor.default_hz()
    period = round(1e9 / hz)
    names = power_files(prefix)
    out_dir.mkdir(parents=True, exist_ok=True)
    tighten_timer_slack()
    out = _Output(sensor, out_dir, names, clock, period, on_samples)
    errors = out.errors
    pending: Batch = []
    skipped_slots = 0
    read_raw = sensor.read_raw
    monotonic_ns, sleep = time.monotonic_ns, time.sleep
    cpu_start = time.process_time()
    start = monotonic_ns()
    deadline = start + int(duration_s * 1e9) if duration_s is not None else 1 << 62
    write_ns = int(WRITE_S * 1e9)
    due = next_write = start
    failure: LayoutError | None = None
    try:
        while not should_stop():
            t0 = monotonic_ns()
            if t0 >= deadline:
                break
            try:
                raw = read_raw()
                pending.append((due, t0, monotonic_ns(), raw))  # t1 after the read
            except OSError as exc:
                errors[errno.errorcode.get(exc.errno or 0, str(exc))] += 1
            except ValueError:
                errors["EPARSE"] += 1
            if t0 >= next_write or on_ready is not None:
                try:
                    out.write(pending)
                except LayoutError as exc:  # a full disk: stop, every file ends on a whole line
                    failure, pending = exc, []
                    break
                pending = []
                next_write = t0 + write_ns
                if on_ready is not None and out.samples >= 2:
                    on_ready()
                    on_ready = None
            due += period
            now = monotonic_ns()
            if due <= now:
                missed = (now - due) // period + 1
                skipped_slots += missed
                due += missed * period
            sleep(max(0, min(due, deadline) - now) / 1e9)  # never past the deadline
    finally:
        failure = out.finish(pending) or failure
    end = time.monotonic_ns()
    run = {"start_mono_ns": start, "end_mono_ns": end, "target_hz": hz}
    summary = out.summary(prefix, clock, run, skipped_slots, time.process_time() - cpu_start)
    if failure is not None:
        summary["write_error"] = str(failure)
    try:
        write_json(out_dir / names["summary"], summary)
    except LayoutError as exc:
        failure = failure or exc
    if failure is not None:
        raise failure
    return summary
