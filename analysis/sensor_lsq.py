"""Sensor-aware per-layer power: every reading of the profiling pass is one equation.

A reading is not the power at its timestamp: an INA3221 value is the mean power over the
conversion window that ended at the chip's last refresh (``power.sensor_model``). The refresh
instants are fitted from the log, each refresh's value is taken from a read that surely saw it,
and the board power is modelled as piecewise constant: one level per layer (whenever that layer
runs) and one for the time between layers and inferences. Reading ``k`` is then

    y_k = Σ_l x_l · overlap(window_k, runs of layer l) / |window_k| + x_gap · (rest of window_k)

and the levels come from non-negative least squares over all readings (sparse design matrix,
solved through its small normal matrix). Intervals: the larger of the residual-based standard
error and a block bootstrap over consecutive readings (which also sees errors that are
correlated in time), widened by what the sensor clock's phase leaves open, times Student's t.
Layers whose columns are nearly collinear with others
(they always run together inside one window) are flagged.

Where the sensor has no conversion model, each sample is taken as the power at its timestamp;
the same solver then does a least-squares split of the samples over layers.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import nnls
from scipy.stats import t as student_t

from power.sensor_model import Ina3221, for_sensor, reading_after, refresh_fits

BOOTSTRAP = 200
BLOCKS = 100
ILL_CONDITIONED = 50.0  # variance inflation (uncentred) above which a level is flagged


def sensor_readings(power, span: tuple[int, int]) -> list[tuple]:
    """Per candidate clock of the sensor (best first): (window start ns, window end ns, board
    µW) of every distinct reading inside ``span``, and what was fitted (sensor model, refresh
    period, phase, drift, residual)."""
    model, board = for_sensor(power.sensor)
    out = []
    if isinstance(model, Ina3221) and power.read_ns is not None:
        values = (power.currents or {}).get(board, power.board_uw)
        for fit in refresh_fits(power.t_ns, power.read_ns, values, model.period_s * 1e9):
            width = model.window_ns(fit.period_ns)
            refresh = fit.refreshes(span[0] + width, span[1])
            read = reading_after(refresh, fit.period_ns, power.t_ns, power.read_ns)
            ok = read >= 0
            info = {
                "model": model.describe(),
                "refresh_fit": fit.describe(),
                "window_ms": width / 1e6,
                "refreshes": len(refresh),
                "readings": int(ok.sum()),
            }
            out.append((refresh[ok] - width, refresh[ok], power.board_uw[read[ok]], info))
        if out:
            return out
    inside = (power.t_ns >= span[0]) & (power.t_ns <= span[1])
    t = power.t_ns[inside].astype(np.float64)
    info = {"model": model.describe(), "readings": int(inside.sum())}
    if isinstance(model, Ina3221):
        info["model"] = {"kind": "instant", "reading": "no refresh could be fitted"}
    return [(t - 1.0, t, power.board_uw[inside], info)]  # a 1 ns window stands for an instant


def design_matrix(records, start: np.ndarray, end: np.ndarray) -> sparse.csr_matrix:
    """Rows: readings; columns: layers, then the between-layers level; entries: the share of
    each reading's window that each layer (or nothing) filled."""
    order = np.argsort(records.start_ns, kind="stable")
    r_start = records.start_ns[order].astype(np.float64)
    r_end = records.end_ns[order].astype(np.float64)
    layer = records.layer[order]
    lo = np.searchsorted(np.maximum.accumulate(r_end), start, side="right")
    hi = np.searchsorted(r_start, end, side="left")
    counts = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(len(start)), counts)
    first = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    idx = np.arange(len(rows)) + first
    width = (end - start)[rows]
    share = np.clip(
        np.minimum(end[rows], r_end[idx]) - np.maximum(start[rows], r_start[idx]), 0, None
    )
    share /= width
    n_layers = len(records.names)
    matrix = sparse.csr_matrix(
        (share, (rows, layer[idx])), shape=(len(start), n_layers + 1), dtype=np.float64
    )
    rest = 1.0 - np.asarray(matrix.sum(axis=1)).ravel()
    gap = sparse.csr_matrix(
        (np.clip(rest, 0, None), (np.arange(len(start)), np.full(len(start), n_layers))),
        shape=matrix.shape,
    )
    matrix = matrix + gap
    matrix.eliminate_zeros()
    return matrix


