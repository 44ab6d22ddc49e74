"""One frozen dataclass per step (and :class:`RunConfig`, all of them): fields declared with their bounds and form entry.

Part of :mod:`reranker_tasks.config` (import from there).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from reranker_tasks.config.common import (
    _BASE_MODEL,
    _MAX_LENGTH,
    _MAX_ROWS,
    _PRECISION,
    _RELEVANCE_THRESHOLD,
    _REPO_ID,
    _REVISION,
    _SEED,
    APPROVAL_MODES,
    BUNDLED_DATA_DIR,
    BUNDLED_PREFIX,
    INIT_FROM,
    MAPPABLE_COLUMNS,
    OFFLINE_BASE_MODEL,
    SAMPLE_DATA,
    SOURCE_FORMATS,
    _check_precision,
    check_label_map,
)
from reranker_tasks.config_fields import DATA, GATE, HUB, QUALITY, TRAINING, check_ranges, setting
from reranker_tasks.errors import ConfigError


@dataclass(frozen=True)
class PreflightConfig:
    """Checks before any expensive work: Hub token and write access, the base model, free disk."""

    min_free_gb: float = setting(
        2.0, low=0.0, high=100_000.0, title="Minimum free disk (GB)", section=HUB,
        doc="Preflight fails when the artifacts disk has less free space.",
    )

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class ExtractConfig:
    """Where the labeled pairs come from, and how their columns and labels map to ours.

    Exactly one source: ``sql_query`` (run on the Airflow connection ``sql_conn_id``), or ``source_path``
    (a file, a folder of files, an fsspec URI, or a ``datasets`` dataset saved with ``save_to_disk``).
    """

    source_path: str = setting(
        SAMPLE_DATA, title="Labeled pairs", section=DATA,
        doc="A CSV, TSV, JSONL or Parquet file, a folder of them, an fsspec URI (s3://, gs://, file://), a datasets "
        "dataset saved to disk, or a triplets JSONL (query, positive_text, negative_texts). "
        f"{SAMPLE_DATA!r} is the sample data.",
    )
    source_format: str = setting(
        "auto", choices=SOURCE_FORMATS, title="Source format", section=DATA,
        doc="'auto' decides by the file extension (a .jsonl with triplet keys is read as triplets).",
    )
    sql_conn_id: str = setting(
        "labels_db", title="SQL connection", section=DATA,
        doc="Airflow connection the SQL query runs on (SQLite, PostgreSQL, ... via SQLAlchemy).",
    )
    sql_query: str = setting(
        "", title="SQL query", section=DATA,
        doc="Instead of source_path: a query returning the pairs, run on the connection below.",
    )
    columns: dict[str, str] = setting(
        default_factory=dict, title="Column mapping", section=DATA,
        doc=f"Source column names for {', '.join(MAPPABLE_COLUMNS)}, e.g. "
        '{"query": "qtext", "document": "atext"}. Other columns are dropped and reported.',
    )
    label_map: dict[str, Any] = setting(
        default_factory=dict, title="Label mapping", section=DATA,
        doc='How labels map to [0, 1]: {"scale": [0, 3]} for graded labels, or '
        '{"values": {"relevant": 1, "irrelevant": 0}}. Empty: labels must already be numbers in [0, 1].',
    )
    strict_columns: bool = setting(
        False, title="Strict columns", section=DATA,
        doc="Fail instead of dropping columns the mapping does not use.",
    )
    eval_path: str = setting(
        "", title="Fixed eval set", section=DATA,
        doc="A 'golden' eval set (same formats and mapping) that replaces the eval split; its queries are removed "
        "from training.",
    )
    min_new_pairs: int = setting(
        0, low=0, title="Minimum new pairs", section=DATA,
        doc="Skip the run when the data has fewer new pairs than the champion's (0: always train).",
    )
    max_rows: int = _MAX_ROWS()

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
        check_ranges(self)

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

    min_rows: int = setting(
        50, low=1, title="Minimum rows", section=QUALITY, doc="Fewer labeled pairs fail validation.",
    )
    min_queries: int = setting(
        10, low=1, title="Minimum queries", section=QUALITY, doc="Fewer distinct queries fail validation.",
    )
    max_rows: int = _MAX_ROWS()
    min_positive_fraction: float = setting(
        0.01, low=0.0, high=1.0, title="Minimum positive fraction", section=QUALITY,
        doc="A smaller share of relevant pairs fails validation.",
    )
    max_positive_fraction: float = setting(
        0.99, low=0.0, high=1.0, title="Maximum positive fraction", section=QUALITY,
        doc="A larger share of relevant pairs fails validation.",
    )
    relevance_threshold: float = _RELEVANCE_THRESHOLD()
    max_length: int = _MAX_LENGTH()
    base_model: str = _BASE_MODEL()
    max_long_fraction: float = setting(
        0.2, low=0.0, high=1.0, title="Maximum truncated fraction", section=QUALITY,
        doc="A larger share of pairs longer than max_length tokens fails validation.",
    )
    max_duplicate_fraction: float = setting(
        0.1, low=0.0, high=1.0, title="Maximum duplicate fraction", section=QUALITY,
        doc="Exact duplicate pairs are dropped; more than this share fails validation.",
    )
    validation_warnings: list[str] = setting(
        default_factory=list, title="Checks demoted to warnings", section=QUALITY,
        doc=f"Any of {', '.join(DEMOTABLE_CHECKS)}.",
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.min_positive_fraction > self.max_positive_fraction:
            raise ConfigError("min_positive_fraction: must not exceed max_positive_fraction")
        unknown = sorted(set(self.validation_warnings) - set(DEMOTABLE_CHECKS))
        if unknown:
            raise ConfigError(
                f"validation_warnings: {unknown} cannot be demoted to warnings; demotable: {list(DEMOTABLE_CHECKS)}"
            )


@dataclass(frozen=True)
class SplitConfig:
    """Deterministic train/eval split by query."""

    eval_fraction: float = setting(
        0.2, low=0.01, high=0.9, title="Eval fraction", section=TRAINING,
        doc="Share of distinct queries held out for evaluation (split by query).",
    )
    seed: int = _SEED()

    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass(frozen=True)
class TrainConfig:
    """Fine-tuning hyperparameters (CrossEncoderTrainer + BinaryCrossEntropyLoss).

    ``base_model_revision`` pins a Hub base model to a branch, tag or commit, so a run next month fine-tunes the
    same weights as today's (lineage records the resolved commit).
    """

    base_model: str = _BASE_MODEL()
    base_model_revision: str = setting(
        "", title="Base model revision", section=TRAINING,
        doc="Branch, tag or commit of a Hub base model to pin (empty: its default branch).",
    )
    #: A ceiling when model selection is on (``dev_fraction`` > 0): training stops early once the dev metric
    #: stopped improving for ``patience`` evaluations, and the best evaluated checkpoint is kept.
    epochs: float = setting(
        4.0, low=0.01, high=100, title="Epochs (ceiling)", section=TRAINING,
        doc="Most passes over the training split (fractions allowed); with model selection training stops earlier "
        "once the dev metric stops improving.",
    )
    learning_rate: float = setting(
        1e-4, low=1e-8, high=1.0, title="Learning rate", section=TRAINING,
        doc="Peak learning rate of the linear schedule.",
    )
    batch_size: int = setting(
        16, low=1, high=4096, title="Batch size", section=TRAINING, doc="Training batch size.",
    )
    warmup_ratio: float = setting(
        0.1, low=0.0, high=0.5, title="Warm-up ratio", section=TRAINING,
        doc="Share of training steps for the linear learning-rate warm-up.",
    )
    max_length: int = _MAX_LENGTH()
    seed: int = _SEED()
    #: Save a resumable checkpoint every this many optimizer steps (0: never). A retry of a killed train task
    #: resumes from the newest complete one; it does not change the trained weights. With model selection on,
    #: every evaluation also saves one (the best must be there to be loaded at the end).
    checkpoint_steps: int = setting(
        500, low=0, high=1_000_000, title="Checkpoint every (steps)", section=TRAINING,
        doc="Save a resumable checkpoint every this many steps (0: never); a retry of a killed train task resumes "
        "from the newest complete one. Does not change the model.",
    )
    #: Share of the *training* queries held out to choose the checkpoint and stop early (0: no model selection).
    dev_fraction: float = setting(
        0.2, low=0.0, high=0.5, title="Dev fraction", section=TRAINING,
        doc="Share of the training queries held out to choose the best checkpoint and stop early "
        "(0: no model selection). Never the eval split.",
    )
    #: Evaluate on the dev split every this many steps (0: twice per epoch).
    eval_steps: int = setting(
        0, low=0, high=1_000_000, title="Evaluate every (steps)", section=TRAINING,
        doc="Dev evaluation interval (0: twice per epoch).",
    )
    #: Stop after this many evaluations without a better dev NDCG@10 (0: never stop early, still keep the best).
    patience: int = setting(
        3, low=0, high=1000, title="Early-stopping patience", section=TRAINING,
        doc="Stop after this many dev evaluations without gain (0: never stop early).",
    )
    #: BinaryCrossEntropyLoss weight of the positive class: "auto" (negatives / positives of the training
    #: split, mined negatives included) or a number (1: unweighted, the seed recipe).
    pos_weight: str | float = setting(
        "auto", low=1e-3, high=1000, title="Positive-class weight", section=TRAINING,
        doc="BinaryCrossEntropyLoss pos_weight: 'auto' (negatives / positives of the training pairs) or a number "
        "(1: unweighted).",
    )
    #: Mine extra label-0 pairs per training query with an embedding model (training_data.mine_negatives).
    hard_negatives: bool = setting(
        True, title="Mine hard negatives", section=TRAINING,
        doc="Add label-0 pairs mined from the training documents with an embedding model; they stay in the run's "
        "artifacts and are never pushed.",
    )
    hard_negatives_per_query: int = setting(
        3, low=1, high=100, title="Mined negatives per query", section=TRAINING,
        doc="Hard negatives mined per training query.",
    )
    #: False-negative guard: a mined document must score below its query's best positive by this relative margin.
    hard_negatives_margin: float = setting(
        0.05, low=0.0, high=1.0, title="Mining margin", section=TRAINING,
        doc="A mined document must score this much (relative) below the query's best positive: a guard against "
        "false negatives.",
    )
    #: The bi-encoder that mines: the package alias, a local folder or a Hub id of a SentenceTransformer.
    mining_model: str = setting(
        OFFLINE_BASE_MODEL, title="Mining model", section=TRAINING,
        doc="SentenceTransformer (bi-encoder) that mines hard negatives: package alias, folder or Hub id.",
    )
    #: "base": fine-tune ``base_model``; "champion": continue from the production model (the base comparison stays).
    init_from: str = setting(
        "base", choices=INIT_FROM, title="Initialise from", section=TRAINING,
        doc="'base': fine-tune the base model; 'champion': continue from the production model.",
    )
    #: Shared with the evaluate step: labels at or above it are relevant (dev ranking, mining, pos_weight).
    relevance_threshold: float = _RELEVANCE_THRESHOLD()
    #: Shared with the evaluate step: "auto" (bf16 where the CPU or GPU computes it natively, else fp32),
    #: "fp32" or "bf16" (reranker_tasks.hardware).
    precision: str = _PRECISION()
    #: Dropout on the attention probabilities while training (the base model's config has 0.1 for BERT).
    #: 0 lets PyTorch's fused attention kernel run the training step; with dropout on, it falls back to the
    #: unfused path that materialises and masks the full attention matrix: 2.7x the step time at 400 tokens
    #: on the 2-core CPU. Speed and quality side by side: bench/speed.py, bench/README.md ("Speed").
    attention_dropout: float = setting(
        0.0, low=0.0, high=0.9, title="Attention dropout", section=TRAINING,
        doc="Dropout on attention probabilities while training. 0 (default) lets the fused attention kernel run: "
        "about 2.7x faster steps on long pairs; the base model's own value is 0.1 for BERT.",
    )

    #: Keep the word-embedding matrix (about half of MiniLM's weights) as the base model has it: no dense
    #: gradient or AdamW update for it. Measured on the 2-core CPU: 5% less training time on the short sample
    #: pairs at equal NDCG@10, 1% on AGRO's long pairs at -0.035 NDCG@10, hence off by default
    #: (bench/README.md, "Frozen word embeddings").
    freeze_embeddings: bool = setting(
        False, title="Freeze word embeddings", section=TRAINING,
        doc="Do not train the word-embedding matrix (about half of a MiniLM's weights): faster steps on short "
        "pairs; position embeddings, encoder layers and head still train.",
    )

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
        if isinstance(self.pos_weight, str) and self.pos_weight != "auto":
            raise ConfigError(f"pos_weight: expected 'auto' or a positive number, got {self.pos_weight!r}")
        check_ranges(self)
        if not self.mining_model.strip():
            raise ConfigError("mining_model: must not be empty")
        if self.init_from not in INIT_FROM:
            raise ConfigError(f"init_from: expected one of {list(INIT_FROM)}, got {self.init_from!r}")
        _check_precision(self.precision)

    @property
    def model_selection(self) -> bool:
        return self.dev_fraction > 0


@dataclass(frozen=True)
class EvaluateConfig:
    """How candidate, base and champion are scored on the eval split."""

    eval_batch_size: int = setting(
        64, low=1, high=4096, title="Eval batch size", section=GATE, doc="Batch size for scoring eval pairs.",
    )
    relevance_threshold: float = _RELEVANCE_THRESHOLD()
    #: Shared with the train step (see TrainConfig.precision); scoring in bf16 is checked against fp32 by
    #: bench/speed.py (same ranking metrics within 0.005).
    precision: str = _PRECISION()

    def __post_init__(self) -> None:
        check_ranges(self)
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

    min_ndcg: float = setting(
        0.5, low=0.0, high=1.0, title="NDCG@10 floor", section=GATE,
        doc="Absolute floor the candidate must reach, first model included.",
    )
    min_gain: float = setting(
        0.005, low=0.0, high=1.0, title="Margin over champion", section=GATE,
        doc="Absolute NDCG@10 margin the candidate must beat the champion by.",
    )
    min_eval_queries: int = setting(
        10, low=1, title="Minimum eval queries", section=GATE,
        doc="Fewer usable eval queries (with a positive and a negative) reject the candidate.",
    )
    confidence: float = setting(
        0.95, low=0.5, high=0.999, title="Confidence", section=GATE,
        doc="The paired bootstrap must show the candidate beats the champion at this confidence, else a person "
        "decides.",
    )
    bootstrap_samples: int = setting(
        2000, low=100, high=100_000, title="Bootstrap samples", section=GATE,
        doc="Resamples of the eval queries (seeded by 'seed').",
    )
    max_slice_regression: float = setting(
        0.05, low=0.0, high=1.0, title="Max slice regression", section=GATE,
        doc="No slice (the 'slice' column) may fall more than this NDCG@10 below production.",
    )
    min_slice_queries: int = setting(
        5, low=1, title="Minimum slice queries", section=GATE, doc="Smaller slices are reported but not gated.",
    )
    seed: int = _SEED()
    approval: str = setting(
        "wait", choices=APPROVAL_MODES, title="Borderline candidates", section=GATE,
        doc="'wait': a person approves or rejects in the UI; 'approve' / 'reject': decide without asking.",
    )
    force: bool = setting(
        False, title="Force promotion", section=GATE,
        doc="Promote even if the candidate does not beat the champion by the margin or significantly. Never "
        "bypasses the floors or sanity checks; recorded in the model card.",
    )

    def __post_init__(self) -> None:
        check_ranges(self)
        if self.approval not in APPROVAL_MODES:
            raise ConfigError(f"approval: {self.approval!r} is not one of {list(APPROVAL_MODES)}")


@dataclass(frozen=True)
class PublishConfig:
    """Where the promoted model goes. ``main`` of this repo is production."""

    hub_repo_id: str = setting(
        "local/support-reranker", title="Hub repo", section=HUB,
        doc="'namespace/name'; its main branch is production.",
    )
    private: bool = setting(
        False, title="Private repo", section=HUB, doc="Create the repo private if it does not exist.",
    )
    #: Training pairs quoted in the model card. 0 (default): none — labeled data is often private, and the card
    #: step refuses a card that quotes any. A team whose data is public may opt in to show a few examples.
    card_examples: int = setting(
        0, low=0, high=50, title="Training examples in the card", section=HUB,
        doc="Quote this many training pairs in the model card (0: none; only for data that may be public).",
    )
    #: Do everything but the push: the card is staged and the would-be commit recorded, the Hub is not written.
    dry_run: bool = setting(
        False, title="Dry run", section=HUB,
        doc="Do everything but the push: train, evaluate, gate and stage the card; write nothing to the Hub.",
    )

    def __post_init__(self) -> None:
        repo_id = self.hub_repo_id
        if not _REPO_ID.fullmatch(repo_id) or "--" in repo_id or ".." in repo_id or repo_id.endswith(".git"):
            raise ConfigError(f"hub_repo_id: {self.hub_repo_id!r} is not of the form 'namespace/name'")
        check_ranges(self)


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

