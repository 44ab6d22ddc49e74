"""End to end: the DAG runs through Airflow (``dag.test``) against the loopback Hub emulator.

One tiny BERT and one data set are shared by the module; the runs build on each other the way a
team's weekly runs do: the first promotes, the second meets that champion and is rejected, a bad
file stops at validate, and nothing of the failed runs reaches the Hub.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.support import tiny_run_inputs, write_pairs

pytestmark = pytest.mark.slow
REPO = "local/e2e-reranker"


@pytest.fixture(scope="module")
def e2e_inputs(tmp_path_factory, airflow_local):
    folder = tmp_path_factory.mktemp("e2e")
    frame, conf = tiny_run_inputs(folder)
    conf["hub_repo_id"] = REPO
    return {"conf": conf, "frame": frame, "folder": folder}


def _run(conf: dict) -> tuple[str, int, str, Path]:
    from reranker_tasks.paths import RunPaths
    from scripts.run_dag import run_once

    outcome, status, run_id = run_once(conf)
    return outcome, status, run_id, RunPaths.for_run(run_id or "no-run").run_dir


def _main_commits(local_hub) -> list:
    from huggingface_hub import HfApi

    return list(HfApi(token=local_hub.token).list_repo_commits(REPO, revision="main"))


def _task_tries(run_id: str) -> dict[str, tuple[str, int]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == run_id).all()
        return {ti.task_id: (str(ti.state), ti.try_number) for ti in tis}


def test_first_run_promotes_and_the_pushed_model_ranks_by_its_tag(e2e_inputs, local_hub) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from sentence_transformers import CrossEncoder

    outcome, status, run_id, run_dir = _run(e2e_inputs["conf"])
    assert status == 0, outcome
    match = re.fullmatch(r"OUTCOME: promoted (\S+) tag=(run-\d{8}T\d{6}Z-[0-9a-f]{8})", outcome)
    assert match, outcome
    commit_url, tag = match.groups()

    extracted = json.loads((run_dir / "extract" / "manifest.json").read_text())
    assert tag.endswith(extracted["fingerprint"][:8])
    published = json.loads((run_dir / "publish" / "publish.json").read_text())
    assert commit_url.endswith(published["commit_sha"])

    api = HfApi(token=local_hub.token)
    refs = api.list_repo_refs(REPO)
    assert {t.name: t.target_commit for t in refs.tags}[tag] == published["commit_sha"]
    head = _main_commits(local_hub)[0]
    assert head.commit_id == published["commit_sha"]
    assert run_id in head.title and "ndcg@10" in head.title
    files = set(api.list_repo_files(REPO, revision=tag))
    assert {"model.safetensors", "config.json", "README.md", "tokenizer.json"} <= files
    assert not any("checkpoint" in f or f.endswith((".bin", ".pt", ".pkl")) for f in files)

    # Reload from the Hub by tag: the relevant document comes first for a query.
    model = CrossEncoder(REPO, revision=tag)
    query = "how to fix invoice"
    docs = [
        "open the invoice page and follow the invoice steps",
        "password release notes from last year",
        "webhook release notes from last year",
        "calendar release notes from last year",
    ]
    ranked = model.rank(query, docs)
    assert ranked[0]["corpus_id"] == 0

    # The card: sentence-transformers' sections plus ours, and no training text.
    card = Path(hf_hub_download(REPO, "README.md", revision=tag)).read_text()
    for heading in ("## Evaluation", "## Data Validation", "## Promotion Decision", "## Lineage", "## Usage",
                    "## Training Details", "### Framework Versions", "BinaryCrossEntropyLoss", "| Hit@1 |",
                    "| Pairwise best F1 |", "Config hash", "sentence-transformers 6.", "two-sided 95% confidence"):
        assert heading in card, heading
    assert "Decision: **promoted: every rule passed**" in card
    _run_usage_snippet(card)
    assert extracted["fingerprint"] in card and run_id in card
    assert "model-index" in card
    for text in set(e2e_inputs["frame"]["query"]) | set(e2e_inputs["frame"]["document"]):
        assert text not in card
    assert local_hub.token not in card


def _run_usage_snippet(card: str) -> None:
    """The card's usage snippet runs as written (in a fresh interpreter) against the pushed repo."""
    import os
    import subprocess
    import sys

    section = card.split("## Usage", 1)[1]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    assert f'CrossEncoder("{REPO}")' in code
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    # Two scores and the index of the top document (the tiny test model's ranking of invented texts is arbitrary).
    assert re.fullmatch(r"\[\s*[-+0-9.e]+\s+[-+0-9.e]+\s*\] [01]", done.stdout.strip()), done.stdout


