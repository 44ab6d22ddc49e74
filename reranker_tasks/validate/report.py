"""The step's outcome: the summary, each expectation's report entry and failure line, and the JSON report.

Everything the report keeps comes from an allowlist of result fields (counts, source rows, safe observed values),
so no query, document or label text reaches a failure line, the summary or ``validation.json``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reranker_tasks.config import ValidateConfig
from reranker_tasks.errors import DataValidationFailed
from reranker_tasks.paths import json_safe, write_json_atomic
from reranker_tasks.schema import format_refs
from reranker_tasks.validate.context import _exception_type, _meta
from reranker_tasks.validate.schema import (
    CHECK_DUPLICATES,
    CHECK_LONG_DOCUMENTS,
    EVAL_PREFIX,
    POSITIVE_THRESHOLD,
    ROWS_IN_MESSAGE,
    SUITE_NAME,
    SkippedCheck,
    _RowRefs,
)
from reranker_tasks.validate.statistics import _Statistic

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult

# The package's logger, as when this was one module: log settings and filters that name it keep working.
log = logging.getLogger("reranker_tasks.validate")

#: Result fields that hold counts only; everything else GX returns may carry row values.
_COUNT_FIELDS = ("element_count", "unexpected_count", "unexpected_percent", "missing_count", "missing_percent")
#: Checks whose ``observed_value`` is safe to keep (a row count, column names, a dtype name).
_SAFE_OBSERVED = frozenset({"columns", "row_count", "label_numeric"})


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


@dataclass
class _SuiteOutcome:
    """One GX suite's result, reduced for the report."""

    entries: list[dict[str, Any]]
    failures: list[str]
    statistics: dict[str, Any]
    skipped: list[SkippedCheck]


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


def _outcome(
    result: ExpectationSuiteValidationResult,
    order: Mapping[str, int],
    skipped: list[SkippedCheck],
    refs: _RowRefs,
    rows: int,
    config: ValidateConfig,
    prefix: str,
) -> _SuiteOutcome:
    """The suite's entries and failure lines in suite order (``order``: :func:`.suites.check_order`)."""
    results = sorted(result.results, key=lambda r: order.get(_meta(r).get("check", ""), len(order)))
    entries = [_report_entry(r, refs) for r in results]
    failures = [prefix + _failure_line(e, rows, config.relevance_threshold) for e in entries if not e["success"]]
    return _SuiteOutcome(entries, failures, json_safe(dict(result.statistics)), skipped)


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


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
