"""``report.html`` at the top of a result folder: one self-contained page (plots embedded as data
URIs, no network) with the run's metadata, the summary table and, per model, its status, plots,
top layers, a sortable per-layer table, coverage and warnings. Read from the files alone.

The page carries a small self-check: it records script errors, failed loads and every image's
``naturalWidth`` into ``<pre id="evb-selfcheck">`` once loaded, so a headless browser's
``--dump-dom`` shows whether it rendered cleanly (``tests/test_report_html.py``).
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path

import pandas as pd

from analysis.estimates import DEFAULT_METHOD
from analysis.summary import model_dirs, readable, summary_table
from common.layout import IDLE_JSON, REPORT, RUN_METADATA, ResultPaths, read_status, write_text

PLOTS = (
    ("power_timeline", "Board power over the run, phases shaded"),
    ("folded_power", "Power folded over one inference"),
    ("top_layers", "Top layers by runtime and by energy"),
)
TOP = 10

SELF_CHECK = """
window.evbCheck = {errors: [], images: [], models: []};
addEventListener('error', function (e) {
  var t = e.target;
  evbCheck.errors.push(t && t !== window ? 'failed to load ' + (t.alt || t.tagName)
                                         : String(e.message));
}, true);
var evbConsoleError = console.error;
console.error = function () {
  evbCheck.errors.push(Array.prototype.join.call(arguments, ' '));
  evbConsoleError.apply(console, arguments);
};
addEventListener('load', function () {
  evbCheck.images = Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, width: i.naturalWidth, complete: i.complete};
  });
  evbCheck.models = Array.prototype.map.call(
    document.querySelectorAll('section.model'), function (s) { return s.dataset.model; });
  document.getElementById('evb-selfcheck').textContent = JSON.stringify(evbCheck);
});
"""

SORT = """
function evbSort(th) {
  var table = th.closest('table'), body = table.tBodies[0];
  var col = Array.prototype.indexOf.call(th.parentNode.children, th);
  var up = th.dataset.dir !== 'asc';
  th.dataset.dir = up ? 'asc' : 'desc';
  var key = function (row) {
    var text = row.children[col].textContent.trim(), num = parseFloat(text);
    return text === '' ? null : (isNaN(num) ? text : num);
  };
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = key(a), y = key(b);
    if (x === null) return 1;
    if (y === null) return -1;
    var c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(y);
    return up ? c : -c;
  });
  rows.forEach(function (r) { body.appendChild(r); });
}
document.addEventListener('click', function (e) {
  if (e.target.matches('table.sortable th')) evbSort(e.target);
});
"""

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{border-bottom:2px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#f0f0f0;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer}.warn{color:#a00;font-weight:bold}.ok{color:#070}
.sim{background:#fff3cd;border:1px solid #e0c060;padding:.5em}
img{max-width:100%;border:1px solid #ddd;margin:.3em 0}
details{margin:.5em 0}.scroll{max-height:30em;overflow:auto}.wide{overflow-x:auto}
"""


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td></td>"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    return f"<td>{escape(str(value))}</td>"


def table_html(frame: pd.DataFrame, sortable: bool = False) -> str:
    """An HTML table of a (rounded) frame; empty cells where a value is missing."""
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>"
        for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False)
    )
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _pairs(rows: list[tuple[str, object]]) -> str:
    body = "".join(f"<tr><th>{escape(k)}</th>{_cell(v)}</tr>" for k, v in rows)
    return f"<table>{body}</table>"


