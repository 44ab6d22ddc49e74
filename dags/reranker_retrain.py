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

Task bodies call into the `reranker_tasks` package (the steps) and `reranker_airflow` (run context, alerts);
artifacts live under
`$RERANKER_ARTIFACTS_ROOT/<run id>/<task>/`, and XCom carries only small JSON (paths, counts, metrics).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import dag, get_current_context, task

from reranker_airflow.alerts import RerankerAlert, alert_not_promoted, deadline_alerts, record_failure
from reranker_airflow.context import (
    artifacts, artifacts_root, hub_token, pinned_train_config, preflight_result, run_config, sql_url,
)
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
    @task
    def preflight() -> dict[str, Any]:
        """Fail in seconds, not after hours of training: token, write access, base model, free disk."""
        from reranker_tasks.preflight import run_preflight

        cfg = run_config()
        with artifacts() as arts, arts.writing("preflight") as out_dir:
            result = run_preflight(
                repo_id=cfg.publish.hub_repo_id,
                token=hub_token(),
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
        from reranker_tasks.layout import FRESHNESS_FILE
        from reranker_tasks.paths import write_json_atomic

        cfg = run_config()
        source_url = sql_url(cfg.extract.sql_conn_id) if cfg.extract.is_sql else None
        # A skip leaves freshness.json in the store too (uploaded like a failed step's files, without a marker).
        # reuse: a retried extract keeps the snapshot it took (the source may have changed since).
        with artifacts() as arts, arts.writing("extract", reuse=True) as out_dir:
            result = extract_pairs(cfg.extract, out_dir, source_url, cfg.validate.relevance_threshold)
            if cfg.extract.min_new_pairs:
                champion = read_champion_lineage(cfg.publish.hub_repo_id, hub_token())
                fresh = decide_freshness(result.fingerprint, result.pairs, cfg.extract.min_new_pairs, champion)
                write_json_atomic(out_dir / FRESHNESS_FILE, fresh.to_dict())
                if fresh.skip:
                    raise AirflowSkipException(f"skipped: {fresh.reason}")
            get_current_context()["outlet_events"][SNAPSHOT_ASSET].extra = {
                k: result.to_dict()[k] for k in ("fingerprint", "pairs", "queries", "positives", "rows_read")
            }
            return arts.commit("extract", result.to_dict())

    @task
    def validate(extracted: dict[str, Any]) -> dict[str, Any]:
        from reranker_tasks.validate import validate_pairs

        cfg = run_config()
        # A failed validation's report and Data Docs are uploaded too: that is when people need them.
        with artifacts() as arts, arts.writing("validate") as out_dir:
            local = {**extracted, "snapshot_path": str(arts.local(extracted["snapshot_path"]))}
            if extracted.get("eval_snapshot_path"):
                local["eval_snapshot_path"] = str(arts.local(extracted["eval_snapshot_path"]))
            result = validate_pairs(Path(local["snapshot_path"]), out_dir, cfg.validate, local)
            return arts.commit("validate", result.to_dict())

    @task
    def split(extracted: dict[str, Any], validated: dict[str, Any]) -> dict[str, Any]:
        from reranker_tasks.split import split_pairs

        golden = extracted.get("eval_snapshot_path")
        with artifacts() as arts, arts.writing("split") as out_dir:
            result = split_pairs(
                arts.local(extracted["snapshot_path"]), out_dir, run_config().split,
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

        cfg = run_config()
        # Checkpoints are mirrored to the store as they are saved (store mode), not uploaded with the model.
        # reuse: a retry (on any worker) finds the model an earlier try completed and does not train again.
        excluded = [CHECKPOINTS_DIR, INIT_MODEL_DIR]  # the champion download is a copy of what the Hub holds
        with artifacts() as arts, arts.writing("train", exclude=excluded, reuse=True) as out_dir:
            mirror = arts.checkpoint_mirror("train", CHECKPOINTS_DIR, CHECKPOINT_COMPLETE_FILE)
            init_model = None
            if cfg.train.init_from == "champion":  # at the commit preflight pinned
                init_model = download_init_model(
                    cfg.publish.hub_repo_id, preflight_result().get("champion_commit"), out_dir / INIT_MODEL_DIR,
                    hub_token(),
                )
            result = train_reranker(
                arts.local(splits["train_path"]),
                out_dir,
                pinned_train_config(cfg),
                model_id=cfg.publish.hub_repo_id,
                data_name=f"labeled pairs {extracted['fingerprint'][:8]}",
                token=hub_token(),
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

        cfg = run_config()
        # The champion's download is a copy of what the Hub holds: not worth a second copy in the store.
        with artifacts() as arts, arts.writing("evaluate", exclude=["champion"]) as out_dir:
            result = evaluate_models(
                arts.local(splits["eval_path"]),
                arts.local(trained["model_dir"]),
                out_dir,
                pinned_train_config(cfg),
                cfg.evaluate,
                cfg.publish.hub_repo_id,
                token=hub_token(),
                train_path=arts.local(splits["train_path"]),
            )
            return arts.commit("evaluate", result.to_dict())

    @task.branch
    def gate(metrics: dict[str, Any]) -> list[str]:
        """Decide; follow to the card (promote), to a person (borderline), or nowhere (reject)."""
        from reranker_tasks.approval import route_decision
        from reranker_tasks.evaluate import load_per_query
        from reranker_tasks.gate import decide_promotion, record_decision

        cfg = run_config()
        with artifacts() as arts, arts.writing("gate") as out_dir:
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
            alert_not_promoted(decision.to_dict(), route.message)
        return list(route.follow)

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
        from reranker_tasks.approval import read_approval
        from reranker_tasks.model_card import write_model_card

        cfg = run_config()
        context = get_current_context()
        ti = context["ti"]
        with artifacts() as arts, arts.writing("model_card") as out_dir:
            decision = ti.xcom_pull(task_ids="gate", key="decision")
            decision["approval"] = read_approval(arts.materialize("gate"), ti.xcom_pull(task_ids="await_approval"))
            # Pulled, not passed: preflight always succeeds first, and as a direct upstream it would let this task's
            # trigger rule (one success is enough) run the card of a run whose extract was skipped.
            checked = preflight_result()
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

        cfg = run_config()
        with artifacts() as arts, arts.writing("publish") as out_dir:
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
                    token=hub_token(),
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

        return prune_from_env(artifacts_root(), protect=[get_current_context()["run_id"]])

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
