"""A small journal in the result folder: how far an upload got, so a re-run resumes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

JOURNAL = "upload_journal.json"
STEPS = ("added", "pushed", "verified", "committed", "published")


class Journal:
    """``{target: {step: {...}, "md5": ...}}`` where target = remote URL + path."""

    def __init__(self, result_dir: Path, target: str) -> None:
        self.path = result_dir / JOURNAL
        self.target = target
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    @property
    def entry(self) -> dict:
        return self.data.setdefault(self.target, {})

    def done(self, step: str, md5: str) -> bool:
        """True when ``step`` was reached for exactly this content."""
        return self.entry.get("md5") == md5 and step in self.entry.get("steps", {})

    def record(self, step: str, md5: str, **info) -> None:
        if self.entry.get("md5") != md5:
            self.data[self.target] = {"md5": md5, "steps": {}}
        self.entry["steps"][step] = {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        os.replace(tmp, self.path)
