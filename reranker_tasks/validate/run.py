"""The validate step's entry point, :func:`validate_pairs`: read the snapshot, run the suites, report.

The orchestration lives here: the footer row count before loading, the helper threads (reading and counting
beside the GX import, tokenising beside the GX suites), the order the suites run in, and the failure paths that
report without loading (too many rows, an unreadable file).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np
import pandas as pd

from reranker_tasks.config import ValidateConfig
from reranker_tasks.errors import DataError
from reranker_tasks.paths import json_safe, write_json_atomic
from reranker_tasks.validate.context import _exception_type, _gx_context, _meta, _quiet_gx, _run_suite
from reranker_tasks.validate.docs import _build_data_docs
from reranker_tasks.validate.lengths import (
    _length_sample,
    _LengthSample,
    _long_statistic,
    _token_lengths,
    _tokenizer_or_problem,
)
from reranker_tasks.validate.report import ValidationSummary, _finish, _outcome, _SuiteOutcome
from reranker_tasks.validate.schema import (
    _STATISTIC_TYPE,
    CHECK_LONG_DOCUMENTS,
    DATA_DOCS_DIR,
    EVAL_PREFIX,
    EVAL_SUITE_NAME,
    REPORT_FILE,
    SUITE_NAME,
    SkippedCheck,
    _RowRefs,
)
from reranker_tasks.validate.statistics import (
    _conflict_skip_reason,
    _conflict_statistics,
    _counts,
    _demoted,
    _frame_numbers,
    _max_rows_statistic,
    _Statistic,
    _statistics,
    conflicting_pairs,
)
from reranker_tasks.validate.suites import check_order, pairs_suite, statistics_suite

if TYPE_CHECKING:
    from great_expectations.data_context import AbstractDataContext


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
    order = check_order(suite)
    pairs = _outcome(_run_suite(context, "snapshot", frame, suite), order, skipped, refs, len(frame), config, "")
    eval_outcome: _SuiteOutcome | None = None
    if evaluation is not None and eval_refs is not None:
        eval_suite, eval_skipped = pairs_suite(
            [str(c) for c in evaluation.columns], _dtype(evaluation, "label"), config, eval_set=True
        )
        eval_order = check_order(eval_suite)
        eval_result = _run_suite(context, "eval_set", evaluation, eval_suite)
        eval_outcome = _outcome(eval_result, eval_order, eval_skipped, eval_refs, len(evaluation), config, EVAL_PREFIX)

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


def _names(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, (list, tuple)) else []


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0 else 0


def _dtype(frame: pd.DataFrame, column: str) -> Any:
    return frame[column].dtype if column in frame.columns else None
