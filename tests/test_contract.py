"""The run contract: one declaration per setting gives the sweep every sub-tool's flag, the same
names end to end (old spellings still work), EVB_* variables, --quick presets that never beat a
flag, and checks that refuse a bad value before anything runs."""

from __future__ import annotations

import json

import pytest

import measure_idling_power
import measure_inference_power
import measure_power
from common.settings import parser, resolve
from experiment import sweep
from experiment.contract import RUN_SETTINGS, SWEEP_FLAGS, run_spec
from model import cli as model_cli
from power.cli import IDLE_SETTINGS, SENSOR_SETTINGS

PLUMBING = {"help", "spec", "verbose", "quiet"}  # every parser's own flags
STANDALONE = {"list", "out", "prefix", "duration", "ready", "exit_with_parent"}  # measure_power


@pytest.fixture(autouse=True)
def no_evb_environment(monkeypatch):
    for name in [n for n in __import__("os").environ if n.startswith("EVB_")]:
        monkeypatch.delenv(name)


def dests(p) -> set[str]:
    return {a.dest for a in p._actions} - PLUMBING


def test_quick_with_runs_500_runs_500(monkeypatch):
    args = sweep.parse_args(["--quick", "--runs=500"])
    assert args.runs == 500 and args.profile_runs == 300 and args.models == ["lenet", "resnet18"]
    monkeypatch.setenv("EVB_RUNS", "400")  # a variable also wins over --quick
    assert sweep.parse_args(["--quick"]).runs == 400
    assert sweep.parse_args(["--quick", "--runs", "7"]).runs == 7  # and a flag over both


def test_every_sub_tool_flag_can_be_set_from_the_sweep_and_lands_in_run_spec(tmp_path):
    sweep_flags = {s.name for s in SWEEP_FLAGS}
    tools = {
        "python -m model": dests(model_cli.build_parser()),
        "measure_power.py": dests(measure_power.build_parser()) - STANDALONE,
        "measure_idling_power.py": dests(parser(measure_idling_power.SETTINGS)),
        "measure_inference_power.py": dests(measure_inference_power.build_parser()),
    }
    args = sweep.parse_args(["--result-dir", str(tmp_path), "--models", "lenet"])
    spec = run_spec(args, "lenet", "sim")
    for tool, flags in tools.items():
        assert flags - {"model"} <= sweep_flags, (tool, flags - sweep_flags)
        assert flags <= set(spec), (tool, flags - set(spec))
    json.dumps(spec)  # a JSON object, as written


def test_each_setting_is_declared_once():
    names = [s.name for s in RUN_SETTINGS]
    assert len(names) == len(set(names))
    flags = [f for s in RUN_SETTINGS for f in (s.flag, *s.aliases)]
    assert len(flags) == len(set(flags))


@pytest.mark.parametrize(
    "argv,name,value",
    [
        (["--source", "sim"], "power_source", "sim"),  # the logger's old spelling
        (["--power-source", "sim"], "power_source", "sim"),
        (["--until-precision", "0.5"], "idle_precision", 0.5),  # measure_idling_power.py's
        (["--min-duration", "3"], "idle_min", 3.0),
        (["--idle-precision", "0.5"], "idle_precision", 0.5),  # the sweep's
    ],
)
def test_seed_and_documented_flag_names_still_work(argv, name, value):
    settings = [*SENSOR_SETTINGS, *IDLE_SETTINGS]
    assert getattr(resolve(parser(settings), settings, argv), name) == value


def test_a_spec_file_feeds_a_child_and_flags_still_win(tmp_path, monkeypatch):
    spec = tmp_path / "run_spec.json"
    spec.write_text(json.dumps({"model": "lenet", "runs": 12, "input_shape": [1, 1, 32, 32]}))
    monkeypatch.setenv("EVB_RUNS", "99")  # the spec is the run's: it beats the environment
    args = model_cli.parse_args(["--spec", str(spec), "--warmup", "3"])
    assert (args.model, args.runs, args.warmup, args.input_shape) == (
        "lenet",
        12,
        3,
        [1, 1, 32, 32],
    )


@pytest.mark.parametrize(
    "argv,env,expected",
    [
        (["--timeout", "-1"], {}, "--timeout -1.0: must be positive"),
        (["--hz", "0.05"], {}, "--hz: must be between 1 and 10000"),
        (["--logger-cpus", "64"], {}, "--logger-cpus 64: this machine lets us use cores"),
        (["--models", "resnt18"], {}, "unknown model 'resnt18'; did you mean resnet18"),
        (["--input-shape", "1", "0", "8", "8"], {}, "takes 4 positive integers"),
        ([], {"EVB_RUNS": "many"}, "EVB_RUNS='many': invalid literal"),
        ([], {"EVB_BACKEND": "onnx"}, "--backend 'onnx': choose one of auto, tensorrt, torch"),
    ],
)
def test_a_bad_value_is_one_line_and_exit_2(argv, env, expected, monkeypatch, capsys):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as end:
        sweep.parse_args(argv)
    err = capsys.readouterr().err
    assert end.value.code == 2 and expected in err and len(err.strip().splitlines()) == 1, err


def test_a_switch_and_a_rule_joining_settings(monkeypatch, capsys):
    from common.settings import Setting

    settings = [Setting("fast", False, "a switch", type=bool), Setting("n", 1, "n", type=int)]
    rule = [lambda a: "--fast needs --n 2 or more" if a.fast and a.n < 2 else None]
    assert resolve(parser(settings), settings, [], checks=rule).fast is False
    assert resolve(parser(settings), settings, ["--fast", "--n", "3"], checks=rule).fast is True
    monkeypatch.setenv("EVB_FAST", "yes")
    with pytest.raises(SystemExit):
        resolve(parser(settings), settings, [], checks=rule)
    assert "--fast needs --n 2 or more" in capsys.readouterr().err


@pytest.mark.parametrize("flag,level", [([], "INFO"), (["-v"], "DEBUG"), (["--quiet"], "WARNING")])
def test_verbose_and_quiet_set_one_log_level(flag, level):
    import logging

    resolve(parser(SENSOR_SETTINGS), SENSOR_SETTINGS, flag)
    assert logging.getLevelName(logging.getLogger().level) == level
