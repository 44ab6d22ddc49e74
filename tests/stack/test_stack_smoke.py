"""End to end on the multi-machine topology: the API is behind auth, and a run triggered over REST promotes and
pushes, its tasks executed by a Celery worker through the Redis broker (training on the ``gpu`` queue).

The run uses ``tiny_conf`` (``tests/stack/conftest.py``: the tiny BERT, learnable pairs and conf of
``tests/dags/test_reranker_e2e.py``), so training takes seconds; what is slow is each task being a fresh
Python process, as in production.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.stack.airflow_stack import DAG_ID, AirflowClient, AirflowStack
from tests.stack.conftest import TRAIN_QUEUE

if TYPE_CHECKING:
    from tests.conftest import LocalHub  # importing conftest again would re-run its set-up

pytestmark = pytest.mark.slow
RUN_TIMEOUT_S = 900.0


def test_the_api_is_behind_auth(airflow_stack: AirflowStack, stack_client: AirflowClient) -> None:
    with httpx.Client(base_url=airflow_stack.base_url, trust_env=False, timeout=30) as anonymous:
        assert anonymous.get(f"/api/v2/dags/{DAG_ID}").status_code == 401
        assert anonymous.get("/api/v2/dags").status_code == 401
        wrong = {"username": airflow_stack.username, "password": airflow_stack.password + "x"}
        assert anonymous.post("/auth/token", json=wrong).status_code == 401
    assert stack_client.get_dag(DAG_ID)["dag_id"] == DAG_ID


def test_a_rest_triggered_run_promotes_and_pushes_to_the_hub(
    airflow_stack: AirflowStack, stack_client: AirflowClient, tiny_conf: dict[str, Any], local_hub: LocalHub
) -> None:
    from huggingface_hub import HfApi

    repo = f"local/stack-smoke-{uuid.uuid4().hex[:8]}"
    stack_client.unpause(DAG_ID)
    began = time.perf_counter()
    run_id = stack_client.trigger_dag(DAG_ID, {**tiny_conf, "hub_repo_id": repo})
    stack_client.wait_for_run(DAG_ID, run_id, ("success",), timeout=RUN_TIMEOUT_S, fail_on_input_wait=True)
    print(f"run {run_id} succeeded in {time.perf_counter() - began:.1f} s")

    states = stack_client.task_instances(DAG_ID, run_id)
    assert states.get("publish") == "success", stack_client.describe_run(DAG_ID, run_id)
    # Executed by Celery: every task went through the broker; training on the GPU queue, the rest on default.
    tis = {ti["task_id"]: ti for ti in stack_client.task_instance_list(DAG_ID, run_id)}
    assert tis["train"]["queue"] == TRAIN_QUEUE and tis["extract"]["queue"] == "default"
    worker_log = next(c for c in airflow_stack.components if c.name.startswith("celery")).log_path.read_text()
    for task_id in ("extract", "train", "publish"):
        assert tis[task_id]["id"] in worker_log, f"the Celery worker did not run {task_id}"
    publish_log = stack_client.task_log(DAG_ID, run_id, "publish")
    assert "Hub commit:" in publish_log, publish_log[-3000:]

    commits = HfApi(endpoint=local_hub.endpoint, token=local_hub.token).list_repo_commits(repo, revision="main")
    messages = [f"{c.title}\n{c.message or ''}" for c in commits]
    assert any(run_id in message for message in messages), (run_id, messages)

