"""End to end on the multi-machine topology: the API is behind auth, and a run triggered over REST promotes and
pushes, its tasks executed by two Celery workers through the Redis broker (training on the ``gpu`` queue's worker),
with the artifacts in a store (``file://``): every task in a scratch folder of its own, steps committed with markers.

The run is the first of the session's ``two_runs`` (``tests/stack/conftest.py``, shared with ``test_ui.py``). It
uses ``tiny_conf`` (the tiny BERT, learnable pairs and conf of ``tests/dags/test_reranker_e2e.py``), so training
takes seconds; what is slow is each task being a fresh Python process, as in production.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from reranker_tasks.paths import safe_run_name
from reranker_tasks.storage import COMPLETE_MARKER
from tests.smtp_sink import SmtpSink
from tests.stack.airflow_stack import DAG_ID, AirflowClient, AirflowStack
from tests.stack.conftest import ALERT_TO, TRAIN_QUEUE, TwoRuns

if TYPE_CHECKING:
    from tests.conftest import LocalHub  # importing conftest again would re-run its set-up

pytestmark = pytest.mark.slow


def test_the_api_is_behind_auth(airflow_stack: AirflowStack, stack_client: AirflowClient) -> None:
    with httpx.Client(base_url=airflow_stack.base_url, trust_env=False, timeout=30) as anonymous:
        assert anonymous.get(f"/api/v2/dags/{DAG_ID}").status_code == 401
        assert anonymous.get("/api/v2/dags").status_code == 401
        wrong = {"username": airflow_stack.username, "password": airflow_stack.password + "x"}
        assert anonymous.post("/auth/token", json=wrong).status_code == 401
    assert stack_client.get_dag(DAG_ID)["dag_id"] == DAG_ID


def test_a_rest_triggered_run_promotes_and_pushes_to_the_hub(
    airflow_stack: AirflowStack, stack_client: AirflowClient, two_runs: TwoRuns, local_hub: LocalHub,
    stack_smtp: SmtpSink,
) -> None:
    from huggingface_hub import HfApi

    # The session's first run (tests/stack/conftest.py): triggered over REST, promoted (the fixture checked that
    # publish succeeded and the Hub's head names the run); here, how it was executed.
    repo, run_id = two_runs.repo, two_runs.promoted
    states = stack_client.task_instances(DAG_ID, run_id)
    assert states.get("publish") == "success", stack_client.describe_run(DAG_ID, run_id)
    # Executed by Celery: every task went through the broker; training on the GPU queue, the rest on default.
    tis = {ti["task_id"]: ti for ti in stack_client.task_instance_list(DAG_ID, run_id)}
    assert tis["train"]["queue"] == TRAIN_QUEUE and tis["extract"]["queue"] == "default"
    # Each on its own worker: the CPU worker never trains, the "GPU" worker does nothing else. They share no
    # folder but the artifacts store, where train found the split and evaluate the model (complete steps only).
    logs = {c.name: c.log_path.read_text() for c in airflow_stack.components if c.name.startswith("celery")}
    cpu_log, gpu_log = logs["celery-worker-default"], logs[f"celery-worker-{TRAIN_QUEUE}"]
    for task_id in ("extract", "split", "evaluate", "publish"):
        assert tis[task_id]["id"] in cpu_log and tis[task_id]["id"] not in gpu_log, task_id
    assert tis["train"]["id"] in gpu_log and tis["train"]["id"] not in cpu_log
    run_dir = airflow_stack.artifacts / safe_run_name(run_id)
    for step in ("extract", "split", "train", "evaluate", "gate", "model_card", "publish"):
        assert (run_dir / step / COMPLETE_MARKER).is_file(), f"{step} has no completion marker in the store"
    assert (run_dir / "train" / "model" / "model.safetensors").is_file()
    assert not any((airflow_stack.root / "scratch").glob("reranker-scratch-*")), "every task's scratch folder went"
    publish_log = stack_client.task_log(DAG_ID, run_id, "publish")
    assert "Hub commit:" in publish_log, publish_log[-3000:]

    commits = HfApi(endpoint=local_hub.endpoint, token=local_hub.token).list_repo_commits(repo, revision="main")
    messages = [f"{c.title}\n{c.message or ''}" for c in commits]
    assert any(run_id in message for message in messages), (run_id, messages)

    # The run took longer than the stack's 18 s "running too long" deadline: the scheduler saw the miss and the
    # triggerer sent the alert through the SMTP notifier (the run itself went on and succeeded).
    alert = stack_smtp.wait_for(lambda m: "RUNNING LONG" in m.subject and run_id in m.subject, timeout=120)
    assert alert.rcpt_to == [ALERT_TO] and "still running 18 s after it was queued" in alert.body, alert.body
    assert "Deadline:" in alert.body and "{{" not in alert.body, "the templates were rendered"

