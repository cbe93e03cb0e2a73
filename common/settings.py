"""The run contract's machinery: a setting is declared once, as a ``Setting``, and its flag,
its ``EVB_*`` environment variable, its check and its place in ``run_spec.json`` all come from
that declaration.

Each package declares the settings it uses (``model.cli.MODEL_SETTINGS``, ``power.cli``'s sensor
and idle settings, ``experiment.contract``'s measurement and sweep settings); an entry point's
parser is generated from the groups it takes, the sweep's from all of them. A value comes from,
in this order: the command line, the ``--spec`` file (a child started by the sweep or the
measurement gets the run's ``run_spec.json``), the environment variable, a preset (``--quick``),
the declared default. Every value is checked, wherever it came from, before anything runs; a bad
one is a one-line error and exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass
from typing import Any

from common.cli import OneLineParser
from common.layout import LayoutError, read_json

SUPPRESS = argparse.SUPPRESS

Check = Callable[[Any], "str | None"]  # an error message for a bad value, else None


@dataclass(frozen=True)
class Setting:
    """One setting of a run: ``--<name with dashes>`` and ``EVB_<NAME>`` (or ``env``)."""

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = str
    _: KW_ONLY
    choices: tuple | None = None
    check: Check | None = None
    aliases: tuple[str, ...] = ()  # the seed's and earlier documented spellings
    env: str | None = None
    nargs: int | None = None
    metavar: Any = None
    path: bool = False  # a file or folder: written to a spec as an absolute path

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env_name(self) -> str:
        return self.env or "EVB_" + self.name.upper()

    def coerce(self, value):
        """A value from a spec file or the environment, in this setting's type."""
        if value is None:
            return None
        if self.type is bool:
            return _boolean(value)
        if self.nargs:
            items = value.split() if isinstance(value, str) else value
            if not isinstance(items, list) or len(items) != self.nargs:
                raise ValueError(f"takes {self.nargs} values")
            return [self.type(str(v)) for v in items]
        if isinstance(value, (bool, list, dict)):
            raise ValueError(f"{value!r} is not a single value")
        return self.type(str(value))


def _boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("write 1/0, true/false, yes/no or on/off")


def positive(value) -> str | None:
    return None if value is None or value > 0 else "must be positive"


def not_negative(value) -> str | None:
    return None if value is None or value >= 0 else "must not be negative"


def between(lo, hi) -> Check:
    def check(value) -> str | None:
        return None if value is None or lo <= value <= hi else f"must be between {lo} and {hi}"

    return check


RESULT_DIR = Setting(
    "result_dir",
    "raw_data",
    "result folder: idling_power.json at its top, a folder per model inside",
    path=True,
)


def parser(settings: Iterable[Setting], **kwargs) -> OneLineParser:
    """An argument parser with a flag per setting, plus ``--spec`` and ``--verbose/--quiet``."""
    p = OneLineParser(**kwargs)
    for s in settings:
        default = " ".join(map(str, s.default)) if isinstance(s.default, list) else s.default
        helptext = f"{s.help} [{s.env_name}; default: {default}]".replace("%", "%%")
        if s.type is bool:  # a switch: --name sets it; EVB_NAME=1 or the spec may too
            p.add_argument(
                s.flag,
                *s.aliases,
                dest=s.name,
                action="store_true",
                default=SUPPRESS,
                help=helptext,
            )
            continue
        p.add_argument(
            s.flag,
            *s.aliases,
            dest=s.name,
            type=s.type,
            choices=s.choices,
            nargs=s.nargs,
            metavar=s.metavar,
            default=SUPPRESS,
            help=helptext,
        )
    p.add_argument(
        "--spec",
        default=None,
        metavar="FILE",
        help="take the settings from this run_spec.json (flags still win)",
    )
    noise = p.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    noise.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    return p


def resolve(
    p: OneLineParser,
    settings: Iterable[Setting],
    argv: list[str] | None,
    presets: dict | None = None,
    checks: Iterable[Callable[[argparse.Namespace], str | None]] = (),
) -> argparse.Namespace:
    """Parse ``argv`` and fill every setting (flag, spec, environment, preset, default); check
    them all, each alone and then with ``checks`` (rules that join several settings; each
    returns an error message or None). ``args.given`` holds the names set on the command
    line."""
    settings = list(settings)
    args = p.parse_args(argv)
    args.given = {s.name for s in settings if hasattr(args, s.name)}
    spec = {}
    if args.spec:
        try:
            spec = read_json(args.spec)
        except LayoutError as exc:
            p.error(f"--spec: {exc}")
    for s in settings:
        if s.name in args.given:
            continue
        value, source = s.default, None
        if s.name in spec:
            value, source = spec[s.name], f"{args.spec}: {s.name}"
        elif os.environ.get(s.env_name, "") != "":
            value, source = os.environ[s.env_name], s.env_name
        elif presets and s.name in presets:
            value = presets[s.name]
        if source is not None:
            try:
                value = s.coerce(value)
            except (ValueError, argparse.ArgumentTypeError) as exc:
                p.error(f"{source}={value!r}: {exc}")
        setattr(args, s.name, value)
    for s in settings:
        value = getattr(args, s.name)
        if s.choices and value is not None and value not in s.choices:
            p.error(f"{s.flag} {value!r}: choose one of {', '.join(map(str, s.choices))}")
        why = s.check(value) if s.check else None
        if why:
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            p.error(f"{s.flag} {shown}: {why}")
    for check in checks:
        why = check(args)
        if why:
            p.error(why)
    setup_logging(args.verbose, args.quiet)
    return args


def spec_of(args: argparse.Namespace, settings: Iterable[Setting]) -> dict:
    """The settings' values as a JSON object (what ``run_spec.json`` holds)."""
    spec = {s.name: getattr(args, s.name) for s in settings}
    for s in settings:  # the children run in the project folder, not where we were started
        if s.path and spec[s.name] is not None:
            spec[s.name] = os.path.abspath(spec[s.name])
    return spec


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """One format for every entry point: ``[HH:MM:SS] message`` on stderr."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S", level=level)
    logging.getLogger().setLevel(level)
