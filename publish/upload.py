"""Upload a result folder with DVC (data) and git (pointer), or download it back.

Upload: the result folder is copied into a git clone of the data repository (the workspace) at
``remote_dir_path``, tracked with ``dvc add``, pushed with ``dvc push`` (bounded retries with
backoff: DVC never retries uploads itself, and a repeated push completes a partial one),
verified by pulling it into a scratch place with ``verify`` on and comparing byte for byte, and
only then is the ``.dvc`` pointer committed and pushed to git (rebase and retry when another
device pushed meanwhile; never a force-push, never ``dvc gc``). A journal in the result folder
records each step, so a re-run resumes and an unchanged folder sends nothing and commits nothing.
"""

from __future__ import annotations

import filecmp
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from common.layout import is_bookkeeping
from publish import dagshub_api
from publish.credentials import REMOTE, Credentials, check_remote, dvc_env, git_env
from publish.journal import Journal
from publish.tools import PublishError, Runner


@dataclass
class Target:
    """Where data and pointers go."""

    owner: str | None
    name: str | None
    branch: str
    remote_dir_path: str
    dvc_remote: str | None = None
    git_url: str | None = None
    workspace: Path | None = None

    @property
    def on_dagshub(self) -> bool:
        """The data goes to a DagsHub repository (its API can be asked before sending)."""
        return bool(self.owner and self.name) and str(self.dvc_remote).startswith(
            f"{dagshub_api.host()}/"
        )

    def __post_init__(self) -> None:
        if not self.dvc_remote or not self.git_url:
            if not (self.owner and self.name):
                raise PublishError(
                    "say where to publish: --owner and --name (DagsHub), or "
                    "--dvc-remote and --git-url"
                )
        if self.owner and self.name:
            base = f"{dagshub_api.host()}/{self.owner}/{self.name}"
            self.dvc_remote = self.dvc_remote or f"{base}.dvc"
            self.git_url = self.git_url or f"{base}.git"
        path = Path(self.remote_dir_path)
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise PublishError(
                f"--remote-dir-path {self.remote_dir_path!r} must be a relative "
                "path inside the repository"
            )
        if self.workspace is None:
            slug = "".join(c if c.isalnum() else "_" for c in self.git_url)[-80:]
            self.workspace = Path.home() / ".cache/edge-vision-benchmark/repos" / slug


@dataclass
class Settings:
    retries: int = 4
    backoff_s: float = 2.0
    timeout_s: float = 3600.0
    jobs: int = 4
    net_timeout_s: int = 30
    verbose: bool = False


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not is_bookkeeping(p.name))


def describe(local: Path, target: Target) -> str:
    """What an upload would send (``--dry-run``)."""
    files = _files(local)
    size = sum(p.stat().st_size for p in files)
    return (
        f"would upload {len(files)} files, {size / 1e6:.1f} MB, from {local}\n"
        f"  data    -> {target.dvc_remote} (DVC, content-addressed)\n"
        f"  pointer -> {target.git_url} branch {target.branch}: "
        f"{target.remote_dir_path}.dvc"
    )


class Workspace:
    """A git clone of the data repository with DVC set up for the target remote."""

    def __init__(self, target: Target, runner: Runner, settings: Settings) -> None:
        self.target, self.run, self.settings = target, runner, settings
        self.dir: Path = target.workspace  # type: ignore[assignment]

    def git(self, *args: str, check: bool = True, timeout: float = 120):
        return self.run.run(["git", *args], self.dir, timeout=timeout, check=check)

    def dvc(self, *args: str, check: bool = True, timeout: float = 600):
        return self.run.run(["dvc", *args], self.dir, timeout=timeout, check=check)

    def prepare(self) -> None:
        """Clone or update; make sure DVC knows the remote (URL only, no credential)."""
        t = self.target
        if not (self.dir / ".git").exists():
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            if self.dir.exists():
                shutil.rmtree(self.dir)
            self.run.run(
                ["git", "clone", "--quiet", str(t.git_url), str(self.dir)], self.dir.parent
            )
        self.git("config", "user.name", "edge-vision-benchmark")
        self.git("config", "user.email", "edge-vision-benchmark@localhost")
        self.git("fetch", "--quiet", "origin")
        remote_branch = (
            self.git(
                "rev-parse", "--verify", "--quiet", f"origin/{t.branch}", check=False
            ).returncode
            == 0
        )
        if remote_branch:
            self.git("checkout", "--quiet", "-B", t.branch, f"origin/{t.branch}")
        else:
            self.git("checkout", "--quiet", "-B", t.branch)
        if not (self.dir / ".dvc").exists():
            self.dvc("init", "--quiet")
        s = self.settings
        self.dvc("remote", "add", "--force", "--default", REMOTE, str(t.dvc_remote))
        for key, value in (
            ("read_timeout", s.net_timeout_s),
            ("connect_timeout", s.net_timeout_s),
            ("jobs", s.jobs),
        ):
            if str(t.dvc_remote).startswith(("http://", "https://")) or key == "jobs":
                self.dvc("remote", "modify", REMOTE, key, str(value))
        self.dvc("config", "core.analytics", "false")
        self.dvc("config", "core.check_update", "false")

    def pointer(self) -> Path:
        return self.dir / f"{self.target.remote_dir_path}.dvc"

    def md5(self) -> str | None:
        """The directory hash recorded in the pointer file."""
        if not self.pointer().exists():
            return None
        for line in self.pointer().read_text().splitlines():
            if line.strip().startswith("- md5:") or line.strip().startswith("md5:"):
                return line.split("md5:")[1].strip()
        return None


