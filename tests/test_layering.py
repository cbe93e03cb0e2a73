"""The import rules of the packages (README, "Layout"), checked on the source: a package may use
the floors below it, never one beside or above it. Imports inside functions count too."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

PACKAGES = ("common", "power", "model", "analysis", "publish", "experiment")
MAY_IMPORT = {
    "common": set(),  # the ground floor: layout, settings, clock, processes, line files
    "power": {"common"},
    "model": {"common"},
    "analysis": {"common", "model"},  # files only: model's writers for the synthetic folders
    "publish": {"common"},
    "experiment": {"common", "power", "model", "analysis", "publish"},  # the supervisor
}


# single modules a package may use beside its floors: pure models with no I/O
MAY_IMPORT_MODULES = {"analysis": {"power.sensor_model"}}  # what a sensor reading means in time


def imports_of(path) -> set[str]:
    """The project modules ``path`` imports (dotted names)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def forbidden(package: str, module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    allowed = MAY_IMPORT[package] | {package}
    return top not in allowed and module not in MAY_IMPORT_MODULES.get(package, set())


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_the_floors_below_it(package):
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in (ROOT / package).rglob("*.py")
        for name in imports_of(path)
        if forbidden(package, name)
    }
    assert not wrong, sorted(wrong)


def test_the_rule_catches_a_violation(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("def f():\n    from experiment.measurement import measure\n")
    assert imports_of(bad) == {"experiment.measurement"}
    assert forbidden("analysis", "experiment.measurement")
    assert forbidden("analysis", "power.logger") and not forbidden("analysis", "power.sensor_model")
