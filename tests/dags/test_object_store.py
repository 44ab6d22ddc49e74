"""The whole DAG with its artifacts in an object store (``RERANKER_ARTIFACTS_ROOT=memory://…``), through dag.test.

fsspec's memory filesystem behaves like an object store (no folders, no rename) and lives in this process, where
dag.test runs every task. Each task works in its own scratch folder, deleted when it ends, so a step can only have
found its inputs through the store: the same situation as tasks on different Celery workers sharing an S3 bucket.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

import pytest

from tests.support import tiny_run_inputs, write_pairs

pytestmark = pytest.mark.slow
REPO = "local/store-reranker"
STEPS = ("preflight", "extract", "validate", "split", "train", "evaluate", "gate", "model_card", "publish")


@pytest.fixture
def store_env(airflow_local, tmp_path, monkeypatch):
    from reranker_tasks.storage import ArtifactStore

    location = f"memory://reranker-dag-{uuid.uuid4().hex[:12]}/artifacts"
    scratch = tmp_path / "scratch"
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", location)
    monkeypatch.setenv("RERANKER_SCRATCH_DIR", str(scratch))
    store = ArtifactStore.from_location(location)
    yield {"store": store, "scratch": scratch, "local_root": airflow_local}
    if store.fs.exists(store.root_path):
        store.fs.rm(store.root_path, recursive=True)


def _xcom(run_id: str, task_id: str):
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(run_id=run_id, task_id=task_id, key="return_value").one()
        return json.loads(row.value) if isinstance(row.value, str) else row.value


def test_a_run_with_artifacts_in_an_object_store_promotes(store_env, local_hub, tmp_path, monkeypatch) -> None:
    from reranker_tasks.storage import CheckpointMirror
    from reranker_tasks.train import CHECKPOINT_COMPLETE_FILE
    from scripts.run_dag import run_once

    store, scratch = store_env["store"], store_env["scratch"]
    mirrored: list[str] = []
    push = CheckpointMirror.push

    def watched_push(self, checkpoint):  # the checkpoint is in the store, marker included, once push returns
        push(self, checkpoint)
        remote = f"{self._remote}/{checkpoint.name}"
        assert store.fs.exists(f"{remote}/{CHECKPOINT_COMPLETE_FILE}") and store.fs.exists(f"{remote}/optimizer.pt")
        mirrored.append(checkpoint.name)

    monkeypatch.setattr(CheckpointMirror, "push", watched_push)
    _, conf = tiny_run_inputs(tmp_path)
    conf.update(hub_repo_id=REPO, checkpoint_steps=4)
    before = set(store_env["local_root"].iterdir()) if store_env["local_root"].exists() else set()

    outcome, status, run_id = run_once(conf)
    assert status == 0 and outcome.startswith("OUTCOME: promoted"), outcome

    run_dir = store.key(run_id)
    for step in STEPS:
        marker = store.read_json(run_id, f"{step}/_COMPLETE.json")
        assert marker and marker["step"] == step, f"{step} has no completion marker in the store"
        for rel, meta in marker["files"].items():
            data = store.fs.cat_file(f"{run_dir}/{step}/{rel}")
            assert len(data) == meta["size"] and hashlib.sha256(data).hexdigest() == meta["sha256"], (step, rel)
    train_files = store.read_json(run_id, "train/_COMPLETE.json")["files"]
    assert "model/model.safetensors" in train_files
    assert not any(rel.startswith("checkpoints/") for rel in train_files)
    assert not store.fs.exists(f"{run_dir}/train/checkpoints"), "mirrored checkpoints go once the model is complete"
    assert mirrored[:2] == ["checkpoint-4", "checkpoint-8"], "checkpoints were mirrored to the store while training"

    # XComs name artifacts by their URI in the store, and the next task found them there.
    trained = _xcom(run_id, "train")
    assert trained["model_dir"] == f"{store.location}/{Path(run_dir).name}/train/model"
    card = _xcom(run_id, "model_card")
    assert card["staging_dir"].startswith(f"{store.location}/")
    # Nothing stayed on the workers' disks: no run folder under the local root, every scratch folder removed.
    after = set(store_env["local_root"].iterdir()) if store_env["local_root"].exists() else set()
    assert after == before
    assert not scratch.exists() or not any(scratch.iterdir())


def test_a_failed_validation_leaves_its_report_in_the_store_without_a_marker(store_env, local_hub, tmp_path) -> None:
    from scripts.run_dag import run_once

    store = store_env["store"]
    frame, conf = tiny_run_inputs(tmp_path)
    bad = frame.copy()
    bad.loc[bad.index[:3], "label"] = 7  # not a relevance grade
    conf.update(hub_repo_id=REPO + "-bad", source_path=str(write_pairs(bad, tmp_path / "bad.csv")))

    outcome, status, run_id = run_once(conf)
    assert status != 0 and "validate" in outcome, outcome
    assert store.read_json(run_id, "failure.json")["task_id"] == "validate"
    assert store.exists(run_id, "validate/validation.json"), "the report is uploaded for people to read"
    assert store.exists(run_id, "validate/data_docs/index.html")
    assert not store.exists(run_id, "validate/_COMPLETE.json")
    assert store.exists(run_id, "extract/_COMPLETE.json")


def test_a_uri_naming_a_connection_goes_through_airflows_object_storage(monkeypatch, tmp_path) -> None:
    """``scheme://conn_id@…``: the DAG hands Airflow's ObjectStoragePath (credentials from that connection) to the
    store; here the local filesystem, which needs no connection to exist."""
    from airflow.sdk import ObjectStoragePath

    from reranker_airflow.context import artifacts_root  # what the DAG's tasks open their store with
    from reranker_tasks.storage import ArtifactStore

    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", f"file://shared_fs@{tmp_path / 'store'}")
    root = artifacts_root()
    assert isinstance(root, ObjectStoragePath) and root.conn_id == "shared_fs"
    with ArtifactStore.from_location(root).run("run-1", scratch_dir=tmp_path / "scratch") as arts:
        (arts.step_dir("split") / "train.parquet").write_bytes(b"rows")
        result = arts.commit("split", {"train_path": str(arts.run_dir / "split" / "train.parquet")})
    assert result["train_path"] == f"file://shared_fs@{tmp_path / 'store'}/run-1/split/train.parquet"
    assert (tmp_path / "store" / "run-1" / "split" / "_COMPLETE.json").is_file()
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", "memory://bucket/plain")
    assert artifacts_root() == "memory://bucket/plain", "no connection named: plain fsspec"
