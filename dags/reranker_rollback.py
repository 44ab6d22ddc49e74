"""
### Roll the production reranker back to an earlier promotion

Puts the files of an earlier `run-<UTC>-<fingerprint>` (or `rollback-...`) tag back on `main` of the Hub repo as
**one new commit** on top of the current head, and tags it `rollback-<UTC>-<tag>`. History is not rewritten:
`main` and every existing tag stay where they are, so rolling forward again is another rollback to a newer tag.

`airflow dags trigger reranker_rollback --conf '{"tag": "run-20261123T101500Z-3fa2b9c1"}'`

* The commit is made only if `main` is still at the head read at the start (otherwise the task fails with
  `PublishConflict`, without retry: look at what was pushed, then trigger again if still wanted).
* An unknown tag, a tag `main` already matches, or a missing token fail at once, without retries.
* The Hub token comes from the connection `huggingface_default` (password field) or `HF_TOKEN`, never from params.

The task body is one call into `reranker_tasks.rollback`; its result is in
`$RERANKER_ARTIFACTS_ROOT/<run id>/rollback/rollback.json`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, task

from reranker_airflow import tasks as steps
from reranker_airflow.defaults import ROLLBACK_RETRY_POLICY, START_DATE, default_args
from reranker_tasks.config_fields import HUB

PARAMS = {
    "hub_repo_id": Param(
        "local/support-reranker", type="string", minLength=3, title="Hub repo", section=HUB,
        description="'namespace/name' of the production repo; its main branch is production.",
    ),
    "tag": Param(
        type="string", minLength=1, title="Tag to roll back to", section=HUB,
        description="An existing tag of the repo, e.g. 'run-20261123T101500Z-3fa2b9c1' (a promotion) or a "
        "'rollback-...' tag. main gets exactly that tag's files in one new commit.",
    ),
}


@dag(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=2),
    params=PARAMS,
    doc_md=__doc__,
    tags=["ml", "reranker", "rollback"],
    # A bad tag, a missing token or a lost compare-and-swap fail at once (ROLLBACK_RETRY_POLICY); anything else keeps
    # the retries, and a retry that finds its own commit already on main reuses it.
    default_args=default_args(execution_timeout=timedelta(hours=1), retry_policy=ROLLBACK_RETRY_POLICY),
)
def reranker_rollback() -> None:
    @task
    def rollback() -> dict[str, Any]:
        """Commit the tag's files on main over the head read at the start, and tag the new commit."""
        return steps.rollback()

    rollback()


reranker_rollback()
