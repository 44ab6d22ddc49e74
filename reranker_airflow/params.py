"""The retraining DAGs' Params: the trigger form, one section per step, every conf key of ``load_run_config``.

Generated from the config fields (``reranker_tasks.config``, declared with ``reranker_tasks.config_fields``), the
one source of each key's type, default, bounds, choices, title, section and description; this module only lays
out the form. Per key:

* JSON type from the field's type (``str | float`` becomes ``["string", "number"]``; a list is a list of strings,
  the only list ``load_run_config`` accepts); default from the field;
* ``minimum``/``maximum`` from the setting's ``low``/``high`` (for ``pos_weight``, JSON Schema applies them to a
  number only, as the config does); ``enum`` from its ``choices``; ``title``, ``section``, description (``doc``).

A key shared by several steps (``seed``, ``max_length``, ``relevance_threshold``, ...) is one setting and one Param
(``conf_settings``). The bounds are the form's first check; ``load_run_config`` checks the same ones at run time.
"""

from __future__ import annotations

import copy
import types
from typing import Any, get_args

from airflow.sdk import Param

from reranker_airflow.defaults import LABELS_ASSET
from reranker_tasks.config import conf_keys, conf_settings
from reranker_tasks.config_fields import DATA, GATE, HUB, QUALITY, SECTIONS, TRAINING, Setting

__all__ = [
    "DATA", "GATE", "HUB", "QUALITY", "TRAINING", "FORM_ORDER", "build_params", "labels_params", "make_param", "retrain_params",
]

#: The form's key order. Each key's section is its setting's; a section's keys must be contiguous, in the order of
#: ``config_fields.SECTIONS``.
FORM_ORDER = (
    # -- Data source
    "source_path", "source_format", "sql_query", "sql_conn_id", "columns", "label_map", "strict_columns",
    "eval_path", "min_new_pairs", "max_rows",
    # -- Data validation
    "min_rows", "min_queries", "min_positive_fraction", "max_positive_fraction", "relevance_threshold",
    "max_long_fraction", "max_duplicate_fraction", "validation_warnings",
    # -- Training
    "base_model", "base_model_revision", "eval_fraction", "seed", "epochs", "learning_rate", "batch_size",
    "warmup_ratio", "attention_dropout", "freeze_embeddings", "max_length", "checkpoint_steps", "dev_fraction",
    "eval_steps", "patience", "pos_weight", "hard_negatives", "hard_negatives_per_query", "hard_negatives_margin",
    "mining_model", "init_from", "precision",
    # -- Evaluation and gate
    "eval_batch_size", "min_ndcg", "min_gain", "min_eval_queries", "confidence", "bootstrap_samples",
    "max_slice_regression", "min_slice_queries", "approval", "force",
    # -- Hugging Face Hub
    "hub_repo_id", "private", "dry_run", "card_examples", "min_free_gb",
)

_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "object", list: "array"}


def _json_number(bound: float) -> float:
    """A bound as the form writes it: integral values as integers (``1``, not ``1.0``)."""
    return int(bound) if isinstance(bound, float) and bound.is_integer() else bound


def make_param(kind: Any, default: Any, spec: Setting, *, description: str | None = None) -> Param:
    """The Param of one conf key, from its conf type, default and setting."""
    schema: dict[str, Any] = {}
    if isinstance(kind, types.UnionType):
        schema["type"] = [_JSON_TYPES[member] for member in get_args(kind)]
    else:
        schema["type"] = _JSON_TYPES[kind]
    if kind is list:
        schema["items"] = {"type": "string"}
    if spec.choices is not None:
        schema["enum"] = list(spec.choices)
    if spec.low is not None:
        schema["minimum"] = _json_number(spec.low)
    if spec.high is not None:
        schema["maximum"] = _json_number(spec.high)
    schema["title"] = spec.title
    schema["section"] = spec.section
    return Param(default, description=spec.doc if description is None else description, **schema)


def build_params() -> dict[str, Param]:
    """The Params table, generated from the settings now (the module keeps one, ``_PARAMS``; DAGs get copies)."""
    keys, settings = conf_keys(), conf_settings()
    if sorted(FORM_ORDER) != sorted(keys):
        missing, extra = sorted(set(keys) - set(FORM_ORDER)), sorted(set(FORM_ORDER) - set(keys))
        raise RuntimeError(f"FORM_ORDER must list every conf key once: missing {missing}, unknown or twice {extra}")
    sections = [settings[key].section for key in FORM_ORDER]
    runs = [section for i, section in enumerate(sections) if i == 0 or sections[i - 1] != section]
    if runs != [section for section in SECTIONS if section in sections]:
        raise RuntimeError(f"FORM_ORDER: each section's keys must be contiguous, in the order {list(SECTIONS)}")
    return {key: make_param(*keys[key], settings[key]) for key in FORM_ORDER}


#: The table itself; DAGs get copies (``retrain_params``): Airflow may write a run's conf into the Param objects of
#: the DAG it runs (dag.test does), and this module outlives one parse of a DAG file in the process that imports it.
_PARAMS = build_params()


def retrain_params() -> dict[str, Param]:
    """The weekly DAG's Params: a fresh copy of the table for each DAG object."""
    return copy.deepcopy(_PARAMS)


def labels_params() -> dict[str, Param]:
    """The asset-scheduled DAG's Params: read the labels where their Asset points; skip when nothing is new.

    Only two defaults and their descriptions differ from the weekly DAG's; type, bounds, title and section stay
    the settings'.
    """
    params = copy.deepcopy(_PARAMS)
    keys, settings = conf_keys(), conf_settings()
    overrides = {
        "source_path": (
            LABELS_ASSET.uri,
            "The labels whose Asset schedules this DAG (RERANKER_LABELS_URI); same formats as the weekly DAG.",
        ),
        "min_new_pairs": (
            1,
            "Skip the run when the data has fewer new pairs than the champion's (1: skip unchanged data).",
        ),
    }
    for key, (default, description) in overrides.items():
        params[key] = make_param(keys[key][0], default, settings[key], description=description)
    return params
