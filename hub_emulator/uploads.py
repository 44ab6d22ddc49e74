"""Upload endpoints: preupload (LFS or regular, ``shouldIgnore``), the Git LFS batch/PUT/verify API and commits.

LFS uploads are PUT with no Authorization header, so the batch reply embeds a one-time ticket (issued and claimed by
:class:`~hub_emulator.server.HubServer`) in the upload href. A commit is newline-delimited JSON: a header line, then
one line per operation; payloads above ``SPOOL_LIMIT`` are spooled to a temporary file.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
from tempfile import SpooledTemporaryFile
from urllib.parse import urlencode

from hub_emulator.access import AccessControl
from hub_emulator.storage import SHA256_RE, AddFile, DeleteFile, DeleteFolder, FileEntry, HubError, Operation, RepoId
from hub_emulator.transport import truthy

# Files the client should send through LFS: big ones, and binary weights (so small test models take the LFS path too).
LFS_MIN_SIZE = 1024 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack")
SPOOL_LIMIT = 16 * 1024 * 1024  # commit payloads above this go to a temporary file


def wants_lfs(path: str, size: int, sample: bytes) -> bool:
    """Mirror the Hub's choice: empty files never go to LFS (S3 refuses them), big or binary weight files do."""
    if size == 0:
        return False
    return size >= LFS_MIN_SIZE or (path.endswith(LFS_SUFFIXES) and b"\0" in sample)


def clean_path(value: object) -> str:
    """A file path in a repo as an operation names it; empty, ``.``/``..`` parts and ``.git/...`` are refused."""
    if not isinstance(value, str) or not value:
        raise HubError(400, "Each file operation needs a non-empty path")
    parts = value.split("/")
    if any(part in ("", ".", "..") for part in parts) or parts[0] == ".git":
        raise HubError(400, f"Invalid path in repo: {value!r}")
    return value


class GitIgnore:
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


class UploadEndpoints(AccessControl):
    """Preupload, LFS and commit routes."""

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
        ignore = GitIgnore(gitignore)
        answers = []
        for item in files:
            if not isinstance(item, dict) or not isinstance(item.get("size"), int):
                raise HubError(400, "Each file needs 'path', 'sample' and an integer 'size'")
            path = clean_path(item.get("path"))
            try:
                sample = base64.b64decode(str(item.get("sample", "")), validate=True)
            except binascii.Error:
                raise HubError(400, f"'sample' of {path} is not valid base64") from None
            lfs = wants_lfs(path, item["size"], sample)
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
        if truthy(self._query.get("create_pr")):
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
            return DeleteFolder(clean_path(str(value.get("path") or "").rstrip("/")))
        path = clean_path(value.get("path"))
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