def _nnls_normal(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Non-negative least squares from the normal equations (columns scaled to unit norm)."""
    scale = np.sqrt(np.diag(gram))
    g = gram / np.outer(scale, scale)
    try:
        chol = np.linalg.cholesky(g + 1e-12 * np.eye(len(g)))
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(g, rhs / scale, rcond=None)[0] / scale
    x, _ = nnls(chol.T, np.linalg.solve(chol, rhs / scale), maxiter=50 * len(g))
    return x / scale


def _bootstrap_se(matrix, y: np.ndarray, cols: np.ndarray, rng) -> np.ndarray:
    """Standard error of the levels from a bootstrap over blocks of consecutive readings."""
    blocks = min(BLOCKS, len(y) // 10)
    if blocks < 5:
        return np.full(len(cols), np.nan)
    edges = np.linspace(0, len(y), blocks + 1).astype(int)
    grams, rhs = [], []
    for a, b in itertools.pairwise(edges):
        part = matrix[a:b][:, cols]
        grams.append((part.T @ part).toarray())
        rhs.append(part.T @ y[a:b])
    grams, rhs = np.array(grams), np.array(rhs)
    draws = rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=BOOTSTRAP).astype(float)
    out = []
    for w in draws:
        try:
            out.append(np.linalg.solve(np.tensordot(w, grams, axes=1), w @ rhs))
        except np.linalg.LinAlgError:
            continue
    return np.std(out, axis=0, ddof=1) if len(out) > 10 else np.full(len(cols), np.nan)


def solve_levels(matrix, y: np.ndarray, seed: int = 0, bootstrap: bool = True) -> dict:
    """Levels (µW), standard errors, readings per column, variance inflation and fit figures."""
    n, p = matrix.shape
    touched = np.bincount(matrix.indices, minlength=p)
    cols = np.nonzero(touched > 0)[0]
    if n == 0:  # no reading inside the profiling pass: nothing to solve
        nan = np.full(p, np.nan)
        return {
            "n_readings": touched,
            "dof": 1,
            "residual_rms_uW": np.nan,
            "level": nan,
            "se": nan,
            "se_resid": nan,
            "se_boot": nan,
            "vif": nan,
        }
    sub = matrix[:, cols]
    gram = (sub.T @ sub).toarray()
    rhs = sub.T @ y
    x = _nnls_normal(gram, rhs)
    residual = y - sub @ x
    dof = max(n - len(cols), 1)
    sigma2 = float(residual @ residual) / dof
    inverse = np.linalg.pinv(gram)
    se_resid = np.sqrt(np.clip(np.diag(inverse) * sigma2, 0, None))
    se_boot = (
        _bootstrap_se(matrix, y, cols, np.random.default_rng(seed))
        if bootstrap
        else np.full(len(cols), np.nan)
    )
    vif = np.diag(gram) * np.diag(inverse)
    full = np.full(p, np.nan)
    out = {"n_readings": touched, "dof": dof, "residual_rms_uW": float(np.sqrt(sigma2))}
    for name, values in (("level", x), ("se_resid", se_resid), ("se_boot", se_boot), ("vif", vif)):
        out[name] = full.copy()
        out[name][cols] = values
    out["se"] = np.fmax(out["se_resid"], out["se_boot"])
    return out


def _add_phase_uncertainty(fit: dict, info: dict, records, start, end, y) -> None:
    """Widen the standard errors by what the clock's phase leaves open: the levels are solved
    again with every window shifted by ± one standard deviation of a phase spread evenly over
    the interval the change points allow, and half their difference is added in quadrature."""
    width = info.get("refresh_fit", {}).get("phase_interval_ms", 0.0)
    sd = max(width, 0.0) * 1e6 / np.sqrt(12)
    info["phase_sd_ms"] = sd / 1e6
    if not sd:
        return
    shifted = [
        solve_levels(design_matrix(records, start + d, end + d), y, bootstrap=False)["level"]
        for d in (-sd, sd)
    ]
    spread = np.abs(shifted[1] - shifted[0]) / 2
    fit["se"] = np.sqrt(fit["se"] ** 2 + np.nan_to_num(spread) ** 2)


def per_inference_times(records) -> tuple[np.ndarray, float, int]:
    """(mean time per inference of each layer ns, mean inference span ns, inferences)."""
    runs = np.unique(records.run)
    busy = np.bincount(
        records.layer,
        weights=(records.end_ns - records.start_ns).astype(float),
        minlength=len(records.names),
    )
    order = np.argsort(records.run, kind="stable")
    _, first = np.unique(records.run[order], return_index=True)
    spans = np.maximum.reduceat(records.end_ns[order], first) - np.minimum.reduceat(
        records.start_ns[order], first
    )
    return busy / len(runs), float(np.mean(spans)), len(runs)


def outside(start: np.ndarray, end: np.ndarray, pauses: np.ndarray) -> np.ndarray:
    """Which reading windows [start, end] overlap none of the (sorted, disjoint) pauses."""
    if not len(pauses):
        return np.ones(len(start), dtype=bool)
    i = np.searchsorted(pauses[:, 0], end, side="right") - 1  # the last pause starting by end
    return (i < 0) | (pauses[np.maximum(i, 0), 1] < start)


def sensor_lsq(records, power, idle_uw: float | None, span: tuple[int, int], pauses=()):
    """The per-layer table of the sensor-aware estimator and what the fit found (for the JSON).
    Readings that overlap a pause of the profiling pass (``pauses``, (start, end) ns: a kernel
    trace being collected, no inference running) are left out: the between-layers level is the
    power between inferences, not that of a pause.

    Table columns: ``layer_name, power_uW, ci95_low_uW, ci95_high_uW, power_excl_idle_uW,
    energy_uJ, n_readings, ill_conditioned``.
    """
    tried = []
    pauses = np.asarray(pauses, dtype=np.int64).reshape(-1, 2)
    for all_start, all_end, all_y, info in sensor_readings(power, span):
        keep = outside(all_start, all_end, pauses)
        info["readings_in_pauses"] = int((~keep).sum())
        start, end, y = all_start[keep], all_end[keep], all_y[keep]
        tried.append((solve_levels(design_matrix(records, start, end), y), info, start, end, y))
    fit, info, start, end, y = min(
        tried, key=lambda pair: np.nan_to_num(pair[0]["residual_rms_uW"], nan=np.inf)
    )
    if len(tried) > 1:  # the sensor clocks that fitted the change points, and how the model did
        info["clock_candidates"] = [
            {**i["refresh_fit"], "model_residual_rms_uW": f["residual_rms_uW"]}
            for f, i, *_ in tried
        ]
    _add_phase_uncertainty(fit, info, records, start, end, y)
    half = student_t.ppf(0.975, fit["dof"]) * fit["se"]
    busy_ns, span_ns, inferences = per_inference_times(records)
    n_layers = len(records.names)
    level = fit["level"]
    idle = idle_uw if idle_uw is not None else np.nan
    table = pd.DataFrame(
        {
            "layer_name": records.names,
            "power_uW": level[:n_layers],
            "ci95_low_uW": (level - half)[:n_layers],
            "ci95_high_uW": (level + half)[:n_layers],
            "power_excl_idle_uW": level[:n_layers] - idle,
            "energy_uJ": level[:n_layers] * busy_ns / 1e9,
            "n_readings": fit["n_readings"][:n_layers],
            "ill_conditioned": ~(fit["vif"][:n_layers] < ILL_CONDITIONED),
        }
    )
    between_ns = max(span_ns - float(busy_ns.sum()), 0.0)
    info.update(
        inferences=inferences,
        residual_rms_uW=fit["residual_rms_uW"],
        between_layers_power_uW=float(level[-1]),
        between_layers_ci95_uW=float(half[-1]),
        between_layers_energy_per_inference_uJ=float(level[-1] * between_ns / 1e9),
        layer_energy_per_inference_uJ=float(np.nansum(table["energy_uJ"])),
        mean_inference_span_ms=span_ns / 1e6,
        ill_conditioned_layers=int(table["ill_conditioned"].sum()),
    )
    info["energy_per_inference_uJ"] = (
        info["layer_energy_per_inference_uJ"] + info["between_layers_energy_per_inference_uJ"]
    )
    return table, info
