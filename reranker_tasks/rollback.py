"""Rollback: put the files of an earlier promotion back on ``main`` (production) as one new commit.

Why it works this way:

* History is never rewritten. ``main`` and every tag keep existing the whole time (consumers pinned to a tag or
  to ``main`` never see a missing ref); the rollback is a new commit on top of the current head whose tree equals
  the tree of the chosen tag, plus a new ``rollback-<UTC>-<tag>`` tag on it. Rolling forward again is the same
  operation with a newer tag.
* One ``create_commit`` with ``parent_commit`` = the head of ``main`` read at the start: if anyone pushes in
  between, the Hub answers 412 and we raise :class:`PublishConflict` instead of throwing their commit away.
* The commit POST is not retried by ``huggingface_hub`` and a lost response may hide a landed commit, so the commit
  carries ``Run-Id:`` and ``Rollback-Of:`` lines; a retried task finds its own commit on ``main`` and reuses it
  (and its tag) instead of committing twice.
* Refused up front, as config errors (a retry cannot fix them): no token, an unknown repo or tag, a tag whose tree
  holds no ``model.safetensors`` (production would have no model), and a tag whose files ``main`` already holds
  (no empty commit).
* The token is an argument from the orchestrator and never logged or written anywhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reranker_tasks import layout
from reranker_tasks.errors import ConfigError, PublishConflict, RerankerError
from reranker_tasks.paths import write_json_atomic

log = logging.getLogger(__name__)

RESULT_FILE = layout.ROLLBACK_FILE
ROLLBACK_TAG_PREFIX = "rollback-"
_RUN_TAG_PREFIX = "run-"
_BRANCH = "main"
_MODEL_FILE = layout.MODEL_WEIGHTS_FILE
_HISTORY_DEPTH = 20  # how far back on main a retried attempt looks for its own commit
_LISTED_TAGS = 20  # newest tags of each kind named in an "unknown tag" error
_NESTED_ROLLBACK = re.compile(r"^rollback-\d{8}T\d{6}Z-")

# path -> git blob id. For LFS files the blob id is that of the pointer, which holds the content's sha256 and size,
# so equal ids mean equal content either way.
Tree = dict[str, str]


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did; ``rollback.json`` in the step folder and the task's XCom."""

    repo_id: str
    tag: str
    tag_commit: str
    previous_commit: str | None
    commit_sha: str
    commit_url: str
    rollback_tag: str
    restored_files: list[str]
    deleted_files: list[str]
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rollback_tag_name(tag: str, when: datetime | None = None) -> str:
    """``rollback-<UTC timestamp>-<tag>``; a target that is itself a rollback tag is named by what it restored,
    so rolling back to a rollback does not nest prefixes (the exact target is in the tag message)."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{ROLLBACK_TAG_PREFIX}{when:%Y%m%dT%H%M%SZ}-{_NESTED_ROLLBACK.sub('', tag)}"


def rollback_message(tag: str, previous_head: str, run_id: str) -> tuple[str, str]:
    """Summary and description of the rollback commit; the description lines identify it on a retry."""
    return f"Rollback to {tag} (was {previous_head[:12]})", _markers(run_id, tag)


def _markers(run_id: str, tag: str) -> str:
    """The lines that identify a rollback commit (and its tag) as this run's."""
    return f"Run-Id: {run_id}\nRollback-Of: {tag}"


