"""The request handler: per-request setup, error containment and the routing table of the emulated Hub.

Revisions arrive quoted with ``safe=""`` (``refs%2Fpr%2F1``), so the raw path is split first, then unquoted. Returned
URLs are built from the request's ``Host`` so they parse against whatever endpoint the client was configured with.
Any unexpected exception is answered as a 4xx: the client retries 5xx replies with backoff for ~23 s.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from hub_emulator.downloads import DownloadEndpoints
from hub_emulator.repos import RepoEndpoints
from hub_emulator.storage import DEFAULT_BRANCH, REPO_TYPES, HubError, RepoId, repo_not_found
from hub_emulator.uploads import UploadEndpoints

logger = logging.getLogger("hub_emulator")

XET_UNSUPPORTED = (
    "The hub emulator does not speak Xet: set HF_HUB_DISABLE_XET=1 before importing huggingface_hub "
    "so large files go through Git LFS"
)
TYPE_BY_PLURAL = {plural: singular for singular, plural in REPO_TYPES.items()}
HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


class HubHandler(RepoEndpoints, UploadEndpoints, DownloadEndpoints):
    """Serves one connection of :class:`~hub_emulator.server.HubServer`; the endpoints come from the mixins."""

    def _dispatch(self) -> None:
        self._hub = self.server.hub
        self._replied = False
        self._body_read = False
        self._close_after = self.close_connection
        self._chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        split = urlsplit(self.path)
        self._raw_path = split.path
        self._query = dict(parse_qsl(split.query, keep_blank_values=True))
        host = self.headers.get("Host", "")
        self._base = f"http://{host}" if HOST_RE.match(host) else self._hub.endpoint
        length = "0" if self._chunked else self.headers.get("Content-Length") or "0"
        self._length = int(length) if length.isdigit() else 0
        try:
            if not length.isdigit():  # the body's extent is unknown: refuse, and do not reuse the connection
                self._body_read, self.close_connection = True, True
                raise HubError(400, f"Invalid Content-Length {length!r}")
            self._route([unquote(part) for part in split.path.split("/")[1:]])
        except HubError as err:
            self._error(err)
        except (ConnectionError, TimeoutError):
            raise
        except Exception as exc:  # an emulator bug: report it as 4xx, since the client retries 5xx for ~23 s
            logger.exception("error handling %s %s", self.command, self.path)
            self._error(HubError(400, f"Internal emulator error: {exc!r}"))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch

    def _route(self, seg: list[str]) -> None:
        if seg[:1] == ["api"]:
            self._route_api(seg[1:])
            return
        repo_type = "model"
        if len(seg) > 3 and seg[0] in ("datasets", "spaces"):
            repo_type, seg = TYPE_BY_PLURAL[seg[0]], seg[1:]
        method = self.command
        if len(seg) >= 4 and seg[2] == "resolve" and method in ("GET", "HEAD"):
            self._resolve(self._repo(repo_type, seg[0], seg[1]), seg[3], "/".join(seg[4:]))
        elif len(seg) >= 5 and seg[2] == "blob" and method in ("GET", "HEAD"):
            self._blob_page(self._repo(repo_type, seg[0], seg[1]), seg[3], "/".join(seg[4:]))
        elif len(seg) >= 3 and seg[1] == "resolve" and method in ("GET", "HEAD"):
            raise repo_not_found(RepoId(repo_type, "", seg[0]))  # legacy un-namespaced ids never exist here
        elif len(seg) >= 6 and seg[1].endswith(".git") and seg[2:5] == ["info", "lfs", "objects"]:
            repo = self._repo(repo_type, seg[0], seg[1].removesuffix(".git"))
            match (method, seg[5:]):
                case ("POST", ["batch"]):
                    self._lfs_batch(repo)
                case ("POST", ["verify"]):
                    self._lfs_verify(repo)
                case ("PUT", [oid]):
                    self._lfs_put(repo, oid)
                case _:
                    raise HubError(405, f"{method} is not supported on {self._raw_path}")
        else:
            raise HubError(404, f"No route for {method} {self._raw_path}")

    def _route_api(self, seg: list[str]) -> None:
        match (self.command, seg):
            case ("GET", ["whoami-v2"]):
                self._whoami()
            case ("GET", ["agent-harnesses"]):
                self._json(200, {"standardEnvVars": [], "harnesses": {}})
            case ("POST", ["repos", "create"]):
                self._create_repo()
            case ("POST", ["validate-yaml"]):
                self._read_json()
                self._json(200, {"errors": [], "warnings": []})
            case (_, [plural, namespace, name, *rest]) if plural in TYPE_BY_PLURAL:
                self._route_repo_api(self._repo(TYPE_BY_PLURAL[plural], namespace, name), rest)
            case (_, [plural, name]) if plural in TYPE_BY_PLURAL:
                raise repo_not_found(RepoId(TYPE_BY_PLURAL[plural], "", name))
            case _:
                raise HubError(404, f"No route for {self.command} {self._raw_path}")

    def _route_repo_api(self, repo: RepoId, rest: list[str]) -> None:
        match (self.command, rest):
            case ("GET", []):
                self._info(repo, DEFAULT_BRANCH)
            case ("GET", ["revision", revision]):
                self._info(repo, revision)
            case ("POST", ["preupload", revision]):
                self._preupload(repo, revision)
            case ("POST", ["commit", revision]):
                self._commit(repo, revision)
            case ("POST", ["tag", revision]):
                self._create_tag(repo, revision)
            case ("DELETE", ["tag", tag]):
                self._delete_tag(repo, tag)
            case ("POST", ["branch", branch]):
                self._create_branch(repo, branch)
            case ("GET", ["refs"]):
                self._refs(repo)
            case ("GET", ["commits", revision]):
                self._history(repo, revision)
            case ("GET", ["tree", revision, *path]):
                self._tree(repo, revision, path)
            case ("GET", ["xet-write-token" | "xet-read-token", _]):
                raise HubError(400, XET_UNSUPPORTED)
            case _:
                raise HubError(404, f"No route for {self.command} {self._raw_path}")
