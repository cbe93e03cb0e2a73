"""The result layout: whole-file writes are atomic (a writer killed between the temporary write
and the rename leaves the old file intact), and unusable files give one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from common.layout import LayoutError, read_json, read_status, write_json, write_status
from tests.conftest import ROOT
from tests.mounts import remount, tmpfs

WRITER = """
import os, sys, time
from common import layout
real_replace = os.replace
def replace(src, dst):  # stop between the temporary write and the rename
    print(src, flush=True)
    time.sleep(60)
    real_replace(src, dst)
os.replace = replace
layout.write_json(sys.argv[1], {"new": list(range(1000))})
"""


def test_a_writer_killed_before_the_rename_leaves_the_old_file_intact(tmp_path):
    target = tmp_path / "idling_power.json"
    write_json(target, {"old": True})
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    tmp = proc.stdout.readline().strip()  # the temporary file is written in full by now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert tmp and tmp != str(target)
    assert json.loads(open(tmp).read())["new"][-1] == 999  # the new content existed...
    assert read_json(target) == {"old": True}  # ...but the name still points to the old one


def test_a_later_write_replaces_and_leaves_no_temporary_file(tmp_path):
    write_status(tmp_path, {"status": "running"})
    write_status(tmp_path, {"status": "complete"})
    assert read_status(tmp_path) == {"status": "complete"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


@pytest.mark.parametrize(
    "content,expected",
    [
        (b'{"status": "comp', "not valid JSON"),  # truncated by an earlier crash
        (b"", "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b'["status", "complete"]', "holds a JSON list, not a dict"),
    ],
)
def test_unusable_json_is_a_one_line_error(tmp_path, content, expected):
    path = tmp_path / "status.json"
    path.write_bytes(content)
    with pytest.raises(LayoutError) as err:
        read_json(path)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert read_status(tmp_path) is None  # a corrupt status means: measure again


def test_a_read_only_folder_is_a_one_line_error_and_the_old_file_stays(tmp_path):
    with tmpfs(tmp_path / "ro") as folder:
        write_json(folder / "a.json", {"old": 1})
        remount(folder, read_only=True)
        with pytest.raises(LayoutError, match=r"cannot write .*a\.json: Read-only file system"):
            write_json(folder / "a.json", {"new": 1})
        assert read_json(folder / "a.json") == {"old": 1}


def test_a_full_disk_is_a_one_line_error_and_the_old_file_stays(tmp_path):
    with tmpfs(tmp_path / "small", size="64k") as folder:
        write_json(folder / "a.json", {"old": 1})
        with pytest.raises(LayoutError, match="No space left on device"):
            write_json(folder / "a.json", {"new": "x" * 200_000})
        assert read_json(folder / "a.json") == {"old": 1}
        assert [p.name for p in folder.iterdir()] == ["a.json"]  # no temporary file left


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    from common.layout import remove_stale_temporaries

    write_json(tmp_path / "a.json", {"old": 1})
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".a.json.123.tmp", tmp_path / "sub/.b.json.9.tmp"]
    for path in stale:
        path.write_text("{half")
    assert sorted(remove_stale_temporaries(tmp_path)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.json"]
