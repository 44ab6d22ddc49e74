"""Validate step: a Great Expectations suite over the extract snapshot.

The suite is built in code (GX 1.x ``ExpectationSuite``) and run in an ephemeral context on a
whole-dataframe pandas batch. It checks what training needs and what GX lets through by default:

* the columns ``query``, ``document``, ``label`` and ``source_row`` are there, and nothing else;
* at least ``min_rows`` rows (GX passes every column expectation on a zero-row frame);
* ``label`` is numeric, not null (NaN is null) and within [0, 1] (GX skips nulls in ``between``);
* both classes are present: some label >= 0.5 and some label < 0.5;
* ``query`` and ``document`` are not null and not blank (GX skips nulls in regex expectations).

Expectations that depend on a missing column, or on a label column that is not numeric, are left out
(and listed as skipped in the report), so a failure reads as its cause and not as a cascade.

Privacy: failure lines, the summary and the JSON report name expectations, columns, counts and 1-based
source row numbers (the snapshot's ``source_row``), never a query, document or label value. GX puts raw
values in its results (``partial_unexpected_list``, the index list, observed min/max), so the report is
built from an allowlist of fields rather than from ``describe_dict()``.
"""

from __future__ import annotations

import logging
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reranker_tasks.config import ValidateConfig
from reranker_tasks.errors import DataError, DataValidationFailed
from reranker_tasks.paths import write_json_atomic

if TYPE_CHECKING:
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.expectations.expectation import Expectation

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("query", "document", "label")
ROW_ID_COLUMN = "source_row"
EXPECTED_COLUMNS = (*REQUIRED_COLUMNS, ROW_ID_COLUMN)
REPORT_FILE = "validation.json"
SUITE_NAME = "labeled_pairs"
POSITIVE_THRESHOLD = 0.5
#: Source rows named per failure in the message / kept per expectation in the report.
ROWS_IN_MESSAGE = 5
ROWS_IN_REPORT = 20

#: A label written as text must read as a number (the extract step strips CSV labels the same way).
NUMBER_TEXT = r"^\s*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?\s*$"
BLANK_TEXT = r"^\s*$"
NUMERIC_TYPES = ("float64", "float32", "int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8")
#: Checks that only make sense on a numeric label column.
_NUMERIC_LABEL_CHECKS = frozenset({"label_in_range", "label_has_positive", "label_has_negative"})

#: Result fields that hold counts only; everything else GX returns may carry row values.
_COUNT_FIELDS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count", "missing_percent")
#: Checks whose ``observed_value`` is safe to keep (a row count, column names, a dtype name).
_SAFE_OBSERVED = frozenset({"columns", "row_count", "label_numeric"})


@dataclass(frozen=True)
class ValidationSummary:
    """Outcome of the validate step (small: goes to XCom via :meth:`to_dict`).

    Attributes:
        success: every expectation passed.
        rows: rows in the snapshot.
        queries: distinct non-null queries (0 when the column is missing).
        positives: rows with a numeric label >= 0.5.
        negatives: rows with a numeric label < 0.5.
        evaluated_expectations: expectations that ran (skipped ones not counted).
        failed: one line per failed expectation, as in the raised error.
        report_path: the JSON report.
    """

    success: bool
    rows: int
    queries: int
    positives: int
    negatives: int
    evaluated_expectations: int
    failed: tuple[str, ...]
    report_path: str

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
        }


@dataclass(frozen=True)
class SkippedCheck:
    """A check left out of the suite because the column it needs is missing or not numeric."""

    check: str
    expectation_type: str
    column: str
    reason: str


