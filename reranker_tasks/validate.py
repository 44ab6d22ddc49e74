"""Validate step: Great Expectations suites over the extract snapshot (and the fixed eval set), plus Data Docs.

Three GX 1.x suites run in one ephemeral context:

* ``labeled_pairs`` on the whole snapshot (a pandas batch), what training needs row by row:

  - the columns are ``query``, ``document``, ``label`` and ``source_row``, optionally ``query_id``, ``doc_id``,
    ``slice`` and ``source_file``, and nothing else;
  - at least ``min_rows`` rows (GX passes every column expectation on a zero-row frame);
  - ``label`` is numeric, not null (NaN is null) and within [0, 1] (GX skips nulls in ``between``);
  - both classes are present: some label >= ``relevance_threshold`` and some label below it;
  - ``query`` and ``document`` are not null and not blank (GX skips nulls in regex expectations).

* ``labeled_pairs_eval`` on the fixed eval set, when the extract step wrote one: the same row checks without the
  row count; its failure lines start with ``eval set:``.
* ``labeled_pairs_statistics`` on a one-row batch of dataset statistics that GX cannot compute itself (computed
  here with vectorised pandas / Arrow, checked by GX so that they show in the Data Docs). Check ids:

  - ``max_rows``: rows <= ``max_rows``; read from the Parquet footer, and a larger snapshot is not loaded at all.
  - ``min_queries``: distinct queries, normalised as the split does (``normalise_query``), >= ``min_queries``.
  - ``positive_fraction``: the share of labels >= ``relevance_threshold`` lies in
    [``min_positive_fraction``, ``max_positive_fraction``].
  - ``conflicting_labels``: no (query, document) pair (exact text) carries two different labels (eval set too).
  - ``duplicates``: exact duplicates the extract step dropped / rows it read <= ``max_duplicate_fraction``.
  - ``long_documents``: the share of (query, document) pairs over ``max_length`` tokens <= ``max_long_fraction``.

  ``max_rows`` is always an error; the others may be demoted: a check named in ``validation_warnings`` runs with GX
  severity ``warning``, and its failure is listed in ``warnings`` (summary, report, log) without failing the step.
  Dropped duplicates are always reported, as a warning when below the maximum.

Expectations that depend on a missing column, or on a label column that is not numeric, are left out (and listed as
skipped in the report), so a failure reads as its cause and not as a cascade; so are statistics that the failure of a
row check already explains (no positive fraction when one class is missing).

Token lengths come from the base model's tokenizer (``AutoTokenizer``) on a seeded random sample of at most 20,000
pairs; a tokenizer that cannot be loaded falls back to a whitespace-word estimate, with a warning.

Cost (1M pairs of ~500 characters, 2 cores): about 9 s and 1.9 GB. The work that runs without the GIL (reading, Arrow
kernels, the Rust tokenizer) runs in helper threads beside the imports of GX and transformers (~3 s and ~2 s) and the
GX suite (~2 s; ~2.5 s more when documents hold newlines, see ``BLANK_TEXT``). The Data Docs add ~0.25 s.

Privacy: failure lines, the summary, the JSON report and the Data Docs name expectations, columns, counts and source
rows (the snapshot's 1-based ``source_row``; ``file:row`` with several source files), never a query, document or label
text. GX runs with ``exclude_unexpected_values`` (no partial unexpected list or counts), the report is built from an
allowlist of result fields, and the results the Data Docs render from are reduced to the same allowlist.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import re
import shutil
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pandas as pd

from reranker_tasks.config import ValidateConfig
from reranker_tasks.errors import DataError, DataValidationFailed
from reranker_tasks.extract import format_refs
from reranker_tasks.paths import json_safe, write_json_atomic
from reranker_tasks.split import normalise_query

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.data_context import AbstractDataContext
    from great_expectations.expectations.expectation import Expectation

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("query", "document", "label")
ROW_ID_COLUMN = "source_row"
FILE_COLUMN = "source_file"
#: Columns every snapshot has.
EXPECTED_COLUMNS = (*REQUIRED_COLUMNS, ROW_ID_COLUMN)
#: Columns a snapshot may have besides those; anything else is an error.
OPTIONAL_COLUMNS = ("query_id", "doc_id", "slice", FILE_COLUMN)
REPORT_FILE = "validation.json"
DATA_DOCS_DIR = "data_docs"
DATA_DOCS_SITE = "validate"
SUITE_NAME = "labeled_pairs"
EVAL_SUITE_NAME = "labeled_pairs_eval"
STATISTICS_SUITE_NAME = "labeled_pairs_statistics"
#: The default ``relevance_threshold``.
POSITIVE_THRESHOLD = 0.5
EVAL_PREFIX = "eval set: "
#: Source rows named per failure in the message / kept per expectation in the report.
ROWS_IN_MESSAGE = 5
ROWS_IN_REPORT = 20
#: Long-document check: at most this many pairs are tokenised, drawn with this seed.
LONG_SAMPLE_ROWS = 20_000
LONG_SAMPLE_SEED = 0
#: Texts are cut at this many characters per ``max_length`` token before tokenising (a 20,000-word document costs
#: as much as a 2,000-character one); a cut text keeps far more than ``max_length`` tokens unless it is a few
#: giant "words" (each one [UNK] token).
CHARS_PER_TOKEN_CAP = 32
#: How long to wait for the tokenizer thread before falling back to the whitespace estimate.
TOKENIZER_TIMEOUT_S = 600.0

CHECK_MAX_ROWS = "max_rows"
CHECK_MIN_QUERIES = "min_queries"
CHECK_POSITIVE_FRACTION = "positive_fraction"
CHECK_CONFLICTING_LABELS = "conflicting_labels"
CHECK_DUPLICATES = "duplicates"
CHECK_LONG_DOCUMENTS = "long_documents"

#: A label written as text must read as a number (the extract step strips CSV labels the same way).
NUMBER_TEXT = r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$"
#: Every character ``str.isspace`` accepts (what Python's ``\s`` matches; U+3000 is the last one), written out:
#: pandas runs a pattern with ``\s`` through Python's ``re`` one row at a time (RE2's ``\s`` misses ``\x0b`` and the
#: Unicode spaces), a class of literal characters through pyarrow's vectorised RE2 (~2.5 s less on 1M ~500-character
#: documents). pandas still takes the slow path for ``$`` when some value of the column holds a newline.
WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())
BLANK_TEXT = f"^[{WHITESPACE}]*$"
NUMERIC_TYPES = ("float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8")
#: Checks that only make sense on a numeric label column.
_NUMERIC_LABEL_CHECKS = frozenset({"label_in_range", "label_has_positive", "label_has_negative"})

#: Result fields that hold counts only; everything else GX returns may carry row values.
_COUNT_FIELDS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count", "missing_percent")
#: Checks whose ``observed_value`` is safe to keep (a row count, column names, a dtype name).
_SAFE_OBSERVED = frozenset({"columns", "row_count", "label_numeric"})
#: Result fields the Data Docs may render (counts, percentages, source rows, a numeric observed value).
_DOCS_FIELDS = (
    *_COUNT_FIELDS,
    "unexpected_percent_total",
    "unexpected_percent_nonmissing",
    "partial_unexpected_index_list",
)
#: The expectation type of every check in the statistics suite.
_STATISTIC_TYPE = "expect_column_max_to_be_between"
_RESULT_FORMAT: dict[str, Any] = {
    # SUMMARY keeps GX from materialising every unexpected value (COMPLETE would), exclude_unexpected_values drops
    # the partial list of row values and their counts. Row ids: GX's ``unexpected_index_column_names`` builds its
    # index list with a per-row ``.at`` loop over *all* unexpected rows before slicing (~50 s for 1M failing rows),
    # so GX reports 0-based positions of the RangeIndex instead and _RowRefs maps them to source rows.
    "result_format": "SUMMARY",
    "partial_unexpected_count": ROWS_IN_REPORT,
    "exclude_unexpected_values": True,
}


@dataclass(frozen=True)
class ValidationSummary:
    """Outcome of the validate step (small: goes to XCom via :meth:`to_dict`).

    Attributes:
        success: every error-level check passed.
        rows: rows in the snapshot.
        queries: distinct normalised queries (0 when the column is missing).
        positives: rows with a numeric label >= ``relevance_threshold``.
        negatives: rows with a numeric label below it.
        evaluated_expectations: GX expectations that ran, over all suites (skipped ones not counted).
        failed: one line per failed error-level check, as in the raised error.
        report_path: the JSON report.
        warnings: one line per warning (a failed check demoted by ``validation_warnings``, dropped duplicates,
            a tokenizer fallback).
        duplicates_dropped: exact duplicate pairs the extract step dropped.
        long_fraction: share of (query, document) pairs over ``max_length`` tokens (on a sample of at most
            20,000 pairs).
        positive_fraction: share of labeled pairs with a label >= ``relevance_threshold``.
        eval_rows: rows in the fixed eval set (0 without one).
        eval_queries: its distinct normalised queries.
        data_docs_path: the GX Data Docs index page ("" when it could not be built).
    """

    success: bool
    rows: int
    queries: int
    positives: int
    negatives: int
    evaluated_expectations: int
    failed: tuple[str, ...]
    report_path: str
    warnings: tuple[str, ...] = ()
    duplicates_dropped: int = 0
    long_fraction: float = 0.0
    positive_fraction: float = 0.0
    eval_rows: int = 0
    eval_queries: int = 0
    data_docs_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the summary."""
        return {
            "success": self.success,
            "rows": self.rows,
            "queries": self.queries,
            "positives": self.positives,
            "negatives": self.negatives,
            "evaluated_expectations": self.evaluated_expectations,
            "failed": list(self.failed),
            "report_path": self.report_path,
            "warnings": list(self.warnings),
            "duplicates_dropped": self.duplicates_dropped,
            "long_fraction": _finite(self.long_fraction),
            "positive_fraction": _finite(self.positive_fraction),
            "eval_rows": self.eval_rows,
            "eval_queries": self.eval_queries,
            "data_docs_path": self.data_docs_path,
        }