def test_the_token_is_in_no_artifact_log_or_commit(e2e_inputs, local_hub) -> None:
    import base64
    import os
    from urllib.parse import quote

    token = local_hub.token
    forms = {token, quote(token, safe=""), base64.b64encode(token.encode()).decode()}
    folders = [Path(os.environ["RERANKER_ARTIFACTS_ROOT"]), Path(os.environ["AIRFLOW_HOME"]) / "logs"]
    scanned = 0
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix != ".safetensors":
                data = path.read_bytes()
                scanned += 1
                assert not any(form.encode() in data for form in forms), path
    assert scanned > 10
    for commit in _main_commits(local_hub):
        assert token not in (commit.message or "") and token not in commit.title


def test_second_run_meets_the_champion_and_is_not_promoted(e2e_inputs, local_hub) -> None:
    before = _main_commits(local_hub)
    outcome, status, run_id, run_dir = _run(e2e_inputs["conf"])
    assert status == 0, outcome
    # Same data, same seed: the same model. Not better than the champion is a hard reject, nobody is asked.
    assert outcome.startswith("OUTCOME: not promoted (reject): beats_champion"), outcome
    decision = json.loads((run_dir / "gate" / "decision.json").read_text())
    assert decision["outcome"] == "reject"
    assert decision["evidence"]["vs_champion"]["mean_delta"] == pytest.approx(0.0, abs=1e-9)
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert metrics["champion"] is not None and metrics["champion_commit"] == before[0].commit_id
    tries = _task_tries(run_id)
    assert tries["gate"][0] == "success"
    assert tries["model_card"][0] == "skipped" and tries["publish"][0] == "skipped"
    assert tries["await_approval"][0] == "skipped"
    assert [c.commit_id for c in _main_commits(local_hub)] == [c.commit_id for c in before]


def test_warm_start_continues_from_the_pinned_champion_and_still_meets_base(e2e_inputs, local_hub) -> None:
    champion = _main_commits(local_hub)[0].commit_id
    outcome, status, run_id, run_dir = _run({**e2e_inputs["conf"], "init_from": "champion"})
    assert status == 0, outcome
    assert json.loads((run_dir / "preflight" / "preflight.json").read_text())["champion_commit"] == champion
    manifest = json.loads((run_dir / "train" / "model" / "manifest.json").read_text())
    assert manifest["result"]["init_from"] == "champion" and manifest["result"]["init_commit"] == champion
    # The champion was a download to start from, not an artifact of the run.
    train_files = json.loads((run_dir / "train" / "_COMPLETE.json").read_text())["files"]
    assert "model/model.safetensors" in train_files and not any(f.startswith("init_model/") for f in train_files)
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert metrics["base"] is not None and metrics["champion_commit"] == champion
    if outcome.startswith("OUTCOME: promoted"):
        card = (run_dir / "model_card" / "staging" / "README.md").read_text()
        assert f"the production model (commit `{champion[:12]}`)" in card


def test_bad_labels_fail_at_validate_without_retry_and_push_nothing(e2e_inputs, local_hub) -> None:
    before = _main_commits(local_hub)
    bad = e2e_inputs["frame"].copy()
    bad.loc[3, "label"] = 5.0
    bad.loc[7, "label"] = float("nan")
    source = write_pairs(bad, e2e_inputs["folder"] / "bad.csv")
    outcome, status, run_id, run_dir = _run({**e2e_inputs["conf"], "source_path": str(source)})
    assert status == 1
    assert outcome.startswith("OUTCOME: failed at validate: data validation failed"), outcome
    assert "expect_column_values_to_be_between(label" in outcome and "source rows [4]" in outcome
    assert "expect_column_values_to_not_be_null(label" in outcome and "source rows [8]" in outcome
    tries = _task_tries(run_id)
    assert tries["validate"] == ("failed", 1), "a data error must not be retried"
    assert "train" not in tries or tries["train"][0] in ("upstream_failed", "None")
    assert not (run_dir / "train").exists()
    assert [c.commit_id for c in _main_commits(local_hub)] == [c.commit_id for c in before]


