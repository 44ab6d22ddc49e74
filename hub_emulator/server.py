"""HTTP front end of the emulated Hub: the routes ``huggingface_hub`` 2.4 calls, answered the way it parses them.

Why the details matter (all from the shared protocol notes):

* The client's exception mapping keys on ``X-Error-Code``/``X-Error-Message`` (its 401 heuristics need https), so every
  error carries them, and client mistakes are always 4xx: 5xx replies are retried with backoff for ~23 s.
* Returned URLs (repo url, commitUrl, LFS hrefs, pagination links) are built from the request's ``Host`` so they
  parse against whatever endpoint the client was configured with (``127.0.0.1``, a compose service name, ...).
* Revisions arrive quoted with ``safe=""`` (``refs%2Fpr%2F1``), so the raw path is split first, then unquoted.
* On keep-alive connections an unread request body would be parsed as the next request: bodies are drained (or the
  connection closed) before any reply; ``Transfer-Encoding: chunked`` is decoded since http.server does not.
* LFS uploads are PUT with no Authorization header, so the batch reply embeds a one-time ticket in the href.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fnmatch
import hashlib
import hmac
import json
import logging
import re
import secrets
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import islice
from pathlib import Path
from tempfile import SpooledTemporaryFile
from types import TracebackType
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from hub_emulator.storage import (
    DEFAULT_BRANCH,
    REPO_TYPES,
    SHA256_RE,
    AddFile,
    Commit,
    DeleteFile,
    DeleteFolder,
    FileEntry,
    HubError,
    HubStorage,
    Operation,
    RepoId,
    RepoMeta,
    ensure_token,
    entry_not_found,
    repo_not_found,
)

logger = logging.getLogger("hub_emulator")

USER = "local"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
# Files the client should send through LFS: big ones, and binary weights (so small test models take the LFS path too).
LFS_MIN_SIZE = 1024 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack")
MAX_JSON_BODY = 64 * 1024 * 1024
DRAIN_LIMIT = 64 * 1024 * 1024  # larger unread bodies are not worth reading: the connection is closed instead
SPOOL_LIMIT = 16 * 1024 * 1024  # commit payloads above this go to a temporary file
READ_CHUNK = 1024 * 1024
TICKET_TTL_S = 3600.0
COMMITS_PAGE = 50
TREE_PAGE = 1000
XET_UNSUPPORTED = (
    "The hub emulator does not speak Xet: set HF_HUB_DISABLE_XET=1 before importing huggingface_hub "
    "so large files go through Git LFS"
)
_TYPE_BY_PLURAL = {plural: singular for singular, plural in REPO_TYPES.items()}
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def _header_safe(text: str) -> str:
    """Header values must be single-line latin-1; paths and repo names may be neither."""
    return text.encode("ascii", "backslashreplace").decode().replace("\r", " ").replace("\n", " ")


def _wants_lfs(path: str, size: int, sample: bytes) -> bool:
    """Mirror the Hub's choice: empty files never go to LFS (S3 refuses them), big or binary weight files do."""
    if size == 0:
        return False
    return size >= LFS_MIN_SIZE or (path.endswith(LFS_SUFFIXES) and b"\0" in sample)


def _clean_path(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise HubError(400, "Each file operation needs a non-empty path")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts) or parts[0] == ".git":
        raise HubError(400, f"Invalid path in repo: {value!r}")
    return value


