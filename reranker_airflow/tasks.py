"""The bodies of the DAGs' tasks (retrain, rollback): one function per task, called as the task's only statement.

Each body turns the run context (conf, token, connections, the run's artifact store) into the plain arguments of
one ``reranker_tasks`` step, runs it inside the step's artifact folder (``arts.writing``), and returns the small
JSON the step's result serialises to (XCom). What is Airflow's stays here, not in the DAG file and not in
``reranker_tasks``: skipping a task, pushing extra XCom keys, asset events, the not-promoted alert.

The DAG file keeps only what is wiring: task ids, dependencies, trigger rules, retries, queues and timeouts.
Steps are imported inside the bodies so that parsing the DAG file stays cheap (no torch, GX or pandas).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import get_current_context

from reranker_airflow.alerts import alert_not_promoted
from reranker_airflow.context import (
    artifacts,
    artifacts_root,
    hub_token,
    pinned_train_config,
    preflight_result,
    run_config,
    sql_url,
)
from reranker_airflow.defaults import SNAPSHOT_ASSET
from reranker_tasks import layout

#: What the snapshot Asset's event carries (extract's result keys): enough to tell two snapshots apart in the UI.
SNAPSHOT_EVENT_KEYS = ("fingerprint", "pairs", "queries", "positives", "rows_read")


def preflight() -> dict[str, Any]:
    from reranker_tasks.preflight import run_preflight

    cfg = run_config()
    with artifacts() as arts, arts.writing(layout.PREFLIGHT_STEP) as out_dir:
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
        return arts.commit(layout.PREFLIGHT_STEP, result.to_dict())


def extract() -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowSkipException

    from reranker_tasks.extract import extract_pairs
    from reranker_tasks.freshness import decide_freshness, read_champion_lineage
    from reranker_tasks.paths import write_json_atomic

    cfg = run_config()
    source_url = sql_url(cfg.extract.sql_conn_id) if cfg.extract.is_sql else None
    # A skip leaves freshness.json in the store too (uploaded like a failed step's files, without a marker).
    # reuse: a retried extract keeps the snapshot it took (the source may have changed since).
    with artifacts() as arts, arts.writing(layout.EXTRACT_STEP, reuse=True) as out_dir:
        result = extract_pairs(cfg.extract, out_dir, source_url, cfg.validate.relevance_threshold)
        if cfg.extract.min_new_pairs:
            champion = read_champion_lineage(cfg.publish.hub_repo_id, hub_token())
            fresh = decide_freshness(result.fingerprint, result.pairs, cfg.extract.min_new_pairs, champion)
            write_json_atomic(out_dir / layout.FRESHNESS_FILE, fresh.to_dict())
            if fresh.skip:
                raise AirflowSkipException(f"skipped: {fresh.reason}")
        summary = result.to_dict()
        get_current_context()["outlet_events"][SNAPSHOT_ASSET].extra = {k: summary[k] for k in SNAPSHOT_EVENT_KEYS}
        return arts.commit(layout.EXTRACT_STEP, summary)


def validate(extracted: dict[str, Any]) -> dict[str, Any]:
    from reranker_tasks.validate import validate_pairs

    cfg = run_config()
    # A failed validation's report and Data Docs are uploaded too: that is when people need them.
    with artifacts() as arts, arts.writing(layout.VALIDATE_STEP) as out_dir:
        local = {**extracted, "snapshot_path": str(arts.local(extracted["snapshot_path"]))}
        if extracted.get("eval_snapshot_path"):
            local["eval_snapshot_path"] = str(arts.local(extracted["eval_snapshot_path"]))
        result = validate_pairs(Path(local["snapshot_path"]), out_dir, cfg.validate, local)
        return arts.commit(layout.VALIDATE_STEP, result.to_dict())


def split(extracted: dict[str, Any]) -> dict[str, Any]:
    from reranker_tasks.split import split_pairs

    golden = extracted.get("eval_snapshot_path")
    with artifacts() as arts, arts.writing(layout.SPLIT_STEP) as out_dir:
        result = split_pairs(
            arts.local(extracted["snapshot_path"]), out_dir, run_config().split,
            arts.local(golden) if golden else None,
        )
        return arts.commit(layout.SPLIT_STEP, result.to_dict())


def train(extracted: dict[str, Any], splits: dict[str, Any]) -> dict[str, Any]:
    from reranker_tasks.train import (
        CHECKPOINT_COMPLETE_FILE,
        CHECKPOINTS_DIR,
        INIT_MODEL_DIR,
        download_init_model,
        train_reranker,
    )

    cfg = run_config()
    # Checkpoints are mirrored to the store as they are saved (store mode), not uploaded with the model.
    # reuse: a retry (on any worker) finds the model an earlier try completed and does not train again.
    excluded = [CHECKPOINTS_DIR, INIT_MODEL_DIR]  # the champion download is a copy of what the Hub holds
    with artifacts() as arts, arts.writing(layout.TRAIN_STEP, exclude=excluded, reuse=True) as out_dir:
        mirror = arts.checkpoint_mirror(layout.TRAIN_STEP, CHECKPOINTS_DIR, CHECKPOINT_COMPLETE_FILE)
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
        committed = arts.commit(layout.TRAIN_STEP, result.to_dict())
        if mirror is not None:  # only now: until the model is in the store, a retry may need them
            mirror.clear()
        return committed


def evaluate(splits: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
    from reranker_tasks.evaluate import evaluate_models

    cfg = run_config()
    # The champion's download is a copy of what the Hub holds: not worth a second copy in the store.
    with artifacts() as arts, arts.writing(layout.EVALUATE_STEP, exclude=[layout.CHAMPION_DIR]) as out_dir:
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
        return arts.commit(layout.EVALUATE_STEP, result.to_dict())


def gate(metrics: dict[str, Any]) -> list[str]:
    """The gate's decision and where the run goes next: the task ids to follow (none: not promoted).

    Besides the route it pushes two XCom keys: ``decision`` (the card reads it) and ``approval_body`` (the
    approval task's body, rendered from XCom by Jinja).
    """
    from reranker_tasks.approval import route_decision
    from reranker_tasks.evaluate import load_per_query
    from reranker_tasks.gate import decide_promotion, record_decision

    cfg = run_config()
    with artifacts() as arts, arts.writing(layout.GATE_STEP) as out_dir:
        per_query_path = arts.local(metrics["per_query_path"])
        per_query = {
            name: load_per_query(per_query_path, name, metrics["primary_metric"])
            for name in ("candidate", "base", "champion")
            if metrics.get(name)
        }
        decision = decide_promotion(metrics, cfg.gate, per_query)
        record_decision(decision, out_dir)
        route = route_decision(decision, cfg.gate.approval, out_dir)
        arts.commit(layout.GATE_STEP)
    print(decision.summary())
    print(route.message)
    ti = get_current_context()["ti"]
    ti.xcom_push(key="decision", value=decision.to_dict())
    ti.xcom_push(key="approval_body", value=route.approval_body)
    if not route.follow:  # not promoted: tell the team why
        alert_not_promoted(decision.to_dict(), route.message)
    return list(route.follow)


def run_lineage(cfg: Any, extracted: dict[str, Any], splits: dict[str, Any]) -> dict[str, Any]:
    """What the card records about where the model came from: data, split, base model, repo, run and config."""
    context = get_current_context()
    # Pulled, not passed: preflight always succeeds first, and as a direct upstream it would let model_card's
    # trigger rule (one success is enough) run the card of a run whose extract was skipped.
    checked = preflight_result()
    return {
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
    ti = get_current_context()["ti"]
    with artifacts() as arts, arts.writing(layout.MODEL_CARD_STEP) as out_dir:
        # Pulled, not passed: the gate's return value is its route, so the decision travels under its own key;
        # await_approval's answer is None when the branch skipped it (a promote).
        decision = ti.xcom_pull(task_ids="gate", key="decision")
        answer = ti.xcom_pull(task_ids="await_approval")
        decision["approval"] = read_approval(arts.materialize(layout.GATE_STEP), answer)
        result = write_model_card(
            arts.local(trained["model_dir"]),
            out_dir,
            metrics=metrics,
            decision=decision,
            validation=validated,
            lineage=run_lineage(cfg, extracted, splits),
            data_paths=(arts.local(splits["train_path"]), arts.local(splits["eval_path"])),
            examples=cfg.publish.card_examples,
            training=trained,
        )
        return arts.commit(layout.MODEL_CARD_STEP, result.to_dict())


def publish(extracted: dict[str, Any], metrics: dict[str, Any], card: dict[str, Any]) -> dict[str, Any]:
    """Push the staged model (or record what a dry run would push); a lost race for ``main`` ends skipped."""
    from airflow.sdk.exceptions import AirflowSkipException

    from reranker_tasks.errors import PublishConflict
    from reranker_tasks.publish import publish_model, record_conflict, record_dry_run

    cfg = run_config()
    with artifacts() as arts, arts.writing(layout.PUBLISH_STEP) as out_dir:
        staging = arts.local(card["staging_dir"])
        if cfg.publish.dry_run:
            would = record_dry_run(staging, out_dir, repo_id=cfg.publish.hub_repo_id,
                                   parent_commit=metrics["hub_head_commit"])
            print(f"DRY RUN: would push {len(would['files'])} files to {cfg.publish.hub_repo_id}; nothing pushed")
            return arts.commit(layout.PUBLISH_STEP, would)
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
            arts.commit(layout.PUBLISH_STEP)
            raise AirflowSkipException(f"NOT PROMOTED: {exc}") from exc
        print(f"Hub commit: {result.commit_url} (tag {result.tag})")
        return arts.commit(layout.PUBLISH_STEP, result.to_dict())


def prune() -> dict[str, Any]:
    from reranker_tasks.retention import prune_from_env

    return prune_from_env(artifacts_root(), protect=[get_current_context()["run_id"]])


def rollback() -> dict[str, Any]:
    """The rollback DAG's one task: main gets the files of the tag in its params, in one new commit."""
    from reranker_tasks.rollback import rollback_to_tag

    context = get_current_context()
    params = context["params"]
    run_id = context["run_id"]
    # The tag's files are a download from the Hub: not copied into the store.
    with artifacts(run_id) as arts, arts.writing(layout.ROLLBACK_STEP, exclude=[layout.ROLLBACK_SNAPSHOT_DIR]) as out:
        result = rollback_to_tag(params["hub_repo_id"], params["tag"], token=hub_token(), run_id=run_id, out_dir=out)
        print(f"Hub commit: {result.commit_url} (tag {result.rollback_tag}, was {result.previous_commit})")
        return arts.commit(layout.ROLLBACK_STEP, result.to_dict())
