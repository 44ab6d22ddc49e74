"""On-disk state of the emulated Hub: repos, content-addressed blobs, immutable commit snapshots and refs.

Layout under ``root``::

    token                                   the one accepted access token (mode 0600)
    .lock                                   flock target serialising ref updates across processes
    tmp/                                    staging area (same filesystem, so os.replace/rename stay atomic)
    repos/<models|datasets|spaces>/<ns>/<name>/
        repo.json                           {"private", "createdAt"}
        refs.json                           {"branches": {name: sha}, "tags": {name: {"commit", "message"}}}
        blobs/<sha256>                      file contents, regular and LFS alike
        commits/<sha>.json                  full tree snapshot + parent, title, message, date, author

Every commit stores the whole tree, so resolving any revision is one file read and commits never need rewriting.
Commits and blobs are immutable; only ``refs.json`` changes, always via write-to-temp + ``os.replace`` while holding
both a thread lock and an ``fcntl.flock``, so readers never see a half-written file and two server processes sharing
one root cannot lose each other's updates.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO_TYPES: dict[str, str] = {"model": "models", "dataset": "datasets", "space": "spaces"}
DEFAULT_BRANCH = "main"
# First path segments the server routes on; a namespace with one of these names would shadow the routes.
RESERVED_NAMESPACES = frozenset({"api", "models", "datasets", "spaces"})

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REF_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# What the real Hub commits first: without it `main` would not exist and clients probing README.md on a fresh repo
# would get RevisionNotFound instead of EntryNotFound (sentence-transformers then skips its model card).
_LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
    "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
    "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
    "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*",
)  # fmt: skip
GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in _LFS_PATTERNS)


class HubError(Exception):
    """A request the Hub refuses, with the HTTP status and ``X-Error-Code`` the real Hub would send.

    Defined here rather than in the server so storage can report RepoNotFound & co. where it detects them.
    ``extra`` is merged into the JSON error body (the 409 of repos/create must carry ``url``).
    """

    def __init__(self, status: int, message: str, code: str | None = None, **extra: object) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra


def utc_now_iso() -> str:
    """Millisecond UTC timestamp ending in ``Z``: the client's date parser rejects ``+00:00``."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, which the client computes locally to skip unchanged regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file git would store in place of an LFS object."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _write_json_atomic(path: Path, obj: object) -> None:
    """Readers never take the lock, so they must only ever see complete files."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(_canonical(obj))
    os.replace(tmp, path)


def ensure_token(root: Path) -> str:
    """Return the emulator's access token, creating ``root/token`` (mode 0600) on first use.

    The file is written under a temporary name and hard-linked into place, so concurrent first calls (two
    processes starting at once) agree on a single token and nobody ever reads a partially written file.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "token"
    if not path.exists():
        tmp = root / f".token.{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(f"hf_local_{secrets.token_hex(20)}\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    token = path.read_text(encoding="ascii").strip()
    if not token:
        raise ValueError(f"{path} is empty; delete it to generate a new token")
    return token


