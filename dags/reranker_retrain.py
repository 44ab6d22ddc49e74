"""
### Retrain the cross-encoder reranker

Takes the newest labeled (query, document, label) pairs, checks them with Great Expectations, fine-tunes a
sentence-transformers `CrossEncoder` with `BinaryCrossEntropyLoss`, evaluates the candidate against the untuned
base model and the model in production (the head of `main` of the Hub repo), and only when the gate passes
writes the model card and pushes one commit plus a `run-<UTC>-<fingerprint>` tag to the Hugging Face Hub.

`preflight → extract → validate → split → train → evaluate → gate → [await_approval] → model_card → publish`

* `preflight` checks the Hub token, write access to the repo, the base model and free disk before anything
  expensive runs.
* The gate has three outcomes. *promote*: on to the card and the push. *needs approval* (sound, better on the
  point estimate, but below the margin or not significant): `await_approval` asks a person in the UI (Approve /
  Reject, the evidence in its body; no answer within the timeout means Reject), unless the conf key `approval`
  is `approve` or `reject`. *reject*: the run ends, not promoted.
* A rejected candidate is not a failure: `model_card` and `publish` are skipped, and the run succeeds with the
  reasons in the gate's log and in `artifacts/<run>/gate/decision.json`.
* The push names the champion commit it was compared against as its parent: if `main` moved meanwhile, the
  push is refused (HTTP 412) and the run ends not promoted, saying so.
* Bad config or data fails its task at once, without retries; network and Hub errors are retried.
* The Hub token comes from the connection `huggingface_default` (password field) or `HF_TOKEN`, never from params.
* Alerts (e-mail to `RERANKER_ALERT_EMAILS` through the SMTP connection `RERANKER_ALERT_CONN_ID`): a failed task, a
  candidate not promoted, a pending approval, a run far slower than usual. See "Alerts" in the README.

Each task body is one call into `reranker_airflow.tasks`, which turns the run context into the arguments of one
`reranker_tasks` step; artifacts live under `$RERANKER_ARTIFACTS_ROOT/<run id>/<task>/`, and XCom carries only
small JSON (paths, counts, metrics).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import dag, task

from reranker_airflow import tasks as steps
from reranker_airflow.alerts import RerankerAlert, deadline_alerts, record_failure
from reranker_airflow.defaults import LABELS_ASSET, SNAPSHOT_ASSET, START_DATE, approval_timeout, default_args
from reranker_airflow.links import attach_ui_links
from reranker_airflow.params import labels_params, retrain_params

DAG_ID = Path(__file__).stem
LABELS_DAG_ID = f"{DAG_ID}_on_labels"


def _dag_settings(dag_id: str) -> dict[str, Any]:
    """What the weekly DAG and its asset-scheduled twin share: everything but schedule, params and docs."""
    return {
        "dag_id": dag_id,
        "start_date": START_DATE,
        "catchup": False,
        "max_active_runs": 1,
        "dagrun_timeout": timedelta(hours=12),
        "tags": ["ml", "reranker", "retraining"],
        # failure.json first (make run reads it), then the alert.
        "default_args": default_args(
            execution_timeout=timedelta(hours=2), on_failure_callback=[record_failure, RerankerAlert("task_failed")]
        ),
        "on_failure_callback": RerankerAlert("run_failed"),
        "deadline": deadline_alerts(dag_id),
    }


LABELS_DOC = f"""
### Retrain the reranker when the labels change

