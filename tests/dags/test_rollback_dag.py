"""The rollback DAG: it parses cheaply, its Params and retry policy are right, and a ``dag.test`` run through
Airflow rolls a repo on the loopback Hub back so that the pipeline's champion lookup sees the older model."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "reranker_rollback.py"
OLD_TAG = "run-20260105T100000Z-aaaaaaaa"
NEW_TAG = "run-20260112T100000Z-bbbbbbbb"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["reranker_rollback"]


def _seed(token: str) -> tuple[str, str, str]:
    """A repo of its own with two promotions, as the retraining DAG leaves them: (repo id, old sha, new sha)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    repo_id = api.create_repo(f"rollback-dag-{uuid.uuid4().hex[:8]}").repo_id
    old = api.create_commit(
        repo_id,
        [
            CommitOperationAdd("model.safetensors", b"old weights"),
            CommitOperationAdd("config.json", b'{"v": "old"}'),
            CommitOperationAdd("README.md", b"# old reranker\n"),
        ],
        commit_message="Promote old",
    ).oid
    api.create_tag(repo_id, tag=OLD_TAG, revision=old)
    new = api.create_commit(
        repo_id,
        [
            CommitOperationAdd("model.safetensors", b"new weights"),
            CommitOperationAdd("config.json", b'{"v": "new"}'),
            CommitOperationAdd("README.md", b"# new reranker\n"),
            CommitOperationAdd("tokenizer.json", b"{}"),
        ],
        commit_message="Promote new",
    ).oid
    api.create_tag(repo_id, tag=NEW_TAG, revision=new)
    return repo_id, old, new


def _tries(dag_run) -> dict[str, tuple[str, int]]:
    return {ti.task_id: (str(ti.state), ti.try_number) for ti in dag_run.get_task_instances()}


def test_one_task_manual_only_one_run_at_a_time(dag) -> None:
    assert dag.dag_id == DAG_FILE.stem
    assert list(dag.task_dict) == ["rollback"]
    assert type(dag.timetable).__name__ == "NullTimetable", "manual runs only (schedule=None)"
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert dag.tags and "rollback" in dag.tags
    assert dag.doc_md and "airflow dags trigger reranker_rollback" in dag.doc_md


def test_params_tag_is_required_and_documented(dag) -> None:
    repo = dag.params.get_param("hub_repo_id")
    assert repo.value == "local/support-reranker" and repo.schema["type"] == "string"
    tag = dag.params.get_param("tag")
    assert tag.schema["type"] == "string" and tag.schema.get("minLength") == 1
    assert not tag.has_value, "the tag has no default: a run must name it"
    for param in (repo, tag):
        assert param.schema.get("title") and param.description and param.schema.get("section")


def test_retries_only_for_transient_errors(dag) -> None:
    from reranker_tasks.errors import ConfigError, PublishConflict

    task = dag.task_dict["rollback"]
    assert task.retries >= 2
    for permanent in (ConfigError("x"), PublishConflict("x")):
        assert task.retry_policy.evaluate(permanent, try_number=1, max_tries=3).action.value == "fail"
    assert task.retry_policy.evaluate(ConnectionError("reset"), try_number=1, max_tries=3).action.value != "fail"


def test_parsing_the_dag_loads_no_heavy_library() -> None:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'datasets', "
        "'great_expectations', 'pandas', 'huggingface_hub', 'reranker_tasks.rollback') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAG_FILE)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_run_rolls_main_back_and_the_champion_is_the_older_model(dag, airflow_local, local_hub, capfd) -> None:
    from huggingface_hub import HfApi

    from reranker_tasks.evaluate import find_champion
    from reranker_tasks.paths import RunPaths

    repo_id, old, new = _seed(local_hub.token)
    dag_run = dag.test(run_conf={"hub_repo_id": repo_id, "tag": OLD_TAG})

    assert str(dag_run.state) == "success", _tries(dag_run)
    result = json.loads((RunPaths.for_run(dag_run.run_id).run_dir / "rollback" / "rollback.json").read_text())
    champion = find_champion(repo_id, local_hub.token)
    assert champion.has_model and champion.head_commit == result["commit_sha"] not in (old, new)
    assert result["previous_commit"] == new and result["deleted_files"] == ["tokenizer.json"]

    api = HfApi(token=local_hub.token)
    main_tree = {f.path: f.blob_id for f in api.list_repo_tree(repo_id, revision=champion.head_commit)}
    assert main_tree == {f.path: f.blob_id for f in api.list_repo_tree(repo_id, revision=OLD_TAG)}
    tags = {t.name: t.target_commit for t in api.list_repo_refs(repo_id).tags}
    assert tags[result["rollback_tag"]] == champion.head_commit
    assert tags[OLD_TAG] == old and tags[NEW_TAG] == new
    assert dag_run.run_id in (api.list_repo_commits(repo_id)[0].message or "")

    # The token is in no artifact of the run and not in its task log (dag.test logs to the console).
    console = capfd.readouterr()
    assert f"Hub commit: {result['commit_url']}" in console.out + console.err
    assert local_hub.token not in console.out + console.err
    artifacts = [p for p in RunPaths.for_run(dag_run.run_id).run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "rollback.json" for p in artifacts)
    assert not [p for p in artifacts if local_hub.token.encode() in p.read_bytes()]


def test_an_unknown_tag_fails_once_without_retry_and_pushes_nothing(dag, airflow_local, local_hub) -> None:
    from huggingface_hub import HfApi

    repo_id, _old, new = _seed(local_hub.token)
    dag_run = dag.test(run_conf={"hub_repo_id": repo_id, "tag": "run-20990101T000000Z-deadbeef"})

    assert str(dag_run.state) == "failed"
    assert _tries(dag_run)["rollback"] == ("failed", 1), "a config error must not be retried"
    assert HfApi(token=local_hub.token).list_repo_commits(repo_id)[0].commit_id == new


def test_a_run_without_a_tag_is_rejected_before_it_starts(dag, airflow_local) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        dag.test(run_conf={"hub_repo_id": "local/whatever"})