@dataclass(frozen=True)
class RepoId:
    """A repo address. ``type`` is singular (``model``), as the client's ``repo_type`` is."""

    type: str
    namespace: str
    name: str

    @property
    def full(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def plural(self) -> str:
        return REPO_TYPES[self.type]

    def validate(self) -> None:
        """Reject names the Hub rejects, and ones that would collide with the server's own routes."""
        for part in (self.namespace, self.name):
            if not _NAME_RE.match(part) or ".." in part or "--" in part or part.endswith(".git"):
                raise HubError(400, f"Invalid repo name {self.full!r}: use letters, digits, '-', '_' and '.'")
        if self.namespace in RESERVED_NAMESPACES:
            raise HubError(400, f"Namespace {self.namespace!r} is reserved")


def repo_not_found(repo: RepoId) -> HubError:
    return HubError(404, f"Repository Not Found for {repo.type} {repo.full}", "RepoNotFound")


def revision_not_found(repo: RepoId, revision: str) -> HubError:
    return HubError(404, f"Invalid rev id: {revision} in {repo.full}", "RevisionNotFound")


def entry_not_found(repo: RepoId, path: str) -> HubError:
    message = f"Entry not found: {path} in {repo.full} (A file with this name doesn't exist)"
    return HubError(404, message, "EntryNotFound")


def validate_ref_name(name: str) -> None:
    """Branch and tag names must not be mistakable for commit shas or ``refs/...`` paths when resolving."""
    if (
        not _REF_RE.match(name)
        or ".." in name
        or "//" in name
        or name.startswith(("/", "refs/"))
        or name.endswith(("/", ".lock"))
        or SHA1_RE.match(name)
    ):
        raise HubError(400, f"Invalid reference name {name!r}")


@dataclass(frozen=True)
class FileEntry:
    """One file of a tree snapshot. ``oid`` is the git blob id (of the pointer file for LFS entries)."""

    oid: str
    sha256: str
    size: int
    lfs: bool

    @classmethod
    def regular(cls, data: bytes) -> FileEntry:
        return cls(git_blob_sha1(data), hashlib.sha256(data).hexdigest(), len(data), False)

    @classmethod
    def lfs_object(cls, sha256: str, size: int) -> FileEntry:
        return cls(git_blob_sha1(lfs_pointer(sha256, size)), sha256, size, True)

    @property
    def etag(self) -> str:
        """What the client caches the blob under: git sha1 for regular files, sha256 for LFS ones."""
        return self.sha256 if self.lfs else self.oid

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size))

    def to_json(self) -> dict[str, object]:
        return {"oid": self.oid, "sha256": self.sha256, "size": self.size, "lfs": self.lfs}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> FileEntry:
        return cls(str(data["oid"]), str(data["sha256"]), int(data["size"]), bool(data["lfs"]))  # type: ignore[call-overload]


@dataclass(frozen=True)
class Commit:
    id: str
    parent: str | None
    title: str
    message: str
    date: str
    author: str
    files: dict[str, FileEntry]


@dataclass(frozen=True)
class Tag:
    commit: str
    message: str


@dataclass(frozen=True)
class Refs:
    branches: dict[str, str]
    tags: dict[str, Tag]


@dataclass(frozen=True)
class RepoMeta:
    private: bool
    created_at: str


@dataclass(frozen=True)
class AddFile:
    path: str
    entry: FileEntry


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


Operation = AddFile | DeleteFile | DeleteFolder