The same pipeline as `{DAG_ID}` (see its docs), scheduled on the labels' Asset `{LABELS_ASSET.name}`
(`{LABELS_ASSET.uri}`) instead of a cron: a labelling pipeline's outlet, the `reranker_labels_published` DAG, or
`POST /api/v2/assets/events` starts a run. `min_new_pairs` defaults to 1, so a run whose data is the champion's
ends early as *skipped*. The run's own snapshot Asset is a different one: a run never triggers another.
"""


def reranker_retrain() -> None:
    # An argument a body does not read is there for the order: extract after preflight, split after validate.
    @task
    def preflight() -> dict[str, Any]:
        """Fail in seconds, not after hours of training: token, write access, base model, free disk."""
        return steps.preflight()

    @task(outlets=[SNAPSHOT_ASSET])
    def extract(checked: dict[str, Any]) -> dict[str, Any]:
        """Snapshot the labels; skip the run when there is too little new data since the champion."""
        return steps.extract()

    @task
    def validate(extracted: dict[str, Any]) -> dict[str, Any]:
        """Great Expectations suites on the snapshot; the report and Data Docs are kept, pass or fail."""
        return steps.validate(extracted)

    @task
    def split(extracted: dict[str, Any], validated: dict[str, Any]) -> dict[str, Any]:
        """Train and eval splits, grouped by query (or the golden eval set)."""
        return steps.split(extracted)

    @task(
        execution_timeout=timedelta(hours=8),
        # Deployment settings (read where the DAG is parsed): e.g. a Celery queue only GPU workers listen on.
        queue=os.environ.get("RERANKER_TRAIN_QUEUE", "default"),
        pool=os.environ.get("RERANKER_TRAIN_POOL", "default_pool"),
    )
    def train(extracted: dict[str, Any], splits: dict[str, Any]) -> dict[str, Any]:
        """Hours of training survive a killed worker: the retry resumes from the run's newest complete checkpoint.

        Heartbeats need nothing here: the task supervisor, a separate process, sends them while this one trains.
        """
        return steps.train(extracted, splits)

    @task
    def evaluate(splits: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
        """The candidate, the untuned base model and the champion on the same held-out queries."""
        return steps.evaluate(splits, trained)

    @task.branch
    def gate(metrics: dict[str, Any]) -> list[str]:
        """Decide; follow to the card (promote), to a person (borderline), or nowhere (reject)."""
        return steps.gate(metrics)

    # A person decides a borderline candidate: Approve → card and push; Reject or no answer → not promoted.
    await_approval = ApprovalOperator(
        task_id="await_approval",
        subject="Promote the reranker candidate of run {{ run_id }}?",
        body="{{ ti.xcom_pull(task_ids='gate', key='approval_body') }}",
        defaults="Reject",
        response_timeout=approval_timeout(),
        retries=0,
        notifiers=[RerankerAlert("approval_pending")],
    )

    @task(trigger_rule="none_failed_min_one_success")
    def model_card(
        extracted: dict[str, Any],
        validated: dict[str, Any],
        splits: dict[str, Any],
        trained: dict[str, Any],
        metrics: dict[str, Any],
    ) -> dict[str, Any]:
        """The model card (metrics, gate decision, data, lineage) and the staged files to push."""
        return steps.model_card(extracted, validated, splits, trained, metrics)

    @task(retries=3)
    def publish(extracted: dict[str, Any], metrics: dict[str, Any], card: dict[str, Any]) -> dict[str, Any]:
        """One commit on top of the champion it was compared against, plus a run tag; a lost race ends skipped."""
        return steps.publish(extracted, metrics, card)

    @task(trigger_rule="all_done")
    def prune() -> dict[str, Any]:
        """Delete old runs' artifacts (RERANKER_RETENTION_DAYS / _KEEP_LAST); logs errors, never fails.

        A teardown: it runs whatever happened (all_done), and the run's state is still decided by the pipeline's
        tasks, not by this cleanup (a plain all_done leaf would turn a failed run green).
        """
        return steps.prune()

    checked = preflight()
    extracted = extract(checked)
    validated = validate(extracted)
    splits = split(extracted, validated)
    trained = train(extracted, splits)
    metrics = evaluate(splits, trained)
    route = gate(metrics)
    card = model_card(extracted, validated, splits, trained, metrics)
    route >> await_approval >> card
    route >> card
    published = publish(extracted, metrics, card)
    published >> prune().as_teardown()
    attach_ui_links(validate=validated, publish=published)


# The weekly DAG, and its twin scheduled on the labels' Asset: one pipeline, two triggers.
# The cadence is a deployment setting (cron, preset, or "none" for manual and asset-triggered runs only).
WEEKLY = os.environ.get("RERANKER_SCHEDULE", "@weekly")
dag(
    schedule=None if WEEKLY.lower() == "none" else WEEKLY, params=retrain_params(), doc_md=__doc__,
    **_dag_settings(DAG_ID),
)(reranker_retrain)()
dag(schedule=[LABELS_ASSET], params=labels_params(), doc_md=LABELS_DOC, **_dag_settings(LABELS_DAG_ID))(
    reranker_retrain
)()
