"""Unit tests of the validate step: the GX suite on small snapshots written to Parquet.

Row text is distinctive (``SECRET-ROW-TEXT``) so that every failing case can assert that neither the
error message nor the JSON report quotes a row. ``source_row`` starts at 101 (not at the frame
position) so the tests also prove that the reported rows come from ``source_row``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reranker_tasks.config import ValidateConfig
from reranker_tasks.errors import DataError, DataValidationFailed, PermanentError
from reranker_tasks.validate import REPORT_FILE, ValidationSummary, pairs_suite, validate_pairs

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


def run_failing(tmp_path: Path, frame: pd.DataFrame, min_rows: int = 50) -> tuple[DataValidationFailed, dict[str, Any]]:
    """Validate a bad frame; return the raised error and the report, after the privacy checks."""
    out_dir = tmp_path / "run" / "validate"
    with pytest.raises(DataValidationFailed) as info:
        validate_pairs(write_snapshot(tmp_path, frame), out_dir, ValidateConfig(min_rows=min_rows))
    error = info.value
    report_path = out_dir / REPORT_FILE
    assert error.report_path == str(report_path)
    report_text = report_path.read_text(encoding="utf-8")
    assert_no_row_text(str(error), report_text, json.dumps(error.failures))
    report = json.loads(report_text)
    assert report["success"] is False
    assert report["failed"] == error.failures
    return error, report


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

    assert summary == ValidationSummary(
        success=True,
        rows=N,
        queries=12,
        positives=N // 2,
        negatives=N // 2,
        evaluated_expectations=11,
        failed=(),
        report_path=str(out_dir / REPORT_FILE),
    )
    assert json.loads(json.dumps(summary.to_dict())) == {
        "success": True,
        "rows": N,
        "queries": 12,
        "positives": N // 2,
        "negatives": N // 2,
        "evaluated_expectations": 11,
        "failed": [],
        "report_path": str(out_dir / REPORT_FILE),
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
    # Atomic write: no temp file left beside the report.
    assert sorted(p.name for p in out_dir.iterdir()) == [REPORT_FILE]


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
