"""Credentials for DagsHub (or any HTTP DVC remote and git host), never written where they last.

The token comes from ``DAGSHUB_USER_TOKEN``, else (for a DagsHub repository) from the cache that
``dagshub login`` fills (``publish.dagshub_api``); the user from ``DAGSHUB_USER``, else the
token's user on DagsHub, else the owner.
DVC gets them through a config file in a private temporary directory named by
``DVC_GLOBAL_CONFIG_DIR`` (mode 0600, deleted afterwards); git through an ``http.extraHeader``
passed in the environment (``GIT_CONFIG_*``). Neither appears in a URL, a committed file or a
log line.
"""

from __future__ import annotations

import base64
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from publish.tools import PublishError

TOKEN_ENV, USER_ENV = "DAGSHUB_USER_TOKEN", "DAGSHUB_USER"
REMOTE = "origin"
ABSENT_OBJECT = "files/md5/00/" + "0" * 30


@dataclass
class Credentials:
    user: str | None
    token: str | None
    explicit_user: str | None = None

    @classmethod
    def resolve(cls, owner: str | None, dagshub: bool = False) -> Credentials:
        """From the environment; on DagsHub, a ``dagshub login`` cache stands in for the token."""
        token = os.environ.get(TOKEN_ENV) or None
        if token is None and dagshub:
            from publish.dagshub_api import cached_token

            token = cached_token()
        explicit = os.environ.get(USER_ENV) or None
        return cls(explicit or owner, token, explicit)

    def basic(self) -> str | None:
        if not self.token:
            return None
        return base64.b64encode(f"{self.user or ''}:{self.token}".encode()).decode()

    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.basic()) if s]


def needs_auth(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def dvc_env(creds: Credentials, remote_url: str, stack) -> dict[str, str]:
    """Environment for dvc: a private global config holding the remote's credentials."""
    folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="evb-dvc-")))
    os.chmod(folder, 0o700)
    env = {"DVC_GLOBAL_CONFIG_DIR": str(folder), "DVC_SITE_CACHE_DIR": str(folder / "site")}
    if needs_auth(remote_url) and creds.token:
        config = folder / "config"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            # the URL too: a remote section without one makes every dvc command fail (rc 251)
            f.write(
                f"['remote \"{REMOTE}\"']\n    url = {remote_url}\n    auth = basic\n"
                f"    user = {creds.user}\n    password = {creds.token}\n"
            )
    return env


def git_env(creds: Credentials, git_url: str) -> dict[str, str]:
    """Environment for git: the Authorization header for HTTP(S) hosts, nothing else."""
    if not (needs_auth(git_url) and creds.token):
        return {}
    return {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "http.extraHeader",
        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {creds.basic()}",
    }


def check_remote(creds: Credentials, remote_url: str, timeout: float = 10.0) -> None:
    """One authenticated GET of a surely-absent object before any upload: 404 means the token
    is accepted; 401/403 or no answer ends here with one line saying what to do."""
    if not needs_auth(remote_url):
        return
    if not creds.token:
        raise PublishError(
            f"no token: set {TOKEN_ENV} or run 'dagshub login' (and {USER_ENV} if your user is "
            "not the repository owner)"
        )
    request = urllib.request.Request(f"{remote_url.rstrip('/')}/{ABSENT_OBJECT}")
    request.add_header("Authorization", f"Basic {creds.basic()}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        opener.open(request, timeout=timeout).close()
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise PublishError(
                f"the DVC remote refused the token (HTTP {exc.code}): set "
                f"{TOKEN_ENV} to a token with write access"
            ) from None
        if exc.code != 404:
            raise PublishError(f"the DVC remote answered HTTP {exc.code} to a probe") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PublishError(
            f"no answer from the DVC remote within {timeout:.0f} s ({reason}); "
            "check the network and re-run"
        ) from None