def rollback_to_tag(repo_id: str, tag: str, *, token: str | None, run_id: str, out_dir: Path) -> RollbackResult:
    """Make ``main`` hold exactly the files of ``tag`` again, with one new commit and a ``rollback-`` tag.

    Args:
        repo_id: the production repo (its ``main`` is production).
        tag: an existing tag of the repo, normally a ``run-<UTC>-<fp8>`` promotion tag.
        token: Hub write token (from the orchestrator; never logged).
        run_id: the DAG run id, written into the commit so a retried attempt recognises its own commit.
        out_dir: the run's ``rollback`` folder: the tag's files are downloaded below it, ``rollback.json`` written.

    Raises:
        ConfigError: no token, unknown repo or tag, the tag holds no model, or ``main`` already holds its files.
        PublishConflict: ``main`` moved between reading its head and committing.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    if not token:
        raise ConfigError(
            "no Hub token: set the Airflow connection 'huggingface_default' (token in the password field) "
            "or the HF_TOKEN environment variable of the workers"
        )
    tag = (tag or "").strip()
    if not tag:
        raise ConfigError("no tag given: pass the run-... or rollback-... tag to roll back to")

    api = HfApi(token=token)
    try:
        refs = api.list_repo_refs(repo_id)
    except RepositoryNotFoundError as exc:
        raise ConfigError(f"Hub repo {repo_id!r} not found (or the token cannot read it)") from exc
    head = next((b.target_commit for b in refs.branches if b.name == _BRANCH), None)
    if head is None:
        raise ConfigError(f"Hub repo {repo_id!r} has no {_BRANCH!r} branch")
    tags = {str(t.name): str(t.target_commit) for t in refs.tags}
    if tag not in tags:
        raise ConfigError(f"tag {tag!r} not found in {repo_id}; {_describe_tags(tags)}")
    tag_commit = tags[tag]

    own = _find_own_commit(api, repo_id, head, run_id, tag)
    if own is not None:
        commit_sha, previous = own
        log.info("this run's rollback commit is already on main (%s): not committing again", commit_sha[:12])
        tag_tree = _tree(api, repo_id, tag_commit)
        restored, deleted = _diff(_tree(api, repo_id, previous) if previous else {}, tag_tree)
        reused = True
    else:
        tag_tree, main_tree = _tree(api, repo_id, tag_commit), _tree(api, repo_id, head)
        if _MODEL_FILE not in tag_tree:
            raise ConfigError(f"tag {tag!r} of {repo_id} holds no {_MODEL_FILE}: production would have no model")
        if tag_tree == main_tree:
            raise ConfigError(f"main of {repo_id} already holds {tag}'s files: nothing to roll back")
        restored, deleted = _diff(main_tree, tag_tree)
        commit_sha = push_tree(
            api, repo_id, tag=tag, tag_commit=tag_commit, files=sorted(tag_tree), deleted=deleted,
            parent_commit=head, run_id=run_id, out_dir=out_dir, token=token,
        )
        if _tree(api, repo_id, commit_sha) != tag_tree:
            raise RerankerError(f"rollback commit {commit_sha} on {repo_id} does not hold {tag}'s files")
        previous = head
        reused = False

    rollback_tag = _existing_rollback_tag(tags, commit_sha, tag) or rollback_tag_name(tag)
    api.create_tag(repo_id, tag=rollback_tag, revision=commit_sha, tag_message=_markers(run_id, tag), exist_ok=True)
    endpoint = api.endpoint.rstrip("/")
    result = RollbackResult(
        repo_id=repo_id,
        tag=tag,
        tag_commit=tag_commit,
        previous_commit=previous,
        commit_sha=commit_sha,
        commit_url=f"{endpoint}/{repo_id}/commit/{commit_sha}",
        rollback_tag=rollback_tag,
        restored_files=restored,
        deleted_files=deleted,
        reused=reused,
    )
    write_json_atomic(out_dir / RESULT_FILE, result.to_dict())
    log.info(
        "rolled %s back to %s: %s (was %s, tag %s; %d file(s) restored, %d deleted)",
        repo_id, tag, commit_sha[:12], (previous or "none")[:12], rollback_tag, len(restored), len(deleted),
    )
    return result


def push_tree(
    api: Any,
    repo_id: str,
    *,
    tag: str,
    tag_commit: str,
    files: Iterable[str],
    deleted: Iterable[str],
    parent_commit: str,
    run_id: str,
    out_dir: Path,
    token: str,
) -> str:
    """Download ``files`` at ``tag_commit`` and commit them (plus ``deleted``) on ``main`` over ``parent_commit``.

    Every file of the tag is added; the client drops the ones whose content ``main`` already has. The
    commit is a compare-and-swap on ``parent_commit``: a 412 becomes :class:`PublishConflict`.

    Returns:
        The new commit's sha.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    names = list(files)
    local = Path(snapshot_download(repo_id, revision=tag_commit, token=token, local_dir=out_dir / layout.ROLLBACK_SNAPSHOT_DIR))
    operations: list[Any] = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(local / name)) for name in names]
    operations += [CommitOperationDelete(path_in_repo=name) for name in deleted]
    summary, description = rollback_message(tag, parent_commit, run_id)
    try:
        info = api.create_commit(
            repo_id,
            operations=operations,
            commit_message=summary,
            commit_description=description,
            revision=_BRANCH,
            parent_commit=parent_commit,
        )
    except HfHubHTTPError as exc:
        if getattr(exc.response, "status_code", None) == 412:
            raise PublishConflict(
                f"main of {repo_id} moved while rolling back to {tag} (expected head {parent_commit}); "
                "look at what was pushed and trigger the rollback again if it is still wanted"
            ) from exc
        raise
    commit_sha = str(info.oid)
    # With nothing left to change (main moved to these very files meanwhile) the client commits nothing and returns
    # the current head, which is not ours and was never checked against parent_commit.
    own = _find_own_commit(api, repo_id, _BRANCH, run_id, tag)
    if own is None or own[0] != commit_sha:
        raise PublishConflict(
            f"main of {repo_id} moved while rolling back to {tag} (expected head {parent_commit}, now {commit_sha})"
        )
    return commit_sha