class _GitIgnore:
    """Enough gitignore to answer preupload's ``shouldIgnore``: globs, anchoring, dir-only rules and negation.

    Unlike git, ``*`` may match across ``/``; the Hub only uses this to skip uploads, so erring that way is harmless.
    """

    def __init__(self, text: str) -> None:
        self._rules: list[tuple[bool, bool, bool, str]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            line = line.removeprefix("!")
            dir_only = line.endswith("/")
            anchored = "/" in line.rstrip("/")
            pattern = line.strip("/")
            if pattern:
                self._rules.append((negate, anchored, dir_only, pattern))

    def ignores(self, path: str) -> bool:
        parts = path.split("/")
        ignored = False
        for negate, anchored, dir_only, pattern in self._rules:
            candidates = ["/".join(parts[:depth]) for depth in range(1, len(parts) + (0 if dir_only else 1))]
            if any(fnmatch.fnmatchcase(c if anchored else c.rsplit("/", 1)[-1], pattern) for c in candidates):
                ignored = not negate
        return ignored


def _tree_entries(files: dict[str, FileEntry], base: str, recursive: bool) -> list[dict[str, object]]:
    """Tree listing under ``base`` in the Hub's shape; folders get a stable oid derived from their content."""
    prefix = f"{base}/" if base else ""
    members: dict[str, list[str]] = {}
    entries: list[dict[str, object]] = []
    for path, entry in files.items():
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        for depth in range(1, len(parts)):
            members.setdefault(prefix + "/".join(parts[:depth]), []).append(f"{path}\0{entry.oid}")
        if recursive or len(parts) == 1:
            item: dict[str, object] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
            if entry.lfs:
                item["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
            entries.append(item)
    for folder, content in members.items():
        if recursive or "/" not in folder[len(prefix) :]:
            oid = hashlib.sha1("\n".join(sorted(content)).encode()).hexdigest()
            entries.append({"type": "directory", "oid": oid, "size": 0, "path": folder})
    return sorted(entries, key=lambda item: str(item["path"]))


@dataclass(frozen=True)
class _Ticket:
    repo: RepoId
    oid: str
    size: int
    expires: float


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], hub: HubServer) -> None:
        self.hub = hub
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        """Skip HTTPServer's ``getfqdn`` lookup, which can stall for seconds on a host without DNS."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away mid-request; nothing to report
        logger.exception("unhandled error serving %s", client_address)


class HubServer:
    """The emulator: storage under ``root``, served on ``host:port`` (0 picks a free port) from a daemon thread.

    The socket is bound at construction so ``endpoint`` is known before ``start()``. Only ``token`` (by default the
    one stored under ``root``, created on first use) is accepted; it owns every namespace.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.root = Path(root)
        self.storage = HubStorage(self.root)
        self.token = token if token is not None else ensure_token(self.root)
        self._tickets: dict[str, _Ticket] = {}
        self._tickets_lock = threading.Lock()
        self._httpd = _HTTPServer((host, port), self)
        self._thread: threading.Thread | None = None
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.endpoint = f"http://{url_host}:{self._httpd.server_port}"

    def start(self) -> HubServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="hub-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def issue_ticket(self, repo: RepoId, oid: str, size: int) -> str:
        now = time.monotonic()
        ticket = secrets.token_urlsafe(24)
        with self._tickets_lock:
            self._tickets = {key: t for key, t in self._tickets.items() if t.expires > now}
            self._tickets[ticket] = _Ticket(repo, oid, size, now + TICKET_TTL_S)
        return ticket

    @contextlib.contextmanager
    def claim_ticket(self, ticket: str, repo: RepoId, oid: str) -> Iterator[int]:
        """Consume ``ticket`` for this object and yield its announced size; a failed upload gives it back."""
        with self._tickets_lock:
            found = self._tickets.get(ticket)
            if found is None or found.repo != repo or found.oid != oid or found.expires < time.monotonic():
                raise HubError(403, "Invalid or expired LFS upload ticket; request a new one from the batch API")
            del self._tickets[ticket]
        try:
            yield found.size
        except BaseException:
            with self._tickets_lock:
                self._tickets[ticket] = found
            raise


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    timeout = 300  # idle keep-alive connections are dropped after this

    # -- plumbing ------------------------------------------------------------------------------------------

    def log_message(self, format: str, *args: object) -> None:  # http.server's signature
        logger.info("%s %s", self.address_string(), format % args)

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
        self._base = f"http://{host}" if _HOST_RE.match(host) else self._hub.endpoint
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

    def _read_exact(self, count: int) -> Iterator[bytes]:
        while count:
            data = self.rfile.read(min(count, READ_CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            count -= len(data)
            yield data

    def _iter_body(self) -> Iterator[bytes]:
        """The request body, once. Until it is fully read the connection is marked for closing, so a reply sent
        after a partial read can never leave stray bytes to be parsed as the next request."""
        if self._body_read:
            return
        self._body_read = True
        self.close_connection = True
        if self._chunked:
            while True:
                try:
                    size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                except ValueError:
                    raise HubError(400, "Malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(8192).strip():  # trailers
                        pass
                    break
                yield from self._read_exact(size)
                if self.rfile.readline(8).strip():
                    raise HubError(400, "Malformed chunked request body")
        else:
            yield from self._read_exact(self._length)
        self.close_connection = self._close_after

    def _read_bytes(self, limit: int = MAX_JSON_BODY) -> bytes:
        data = bytearray()
        for chunk in self._iter_body():
            data += chunk
            if len(data) > limit:
                raise HubError(413, f"Request body larger than {limit} bytes")
        return bytes(data)

    def _read_json(self) -> dict[str, object]:
        raw = self._read_bytes()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise HubError(400, "Request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HubError(400, "Request body must be a JSON object")
        return data

    def _send(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        if not self._body_read:
            if self._chunked or self._length <= DRAIN_LIMIT:
                with contextlib.suppress(HubError):
                    for _ in self._iter_body():
                        pass
            else:
                self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._replied = True
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _error(self, err: HubError, headers: dict[str, str] | None = None) -> None:
        if self._replied:  # headers already went out: all we can do is drop the connection
            self.close_connection = True
            return
        extra = {"X-Error-Message": _header_safe(err.message), **(headers or {})}
        if err.code:
            extra["X-Error-Code"] = err.code
        self._json(err.status, {"error": err.message, **err.extra}, extra)

    # -- auth and access -----------------------------------------------------------------------------------

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

    # -- routing -------------------------------------------------------------------------------------------

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

    def _route(self, seg: list[str]) -> None:
        if seg[:1] == ["api"]:
            self._route_api(seg[1:])
            return
        repo_type = "model"
        if len(seg) > 3 and seg[0] in ("datasets", "spaces"):
            repo_type, seg = _TYPE_BY_PLURAL[seg[0]], seg[1:]
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
                self._require_user()
                access = {"displayName": "localhub", "role": "write"}
                self._json(
                    200,
                    {
                        "type": "user",
                        "name": USER,
                        "fullname": "Local Hub",
                        "orgs": [],
                        "auth": {"type": "access_token", "accessToken": access},
                    },
                )
            case ("GET", ["agent-harnesses"]):
                self._json(200, {"standardEnvVars": [], "harnesses": {}})
            case ("POST", ["repos", "create"]):
                self._create_repo()
            case ("POST", ["validate-yaml"]):
                self._read_json()
                self._json(200, {"errors": [], "warnings": []})
            case (_, [plural, namespace, name, *rest]) if plural in _TYPE_BY_PLURAL:
                self._route_repo_api(self._repo(_TYPE_BY_PLURAL[plural], namespace, name), rest)
            case (_, [plural, name]) if plural in _TYPE_BY_PLURAL:
                raise repo_not_found(RepoId(_TYPE_BY_PLURAL[plural], "", name))
            case _:
                raise HubError(404, f"No route for {self.command} {self._raw_path}")

    def _route_repo_api(self, repo: RepoId, rest: list[str]) -> None:
        storage = self._hub.storage
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
                self._writable(repo)
                body = self._read_json()
                tag = body.get("tag")
                if not isinstance(tag, str):
                    raise HubError(400, "Missing 'tag'")
                storage.create_tag(repo, tag, revision, str(body.get("message") or ""))
                self._json(200, {})
            case ("DELETE", ["tag", tag]):
                self._writable(repo)
                storage.delete_tag(repo, tag)
                self._json(200, {})
            case ("POST", ["branch", branch]):
                self._writable(repo)
                start = self._read_json().get("startingPoint")
                storage.create_branch(repo, branch, start if isinstance(start, str) else None)
                self._json(200, {})
            case ("GET", ["refs"]):
                self._refs(repo)
            case ("GET", ["commits", revision]):
                self._readable(repo)
                self._paginate((self._commit_json(c) for c in storage.history(repo, revision)), COMMITS_PAGE)
            case ("GET", ["tree", revision, *path]):
                self._readable(repo)
                commit = storage.resolve(repo, revision)
                base = "/".join(path).strip("/")
                entries = _tree_entries(commit.files, base, _truthy(self._query.get("recursive")))
                if base and not entries:
                    raise entry_not_found(repo, base)
                self._paginate(iter(entries), TREE_PAGE)
            case ("GET", ["xet-write-token" | "xet-read-token", _]):
                raise HubError(400, XET_UNSUPPORTED)
            case _:
                raise HubError(404, f"No route for {self.command} {self._raw_path}")

    def _paginate(self, items: Iterator[dict[str, object]], page_size: int) -> None:
        """Page through ``items`` with the GitHub-style ``Link: <...>; rel="next"`` header the client follows."""
        try:
            page = int(self._query.get("p", "0"))
            limit = min(int(self._query.get("limit", str(page_size))), page_size)
        except ValueError:
            raise HubError(400, "Query parameters 'p' and 'limit' must be integers") from None
        if page < 0 or limit < 1:
            raise HubError(400, "Query parameters 'p' and 'limit' are out of range")
        window = list(islice(items, page * limit, (page + 1) * limit + 1))
        headers = {}
        if len(window) > limit:
            query = urlencode({**self._query, "p": str(page + 1)})
            headers["Link"] = f'<{self._base}{self._raw_path}?{query}>; rel="next"'
        self._json(200, window[:limit], headers)

    # -- account and repos ---------------------------------------------------------------------------------

    def _create_repo(self) -> None:
        user = self._require_user()
        body = self._read_json()
        name, namespace, repo_type = body.get("name"), body.get("organization") or USER, body.get("type") or "model"
        if not isinstance(name, str) or not isinstance(namespace, str) or repo_type not in REPO_TYPES:
            raise HubError(400, "Expected 'name' (string), optional 'organization' and a valid 'type'")
        repo = RepoId(str(repo_type), namespace, name)
        private = body.get("visibility") == "private" or body.get("private") is True
        url = self._repo_url(repo)
        if not self._hub.storage.create_repo(repo, private=private, author=user):
            raise HubError(409, f"You already created this {repo.type} repo", url=url)
        self._json(200, {"url": url, "name": repo.full})

    def _info(self, repo: RepoId, revision: str) -> None:
        meta = self._readable(repo)
        commit = self._hub.storage.resolve(repo, revision)
        with_blobs = _truthy(self._query.get("blobs"))
        siblings: list[dict[str, object]] = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, object] = {"rfilename": path}
            if with_blobs:
                sibling.update(size=entry.size, blobId=entry.oid)
                if entry.lfs:
                    sibling["lfs"] = {"sha256": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
            siblings.append(sibling)
        info: dict[str, object] = {
            "_id": hashlib.sha1(f"{repo.type}/{repo.full}".encode()).hexdigest()[:24],
            "id": repo.full,
            "author": repo.namespace,
            "sha": commit.id,
            "lastModified": commit.date,
            "createdAt": meta.created_at,
            "private": meta.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(entry.size for entry in commit.files.values()),
        }
        if repo.type == "model":
            info["modelId"] = repo.full
        self._json(200, info)

    def _refs(self, repo: RepoId) -> None:
        self._readable(repo)
        refs = self._hub.storage.refs(repo)
        payload: dict[str, object] = {
            "branches": [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                for name, sha in sorted(refs.branches.items())
            ],
            "converts": [],
            "tags": [
                {"name": name, "ref": f"refs/tags/{name}", "targetCommit": tag.commit}
                for name, tag in sorted(refs.tags.items())
            ],
        }
        if _truthy(self._query.get("include_prs")):
            payload["pullRequests"] = []
        self._json(200, payload)

    @staticmethod
    def _commit_json(commit: Commit) -> dict[str, object]:
        return {
            "id": commit.id,
            "title": commit.title,
            "message": commit.message,
            "authors": [{"user": commit.author, "avatar": None}],
            "date": commit.date,
        }

    # -- uploads -------------------------------------------------------------------------------------------

    def _preupload(self, repo: RepoId, revision: str) -> None:
        self._writable(repo)
        body = self._read_json()
        commit = self._hub.storage.resolve(repo, revision)
        files = body.get("files")
        if not isinstance(files, list):
            raise HubError(400, "Expected 'files': [{path, sample, size}, ...]")
        gitignore = body.get("gitIgnore")
        if not isinstance(gitignore, str):
            existing = commit.files.get(".gitignore")
            blob = self._hub.storage.blob_path(repo, existing.sha256) if existing else None
            gitignore = blob.read_text(encoding="utf-8", errors="replace") if blob else ""
        ignore = _GitIgnore(gitignore)
        answers = []
        for item in files:
            if not isinstance(item, dict) or not isinstance(item.get("size"), int):
                raise HubError(400, "Each file needs 'path', 'sample' and an integer 'size'")
            path = _clean_path(item.get("path"))
            try:
                sample = base64.b64decode(str(item.get("sample", "")), validate=True)
            except binascii.Error:
                raise HubError(400, f"'sample' of {path} is not valid base64") from None
            lfs = _wants_lfs(path, item["size"], sample)
            # The client skips files whose oid matches its local one: sha256 for LFS, git blob sha1 otherwise.
            current = commit.files.get(path)
            oid = None
            if current is not None and (lfs or not current.lfs):
                oid = current.sha256 if lfs else current.oid
            answers.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": ignore.ignores(path),
                    "oid": oid,
                }
            )
        self._json(200, {"files": answers, "commitOid": commit.id})

    def _lfs_batch(self, repo: RepoId) -> None:
        self._writable(repo)
        body = self._read_json()
        objects = body.get("objects")
        if body.get("operation") != "upload" or not isinstance(objects, list):
            raise HubError(400, "Only LFS batch 'upload' operations with an 'objects' list are supported")
        lfs_url = f"{self._repo_url(repo)}.git/info/lfs/objects"
        answers: list[dict[str, object]] = []
        for obj in objects:
            oid, size = (obj.get("oid"), obj.get("size")) if isinstance(obj, dict) else (None, None)
            if not isinstance(oid, str) or not SHA256_RE.match(oid) or not isinstance(size, int) or size < 0:
                error = {"code": 422, "message": "Expected a sha256 'oid' and a non-negative integer 'size'"}
                answers.append({"oid": str(oid), "size": size if isinstance(size, int) else 0, "error": error})
                continue
            answer: dict[str, object] = {"oid": oid, "size": size}
            if not self._hub.storage.has_blob(repo, oid, size):  # omitting "actions" tells the client to skip it
                ticket = self._hub.issue_ticket(repo, oid, size)
                answer["actions"] = {
                    "upload": {"href": f"{lfs_url}/{oid}?{urlencode({'ticket': ticket})}", "header": {}},
                    "verify": {"href": f"{lfs_url}/verify"},
                }
            answers.append(answer)
        payload = json.dumps({"transfer": "basic", "objects": answers}).encode()
        self._send(200, payload, content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, repo: RepoId, oid: str) -> None:
        with self._hub.claim_ticket(self._query.get("ticket", ""), repo, oid) as size:
            if not self._chunked and self._length != size:
                raise HubError(400, f"Expected {size} bytes for {oid}, got Content-Length {self._length}")
            self._hub.storage.receive_blob(repo, oid, size, self._iter_body())
        self._send(200)

    def _lfs_verify(self, repo: RepoId) -> None:
        self._writable(repo)
        body = self._read_json()
        if not self._hub.storage.has_blob(repo, str(body.get("oid")), body.get("size")):
            raise HubError(404, f"LFS object {body.get('oid')} of size {body.get('size')} was not uploaded")
        self._json(200, {})

    def _commit(self, repo: RepoId, revision: str) -> None:
        user = self._writable(repo)
        if _truthy(self._query.get("create_pr")):
            raise HubError(400, "Pull requests are not supported by the hub emulator")
        header: dict[str, object] | None = None
        operations: list[Operation] = []
        with SpooledTemporaryFile(max_size=SPOOL_LIMIT) as spool:
            for chunk in self._iter_body():
                spool.write(chunk)
            spool.seek(0)
            for line in spool:
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                except ValueError:
                    raise HubError(400, "Commit payload must be newline-delimited JSON") from None
                value = item.get("value") if isinstance(item, dict) else None
                if not isinstance(value, dict):
                    raise HubError(400, "Each commit line needs a 'key' and an object 'value'")
                if item.get("key") == "header":
                    header = value
                else:
                    operations.append(self._operation(repo, str(item.get("key")), value))
        if header is None:
            raise HubError(400, "Commit payload has no header line")
        parent = header.get("parentCommit")
        commit = self._hub.storage.commit(
            repo,
            revision,
            operations,
            title=str(header.get("summary") or ""),
            message=str(header.get("description") or ""),
            author=user,
            parent_commit=parent if isinstance(parent, str) else None,
        )
        url = f"{self._repo_url(repo)}/commit/{commit.id}"
        self._json(200, {"success": True, "commitOid": commit.id, "commitUrl": url, "pullRequestUrl": None})

    def _operation(self, repo: RepoId, key: str, value: dict[str, object]) -> Operation:
        storage = self._hub.storage
        if key == "deletedFolder":
            return DeleteFolder(_clean_path(str(value.get("path") or "").rstrip("/")))
        path = _clean_path(value.get("path"))
        if key == "file":
            if value.get("encoding", "base64") != "base64":
                raise HubError(400, f"Unsupported encoding for {path}: only base64")
            try:
                data = base64.b64decode(str(value.get("content", "")), validate=True)
            except binascii.Error:
                raise HubError(400, f"Content of {path} is not valid base64") from None
            return AddFile(path, storage.store_regular(repo, data))
        if key == "lfsFile":
            oid, size = value.get("oid"), value.get("size")
            if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not SHA256_RE.match(oid):
                raise HubError(400, f"LFS file {path} needs a sha256 'oid'")
            blob = storage.blob_path(repo, oid)
            if not blob.is_file():
                raise HubError(400, f"LFS object {oid} for {path} has not been uploaded")
            actual = blob.stat().st_size
            if size is not None and size != actual:
                raise HubError(400, f"LFS object {oid} has {actual} bytes, not {size}")
            return AddFile(path, FileEntry.lfs_object(oid, actual))
        if key == "deletedFile":
            return DeleteFile(path)
        raise HubError(400, f"Unknown commit operation {key!r}")

    # -- downloads -----------------------------------------------------------------------------------------

    def _blob_page(self, repo: RepoId, revision: str, path: str) -> None:
        """The Hub's page of one file at a revision (``/{repo}/blob/{rev}/{path}``), as plain text for a browser.

        The real Hub renders the file (a model card's Markdown) in HTML; its text is enough to link to and read.
        """
        self._readable(repo)
        commit = self._hub.storage.resolve(repo, revision)
        entry = commit.files.get(path)
        if entry is None:
            raise entry_not_found(repo, path)
        body = self._hub.storage.blob_path(repo, entry.sha256).read_bytes()
        self._send(200, body, content_type="text/plain; charset=utf-8", headers={"X-Repo-Commit": commit.id})

    def _resolve(self, repo: RepoId, revision: str, path: str) -> None:
        """HEAD/GET a file. Metadata headers are what ``hf_hub_download`` caches by: commit, etag, exact size."""
        self._readable(repo)
        commit = self._hub.storage.resolve(repo, revision)
        entry = commit.files.get(path)
        if entry is None:  # X-Repo-Commit lets the client cache the miss under .no_exist/<sha>
            self._error(entry_not_found(repo, path), {"X-Repo-Commit": commit.id})
            return
        headers = {"X-Repo-Commit": commit.id, "ETag": f'"{entry.etag}"', "Accept-Ranges": "bytes"}
        start, end, status = 0, entry.size - 1, 200
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match and (match[1] or match[2]):
            if match[1]:
                start, end = int(match[1]), min(int(match[2]) if match[2] else end, end)
            else:
                start = max(entry.size - int(match[2]), 0)
            if start > end:
                unsatisfiable = HubError(416, f"Range not satisfiable for a {entry.size}-byte file")
                self._error(unsatisfiable, {"Content-Range": f"bytes */{entry.size}"})
                return
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
        length = end - start + 1
        self._send(status, content_type="application/octet-stream", headers=headers, length=length)
        if self.command == "GET" and length:
            with open(self._hub.storage.blob_path(repo, entry.sha256), "rb") as blob:
                self.connection.sendfile(blob, start, length)
