"""Run configuration: one frozen dataclass per step, built from a flat DAG-run conf.

A DAG run's conf is a flat JSON object (``{"epochs": 3, "min_gain": 0.01, ...}``). Every key belongs to
exactly one step config; :func:`load_run_config` routes the keys, rejects unknown ones, and checks types
and bounds *before any work*, so a typo never silently falls back to a default.

Types are checked strictly: ``"3"`` is not an int, ``true`` is not a number. Floats accept ints.

Each field is declared with its bounds, choices and trigger-form entry (:mod:`reranker_tasks.config_fields`): the
ranges are checked from there, and the DAGs' Params are generated from there (``reranker_airflow.params``).

The package: ``common`` (constants, keys several steps share, shared checks), ``steps`` (one dataclass per step and
``RunConfig``), ``load`` (the conf keys and :func:`load_run_config`). Import every name from here.
"""

from reranker_tasks.config.common import (
    APPROVAL_MODES,
    BUNDLED_DATA_DIR,
    BUNDLED_PREFIX,
    INIT_FROM,
    LABELS_URI_ENV,
    MAPPABLE_COLUMNS,
    OFFLINE_BASE_MODEL,
    PRECISIONS,
    SAMPLE_DATA,
    SOURCE_FORMATS,
    check_label_map,
    labels_uri,
)
from reranker_tasks.config.load import conf_keys, conf_settings, load_run_config
from reranker_tasks.config.steps import (
    DEMOTABLE_CHECKS,
    STEP_CONFIGS,
    EvaluateConfig,
    ExtractConfig,
    GateConfig,
    PreflightConfig,
    PublishConfig,
    RunConfig,
    SplitConfig,
    TrainConfig,
    ValidateConfig,
)

__all__ = [
    "APPROVAL_MODES", "BUNDLED_DATA_DIR", "BUNDLED_PREFIX", "DEMOTABLE_CHECKS", "INIT_FROM", "LABELS_URI_ENV",
    "MAPPABLE_COLUMNS", "OFFLINE_BASE_MODEL", "PRECISIONS", "SAMPLE_DATA", "SOURCE_FORMATS", "STEP_CONFIGS",
    "EvaluateConfig", "ExtractConfig", "GateConfig", "PreflightConfig", "PublishConfig", "RunConfig", "SplitConfig",
    "TrainConfig", "ValidateConfig", "check_label_map", "conf_keys", "conf_settings", "labels_uri",
    "load_run_config",
]
