"""Unit tests of the run configuration: strict types, bounds, unknown keys, the ``bundled:`` alias.

The module docstring is the spec: a flat conf is routed to the step configs, unknown keys are rejected
with the list of accepted ones, ``"3"`` is not an int, ``true`` is not a number, floats accept ints,
and everything is checked *before any work*.
"""

from __future__ import annotations

import math
import types
from dataclasses import MISSING, fields
from typing import Any, get_origin, get_type_hints

import pytest

from reranker_tasks.config import (
    BUNDLED_DATA_DIR,
    SAMPLE_DATA,
    STEP_CONFIGS,
    ExtractConfig,
    PublishConfig,
    RunConfig,
    conf_keys,
    conf_settings,
    load_run_config,
)
from reranker_tasks.config_fields import SETTING, setting_of
from reranker_tasks.errors import ConfigError, PermanentError

KEYS = conf_keys()
INT_KEYS = sorted(k for k, (t, _) in KEYS.items() if t is int)
FLOAT_KEYS = sorted(k for k, (t, _) in KEYS.items() if t is float)
STR_KEYS = sorted(k for k, (t, _) in KEYS.items() if t is str)
BOOL_KEYS = sorted(k for k, (t, _) in KEYS.items() if t is bool)
DICT_KEYS = sorted(k for k, (t, _) in KEYS.items() if t is dict)
LIST_KEYS = sorted(k for k, (t, _) in KEYS.items() if t is list)
UNION_KEYS = sorted(k for k, (t, _) in KEYS.items() if isinstance(t, types.UnionType))


def _raises_naming(conf: dict[str, Any], key: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_run_config(conf)
    assert key in str(info.value), f"message does not name {key!r}: {info.value}"
    return info.value


# --------------------------------------------------------------------------- defaults


@pytest.mark.parametrize("conf", [None, {}])
def test_defaults_load(conf: dict[str, Any] | None) -> None:
    config = load_run_config(conf)
    assert config == RunConfig()
    assert config.extract.source_path == SAMPLE_DATA
    assert config.extract.resolved_source().is_file()
    assert config.gate.min_gain == 0.005
    assert config.publish.hub_repo_id == "local/support-reranker"


def test_the_key_families_are_the_expected_ones() -> None:
    # Guards the parametrised type tests below: every key has one of the supported types.
    assert set(KEYS) == set(INT_KEYS) | set(FLOAT_KEYS) | set(STR_KEYS) | set(BOOL_KEYS) | set(DICT_KEYS) | set(
        LIST_KEYS
    ) | set(UNION_KEYS)
    assert UNION_KEYS == ["pos_weight"]
    assert DICT_KEYS == ["columns", "label_map"] and LIST_KEYS == ["validation_warnings"]
    assert {"min_rows", "seed", "batch_size", "max_length", "eval_batch_size", "min_eval_queries"} <= set(INT_KEYS)
    assert {"eval_fraction", "epochs", "learning_rate", "warmup_ratio", "min_ndcg", "min_gain"} <= set(FLOAT_KEYS)
    assert {"source_path", "source_format", "base_model", "hub_repo_id"} <= set(STR_KEYS)
    assert BOOL_KEYS == ["dry_run", "force", "freeze_embeddings", "hard_negatives", "private", "strict_columns"]


def test_config_error_is_permanent_and_a_value_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_run_config({"epochs": "3"})
    assert isinstance(info.value, PermanentError)
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------- types


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value", ["3", True, False, 1.5, 3.0, None, math.nan, math.inf, [3]], ids=repr)
def test_int_keys_reject_non_integers(key: str, value: Any) -> None:
    _raises_naming({key: value}, key)


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", ["0.1", True, False, None, [0.1]], ids=repr)
def test_float_keys_reject_non_numbers(key: str, value: Any) -> None:
    _raises_naming({key: value}, key)


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=repr)
def test_float_keys_reject_nan_and_inf(key: str, value: float) -> None:
    _raises_naming({key: value}, key)


