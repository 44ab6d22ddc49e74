"""Download endpoints: ``resolve`` (HEAD/GET with byte ranges), the tree listing and a file's ``blob`` page.

``hf_hub_download`` caches by the headers of ``resolve``: ``X-Repo-Commit``, the ``ETag`` and the exact size; a missing
file still carries ``X-Repo-Commit`` so the client can cache the miss under ``.no_exist/<sha>``.
"""

from __future__ import annotations

import hashlib
import re

from hub_emulator.access import AccessControl
from hub_emulator.storage import FileEntry, HubError, RepoId, entry_not_found
from hub_emulator.transport import truthy

TREE_PAGE = 1000


def tree_entries(files: dict[str, FileEntry], base: str, recursive: bool) -> list[dict[str, object]]:
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


class DownloadEndpoints(AccessControl):
    """File, tree and blob-page routes."""

    def _tree(self, repo: RepoId, revision: str, path: list[str]) -> None:
        self._readable(repo)
        commit = self._hub.storage.resolve(repo, revision)
        base = "/".join(path).strip("/")
        entries = tree_entries(commit.files, base, truthy(self._query.get("recursive")))
        if base and not entries:
            raise entry_not_found(repo, base)
        self._paginate(iter(entries), TREE_PAGE)

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