@dataclass(frozen=True)
class SkippedCheck:
    """A check left out because the column it needs is missing or not numeric, or its input is not there."""

    check: str
    expectation_type: str
    column: str
    reason: str


@dataclass
class _Statistic:
    """One dataset-level check: its value, bounds and wording (GX checks the value in the statistics suite)."""

    check: str
    column: str
    value: float
    min_value: float | None = None
    max_value: float | None = None
    demotable: bool = True
    scope: str = "pairs"
    #: Phrases of the message: ``fact`` always, ``limit_fail`` / ``limit_ok`` after it, ``detail`` at the end.
    fact: str = ""
    limit_fail: str = ""
    limit_ok: str = ""
    detail: str = ""
    detail_on_pass: bool = False
    source_rows: list[int | str] = field(default_factory=list)
    #: Set from the GX result (``unevaluated``: the exception type when GX could not evaluate it).
    success: bool = True
    severity: str = "error"
    unevaluated: str = ""

    def message(self) -> str:
        if self.unevaluated:
            line = f"{self.check}: could not be evaluated ({self.unevaluated})"
            return EVAL_PREFIX + line if self.scope == "eval" else line
        parts = [f"{self.check}: {self.fact}"]
        limit = self.limit_ok if self.success else self.limit_fail
        if limit:
            parts.append(f", {limit}")
        if self.detail and (self.detail_on_pass or not self.success):
            parts.append(f"; {self.detail}")
        line = "".join(parts)
        return EVAL_PREFIX + line if self.scope == "eval" else line


@dataclass
class _SuiteOutcome:
    """One GX suite's result, reduced for the report."""

    entries: list[dict[str, Any]]
    failures: list[str]
    statistics: dict[str, Any]
    skipped: list[SkippedCheck]


class _RowRefs:
    """Readable source-row references of frame positions: ``17``, or ``"a.csv:17"`` when there are several files."""

    def __init__(self, frame: pd.DataFrame, files: Sequence[str]) -> None:
        self.row_ids, self.numbering = _row_ids(frame)
        self.files: list[str] = list(files)
        self.file_ids: np.ndarray | None = None
        if FILE_COLUMN in frame.columns and pd.api.types.is_integer_dtype(frame[FILE_COLUMN].dtype):
            ids = frame[FILE_COLUMN].to_numpy(dtype="int64")
            if len(self.files) > 1 or (not self.files and len(ids) and ids.min() != ids.max()):
                self.file_ids = ids

    def refs(self, positions: Sequence[int] | np.ndarray, limit: int = ROWS_IN_REPORT) -> list[int | str]:
        chosen = [int(p) for p in np.asarray(positions)[:limit] if 0 <= int(p) < len(self.row_ids)]
        if self.file_ids is None:
            return [int(self.row_ids[p]) for p in chosen]
        return [f"{self._file_name(int(self.file_ids[p]))}:{int(self.row_ids[p])}" for p in chosen]

    def _file_name(self, index: int) -> str:
        return self.files[index] if 0 <= index < len(self.files) else f"file{index}"