@pytest.mark.parametrize("key", STR_KEYS)
@pytest.mark.parametrize("value", [3, 1.5, True, None, ["x"]], ids=repr)
def test_str_keys_reject_non_strings(key: str, value: Any) -> None:
    _raises_naming({key: value}, key)


@pytest.mark.parametrize("value", [1, 0, "true", "false", None], ids=repr)
def test_bool_key_rejects_non_booleans(value: Any) -> None:
    _raises_naming({"private": value}, "private")


def test_bool_key_accepts_booleans() -> None:
    assert load_run_config({"private": True}).publish.private is True
    assert load_run_config({"private": False}).publish.private is False


@pytest.mark.parametrize(
    ("key", "value", "step", "expected"),
    [
        ("epochs", 3, "train", 3.0),
        ("min_ndcg", 1, "gate", 1.0),
        ("min_gain", 0, "gate", 0.0),
        ("warmup_ratio", 0, "train", 0.0),
        ("learning_rate", 1, "train", 1.0),
    ],
)
def test_float_keys_accept_ints(key: str, value: int, step: str, expected: float) -> None:
    got = getattr(getattr(load_run_config({key: value}), step), key)
    assert got == expected
    assert type(got) is float


def test_int_for_float_is_not_confused_with_bool() -> None:
    _raises_naming({"min_ndcg": True}, "min_ndcg")


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("min_rows", 0),
        ("min_rows", -5),
        ("eval_fraction", 0.0),
        ("eval_fraction", 0.005),
        ("eval_fraction", 0.95),
        ("eval_fraction", 1),
        ("seed", -1),
        ("seed", 2**32),
        ("epochs", 0),
        ("epochs", -1.0),
        ("epochs", 101),
        ("learning_rate", 0),
        ("learning_rate", 1e-9),
        ("learning_rate", 1.5),
        ("batch_size", 0),
        ("batch_size", 4097),
        ("warmup_ratio", -0.1),
        ("warmup_ratio", 0.51),
        ("attention_dropout", -0.1),
        ("attention_dropout", 0.95),
        ("max_length", 7),
        ("max_length", 8193),
        ("eval_batch_size", 0),
        ("eval_batch_size", 4097),
        ("min_ndcg", -0.01),
        ("min_ndcg", 1.01),
        ("min_gain", -0.001),
        ("min_gain", 1.5),
        ("min_eval_queries", 0),
        ("min_eval_queries", -1),
        ("confidence", 0.4),
        ("confidence", 1.0),
        ("bootstrap_samples", 99),
        ("bootstrap_samples", 100_001),
        ("max_slice_regression", -0.1),
        ("max_slice_regression", 1.1),
        ("min_slice_queries", 0),
        ("min_free_gb", -1.0),
        ("card_examples", -1),
        ("card_examples", 51),
        ("approval", "maybe"),
        ("approval", "Approve"),
        ("base_model_revision", "../etc"),
        ("base_model_revision", "main branch"),
    ],
)
def test_out_of_range_values_are_rejected(key: str, value: float) -> None:
    _raises_naming({key: value}, key)


@pytest.mark.parametrize(
    ("key", "value", "step"),
    [
        ("eval_fraction", 0.01, "split"),
        ("eval_fraction", 0.9, "split"),
        ("seed", 0, "split"),
        ("seed", 2**32 - 1, "split"),
        ("warmup_ratio", 0.0, "train"),
        ("warmup_ratio", 0.5, "train"),
        ("min_ndcg", 0.0, "gate"),
        ("min_ndcg", 1.0, "gate"),
        ("min_gain", 0.0, "gate"),
        ("min_rows", 1, "validate"),
        ("min_eval_queries", 1, "gate"),
        ("batch_size", 4096, "train"),
        ("max_length", 8, "train"),
    ],
)
def test_range_bounds_are_inclusive(key: str, value: float, step: str) -> None:
    assert getattr(getattr(load_run_config({key: value}), step), key) == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("source_format", "xml"),
        ("source_format", "CSV"),
        ("source_path", ""),
        ("source_path", "   "),
        ("base_model", ""),
        ("base_model", "  "),
    ],
)
def test_bad_strings_are_rejected(key: str, value: str) -> None:
    _raises_naming({key: value}, key)


