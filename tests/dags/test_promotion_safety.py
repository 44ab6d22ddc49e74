"""End to end through Airflow (``dag.test``): borderline candidates, rollback, and a push that loses a race.

The champion of the borderline/rollback repo is seeded by hand: the untuned tiny BERT with its seeded head,
tagged like a promotion. Every DAG-trained candidate beats it by a wide margin, so ``min_gain`` near 1.0 makes
the candidate sound and better, but not by enough: *needs approval*, deterministically.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.support import seed_untuned_champion, tiny_run_inputs

pytestmark = pytest.mark.slow
REPO = "local/e2e-borderline"
RACE_REPO = "local/e2e-race"
SEED_TAG = "run-20260101T000000Z-00000000"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, airflow_local, local_hub):
    from huggingface_hub import HfApi

    folder = tmp_path_factory.mktemp("safety")
    _, conf = tiny_run_inputs(folder)
    conf["hub_repo_id"] = REPO
    base = Path(conf["base_model"])
    api = HfApi(token=local_hub.token)
    seed_commit = seed_untuned_champion(api, REPO, base, folder / "champion", SEED_TAG)
    return {"conf": conf, "api": api, "seed_commit": seed_commit}


def _run(conf: dict) -> tuple[str, int, str, Path]:
    from reranker_tasks.paths import RunPaths
    from scripts.run_dag import run_once

    outcome, status, run_id = run_once(conf)
    return outcome, status, run_id, RunPaths.for_run(run_id or "no-run").run_dir


def _heads(api, repo: str) -> list[str]:
    return [c.commit_id for c in api.list_repo_commits(repo, revision="main")]


def test_borderline_candidate_rejected_by_conf_pushes_nothing(inputs) -> None:
    before = _heads(inputs["api"], REPO)
    outcome, status, run_id, run_dir = _run({**inputs["conf"], "min_gain": 0.99, "approval": "reject"})
    assert status == 0, outcome
    assert outcome.startswith("OUTCOME: not promoted: needs approval and conf approval=reject rejected it"), outcome
    assert "min_gain" in outcome
    decision = json.loads((run_dir / "gate" / "decision.json").read_text())
    assert decision["outcome"] == "needs_approval"
    assert [c["rule"] for c in decision["checks"] if not c["passed"]] == ["min_gain"]
    assert decision["evidence"]["vs_champion"]["p_value"] < 0.05  # clearly better, just not by 0.99
    assert _heads(inputs["api"], REPO) == before


def test_borderline_candidate_approved_by_conf_is_pushed_and_the_card_says_who(inputs) -> None:
    from huggingface_hub import hf_hub_download

    before = _heads(inputs["api"], REPO)
    outcome, status, run_id, run_dir = _run({**inputs["conf"], "min_gain": 0.99, "approval": "approve"})
    assert status == 0 and outcome.startswith("OUTCOME: promoted "), outcome
    heads = _heads(inputs["api"], REPO)
    assert len(heads) == len(before) + 1 and heads[1] == before[0]
    card = Path(hf_hub_download(REPO, "README.md", revision=heads[0])).read_text()
    assert "promoted after approval by conf approval=approve" in card
    assert "| min_gain | needs approval | no |" in card
    assert "| Δ vs champion |" in card and "two-sided 95% confidence" in card


def test_force_pushes_a_candidate_no_better_than_the_champion_and_says_so(inputs) -> None:
    """The champion is now the approved model; the same data and seed train the same model again."""
    from huggingface_hub import hf_hub_download

    outcome, status, _, run_dir = _run(inputs["conf"])
    assert outcome.startswith("OUTCOME: not promoted (reject): beats_champion"), outcome
    before = _heads(inputs["api"], REPO)
    outcome, status, _, run_dir = _run({**inputs["conf"], "force": True})
    assert status == 0 and outcome.startswith("OUTCOME: promoted "), outcome
    decision = json.loads((run_dir / "gate" / "decision.json").read_text())
    assert decision["forced"] == ["beats_champion", "min_gain", "significance"]
    heads = _heads(inputs["api"], REPO)
    assert heads[1] == before[0]
    card = Path(hf_hub_download(REPO, "README.md", revision=heads[0])).read_text()
    assert "promoted by force (conf force=true), bypassing beats_champion, min_gain, significance" in card


def test_dry_run_does_everything_but_the_push(inputs) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    repo = "local/e2e-dry-run"
    outcome, status, run_id, run_dir = _run({**inputs["conf"], "hub_repo_id": repo, "dry_run": True})
    assert status == 0 and outcome.startswith(f"OUTCOME: dry run: would promote to {repo}"), outcome
    would = json.loads((run_dir / "publish" / "dry_run.json").read_text())
    assert {"model.safetensors", "README.md", "config.json"} <= set(would["files"])
    assert (run_dir / "model_card" / "staging" / "README.md").exists()
    with pytest.raises(RepositoryNotFoundError):
        inputs["api"].model_info(repo)


def test_rollback_makes_the_older_model_the_champion_of_the_next_run(inputs) -> None:
    from airflow.dag_processing.dagbag import DagBag

    root = Path(__file__).resolve().parents[2]
    rollback = DagBag(dag_folder=str(root / "dags" / "reranker_rollback.py")).dags["reranker_rollback"]
    rolled = rollback.test(run_conf={"hub_repo_id": REPO, "tag": SEED_TAG})
    assert str(rolled.state) == "success"
    head = _heads(inputs["api"], REPO)[0]
    assert head != inputs["seed_commit"]  # a new commit, not a rewritten branch

    outcome, status, run_id, run_dir = _run({**inputs["conf"], "min_gain": 0.99, "approval": "reject"})
    assert status == 0, outcome
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert metrics["champion_commit"] == head
    # The champion scores exactly like the untuned base again: the rolled-back weights are the seeded ones.
    assert metrics["champion"]["ndcg@10"] == pytest.approx(metrics["base"]["ndcg@10"], abs=1e-6)


def test_a_push_that_lost_the_race_ends_not_promoted_and_lands_nothing(inputs, tmp_path) -> None:
    """Another writer publishes between our evaluation and our push: exactly one commit (theirs) lands."""
    import os

    from huggingface_hub import CommitOperationAdd

    api = inputs["api"]
    artifacts = Path(os.environ["RERANKER_ARTIFACTS_ROOT"])
    started = time.time()
    pushed: list[str] = []

    def competitor() -> None:
        deadline = time.time() + 900
        while time.time() < deadline:
            for metrics in artifacts.glob("*/evaluate/metrics.json"):
                if metrics.stat().st_mtime >= started and json.loads(metrics.read_text())["hub_head_commit"] is None:
                    api.create_repo(RACE_REPO, exist_ok=True)
                    info = api.create_commit(
                        RACE_REPO, [CommitOperationAdd("model.safetensors", b"someone else's model")],
                        commit_message="a concurrent promotion",
                    )
                    pushed.append(info.oid)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=competitor, daemon=True)
    thread.start()
    outcome, status, run_id, run_dir = _run({**inputs["conf"], "hub_repo_id": RACE_REPO})
    thread.join(timeout=5)
    assert pushed, "the competing push never happened"
    assert status == 0, outcome
    assert outcome.startswith(f"OUTCOME: not promoted: main of {RACE_REPO} moved since the champion was evaluated"), outcome
    commits = api.list_repo_commits(RACE_REPO, revision="main")
    assert commits[0].commit_id == pushed[0]
    assert not any(run_id in (c.message or "") for c in commits)
    conflict = json.loads((run_dir / "publish" / "conflict.json").read_text())
    assert conflict["promoted"] is False
