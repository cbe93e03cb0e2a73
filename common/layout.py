"""The result folder: every file name in it, whole-file writes, and each model's status.

This module is the only place that spells a file name of a result folder. Files written whole
(JSON, CSV tables, plots) are written to a temporary file beside the target and moved over it
with ``os.replace``, so a reader, or a process killed mid-write, sees either the old file or the
new one, never half of one. Streamed files (power logs, layer records, markers) are appended
whole lines at a time by ``common.linefile``.

Layout (``data-formats.md`` is the downstream contract for the TensorRT names)::

    <result>/idling_power.json, idle_power_*.{log,csv,json}, run_metadata.json, summary.csv,
             upload_journal.json, .sweep.lock
    <result>/<model>/status.json, run_spec.json, <model>_<backend>.json, <short>_profiling/...,
             <model>_power_{log.log,rails.csv,summary.json}, <model>_markers.csv, analysis files
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

# the top of a result folder
IDLE_JSON = "idling_power.json"
IDLE_PREFIX = "idle"
RUN_METADATA = "run_metadata.json"
SUMMARY_CSV = "summary.csv"
DATASET_TABLE = "runs.csv"  # one row per model of every run of a downloaded dataset
REPORT = "report.html"
UPLOAD_JOURNAL = "upload_journal.json"
SWEEP_LOCK = ".sweep.lock"
# each model folder
STATUS = "status.json"
RUN_SPEC = "run_spec.json"
RESERVE = ".status.reserve"  # space kept for the last status.json on a full disk
SHORT = {"tensorrt": "trt", "torch": "torch"}
PLOTS = ("power_timeline", "folded_power", "top_layers")

# the statuses a model folder can have; only "complete" is skipped by a re-run
RUNNING, COMPLETE, FAILED, INTERRUPTED = "running", "complete", "failed", "interrupted"


class LayoutError(Exception):
    """A file of the result folder that cannot be read or written; the message is one line."""


def power_files(prefix: str) -> dict[str, str]:
    """The names of the files the power logger writes for ``prefix`` (a model, or ``idle``)."""
    return {
        "raw_log": f"{prefix}_power_log.log",
        "rails_csv": f"{prefix}_power_rails.csv",
        "summary": f"{prefix}_power_summary.json",
    }


class ResultPaths:
    """Every file name of one model's result folder (``backend`` names the profiler's files)."""

    def __init__(self, result_dir: Path, model: str, backend: str = "torch") -> None:
        short = SHORT[backend]
        self.model, self.backend = model, backend
        self.model_dir = Path(result_dir) / model
        d = self.model_dir
        self.status = d / STATUS
        self.run_spec = d / RUN_SPEC
        self.summary_json = d / f"{model}_{backend}.json"
        self.profiling_dir = d / f"{short}_profiling"
        self.engine_info = self.profiling_dir / f"{short}_engine_info.json"
        self.layer_latency = self.profiling_dir / f"{short}_layer_latency.json"
        self.layer_records = self.profiling_dir / f"{short}_layer_records.csv"
        self.layer_names = self.profiling_dir / f"{short}_layer_names.json"
        self.trex_profile = self.profiling_dir / f"{short}_profile.json"
        self.markers = d / f"{model}_markers.csv"
        self.layer_power_estimates = d / f"{model}_layer_power_estimates.csv"
        self.power = {key: d / name for key, name in power_files(model).items()}
        self.layer_power = d / f"{model}_layer_power.csv"
        self.layer_power_folded = d / f"{model}_layer_power_folded.csv"
        self.layer_isolation = d / f"{model}_layer_isolation.csv"
        self.analysis = d / f"{model}_analysis.json"
        self.plots = {name: d / f"{model}_{name}.png" for name in PLOTS}
        self.profiler_log = d / f"{model}_profiler.log"
        self.logger_log = d / f"{model}_logger.log"

    @classmethod
    def find(cls, model_dir: Path) -> ResultPaths | None:
        """The paths of whichever backend wrote ``model_dir``, or None."""
        for backend in SHORT:
            paths = cls(model_dir.parent, model_dir.name, backend)
            if paths.summary_json.exists() or paths.layer_records.exists():
                return paths
        return None


def model_dirs(result_dir: Path) -> list[Path]:
    """Every directory directly under the result folder is a model folder (downstream rule)."""
    folders = Path(result_dir).iterdir()
    return sorted(p for p in folders if p.is_dir() and not p.name.startswith("."))


# --- whole-file writes --------------------------------------------------------------------------


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; once the block wrote it, move it over ``path``.

    The temporary file is flushed to disk before the rename, so after a crash the name points to
    the old content or the whole new one. On an error the temporary file is removed and the old
    file is left as it was; the error is raised as ``LayoutError`` (one line).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise LayoutError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def is_bookkeeping(name: str) -> bool:
    """A file of a result folder that is not data (never uploaded): the upload journal, the
    sweep's lock, the space kept for the last status and a whole-file writer's temporary."""
    temporary = name.startswith(".") and name.endswith(".tmp")
    return name in (UPLOAD_JOURNAL, SWEEP_LOCK, RESERVE) or temporary


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary files of writers killed before their rename (call it only when no
    writer of ``folder`` is alive); the files they would have replaced are intact."""
    stale = [p for p in Path(folder).rglob(".*.tmp") if p.is_file()]
    for path in stale:
        with contextlib.suppress(OSError):
            path.unlink()
    return stale


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, data) -> None:
    """Replace ``path`` with ``data`` as indented JSON, atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path, kind: type = dict):
    """The JSON of ``path`` if it is a ``kind``; ``LayoutError`` (one line) if it is missing,
    unreadable, not JSON or of another type (a file left truncated or garbled by an earlier
    run)."""
    try:
        data = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise LayoutError(f"{path} does not exist") from None
    except OSError as exc:
        raise LayoutError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise LayoutError(f"{path} is not valid JSON ({exc}); delete or repair it") from None
    if not isinstance(data, kind):
        raise LayoutError(
            f"{path} holds a JSON {type(data).__name__}, not a {kind.__name__}; delete or repair it"
        )
    return data


def read_idle_uw(result_dir: Path) -> float | None:
    """The idle board power (µW) of ``idling_power.json``; None where there is none. A file
    that is there but unusable (truncated, garbled, no positive figure) is a ``LayoutError``:
    idle-corrected figures must not go missing silently."""
    path = Path(result_dir) / IDLE_JSON
    if not path.exists():
        return None
    value = read_json(path).get("avg_idle_power")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise LayoutError(f"{path} holds no positive avg_idle_power")
    return float(value)


# --- status -------------------------------------------------------------------------------------


def read_status(model_dir: Path) -> dict | None:
    """The model folder's status, or None where it has none or an unusable one (a corrupt
    status is treated as no status: the model is measured again)."""
    try:
        status = read_json(Path(model_dir) / STATUS)
    except LayoutError:
        return None
    return status if isinstance(status.get("status"), str) else None


def write_status(model_dir: Path, status: dict) -> None:
    """Replace ``status.json`` atomically. On a full disk the space kept by ``reserve_space``
    is given back first, so the last status of a run can always be written."""
    try:
        write_json(Path(model_dir) / STATUS, status)
    except LayoutError:
        reserve = Path(model_dir) / RESERVE
        if not reserve.exists():
            raise
        reserve.unlink()
        write_json(Path(model_dir) / STATUS, status)


def reserve_space(model_dir: Path, size: int = 256 * 1024) -> None:
    """Keep ``size`` bytes on disk for the final ``status.json`` (see ``write_status``)."""
    with contextlib.suppress(OSError):
        with open(Path(model_dir) / RESERVE, "wb") as f:
            f.write(b"\0" * size)
            f.flush()
            os.fsync(f.fileno())


def release_space(model_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (Path(model_dir) / RESERVE).unlink()