def pairs_suite(
    columns: Sequence[str],
    label_dtype: Any,
    config: ValidateConfig,
    *,
    eval_set: bool = False,
) -> tuple[gx.ExpectationSuite, list[SkippedCheck]]:
    """Build the row-level expectation suite for a snapshot with the given columns.

    Each expectation carries ``meta["check"]`` (a stable short name), ``meta["describe"]`` (the readable
    argument summary used in failure lines) and ``notes`` (why it exists).

    Args:
        columns: the snapshot's columns.
        label_dtype: dtype of the ``label`` column (``None`` when it is missing).
        config: thresholds.
        eval_set: the suite for the fixed eval set (named ``labeled_pairs_eval``, without the row count).

    Returns:
        The suite, and the checks left out because a column they need is missing or not numeric.
    """
    _quiet_gx()
    import great_expectations as gx

    # From their defining modules: ``great_expectations.expectations`` re-exports them without ``__all__``,
    # which ``mypy --strict`` (no implicit re-export) rejects.
    from great_expectations.expectations.core.expect_column_max_to_be_between import ExpectColumnMaxToBeBetween
    from great_expectations.expectations.core.expect_column_min_to_be_between import ExpectColumnMinToBeBetween
    from great_expectations.expectations.core.expect_column_values_to_be_between import (
        ExpectColumnValuesToBeBetween,
    )
    from great_expectations.expectations.core.expect_column_values_to_be_in_type_list import (
        ExpectColumnValuesToBeInTypeList,
    )
    from great_expectations.expectations.core.expect_column_values_to_match_regex import (
        ExpectColumnValuesToMatchRegex,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_be_null import (
        ExpectColumnValuesToNotBeNull,
    )
    from great_expectations.expectations.core.expect_column_values_to_not_match_regex import (
        ExpectColumnValuesToNotMatchRegex,
    )
    from great_expectations.expectations.core.expect_table_columns_to_match_set import (
        ExpectTableColumnsToMatchSet,
    )
    from great_expectations.expectations.core.expect_table_row_count_to_be_between import (
        ExpectTableRowCountToBeBetween,
    )

    present = set(columns)
    label_numeric = "label" in present and _is_numeric(label_dtype)
    threshold = config.relevance_threshold
    expectations: list[Expectation] = []
    skipped: list[SkippedCheck] = []

    def add(
        cls: type[Expectation], check: str, describe: str, notes: str, needs: str | None = None, **kwargs: Any
    ) -> None:
        expectation_type = str(cls.expectation_type)
        if needs is not None and needs not in present:
            skipped.append(SkippedCheck(check, expectation_type, needs, f"column {needs!r} is missing"))
        elif needs == "label" and check in _NUMERIC_LABEL_CHECKS and not label_numeric:
            skipped.append(SkippedCheck(check, expectation_type, needs, "column 'label' is not numeric"))
        else:
            expectations.append(cls(meta={"check": check, "describe": describe}, notes=notes, **kwargs))

    column_set = [*EXPECTED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in present)]
    add(
        ExpectTableColumnsToMatchSet,
        "columns",
        ", ".join(column_set),
        "The snapshot holds query, document, label and source_row (optionally query_id, doc_id, slice and "
        "source_file) and nothing else.",
        column_set=column_set,
        exact_match=True,
    )
    if not eval_set:
        add(
            ExpectTableRowCountToBeBetween,
            "row_count",
            f"min {config.min_rows}",
            "Enough pairs to train on; a zero-row frame would pass every column expectation.",
            min_value=config.min_rows,
        )
    add(
        ExpectColumnValuesToBeInTypeList,
        "label_numeric",
        "label, numeric",
        "Labels are numbers (BCE targets).",
        needs="label",
        column="label",
        type_list=list(NUMERIC_TYPES),
    )
    if "label" in present and isinstance(label_dtype, pd.StringDtype):
        add(
            ExpectColumnValuesToMatchRegex,
            "label_number_text",
            "label, a number",
            "A text label column: names the rows whose text is not a number.",
            needs="label",
            column="label",
            regex=NUMBER_TEXT,
        )
    add(
        ExpectColumnValuesToNotBeNull,
        "label_not_null",
        "label",
        "Every pair has a label; NaN counts as null.",
        needs="label",
        column="label",
    )
    add(
        ExpectColumnValuesToBeBetween,
        "label_in_range",
        "label, 0..1",
        "BCE targets lie in [0, 1]; nulls are skipped here and caught by label_not_null.",
        needs="label",
        column="label",
        min_value=0,
        max_value=1,
    )
    add(
        ExpectColumnMaxToBeBetween,
        "label_has_positive",
        f"label, max >= {threshold}",
        f"At least one relevant pair (label >= relevance_threshold {threshold}).",
        needs="label",
        column="label",
        min_value=threshold,
    )
    add(
        ExpectColumnMinToBeBetween,
        "label_has_negative",
        f"label, min < {threshold}",
        f"At least one irrelevant pair (label < relevance_threshold {threshold}).",
        needs="label",
        column="label",
        max_value=threshold,
        strict_max=True,
    )
    for column in ("query", "document"):
        add(
            ExpectColumnValuesToNotBeNull,
            f"{column}_not_null",
            column,
            f"Every pair has a {column}.",
            needs=column,
            column=column,
        )
        add(
            ExpectColumnValuesToNotMatchRegex,
            f"{column}_not_blank",
            f"{column}, blank",
            f"No empty or whitespace-only {column}; nulls are skipped here and caught by {column}_not_null.",
            needs=column,
            column=column,
            regex=BLANK_TEXT,
        )
    name = EVAL_SUITE_NAME if eval_set else SUITE_NAME
    return gx.ExpectationSuite(name=name, expectations=expectations), skipped


def statistics_suite(statistics: Sequence[_Statistic], config: ValidateConfig) -> gx.ExpectationSuite:
    """The suite over the one-row statistics batch: one ``expect_column_max_to_be_between`` per statistic.

    A statistic whose check is named in ``validation_warnings`` gets severity ``warning``.
    """
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.expectations.core.expect_column_max_to_be_between import ExpectColumnMaxToBeBetween

    expectations: list[Expectation] = []
    for stat in statistics:
        warning = _demoted(stat, config)
        bounds = {k: v for k, v in (("min_value", stat.min_value), ("max_value", stat.max_value)) if v is not None}
        expectations.append(
            ExpectColumnMaxToBeBetween(
                column=stat.column,
                severity="warning" if warning else "critical",
                meta={"check": stat.check, "scope": stat.scope},
                notes=(
                    f"Check {stat.check!r} ({stat.scope}): a one-row statistics batch, so the max is the value."
                    + (" Demoted to a warning by validation_warnings." if warning else "")
                ),
                **bounds,
            )
        )
    return gx.ExpectationSuite(name=STATISTICS_SUITE_NAME, expectations=expectations)


def _demoted(stat: _Statistic, config: ValidateConfig) -> bool:
    """The statistic's check is demotable and named in ``validation_warnings``."""
    return stat.demotable and stat.check in config.validation_warnings


def validate_pairs(
    snapshot_path: Path,
    out_dir: Path,
    config: ValidateConfig,
    extract_info: Mapping[str, Any] | None = None,
) -> ValidationSummary:
    """Validate the snapshot (and the fixed eval set); write ``validation.json`` and the Data Docs; raise on failure.

    Args:
        snapshot_path: the extract step's Parquet snapshot (``query``, ``document``, ``label`` as present,
            ``source_row``, ``source_file``, optionally ``query_id``, ``doc_id``, ``slice``).
        out_dir: the run's ``validate`` folder (created if needed); the Data Docs go to ``out_dir/data_docs``.
        config: thresholds, demoted checks, base model (its tokenizer measures pair lengths).
        extract_info: the extract step's result: ``source_files`` (names for ``source_file``), ``rows_read``,
            ``duplicates_dropped``, ``duplicate_rows`` and ``eval_snapshot_path``. ``None``: one unnamed file,
            no duplicates, no eval set.

    Returns:
        The summary of a successful validation (warnings included).

    Raises:
        DataValidationFailed: one or more error-level checks failed; ``failures`` holds one line per check
            (check, counts, up to 5 source rows), never row text.
        DataError: the snapshot or the eval set's snapshot cannot be read.
    """
    info = dict(extract_info or {})
    report_path = out_dir / REPORT_FILE
    files = _names(info.get("source_files"))
    duplicates = _int(info.get("duplicates_dropped"))
    eval_path = Path(str(info["eval_snapshot_path"])) if info.get("eval_snapshot_path") else None

    try:
        rows_in_file = _parquet_rows(snapshot_path)
    except (OSError, ValueError) as exc:
        _unreadable(report_path, snapshot_path, "snapshot", exc)
    if rows_in_file > config.max_rows:
        _fail_too_many_rows(snapshot_path, rows_in_file, out_dir, config, duplicates)

    # Helper threads do the work that runs without the GIL: one reads the snapshot, draws the length sample and
    # computes counts and conflicting labels (Arrow / pandas kernels) while this thread imports GX; the other
    # tokenises the sample (Rust) while this thread runs the GX suites. Imports stay on this thread, one after the
    # other (GX, then transformers).
    workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="validate")
    try:
        loading = workers.submit(_load_snapshot, snapshot_path, config)
        _quiet_gx()
        tokenizer, tokenizer_problem = _tokenizer_or_problem(config.base_model)
        try:
            frame, sample, numbers = loading.result()
        except (OSError, ValueError) as exc:
            _unreadable(report_path, snapshot_path, "snapshot", exc)
        lengths: Future[np.ndarray] | None = None
        if sample is not None and tokenizer is not None:
            lengths = workers.submit(_token_lengths, tokenizer, sample.queries, sample.documents)
        return _validate_loaded(
            snapshot_path, out_dir, config, info, files, duplicates, eval_path, frame, sample, lengths,
            tokenizer_problem, numbers,
        )  # fmt: skip
    finally:
        workers.shutdown(wait=False, cancel_futures=True)


