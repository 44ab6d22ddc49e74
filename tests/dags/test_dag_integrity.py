"""DAG integrity: it imports cleanly and cheaply, its wiring and Params match the pipeline's config."""

from __future__ import annotations

import ast
import subprocess
import sys
import types
from pathlib import Path
from typing import get_args

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "dags" / "reranker_retrain.py"
ORDER = ["preflight", "extract", "validate", "split", "train", "evaluate", "gate", "model_card", "publish"]
APPROVAL = "await_approval"
PRUNE = "prune"  # retention, after everything, whatever happened


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag.dags["reranker_retrain"]


def test_tasks_run_in_the_documented_order(dag) -> None:
    assert sorted(dag.task_dict) == sorted([*ORDER, APPROVAL, PRUNE])
    # A borderline candidate goes gate → await_approval → model_card; the card also runs straight after the gate.
    assert dag.task_dict[APPROVAL].upstream_task_ids == {"gate"}
    assert APPROVAL in dag.task_dict["model_card"].upstream_task_ids
    assert dag.task_dict["model_card"].trigger_rule == "none_failed_min_one_success"
    for upstream, downstream in zip(ORDER, ORDER[1:]):
        assert upstream in dag.task_dict[downstream].upstream_task_ids, (upstream, downstream)
    # Nothing reaches publish except through the gate and the card.
    assert "gate" in dag.task_dict["model_card"].upstream_task_ids
    assert dag.task_dict["publish"].get_flat_relative_ids(upstream=True) >= {"gate", "model_card"}
    # Retention runs last and always (all_done), as a teardown so the run's state is still the pipeline's.
    prune = dag.task_dict[PRUNE]
    assert prune.get_flat_relative_ids(upstream=True) == set(dag.task_dict) - {PRUNE}
    assert prune.is_teardown and not prune.on_failure_fail_dagrun
    assert prune.trigger_rule in ("all_done", "all_done_setup_success")  # the latter is all_done without setups


def test_train_queue_and_pool_are_deployment_settings(dag) -> None:
    train = dag.task_dict["train"]
    import os

    assert train.queue == os.environ.get("RERANKER_TRAIN_QUEUE", "default")
    assert train.pool == os.environ.get("RERANKER_TRAIN_POOL", "default_pool")  # default_pool always exists
    assert train.execution_timeout is not None and train.execution_timeout.total_seconds() >= 8 * 3600


def test_schedule_concurrency_and_tags(dag) -> None:
    assert dag.dag_id == DAG_FILE.stem
    assert dag.max_active_runs == 1
    assert dag.timetable.expression == "0 0 * * 0"  # @weekly
    assert dag.catchup is False
    assert dag.dagrun_timeout is not None
    assert dag.tags and "reranker" in dag.tags
    assert dag.doc_md and "extract" in dag.doc_md


def test_retries_only_for_transient_errors(dag) -> None:
    from reranker_tasks.errors import ConfigError, DataError, DataValidationFailed

    for task in dag.tasks:
        if task.task_id == APPROVAL:
            assert task.retries == 0  # a person's answer is not retried
            continue
        assert task.retries >= 2, task.task_id
        policy = task.retry_policy
        assert policy is not None, task.task_id
        for permanent in (ConfigError("x"), DataError("x"), DataValidationFailed(["x"])):
            assert policy.evaluate(permanent, try_number=1, max_tries=3).action.value == "fail"
        assert policy.evaluate(ConnectionError("reset"), try_number=1, max_tries=3).action.value != "fail"


def test_gate_branches_and_approval_is_a_human_in_the_loop_task(dag) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    assert type(dag.task_dict["gate"]).__name__ == "_BranchPythonDecoratedOperator"
    approval = dag.task_dict[APPROVAL]
    assert isinstance(approval, ApprovalOperator)
    assert approval.defaults == ["Reject"]  # no answer within the timeout: not promoted
    assert approval.response_timeout is not None


