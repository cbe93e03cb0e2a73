"""The few DagsHub API endpoints the publisher and the ``dagshub`` client use, for the loopback
server of ``tests/dvc_server.py`` (set ``DAGSHUB_CLIENT_HOST`` to its ``host``).

Checked against DagsHub/client (``dagshub/auth/tokens.py``, ``dagshub/common/api/repo.py``,
``dagshub/common/api/responses.py`` at 1759e662) and the Gitea API DagsHub serves:

- ``GET /api/v1/user`` with ``Authorization: Bearer <token>``: 200 and the user (the client
  requires ``login`` and ``username``), else 401. ``dagshub login --token`` calls it before it
  caches a token, and again each time a process takes a token from the cache.
- ``GET /api/v1/repos/<owner>/<repo>``: the repository (every field of ``RepoAPIResponse``,
  which the client builds with ``dacite``) with the caller's ``permissions`` {admin, push, pull};
  404 where it does not exist or the caller may not see it (private), as Gitea answers.
"""

from __future__ import annotations

import json


class DagsHubApi:
    """``tokens``: token → user name; ``repos``: "owner/name" → {user name: "read"|"write"}."""

    def __init__(self, tokens: dict[str, str], repos: dict[str, dict[str, str]]):
        self.tokens, self.repos = tokens, repos
        self.calls: list[tuple[str, str, str | None]] = []  # (method, path, user or None)

    @staticmethod
    def _user(name: str) -> dict:
        return {
            "id": abs(hash(name)) % 10_000,
            "login": name,
            "full_name": name.title(),
            "avatar_url": "",
            "public_email": None,
            "website": None,
            "company": None,
            "description": None,
            "username": name,
        }

    def answer(self, method: str, path: str, headers) -> tuple[int, bytes]:
        auth = headers.get("Authorization", "")
        user = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        path = path.split("?", maxsplit=1)[0].rstrip("/")
        self.calls.append((method, path, user))
        if method != "GET":
            return 405, b'{"message": "method not allowed"}'
        if path == "/api/v1/user":
            if user is None:
                return 401, b'{"message": "token is required"}'
            return 200, json.dumps(self._user(user)).encode()
        prefix = "/api/v1/repos/"
        if path.startswith(prefix) and path[len(prefix) :].count("/") == 1:
            full = path[len(prefix) :]
            access = self.repos.get(full, {}).get(user or "")
            if full not in self.repos or access is None:  # private: invisible to others
                return 404, b'{"message": "repository does not exist"}'
            owner, name = full.split("/")
            repo = {
                "id": 1,
                "owner": self._user(owner),
                "name": name,
                "full_name": full,
                "description": "",
                "private": True,
                "fork": False,
                "parent": None,
                "empty": False,
                "mirror": False,
                "size": 0,
                "html_url": f"/{full}",
                "ssh_url": None,
                "clone_url": f"/{full}.git",
                "website": None,
                "stars_count": 0,
                "forks_count": 0,
                "watchers_count": 0,
                "open_issues_count": 0,
                "default_branch": "main",
                "created_at": "2026-11-01T00:00:00Z",
                "updated_at": "2026-11-01T00:00:00Z",
                "permissions": {
                    "admin": user == owner,
                    "push": access == "write",
                    "pull": True,
                },
            }
            return 200, json.dumps(repo).encode()
        return 404, b'{"message": "not found"}'