def _validate_loaded(
    snapshot_path: Path,
    out_dir: Path,
    config: ValidateConfig,
    info: Mapping[str, Any],
    files: list[str],
    duplicates: int,
    eval_path: Path | None,
    frame: pd.DataFrame,
    sample: _LengthSample | None,
    lengths: Future[np.ndarray] | None,
    tokenizer_problem: str,
    numbers: tuple[dict[str, Any], tuple[int, np.ndarray] | None],
) -> ValidationSummary:
    report_path = out_dir / REPORT_FILE
    refs = _RowRefs(frame, files)
    evaluation: pd.DataFrame | None = None
    if eval_path is not None:
        try:
            evaluation = pd.read_parquet(eval_path).reset_index(drop=True)
        except (OSError, ValueError) as exc:
            _unreadable(report_path, eval_path, "eval set snapshot", exc, snapshot_path)
    eval_refs = _RowRefs(evaluation, _names(info.get("eval_source_files"))) if evaluation is not None else None

    context = _gx_context(out_dir / DATA_DOCS_DIR)
    columns = [str(c) for c in frame.columns]
    suite, skipped = pairs_suite(columns, _dtype(frame, "label"), config)
    pairs = _outcome(_run_suite(context, "snapshot", frame, suite), skipped, refs, len(frame), config, "")
    eval_outcome: _SuiteOutcome | None = None
    if evaluation is not None and eval_refs is not None:
        eval_suite, eval_skipped = pairs_suite(
            [str(c) for c in evaluation.columns], _dtype(evaluation, "label"), config, eval_set=True
        )
        eval_result = _run_suite(context, "eval_set", evaluation, eval_suite)
        eval_outcome = _outcome(eval_result, eval_skipped, eval_refs, len(evaluation), config, EVAL_PREFIX)

    counts, conflicts = numbers
    stats, stat_skipped = _statistics(frame, refs, counts, conflicts, config, info, duplicates)
    if evaluation is not None and eval_refs is not None:
        eval_conflicts = None if _conflict_skip_reason(evaluation) else conflicting_pairs(evaluation)
        stats += _conflict_statistics(evaluation, eval_refs, eval_conflicts, scope="eval", skipped=stat_skipped)
    long_stat, long_notes = _long_statistic(frame, refs, sample, lengths, tokenizer_problem, config)
    if long_stat is not None:
        stats.append(long_stat)
    else:
        reason = "column 'query' or 'document' is missing, or no row has both texts"
        stat_skipped.append(SkippedCheck(CHECK_LONG_DOCUMENTS, _STATISTIC_TYPE, "long_fraction", reason))
    stats_outcome = _run_statistics(context, stats, config)

    docs_path, docs_problem = _build_data_docs(
        context, out_dir / DATA_DOCS_DIR, {SUITE_NAME: refs, EVAL_SUITE_NAME: eval_refs}
    )
    eval_counts = _counts(evaluation, config.relevance_threshold) if evaluation is not None else None
    return _finish(
        snapshot_path=snapshot_path,
        report_path=report_path,
        config=config,
        columns=columns,
        refs=refs,
        files=files,
        pairs=pairs,
        eval_outcome=eval_outcome,
        eval_path=eval_path,
        eval_counts=eval_counts,
        stats=stats,
        stat_skipped=stat_skipped,
        stats_outcome=stats_outcome,
        notes=[*long_notes, *([docs_problem] if docs_problem else [])],
        counts=counts,
        duplicates=duplicates,
        docs_path=docs_path,
    )


def _finish(
    *,
    snapshot_path: Path,
    report_path: Path,
    config: ValidateConfig,
    columns: list[str],
    refs: _RowRefs | None,
    files: list[str],
    pairs: _SuiteOutcome | None,
    eval_outcome: _SuiteOutcome | None,
    eval_path: Path | None,
    eval_counts: Mapping[str, Any] | None,
    stats: list[_Statistic],
    stat_skipped: list[SkippedCheck],
    stats_outcome: _SuiteOutcome,
    notes: list[str],
    counts: Mapping[str, Any],
    duplicates: int,
    docs_path: str,
) -> ValidationSummary:
    """Compose failures and warnings, write the report, log; raise or return the summary."""
    failures = list(pairs.failures if pairs else [])
    if eval_outcome is not None:
        failures += eval_outcome.failures
    warning_lines = list(notes)
    for stat in stats:
        if stat.success:
            if stat.check == CHECK_DUPLICATES and duplicates > 0:
                warning_lines.append(stat.message())
            continue
        if stat.severity == "warning":
            warning_lines.append(f"{stat.message()} (demoted to a warning by validation_warnings)")
        else:
            failures.append(stat.message())
    evaluated = sum(
        int(o.statistics.get("evaluated_expectations", len(o.entries)))
        for o in (pairs, eval_outcome, stats_outcome)
        if o is not None
    )
    success = not failures
    by_check = {(s.scope, s.check): s for s in stats}
    long_stat = by_check.get(("pairs", CHECK_LONG_DOCUMENTS))
    summary = ValidationSummary(
        success=success,
        rows=int(counts["rows"]),
        queries=int(counts["queries"]),
        positives=int(counts["positives"]),
        negatives=int(counts["negatives"]),
        evaluated_expectations=evaluated,
        failed=tuple(failures),
        report_path=str(report_path),
        warnings=tuple(warning_lines),
        duplicates_dropped=duplicates,
        long_fraction=float(long_stat.value) if long_stat else 0.0,
        positive_fraction=float(counts["positive_fraction"]),
        eval_rows=int(eval_counts["rows"]) if eval_counts else 0,
        eval_queries=int(eval_counts["queries"]) if eval_counts else 0,
        data_docs_path=docs_path,
    )
    report: dict[str, Any] = {
        "suite": SUITE_NAME,
        "success": success,
        "snapshot_path": str(snapshot_path),
        "config": json_safe(asdict(config)),  # thresholds, base model, demoted checks
        "columns": columns,
        "source_files": files,
        "row_numbers": refs.numbering if refs else None,
        "statistics": pairs.statistics if pairs else {},
        "summary": summary.to_dict(),
        "expectations": pairs.entries if pairs else [],
        "skipped": _skipped_dicts(pairs.skipped if pairs else []),
        "dataset_checks": [_statistic_entry(s) for s in stats],
        "dataset_checks_skipped": _skipped_dicts(stat_skipped),
        "eval": None
        if eval_outcome is None
        else {
            "snapshot_path": str(eval_path),
            "rows": summary.eval_rows,
            "queries": summary.eval_queries,
            "statistics": eval_outcome.statistics,
            "expectations": eval_outcome.entries,
            "skipped": _skipped_dicts(eval_outcome.skipped),
            "failed": [line for line in failures if line.startswith(EVAL_PREFIX)],
        },
        "warnings": warning_lines,
        "failed": failures,
        "data_docs_path": docs_path,
    }
    write_json_atomic(report_path, report)
    for line in warning_lines:
        log.warning("validation warning: %s", line)
    if not success:
        log.error("validation failed: %d check(s); report %s", len(failures), report_path)
        raise DataValidationFailed(failures, str(report_path))
    log.info(
        "validation passed: %d expectations on %d rows (%d queries, %d positive, %d negative, %d warning(s)); "
        "report %s",
        evaluated,
        summary.rows,
        summary.queries,
        summary.positives,
        summary.negatives,
        len(warning_lines),
        report_path,
    )
    return summary