def test_seed_is_routed_to_split_and_train() -> None:
    config = load_run_config({"seed": 7})
    assert config.split.seed == 7
    assert config.train.seed == 7


# --------------------------------------------------------------------------- unknown keys


def test_unknown_key_is_named_with_the_accepted_keys() -> None:
    error = _raises_naming({"epoch": 3}, "epoch")
    message = str(error)
    assert "'epoch'" in message
    for key in KEYS:
        assert key in message, f"accepted key {key!r} missing from: {message}"


def test_every_unknown_key_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_run_config({"epoch": 3, "learningrate": 0.1, "epochs": 2})
    message = str(info.value)
    assert "'epoch'" in message
    assert "'learningrate'" in message


def test_unknown_key_is_rejected_before_type_errors_elsewhere() -> None:
    # A typo must never silently fall back to a default, whatever else is in the conf.
    with pytest.raises(ConfigError, match="min_gian"):
        load_run_config({"min_gian": 0.02})


# --------------------------------------------------------------------------- to_conf / conf_keys


def test_to_conf_round_trips_defaults() -> None:
    config = load_run_config({})
    assert load_run_config(config.to_conf()) == config


def test_to_conf_round_trips_non_defaults() -> None:
    conf = {
        "source_format": "csv",
        "min_rows": 5,
        "eval_fraction": 0.3,
        "seed": 7,
        "epochs": 2.5,
        "learning_rate": 1e-4,
        "batch_size": 8,
        "warmup_ratio": 0.2,
        "max_length": 128,
        "eval_batch_size": 32,
        "min_ndcg": 0.6,
        "min_gain": 0.01,
        "min_eval_queries": 20,
        "hub_repo_id": "acme/reranker",
        "private": True,
    }
    config = load_run_config(conf)
    flat = config.to_conf()
    for key, value in conf.items():
        assert flat[key] == value
    assert load_run_config(flat) == config


def test_to_conf_has_exactly_the_accepted_keys() -> None:
    assert set(RunConfig().to_conf()) == set(KEYS)


def test_conf_keys_cover_every_step_field_with_its_type_and_default() -> None:
    for step, cls in STEP_CONFIGS.items():
        hints = get_type_hints(cls)
        for f in fields(cls):
            assert f.name in KEYS, f"{step}.{f.name} is not an accepted conf key"
            key_type, key_default = KEYS[f.name]
            # A key shared by two steps (seed) must agree in type and default in both.
            hint = hints[f.name]
            # dict[str, str] is checked as dict; a union (pos_weight: str | float) as itself
            declared = hint if isinstance(hint, types.UnionType) else (get_origin(hint) or hint)
            assert key_type == declared, f"{step}.{f.name}: type {hints[f.name]} vs conf_keys {key_type}"
            if f.default is not MISSING:
                assert key_default == f.default, f"{step}.{f.name}: default {f.default!r} vs {key_default!r}"


def test_step_configs_are_the_run_config_fields() -> None:
    assert list(STEP_CONFIGS) == [f.name for f in fields(RunConfig)]
    assert list(STEP_CONFIGS) == ["preflight", "extract", "validate", "split", "train", "evaluate", "gate", "publish"]


# --------------------------------------------------------------------------- bundled alias


def test_bundled_alias_resolves_inside_the_package() -> None:
    config = ExtractConfig(source_path=SAMPLE_DATA)
    path = config.resolved_source()
    assert path.is_file()
    assert path.parent == BUNDLED_DATA_DIR
    assert path.name == "support_pairs.csv"


@pytest.mark.parametrize(
    "alias",
    ["bundled:nope.csv", "bundled:", "bundled:../config.py", "bundled:sub/x.csv", "bundled:.hidden.csv", "bundled:.."],
)
def test_bad_bundled_alias_is_rejected(alias: str) -> None:
    _raises_naming({"source_path": alias}, "source_path")


def test_plain_path_is_not_checked_at_config_time(tmp_path: Any) -> None:
    # A missing plain file is a data problem reported by extract (DataError), not a config error.
    config = load_run_config({"source_path": str(tmp_path / "later.csv")})
    assert config.extract.resolved_source() == tmp_path / "later.csv"


