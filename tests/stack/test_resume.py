"""A killed train task resumes from its checkpoint on Airflow's retry, through the real deployment.

How Airflow 3.3 runs a task here: the executor's worker process (a Celery worker in the session's stack, the
scheduler's LocalExecutor in a single-machine one) runs the task *supervisor*
(``airflow.sdk.execution_time.supervisor``), which forks the task process; the supervisor titles itself
``airflow worker -- LocalExecutor: <ti id>`` and the task process ``airflow worker -- <ti id>``
(``task_runner.startup``). The test SIGKILLs exactly that task process, found among the scheduler's descendants
by its title and the try's task-instance id (from the REST API), once the run's artifacts hold a complete
checkpoint: what a worker losing the training process (OOM killer, a node going away) looks like. The supervisor
survives, reports the exit, and the API server puts the task up for retry; try 2 must log that it resumes.
"""

from __future__ import annotations

import re
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
import pytest

from reranker_tasks.paths import read_json, safe_run_name
from reranker_tasks.train import CHECKPOINT_INPUTS_FILE, CHECKPOINTS_DIR, MANIFEST_FILE, find_resumable_checkpoint
from tests.stack.airflow_stack import DAG_ID, AirflowClient, AirflowStack
from tests.support import seed_untuned_champion

if TYPE_CHECKING:
    from tests.conftest import LocalHub  # importing conftest again would re-run its set-up

pytestmark = pytest.mark.slow
RUN_TIMEOUT_S = 900.0
CHECKPOINT_TIMEOUT_S = 600.0
# 120 steps of a tiny BERT, a checkpoint every 10: the kill lands right after the first one, 110 steps before the end
# (seconds even on an idle box, while finding and killing the process takes well under one).
LONGER = {"epochs": 4.0, "checkpoint_steps": 10, "dev_fraction": 0.0, "hard_negatives": False}
WAITING = ("awaiting_input", "deferred")
_RESUMED = re.compile(r"resuming from checkpoint (\S+/checkpoint-(\d+)) \(step (\d+) of (\d+)\)")


def _wait_for_complete_checkpoint(stack: AirflowStack, client: AirflowClient, run_id: str) -> int:
    """Poll the run's artifacts (fast, no API) until a complete checkpoint exists; returns its step."""
    checkpoints = stack.artifacts / safe_run_name(run_id) / "train" / CHECKPOINTS_DIR
    deadline = time.monotonic() + CHECKPOINT_TIMEOUT_S
    last_api_check = 0.0
    while time.monotonic() < deadline:
        try:
            key = read_json(checkpoints / CHECKPOINT_INPUTS_FILE)["inputs_key"]
            newest = find_resumable_checkpoint(checkpoints, key)
        except (OSError, ValueError, KeyError):
            newest = None
        if newest is not None:
            return newest.step
        if time.monotonic() - last_api_check > 5:  # a run that ended or a dead component fails now, not at timeout
            last_api_check = time.monotonic()
            stack.check_running()
            state = client.dag_run(DAG_ID, run_id)["state"]
            assert state not in ("success", "failed"), f"run ended {state} before any checkpoint\n" + (
                client.describe_run(DAG_ID, run_id))
        time.sleep(0.1)
    raise TimeoutError(f"no complete checkpoint under {checkpoints} within {CHECKPOINT_TIMEOUT_S:.0f} s")


def _task_process(stack: AirflowStack, ti_id: str) -> psutil.Process:
    """The task process of one try, among the descendants of every component (the scheduler's LocalExecutor or a
    Celery worker runs the supervisor): the process titled with the TI id whose parent, the supervisor, is too."""
    tagged: dict[int, psutil.Process] = {}
    for component in stack.components:
        if component.process is None:
            continue
        for proc in psutil.Process(component.process.pid).children(recursive=True):
            try:
                if ti_id in " ".join(proc.cmdline()):
                    tagged[proc.pid] = proc
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
    found = [p for p in tagged.values() if p.ppid() in tagged]
    assert len(found) == 1, f"expected one task process under its supervisor for {ti_id}, found {list(tagged.values())}"
    return found[0]


@dataclass(frozen=True)
class KilledRun:
    run_id: str
    first_try_id: str
    seen_step: int
    repo: str
    seeded: str  # the champion's commit: still main's head when nothing was pushed


