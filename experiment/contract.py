"""The run contract: every setting of a run, declared once.

The profiler's settings are declared in ``model.cli``, the sensor's and idle's in ``power.cli``,
the measurement's and the sweep's here; ``RUN_SETTINGS`` is all of them. The sweep's flags and
``EVB_*`` variables are generated from it, so every flag a sub-tool has, the sweep has too, under
the same name. The sweep writes the values once per model as ``<model>/run_spec.json``; the
measurement and its children read that file (``--spec``) instead of a rebuilt argv.
"""

from __future__ import annotations

import os

from common.settings import Setting, not_negative, positive, spec_of
from model.cli import MODEL_CHECKS, MODEL_SETTINGS, shape_fits
from power.cli import IDLE_SETTINGS, SENSOR_SETTINGS


def parse_cpus(text: str) -> set[int]:
    """'0', '1-3' or '0,2' → a set of core numbers (ValueError when malformed)."""
    cpus: set[int] = set()
    for part in str(text).split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def _cpus(text) -> str | None:
    if text is None:
        return None
    try:
        cpus = parse_cpus(text)
    except ValueError:
        return "write cores as 3, 0-2 or 0,2"
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        return f"this machine lets us use cores {_ranges(allowed)}"
    return None


def _ranges(cpus) -> str:
    cpus = sorted(cpus)
    return f"{cpus[0]}-{cpus[-1]}" if cpus == list(range(cpus[0], cpus[-1] + 1)) else str(cpus)


def _models(text) -> str | None:
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        return "name at least one model"
    from model.zoo import ModelError, check_model_name

    for name in names:
        try:
            check_model_name(name)
        except ModelError as exc:
            return str(exc)
    return None


MEASURE_SETTINGS = [
    Setting(
        "timeout",
        7200.0,
        "watchdog: seconds before a hung model is stopped",
        float,
        check=positive,
        env="EVB_MODEL_TIMEOUT",
    ),
    Setting(
        "tail", 1.0, "seconds of power logged after the profiler ends", float, check=not_negative
    ),
    Setting(
        "logger_cpus",
        None,
        "cores for the power logger, e.g. 3; default: the last core",
        check=_cpus,
    ),
    Setting(
        "profiler_cpus", None, "cores for the profiler, e.g. 0-2; default: the others", check=_cpus
    ),
]
SWEEP_SETTINGS = [
    Setting(
        "models",
        "alexnet,resnet18,mobilenet_v2,vgg16,lenet",
        "comma-separated model names",
        check=_models,
    ),
    Setting(
        "cooldown",
        None,
        "seconds to wait after idle (default 120 on a Jetson, else 0)",
        float,
        check=not_negative,
    ),
    Setting("owner", None, "DagsHub repository owner (upload)", env="EVB_DAGSHUB_OWNER"),
    Setting("name", None, "DagsHub repository name (upload)", env="EVB_DAGSHUB_REPO"),
    Setting(
        "remote_dir_path", None, "path inside the data repository (default raw_data/<host>/<run>)"
    ),
    Setting("dvc_remote", None, "DVC remote URL instead of DagsHub's"),
    Setting("git_url", None, "git URL for the pointers instead of DagsHub's"),
    Setting("branch", "main", "git branch of the data repository (upload)"),
    Setting("retries", 4, "attempts for dvc push and git push (upload)", int, check=positive),
    Setting("net_timeout", 30, "DVC's connect and read timeouts, seconds", int, check=positive),
    Setting(
        "workspace", None, "where the git clone of the data repository is kept (upload)", path=True
    ),
]
MEASURE_RUN = [*MODEL_SETTINGS, *SENSOR_SETTINGS, *MEASURE_SETTINGS]
RUN_SETTINGS = [*MEASURE_RUN, *IDLE_SETTINGS, *SWEEP_SETTINGS]
SWEEP_FLAGS = [s for s in RUN_SETTINGS if s.name != "model"]  # the sweep names --models


def _model_names(args) -> list[str]:
    """The models of a sweep (``--models``) or of one measurement (``--model``)."""
    if getattr(args, "models", None):
        return [m.strip() for m in args.models.split(",") if m.strip()]
    return [args.model] if getattr(args, "model", None) else []


RUN_CHECKS = [  # an input shape too small for a model is a flag error, found before idle
    *MODEL_CHECKS,
    lambda a: shape_fits(_model_names(a), a.input_shape),
]
QUICK = {  # --quick: what is not set by a flag or a variable
    "models": "lenet,resnet18",
    "runs": 300,
    "profile_runs": 300,
    "warmup": 20,
    "idle_duration": 20.0,
    "idle_precision": 1.0,
    "idle_min": 5.0,
    "cooldown": 0.0,
    "weights": "random",
}


def run_spec(args, model: str, power_source: str) -> dict:
    """One model's ``run_spec.json``: every run setting, the model, the resolved source."""
    spec = spec_of(args, SWEEP_FLAGS)
    spec.update(model=model, power_source=power_source)
    return spec