def test_plain_path_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_run_config({"source_path": "~/pairs.csv"})
    assert config.extract.resolved_source() == tmp_path / "pairs.csv"


# --------------------------------------------------------------------------- hub_repo_id


@pytest.mark.parametrize(
    "repo_id",
    ["local/support-reranker", "my-org/model.v2", "A1/b_c", "acme/reranker-2026", "a/" + "x" * 96],
)
def test_valid_hub_repo_ids_are_accepted(repo_id: str) -> None:
    assert load_run_config({"hub_repo_id": repo_id}).publish.hub_repo_id == repo_id


@pytest.mark.parametrize(
    "repo_id",
    [
        "",
        "model",  # no namespace
        "a/b/c",
        "/b",
        "a/",
        "a b/c",
        "a/b c",
        "../x",
        "a/..",
        "a/b..c",
        "-a/b",
        "a/-b",
        "a/" + "x" * 97,
        "https://huggingface.co/a/b",
        # Ids the Hub itself rejects (huggingface_hub.utils.validate_repo_id): they would pass the config,
        # train for hours, and only fail at publish time.
        "a/b\n",  # trailing newline (regex `$` matches before a final newline)
        "a/b--c",
        "a/b-",
        "a/b.",
        "a/b.git",
    ],
    ids=repr,
)
def test_bad_hub_repo_ids_are_rejected(repo_id: str) -> None:
    _raises_naming({"hub_repo_id": repo_id}, "hub_repo_id")


def test_publish_config_validates_on_direct_construction() -> None:
    with pytest.raises(ConfigError, match="hub_repo_id"):
        PublishConfig(hub_repo_id="no-namespace")


@pytest.mark.parametrize("key", DICT_KEYS)
@pytest.mark.parametrize("value", ["x", 1, ["a"], True])
def test_object_keys_reject_non_objects(key: str, value: Any) -> None:
    _raises_naming({key: value}, key)


@pytest.mark.parametrize("value", ["min_queries", [1], {"a": 1}, ["not_a_check"], ["max_rows"]])
def test_validation_warnings_must_name_demotable_checks(value: Any) -> None:
    _raises_naming({"validation_warnings": value}, "validation_warnings")


def test_columns_must_map_known_targets_to_distinct_names() -> None:
    _raises_naming({"columns": {"title": "t"}}, "columns")
    _raises_naming({"columns": {"query": "x", "document": "x"}}, "columns")
    _raises_naming({"columns": {"query": ""}}, "columns")
    assert load_run_config({"columns": {"query": "qtext"}}).extract.source_column("query") == "qtext"


def test_a_revision_pins_only_hub_base_models(tmp_path) -> None:
    assert load_run_config({"base_model": "org/model", "base_model_revision": "v1.0"}).train.base_model_revision == "v1.0"
    _raises_naming({"base_model_revision": "main"}, "base_model_revision")  # the packaged default has no revisions
    _raises_naming({"base_model": str(tmp_path), "base_model_revision": "main"}, "base_model_revision")


@pytest.mark.parametrize("mode", ["wait", "approve", "reject"])
def test_approval_modes(mode: str) -> None:
    assert load_run_config({"approval": mode}).gate.approval == mode


# --------------------------------------------------------------------------- training recipe (issue 10)


def test_pos_weight_is_auto_or_a_positive_number() -> None:
    assert load_run_config({}).train.pos_weight == "auto"
    assert load_run_config({"pos_weight": 4}).train.pos_weight == 4.0
    assert load_run_config({"pos_weight": 2.5}).train.pos_weight == 2.5
    for bad in ("heavy", True, 0, -1.0, [1]):
        with pytest.raises(ConfigError, match="pos_weight"):
            load_run_config({"pos_weight": bad})


