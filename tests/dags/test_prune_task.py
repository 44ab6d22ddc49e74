"""The ``prune`` task: it runs after a failed run too, deletes old runs' artifacts, and leaves the run failed.

``prune`` is the DAG's only leaf besides ``publish``'s chain, and a leaf decides a run's state. As a teardown it
is left out of that decision; this test is what proves a run whose extract failed still ends ``failed``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _dag_run_state_and_tries(run_id: str) -> tuple[str, dict[str, str]]:
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.run_id == run_id).one()
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == run_id).all()
        return str(run.state), {ti.task_id: str(ti.state) for ti in tis}


def test_a_failed_run_is_pruned_after_and_stays_failed(
    airflow_local: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reranker_tasks.paths import RunPaths, artifacts_root
    from scripts.run_dag import run_once

    monkeypatch.setenv("RERANKER_RETENTION_DAYS", "1")
    monkeypatch.setenv("RERANKER_RETENTION_KEEP_LAST", "0")
    # An old run of long ago. Other tests' runs in this root are recent, so the 24 h guard keeps them.
    ancient = artifacts_root() / f"scheduled__2020-01-01T00_00_00_00_00-{time.time_ns()}"
    (ancient / "train" / "model").mkdir(parents=True)
    (ancient / "train" / "model" / "model.safetensors").write_bytes(b"x")
    stamp = time.time() - 400 * 86_400
    for path in [*ancient.rglob("*"), ancient]:
        os.utime(path, (stamp, stamp))

    conf = {"source_path": str(tmp_path / "missing.csv"), "hub_repo_id": "local/prune-never"}
    outcome, status, run_id = run_once(conf)
    assert status == 1 and outcome.startswith("OUTCOME: failed at extract"), outcome
    state, tries = _dag_run_state_and_tries(run_id)
    assert tries["prune"] == "success", tries
    assert state == "failed", f"the cleanup must not turn a failed run green: {tries}"
    assert not ancient.exists(), "the old run was pruned"
    assert RunPaths.for_run(run_id).run_dir.is_dir(), "the current run is never pruned"
