"""What one power reading means in time, per sensor: the one model that the simulated INA3221,
the phantom (``analysis.phantom``) and the sensor-aware estimator (``analysis.sensor_lsq``) share.

INA3221 (``jetson-sysfs.md`` §3): in continuous mode the chip converts channel 1's shunt
voltage, then channel 1's bus voltage, then channel 2's shunt and bus, then channel 3's, each for
one conversion time (1.1 ms by driver default), so every register refreshes once per cycle of
``2 × channels × conversion`` (6.6 ms) and the rails are staggered within it. A register holds the
mean of its input over the conversion that ended at its last refresh, quantized (current 8 mA
with the 5 mΩ shunts of the Orin Nano, i.e. 40 µV of shunt voltage; bus voltage 8 mV). The
chip's oscillator is not the CPU's: its period differs from the nominal one by up to a few
thousand ppm, so the refresh instants are recovered from the log itself (``fit_refresh``).

A board-power reading is taken as the bus voltage times the mean current over the current
register's conversion window: the bus voltage of an Orin Nano's input rail moves by well under
1 % with load, so the mean power over the shunt window is what the reading measures.

Sensors without a conversion model (NVML, ina238, unknown) are taken as instantaneous: a reading
is the power at its timestamp (``Instant``), and say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INA3221_DRIVERS = ("ina3221", "ina3221x")
INA3221_CONVERSION_S = (140e-6, 204e-6, 332e-6, 588e-6, 1.1e-3, 2.116e-3, 4.156e-3, 8.244e-3)


def ina3221_period_s(update_interval_ms: int, channels: int) -> float | None:
    """The refresh period behind the driver's ``update_interval`` (ms, rounded to the closest:
    channels × (bus + shunt conversion time), ``jetson-sysfs.md`` §5), from the datasheet's
    conversion times; None where none of them, or more than one, rounds to that value (then
    only the rounded figure is known)."""
    fits = [
        2 * channels * t
        for t in INA3221_CONVERSION_S
        if int(2 * channels * t * 1e3 + 0.5) == update_interval_ms
    ]
    return fits[0] if len(fits) == 1 else None


@dataclass(frozen=True)
class Ina3221:
    """Conversion schedule and resolution of one INA3221 chip (driver defaults: averaging 1)."""

    conversion_s: float = 1.1e-3
    channels: int = 3
    current_lsb_ma: float = 8.0
    voltage_lsb_mv: float = 8.0
    kind: str = "ina3221"

    @property
    def period_s(self) -> float:
        """Time between two refreshes of one register."""
        return 2 * self.channels * self.conversion_s

    def shunt_end_s(self, channel: int) -> float:
        """When, after a cycle starts, channel ``channel``'s (from 1) current register refreshes."""
        return (2 * (channel - 1) + 1) * self.conversion_s

    def bus_end_s(self, channel: int) -> float:
        """When, after a cycle starts, channel ``channel``'s voltage register refreshes."""
        return (2 * (channel - 1) + 2) * self.conversion_s

    def window_ns(self, period_ns: float) -> float:
        """Conversion window of one register, for a fitted period (the oscillator scales both)."""
        return period_ns / (2 * self.channels)

    def quantize_ma(self, ma: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(ma) / self.current_lsb_ma) * self.current_lsb_ma

    def quantize_mv(self, mv: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(mv) / self.voltage_lsb_mv) * self.voltage_lsb_mv

    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "conversion_ms": self.conversion_s * 1e3,
            "channels": self.channels,
            "nominal_period_ms": self.period_s * 1e3,
            "current_lsb_mA": self.current_lsb_ma,
            "voltage_lsb_mV": self.voltage_lsb_mv,
            "reading": "bus voltage × mean current over the conversion ending at the last refresh",
        }


@dataclass(frozen=True)
class Instant:
    """A reading is the power at its timestamp (no known conversion window)."""

    kind: str = "instant"

    def describe(self) -> dict:
        return {"kind": self.kind, "reading": "assumed instantaneous at the read's midpoint"}


