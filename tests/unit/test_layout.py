"""The artifact layout registry (reranker_tasks.layout): the names the steps write are the names the readers find,
and ``open_store`` turns every kind of location into a store (or says clearly which location it cannot open)."""

from __future__ import annotations

import ast
import importlib
import json
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reranker_tasks import layout
from reranker_tasks.errors import PermanentError
from reranker_tasks.layout import ArtifactLocationError, ArtifactPathError, in_run, open_store
from reranker_tasks.storage import ArtifactStore

ROOT = Path(__file__).resolve().parents[2]
RUN = "manual__2026-12-05T10:00:00+00:00"
RUN_DIR = "manual__2026-12-05T10_00_00_00_00"


@pytest.fixture
def memory_location() -> Any:
    location = f"memory://layout-{uuid.uuid4().hex[:10]}/artifacts"
    yield location
    store = open_store(location)
    if store.fs.exists(store.root_path):
        store.fs.rm(store.root_path, recursive=True)


def _monitoring_runs() -> Any:
    plugins = str(ROOT / "plugins")
    if plugins not in sys.path:  # as Airflow does for its plugins folder
        sys.path.insert(0, plugins)
    return importlib.import_module("reranker_monitoring.runs")


# -- the registry -------------------------------------------------------------------------------------------------


def test_run_relative_paths_are_step_folder_and_file_name() -> None:
    assert layout.METRICS == "evaluate/metrics.json"
    assert layout.GATE_DECISION == "gate/decision.json"
    assert layout.VALIDATION_REPORT == "validate/validation.json"
    assert layout.DATA_DOCS_INDEX_PAGE == "validate/data_docs/index.html"
    assert layout.TRAINING_CURVE == "train/training_curve.json"
    assert layout.MODEL_CARD == "model_card/staging/README.md"
    assert layout.FRESHNESS == "extract/freshness.json"
    assert layout.FAILURE == "failure.json", "run level, beside the step folders"
    for rel in (layout.PREFLIGHT_REPORT, layout.EXTRACT_MANIFEST, layout.SPLIT_SUMMARY, layout.MODEL, layout.PER_QUERY,
                layout.APPROVAL, layout.PUBLISH_RESULT, layout.PUBLISH_DRY_RUN, layout.PUBLISH_CONFLICT,
                layout.ROLLBACK_RESULT, layout.DATA_DOCS):
        assert rel.split("/", 1)[0] in layout.STEPS, rel
    assert len(set(layout.STEPS)) == len(layout.STEPS)


def test_artifact_paths_stay_inside_the_run() -> None:
    assert layout.artifact_path("gate", "x.json") == "gate/x.json"
    for step in ("", ".hidden", "a/b", "a\\b"):
        with pytest.raises(ArtifactPathError, match="not a step folder name"):
            layout.artifact_path(step, "x.json")
    with pytest.raises(ArtifactPathError, match="not a path inside a run's artifacts"):
        layout.artifact_path("gate", "..", "..", "etc")
    with pytest.raises(ArtifactPathError):
        in_run(Path("/srv/run"), "/etc/passwd")
    assert in_run(Path("/srv/run"), layout.DATA_DOCS_INDEX_PAGE) == Path("/srv/run/validate/data_docs/index.html")


def test_the_steps_write_the_registry_names() -> None:
    from reranker_tasks import approval, evaluate, extract, gate, model_card, preflight, publish, rollback, split
    from reranker_tasks import validate as validate_step

    assert (extract.SNAPSHOT_FILE, extract.EVAL_SNAPSHOT_FILE, extract.MANIFEST_FILE) == (
        layout.SNAPSHOT_FILE, layout.EVAL_SNAPSHOT_FILE, layout.EXTRACT_MANIFEST_FILE)
    assert (validate_step.REPORT_FILE, validate_step.DATA_DOCS_DIR) == (layout.VALIDATION_FILE, layout.DATA_DOCS_DIR)
    assert (split.TRAIN_FILE, split.EVAL_FILE) == (layout.TRAIN_SPLIT_FILE, layout.EVAL_SPLIT_FILE)
    assert (evaluate.METRICS_FILE, evaluate.PER_QUERY_FILE) == (layout.METRICS_FILE, layout.PER_QUERY_FILE)
    assert gate.DECISION_FILE == layout.DECISION_FILE and approval.APPROVAL_FILE == layout.APPROVAL_FILE
    assert preflight.PREFLIGHT_FILE == layout.PREFLIGHT_FILE and model_card.STAGING_DIR == layout.STAGING_DIR
    assert (publish.RESULT_FILE, publish.DRY_RUN_FILE, publish.CONFLICT_FILE) == (
        layout.PUBLISH_FILE, layout.DRY_RUN_FILE, layout.CONFLICT_FILE)
    assert rollback.RESULT_FILE == layout.ROLLBACK_FILE