class HubStorage:
    """File-backed repos. Safe to share between threads, and between processes on one filesystem."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(exist_ok=True)
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise read-modify-write of refs; flock covers other processes, the thread lock this one."""
        with self._lock, open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- repos ---------------------------------------------------------------------------------------------

    def repo_dir(self, repo: RepoId) -> Path:
        return self.root / "repos" / repo.plural / repo.namespace / repo.name

    def exists(self, repo: RepoId) -> bool:
        return (self.repo_dir(repo) / "refs.json").is_file()

    def list_repos(self) -> list[RepoId]:
        found = []
        for singular, plural in REPO_TYPES.items():
            for refs in sorted((self.root / "repos" / plural).glob("*/*/refs.json")):
                found.append(RepoId(singular, refs.parent.parent.name, refs.parent.name))
        return found

    def meta(self, repo: RepoId) -> RepoMeta:
        try:
            data = json.loads((self.repo_dir(repo) / "repo.json").read_bytes())
        except FileNotFoundError:
            raise repo_not_found(repo) from None
        return RepoMeta(bool(data["private"]), str(data["createdAt"]))

    def create_repo(self, repo: RepoId, *, private: bool, author: str) -> bool:
        """Create ``repo`` with its initial ``.gitattributes`` commit on main; False if it already exists.

        The repo is assembled in ``tmp/`` and renamed into place, so it appears complete or not at all.
        """
        repo.validate()
        with self._locked():
            final = self.repo_dir(repo)
            if self.exists(repo):
                return False
            staging = Path(tempfile.mkdtemp(dir=self._tmp, prefix="repo-"))
            (staging / "blobs").mkdir()
            (staging / "commits").mkdir()
            data = GITATTRIBUTES.encode()
            entry = FileEntry.regular(data)
            self._put_blob(staging, entry.sha256, data)
            commit = self._write_commit(staging, None, {".gitattributes": entry}, "initial commit", "", author)
            _write_json_atomic(staging / "repo.json", {"private": private, "createdAt": commit.date})
            _write_json_atomic(staging / "refs.json", {"branches": {DEFAULT_BRANCH: commit.id}, "tags": {}})
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.exists():  # leftover of an interrupted delete: it has no refs.json, so it is not a repo
                shutil.rmtree(final)
            os.rename(staging, final)
        return True

    # -- blobs ---------------------------------------------------------------------------------------------

    def blob_path(self, repo: RepoId, sha256: str) -> Path:
        return self.repo_dir(repo) / "blobs" / sha256

    def has_blob(self, repo: RepoId, sha256: str, size: object) -> bool:
        if not SHA256_RE.match(sha256) or not isinstance(size, int):
            return False
        try:
            return self.blob_path(repo, sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def _put_blob(self, repo_dir: Path, sha256: str, data: bytes) -> None:
        target = repo_dir / "blobs" / sha256
        if not target.exists():
            fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)

    def store_regular(self, repo: RepoId, data: bytes) -> FileEntry:
        """Store an inline (base64-committed) file and return its tree entry."""
        if not self.exists(repo):
            raise repo_not_found(repo)
        entry = FileEntry.regular(data)
        self._put_blob(self.repo_dir(repo), entry.sha256, data)
        return entry

    def receive_blob(self, repo: RepoId, sha256: str, size: int, chunks: Iterable[bytes]) -> None:
        """Stream an LFS upload to disk, keeping it only if its size and sha256 match what was announced."""
        if not self.exists(repo):
            raise repo_not_found(repo)
        digest = hashlib.sha256()
        received = 0
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix="upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    received += len(chunk)
                    fh.write(chunk)
            if received != size or digest.hexdigest() != sha256:
                actual = f"{received} bytes with sha256 {digest.hexdigest()}"
                raise HubError(400, f"Uploaded object does not match its announced size and oid: got {actual}")
            os.replace(tmp, self.blob_path(repo, sha256))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    # -- commits and refs ----------------------------------------------------------------------------------

    def _write_commit(
        self, repo_dir: Path, parent: str | None, files: dict[str, FileEntry], title: str, message: str, author: str
    ) -> Commit:
        """Persist a snapshot. The nonce and timestamp make its sha unique even for identical trees, so a wiped
        and re-seeded server never reissues a sha that clients have cached with other content."""
        body: dict[str, object] = {
            "parent": parent,
            "title": title,
            "message": message,
            "date": utc_now_iso(),
            "author": author,
            "files": {path: entry.to_json() for path, entry in sorted(files.items())},
            "nonce": secrets.token_hex(8),
        }
        sha = hashlib.sha1(_canonical(body)).hexdigest()
        _write_json_atomic(repo_dir / "commits" / f"{sha}.json", {**body, "id": sha})
        return Commit(sha, parent, title, message, str(body["date"]), author, dict(files))

    def commit_by_id(self, repo: RepoId, sha: str) -> Commit:
        try:
            data = json.loads((self.repo_dir(repo) / "commits" / f"{sha}.json").read_bytes())
        except FileNotFoundError:
            raise revision_not_found(repo, sha) from None
        files = {path: FileEntry.from_json(entry) for path, entry in data["files"].items()}
        return Commit(data["id"], data["parent"], data["title"], data["message"], data["date"], data["author"], files)

    def refs(self, repo: RepoId) -> Refs:
        try:
            data = json.loads((self.repo_dir(repo) / "refs.json").read_bytes())
        except FileNotFoundError:
            raise repo_not_found(repo) from None
        tags = {name: Tag(tag["commit"], tag["message"]) for name, tag in data["tags"].items()}
        return Refs(dict(data["branches"]), tags)

    def _write_refs(self, repo: RepoId, refs: Refs) -> None:
        tags = {name: {"commit": tag.commit, "message": tag.message} for name, tag in refs.tags.items()}
        _write_json_atomic(self.repo_dir(repo) / "refs.json", {"branches": refs.branches, "tags": tags})

    def _find(self, repo: RepoId, refs: Refs, revision: str) -> str | None:
        """Resolve like the Hub: ``refs/heads/x``, ``refs/tags/x``, branch, tag, then a full commit sha."""
        if revision.startswith("refs/heads/"):
            return refs.branches.get(revision.removeprefix("refs/heads/"))
        if revision.startswith("refs/tags/"):
            tag = refs.tags.get(revision.removeprefix("refs/tags/"))
            return tag.commit if tag else None
        if revision in refs.branches:
            return refs.branches[revision]
        if revision in refs.tags:
            return refs.tags[revision].commit
        if SHA1_RE.match(revision) and (self.repo_dir(repo) / "commits" / f"{revision}.json").is_file():
            return revision
        return None

    def resolve(self, repo: RepoId, revision: str) -> Commit:
        sha = self._find(repo, self.refs(repo), revision)
        if sha is None:
            raise revision_not_found(repo, revision)
        return self.commit_by_id(repo, sha)

    def history(self, repo: RepoId, revision: str) -> Iterator[Commit]:
        """Commits reachable from ``revision``, newest first (the history is linear: no merges)."""
        commit: Commit | None = self.resolve(repo, revision)
        while commit is not None:
            yield commit
            commit = self.commit_by_id(repo, commit.parent) if commit.parent else None

    def commit(
        self,
        repo: RepoId,
        branch: str,
        operations: Iterable[Operation],
        *,
        title: str,
        message: str,
        author: str,
        parent_commit: str | None = None,
    ) -> Commit:
        """Apply ``operations`` on top of ``branch`` and advance it, atomically with respect to other commits.

        A commit is made even when it changes nothing, as on the real Hub; the client itself skips no-op pushes.
        """
        with self._locked():
            refs = self.refs(repo)
            head = refs.branches.get(branch)
            if head is None:
                if self._find(repo, refs, branch) is not None:
                    raise HubError(400, f"Revision {branch!r} is not a branch: commits can only be made on a branch")
                raise revision_not_found(repo, branch)
            if parent_commit is not None and parent_commit.lower() != head:
                raise HubError(412, f"Parent commit {parent_commit} is not the head of {branch} ({head})")
            files = dict(self.commit_by_id(repo, head).files)
            for op in operations:
                if isinstance(op, AddFile):
                    files[op.path] = op.entry
                elif isinstance(op, DeleteFile):
                    if files.pop(op.path, None) is None:
                        raise entry_not_found(repo, op.path)
                else:
                    prefix = op.path.rstrip("/") + "/"
                    doomed = [path for path in files if path.startswith(prefix)]
                    if not doomed:
                        raise entry_not_found(repo, op.path)
                    for path in doomed:
                        del files[path]
            for path in files:
                parents = path.split("/")[:-1]
                for depth in range(1, len(parents) + 1):
                    if "/".join(parents[:depth]) in files:
                        raise HubError(400, f"Cannot add {path!r}: {'/'.join(parents[:depth])!r} is a file")
            commit = self._write_commit(self.repo_dir(repo), head, files, title, message, author)
            self._write_refs(repo, Refs({**refs.branches, branch: commit.id}, refs.tags))
        return commit

    def create_branch(self, repo: RepoId, branch: str, starting_point: str | None) -> None:
        validate_ref_name(branch)
        with self._locked():
            refs = self.refs(repo)
            if branch in refs.branches:
                raise HubError(409, f"Branch {branch!r} already exists in {repo.full}")
            start = starting_point or refs.branches.get(DEFAULT_BRANCH) or ""
            sha = self._find(repo, refs, start)
            if sha is None:
                raise revision_not_found(repo, start)
            self._write_refs(repo, Refs({**refs.branches, branch: sha}, refs.tags))

    def create_tag(self, repo: RepoId, tag: str, revision: str, message: str) -> str:
        """Point a new tag at ``revision``'s commit and return that sha. Existing tags are never moved (409)."""
        validate_ref_name(tag)
        with self._locked():
            refs = self.refs(repo)
            if tag in refs.tags:
                raise HubError(409, f"Tag {tag!r} already exists in {repo.full}")
            sha = self._find(repo, refs, revision)
            if sha is None:
                raise revision_not_found(repo, revision)
            self._write_refs(repo, Refs(refs.branches, {**refs.tags, tag: Tag(sha, message)}))
        return sha

    def delete_tag(self, repo: RepoId, tag: str) -> None:
        with self._locked():
            refs = self.refs(repo)
            if tag not in refs.tags:
                raise revision_not_found(repo, tag)
            self._write_refs(repo, Refs(refs.branches, {name: t for name, t in refs.tags.items() if name != tag}))