# --- GX -------------------------------------------------------------------------------------------


def _gx_context(docs_dir: Path) -> AbstractDataContext:
    """A fresh ephemeral context, progress bars off, with one local Data Docs site at ``docs_dir`` (emptied)."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    shutil.rmtree(docs_dir, ignore_errors=True)  # a retried task's site shows this try only
    context.variables.data_docs_sites = {
        DATA_DOCS_SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir.resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    }
    return context


def _run_suite(
    context: AbstractDataContext, name: str, frame: pd.DataFrame, suite: gx.ExpectationSuite
) -> ExpectationSuiteValidationResult:
    """Run a suite on a whole-dataframe batch; the result is kept in the context's store for the Data Docs."""
    import great_expectations as gx

    suite = context.suites.add(suite)
    batch_definition = (
        context.data_sources.add_pandas(name).add_dataframe_asset(name).add_batch_definition_whole_dataframe("whole")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    )
    with _no_batch_fingerprint():
        return definition.run(batch_parameters={"dataframe": frame}, result_format=dict(_RESULT_FORMAT))


@contextlib.contextmanager
def _no_batch_fingerprint() -> Iterator[None]:
    """Skip GX's ``pandas_data_fingerprint`` batch marker: an md5 over ``hash_pandas_object`` of the whole frame.

    GX computes it for every pandas batch below 1e9 bytes; with 1M ~500-character documents it costs ~6 s and is
    used for nothing here (a whole-dataframe batch is named by its asset, not its content).
    """
    from great_expectations.execution_engine import pandas_execution_engine as engine

    previous = getattr(engine, "HASH_THRESHOLD", None)
    if previous is None:  # pragma: no cover - a GX without the marker
        yield
        return
    engine.HASH_THRESHOLD = 0
    try:
        yield
    finally:
        engine.HASH_THRESHOLD = previous


def _quiet_gx() -> None:
    """Import GX with its noise off: INFO lines per context, DeprecationWarnings from its own imports."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations  # noqa: F401
    # This module pins its own logger to INFO ("Created temporary directory ... for ephemeral docs site").
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)


def _outcome(
    result: ExpectationSuiteValidationResult,
    skipped: list[SkippedCheck],
    refs: _RowRefs,
    rows: int,
    config: ValidateConfig,
    prefix: str,
) -> _SuiteOutcome:
    order = _suite_order(result)
    results = sorted(result.results, key=lambda r: order.get(_meta(r).get("check", ""), len(order)))
    entries = [_report_entry(r, refs) for r in results]
    failures = [prefix + _failure_line(e, rows, config.relevance_threshold) for e in entries if not e["success"]]
    return _SuiteOutcome(entries, failures, json_safe(dict(result.statistics)), skipped)


def _suite_order(result: ExpectationSuiteValidationResult) -> dict[str, int]:
    """Position of each check in the suite (GX returns results in its own order)."""
    checks: list[str] = []
    for r in result.results:
        check = _meta(r).get("check")
        if check and check not in checks:
            checks.append(str(check))
    canonical = [
        "columns",
        "row_count",
        "label_numeric",
        "label_number_text",
        "label_not_null",
        "label_in_range",
        "label_has_positive",
        "label_has_negative",
        "query_not_null",
        "query_not_blank",
        "document_not_null",
        "document_not_blank",
    ]
    return {c: i for i, c in enumerate([*canonical, *(c for c in checks if c not in canonical)])}


def _run_statistics(context: AbstractDataContext, stats: list[_Statistic], config: ValidateConfig) -> _SuiteOutcome:
    """Check the statistics with GX; set each one's ``success`` (and ``unevaluated``) from its result."""
    suite = statistics_suite(stats, config)
    frame = pd.DataFrame({s.column: [s.value] for s in stats})
    result = _run_suite(context, "statistics", frame, suite)
    by_key = {(str(_meta(r).get("scope")), str(_meta(r).get("check"))): r for r in result.results}
    for stat in stats:
        stat.severity = "warning" if _demoted(stat, config) else "error"
        outcome = by_key.get((stat.scope, stat.check))
        info = (outcome.exception_info or {}) if outcome is not None else {}
        if outcome is None or info.get("raised_exception"):
            stat.success, stat.severity, stat.unevaluated = False, "error", _exception_type(info)
        else:
            stat.success = bool(outcome.success)
    return _SuiteOutcome([], [], json_safe(dict(result.statistics)), [])


def _build_data_docs(
    context: AbstractDataContext, docs_dir: Path, refs: Mapping[str, _RowRefs | None]
) -> tuple[str, str]:
    """Render the Data Docs from the stored results, reduced to the allowlist.

    GX's own rendering of a SUMMARY result shows ``partial_unexpected_list`` (row values); the results here have
    none (``exclude_unexpected_values``), and every result is rebuilt from counts, source rows and a numeric
    observed value before rendering, so no row text can reach the HTML (exception messages included).

    Returns:
        The index page and "", or "" and a warning line when the site could not be built.
    """
    store = context.validation_results_store
    try:
        for key in store.list_keys():
            result = store.get(key)
            store.set(key, _without_row_values(result, refs.get(str(result.suite_name))))
        context.build_data_docs(site_names=[DATA_DOCS_SITE])
    except Exception as exc:  # noqa: BLE001 - the docs are a by-product; the checks' outcome stands without them
        return "", f"data_docs: the GX Data Docs could not be built ({type(exc).__name__})"
    index = docs_dir / "index.html"
    if not index.is_file():  # pragma: no cover - GX always writes it
        return "", f"data_docs: GX wrote no index page at {index}"
    log.info("GX Data Docs: %s", index)
    return str(index), ""


def _without_row_values(result: ExpectationSuiteValidationResult, refs: _RowRefs | None) -> Any:
    """A copy of the result with only counts, source rows and numeric observed values in each expectation result."""
    clean = copy.deepcopy(result)
    for r in clean.results:
        raw = dict(r.result or {})
        kept: dict[str, Any] = {k: raw[k] for k in _DOCS_FIELDS if k in raw}
        if "partial_unexpected_index_list" in kept:
            positions = [int(i) for i in kept["partial_unexpected_index_list"] if isinstance(i, (int, np.integer))]
            kept["partial_unexpected_index_list"] = refs.refs(positions) if refs is not None else []
        observed = raw.get("observed_value")
        check = _meta(r).get("check")
        if isinstance(observed, (int, float, np.integer, np.floating)) and not isinstance(observed, bool):
            kept["observed_value"] = json_safe(observed)
        elif check in _SAFE_OBSERVED and observed is not None:
            kept["observed_value"] = json_safe(observed)
        details = raw.get("details") or {}
        if check == "columns" and details.get("mismatched"):
            kept["details"] = {"mismatched": json_safe(details["mismatched"])}
        r.result = json_safe(kept)
        info = r.exception_info or {}
        if info.get("raised_exception"):
            r.exception_info = {
                "raised_exception": True,
                "exception_message": f"{_exception_type(info)} (message withheld: it may quote row values)",
                "exception_traceback": None,
            }
    return clean


# --- statistics ----------------------------------------------------------------------------------


def _frame_numbers(frame: pd.DataFrame, threshold: float) -> tuple[dict[str, Any], tuple[int, np.ndarray] | None]:
    """Counts, and the conflicting pairs (``None`` when they cannot be computed; see _conflict_skip_reason)."""
    conflicts = None if _conflict_skip_reason(frame) else conflicting_pairs(frame)
    return _counts(frame, threshold), conflicts