def for_sensor(description: dict | None) -> tuple[Ina3221 | Instant, str | None]:
    """The model for a sensor as the logger described it (``<prefix>_power_summary.json``'s
    ``sensor``), and the board rail whose current register paces the readings (or None).

    Where the board input is a sum of rails (AGX Orin, AGX Xavier), the first rail's register
    paces the readings and the others' staggered windows are taken as the same window (an
    approximation of up to 4.4 ms per rail; not yet checked on such a board). A chip that
    averages several conversions (``samples`` > 1) reports a running low-pass
    (``jetson-sysfs.md`` §5), which the window model does not describe: it falls back to the
    instantaneous model rather than claim the INA3221's windows."""
    if not description:
        return Instant(), None
    rails = description.get("rails") or []
    board = (description.get("board_input_rails") or [None])[0]
    by_name = {r.get("name"): r for r in rails if isinstance(r, dict)}
    rail = by_name.get(board)
    if rail is None or rail.get("driver") not in INA3221_DRIVERS:
        return Instant(), None
    if rail.get("samples") not in (None, 1):
        return Instant(), None
    on_chip = [r for r in rails if r.get("chip") == rail.get("chip")]
    period = float(description.get("refresh_interval_s") or 0.0066)
    channels = rail.get("channels_enabled") or max(len(on_chip), 1)  # "NC" channels convert too
    return Ina3221(conversion_s=period / (2 * channels), channels=channels), board


@dataclass
class RefreshFit:
    """Refresh instants ``phase_ns + k × period_ns`` recovered from a log."""

    period_ns: float
    phase_ns: float
    nominal_period_ns: float
    residual_rms_ns: float
    changes: int
    reads_per_refresh: float
    phase_interval_ns: float = float("nan")  # width of the phase range all bounds allow
    bounds_met: float = float("nan")  # share of change points whose bounds hold a refresh

    @property
    def drift_ppm(self) -> float:
        return (self.period_ns / self.nominal_period_ns - 1.0) * 1e6

    def refreshes(self, start_ns: float, end_ns: float) -> np.ndarray:
        """Every fitted refresh instant in ``[start_ns, end_ns]``."""
        k0 = np.ceil((start_ns - self.phase_ns) / self.period_ns)
        k1 = np.floor((end_ns - self.phase_ns) / self.period_ns)
        return self.phase_ns + np.arange(k0, k1 + 1) * self.period_ns

    def describe(self) -> dict:
        return {
            "period_ms": self.period_ns / 1e6,
            "phase_mono_ns": self.phase_ns,
            "drift_ppm": self.drift_ppm,
            "residual_rms_ms": self.residual_rms_ns / 1e6,
            "change_points": self.changes,
            "phase_interval_ms": self.phase_interval_ns / 1e6,
            "bounds_met": self.bounds_met,
            "reads_per_refresh": self.reads_per_refresh,
        }


def _feasible(lo, hi, k, period, trim=0.0):
    """The phase interval that puts refresh ``k`` inside ``(lo, hi]`` for every change point
    (all but a share ``trim`` at each end) at this period, and its width (negative: none)."""
    if trim:
        low, high = np.quantile(lo - k * period, 1 - trim), np.quantile(hi - k * period, trim)
    else:
        low, high = np.max(lo - k * period), np.min(hi - k * period)
    return low, high, high - low


def _fit_bounds(lo, hi, k, a, b, trim=0.0) -> tuple[float, float, float]:
    """(period, phase, width): the period in ``[a, b]`` that leaves the widest feasible phase
    interval (a concave function of the period: golden-section search), and that interval."""
    golden = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - golden * (b - a), a + golden * (b - a)
        if _feasible(lo, hi, k, c, trim)[2] > _feasible(lo, hi, k, d, trim)[2]:
            b = d
        else:
            a = c
    period = (a + b) / 2
    low, high, width = _feasible(lo, hi, k, period, trim)
    return period, (low + high) / 2, width


BINS = 1024  # phase bins of the coverage count


