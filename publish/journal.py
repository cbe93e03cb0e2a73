"""A small journal in the result folder: how far an upload got, so a re-run resumes.

The journal only saves work: a missing, garbled or wrong-type journal (an earlier run cut off,
a hand edit) is reported once and the upload starts from the beginning, which is safe because
every step is keyed by the content's md5."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from common.layout import UPLOAD_JOURNAL, LayoutError, read_json, write_json

log = logging.getLogger(__name__)


class Journal:
    """``{target: {"md5": ..., "steps": {step: {...}}}}`` where target = remote URL + path."""

    def __init__(self, result_dir: Path, target: str) -> None:
        self.path = result_dir / UPLOAD_JOURNAL
        self.target = target
        self.data = {}
        if self.path.exists():
            try:
                self.data = read_json(self.path)
            except LayoutError as exc:
                log.warning("%s; the upload starts afresh", exc)
        if not isinstance(self.data.get(target, {}), dict):
            log.warning("%s: entry for %s is not an object; it starts afresh", self.path, target)
            self.data[target] = {}

    @property
    def entry(self) -> dict:
        return self.data.setdefault(self.target, {})

    def done(self, step: str, md5: str) -> bool:
        """True when ``step`` was reached for exactly this content."""
        steps = self.entry.get("steps")
        return self.entry.get("md5") == md5 and isinstance(steps, dict) and step in steps

    def record(self, step: str, md5: str, **info) -> None:
        if self.entry.get("md5") != md5 or not isinstance(self.entry.get("steps"), dict):
            self.data[self.target] = {"md5": md5, "steps": {}}
        self.entry["steps"][step] = {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), **info}
        write_json(self.path, self.data)