def _statistics(
    frame: pd.DataFrame,
    refs: _RowRefs,
    counts: Mapping[str, Any],
    conflicts: tuple[int, np.ndarray] | None,
    config: ValidateConfig,
    info: Mapping[str, Any],
    duplicates: int,
) -> tuple[list[_Statistic], list[SkippedCheck]]:
    """The dataset-level statistics of the snapshot (long documents apart: they wait for the tokenizer)."""
    rows = len(frame)
    stats: list[_Statistic] = [_max_rows_statistic(rows, config)]
    skipped: list[SkippedCheck] = []

    def skip(check: str, column: str, reason: str) -> None:
        skipped.append(SkippedCheck(check, _STATISTIC_TYPE, column, reason))

    if "query" not in frame.columns:
        skip(CHECK_MIN_QUERIES, "distinct_queries", "column 'query' is missing")
    elif rows == 0:
        skip(CHECK_MIN_QUERIES, "distinct_queries", "no rows")
    else:
        queries = int(counts["queries"])
        stats.append(
            _Statistic(
                CHECK_MIN_QUERIES,
                "distinct_queries",
                queries,
                min_value=config.min_queries,
                fact=f"{queries} distinct queries (case and whitespace ignored)",
                limit_fail=f"need at least {config.min_queries}",
            )
        )

    threshold = config.relevance_threshold
    positives, negatives = int(counts["positives"]), int(counts["negatives"])
    if "label" not in frame.columns:
        skip(CHECK_POSITIVE_FRACTION, "positive_fraction", "column 'label' is missing")
    elif not _is_numeric(frame["label"].dtype):
        skip(CHECK_POSITIVE_FRACTION, "positive_fraction", "column 'label' is not numeric")
    elif positives == 0 or negatives == 0:
        skip(CHECK_POSITIVE_FRACTION, "positive_fraction", "only one class present (label_has_positive/negative)")
    else:
        fraction = float(counts["positive_fraction"])
        bounds = f"[{_pct(config.min_positive_fraction)}, {_pct(config.max_positive_fraction)}]"
        stats.append(
            _Statistic(
                CHECK_POSITIVE_FRACTION,
                "positive_fraction",
                fraction,
                min_value=config.min_positive_fraction,
                max_value=config.max_positive_fraction,
                fact=f"{_pct(fraction)} of {positives + negatives} labeled pairs are relevant (label >= {threshold})",
                limit_fail=f"outside {bounds}",
                limit_ok=f"within {bounds}",
            )
        )

    if rows == 0:
        skip(CHECK_CONFLICTING_LABELS, "conflicting_pairs", "no rows")
    else:
        stats += _conflict_statistics(frame, refs, conflicts, scope="pairs", skipped=skipped)

    # The share of *pairs*: a triplets line expands to several pairs, so rows read would overstate it.
    pairs_before = rows + duplicates
    duplicate_fraction = duplicates / pairs_before if pairs_before > 0 else 0.0
    examples = [str(r) for r in (info.get("duplicate_rows") or [])][:ROWS_IN_MESSAGE]
    stats.append(
        _Statistic(
            CHECK_DUPLICATES,
            "duplicate_fraction",
            duplicate_fraction,
            max_value=config.max_duplicate_fraction,
            fact=(
                f"{duplicates} exact duplicate pairs dropped ({_pct(duplicate_fraction)} of {pairs_before} pairs)"
                if duplicates
                else "no exact duplicate pairs dropped"
            ),
            limit_fail=f"more than max_duplicate_fraction {_pct(config.max_duplicate_fraction)}",
            detail=f"e.g. source rows {format_refs(examples)}" if examples else "",
            detail_on_pass=True,
        )
    )
    return stats, skipped


def _conflict_skip_reason(frame: pd.DataFrame) -> str:
    """Why conflicting labels are not looked for ("" when they are): a missing column or text labels."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        return f"column {missing[0]!r} is missing"
    return "" if _is_numeric(frame["label"].dtype) else "column 'label' is not numeric"


def _conflict_statistics(
    frame: pd.DataFrame,
    refs: _RowRefs,
    conflicts: tuple[int, np.ndarray] | None,
    *,
    scope: str,
    skipped: list[SkippedCheck],
) -> list[_Statistic]:
    """The ``conflicting_labels`` statistic of a frame (skipped when a column is missing or labels are text)."""
    column = "conflicting_pairs" if scope == "pairs" else "eval_conflicting_pairs"
    if conflicts is None:
        reason = _conflict_skip_reason(frame) or "not computed"
        skipped.append(SkippedCheck(CHECK_CONFLICTING_LABELS, _STATISTIC_TYPE, column, reason))
        return []
    pairs, positions = conflicts
    shown = refs.refs(positions, ROWS_IN_REPORT)
    return [
        _Statistic(
            CHECK_CONFLICTING_LABELS,
            column,
            pairs,
            max_value=0,
            scope=scope,
            fact=(
                f"{pairs} (query, document) pair(s) with different labels in {len(positions)} rows, "
                f"source rows {format_refs(shown[:ROWS_IN_MESSAGE])}"
                if pairs
                else "no (query, document) pair with different labels"
            ),
            source_rows=shown,
        )
    ]


def conflicting_pairs(frame: pd.DataFrame) -> tuple[int, np.ndarray]:
    """(query, document) pairs (exact text) that carry two or more different labels.

    Vectorised in two passes: rows whose (query, length of document) key is unique cannot repeat a pair, so only
    the rest have their documents hashed (a full factorisation of 1M 500-character documents costs ~2 s, the key
    ~0.1 s). Rows with a null query, document or label take no part (they fail their own checks).

    Returns:
        The number of conflicting pairs, and the frame positions of their rows (ascending).
    """
    empty = np.zeros(0, dtype="int64")
    query, document = frame["query"].astype("string"), frame["document"].astype("string")
    labels = frame["label"].to_numpy(dtype="float64", na_value=np.nan)
    usable = (query.notna() & document.notna()).to_numpy() & ~np.isnan(labels)
    if np.count_nonzero(usable) < 2:
        return 0, empty
    # Whole columns, then positions: taking 1M documents would copy them.
    query_codes = pd.factorize(query)[0].astype("int64")
    lengths = document.str.len().to_numpy(dtype="int64", na_value=0)
    key = query_codes * (int(lengths.max()) + 1) + lengths
    valid = np.flatnonzero(usable)
    candidates = valid[pd.Index(key[valid]).duplicated(keep=False)]
    if len(candidates) < 2:
        return 0, empty
    query_codes = pd.factorize(query.take(candidates))[0].astype("int64")
    document_codes = pd.factorize(document.take(candidates))[0].astype("int64")
    pair = query_codes * (int(document_codes.max()) + 1) + document_codes
    grouped = pd.Series(labels[candidates]).groupby(pair)
    conflict = (grouped.transform("min") != grouped.transform("max")).to_numpy()
    if not conflict.any():
        return 0, empty
    return int(pd.unique(pair[conflict]).size), candidates[conflict]


@dataclass(frozen=True)
class _LengthSample:
    """The pairs whose token length is measured: frame positions, texts (cut), and how many pairs there were."""

    positions: np.ndarray
    queries: list[str]
    documents: list[str]
    population: int


def _load_snapshot(
    path: Path, config: ValidateConfig
) -> tuple[pd.DataFrame, _LengthSample | None, tuple[dict[str, Any], tuple[int, np.ndarray] | None]]:
    """Read the snapshot (RangeIndex: GX reports unexpected rows as its positions); draw the length sample; count."""
    frame = _single_chunk(pd.read_parquet(path).reset_index(drop=True))
    return frame, _length_sample(frame, config), _frame_numbers(frame, config.relevance_threshold)


def _single_chunk(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as one Arrow chunk each (Parquet gives one per row group).

    Arrow's ``take`` on a chunked array concatenates the chunks first, and GX filters the whole frame with a
    boolean mask (a take) several times per column expectation: ~0.6 s of 2 s for 1M ~500-character documents.
    """
    for column in frame.columns:
        array = frame[column].array
        if isinstance(array, pd.arrays.ArrowStringArray):
            chunked = array.__arrow_array__()
            if chunked.num_chunks > 1:
                combined = pd.arrays.ArrowStringArray(chunked.combine_chunks(), dtype=array.dtype)
                frame[column] = pd.Series(combined, index=frame.index, name=column)
    return frame


