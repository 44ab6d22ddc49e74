"""Publish step: one commit on ``main`` (production) holding the staged model and card, plus a run tag.

* One ``create_commit`` of an explicit file list, never ``upload_folder``: with Xet available,
  ``upload_folder`` may split a large push into several commits, and the first would be a broken model.
* ``parent_commit`` is the head of ``main`` that the evaluate step saw. If someone pushed in between, the
  Hub answers 412 and we raise :class:`PublishConflict` instead of overwriting a model we never compared
  against; the DAG records it (:func:`record_conflict`) and ends the run *not promoted*, saying so.
* The commit POST is not retried by ``huggingface_hub``, and a lost response may hide a landed commit.
  Every commit therefore carries a ``Run-Id:`` line; a retried task first looks for its own commit on
  ``main`` and reuses it (and its tag) instead of pushing twice.
* The token is an argument: it comes from the orchestrator (an Airflow Connection or ``HF_TOKEN``) and is
  never logged, put into the card, the commit, or an artifact.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reranker_tasks import layout
from reranker_tasks.errors import ConfigError, PublishConflict
from reranker_tasks.modelio import MODEL_FILE_ALLOWLIST
from reranker_tasks.paths import write_json_atomic

log = logging.getLogger(__name__)

RESULT_FILE = layout.PUBLISH_FILE
CONFLICT_FILE = layout.CONFLICT_FILE
DRY_RUN_FILE = layout.DRY_RUN_FILE
_TAG_PREFIX = "run-"


@dataclass(frozen=True)
class PublishResult:
    repo_id: str
    commit_sha: str
    commit_url: str
    tag: str
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_tag(fingerprint: str, when: datetime | None = None) -> str:
    """``run-<UTC timestamp>-<first 8 of the data fingerprint>``, e.g. ``run-20261123T101500Z-3fa2b9c1``."""
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{_TAG_PREFIX}{when:%Y%m%dT%H%M%SZ}-{fingerprint[:8]}"


def commit_message(run_id: str, metrics: dict[str, Any]) -> tuple[str, str]:
    """Summary line and description of the promotion commit (names the run and the metrics)."""
    key = metrics["primary_metric"]
    candidate = metrics["candidate"][key]
    parts = [f"{key} {candidate:.4f}", f"base {metrics['base'][key]:.4f}"]
    if metrics.get("champion"):
        parts.append(f"champion {metrics['champion'][key]:.4f}")
    summary = f"Promote reranker from run {run_id} ({', '.join(parts)})"
    lines = [f"Run-Id: {run_id}", f"Eval queries: {metrics['eval_queries']}"]
    for name in ("candidate", "base", "champion"):
        values = metrics.get(name)
        if values:
            lines.append(f"{name}: " + ", ".join(f"{k}={v:.4f}" for k, v in values.items()))
    return summary, "\n".join(lines)


def publish_model(
    staging_dir: Path,
    out_dir: Path,
    *,
    repo_id: str,
    token: str | None,
    parent_commit: str | None,
    fingerprint: str,
    run_id: str,
    metrics: dict[str, Any],
    private: bool = False,
) -> PublishResult:
    """Push the staged files as one commit on ``main`` and tag it.

    Args:
        staging_dir: the model-card step's staging folder (allow-listed files only).
        out_dir: the run's ``publish`` folder (the result is recorded there).
        repo_id: the production repo.
        token: Hub write token.
        parent_commit: head of ``main`` when the champion was evaluated (None: the repo did not exist).
        fingerprint: data fingerprint (the tag carries its first 8 characters).
        run_id: the DAG run id (in the commit message, used to recognise our own commit on retry).
        metrics: the evaluate step's result (for the commit message).
        private: create the repo private when it does not exist yet.

    Raises:
        ConfigError: no token.
        PublishConflict: ``main`` moved since the champion was evaluated.
    """
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if not token:
        raise ConfigError(
            "no Hub token: set the Airflow connection 'huggingface_default' (token in the password field) "
            "or the HF_TOKEN environment variable of the workers"
        )
    files = publishable_files(staging_dir)

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if parent_commit is None:
        parent_commit = _head_of_new_repo(api, repo_id, run_id)

    existing = _find_own_commit(api, repo_id, run_id)
    if existing is not None:
        commit_sha, commit_url = existing
        log.info("this run's commit is already on main (%s): not pushing again", commit_sha)
        reused = True
    else:
        summary, description = commit_message(run_id, metrics)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(staging_dir / name)) for name in files]
        try:
            info = api.create_commit(
                repo_id,
                operations=operations,
                commit_message=summary,
                commit_description=description,
                revision="main",
                parent_commit=parent_commit,
            )
        except HfHubHTTPError as exc:
            status = getattr(exc.response, "status_code", None)
            if status == 412:
                raise PublishConflict(
                    f"main of {repo_id} moved since the champion was evaluated (expected parent {parent_commit}); "
                    "not overwriting a model this run never compared against"
                ) from exc
            raise
        commit_sha, commit_url = info.oid, info.commit_url
        reused = False

    tag = _existing_run_tag(api, repo_id, commit_sha, fingerprint) or run_tag(fingerprint)
    api.create_tag(repo_id, tag=tag, revision=commit_sha, tag_message=f"Run-Id: {run_id}", exist_ok=True)
    result = PublishResult(repo_id=repo_id, commit_sha=commit_sha, commit_url=commit_url, tag=tag, reused=reused)
    write_json_atomic(out_dir / RESULT_FILE, result.to_dict())
    log.info("pushed %s to %s: %s (tag %s)", commit_sha[:12], repo_id, commit_url, tag)
    return result


def _head_of_new_repo(api: Any, repo_id: str, run_id: str) -> str | None:
    """The repo did not exist when the champion was looked up. If a model landed on main since, that is a race we
    lost (never overwrite it); otherwise the head is the repo's initial commit, and it becomes our parent so a push
    landing now still makes ours fail instead of replacing it."""
    info = api.model_info(repo_id, revision="main", files_metadata=False)
    files = {s.rfilename for s in info.siblings or []}
    if layout.MODEL_WEIGHTS_FILE in files and _find_own_commit(api, repo_id, run_id) is None:
        raise PublishConflict(
            f"main of {repo_id} moved since the champion was evaluated: the repo did not exist then, and now holds "
            f"a model (commit {info.sha}); not overwriting a model this run never compared against"
        )
    return info.sha


def publishable_files(staging_dir: Path) -> list[str]:
    """The staged files, checked: allow-listed names only, weights and card present (the push and the dry run
    must agree on what would be committed)."""
    files = sorted(p.name for p in staging_dir.iterdir() if p.is_file())
    unexpected = sorted(set(files) - set(MODEL_FILE_ALLOWLIST))
    if unexpected or layout.MODEL_WEIGHTS_FILE not in files or layout.MODEL_CARD_FILE not in files:
        raise ConfigError(f"staging folder {staging_dir} is not a publishable model: files {files}")
    return files


def record_dry_run(staging_dir: Path, out_dir: Path, *, repo_id: str, parent_commit: str | None) -> dict[str, Any]:
    """``dry_run``: everything but the push. Record what would have been committed, and where."""
    files = publishable_files(staging_dir)
    result = {"dry_run": True, "repo_id": repo_id, "parent_commit": parent_commit, "files": files,
              "bytes": sum((staging_dir / name).stat().st_size for name in files)}
    write_json_atomic(out_dir / DRY_RUN_FILE, result)
    log.info("dry run: would push %d files (%d bytes) to %s on parent %s", len(files), result["bytes"], repo_id,
             parent_commit)
    return result


def record_conflict(out_dir: Path, reason: str) -> Path:
    """Record that this run lost a race to another push: not promoted, and why."""
    return write_json_atomic(out_dir / CONFLICT_FILE, {"promoted": False, "reason": reason})


def _find_own_commit(api: Any, repo_id: str, run_id: str) -> tuple[str, str] | None:
    """Our commit, if an earlier attempt of this task landed it (recent history of main only)."""
    marker = f"Run-Id: {run_id}"
    for index, commit in enumerate(api.list_repo_commits(repo_id, revision="main")):
        if index >= 20:
            break
        if marker in (commit.message or "").splitlines():
            endpoint = api.endpoint.rstrip("/")
            return commit.commit_id, f"{endpoint}/{repo_id}/commit/{commit.commit_id}"
    return None


def _existing_run_tag(api: Any, repo_id: str, commit_sha: str, fingerprint: str) -> str | None:
    pattern = re.compile(rf"^{_TAG_PREFIX}\d{{8}}T\d{{6}}Z-{re.escape(fingerprint[:8])}$")
    for ref in api.list_repo_refs(repo_id).tags:
        if ref.target_commit == commit_sha and pattern.match(ref.name):
            return str(ref.name)
    return None