#: Names the training code spells itself (not yet read from the registry): they must agree with it.
TRAINING_NAMES = {
    "MODEL_DIR": layout.MODEL_DIR,
    "MANIFEST_FILE": layout.MODEL_MANIFEST_FILE,
    "CHECKPOINTS_DIR": layout.CHECKPOINTS_DIR,
    "INIT_MODEL_DIR": layout.INIT_MODEL_DIR,
    "CURVE_FILE": layout.TRAINING_CURVE_FILE,
}


def test_names_the_training_code_spells_itself_agree_with_the_registry() -> None:
    """Read from the source (no torch import): wherever in the package a module-level ``NAME = "literal"`` of
    these lives (train.py today; the checkpoint code may move to a module of its own). Once they are read from the
    registry there is no literal left to compare."""
    for path in (ROOT / "reranker_tasks").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id in TRAINING_NAMES:
                        assert node.value.value == TRAINING_NAMES[target.id], f"{path.name}: {target.id}"


# -- open_store ---------------------------------------------------------------------------------------------------


def test_a_plain_path_is_the_local_mode(tmp_path: Path) -> None:
    store = open_store(tmp_path / "x" / ".." / "arts")
    assert store.local and store.location == str((tmp_path / "arts").resolve())
    assert store.root == (tmp_path / "arts").resolve()
    store.write_json(RUN, layout.METRICS, {"eval_queries": 3})
    assert json.loads((tmp_path / "arts" / RUN_DIR / "evaluate" / "metrics.json").read_text()) == {"eval_queries": 3}
    assert open_store(str(tmp_path / "arts")) == store == ArtifactStore.from_location(tmp_path / "arts")


def test_a_file_uri_is_the_store_mode_on_a_shared_folder(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path / 'shared'}/")
    assert not store.local and store.location == f"file://{tmp_path / 'shared'}"
    assert store.root_path == str(tmp_path / "shared")
    assert store.uri(RUN, layout.GATE_DECISION) == f"file://{tmp_path / 'shared'}/{RUN_DIR}/gate/decision.json"
    store.write_json(RUN, layout.GATE_DECISION, {"outcome": "reject"})
    assert (tmp_path / "shared" / RUN_DIR / "gate" / "decision.json").is_file()
    assert store.read_json(RUN, layout.GATE_DECISION) == {"outcome": "reject"}


def test_a_memory_uri_is_an_object_store_readable_as_a_path(memory_location: str) -> None:
    from upath import UPath

    store = open_store(memory_location)
    assert not store.local and type(store.fs).__name__ == "MemoryFileSystem"
    store.write_json(RUN, layout.METRICS, {"eval_queries": 7})
    root = store.root
    assert isinstance(root, UPath) and str(root) == memory_location
    assert json.loads(in_run(root / RUN_DIR, layout.METRICS).read_text()) == {"eval_queries": 7}
    fs, path = store.filesystem()
    assert fs is store.fs and path == store.root_path


def test_a_path_object_keeps_its_own_filesystem(memory_location: str) -> None:
    from upath import UPath

    given = UPath(memory_location)
    store = open_store(given)
    assert store.root is given and store.fs is given.fs and store.location == memory_location


def test_a_connection_is_resolved_by_the_caller_only(tmp_path: Path) -> None:
    from upath import UPath

    location = f"file://shared_fs@{tmp_path / 'store'}"
    with pytest.raises(ArtifactLocationError, match=r"names the Airflow connection 'shared_fs'") as info:
        open_store(location)
    assert location in str(info.value)
    asked: list[str] = []

    def resolve(text: str) -> Any:
        asked.append(text)
        return UPath(f"file://{tmp_path / 'store'}")

    store = open_store(location, resolve_connection=resolve)
    assert asked == [location] and not store.local and store.root_path == str(tmp_path / "store")