def test_unknown_conf_key_fails_before_any_work(e2e_inputs) -> None:
    outcome, status, run_id, run_dir = _run({**e2e_inputs["conf"], "epoch": 3})
    assert status == 1
    assert outcome.startswith("OUTCOME: failed at preflight: unknown conf key(s) ['epoch']"), outcome
    assert _task_tries(run_id)["preflight"] == ("failed", 1)
    assert not (run_dir / "extract" / "pairs.parquet").exists()


def test_csv_with_other_column_names_and_graded_labels_promotes(e2e_inputs, tmp_path) -> None:
    graded = e2e_inputs["frame"].rename(columns={"query": "qtext", "document": "atext", "label": "grade"})
    graded["grade"] = (graded["grade"] * 3).astype(int)  # relevance graded 0..3
    graded["annotator_email"] = "someone@example.com"  # must be dropped, never trained on
    source = write_pairs(graded, tmp_path / "graded.csv")
    conf = {
        **e2e_inputs["conf"],
        "source_path": str(source),
        "columns": {"query": "qtext", "document": "atext", "label": "grade"},
        "label_map": {"scale": [0, 3]},
        "hub_repo_id": "local/e2e-graded",
    }
    outcome, status, run_id, run_dir = _run(conf)
    assert status == 0 and outcome.startswith("OUTCOME: promoted "), outcome
    manifest = json.loads((run_dir / "extract" / "manifest.json").read_text())
    assert manifest["dropped_columns"] == ["annotator_email"]
    snapshot = pd.read_parquet(manifest["snapshot_path"])
    assert "annotator_email" not in snapshot.columns
    assert sorted(snapshot["label"].unique()) == [0.0, 1.0]


def test_postgres_table_promotes(e2e_inputs, postgres_url, monkeypatch) -> None:
    import json as _json

    from tests.pg_server import load_table

    load_table(postgres_url, "labeled_pairs", e2e_inputs["frame"])
    monkeypatch.setenv("AIRFLOW_CONN_LABELS_PG", _json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": postgres_url}}))
    conf = {
        **e2e_inputs["conf"],
        "source_path": "bundled:support_pairs.csv",
        "sql_conn_id": "labels_pg",
        "sql_query": "SELECT query, document, label FROM labeled_pairs",
        "hub_repo_id": "local/e2e-postgres",
    }
    outcome, status, run_id, run_dir = _run(conf)
    assert status == 0 and outcome.startswith("OUTCOME: promoted "), outcome
    manifest = json.loads((run_dir / "extract" / "manifest.json").read_text())
    assert manifest["source_format"] == "sql" and manifest["pairs"] == len(e2e_inputs["frame"])
    card = (run_dir / "model_card" / "staging" / "README.md").read_text()
    assert "SELECT" not in card and "postgresql" not in card, "no SQL text or connection URL in the card"


def test_same_data_as_the_champion_is_skipped_with_min_new_pairs(e2e_inputs, local_hub) -> None:
    before = _main_commits(local_hub)
    outcome, status, run_id, run_dir = _run({**e2e_inputs["conf"], "min_new_pairs": 10})
    assert status == 0
    assert outcome.startswith("OUTCOME: skipped: the data is the champion's"), outcome
    tries = _task_tries(run_id)
    assert tries["extract"][0] == "skipped" and tries["train"][0] == "skipped"
    assert [c.commit_id for c in _main_commits(local_hub)] == [c.commit_id for c in before]


def test_each_snapshot_emits_an_asset_event_with_fingerprint_and_counts(e2e_inputs) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "reranker_training_snapshot")
            .all()
        )
        extras = [dict(event.extra or {}) for event in events]
    assert extras, "extract emitted no event on the snapshot asset"
    # Every event (other test modules' runs share this Airflow DB) carries the fingerprint and the counts.
    for extra in extras:
        assert len(extra["fingerprint"]) == 64
        assert all(isinstance(extra[key], int) for key in ("pairs", "queries", "positives", "rows_read"))
    assert any(e["pairs"] == len(e2e_inputs["frame"]) and e["queries"] == 120 for e in extras)