def pairs_suite(
    columns: Sequence[str], label_dtype: Any, config: ValidateConfig
) -> tuple[gx.ExpectationSuite, list[SkippedCheck]]:
    """Build the expectation suite for a snapshot with the given columns.

    Each expectation carries ``meta["check"]`` (a stable short name), ``meta["describe"]`` (the readable
    argument summary used in failure lines) and ``notes`` (why it exists).

    Args:
        columns: the snapshot's columns.
        label_dtype: dtype of the ``label`` column (``None`` when it is missing).
        config: thresholds.

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

    add(
        ExpectTableColumnsToMatchSet,
        "columns",
        ", ".join(EXPECTED_COLUMNS),
        "The snapshot holds exactly query, document, label and source_row.",
        column_set=list(EXPECTED_COLUMNS),
        exact_match=True,
    )
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
        f"label, max >= {POSITIVE_THRESHOLD}",
        "At least one positive pair (label >= 0.5).",
        needs="label",
        column="label",
        min_value=POSITIVE_THRESHOLD,
    )
    add(
        ExpectColumnMinToBeBetween,
        "label_has_negative",
        f"label, min < {POSITIVE_THRESHOLD}",
        "At least one negative pair (label < 0.5).",
        needs="label",
        column="label",
        max_value=POSITIVE_THRESHOLD,
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
    return gx.ExpectationSuite(name=SUITE_NAME, expectations=expectations), skipped


def validate_pairs(snapshot_path: Path, out_dir: Path, config: ValidateConfig) -> ValidationSummary:
    """Validate the snapshot; always write ``out_dir/validation.json``; raise on failure.

    Args:
        snapshot_path: the extract step's Parquet snapshot (``query``, ``document``, ``label`` as present,
            plus ``source_row``).
        out_dir: the run's ``validate`` folder (created if needed).
        config: thresholds of the suite.

    Returns:
        The summary of a successful validation.

    Raises:
        DataValidationFailed: one or more expectations failed; ``failures`` holds one line per failed
            expectation (expectation, column, counts, up to 5 source rows), never row text.
        DataError: the snapshot cannot be read.
    """
    report_path = out_dir / REPORT_FILE
    try:
        frame = pd.read_parquet(snapshot_path)
    except (OSError, ValueError) as exc:
        # pyarrow's ArrowInvalid is a ValueError; its text names the file, not row contents.
        error = f"snapshot unreadable ({type(exc).__name__})"
        write_json_atomic(report_path, {"success": False, "snapshot_path": str(snapshot_path), "error": error})
        raise DataError(f"validate: cannot read the snapshot {snapshot_path} ({type(exc).__name__})") from exc

    frame = frame.reset_index(drop=True)  # GX reports unexpected rows as positions of this RangeIndex
    columns = [str(c) for c in frame.columns]
    suite, skipped = pairs_suite(columns, frame["label"].dtype if "label" in frame else None, config)
    row_ids, row_numbering = _row_ids(frame)
    result = _run_suite(frame, suite)

    order = {e.meta["check"]: i for i, e in enumerate(suite.expectations) if e.meta}
    results = sorted(result.results, key=lambda r: order.get(_meta(r).get("check", ""), len(order)))
    entries = [_report_entry(r, row_ids) for r in results]
    failures = [_failure_line(entry, len(frame)) for entry in entries if not entry["success"]]

    counts = _counts(frame)
    statistics = _json_safe(dict(result.statistics))
    evaluated = int(statistics.get("evaluated_expectations", len(entries)))
    success = bool(result.success) and not failures
    summary = ValidationSummary(
        success=success,
        rows=counts["rows"],
        queries=counts["queries"],
        positives=counts["positives"],
        negatives=counts["negatives"],
        evaluated_expectations=evaluated,
        failed=tuple(failures),
        report_path=str(report_path),
    )
    report = {
        "suite": SUITE_NAME,
        "success": success,
        "snapshot_path": str(snapshot_path),
        "config": {"min_rows": config.min_rows},
        "columns": columns,
        "row_numbers": row_numbering,
        "statistics": statistics,
        "summary": summary.to_dict(),
        "expectations": entries,
        "skipped": [
            {"check": s.check, "expectation_type": s.expectation_type, "column": s.column, "reason": s.reason}
            for s in skipped
        ],
        "failed": failures,
    }
    write_json_atomic(report_path, report)
    if not success:
        log.error("validation failed: %d of %d expectation(s); report %s", len(failures), evaluated, report_path)
        raise DataValidationFailed(failures, str(report_path))
    log.info(
        "validation passed: %d expectations on %d rows (%d queries, %d positive, %d negative); report %s",
        evaluated,
        summary.rows,
        summary.queries,
        summary.positives,
        summary.negatives,
        report_path,
    )
    return summary


def _run_suite(frame: pd.DataFrame, suite: gx.ExpectationSuite) -> ExpectationSuiteValidationResult:
    """Run the suite on a whole-dataframe batch in a fresh ephemeral context, progress bars off."""
    _quiet_gx()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = (
        context.data_sources.add_pandas("snapshot")
        .add_dataframe_asset("pairs")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    # SUMMARY keeps GX from materialising every unexpected value (COMPLETE would). Row ids: GX's
    # ``unexpected_index_column_names`` builds its index list with a per-row ``.at`` loop over *all*
    # unexpected rows before slicing (~50 s for 1M failing rows), so GX reports 0-based positions of
    # the RangeIndex instead (one ``list(index)``) and _row_numbers maps them to source_row.
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": ROWS_IN_REPORT}
    return batch.validate(suite, result_format=result_format)


def _quiet_gx() -> None:
    """Import GX with its noise off: INFO lines per context, DeprecationWarnings from its own imports."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations  # noqa: F401
    # This module pins its own logger to INFO ("Created temporary directory ... for ephemeral docs site").
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)