@pytest.mark.parametrize("location", ["nosuchstore://bucket/artifacts", "://nowhere", "   "])
def test_a_bad_location_raises_an_error_naming_it(location: str) -> None:
    with pytest.raises(ArtifactLocationError) as info:
        open_store(location)
    assert repr(location) in str(info.value)
    assert isinstance(info.value, PermanentError) and isinstance(info.value, ValueError)


def test_the_environment_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", str(tmp_path / "env-arts"))
    assert open_store().location == str((tmp_path / "env-arts").resolve())
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", "://nowhere")
    with pytest.raises(ArtifactLocationError, match="RERANKER_ARTIFACTS_ROOT='://nowhere'"):
        open_store()


# -- readers find what the steps wrote ---------------------------------------------------------------------------


def test_the_plugin_finds_a_runs_files_by_the_registry_names(memory_location: str) -> None:
    """Written through the store under the registry's names, read back by the runs view from the store's root."""
    runs = _monitoring_runs()
    store = open_store(memory_location)
    store.write_json(RUN, layout.EXTRACT_MANIFEST, {"fingerprint": "ab" * 32, "pairs": 60, "queries": 12})
    store.write_json(RUN, layout.METRICS, {"primary_metric": "ndcg@10", "candidate": {"ndcg@10": 0.8}})
    store.write_json(RUN, layout.GATE_DECISION, {"outcome": "reject", "reasons": ["min_gain"]})
    store._put_bytes(store.key(RUN, layout.DATA_DOCS_INDEX_PAGE), b"<html>docs</html>")
    start = datetime(2026, 12, 5, 10, tzinfo=UTC)
    info = runs.DagRunInfo(run_id=RUN, state="success", start_date=start, end_date=start)
    (record,) = runs.build_records([info], {}, dag_id="reranker_retrain", prefix="/reranker", root=store.root)
    assert record.sources == {"extract": "artifact", "evaluate": "artifact", "gate": "artifact"}
    assert record.pairs == 60 and record.metric("candidate") == 0.8 and record.gate_outcome == "reject"
    assert record.data_docs_url == f"/reranker/runs/{RUN.replace(':', '%3A').replace('+', '%2B')}/data-docs/index.html"
    page = runs.resolve_data_docs_file(runs.run_dir_for(RUN, store.root), "")
    assert page is not None and page.read_text() == "<html>docs</html>"


def test_the_plugin_reads_a_lost_race_the_publish_step_recorded(tmp_path: Path) -> None:
    from reranker_tasks.publish import record_conflict

    runs = _monitoring_runs()
    run_dir = runs.run_dir_for(RUN, tmp_path)
    record_conflict(run_dir / layout.PUBLISH_STEP, "main moved")
    record = runs.build_record(runs.DagRunInfo(run_id=RUN, state="success"), {}, run_dir, dag_id="d", prefix="/r")
    assert record.publish_note == "main moved" and record.sources == {"publish": "artifact"}


def test_make_run_reads_the_outcome_by_the_registry_names(tmp_path: Path) -> None:
    from scripts.run_dag import read_outcome, summary_lines

    def write(rel: str, payload: Any) -> None:
        path = in_run(tmp_path, rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload))

    write(layout.GATE_DECISION, {"outcome": "promote", "promote": True, "reasons": ["all rules passed"]})
    write(layout.PUBLISH_RESULT, {"commit_url": "http://hub/c/1", "tag": "run-1"})
    write(layout.TRAINING_CURVE, {"chosen_step": 4, "evaluations": [{"step": 4, "ndcg@10": 0.5}]})
    assert read_outcome(tmp_path, "success", []) == ("OUTCOME: promoted http://hub/c/1 tag=run-1", 0)
    lines = summary_lines(tmp_path)
    assert "model selection: kept step 4 of 4 evaluated (dev ndcg@10 0.500)" in lines
    assert "hub tag: run-1" in lines and "gate: promote" in lines
    write(layout.FAILURE, {"task_id": "train", "message": "out of memory", "error_type": "X", "try_number": 2})
    assert read_outcome(tmp_path, "failed", ["train"]) == ("OUTCOME: failed at train: out of memory", 1)
