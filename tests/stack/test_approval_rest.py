"""Human approval through the real deployment: a borderline candidate waits for a person, who answers over REST.

The repo's champion is the untuned tiny BERT (``seed_untuned_champion``) and ``min_gain`` is 0.99, so the gate
says *needs approval*, deterministically. ``approval`` is left at its default, ``wait``: the scheduler-run DAG
parks ``await_approval`` until someone answers through the HITL endpoint (what the UI's Approve button calls).
A rejection over REST is tested on test_resume.py's borderline run (one full run less).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.stack.airflow_stack import DAG_ID, AirflowClient
from tests.support import seed_untuned_champion

if TYPE_CHECKING:
    from tests.conftest import LocalHub

pytestmark = pytest.mark.slow
RUN_TIMEOUT_S = 900.0
WAITING = ("awaiting_input", "deferred")


def _borderline_run(client: AirflowClient, conf: dict[str, Any], local_hub: LocalHub, tmp_path: Path):
    from huggingface_hub import HfApi

    api = HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    repo = f"local/stack-approval-{uuid.uuid4().hex[:8]}"
    seeded = seed_untuned_champion(api, repo, Path(conf["base_model"]), tmp_path / "champion",
                                   "run-20260101T000000Z-00000000")
    client.unpause(DAG_ID)
    run_id = client.trigger_dag(DAG_ID, {**conf, "hub_repo_id": repo, "min_gain": 0.99})
    client.wait_for_task_state(DAG_ID, run_id, "await_approval", WAITING, timeout=RUN_TIMEOUT_S)
    return api, repo, seeded, run_id


def test_a_person_approves_over_rest_and_the_candidate_is_pushed(
    stack_client: AirflowClient, tiny_conf: dict[str, Any], local_hub: LocalHub, tmp_path: Path
) -> None:
    from huggingface_hub import hf_hub_download

    api, repo, seeded, run_id = _borderline_run(stack_client, tiny_conf, local_hub, tmp_path)
    question = stack_client.get_hitl_details(DAG_ID, run_id, "await_approval")
    assert question["options"] == ["Approve", "Reject"]
    assert "Paired bootstrap" in question["body"] and "min_gain" in question["body"], question["body"]
    assert run_id in question["subject"]
    gate_log = stack_client.task_log(DAG_ID, run_id, "gate")
    assert "NEEDS APPROVAL: min_gain" in gate_log and "waiting for a person" in gate_log

    stack_client.patch_hitl_details(DAG_ID, run_id, "await_approval", ["Approve"])
    stack_client.wait_for_run(DAG_ID, run_id, ("success",), timeout=RUN_TIMEOUT_S)
    states = stack_client.task_instances(DAG_ID, run_id)
    assert states["publish"] == "success", stack_client.describe_run(DAG_ID, run_id)

    head = api.list_repo_commits(repo, revision="main")[0]
    assert head.commit_id != seeded and run_id in (head.message or "")
    card = Path(hf_hub_download(repo, "README.md", revision=head.commit_id, token=local_hub.token)).read_text()
    assert "promoted after approval by admin (a person in the Airflow UI)" in card, card[:3000]