def test_params_match_the_config_schema(dag) -> None:
    from reranker_tasks.config import conf_keys

    keys = conf_keys()
    params = dag.params
    assert set(params.keys()) == set(keys), "every conf key is a Param and vice versa"
    schema_type = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "object", list: "array"}
    for name, (kind, default) in keys.items():
        param = params.get_param(name)
        assert param.value == default, f"Param {name} default {param.value!r} != config default {default!r}"
        if isinstance(kind, types.UnionType):
            assert param.schema["type"] == [schema_type[k] for k in get_args(kind)], name
        else:
            assert param.schema["type"] == schema_type[kind], name
        assert param.schema.get("title"), f"Param {name} has no title"
        assert param.description, f"Param {name} has no description"


def test_params_are_generated_from_the_field_settings(dag) -> None:
    """One source: every Param's bounds, choices, title, section and description are its config field's setting,
    in both DAGs; every ranged field has a Param with those bounds."""
    from airflow.dag_processing.dagbag import DagBag

    from reranker_airflow.params import FORM_ORDER
    from reranker_tasks.config import conf_settings

    twin = DagBag(dag_folder=str(DAG_FILE)).dags["reranker_retrain_on_labels"]
    settings = conf_settings()
    for params in (dag.params, twin.params):
        assert list(params.keys()) == list(FORM_ORDER)
        for name, spec in settings.items():
            schema = params.get_param(name).schema
            assert schema.get("minimum") == spec.low and schema.get("maximum") == spec.high, name
            assert schema.get("enum") == (list(spec.choices) if spec.choices else None), name
            assert (schema["title"], schema["section"]) == (spec.title, spec.section), name
    for name, spec in settings.items():  # the twin keeps its own descriptions of its two own defaults
        assert dag.params.get_param(name).description == spec.doc, name


def test_changing_a_bound_in_the_field_metadata_changes_param_and_check(monkeypatch) -> None:
    from dataclasses import fields, replace
    from types import MappingProxyType

    from airflow.sdk.exceptions import ParamValidationError

    from reranker_airflow.params import build_params
    from reranker_tasks.config import TrainConfig, load_run_config
    from reranker_tasks.config_fields import SETTING, setting_of
    from reranker_tasks.errors import ConfigError

    assert build_params()["batch_size"].schema["maximum"] == 4096
    (batch_size,) = [f for f in fields(TrainConfig) if f.name == "batch_size"]
    monkeypatch.setattr(batch_size, "metadata", MappingProxyType({SETTING: replace(setting_of(batch_size), high=64)}))
    param = build_params()["batch_size"]
    assert param.schema["maximum"] == 64
    assert param.resolve(64) == 64
    with pytest.raises(ParamValidationError, match="65 is greater than the maximum of 64"):
        param.resolve(65)
    with pytest.raises(ConfigError, match=r"^batch_size: 65 is above the maximum 64$"):
        load_run_config({"batch_size": 65})


def test_each_parse_of_the_dag_gets_its_own_params() -> None:
    """The Params table lives in reranker_airflow (imported once per process) while DAG files are parsed again and
    again: a run that writes its conf into its DAG's Param objects must not change the next parse's defaults."""
    from airflow.dag_processing.dagbag import DagBag

    first, second = (DagBag(dag_folder=str(DAG_FILE)) for _ in range(2))
    for dag_id in ("reranker_retrain", "reranker_retrain_on_labels"):
        one, two = first.dags[dag_id].params, second.dags[dag_id].params
        assert one.get_param("epochs") is not two.get_param("epochs"), dag_id
    weekly, twin = first.dags["reranker_retrain"].params, first.dags["reranker_retrain_on_labels"].params
    assert weekly.get_param("epochs") is not twin.get_param("epochs")


def test_every_conf_key_is_documented_in_the_readme() -> None:
    from reranker_tasks.config import conf_keys

    readme = (ROOT / "README.md").read_text()
    missing = [key for key in conf_keys() if f"`{key}`" not in readme]
    assert not missing, f"conf keys not documented in README: {missing}"


def test_reranker_tasks_never_imports_airflow() -> None:
    offenders = []
    for path in (ROOT / "reranker_tasks").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "airflow"]
    assert offenders == []


#: The modules behind the DAGs' tasks. They share code through the shared modules (schema, modelio, decision,
#: config, paths, storage, metrics, ...), never through each other: a step can then change without breaking another.
STEP_MODULES = frozenset({
    "preflight", "extract", "validate", "split", "train", "evaluate", "gate", "approval", "model_card", "publish",
    "retention", "rollback",
})