def _coverage(lo: np.ndarray, hi: np.ndarray, period: float) -> tuple[int, float]:
    """How many change points one phase can satisfy at ``period`` (a refresh inside each's
    bounds), the middle of the phases that do (relative to ``lo[0]``), and the extent of the
    phases that satisfy all but 1 % more, on a grid of ``BINS`` bins."""
    a = (lo - lo[0]) / period * BINS
    b = (hi - lo[0]) / period * BINS
    start = np.floor(a).astype(np.int64)
    length = np.minimum(np.floor(b).astype(np.int64) - start + 1, BINS)
    first = start % BINS
    wraps = first + length > BINS
    ends = np.minimum(first + length, BINS)
    count = np.bincount(first, minlength=BINS + 1) - np.bincount(ends, minlength=BINS + 1)
    count[0] += int(wraps.sum())
    count -= np.bincount((first + length - BINS)[wraps], minlength=BINS + 1)
    covered = np.cumsum(count[:BINS])
    top = covered == covered.max()
    angle = 2 * np.pi * (np.flatnonzero(top) + 0.5) / BINS  # the middle of the best bins
    centre = np.angle(np.mean(np.exp(1j * angle))) % (2 * np.pi) / (2 * np.pi)
    near = covered >= covered.max() - 0.01 * len(lo)  # phases nearly as good: the uncertainty
    return int(covered.max()), centre * period, int(near.sum()) / BINS * period


def _periods(lo: np.ndarray, hi: np.ndarray, p0: float, max_drift: float = 0.01) -> list:
    """Candidate periods: those at which a single phase puts a refresh inside the most change
    points' bounds (coarse on the first 2 000, then fine on all), best first.

    Midpoints will not do: the logger reads nearly in step with the chip, so they sit on the
    read grid and alias. For the same reason a period mirrored about the read grid's can fit
    almost every bound of a short log; so the best two separate peaks are returned, and the
    caller keeps the one its model fits best.
    """
    head = min(len(lo), 2000)
    cycles = max((lo[head - 1] - lo[0]) / p0, 1.0)
    step = 0.05 / cycles
    coarse = p0 * (1 + np.arange(-max_drift, max_drift, step))
    scores = np.array([_coverage(lo[:head], hi[:head], p)[0] for p in coarse])
    first = int(np.argmax(scores))
    away = np.abs(np.arange(len(coarse)) - first) > 20
    picks = [first] + ([int(np.flatnonzero(away)[np.argmax(scores[away])])] if away.any() else [])
    total = max((lo[-1] - lo[0]) / p0, 1.0)
    out = []
    for i in picks:
        period = coarse[i]
        for width, grain in ((step, 0.05 / total), (0.05 / total, 0.005 / total)):
            fine = period * (1 + np.arange(-width, width, grain))
            found = [_coverage(lo, hi, p) for p in fine]
            best = int(np.argmax([f[0] for f in found]))
            period = fine[best]
        covered, phase, extent = found[best]
        out.append((covered, float(period), lo[0] + phase, extent))
    return sorted(out, reverse=True)


def _number(lo: np.ndarray, hi: np.ndarray, period: float, phase: float) -> np.ndarray:
    """Each change point's refresh: the one at (period, phase) inside its bounds, or the
    nearest."""
    mid = (lo + hi) / 2
    candidates = np.round((mid - phase) / period)[:, None] + np.array([0.0, -1.0, 1.0])
    r = phase + candidates * period
    outside = np.maximum(lo[:, None] - r, 0) + np.maximum(r - hi[:, None], 0)
    return candidates[np.arange(len(mid)), np.argmin(outside, axis=1)]


