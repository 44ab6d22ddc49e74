"""Triggers from data: the labels' Asset starts the asset-scheduled DAG, from another DAG's outlet and from the
REST API's asset-event endpoint. The triggered runs are stopped once they exist: what runs inside them is the
weekly DAG's pipeline, covered by the other tests (an unchanged-data run ending as skipped: tests/dags)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import pytest

from tests.stack.airflow_stack import AirflowClient

pytestmark = pytest.mark.slow
TWIN = "reranker_retrain_on_labels"
PRODUCER = "reranker_labels_published"
WAIT_S = 300.0


def _asset_runs(client: AirflowClient) -> list[dict[str, Any]]:
    runs = client.request("GET", f"/api/v2/dags/{TWIN}/dagRuns", params={"limit": 100}).json()["dag_runs"]
    return [r for r in runs if r["run_type"] == "asset_triggered"]


def _wait_for_new_run(client: AirflowClient, known: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        fresh = [r for r in _asset_runs(client) if r["dag_run_id"] not in known]
        if fresh:
            return fresh[0]
        time.sleep(2)
    raise AssertionError(f"no asset-triggered run of {TWIN} within {WAIT_S:.0f} s")


def _stop(client: AirflowClient, run_id: str) -> None:
    """End the triggered run now: a full default training run is not what this test is about."""
    client.request("PATCH", f"/api/v2/dags/{TWIN}/dagRuns/{run_id}", json={"state": "failed"})
    # The prune teardown still runs after the run is marked failed, and Airflow 3.3 re-evaluates the run's state
    # when it ends: either end state is fine here, only that the run is over before the next event.
    client.wait_for_run(TWIN, run_id, ("failed", "success"), timeout=180)


def test_labels_asset_events_trigger_the_twin_from_an_outlet_and_from_rest(stack_client: AirflowClient) -> None:
    stack_client.unpause(TWIN)
    stack_client.unpause(PRODUCER)
    known = {r["dag_run_id"] for r in _asset_runs(stack_client)}

    # 1. Another DAG's outlet: the labels were announced by a pipeline.
    producer_run = stack_client.trigger_dag(PRODUCER, {"note": "weekly export"})
    stack_client.wait_for_run(PRODUCER, producer_run, ("success",), timeout=WAIT_S)
    first = _wait_for_new_run(stack_client, known)
    _stop(stack_client, first["dag_run_id"])
    known.add(first["dag_run_id"])

    # 2. The REST API's asset-event endpoint, as an external labelling tool would call it.
    assets = stack_client.request("GET", "/api/v2/assets", params={"name_pattern": "reranker_labels"}).json()
    (labels,) = [a for a in assets["assets"] if a["name"] == "reranker_labels"]
    event = stack_client.request(
        "POST", "/api/v2/assets/events", json={"asset_id": labels["id"], "extra": {"from": "labelling-tool"}}
    ).json()
    assert event["asset_id"] == labels["id"]
    second = _wait_for_new_run(stack_client, known)
    _stop(stack_client, second["dag_run_id"])

    # The snapshot Asset that each run emits is a different one: it never schedules the twin.
    snapshot = stack_client.request("GET", "/api/v2/assets", params={"name_pattern": "reranker_training_snapshot"})
    for asset in snapshot.json()["assets"]:
        assert not any(d.get("dag_id") == TWIN for d in asset.get("scheduled_dags") or []), asset

    # The monitoring view serves the twin too: its runs are listed, under its own DAG id, linking to its pages,
    # and its tasks' links answer through the REST API (the runs were stopped early: no link has a URL yet).
    body = stack_client.request("GET", "/reranker/api/runs", params={"limit": 100}).json()
    assert TWIN in body["dag_ids"]
    by_id = {run["run_id"]: run for run in body["runs"]}
    for triggered in (first, second):
        listed = by_id[triggered["dag_run_id"]]
        assert listed["dag_id"] == TWIN
        assert f"/dags/{TWIN}/runs/" in listed["ui_url"]
        one = stack_client.request("GET", f"/reranker/api/runs/{quote(triggered['dag_run_id'], safe='')}").json()
        assert one["dag_id"] == TWIN
    path = f"/api/v2/dags/{TWIN}/dagRuns/{quote(first['dag_run_id'], safe='')}/taskInstances/publish/links"
    assert set(dict(stack_client.request("GET", path).json()["extra_links"])) == {"Hub commit", "Model card"}