def _step_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "reranker_tasks" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in STEP_MODULES else None


def test_no_step_module_imports_another_step_module() -> None:
    offenders = []
    for path in (ROOT / "reranker_tasks").rglob("*.py"):
        relative = path.relative_to(ROOT).with_suffix("")
        own = _step_of(".".join(relative.parts))
        if own is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
                if node.module == "reranker_tasks":  # from reranker_tasks import train
                    names = [f"reranker_tasks.{alias.name}" for alias in node.names]
            else:
                continue
            offenders += [f"{relative}: {n}" for n in names if _step_of(n) not in (None, own)]
    assert offenders == [], offenders
    # The list is the DAGs' own: every step module is one a DAG file or reranker_airflow imports.
    wired = set()
    for folder in ("dags", "reranker_airflow"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module and (step := _step_of(node.module)):
                    wired.add(step)
    assert wired == STEP_MODULES, sorted(wired ^ STEP_MODULES)


def test_pipeline_code_never_imports_the_hub_emulator() -> None:
    for folder in ("reranker_tasks", "reranker_airflow", "dags", "plugins"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "hub_emulator" not in path.read_text(), path


def test_parsing_the_dag_loads_no_heavy_library() -> None:
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('torch', 'sentence_transformers', 'transformers', 'datasets', "
        "'great_expectations', 'pandas', 'huggingface_hub') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code, str(DAG_FILE)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_asset_scheduled_twin_runs_on_the_labels_asset_never_on_its_own() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    weekly, twin = bag.dags["reranker_retrain"], bag.dags["reranker_retrain_on_labels"]
    producer = bag.dags["reranker_labels_published"]
    (labels,) = producer.task_dict["announce"].outlets
    assert labels.name == "reranker_labels"
    # Scheduled on the labels' Asset, declared on the labels' URI, which the twin also reads from.
    assert type(twin.timetable).__name__ == "AssetTriggeredTimetable"
    assert [a.uri for a in twin.timetable.asset_condition.objects] == [labels.uri]
    assert twin.params.get_param("source_path").value == labels.uri
    assert twin.params.get_param("min_new_pairs").value == 1  # unchanged data ends early as skipped
    # Its own outlet is the snapshot Asset, a different one: a run never triggers the next.
    snapshot_outlets = {a.uri for a in twin.task_dict["extract"].outlets}
    assert labels.uri not in snapshot_outlets
    assert sorted(twin.task_dict) == sorted(weekly.task_dict)
    assert weekly.timetable.expression == "0 0 * * 0"


def test_the_monitoring_plugin_serves_every_dag_that_runs_the_pipeline() -> None:
    """The plugin cannot import the DAG file (it runs in the api-server); its list of DAGs must match the bag's
    DAGs that publish a model, or a new twin would again get no links and no runs in the view."""
    import importlib

    from airflow.dag_processing.dagbag import DagBag

    if str(ROOT / "plugins") not in sys.path:
        sys.path.insert(0, str(ROOT / "plugins"))
    monitoring = importlib.import_module("reranker_monitoring")
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    pipelines = {dag_id for dag_id, dag in bag.dags.items() if "publish" in dag.task_dict}
    assert pipelines == set(monitoring.DAG_IDS)


#: Sizes a newcomer can read (issue 12): a DAG file that only wires, and no module that holds several concerns.
MAX_DAG_FILE_LINES = 300
MAX_MODULE_LINES = 600
PRODUCT_DIRS = ("reranker_tasks", "reranker_airflow", "plugins", "scripts", "hub_emulator")


def test_dag_files_only_wire_and_modules_stay_readable() -> None:
    too_long = [
        f"{path.relative_to(ROOT)}: {n} lines (max {limit})"
        for folder, limit in [("dags", MAX_DAG_FILE_LINES), *((d, MAX_MODULE_LINES) for d in PRODUCT_DIRS)]
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > limit
    ]
    assert not too_long, "split these (one module per concern, see docs/design.md):\n" + "\n".join(too_long)