def refresh_fits(
    t_ns: np.ndarray, read_ns: np.ndarray, values: np.ndarray, nominal_period_ns: float
) -> list[RefreshFit]:
    """Period and phase of a register's refreshes from the reads of it (best candidate first).

    A new value between two reads bounds a refresh: it happened after the earlier read began and
    before the later one ended. The logger reads twice per nominal refresh, nearly in step with
    the chip, but as the chip's clock drifts against the CPU's the bounds sweep every phase.
    Candidate periods come from ``_periods`` (with the middle of the phases that satisfy the
    most bounds); where nearly every bound holds, the change points are numbered and the period
    is refined to the one that leaves the widest phase interval consistent with all bounds (a
    concave function: golden-section search; the 0.2 % most extreme bounds are left out, for
    reads stamped late), and the phase is that interval's middle. Where many bounds fail (a
    simulator woken late by a loaded machine), the most-bounds phase stands. Empty when fewer
    than 10 change points are seen.
    """
    valid = ~np.isnan(values)
    t, half, v = t_ns[valid].astype(np.float64), read_ns[valid] / 2.0, values[valid]
    change = np.nonzero(v[1:] != v[:-1])[0] + 1
    lo, hi = t[change - 1] - half[change - 1], t[change] + half[change]
    keep = hi - lo < nominal_period_ns  # a longer gap may hide several refreshes
    lo, hi = lo[keep], hi[keep]
    if len(lo) < 10:
        return []
    p0 = float(nominal_period_ns)
    fits = []
    for covered, guess, start, extent in _periods(lo, hi, p0):
        k = _number(lo, hi, guess, start)
        period, phase, width = guess, start, extent
        if covered >= 0.995 * len(k):  # (nearly) every bound holds: refine on the bounds
            step = 0.05 * guess / max(k[-1] - k[0], 1.0)
            trim = 0.002 if len(k) > 2000 else 0.0
            period, phase, width = _fit_bounds(lo, hi, k, guess - step, guess + step, trim)
        span = t[-1] - t[0]
        fits.append(
            RefreshFit(
                period_ns=float(period),
                phase_ns=float(phase),
                nominal_period_ns=p0,
                residual_rms_ns=float(np.sqrt(np.mean(((lo + hi) / 2 - phase - k * period) ** 2))),
                changes=len(k),
                reads_per_refresh=float(len(t) / (span / period)) if span > 0 else float("nan"),
                phase_interval_ns=float(width),
                bounds_met=float(covered / len(k)),
            )
        )
    return fits


def reading_after(
    refresh_ns: np.ndarray, period_ns: float, t_ns: np.ndarray, read_ns: np.ndarray
) -> np.ndarray:
    """Per refresh, the index of the read nearest the middle of its refresh interval, or -1
    where no read lies wholly inside ``(refresh, next refresh)``: that read returned the value of
    the conversion that ended at the refresh."""
    centre = refresh_ns + period_ns / 2
    j = np.clip(np.searchsorted(t_ns, centre), 1, len(t_ns) - 1)
    nearer = np.where(np.abs(t_ns[j - 1] - centre) <= np.abs(t_ns[j] - centre), j - 1, j)
    start, end = t_ns[nearer] - read_ns[nearer] / 2, t_ns[nearer] + read_ns[nearer] / 2
    inside = (start > refresh_ns) & (end < refresh_ns + period_ns)
    return np.where(inside, nearer, -1)


def window_means(
    edges_ns: np.ndarray, levels: np.ndarray, start_ns: np.ndarray, end_ns: np.ndarray
) -> np.ndarray:
    """Mean of a piecewise-constant signal over each window ``[start, end]``.

    ``levels[i]`` holds on ``[edges[i], edges[i+1])`` (``len(edges) == len(levels) + 1``);
    outside the edges the first and last levels hold. Exact, vectorized (cumulative integral).
    """
    edges = np.asarray(edges_ns, dtype=np.float64)
    integral = np.concatenate(([0.0], np.cumsum(levels * np.diff(edges))))

    def at(t):
        t = np.asarray(t, dtype=np.float64)
        i = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, len(levels) - 1)
        return integral[i] + levels[i] * (t - edges[i])

    width = np.asarray(end_ns, dtype=np.float64) - start_ns
    return (at(end_ns) - at(start_ns)) / np.where(width > 0, width, 1.0)
