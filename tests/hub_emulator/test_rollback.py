"""Rollback against the loopback Hub through the real ``huggingface_hub`` client.

Each test seeds a repo of its own (the emulator is shared by the session) with two promotions, the way the
retraining DAG leaves them: one commit on ``main`` per promotion, tagged ``run-<UTC>-<fp8>``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, hf_hub_download

from hub_emulator.storage import HubStorage, RepoId
from reranker_tasks.errors import ConfigError, PublishConflict
from reranker_tasks.rollback import RESULT_FILE, rollback_tag_name, rollback_to_tag

BIG = 1024 * 1024 + 123  # over the emulator's LFS threshold: the model file goes through LFS, as real ones do
OLD_TAG = "run-20260105T100000Z-aaaaaaaa"
NEW_TAG = "run-20260112T100000Z-bbbbbbbb"


@dataclass(frozen=True)
class Seeded:
    repo_id: str
    initial: str  # the emulator's first commit (.gitattributes only)
    old: str  # commit of OLD_TAG
    new: str  # commit of NEW_TAG, the head of main
    old_files: dict[str, bytes]
    new_files: dict[str, bytes]


def _files(version: str, size: int) -> dict[str, bytes]:
    return {
        "config.json": json.dumps({"architectures": ["BertForSequenceClassification"], "v": version}).encode(),
        "model.safetensors": (version.encode() * size)[:size],
        "README.md": f"---\nlibrary_name: sentence-transformers\n---\n# reranker {version}\n".encode(),
        "tokenizer.json": b'{"version": "1.0"}',
    }


def seed(api: HfApi, name: str) -> Seeded:
    """Two promotions: the second changes model, config and card, drops nothing, adds ``extra/notes.txt``;
    the first has ``old_only.txt`` that the second deletes."""
    repo_id = api.create_repo(f"{name}-{uuid.uuid4().hex[:8]}").repo_id
    initial = api.list_repo_commits(repo_id)[0].commit_id
    old_files = {**_files("old", BIG), "old_only.txt": b"only in the old promotion"}
    new_files = {**_files("new", 4096), "extra/notes.txt": b"only in the new promotion"}
    old = api.create_commit(
        repo_id, [CommitOperationAdd(p, d) for p, d in old_files.items()], commit_message="Promote old"
    ).oid
    api.create_tag(repo_id, tag=OLD_TAG, revision=old)
    ops: list[CommitOperationAdd | CommitOperationDelete] = [CommitOperationAdd(p, d) for p, d in new_files.items()]
    ops.append(CommitOperationDelete("old_only.txt"))
    new = api.create_commit(repo_id, ops, commit_message="Promote new").oid
    api.create_tag(repo_id, tag=NEW_TAG, revision=new)
    return Seeded(repo_id, initial, old, new, old_files, new_files)


@pytest.fixture()
def api(local_hub) -> HfApi:
    return HfApi(token=local_hub.token)


def _main_files(api: HfApi, repo_id: str) -> set[str]:
    return set(api.list_repo_files(repo_id, revision="main"))


def _tags(api: HfApi, repo_id: str) -> dict[str, str]:
    return {t.name: t.target_commit for t in api.list_repo_refs(repo_id).tags}


def test_rollback_restores_the_tag_tree_in_one_new_commit(api: HfApi, local_hub, tmp_path: Path) -> None:
    repo = seed(api, "rollback-basic")
    out = tmp_path / "rollback"

    result = rollback_to_tag(repo.repo_id, OLD_TAG, token=local_hub.token, run_id="manual__r1", out_dir=out)

    commits = api.list_repo_commits(repo.repo_id, revision="main")
    head = commits[0]
    assert head.commit_id == result.commit_sha and not result.reused
    assert commits[1].commit_id == repo.new, "the rollback sits on top of the old head"
    stored = HubStorage(local_hub.root).commit_by_id(RepoId("model", *repo.repo_id.split("/")), result.commit_sha)
    assert stored.parent == repo.new
    assert head.title == f"Rollback to {OLD_TAG} (was {repo.new[:12]})"
    assert {"Run-Id: manual__r1", f"Rollback-Of: {OLD_TAG}"} <= set(head.message.splitlines())

    # main's tree is the old tag's: same paths, same bytes; files only the newer promotion had are gone.
    assert _main_files(api, repo.repo_id) == set(api.list_repo_files(repo.repo_id, revision=OLD_TAG))
    assert _main_files(api, repo.repo_id) == {".gitattributes", *repo.old_files}
    for path, data in repo.old_files.items():
        assert Path(hf_hub_download(repo.repo_id, path, revision="main", token=local_hub.token)).read_bytes() == data
    assert "extra/notes.txt" not in _main_files(api, repo.repo_id)
    assert result.deleted_files == ["extra/notes.txt"]
    assert set(result.restored_files) == {"config.json", "model.safetensors", "README.md", "old_only.txt"}

    tags = _tags(api, repo.repo_id)
    assert tags[OLD_TAG] == repo.old and tags[NEW_TAG] == repo.new, "existing tags never move"
    assert tags[result.rollback_tag] == result.commit_sha
    assert result.rollback_tag.startswith("rollback-") and result.rollback_tag.endswith(f"-{OLD_TAG}")
    assert [b.target_commit for b in api.list_repo_refs(repo.repo_id).branches if b.name == "main"] == [
        result.commit_sha
    ]

    recorded = json.loads((out / RESULT_FILE).read_text())
    assert recorded == result.to_dict()
    assert recorded["previous_commit"] == repo.new and recorded["tag_commit"] == repo.old
    assert local_hub.token not in (out / RESULT_FILE).read_text()
    assert local_hub.token not in head.message and local_hub.token not in head.title


def test_a_retry_of_the_same_run_reuses_its_commit_and_tag(api: HfApi, local_hub, tmp_path: Path) -> None:
    repo = seed(api, "rollback-retry")
    first = rollback_to_tag(repo.repo_id, OLD_TAG, token=local_hub.token, run_id="manual__r2", out_dir=tmp_path)
    commits_before = [c.commit_id for c in api.list_repo_commits(repo.repo_id)]
    tags_before = _tags(api, repo.repo_id)

    again = rollback_to_tag(repo.repo_id, OLD_TAG, token=local_hub.token, run_id="manual__r2", out_dir=tmp_path)

    assert again.reused and again.commit_sha == first.commit_sha
    assert again.rollback_tag == first.rollback_tag and again.previous_commit == repo.new
    assert again.deleted_files == first.deleted_files and again.restored_files == first.restored_files
    assert [c.commit_id for c in api.list_repo_commits(repo.repo_id)] == commits_before
    assert _tags(api, repo.repo_id) == tags_before

    # Another run asking for the same tag finds main already holding it: no empty commit.
    with pytest.raises(ConfigError, match="already holds"):
        rollback_to_tag(repo.repo_id, OLD_TAG, token=local_hub.token, run_id="manual__other", out_dir=tmp_path)
    assert [c.commit_id for c in api.list_repo_commits(repo.repo_id)] == commits_before


def test_rolling_forward_again_and_back_to_a_rollback_tag(api: HfApi, local_hub, tmp_path: Path) -> None:
    repo = seed(api, "rollback-forward")
    back = rollback_to_tag(repo.repo_id, OLD_TAG, token=local_hub.token, run_id="r-back", out_dir=tmp_path / "a")
    forward = rollback_to_tag(repo.repo_id, NEW_TAG, token=local_hub.token, run_id="r-fwd", out_dir=tmp_path / "b")
    assert _main_files(api, repo.repo_id) == {".gitattributes", *repo.new_files}
    assert forward.deleted_files == ["old_only.txt"] and forward.previous_commit == back.commit_sha

    # A rollback tag is a valid target too; the new tag is named by what it restores, not nested.
    again = rollback_to_tag(
        repo.repo_id, back.rollback_tag, token=local_hub.token, run_id="r-again", out_dir=tmp_path / "c"
    )
    assert _main_files(api, repo.repo_id) == {".gitattributes", *repo.old_files}
    assert again.rollback_tag.endswith(f"-{OLD_TAG}") and again.rollback_tag.count("rollback-") == 1
    assert len(api.list_repo_commits(repo.repo_id)) == 6  # initial, two promotions, three rollbacks


def test_unknown_tag_is_a_config_error_that_lists_the_tags(api: HfApi, local_hub, tmp_path: Path) -> None:
    repo = seed(api, "rollback-unknown")
    with pytest.raises(ConfigError) as caught:
        rollback_to_tag(
            repo.repo_id, "run-20990101T000000Z-deadbeef", token=local_hub.token, run_id="r", out_dir=tmp_path
        )
    message = str(caught.value)
    assert "run-20990101T000000Z-deadbeef" in message and OLD_TAG in message and NEW_TAG in message
    assert message.index(NEW_TAG) < message.index(OLD_TAG), "newest first"
    assert api.list_repo_commits(repo.repo_id)[0].commit_id == repo.new
    assert not (tmp_path / RESULT_FILE).exists()


def test_refusals_before_any_push(api: HfApi, local_hub, tmp_path: Path) -> None:
    repo = seed(api, "rollback-refuse")
    api.create_tag(repo.repo_id, tag="empty-start", revision=repo.initial)
    with pytest.raises(ConfigError, match="no Hub token"):
        rollback_to_tag(repo.repo_id, OLD_TAG, token=None, run_id="r", out_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"no model\.safetensors"):
        rollback_to_tag(repo.repo_id, "empty-start", token=local_hub.token, run_id="r", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="already holds"):
        rollback_to_tag(repo.repo_id, NEW_TAG, token=local_hub.token, run_id="r", out_dir=tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        rollback_to_tag("local/no-such-repo-xyz", OLD_TAG, token=local_hub.token, run_id="r", out_dir=tmp_path)
    assert api.list_repo_commits(repo.repo_id)[0].commit_id == repo.new


def test_a_concurrent_push_wins_and_the_rollback_fails(
    api: HfApi, local_hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone pushes between the rollback's read of main and its commit: 412, and their commit survives."""
    repo = seed(api, "rollback-race")
    original = HfApi.create_commit
    pushed: list[str] = []

    def push_first(self: HfApi, repo_id: str, operations, **kwargs):  # type: ignore[no-untyped-def]
        if not pushed and kwargs.get("parent_commit"):
            other = HfApi(token=local_hub.token)
            concurrent = [CommitOperationAdd("model.safetensors", b"a newer model pushed meanwhile")]
            pushed.append(original(other, repo_id, concurrent, commit_message="Promote concurrent").oid)
        return original(self, repo_id, operations, **kwargs)

    monkeypatch.setattr(HfApi, "create_commit", push_first)
    with pytest.raises(PublishConflict, match="moved"):
        rollback_to_tag(repo.repo_id, OLD_TAG, token=local_hub.token, run_id="r-race", out_dir=tmp_path)

    assert pushed and api.list_repo_commits(repo.repo_id)[0].commit_id == pushed[0]
    assert not any(name.startswith("rollback-") for name in _tags(api, repo.repo_id))
    assert not (tmp_path / RESULT_FILE).exists()


def test_rollback_tag_name() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert rollback_tag_name(OLD_TAG, when) == f"rollback-20260304T050607Z-{OLD_TAG}"
    nested = rollback_tag_name(f"rollback-20260101T000000Z-{OLD_TAG}", when)
    assert nested == f"rollback-20260304T050607Z-{OLD_TAG}"