def metadata_html(result_dir: Path, meta: dict, idle: dict) -> str:
    """Device, L4T, power mode, clocks, sensor, versions: what makes runs comparable."""
    sensor = meta.get("sensor") or {}
    clocks = {True: "locked", False: "NOT locked", None: "unknown (not a Jetson?)"}
    versions = ", ".join(f"{k} {v}" for k, v in (meta.get("versions") or {}).items() if v)
    suite = meta.get("suite") or {}
    rows = [
        ("run", meta.get("run_id") or meta.get("created")),
        ("host", meta.get("host")),
        ("device", meta.get("device_model") or "unknown"),
        ("L4T", meta.get("l4t_release") or "none"),
        ("power mode", (meta.get("nvpmodel") or {}).get("mode_name") or "unknown"),
        ("clocks", clocks.get(meta.get("clocks_locked"), "unknown")),
        ("sensor", sensor.get("source") or sensor.get("kind")),
        ("board input", idle.get("board_input_rule")),
        ("power", "SIMULATED" if idle.get("simulated") else "measured" if idle else None),
        ("idle power (W)", round(idle["avg_idle_power"] / 1e6, 3) if idle else None),
        ("versions", versions),
        ("suite", f"{suite.get('version')} {suite.get('git_commit') or ''}".strip()),
        ("started", meta.get("created")),
    ]
    return f'<section id="metadata"><h2>Run</h2>{_pairs(rows)}</section>'


