"""The emulator driven by the real ``huggingface_hub`` client over HTTP (conftest points HF_ENDPOINT at it).

The server is shared by the session, so every test works in repos of its own.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    RepoFile,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils._pagination import paginate

BIG = 1024 * 1024 + 123  # just over the emulator's LFS threshold


class HubFixture(Protocol):
    """What the session fixture ``local_hub`` (tests/conftest.py) provides."""

    endpoint: str
    token: str
    root: Path


@pytest.fixture()
def api(local_hub: HubFixture) -> HfApi:
    return HfApi(token=local_hub.token)


def _add(path: str, data: bytes) -> CommitOperationAdd:
    return CommitOperationAdd(path_in_repo=path, path_or_fileobj=data)


def _new_repo(api: HfApi, name: str) -> str:
    return api.create_repo(name, exist_ok=True).repo_id


def test_whoami_accepts_only_the_hub_token(api: HfApi) -> None:
    me = api.whoami()
    assert me["name"] == "local" and me["type"] == "user"

    with pytest.raises(HfHubHTTPError) as caught:
        HfApi(token="hf_wrong").whoami()
    assert caught.value.response.status_code == 401
    assert caught.value.response.headers["X-Error-Message"] == "Invalid credentials in Authorization header"


def test_create_repo_exist_ok_twice_and_conflict_without(api: HfApi, local_hub: HubFixture) -> None:
    first = api.create_repo("twice", exist_ok=True)
    second = api.create_repo("twice", exist_ok=True)
    assert first.repo_id == second.repo_id == "local/twice"
    assert str(first) == f"{local_hub.endpoint}/local/twice"
    with pytest.raises(HfHubHTTPError) as caught:
        api.create_repo("twice")
    assert caught.value.response.status_code == 409
    assert caught.value.response.json()["url"] == f"{local_hub.endpoint}/local/twice"
    # The initial commit is what lets clients probe files on a fresh repo (EntryNotFound, not RevisionNotFound).
    assert api.list_repo_files("local/twice") == [".gitattributes"]
    assert len(api.list_repo_commits("local/twice")) == 1
    assert api.create_repo("other-ns/twice", exist_ok=True).repo_id == "other-ns/twice"


def test_upload_folder_with_inline_and_lfs_files_makes_one_commit(api: HfApi, tmp_path: Path) -> None:
    repo_id = _new_repo(api, "folder-push")
    big = os.urandom(BIG)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "big.bin").write_bytes(big)
    (tmp_path / "config.json").write_text('{"a": 1}')
    (tmp_path / "README.md").write_text("---\nlicense: mit\n---\n# card\n")

    info = api.upload_folder(repo_id=repo_id, folder_path=tmp_path, commit_message="push folder")

    commits = api.list_repo_commits(repo_id)
    assert [c.title for c in commits] == ["push folder", "initial commit"]
    assert commits[0].commit_id == info.oid
    files = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True) if isinstance(f, RepoFile)}
    assert set(files) == {".gitattributes", "README.md", "config.json", "weights/big.bin"}
    assert files["weights/big.bin"].lfs is not None and files["weights/big.bin"].lfs.size == BIG
    assert files["config.json"].lfs is None
    assert Path(hf_hub_download(repo_id, "weights/big.bin")).read_bytes() == big

    again = api.upload_folder(repo_id=repo_id, folder_path=tmp_path, commit_message="same content")
    assert again.oid == info.oid  # preupload oids matched: no empty commit
    assert len(api.list_repo_commits(repo_id)) == 2


def test_create_commit_add_and_delete_operations(api: HfApi) -> None:
    repo_id = _new_repo(api, "ops")
    big = os.urandom(BIG)
    api.create_commit(
        repo_id,
        [_add("small.txt", b"hi"), _add("empty.txt", b""), _add("data/big.pt", big), _add("data/x.txt", b"x")],
        commit_message="add",
    )
    expected = [".gitattributes", "data/big.pt", "data/x.txt", "empty.txt", "small.txt"]
    assert sorted(api.list_repo_files(repo_id)) == expected

    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo_id, [CommitOperationDelete("nope.txt")], commit_message="bad delete")
    api.create_commit(
        repo_id, [CommitOperationDelete("small.txt"), CommitOperationDelete("data/")], commit_message="delete"
    )
    assert sorted(api.list_repo_files(repo_id)) == [".gitattributes", "empty.txt"]
    assert [c.title for c in api.list_repo_commits(repo_id)] == ["delete", "add", "initial commit"]


def test_parent_commit_mismatch_is_412_and_commits_nothing(api: HfApi) -> None:
    repo_id = _new_repo(api, "parent")
    stale = api.model_info(repo_id).sha
    head = api.create_commit(repo_id, [_add("a.txt", b"a")], commit_message="moves main").oid

    with pytest.raises(HfHubHTTPError) as caught:
        api.create_commit(repo_id, [_add("b.txt", b"b")], commit_message="stale", parent_commit=stale)
    assert caught.value.response.status_code == 412
    assert "error" in caught.value.response.json()
    assert api.model_info(repo_id).sha == head
    assert "b.txt" not in api.list_repo_files(repo_id)

    ok = api.create_commit(repo_id, [_add("b.txt", b"b")], commit_message="fresh", parent_commit=head)
    assert api.model_info(repo_id).sha == ok.oid


def test_tags_branches_and_refs(api: HfApi) -> None:
    repo_id = _new_repo(api, "refs")
    first = api.create_commit(repo_id, [_add("v.txt", b"1")], commit_message="one").oid
    api.create_tag(repo_id, tag="champion", tag_message="best so far")
    with pytest.raises(HfHubHTTPError) as caught:
        api.create_tag(repo_id, tag="champion")
    assert caught.value.response.status_code == 409

    second = api.create_commit(repo_id, [_add("v.txt", b"2")], commit_message="two").oid
    api.create_tag(repo_id, tag="champion", exist_ok=True)  # swallowed, and the tag does not move
    api.create_tag(repo_id, tag="v2", revision=second)
    api.create_branch(repo_id, branch="dev", revision=first)

    refs = api.list_repo_refs(repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": second, "dev": first}
    assert {t.name: t.target_commit for t in refs.tags} == {"champion": first, "v2": second}
    assert refs.converts == []

    api.delete_tag(repo_id, tag="champion")  # promoting = delete + create
    api.create_tag(repo_id, tag="champion", revision=second)
    assert api.model_info(repo_id, revision="champion").sha == second


def test_list_repo_commits_is_newest_first_and_paginated(api: HfApi, local_hub: HubFixture) -> None:
    repo_id = _new_repo(api, "history")
    shas = [api.create_commit(repo_id, [_add("n.txt", str(i).encode())], commit_message=f"c{i}").oid for i in range(3)]
    commits = api.list_repo_commits(repo_id)
    assert [c.commit_id for c in commits[:3]] == shas[::-1]
    assert [c.title for c in commits] == ["c2", "c1", "c0", "initial commit"]
    assert all(c.authors == ["local"] for c in commits)
    assert commits[0].created_at >= commits[-1].created_at

    # The client's own paginator follows our Link headers page by page.
    pages = paginate(
        f"{local_hub.endpoint}/api/models/{repo_id}/commits/main",
        params={"limit": 1},
        headers={"authorization": f"Bearer {local_hub.token}"},
    )
    assert [c["id"] for c in pages] == [c.commit_id for c in commits]


def test_revisions_by_tag_and_sha(api: HfApi) -> None:
    repo_id = _new_repo(api, "revisions")
    old = api.create_commit(repo_id, [_add("f.txt", b"old"), _add("w.bin", os.urandom(BIG))], commit_message="old")
    api.create_tag(repo_id, tag="release")
    api.create_commit(repo_id, [_add("f.txt", b"new")], commit_message="new")

    info = api.model_info(repo_id, revision="release", files_metadata=True)
    assert info.sha == old.oid
    assert info.siblings is not None
    assert {s.rfilename for s in info.siblings} == {".gitattributes", "f.txt", "w.bin"}
    assert info.last_modified is not None and info.private is False
    assert Path(hf_hub_download(repo_id, "f.txt", revision="release")).read_bytes() == b"old"
    assert Path(hf_hub_download(repo_id, "f.txt", revision=old.oid)).read_bytes() == b"old"
    assert Path(hf_hub_download(repo_id, "f.txt")).read_bytes() == b"new"


def test_snapshot_download(api: HfApi, tmp_path: Path) -> None:
    repo_id = _new_repo(api, "snapshot")
    payload = os.urandom(BIG)
    sha = api.create_commit(
        repo_id, [_add("a/b/c.txt", b"deep"), _add("model.safetensors", payload)], commit_message="files"
    ).oid
    folder = Path(snapshot_download(repo_id, local_dir=tmp_path / "snap"))
    assert (folder / "a" / "b" / "c.txt").read_bytes() == b"deep"
    assert (folder / "model.safetensors").read_bytes() == payload
    cached = Path(snapshot_download(repo_id))
    assert cached.name == sha


def test_missing_repo_revision_and_file(api: HfApi) -> None:
    repo_id = _new_repo(api, "missing")
    assert api.repo_exists("local/does-not-exist") is False
    assert api.repo_exists(repo_id) is True
    assert api.revision_exists(repo_id, "no-such-branch") is False
    assert api.file_exists(repo_id, ".gitattributes") is True
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "nope.txt")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, ".gitattributes", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("local/does-not-exist", "x.txt")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("bert-base-uncased")  # legacy un-namespaced ids: not found, not a routing error


def test_private_repo_is_invisible_without_token(api: HfApi) -> None:
    repo_id = api.create_repo("secret", private=True, exist_ok=True).repo_id
    api.create_commit(repo_id, [_add("s.txt", b"s")], commit_message="secret")
    assert api.model_info(repo_id).private is True
    anonymous = HfApi(token=False)
    assert anonymous.repo_exists(repo_id) is False
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "s.txt", token=False)
    with pytest.raises(HfHubHTTPError) as caught:
        anonymous.create_commit(repo_id, [_add("t.txt", b"t")], commit_message="no token")
    assert caught.value.response.status_code in (401, 404)


def test_branch_with_slash_round_trips_quoted(api: HfApi) -> None:
    repo_id = _new_repo(api, "slash-branch")
    api.create_branch(repo_id, branch="runs/2024-01")
    api.create_commit(repo_id, [_add("run.txt", b"r")], commit_message="on branch", revision="runs/2024-01")
    assert Path(hf_hub_download(repo_id, "run.txt", revision="runs/2024-01")).read_bytes() == b"r"
    assert "run.txt" not in api.list_repo_files(repo_id)
    assert api.list_repo_commits(repo_id, revision="runs/2024-01")[0].title == "on branch"


def test_concurrent_commits_are_serialised_not_lost(api: HfApi) -> None:
    repo_id = _new_repo(api, "concurrent")

    def push(index: int) -> str:
        return api.create_commit(repo_id, [_add(f"f{index}.txt", b"%d" % index)], commit_message=f"p{index}").oid

    with ThreadPoolExecutor(max_workers=6) as pool:
        shas = set(pool.map(push, range(6)))
    commits = api.list_repo_commits(repo_id)
    assert len(shas) == 6 and shas <= {c.commit_id for c in commits} and len(commits) == 7
    assert {f"f{i}.txt" for i in range(6)} <= set(api.list_repo_files(repo_id))