def _with_retries(action, what: str, settings: Settings) -> None:
    for attempt in range(1, settings.retries + 1):
        try:
            action()
            return
        except PublishError as exc:
            if attempt == settings.retries:
                raise PublishError(
                    f"{what} failed {attempt} times; last: {exc}. The data is "
                    "safe locally; re-run to resume"
                ) from None
            delay = settings.backoff_s * 2 ** (attempt - 1) * (1 + random.random() / 4)
            print(
                f"  {what} failed ({exc}); retry {attempt}/{settings.retries - 1} in {delay:.0f} s"
            )
            time.sleep(delay)


def _verify(ws: Workspace, local: Path, runner: Runner) -> None:
    """Pull the pushed data into a scratch place (own cache, verify on); compare byte for byte."""
    with tempfile.TemporaryDirectory(prefix="evb-verify-") as scratch_dir:
        scratch = Path(scratch_dir)
        runner.run(["dvc", "init", "--no-scm", "--quiet"], scratch)
        runner.run(
            ["dvc", "remote", "add", "--default", REMOTE, str(ws.target.dvc_remote)], scratch
        )
        runner.run(["dvc", "remote", "modify", REMOTE, "verify", "true"], scratch)
        pointer = scratch / ws.pointer().name
        shutil.copy(ws.pointer(), pointer)
        done = runner.run(["dvc", "pull", pointer.name], scratch, check=False, timeout=1800)
        pulled = scratch / Path(ws.target.remote_dir_path).name
        if done.returncode != 0 or not pulled.exists():
            raise PublishError(
                "verification failed: the remote copy could not be pulled "
                f"intact ({done.stderr.strip().splitlines()[-1:]})"
            )
        for path in _files(local):
            other = pulled / path.relative_to(local)
            if not other.exists() or not filecmp.cmp(path, other, shallow=False):
                raise PublishError(
                    f"verification failed: {path.relative_to(local)} differs on the remote"
                )


def _publish_git(ws: Workspace, message: str, settings: Settings) -> str | None:
    """Commit the pointer and push; rebase and retry when another device pushed meanwhile.
    Returns the new commit, or None when there was nothing to commit."""
    parent = Path(ws.target.remote_dir_path).parent
    paths = [
        f"{ws.target.remote_dir_path}.dvc",
        str(parent / ".gitignore"),
        ".dvc/config",
        ".dvcignore",
        ".dvc/.gitignore",
    ]
    ws.git("add", "--", *[p for p in paths if (ws.dir / p).exists()])
    if ws.git("diff", "--cached", "--quiet", check=False).returncode == 0:
        ahead = ws.git("rev-list", "--count", f"origin/{ws.target.branch}..HEAD", check=False)
        if ahead.returncode == 0 and ahead.stdout.strip() == "0":
            return None
    else:
        ws.git("commit", "--quiet", "-m", message)
    for _attempt in range(settings.retries):
        pushed = ws.git("push", "--quiet", "origin", f"HEAD:{ws.target.branch}", check=False)
        if pushed.returncode == 0:
            return ws.git("rev-parse", "HEAD").stdout.strip()
        ws.git("fetch", "--quiet", "origin")
        if (
            ws.git(
                "rev-parse", "--verify", "--quiet", f"origin/{ws.target.branch}", check=False
            ).returncode
            != 0
        ):
            continue
        rebased = ws.git("rebase", f"origin/{ws.target.branch}", check=False)
        if rebased.returncode != 0:
            ws.git("rebase", "--abort", check=False)
            raise PublishError(
                f"another upload changed {ws.target.remote_dir_path}.dvc at the same time; the "
                "data is pushed and safe, but the pointer was not published: choose another "
                "--remote-dir-path and re-run"
            )
        time.sleep(random.random())
    raise PublishError("git push kept being rejected; re-run to resume")


@contextmanager
def _session(
    target: Target, settings: Settings, write: bool = False
) -> Iterator[tuple[Runner, Workspace]]:
    """Check the token (and, on DagsHub, the repository and the token's right to ``write``),
    then a prepared workspace whose dvc and git see the credentials."""
    creds = Credentials.resolve(target.owner, dagshub=target.on_dagshub)
    if target.on_dagshub and creds.token:
        user = dagshub_api.check_repository(creds.token, str(target.owner), str(target.name), write)
        creds.user = creds.explicit_user or user
    check_remote(creds, str(target.dvc_remote))
    deadline = time.monotonic() + settings.timeout_s
    with ExitStack() as stack:
        env = {
            **dvc_env(creds, str(target.dvc_remote), stack),
            **git_env(creds, str(target.git_url)),
        }
        runner = Runner(env, creds.secrets(), deadline, settings.verbose)
        ws = Workspace(target, runner, settings)
        ws.prepare()
        yield runner, ws