@pytest.mark.parametrize(
    ("conf", "key"),
    [
        ({"patience": -1}, "patience"),
        ({"init_from": "latest"}, "init_from"),
        ({"dev_fraction": 0.6}, "dev_fraction"),
        ({"eval_steps": -5}, "eval_steps"),
        ({"hard_negatives_per_query": 0}, "hard_negatives_per_query"),
        ({"hard_negatives_margin": 1.5}, "hard_negatives_margin"),
        ({"mining_model": " "}, "mining_model"),
        ({"hard_negatives": "on"}, "hard_negatives"),
    ],
)
def test_bad_recipe_settings_name_their_key(conf: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_run_config(conf)
    assert key in str(info.value)


def test_relevance_threshold_reaches_training_and_evaluation_alike() -> None:
    config = load_run_config({"relevance_threshold": 0.7})
    assert config.train.relevance_threshold == config.evaluate.relevance_threshold == 0.7


# --------------------------------------------------------------------------- one source: the fields' settings


def _ranged() -> list[tuple[str, str, Any, Any]]:
    """(step, key, low, high) of every field whose setting has a bound, read from the field metadata."""
    return [
        (step, f.name, spec.low, spec.high)
        for step, cls in STEP_CONFIGS.items()
        for f in fields(cls)
        if (spec := setting_of(f)) is not None and (spec.low is not None or spec.high is not None)
    ]


def test_every_conf_key_is_declared_with_a_setting_and_shared_keys_agree() -> None:
    settings = conf_settings()  # raises if a step declares a shared key differently
    assert list(settings) == list(KEYS)
    for step, cls in STEP_CONFIGS.items():
        for f in fields(cls):
            assert setting_of(f) == settings[f.name], f"{step}.{f.name}"
    shared_keys = {"seed", "max_length", "relevance_threshold", "max_rows", "base_model", "precision"}
    declared = [f.name for cls in STEP_CONFIGS.values() for f in fields(cls)]
    assert {k for k in declared if declared.count(k) > 1} == shared_keys


#: Keys a bound of the key under test would break by a cross-field rule (min <= max positive fraction).
_COMPANIONS = {
    "min_positive_fraction": {"max_positive_fraction": 1.0},
    "max_positive_fraction": {"min_positive_fraction": 0.0},
}


@pytest.mark.parametrize(("step", "key", "low", "high"), _ranged(), ids=lambda v: str(v))
def test_the_config_checks_exactly_the_declared_bounds(step: str, key: str, low: Any, high: Any) -> None:
    """Every bound in the field metadata is checked, inclusive, with the message users match."""
    integer = KEYS[key][0] is int
    others = _COMPANIONS.get(key, {})
    nudge = 1 if integer else 1e-6
    for bound, outside, word in ((low, -nudge, "below the minimum"), (high, nudge, "above the maximum")):
        if bound is None:
            continue
        at = int(bound) if integer else float(bound)
        assert getattr(getattr(load_run_config({key: at, **others}), step), key) == at  # bounds are inclusive
        with pytest.raises(ConfigError) as info:
            load_run_config({key: at + outside, **others})
        assert str(info.value) == f"{key}: {at + outside!r} is {word} {bound!r}"


@pytest.mark.parametrize("key", [k for k, spec in conf_settings().items() if spec.choices])
def test_the_config_accepts_exactly_the_declared_choices(key: str) -> None:
    for choice in conf_settings()[key].choices:
        load_run_config({key: choice})
    _raises_naming({key: "not-a-" + key}, key)


def test_changing_a_bound_in_the_field_metadata_changes_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace
    from types import MappingProxyType

    from reranker_tasks.config import TrainConfig

    (batch_size,) = [f for f in fields(TrainConfig) if f.name == "batch_size"]
    monkeypatch.setattr(batch_size, "metadata", MappingProxyType({SETTING: replace(setting_of(batch_size), high=64)}))
    assert load_run_config({"batch_size": 64}).train.batch_size == 64
    with pytest.raises(ConfigError, match=r"^batch_size: 65 is above the maximum 64$"):
        load_run_config({"batch_size": 65})


# --------------------------------------------------------------------------- the data source


def test_sql_and_source_path_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="either source_path or sql_query"):
        load_run_config({"source_path": "/x.csv", "sql_query": "SELECT 1"})
