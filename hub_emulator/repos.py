"""Account, repo and ref endpoints: whoami, repo creation and info, refs, tags, branches and commit history."""

from __future__ import annotations

import hashlib

from hub_emulator.access import USER, AccessControl
from hub_emulator.storage import REPO_TYPES, Commit, HubError, RepoId
from hub_emulator.transport import truthy

COMMITS_PAGE = 50


def commit_json(commit: Commit) -> dict[str, object]:
    """One entry of ``/api/{type}s/{repo}/commits/{rev}`` as ``huggingface_hub``'s ``GitCommitInfo`` parses it."""
    return {
        "id": commit.id,
        "title": commit.title,
        "message": commit.message,
        "authors": [{"user": commit.author, "avatar": None}],
        "date": commit.date,
    }


class RepoEndpoints(AccessControl):
    """The account and repo-level routes."""

    def _whoami(self) -> None:
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
        with_blobs = truthy(self._query.get("blobs"))
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
        if truthy(self._query.get("include_prs")):
            payload["pullRequests"] = []
        self._json(200, payload)

    def _create_tag(self, repo: RepoId, revision: str) -> None:
        self._writable(repo)
        body = self._read_json()
        tag = body.get("tag")
        if not isinstance(tag, str):
            raise HubError(400, "Missing 'tag'")
        self._hub.storage.create_tag(repo, tag, revision, str(body.get("message") or ""))
        self._json(200, {})

    def _delete_tag(self, repo: RepoId, tag: str) -> None:
        self._writable(repo)
        self._hub.storage.delete_tag(repo, tag)
        self._json(200, {})

    def _create_branch(self, repo: RepoId, branch: str) -> None:
        self._writable(repo)
        start = self._read_json().get("startingPoint")
        self._hub.storage.create_branch(repo, branch, start if isinstance(start, str) else None)
        self._json(200, {})

    def _history(self, repo: RepoId, revision: str) -> None:
        self._readable(repo)
        self._paginate((commit_json(c) for c in self._hub.storage.history(repo, revision)), COMMITS_PAGE)