@pytest.fixture(scope="module")
def killed_run(
    airflow_stack: AirflowStack, stack_client: AirflowClient, tiny_conf: dict[str, Any], local_hub: LocalHub,
    tmp_path_factory: pytest.TempPathFactory,
) -> KilledRun:
    """A borderline run (weak champion, ``min_gain`` 0.99, as in test_approval_rest.py) whose train task process
    is SIGKILLed after its first complete checkpoint; returned once the retried run waits for a person.

    Borderline so that the same run also shows a rejection over REST (the test below): one run less in CI."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    repo = f"local/stack-resume-{uuid.uuid4().hex[:8]}"
    seeded = seed_untuned_champion(api, repo, Path(tiny_conf["base_model"]), tmp_path_factory.mktemp("champion"),
                                   "run-20260101T000000Z-00000000")
    conf = {**tiny_conf, **LONGER, "hub_repo_id": repo, "min_gain": 0.99}
    stack_client.unpause(DAG_ID)
    run_id = stack_client.trigger_dag(DAG_ID, conf)

    stack_client.wait_for_task_state(DAG_ID, run_id, "train", ("running",), timeout=RUN_TIMEOUT_S)
    first = stack_client.task_instance(DAG_ID, run_id, "train")
    assert first["try_number"] == 1, first
    seen_step = _wait_for_complete_checkpoint(airflow_stack, stack_client, run_id)
    task_process = _task_process(airflow_stack, first["id"])
    supervisor = task_process.parent()
    task_process.send_signal(signal.SIGKILL)
    task_process.wait(30)
    assert supervisor is not None and supervisor.is_running(), "only the task process was killed, not its supervisor"
    stack_client.wait_for_task_state(DAG_ID, run_id, "await_approval", WAITING, timeout=RUN_TIMEOUT_S)
    return KilledRun(run_id, first["id"], seen_step, repo, seeded)


def test_a_killed_train_task_is_retried_and_resumes_from_its_checkpoint(
    airflow_stack: AirflowStack, stack_client: AirflowClient, killed_run: KilledRun
) -> None:
    run_id, seen_step = killed_run.run_id, killed_run.seen_step
    train = stack_client.task_instance(DAG_ID, run_id, "train")
    assert (train["state"], train["try_number"]) == ("success", 2), train
    assert train["id"] != killed_run.first_try_id

    retry_log = stack_client.task_log(DAG_ID, run_id, "train", try_number=2)
    resumed = _RESUMED.search(retry_log)
    assert resumed, f"try 2 did not resume from a checkpoint:\n{retry_log[-4000:]}"
    path, folder_step, step, max_steps = resumed.group(1), *map(int, resumed.groups()[1:])
    run_dir = airflow_stack.artifacts / safe_run_name(run_id)
    # Artifacts in a store: try 1's scratch folder died with it; try 2 downloaded the checkpoint into its own.
    assert Path(path).parent.parts[-3:] == (safe_run_name(run_id), "train", CHECKPOINTS_DIR), path
    assert Path(path).is_relative_to(airflow_stack.root / "scratch"), path
    assert f"downloaded checkpoints checkpoint-{folder_step}" in retry_log, retry_log[-4000:]
    # The kill came right after checkpoint `seen_step`; the process may have saved one more before it died.
    assert folder_step == step and seen_step <= step < max_steps, resumed.group(0)
    first_log = stack_client.task_log(DAG_ID, run_id, "train", try_number=1)
    assert f"checkpoint-{step} (step {step} of {max_steps})" in first_log, first_log[-4000:]
    assert "resuming from checkpoint" not in first_log

    manifest = read_json(run_dir / "train" / "model" / MANIFEST_FILE)
    assert manifest["resumed_from_step"] == step and manifest["result"]["global_step"] == max_steps
    assert not (run_dir / "train" / CHECKPOINTS_DIR).exists(), "checkpoints are removed once the model is saved"


def test_a_person_rejects_over_rest_and_nothing_is_pushed(
    stack_client: AirflowClient, killed_run: KilledRun, local_hub: LocalHub
) -> None:
    from huggingface_hub import HfApi

    run_id = killed_run.run_id
    stack_client.patch_hitl_details(DAG_ID, run_id, "await_approval", ["Reject"])
    stack_client.wait_for_run(DAG_ID, run_id, ("success",), timeout=RUN_TIMEOUT_S)
    states = stack_client.task_instances(DAG_ID, run_id)
    assert states["model_card"] == "skipped" and states["publish"] == "skipped", states
    assert states["prune"] == "success", states
    commits = HfApi(endpoint=local_hub.endpoint, token=local_hub.token).list_repo_commits(killed_run.repo)
    assert commits[0].commit_id == killed_run.seeded
