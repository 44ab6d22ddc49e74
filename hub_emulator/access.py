"""Who the caller is and what it may touch: bearer-token auth, repo addressing and the Hub's visibility rules.

One token (the server's) is accepted and owns every namespace as user ``local``. A wrong token is a 401 on every
route, as on the Hub; private repos do not exist for anonymous callers (RepoNotFound, never 403).
"""

from __future__ import annotations

import hmac

from hub_emulator.storage import HubError, RepoId, RepoMeta, repo_not_found
from hub_emulator.transport import Exchange

USER = "local"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


class AccessControl(Exchange):
    """Auth checks and repo URLs for the endpoint mixins."""

    def _user(self) -> str | None:
        """The caller's user name, or None when anonymous. A wrong token is a 401 everywhere, as on the Hub."""
        header = self.headers.get("Authorization")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        expected = self._hub.token.encode("latin-1")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode("latin-1"), expected):
            raise HubError(401, INVALID_CREDENTIALS)
        return USER

    def _require_user(self) -> str:
        user = self._user()
        if user is None:
            raise HubError(401, "This operation needs an access token (Authorization: Bearer ...)")
        return user

    def _readable(self, repo: RepoId) -> RepoMeta:
        """Private repos do not exist for anonymous callers: the Hub hides them behind RepoNotFound."""
        user = self._user()
        meta = self._hub.storage.meta(repo)
        if meta.private and user is None:
            raise repo_not_found(repo)
        return meta

    def _writable(self, repo: RepoId) -> str:
        user = self._require_user()
        self._hub.storage.meta(repo)
        return user

    @staticmethod
    def _repo(repo_type: str, namespace: str, name: str) -> RepoId:
        """A repo addressed by a request; names that could never exist (``..``, slashes) are simply not found."""
        repo = RepoId(repo_type, namespace, name)
        try:
            repo.validate()
        except HubError:
            raise repo_not_found(repo) from None
        return repo

    def _repo_url(self, repo: RepoId) -> str:
        prefix = "" if repo.type == "model" else f"/{repo.plural}"
        return f"{self._base}{prefix}/{repo.full}"