def _tree(api: Any, repo_id: str, revision: str) -> Tree:
    """Files (not folders) of a revision and their blob ids."""
    from huggingface_hub.hf_api import RepoFile

    entries = api.list_repo_tree(repo_id, revision=revision, recursive=True)
    return {e.path: e.blob_id for e in entries if isinstance(e, RepoFile)}


def _diff(main_tree: Tree, tag_tree: Tree) -> tuple[list[str], list[str]]:
    """(files the tag has that main lacks or holds other content for, files only main has)."""
    restored = sorted(path for path, oid in tag_tree.items() if main_tree.get(path) != oid)
    return restored, sorted(set(main_tree) - set(tag_tree))


def _find_own_commit(api: Any, repo_id: str, revision: str, run_id: str, tag: str) -> tuple[str, str | None] | None:
    """(our commit, its parent) if an earlier attempt of this run landed the rollback (recent history only).

    Both marker lines must match: a retrain run's promotion commit carries a ``Run-Id:`` line too.
    """
    markers = set(_markers(run_id, tag).splitlines())
    commits = api.list_repo_commits(repo_id, revision=revision)
    for index, commit in enumerate(commits[:_HISTORY_DEPTH]):
        if markers <= set((commit.message or "").splitlines()):
            parent = commits[index + 1].commit_id if index + 1 < len(commits) else None
            return str(commit.commit_id), parent
    return None


def _existing_rollback_tag(tags: dict[str, str], commit_sha: str, tag: str) -> str | None:
    """The rollback tag an earlier attempt already put on our commit, if any (a retry adds no second one)."""
    pattern = re.compile(rf"^{ROLLBACK_TAG_PREFIX}\d{{8}}T\d{{6}}Z-{re.escape(_NESTED_ROLLBACK.sub('', tag))}$")
    return next((name for name, sha in sorted(tags.items()) if sha == commit_sha and pattern.match(name)), None)


def _describe_tags(tags: dict[str, str]) -> str:
    """The newest promotion and rollback tags, for an error message (timestamps in the names sort by time)."""
    parts = []
    for prefix in (_RUN_TAG_PREFIX, ROLLBACK_TAG_PREFIX):
        names = sorted((name for name in tags if name.startswith(prefix)), reverse=True)
        if names:
            more = f" (and {len(names) - _LISTED_TAGS} older)" if len(names) > _LISTED_TAGS else ""
            parts.append(f"{prefix}... tags: {', '.join(names[:_LISTED_TAGS])}{more}")
    return "; ".join(parts) if parts else "the repo has no run-... or rollback-... tags"
