"""The readable result tables and report.html, on synthetic result folders; report.html is opened
in a real headless Chromium (Debian's ``chromium`` package; skipped, saying so, where absent)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from analysis.html_report import REPORT, write_report
from analysis.report import analyse_model
from analysis.summary import decimals, write_summary
from analysis.synthetic import write_folder
from tests.conftest import run_entry

MODELS = ("lenet", "resnet18")


def make_run(result: Path, plots: bool = True, seed: int = 0) -> Path:
    """Two analysed models (a CPU run that asked float16 and ran float32), one failed model, and
    the run's metadata and idle power: a small stand-in for the quick sweep's folder."""
    for i, model in enumerate(MODELS):
        write_folder(result, model, inferences=300, layers=6, layer_ms=0.5, sample_hz=1000,
                     step_uw=2e6, step_layer=3, noise_uw=1e5, seed=2 * seed + i)  # fmt: skip
        summary = result / model / f"{model}_torch.json"
        data = json.loads(summary.read_text())
        data["config"].update(dtype="float16", profile_runs=300)
        data["backend"] = {"device": "cpu", "dtype_asked": "float16", "dtype_used": "float32"}
        summary.write_text(json.dumps(data))
        (result / model / "status.json").write_text('{"status": "complete", "reason": ""}')
        analyse_model(result / model, make_plots=plots)
    (result / "vgg16").mkdir()
    (result / "vgg16/status.json").write_text(
        '{"status": "failed", "reason": "profiler exited with code 3: weights unavailable"}'
    )
    (result / "idling_power.json").write_text(
        json.dumps(
            {"avg_idle_power": 4.2e6, "drift_pct": 3.1, "drift_warning": True, "simulated": True}
        )
    )
    (result / "run_metadata.json").write_text(
        json.dumps(
            {
                "run_id": "20261127-1200",
                "host": "orin-01",
                "clocks_locked": False,
                "l4t_release": "36.3.0",
                "versions": {"torch": "2.4.0"},
            }
        )
    )
    return result


def test_summary_rounds_by_unit_and_says_which_dtype_ran(tmp_path):
    make_run(tmp_path, plots=False)
    write_summary(tmp_path)
    text = (tmp_path / "summary.csv").read_text()
    table = pd.read_csv(tmp_path / "summary.csv", dtype=str, keep_default_na=False)
    assert list(table["model"]) == ["lenet", "resnet18", "vgg16"]
    for column in table.columns:
        places = decimals(column)
        for value in table[column]:
            if places is not None and "." in value:
                assert len(value.split(".")[1]) <= max(places, 0), (column, value)
    assert not re.search(r"\d\.\d{5,}", text)  # nothing like 0.25979281000000004
    lenet = table.set_index("model").loc["lenet"]
    assert lenet["dtype"] == "float16" and lenet["dtype_used"] == "float32"
    assert "float16 asked; the cpu ran float32" in lenet["reason"]
    assert float(lenet["mean_power_W"]) == pytest.approx(5.0, abs=0.5)
    assert "weights unavailable" in table.set_index("model").loc["vgg16", "reason"]
    folded = (tmp_path / "lenet/lenet_layer_power_folded.csv").read_text()
    assert not re.search(r"\d\.\d{5,}", folded)
    frame = pd.read_csv(tmp_path / "lenet/lenet_layer_power_folded.csv").set_index("layer_name")
    assert frame.loc["layer3", "power_uW"] == pytest.approx(7e6, abs=2e5)  # still the truth
    assert (frame["power_uW"] % 1000 == 0).all()  # µW to the mW


def test_analyze_writes_a_self_contained_report_and_prints_its_path(tmp_path):
    make_run(tmp_path, plots=False)
    done = run_entry(["analyze.py", str(tmp_path), "--summary-only"])
    assert done.returncode == 0, done.stderr
    assert f"report: {tmp_path / REPORT}" in done.stdout
    html = (tmp_path / REPORT).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched
    for text in ("orin-01", "36.3.0", "NOT locked", "SIMULATED", "weights unavailable",
                 "idle power drifted +3.1 %", 'data-model="vgg16"'):  # fmt: skip
        assert text in html, text
    assert "layers by energy (sensor_lsq)" in html  # the default estimator, not folding


def chromium() -> str | None:
    return os.environ.get("EVB_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None
    )


def headless(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Debian's Chromium, headless, a fresh profile, no network of its own; console messages on
    stderr (``--enable-logging=stderr``)."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-quic", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def open_page(tmp_path: Path, page: Path, *args: str) -> tuple[str, list[str]]:
    """The DOM of the page once loaded, and Chromium's console lines."""
    done = headless(tmp_path, *args, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def left_in(dom: str, element: str = "evb-selfcheck"):
    """The JSON a script of the page left in ``<pre id=element>``."""
    found = re.search(rf'<pre id="{element}"[^>]*>(.*?)</pre>', dom, re.S)
    assert found, f"no #{element} in the dumped page"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@pytest.mark.skipif(
    chromium() is None,
    reason="Chromium is not installed (apt-get install -y chromium); report.html not opened",
)
def test_the_report_opens_in_headless_chromium_without_errors(tmp_path):
    result = make_run(tmp_path / "raw")
    page = write_report(result)
    shot = Path(os.environ.get("EVB_TEST_ARTIFACTS") or tmp_path) / "report_screenshot.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    dom, console = open_page(tmp_path, page, "--window-size=1280,2400", f"--screenshot={shot}")
    check = left_in(dom)
    assert console == [] and check["errors"] == []
    assert check["models"] == [*MODELS, "vgg16"]
    images = check["images"]
    assert len(images) == 3 * len(MODELS)
    assert all(i["complete"] and i["width"] > 100 for i in images), images
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    # The self-check sees a broken image and a script error, so its silence above means
    # something; and the per-layer table sorts: twice on power_W puts the 7 W layer first.
    probe = """<pre id="sorted"></pre><script>
      var th = [...document.querySelectorAll('#model-lenet table.sortable th')]
        .find(t => t.textContent === 'power_W');
      th.click(); th.click();
      var row = th.closest('table').tBodies[0].rows[0];
      document.getElementById('sorted').textContent = JSON.stringify(row.children[0].textContent);
      notDefined();
    </script></body>"""
    broken = tmp_path / "broken.html"
    html = page.read_text().replace("data:image/png;base64,", "data:image/png;base64,AAAA", 1)
    broken.write_text(html.replace("</body>", probe))
    dom, bad_console = open_page(tmp_path, broken)
    bad = left_in(dom)
    assert any(i["width"] == 0 for i in bad["images"]) and bad["errors"] and bad_console
    assert left_in(dom, "sorted") == "layer3"


def test_progress_in_a_log_that_is_not_a_terminal_is_whole_lines():
    """docker logs and files get one line per refresh, never carriage returns."""
    code = "from model.benchmark import _progress\nfor _ in _progress(range(500), 'timing', 500): 0"
    done = run_entry(["-c", code])
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3 and lines[-1].startswith("timing: 100%"), lines


def test_rounding_keeps_intervals_whole_and_never_narrower():
    """µW to the mW as integers, even where a bound's float is not a whole number of mW
    (squeezenet1_1's estimates once failed the integer cast); low bounds down, high bounds up."""
    from analysis.summary import readable

    table = pd.DataFrame(
        {
            "power_uW": [9748175.217, 1500.0],
            "ci95_low_uW": [9474352.339847615, 999.9],
            "ci95_high_uW": [10021998.094304243, 2000.1],
            "mean_power_W": [0.1 + 0.2, 1.23456],
        }
    )
    out = readable(table)
    assert out["ci95_low_uW"].tolist() == [9474000, 0]
    assert out["ci95_high_uW"].tolist() == [10022000, 3000]
    assert out["power_uW"].tolist() == [9748000, 2000]
    assert out["mean_power_W"].tolist() == [0.3, 1.235]


def test_counts_stay_whole_numbers_beside_a_row_without_them():
    """A failed model has no run count: the others still read 30000, not 30000.0."""
    from analysis.html_report import table_html
    from analysis.summary import readable

    out = readable(pd.DataFrame({"model": ["a", "b"], "runs": [30000.0, None], "samples": [5, 7]}))
    assert out["runs"].tolist()[0] == 30000 and pd.isna(out["runs"].tolist()[1])
    html = table_html(out)
    assert '<td class="num">30000</td><td class="num">5</td>' in html and "30000.0" not in html
