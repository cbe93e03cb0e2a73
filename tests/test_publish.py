"""Publishing with the real ``dvc`` and ``git`` against a DVC HTTP remote on 127.0.0.1
(``tests/dvc_server.py``, the stand-in for DagsHub's DVC endpoint) and a local bare git
repository (the stand-in for DagsHub's git side). Same code path as production: the
``data_version.py`` command line."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import threading
import time

import pytest

from tests.conftest import run_entry, wait_for
from tests.dvc_server import DvcRemote

TOKEN = "s3cr3t-token-value-1234"


@pytest.fixture
def remote(tmp_path):
    server = DvcRemote(tmp_path / "remote", "benchbot", TOKEN)
    yield server
    server.close()


@pytest.fixture
def git_repo(tmp_path):
    bare = tmp_path / "data.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    return bare


def result_folder(path, seed: int = 0):
    (path / "lenet/trt_profiling").mkdir(parents=True)
    (path / "idling_power.json").write_text('{"avg_idle_power": 4.2e6}\n')
    (path / "lenet/lenet_power_log.log").write_text(
        "".join(f"20241121-05:20:04.{i:06d},5000.0,{1000 + seed + i}.0\n" for i in range(5000))
    )
    (path / "lenet/trt_profiling/trt_layer_latency.json").write_bytes(os.urandom(200_000))
    (path / ".sweep.lock").write_text("123")
    return path


def data_version(
    tmp_path, remote, git_repo, *args, token=TOKEN, workspace="ws", timeout=180, login=None, **kw
):
    """data_version.py against the loopback remote and the bare repository. ``login``: a HOME
    where ``dagshub login`` cached a token, used instead of DAGSHUB_USER_TOKEN; the target is
    then ``--owner owner --name repo`` on the client's host (the remote's DagsHub imitation)."""
    env = {
        "DAGSHUB_USER_TOKEN": token or "",
        "DAGSHUB_USER": "benchbot",
        "HOME": str(tmp_path / "home"),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    where = ["--dvc-remote", remote.url]
    if login is not None:
        env.update(DAGSHUB_USER_TOKEN="", DAGSHUB_USER="", HOME=str(login))
        env["DAGSHUB_CLIENT_HOST"] = remote.host
        owner, name = remote.prefix.strip("/").removesuffix(".dvc").split("/")
        where = ["--owner", owner, "--name", name]
    return run_entry(
        [
            "data_version.py",
            *where,
            "--git-url",
            str(git_repo),
            "--workspace",
            str(tmp_path / workspace),
            "--retries",
            "3",
            "--net-timeout",
            "5",
            *args,
        ],
        env=env,
        timeout=timeout,
        **kw,
    )


def commits(git_repo) -> int:
    done = subprocess.run(
        ["git", "--git-dir", str(git_repo), "rev-list", "--count", "main"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(done.stdout.strip() or 0)


def same_tree(a, b) -> bool:
    files = sorted(
        p.relative_to(a)
        for p in a.rglob("*")
        if p.is_file() and p.name not in (".sweep.lock", "upload_journal.json")
    )
    other = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files == other and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def test_upload_then_download_byte_for_byte_and_idempotent(tmp_path, remote, git_repo):
    local = result_folder(tmp_path / "raw")

    def transfer(direction, folder, **kwargs):
        """data_version.py moving ``folder`` to or from the same place in the data repository."""
        args = ["--local-dir-path", str(folder), "--remote-dir-path", "raw_data/dev1/run1"]
        return data_version(tmp_path, remote, git_repo, direction, *args, **kwargs)

    up = transfer("--upload", local)
    assert up.returncode == 0, up.stderr
    assert "uploaded and verified" in up.stdout
    assert commits(git_repo) == 1 and remote.uploads() >= 4
    assert not (local / "lenet").joinpath("..", "..", "raw", ".dvc").exists()

    down = transfer("--download", tmp_path / "restored", workspace="ws2")
    assert down.returncode == 0, down.stderr
    assert same_tree(local, tmp_path / "restored")

    posts = remote.uploads()
    again = transfer("--upload", local)
    assert again.returncode == 0, again.stderr
    assert "nothing new to commit" in again.stdout
    assert remote.uploads() == posts  # no object sent
    assert commits(git_repo) == 1  # no commit made

    (local / "lenet/extra.csv").write_text("a,b\n1,2\n")  # new data at the same path
    third = transfer("--upload", local)
    assert third.returncode == 0, third.stderr
    assert commits(git_repo) == 2  # a new commit; history keeps the old version


def test_wrong_or_missing_token_fails_before_any_upload_and_is_never_printed(
    tmp_path, remote, git_repo
):
    local = result_folder(tmp_path / "raw")
    wrong = "wr0ng-token-value-9876"
    result = data_version(
        tmp_path, remote, git_repo, "--upload", "--local-dir-path", str(local), token=wrong
    )
    assert result.returncode == 1
    assert "DAGSHUB_USER_TOKEN" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert wrong not in result.stdout + result.stderr
    assert remote.uploads() == 0 and commits(git_repo) == 0
    missing = data_version(
        tmp_path, remote, git_repo, "--upload", "--local-dir-path", str(local), token=None
    )
    assert missing.returncode == 1 and "set DAGSHUB_USER_TOKEN" in missing.stderr
    ok = data_version(
        tmp_path, remote, git_repo, "--upload", "--local-dir-path", str(local), "--verbose"
    )
    assert ok.returncode == 0, ok.stderr
    assert TOKEN not in ok.stdout + ok.stderr
    ws = tmp_path / "ws"
    for path in ws.rglob("*"):
        if path.is_file() and ".git" not in path.parts[len(ws.parts) :][:1]:
            assert TOKEN.encode() not in path.read_bytes(), path


def test_failed_uploads_are_retried_until_complete(tmp_path, remote, git_repo):
    local = result_folder(tmp_path / "raw")
    remote.fail_uploads = 3
    result = data_version(tmp_path, remote, git_repo, "--upload", "--local-dir-path", str(local))
    assert result.returncode == 0, result.stderr
    assert "retry 1/2" in result.stdout
    assert remote.fail_uploads == 0
    assert any(p.name.endswith(".dir") for p in remote.objects())


def test_a_corrupted_remote_object_fails_verification(tmp_path, remote, git_repo):
    local = result_folder(tmp_path / "raw")
    assert (
        data_version(
            tmp_path, remote, git_repo, "--upload", "--local-dir-path", str(local)
        ).returncode
        == 0
    )
    biggest = max(
        (p for p in remote.objects() if not p.name.endswith(".dir")), key=lambda p: p.stat().st_size
    )
    remote.corrupt(biggest)
    down = data_version(
        tmp_path,
        remote,
        git_repo,
        "--download",
        "--local-dir-path",
        str(tmp_path / "restored"),
        workspace="ws2",
    )
    assert down.returncode == 1
    assert "verification" in down.stderr


def test_a_dead_server_fails_within_the_bound(tmp_path, remote, git_repo):
    local = result_folder(tmp_path / "raw")
    remote.blackhole = True
    started = time.monotonic()
    result = data_version(tmp_path, remote, git_repo, "--upload", "--local-dir-path", str(local))
    took = time.monotonic() - started
    assert result.returncode == 1
    assert "no answer" in result.stderr
    assert took < 10 + 15  # the 10 s probe, plus start-up
    assert commits(git_repo) == 0


@pytest.mark.slow  # two uploads and a dataset download through DVC
def test_two_devices_publish_to_one_repository_and_come_back_as_one_dataset(
    tmp_path, remote, git_repo
):
    import pandas as pd

    """Device a has only a `dagshub login` cache (the DagsHub way), device b a token in
    DAGSHUB_USER_TOKEN; both publish into one repository, which comes back as one dataset."""
    from tests.dagshub_api import DagsHubApi
    from tests.test_report import make_run

    remote.api = DagsHubApi({TOKEN: "benchbot"}, {"owner/repo": {"benchbot": "write"}})
    dagshub_login(tmp_path / "home-a", remote.host, TOKEN)
    results = {}

    def device(name: str, seed: int) -> None:
        local = make_run(tmp_path / f"raw-{name}", plots=False, seed=seed)
        (local / ".sweep.lock").write_text("123")
        results[name] = (
            local,
            data_version(
                tmp_path,
                remote,
                git_repo,
                "--upload",
                "--local-dir-path",
                str(local),
                "--remote-dir-path",
                f"raw_data/{name}/run1",
                workspace=f"ws-{name}",
                login=tmp_path / "home-a" if name == "a" else None,
            ),
        )

    threads = [threading.Thread(target=device, args=(n, i)) for i, n in enumerate(("a", "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name, (_, result) in results.items():
        assert result.returncode == 0, (name, result.stderr)
        assert TOKEN not in result.stdout + result.stderr
    assert commits(git_repo) == 2
    # a's DVC requests carried benchbot (the token's user, from the API) and the cached token
    assert ("GET", "/api/v1/repos/owner/repo", "benchbot") in remote.api.calls
    dataset = tmp_path / "dataset"
    down = data_version(
        tmp_path,
        remote,
        git_repo,
        "--download",
        "--all-devices",
        "--local-dir-path",
        str(dataset),
        "--remote-dir-path",
        "raw_data",
        workspace="ws-dataset",
    )
    assert down.returncode == 0, down.stderr
    assert "downloaded 2 runs of 2 devices" in down.stdout
    for name, (local, _) in results.items():
        assert same_tree(local, dataset / name / "run1")
    table = pd.read_csv(dataset / "runs.csv", keep_default_na=False)
    assert list(zip(table["device"], table["model"], table["status"], strict=True)) == [
        (d, m, s)
        for d in "ab"
        for m, s in (
            ("lenet", "complete"),
            ("resnet18", "complete"),
            ("vgg16", "failed"),
        )
    ]
    done = table[table["status"] == "complete"]
    assert (done["mean_latency_ms"].astype(float) == 3.0).all()  # 6 layers of 0.5 ms
    for row in done.itertuples():  # 5 W × the timing pass's wall time per inference
        folder = dataset / row.device / "run1" / row.model
        wall_ms = json.loads((folder / f"{row.model}_analysis.json").read_text())[
            "wall_time_per_inference_ms"
        ]
        assert float(row.energy_per_inference_mJ) == pytest.approx(5.0 * wall_ms, rel=0.05)


@pytest.mark.slow  # a sweep, then three uploads
def test_the_sweep_uploads_at_its_end_skips_without_target_and_prints_a_retry(
    tmp_path, remote, git_repo
):
    import sys

    from tests.conftest import ROOT
    from tests.test_sweep import FAST

    result = tmp_path / "raw"
    base = ["bash", str(ROOT / "run_experiment.sh"), "--result-dir", str(result), *FAST]
    base += ["--models", "lenet"]
    target = [
        "--dvc-remote",
        remote.url,
        "--git-url",
        str(git_repo),
        "--remote-dir-path",
        "raw_data/dev1/run1",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EVB_", "DAGSHUB"))}
    env.update(
        PYTHON=sys.executable,
        HOME=str(tmp_path / "home"),
        DAGSHUB_USER="benchbot",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )

    def sweep(args, token):
        run_env = {**env, **({"DAGSHUB_USER_TOKEN": token} if token else {})}
        done = subprocess.run(
            base + args,
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return done.returncode, done.stdout + done.stderr

    code, out = sweep([], None)
    assert code == 0, out
    assert "upload: skipped; to publish, set DAGSHUB_USER_TOKEN" in out
    assert "model 1 of 1, 0:" in out  # progress before each model
    lines = out.splitlines()  # the sweep's own last line (after the upload) is the report's path
    report = [i for i, x in enumerate(lines) if x.endswith(f"report: {result / 'report.html'}")]
    assert report and report[-1] > max(i for i, x in enumerate(lines) if "upload: skipped" in x)

    code, out = sweep(target, "wr0ng-token-value-9876")
    assert code == 3, out
    assert "Retry with:" in out and "data_version.py --upload" in out
    assert "wr0ng-token-value-9876" not in out
    assert (result / "lenet/status.json").exists() and commits(git_repo) == 0

    code, out = sweep(target, TOKEN)
    assert code == 0, out
    assert "uploaded and verified" in out and commits(git_repo) == 1


def dagshub_login(home, host: str, token: str) -> None:
    """``dagshub login --token`` as a user runs it: the client checks the token with the host,
    then caches it under ``home``."""
    import sys
    from pathlib import Path

    login = Path(sys.executable).with_name("dagshub")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSHUB")}
    env.update(HOME=str(home), NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    done = subprocess.run(
        [str(login), "login", "--token", token, "--host", host],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert token in (home / ".cache/dagshub/tokens").read_text()


def test_with_a_dagshub_login_cache_a_missing_repository_or_a_read_only_token_fails_first(
    tmp_path, remote, git_repo
):
    """No DAGSHUB_USER_TOKEN, only what `dagshub login` cached: the client's API is asked
    before anything is sent (the successful upload is in the two-devices test)."""
    from tests.dagshub_api import DagsHubApi

    reader_token = "r3ad-only-token-5555"
    remote.api = DagsHubApi(
        {TOKEN: "benchbot", reader_token: "reader"},
        {"owner/repo": {"benchbot": "write", "reader": "read"}, "owner/other": {}},
    )
    local = result_folder(tmp_path / "raw")
    for user, token in (("benchbot", TOKEN), ("reader", reader_token)):
        dagshub_login(tmp_path / user, remote.host, token)
    remote.prefix = "/owner/other.dvc"  # a repository benchbot cannot see
    missing = data_version(
        tmp_path, remote, git_repo, "--upload", "--local-dir-path", str(local),
        login=tmp_path / "benchbot",
    )  # fmt: skip
    remote.prefix = "/owner/repo.dvc"
    read_only = data_version(
        tmp_path, remote, git_repo, "--upload", "--local-dir-path", str(local),
        login=tmp_path / "reader",
    )  # fmt: skip
    for result, says in (
        (missing, "repository owner/other does not exist"),
        (read_only, "the token of reader may not write to owner/repo"),
    ):
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert says in result.stderr
        assert TOKEN not in result.stderr and reader_token not in result.stderr
    assert remote.uploads() == 0 and commits(git_repo) == 0
    assert not any(p.startswith("/owner/") for _, p, _ in remote.log)  # no DVC request at all


@pytest.mark.parametrize(
    "content", ["[1, 2]", '{"t": [1]}', '{"t": {"md5": "m", "steps": 3}}', "{"]
)
def test_a_corrupt_or_wrong_type_journal_starts_the_upload_afresh(tmp_path, caplog, content):
    from common.layout import UPLOAD_JOURNAL, read_json
    from publish.journal import Journal

    (tmp_path / UPLOAD_JOURNAL).write_text(content)
    journal = Journal(tmp_path, "t")
    assert not journal.done("pushed", "m")
    journal.record("added", "m")
    assert journal.done("added", "m")
    assert list(read_json(tmp_path / UPLOAD_JOURNAL)["t"]["steps"]) == ["added"]
    assert content == '{"t": {"md5": "m", "steps": 3}}' or "afresh" in caplog.text


def test_ctrl_c_during_an_upload_is_one_line_and_130_and_the_same_command_resumes(
    tmp_path, remote, git_repo
):
    """SIGINT to the whole foreground group, as a terminal's Ctrl-C sends it, while dvc waits on
    a remote that does not answer."""
    import signal

    local = result_folder(tmp_path / "raw")
    args = ["--upload", "--local-dir-path", str(local), "--remote-dir-path", "raw_data/d/r"]
    remote.blackhole = True
    proc = data_version(tmp_path, remote, git_repo, *args, wait=False)
    wait_for(lambda: remote.held or proc.poll() is not None, 60, "dvc to reach the remote")
    assert proc.poll() is None, proc.communicate()  # still waiting on the remote
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "interrupted" in err and commits(git_repo) == 0
    remote.blackhole = False
    again = data_version(tmp_path, remote, git_repo, *args)
    assert again.returncode == 0, again.stderr
    assert commits(git_repo) == 1


def test_an_interrupted_download_leaves_no_run_folder(tmp_path, monkeypatch):
    """``place_runs`` puts all runs in place in one rename, or none (and no staging folder)."""
    import shutil

    from publish import upload

    sources = []
    for device in ("a", "b"):
        folder = tmp_path / "pulled" / device / "run1"
        (folder / "lenet").mkdir(parents=True)
        (folder / "lenet" / "status.json").write_text("{}")
        sources.append((device, "run1", folder))
    local = tmp_path / "dataset"
    copies = []

    def failing_move(src, dst):
        copies.append(dst)
        if len(copies) == 2:
            raise OSError(28, "No space left on device")
        return shutil.copytree(src, dst)  # a copy: the sources stay for the second try

    monkeypatch.setattr(upload.shutil, "move", failing_move)
    with pytest.raises(OSError, match="No space"):
        upload.place_runs(sources, local)
    assert not local.exists() and sorted(tmp_path.iterdir()) == [tmp_path / "pulled"]
    monkeypatch.undo()
    local.mkdir()  # an empty target, as the download allows
    upload.place_runs(sources, local)  # moved for real this time
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("status.json")) == [
        "a/run1/lenet/status.json",
        "b/run1/lenet/status.json",
    ]
    assert sorted(tmp_path.iterdir()) == [local, tmp_path / "pulled"]
    assert not any((tmp_path / "pulled").rglob("status.json"))
