"""Dataset-level statistics that GX cannot compute itself, computed with vectorised pandas / Arrow.

Counts (rows, distinct queries, classes), the positive fraction, conflicting labels, dropped duplicates and the
``max_rows`` check, each as a :class:`_Statistic` that the statistics suite then checks with GX. The long-document
share waits for the tokenizer and lives in :mod:`.lengths`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from reranker_tasks.config import ValidateConfig
from reranker_tasks.schema import format_refs, normalise_query
from reranker_tasks.validate.schema import (
    _STATISTIC_TYPE,
    CHECK_CONFLICTING_LABELS,
    CHECK_DUPLICATES,
    CHECK_MAX_ROWS,
    CHECK_MIN_QUERIES,
    CHECK_POSITIVE_FRACTION,
    EVAL_PREFIX,
    REQUIRED_COLUMNS,
    ROWS_IN_MESSAGE,
    ROWS_IN_REPORT,
    SkippedCheck,
    _is_numeric,
    _RowRefs,
)


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


def _demoted(stat: _Statistic, config: ValidateConfig) -> bool:
    """The statistic's check is demotable and named in ``validation_warnings``."""
    return stat.demotable and stat.check in config.validation_warnings


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


def _pct(fraction: float) -> str:
    """0.2 → '20%', 0.0123 → '1.23%'."""
    return f"{fraction * 100:.3g}%"
