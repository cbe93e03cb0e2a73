"""This suite's own version: the package version and the git commit it runs from (git is
run by ``publish/`` only)."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from publish.tools import PublishError, Runner

PROJECT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    """What ``git ARGS`` in this checkout prints, stripped."""
    return Runner({}, []).run(["git", *args], cwd=PROJECT, timeout=5).stdout.strip()


def suite_version() -> dict:
    """This suite's version and git commit (from git, else ``EVB_GIT_COMMIT`` set at build)."""
    commit = os.environ.get("EVB_GIT_COMMIT")
    dirty = None
    if (PROJECT / ".git").exists():
        try:
            commit = _git("rev-parse", "HEAD")
            dirty = bool(_git("status", "--porcelain"))
        except (OSError, PublishError):  # no git, or not a checkout it can read
            pass
    try:
        version = importlib.metadata.version("edge-vision-benchmark")
    except importlib.metadata.PackageNotFoundError:
        version = None
    return {"version": version, "git_commit": commit, "git_dirty": dirty}