def _report_entry(result: Any, row_ids: np.ndarray) -> dict[str, Any]:
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
        "kwargs": _json_safe({k: v for k, v in config.kwargs.items() if k not in ("result_format", "batch_id")}),
        "notes": config.notes,
        "success": bool(result.success),
    }
    for key in _COUNT_FIELDS:
        if key in raw:
            entry[key] = _json_safe(raw[key])
    if "unexpected_count" in raw:
        entry["source_rows"] = _row_numbers(raw.get("partial_unexpected_index_list") or [], row_ids)
    if check in _SAFE_OBSERVED and "observed_value" in raw:
        entry["observed_value"] = _json_safe(raw["observed_value"])
    mismatched = (raw.get("details") or {}).get("mismatched") or {}
    if check == "columns" and mismatched:
        entry["missing_columns"] = sorted(str(c) for c in mismatched.get("missing") or [])
        entry["unexpected_columns"] = sorted(str(c) for c in mismatched.get("unexpected") or [])
    info = result.exception_info or {}
    if info.get("raised_exception"):
        entry["raised_exception"] = True
        entry["exception_type"] = _exception_type(info)
    return entry


def _failure_line(entry: Mapping[str, Any], rows: int) -> str:
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
        return f"{head}: no positive label (>= {POSITIVE_THRESHOLD}) in {rows} rows"
    if check == "label_has_negative":
        return f"{head}: no negative label (< {POSITIVE_THRESHOLD}) in {rows} rows"
    if "unexpected_count" in entry:
        shown = entry.get("source_rows", [])[:ROWS_IN_MESSAGE]
        return (
            f"{head}: {entry['unexpected_count']} of {entry.get('element_count', rows)} rows fail, source rows {shown}"
        )
    return f"{head}: failed"


def _counts(frame: pd.DataFrame) -> dict[str, int]:
    """Row, distinct-query and class counts (vectorised; non-numeric labels count as neither class)."""
    counts = {"rows": len(frame), "queries": 0, "positives": 0, "negatives": 0}
    if "query" in frame:
        counts["queries"] = int(frame["query"].nunique(dropna=True))
    if "label" in frame:
        label = frame["label"]
        if _is_numeric(label.dtype):
            values = label.to_numpy(dtype="float64", na_value=np.nan)
        else:
            values = pd.to_numeric(label.astype("string"), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        counts["positives"] = int(np.count_nonzero(values >= POSITIVE_THRESHOLD))
        counts["negatives"] = int(np.count_nonzero(values < POSITIVE_THRESHOLD))
    return counts


def _row_ids(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """The 1-based source row of each frame position, and how it was obtained (for the report)."""
    if ROW_ID_COLUMN in frame.columns and pd.api.types.is_integer_dtype(frame[ROW_ID_COLUMN].dtype):
        return frame[ROW_ID_COLUMN].to_numpy(dtype="int64"), ROW_ID_COLUMN
    # Not the extract contract; still name rows, by 1-based position in the snapshot.
    return np.arange(1, len(frame) + 1, dtype="int64"), "snapshot position (1-based; no integer source_row)"


def _row_numbers(index_list: Sequence[Any], row_ids: np.ndarray) -> list[int]:
    """Source rows of GX's partial index list (0-based positions of the frame's RangeIndex)."""
    positions = [int(i) for i in index_list[:ROWS_IN_REPORT] if isinstance(i, (int, np.integer))]
    return [int(row_ids[i]) for i in positions if 0 <= i < len(row_ids)]


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


def _json_safe(value: Any) -> Any:
    """numpy scalars → Python; NaN/inf → None; containers recursively."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)
