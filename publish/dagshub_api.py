"""DagsHub's own side of publishing, through its client (the ``dagshub`` package).

- The host is the client's: ``DAGSHUB_CLIENT_HOST`` (default ``https://dagshub.com``); the DVC
  remote and git URLs of ``--owner``/``--name`` are derived from it.
- The token: ``DAGSHUB_USER_TOKEN``, else the one ``dagshub login`` cached
  (``DAGSHUB_CLIENT_TOKENS_CACHE``, default ``~/.cache/dagshub/tokens``), which the client checks
  with ``GET /api/v1/user``. Never the client's OAuth flow: it would wait for a human.
- Before anything is sent: ``GET /api/v1/user`` (whose token), then ``GET
  /api/v1/repos/<owner>/<repo>`` (404: no such repository, or not visible to this user; its
  ``permissions.push`` says whether the token may write), each ending in one line on failure.

Note (dagshub 0.7.3, ``TokenStorage.get_token_object``): the client drops a cached token from its
cache whenever ``/api/v1/user`` answers anything but 200, a server error included.
"""

from __future__ import annotations

import os

from publish.tools import PublishError

TOKEN_ENV = "DAGSHUB_USER_TOKEN"


def _config():
    try:
        from dagshub.common import config
    except ImportError:
        raise PublishError(
            "the dagshub package is missing: pip install dagshub (or use --dvc-remote and "
            "--git-url)"
        ) from None
    return config


def host() -> str:
    """The DagsHub instance the client talks to, without a trailing slash."""
    return _config().host


def token_available() -> bool:
    """A token is set or ``dagshub login`` left a cache (no network: the check comes later)."""
    if os.environ.get(TOKEN_ENV):
        return True
    try:
        return os.path.exists(_config().cache_location)
    except PublishError:
        return False


def cached_token() -> str | None:
    """The token ``dagshub login`` cached for this host, validated by the client; or None."""
    config = _config()
    from dagshub.auth import tokens

    if not os.path.exists(config.cache_location):
        return None
    config.token = None  # an empty DAGSHUB_USER_TOKEN is "none", not a token to validate
    try:
        return tokens.get_token(host=config.host, fail_if_no_token=True)
    except RuntimeError:  # no valid token for this host in the cache
        return None
    except Exception as exc:
        what = f"the dagshub token cache {config.cache_location}"
        raise PublishError(_network_or(exc, what)) from None


def check_repository(token: str, owner: str, name: str, write: bool) -> str:
    """Fail with one line unless ``owner/name`` exists on the host and the token may write to it
    (``write``) or read it; returns the token's user name."""
    import httpx
    from dagshub.auth.token_auth import HTTPBearerAuth
    from dagshub.auth.tokens import TokenStorage
    from dagshub.common.api.repo import RepoAPI, RepoNotFoundError

    where = host()
    auth = HTTPBearerAuth(token)
    try:
        user = TokenStorage.get_username_of_token(auth, where)
        if user is None:
            raise PublishError(
                f"{where} refused the token: set {TOKEN_ENV} to a valid token or run "
                "'dagshub login' again"
            )
        try:
            info = RepoAPI(f"{owner}/{name}", host=where, auth=auth).get_repo_info()
        except RepoNotFoundError:
            raise PublishError(
                f"repository {owner}/{name} does not exist on {where} (or {user['username']} "
                "cannot see it): create it or correct --owner/--name"
            ) from None
    except httpx.HTTPError as exc:
        raise PublishError(_network_or(exc, where)) from None
    except RuntimeError as exc:  # the client's "status code N" for other HTTP errors
        if isinstance(exc, PublishError):
            raise
        raise PublishError(f"{where}: {exc}") from None
    allowed = info.permissions or {}
    if not allowed.get("push" if write else "pull"):
        access = "write to" if write else "read"
        raise PublishError(
            f"the token of {user['username']} may not {access} {owner}/{name} on {where}: use a "
            "token with write access (a collaborator with write, or the owner)"
        )
    return user["username"]


def _network_or(exc: Exception, what: str) -> str:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"could not use {what} ({reason}); check the network (or the file) and re-run"