def _image(model_dir: Path, plot: str, caption: str) -> str:
    path = ResultPaths(model_dir.parent, model_dir.name).plots[plot]
    if not path.exists():
        return f"<p>{escape(caption)}: no plot ({path.name} is missing)</p>"
    data = base64.b64encode(path.read_bytes()).decode()
    alt = escape(f"{model_dir.name} {plot}")
    return (
        f'<figure><img alt="{alt}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def warnings_for(model_dir: Path, analysis: dict, status: dict, meta: dict, idle: dict) -> list:
    """What a reader must know before trusting the model's figures."""
    out = []
    if status.get("status") != "complete":
        out.append(f"status {status.get('status', 'unknown')}: {status.get('reason') or '?'}")
    power = _json(ResultPaths(model_dir.parent, model_dir.name).power["summary"])
    if power.get("gaps_over_two_periods"):
        out.append(
            f"power log: {power['gaps_over_two_periods']} gaps over two sample periods "
            f"(longest {power.get('longest_gap_ms', 0):.1f} ms)"
        )
    if power.get("errors"):
        out.append(f"power log read errors: {power['errors']}")
    if analysis.get("power_lines_dropped"):
        out.append(f"{analysis['power_lines_dropped']} unreadable power log lines left out")
    paths = ResultPaths.find(model_dir)  # the profiler's summary, whichever backend wrote it
    config = _json(paths.summary_json).get("config", {}) if paths else {}
    wanted = config.get("profile_runs") or config.get("runs")
    if wanted and analysis and analysis.get("profile_runs", wanted) < wanted:
        out.append(f"{wanted - analysis['profile_runs']} of {wanted} profiled inferences missing")
    if analysis.get("layers_without_folded_sample"):
        out.append(f"{analysis['layers_without_folded_sample']} layers without a folded sample")
    if idle.get("drift_warning"):
        out.append(f"idle power drifted {idle.get('drift_pct', 0):+.1f} % within its window")
    if meta.get("clocks_locked") is False:
        out.append("clocks were not locked (run 'sudo jetson_clocks')")
    if power.get("simulated"):
        out.append("power is SIMULATED")
    return out


def layers_html(model_dir: Path) -> str:
    """Top layers by time and by energy, and the whole per-layer table (sortable): power and
    energy from the default estimator (``analysis.estimates``), windows from folding."""
    folded_path = ResultPaths(model_dir.parent, model_dir.name).layer_power_folded
    if not folded_path.exists():
        return "<p>No per-layer table.</p>"
    folded = pd.read_csv(folded_path)
    frame = pd.DataFrame(
        {
            "layer": folded["layer_name"],
            "type": folded["layer_type"],
            "median_runtime_ms": folded["median_runtime_ms"],
        }
    )
    paths = ResultPaths.find(model_dir)
    if paths is not None and paths.layer_power_estimates.exists():
        est = pd.read_csv(paths.layer_power_estimates)
        est = est[est["method"] == DEFAULT_METHOD].set_index("layer_name")
        method = DEFAULT_METHOD
        power, low, high = (
            est[c].reindex(frame["layer"]).to_numpy()
            for c in ("power_uW", "ci95_low_uW", "ci95_high_uW")
        )
        frame["power_W"], frame["ci95_W"] = power / 1e6, (high - low) / 2e6
        frame["energy_mJ"] = est["energy_uJ"].reindex(frame["layer"]).to_numpy() / 1e3
        frame["readings"] = est["n_readings"].reindex(frame["layer"]).to_numpy()
    else:  # a folder analysed before the estimates table existed
        method = "folded"
        frame["power_W"], frame["ci95_W"] = folded["power_uW"] / 1e6, folded["ci95_uW"] / 1e6
        frame["energy_mJ"], frame["readings"] = folded["energy_uJ"] / 1e3, folded["samples"]
    frame["window_us"] = [
        f"{a:.1f}–{b:.1f}"
        for a, b in zip(folded["window_start_us"], folded["window_end_us"], strict=True)
    ]
    frame = readable(frame)
    by_time = frame.nlargest(TOP, "median_runtime_ms")
    by_energy = frame.dropna(subset=["energy_mJ"]).nlargest(TOP, "energy_mJ")
    return (
        f"<h3>Top {TOP} layers by median runtime</h3>{table_html(by_time)}"
        f"<h3>Top {TOP} layers by energy ({method})</h3>{table_html(by_energy)}"
        f"<details><summary>All {len(frame)} layers (click a column to sort)</summary>"
        f'<div class="scroll">{table_html(frame, sortable=True)}</div></details>'
    )


def model_html(model_dir: Path, meta: dict, idle: dict) -> str:
    name = model_dir.name
    status = read_status(model_dir) or {}
    analysis = _json(ResultPaths(model_dir.parent, name).analysis)
    state = status.get("status", "unknown")
    cls = "ok" if state == "complete" else "warn"
    parts = [
        f'<section class="model" id="model-{escape(name)}" data-model="{escape(name)}">',
        f'<h2>{escape(name)} <span class="{cls}">{escape(state)}</span></h2>',
    ]
    if status.get("reason"):
        parts.append(f"<p>Reason: {escape(status['reason'])}</p>")
    warnings = warnings_for(model_dir, analysis, status, meta, idle)
    if warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
        parts.append(f'<ul class="warn">{items}</ul>')
    if analysis:
        coverage = analysis.get("layer_coverage")
        parts.append(
            _pairs(
                [
                    ("layer-inferences with a power sample (%)", _pct(coverage)),
                    ("samples folded", analysis.get("folded_samples")),
                    ("profiled inferences", analysis.get("profile_runs")),
                    ("power samples", analysis.get("power_samples")),
                ]
            )
        )
        parts += [_image(model_dir, plot, caption) for plot, caption in PLOTS]
        parts.append(layers_html(model_dir))
    else:
        parts.append("<p>No analysis for this model.</p>")
    parts.append("</section>")
    return "".join(parts)


def _pct(value) -> float | None:
    return None if value is None else round(100 * value, 1)


def render(result_dir: Path) -> str:
    meta = _json(result_dir / RUN_METADATA)
    idle = _json(result_dir / IDLE_JSON)
    summary = summary_table(result_dir)
    simulated = idle.get("simulated") or any(
        _json(ResultPaths(result_dir, d.name).power["summary"]).get("simulated")
        for d in model_dirs(result_dir)
    )
    title = f"edge-vision-benchmark: {meta.get('run_id') or result_dir.name}"
    banner = (
        '<p class="sim">Power in this run is SIMULATED: no real sensor was read.</p>'
        if simulated
        else ""
    )
    models = "".join(model_html(d, meta, idle) for d in model_dirs(result_dir))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><script>{SELF_CHECK}</script>"
        f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>{banner}"
        f"{metadata_html(result_dir, meta, idle)}"
        f'<section id="summary"><h2>Summary</h2><div class="wide">'
        f"{table_html(summary, sortable=True)}</div></section>"
        f'{models}<pre id="evb-selfcheck" hidden></pre><script>{SORT}</script></body></html>\n'
    )


def write_report(result_dir: Path) -> Path:
    """Write ``report.html`` (atomically) and return its path."""
    path = result_dir / REPORT
    write_text(path, render(result_dir))
    return path