def _length_sample(frame: pd.DataFrame, config: ValidateConfig) -> _LengthSample | None:
    """Seeded random sample (at most 20,000) of the rows with both texts, texts cut at 32 characters per token."""
    if "query" not in frame.columns or "document" not in frame.columns or frame.empty:
        return None
    valid = np.flatnonzero((frame["query"].notna() & frame["document"].notna()).to_numpy())
    population = len(valid)
    if population == 0:
        return None
    if population > LONG_SAMPLE_ROWS:
        rng = np.random.default_rng(LONG_SAMPLE_SEED)
        valid = np.sort(rng.choice(valid, size=LONG_SAMPLE_ROWS, replace=False))
    cap = CHARS_PER_TOKEN_CAP * config.max_length
    queries = frame["query"].take(valid).astype("string").str.slice(0, cap).tolist()
    documents = frame["document"].take(valid).astype("string").str.slice(0, cap).tolist()
    return _LengthSample(valid, [str(q) for q in queries], [str(d) for d in documents], population)


def _long_statistic(
    frame: pd.DataFrame,
    refs: _RowRefs,
    sample: _LengthSample | None,
    lengths: Future[np.ndarray] | None,
    problem: str,
    config: ValidateConfig,
) -> tuple[_Statistic | None, list[str]]:
    """The ``long_documents`` statistic, from the tokenizer's lengths or the whitespace estimate."""
    if sample is None:
        return None, []
    measured: np.ndarray | None = None
    if lengths is not None:
        try:
            measured = lengths.result(timeout=TOKENIZER_TIMEOUT_S)
        except FutureTimeout:
            problem = f"no result within {TOKENIZER_TIMEOUT_S:.0f} s"
        except Exception as exc:  # noqa: BLE001 - its message may quote text: keep the type only
            problem = f"tokenising failed: {type(exc).__name__}"
    notes: list[str] = []
    if measured is None:
        notes.append(
            f"{CHECK_LONG_DOCUMENTS}: could not use the tokenizer of {config.base_model} ({problem}); "
            "token counts estimated from whitespace-separated words"
        )
        # Words are a lower bound of sub-word tokens; 3 special tokens as in [CLS] q [SEP] d [SEP].
        measured = np.array(
            [len(q.split()) + len(d.split()) + 3 for q, d in zip(sample.queries, sample.documents, strict=True)],
            dtype="int64",
        )
        how = "estimated from whitespace-separated words"
    else:
        how = f"with the tokenizer of {config.base_model}"
    long = measured > config.max_length
    fraction = float(long.mean()) if len(measured) else 0.0
    where = f"{int(long.sum())} of {len(measured)}"
    if len(measured) < sample.population:
        where += f" sampled at random from {sample.population}"
    shown = refs.refs(sample.positions[long], ROWS_IN_REPORT)
    stat = _Statistic(
        CHECK_LONG_DOCUMENTS,
        "long_fraction",
        fraction,
        max_value=config.max_long_fraction,
        fact=f"{_pct(fraction)} of pairs ({where}) are longer than max_length {config.max_length} tokens ({how})",
        limit_fail=f"more than max_long_fraction {_pct(config.max_long_fraction)}",
        detail=f"e.g. source rows {format_refs(shown[:ROWS_IN_MESSAGE])}" if shown else "",
        source_rows=shown,
    )
    log.info("long documents: %s", stat.message())
    return stat, notes


def _tokenizer_or_problem(base_model: str) -> tuple[Any, str]:
    """The base model's tokenizer, or ``None`` and why not (exception type: the message may name a path)."""
    try:
        return _load_tokenizer(base_model), ""
    except Exception as exc:  # noqa: BLE001 - any failure (not installed, offline, no tokenizer) → estimate
        return None, type(exc).__name__


@functools.lru_cache(maxsize=4)
def _load_tokenizer(base_model: str) -> Any:
    """``AutoTokenizer.from_pretrained(resolve_base_model(base_model).load_path)``, cached per process.

    A fast tokenizer's backend is set to neither truncate nor pad (``tokenizer.json`` may ask for both; the
    transformers call resets them per call, :func:`_token_lengths` calls the backend directly).
    """
    from reranker_tasks.train import resolve_base_model

    path = resolve_base_model(base_model).load_path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    backend = _backend(tokenizer)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    return tokenizer


def _backend(tokenizer: Any) -> Any:
    """The Rust ``tokenizers.Tokenizer`` of a fast tokenizer (``None`` for a slow one)."""
    return getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None


def _token_lengths(tokenizer: Any, queries: list[str], documents: list[str]) -> np.ndarray:
    """Length of each tokenised pair, special tokens included, without truncation.

    A fast tokenizer's backend encodes the batch in Rust without the GIL and without building the Python lists of
    ids that the transformers call returns (a third of its cost, all of it holding the GIL).
    """
    backend = _backend(tokenizer)
    if backend is not None:
        encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
        encodings = encode(list(zip(queries, documents, strict=True)), add_special_tokens=True)
        return np.fromiter((len(e) for e in encodings), dtype="int64", count=len(queries))
    encoded = tokenizer(
        queries,
        documents,
        add_special_tokens=True,
        truncation=False,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]
    return np.fromiter((len(ids) for ids in encoded), dtype="int64", count=len(queries))


# --- failure path without loading ------------------------------------------------------------------


def _fail_too_many_rows(
    snapshot_path: Path, rows: int, out_dir: Path, config: ValidateConfig, duplicates: int
) -> NoReturn:
    """``max_rows`` fails before the snapshot is loaded: report it (GX statistics suite and Data Docs included)."""
    stat = _max_rows_statistic(rows, config, detail="the snapshot was not loaded and no other check ran")
    context = _gx_context(out_dir / DATA_DOCS_DIR)
    outcome = _run_statistics(context, [stat], config)
    docs_path, docs_problem = _build_data_docs(context, out_dir / DATA_DOCS_DIR, {})
    counts = {"rows": rows, "queries": 0, "positives": 0, "negatives": 0, "positive_fraction": 0.0}
    _finish(
        snapshot_path=snapshot_path,
        report_path=out_dir / REPORT_FILE,
        config=config,
        columns=[],
        refs=None,
        files=[],
        pairs=None,
        eval_outcome=None,
        eval_path=None,
        eval_counts=None,
        stats=[stat],
        stat_skipped=[],
        stats_outcome=outcome,
        notes=[docs_problem] if docs_problem else [],
        counts=counts,
        duplicates=duplicates,
        docs_path=docs_path,
    )
    raise AssertionError("unreachable: a failed max_rows check raises")  # pragma: no cover