def upload(local: Path, target: Target, message: str, settings: Settings) -> dict:
    """Publish ``local``; returns what was done. Raises PublishError with one-line reasons."""
    if not local.is_dir() or not _files(local):
        raise PublishError(f"{local} is not a folder with files to upload")
    with _session(target, settings, write=True) as (runner, ws):
        journal = Journal(local, f"{target.dvc_remote}::{target.remote_dir_path}")
        destination = ws.dir / target.remote_dir_path
        if destination.exists():
            shutil.rmtree(destination)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(
            local, destination, ignore=lambda _d, names: [n for n in names if is_bookkeeping(n)]
        )
        print(f"tracking {len(_files(local))} files with DVC")
        ws.dvc("add", "--quiet", target.remote_dir_path, timeout=1800)
        md5 = ws.md5() or "?"
        journal.record("added", md5)
        print(f"pushing data (md5 {md5}) to {target.dvc_remote}")
        _with_retries(
            lambda: ws.dvc("push", "--quiet", f"{target.remote_dir_path}.dvc", timeout=3600),
            "dvc push",
            settings,
        )
        journal.record("pushed", md5)
        if not journal.done("verified", md5):
            print("verifying the remote copy")
            _verify(ws, local, runner)
        journal.record("verified", md5)
        commit = _publish_git(ws, message, settings)
        journal.record("published", md5, commit=commit or "unchanged")
        shutil.rmtree(destination)  # the data lives in the result folder and the DVC cache
    return {"md5": md5, "commit": commit, "pointer": f"{target.remote_dir_path}.dvc"}


def download(local: Path, target: Target, settings: Settings) -> dict:
    """Bring a published folder back: the git pointer, then ``dvc pull`` with verify on."""
    if local.exists() and any(local.iterdir()):
        raise PublishError(f"{local} is not empty: download into a new folder")
    with _session(target, settings) as (_, ws):
        if not ws.pointer().exists():
            raise PublishError(
                f"{target.remote_dir_path}.dvc is not on branch {target.branch} of {target.git_url}"
            )
        ws.dvc("remote", "modify", "--local", REMOTE, "verify", "true")
        pulled = ws.dvc("pull", f"{target.remote_dir_path}.dvc", check=False, timeout=3600)
        source = ws.dir / target.remote_dir_path
        if pulled.returncode != 0 or not source.exists():
            raise PublishError(
                "download failed verification or transfer: "
                f"{(pulled.stderr.strip().splitlines() or ['?'])[-1]}"
            )
        local.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, local, dirs_exist_ok=True)
        md5 = ws.md5()
        shutil.rmtree(source)
    return {"md5": md5, "files": len(_files(local))}


def download_all(local: Path, target: Target, settings: Settings) -> dict:
    """Every ``<prefix>/<device>/<run>`` published under ``target.remote_dir_path`` (the
    prefix), pulled in one ``dvc pull`` with verify on, laid out as ``local/<device>/<run>``:
    each a result folder as the device uploaded it."""
    if local.exists() and any(local.iterdir()):
        raise PublishError(f"{local} is not empty: download into a new folder")
    with _session(target, settings) as (_, ws):
        prefix = ws.dir / target.remote_dir_path
        pointers = sorted(p.relative_to(ws.dir) for p in prefix.glob("*/*.dvc") if p.is_file())
        if not pointers:
            raise PublishError(
                f"no {target.remote_dir_path}/<device>/<run> on branch {target.branch} of "
                f"{target.git_url}"
            )
        ws.dvc("remote", "modify", "--local", REMOTE, "verify", "true")
        pulled = ws.dvc("pull", *map(str, pointers), check=False, timeout=3600)
        if pulled.returncode != 0:
            raise PublishError(
                "download failed verification or transfer: "
                f"{(pulled.stderr.strip().splitlines() or ['?'])[-1]}"
            )
        runs = [(p.parent.name, p.stem, ws.dir / p.with_suffix("")) for p in pointers]
        place_runs(runs, local)
    return {"runs": [(device, run) for device, run, _ in runs], "files": len(_files(local))}


def place_runs(runs: list[tuple[str, str, Path]], local: Path) -> None:
    """Move each (device, run, source folder) to ``local/<device>/<run>`` as one step: into a
    hidden staging folder beside ``local``, renamed to ``local`` when every run is in, so an
    interrupted download leaves no run folder that looks whole (only the staging folder, if the
    process was killed)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=local.parent, prefix=f".{local.name}.partial-"))
    try:
        for device, run, source in runs:
            (staging / device).mkdir(exist_ok=True)
            shutil.move(source, staging / device / run)  # a rename on one file system
        if local.exists():
            local.rmdir()  # empty: checked before the download
        staging.rename(local)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