def _unreadable(
    report_path: Path, path: Path, what: str, exc: BaseException, snapshot: Path | None = None
) -> NoReturn:
    # pyarrow's ArrowInvalid is a ValueError; its text names the file, not row contents.
    error = f"{what} unreadable ({type(exc).__name__})"
    write_json_atomic(
        report_path, {"success": False, "snapshot_path": str(snapshot or path), "error": error, "unreadable": str(path)}
    )
    raise DataError(f"validate: cannot read the {what} {path} ({type(exc).__name__})") from exc


def _parquet_rows(path: Path) -> int:
    """Row count from the Parquet footer (no data read)."""
    import pyarrow.pandas_compat  # noqa: F401 - imported here, not by the reading thread
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as handle:
        return int(handle.metadata.num_rows)


# --- report helpers --------------------------------------------------------------------------------


def _report_entry(result: Any, refs: _RowRefs) -> dict[str, Any]:
    """One expectation's result, reduced to an allowlist of fields without row values."""
    config = result.expectation_config
    meta = _meta(result)
    check = str(meta.get("check", config.type))
    raw = dict(result.result or {})
    entry: dict[str, Any] = {
        "check": check,
        "expectation_type": config.type,
        "describe": str(meta.get("describe", "")),
        "column": config.kwargs.get("column"),
        "kwargs": json_safe({k: v for k, v in config.kwargs.items() if k not in ("result_format", "batch_id")}),
        "notes": config.notes,
        "success": bool(result.success),
    }
    for key in _COUNT_FIELDS:
        if key in raw:
            entry[key] = json_safe(raw[key])
    if "unexpected_count" in raw:
        index_list = raw.get("partial_unexpected_index_list") or []
        entry["source_rows"] = refs.refs([i for i in index_list if isinstance(i, (int, np.integer))])
    if check in _SAFE_OBSERVED and "observed_value" in raw:
        entry["observed_value"] = json_safe(raw["observed_value"])
    mismatched = (raw.get("details") or {}).get("mismatched") or {}
    if check == "columns" and mismatched:
        entry["missing_columns"] = sorted(str(c) for c in mismatched.get("missing") or [])
        entry["unexpected_columns"] = sorted(str(c) for c in mismatched.get("unexpected") or [])
    info = result.exception_info or {}
    if info.get("raised_exception"):
        entry["raised_exception"] = True
        entry["exception_type"] = _exception_type(info)
    return entry


def _failure_line(entry: Mapping[str, Any], rows: int, threshold: float = POSITIVE_THRESHOLD) -> str:
    """The one-line, row-text-free description of a failed expectation."""
    head = f"{entry['expectation_type']}({entry['describe']})" if entry["describe"] else entry["expectation_type"]
    check = entry["check"]
    if entry.get("raised_exception"):
        return f"{head}: could not be evaluated ({entry['exception_type']})"
    if check == "columns":
        parts = []
        if entry.get("missing_columns"):
            parts.append(f"missing column(s): {entry['missing_columns']}")
        if entry.get("unexpected_columns"):
            parts.append(f"unexpected column(s): {entry['unexpected_columns']}")
        return f"{entry['expectation_type']}: {'; '.join(parts) or 'columns do not match'}"
    if check == "row_count":
        return f"{head}: {rows} rows, need at least {entry['kwargs'].get('min_value')}"
    if check == "label_numeric" and "unexpected_count" not in entry:
        return f"{head}: column dtype is {entry.get('observed_value')}, not numeric"
    if check == "label_has_positive":
        return f"{head}: no positive label (>= {threshold}) in {rows} rows"
    if check == "label_has_negative":
        return f"{head}: no negative label (< {threshold}) in {rows} rows"
    if "unexpected_count" in entry:
        shown = format_refs(entry.get("source_rows", [])[:ROWS_IN_MESSAGE])
        return (
            f"{head}: {entry['unexpected_count']} of {entry.get('element_count', rows)} rows fail, source rows {shown}"
        )
    return f"{head}: failed"


def _statistic_entry(stat: _Statistic) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "check": stat.check,
        "scope": stat.scope,
        "column": stat.column,
        "value": json_safe(stat.value),
        "min_value": json_safe(stat.min_value),
        "max_value": json_safe(stat.max_value),
        "severity": stat.severity,
        "success": stat.success,
        "message": stat.message(),
    }
    if stat.source_rows:
        entry["source_rows"] = list(stat.source_rows)
    return entry


def _skipped_dicts(skipped: Sequence[SkippedCheck]) -> list[dict[str, str]]:
    return [
        {"check": s.check, "expectation_type": s.expectation_type, "column": s.column, "reason": s.reason}
        for s in skipped
    ]


def _counts(frame: pd.DataFrame, threshold: float) -> dict[str, Any]:
    """Rows, distinct normalised queries, classes and the positive fraction (non-numeric labels count as neither)."""
    counts: dict[str, Any] = {"rows": len(frame), "queries": 0, "positives": 0, "negatives": 0}
    if "query" in frame:
        counts["queries"] = distinct_queries(frame["query"])
    if "label" in frame:
        label = frame["label"]
        if _is_numeric(label.dtype):
            values = label.to_numpy(dtype="float64", na_value=np.nan)
        else:
            values = pd.to_numeric(label.astype("string"), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        counts["positives"] = int(np.count_nonzero(values >= threshold))
        counts["negatives"] = int(np.count_nonzero(values < threshold))
    labeled = counts["positives"] + counts["negatives"]
    counts["positive_fraction"] = counts["positives"] / labeled if labeled else 0.0
    return counts


def distinct_queries(queries: pd.Series) -> int:
    """Distinct queries as the split sees them (``normalise_query``): only the distinct raw texts are normalised."""
    unique = queries.dropna().unique()
    return len({normalise_query(str(q)) for q in unique})


def _row_ids(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """The 1-based source row of each frame position, and how it was obtained (for the report)."""
    if ROW_ID_COLUMN in frame.columns and pd.api.types.is_integer_dtype(frame[ROW_ID_COLUMN].dtype):
        return frame[ROW_ID_COLUMN].to_numpy(dtype="int64"), ROW_ID_COLUMN
    # Not the extract contract; still name rows, by 1-based position in the snapshot.
    return np.arange(1, len(frame) + 1, dtype="int64"), "snapshot position (1-based; no integer source_row)"


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0 else 0


def _dtype(frame: pd.DataFrame, column: str) -> Any:
    return frame[column].dtype if column in frame.columns else None


def _pct(fraction: float) -> str:
    """0.2 → '20%', 0.0123 → '1.23%'."""
    return f"{fraction * 100:.3g}%"


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _is_numeric(dtype: Any) -> bool:
    return dtype is not None and pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _meta(result: Any) -> dict[str, Any]:
    return dict(result.expectation_config.meta or {})


def _exception_type(info: Mapping[str, Any]) -> str:
    """The exception's class name from GX's traceback text (its message may quote row values)."""
    lines = str(info.get("exception_traceback") or "").strip().splitlines()
    if lines:
        match = re.match(r"^([A-Za-z_][\w.]*)(:|$)", lines[-1])
        if match:
            return match.group(1).rsplit(".", 1)[-1]
    return "exception"


def _max_rows_statistic(rows: int, config: ValidateConfig, detail: str | None = None) -> _Statistic:
    """The ``max_rows`` check (read from the Parquet footer before loading, or from the loaded frame)."""
    extra = {"detail": detail} if detail else {}
    return _Statistic(
        CHECK_MAX_ROWS,
        "rows",
        rows,
        max_value=config.max_rows,
        demotable=False,
        fact=f"{rows} rows",
        limit_fail=f"more than max_rows {config.max_rows}",
        **extra,
    )
