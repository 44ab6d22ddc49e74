"""Unit tests of the extract step: source file → immutable Parquet snapshot + manifest.

Spec (module docstring of ``reranker_tasks.extract``): the snapshot holds only ``query``, ``document``,
``label`` and ``source_row`` (1-based data row: CSV header not counted, JSONL line, triplet line); other
columns are dropped and reported; nothing is coerced silently; a broken source is a ``DataError``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reranker_tasks.config import ExtractConfig, load_run_config
from reranker_tasks.errors import ConfigError, DataError, PermanentError
from reranker_tasks.extract import (
    MANIFEST_FILE,
    SNAPSHOT_FILE,
    ExtractResult,
    extract_pairs,
    fingerprint_pairs,
    map_labels,
)
from reranker_tasks.paths import read_json
from reranker_tasks.sources import detect_format

SNAPSHOT_COLUMNS = ["query", "document", "label", "source_row", "source_file"]

ROWS: list[dict[str, Any]] = [
    {"query": "reset password", "document": "Open the profile and reset.", "label": 1.0},
    {"query": "reset password", "document": "Update the credit card.", "label": 0.0},
    {"query": "export invoices", "document": "Billing → Export.", "label": 1.0},
]


# --------------------------------------------------------------------------- helpers


def run(source: Path, tmp_path: Path, source_format: str = "auto") -> tuple[ExtractResult, pd.DataFrame, dict[str, Any]]:
    out_dir = tmp_path / "run" / "extract"
    result = extract_pairs(ExtractConfig(source_path=str(source), source_format=source_format), out_dir)
    snapshot = pd.read_parquet(result.snapshot_path)
    manifest = read_json(out_dir / MANIFEST_FILE)
    return result, snapshot, manifest


def extract_frame(source: Path, tmp_path: Path, source_format: str = "auto") -> pd.DataFrame:
    return run(source, tmp_path, source_format)[1]


def write_csv(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_parquet(path, index=False)
    return path


def csv_text(rows: list[dict[str, Any]] = ROWS) -> str:
    return pd.DataFrame(rows).to_csv(index=False)


# --------------------------------------------------------------------------- the three formats


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "ndjson", "parquet", "pq"])
def test_each_format_gives_the_snapshot(tmp_path: Path, fmt: str) -> None:
    source = tmp_path / f"pairs.{fmt}"
    if fmt == "csv":
        write_csv(source, csv_text())
    elif fmt in ("jsonl", "ndjson"):
        write_jsonl(source, ROWS)
    else:
        write_parquet(source, pd.DataFrame(ROWS))

    result, snapshot, manifest = run(source, tmp_path)

    assert list(snapshot.columns) == SNAPSHOT_COLUMNS
    assert snapshot["query"].tolist() == [r["query"] for r in ROWS]
    assert snapshot["document"].tolist() == [r["document"] for r in ROWS]
    assert snapshot["label"].tolist() == [1.0, 0.0, 1.0]
    assert snapshot["label"].dtype == np.float64
    assert snapshot["source_row"].tolist() == [1, 2, 3]
    assert result.rows_read == 3
    assert result.pairs == 3
    assert result.reused is False
    assert result.dropped_columns == []
    assert result.source_format == {"ndjson": "jsonl", "pq": "parquet"}.get(fmt, fmt)
    assert manifest["rows_read"] == 3
    assert manifest["pairs"] == 3
    assert manifest["dropped_columns"] == []
    assert manifest["columns"] == SNAPSHOT_COLUMNS
    assert manifest["fingerprint"] == result.fingerprint
    assert manifest["source_files"] == [source.name]
    assert Path(result.snapshot_path) == tmp_path / "run" / "extract" / SNAPSHOT_FILE


def test_result_to_dict_is_json_serialisable(tmp_path: Path) -> None:
    result, _, _ = run(write_csv(tmp_path / "p.csv", csv_text()), tmp_path)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["pairs"] == 3
    assert payload["dropped_columns"] == []
    assert payload["reused"] is False


def test_no_temp_files_are_left_in_the_extract_folder(tmp_path: Path) -> None:
    run(write_csv(tmp_path / "p.csv", csv_text()), tmp_path)
    names = sorted(p.name for p in (tmp_path / "run" / "extract").iterdir())
    assert names == [MANIFEST_FILE, SNAPSHOT_FILE]


def test_declared_format_overrides_the_extension(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "pairs.txt", csv_text())
    result, snapshot, _ = run(source, tmp_path, source_format="csv")
    assert result.source_format == "csv"
    assert len(snapshot) == 3


def test_csv_source_row_counts_data_rows_not_lines(tmp_path: Path) -> None:
    # A quoted field spanning two lines is still one data row.
    source = write_csv(tmp_path / "p.csv", 'query,document,label\nq1,"line one\nline two",1\nq2,d2,0\n')
    snapshot = extract_frame(source, tmp_path)
    assert snapshot["source_row"].tolist() == [1, 2]
    assert snapshot["document"].tolist() == ["line one\nline two", "d2"]


def test_csv_with_utf8_bom_keeps_the_query_column(tmp_path: Path) -> None:
    source = tmp_path / "p.csv"
    source.write_bytes("\ufeff".encode() + csv_text().encode())
    result, snapshot, _ = run(source, tmp_path)
    assert list(snapshot.columns) == SNAPSHOT_COLUMNS
    assert result.dropped_columns == []


def test_bundled_sample_extracts(tmp_path: Path) -> None:
    result = extract_pairs(ExtractConfig(), tmp_path / "extract")
    snapshot = pd.read_parquet(result.snapshot_path)
    assert result.source_format == "csv"
    assert result.pairs == result.rows_read == len(snapshot) > 0
    assert snapshot["source_row"].tolist() == list(range(1, len(snapshot) + 1))
    assert snapshot["label"].dtype == np.float64


# --------------------------------------------------------------------------- extra columns


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_extra_columns_are_dropped_and_reported(tmp_path: Path, fmt: str) -> None:
    rows = [{**r, "user_email": f"user{i}@example.com", "agent_note": "SECRET"} for i, r in enumerate(ROWS)]
    source = tmp_path / f"pairs.{fmt}"
    if fmt == "csv":
        write_csv(source, csv_text(rows))
    elif fmt == "jsonl":
        write_jsonl(source, rows)
    else:
        write_parquet(source, pd.DataFrame(rows))

    result, snapshot, manifest = run(source, tmp_path)

    assert list(snapshot.columns) == SNAPSHOT_COLUMNS
    assert result.dropped_columns == ["agent_note", "user_email"]
    assert manifest["dropped_columns"] == ["agent_note", "user_email"]
    assert manifest["columns"] == SNAPSHOT_COLUMNS
    # Never in the snapshot file, not even as a Parquet column of another name.
    raw = Path(result.snapshot_path).read_bytes()
    assert b"example.com" not in raw
    assert b"SECRET" not in raw


def test_missing_required_column_is_left_to_validate(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p.csv", "query,document\nq1,d1\nq2,d2\n")
    result, snapshot, _ = run(source, tmp_path)
    assert list(snapshot.columns) == ["query", "document", "source_row", "source_file"]
    assert result.pairs == 2


# --------------------------------------------------------------------------- triplets


TRIPLETS = [
    {"query": "reset password", "positive_text": "Open the profile.", "negative_texts": ["Billing.", "Logout."]},
    {"query": "export invoices", "positive_text": "Billing → Export.", "negative_texts": ["Profile."]},
    {"query": "sso setup", "positive_text": "Use SAML.", "negative_texts": []},
]


@pytest.mark.parametrize("suffix", ["jsonl", "ndjson"])
def test_triplets_are_detected_and_expanded(tmp_path: Path, suffix: str) -> None:
    source = write_jsonl(tmp_path / f"triplets.{suffix}", TRIPLETS)
    result, snapshot, manifest = run(source, tmp_path)

    assert result.source_format == "triplets"
    assert result.rows_read == 3
    assert result.pairs == 3 + 2 + 1 == len(snapshot)
    assert manifest["pairs"] == 6
    assert list(snapshot.columns) == SNAPSHOT_COLUMNS
    assert snapshot["query"].tolist() == ["reset password"] * 3 + ["export invoices"] * 2 + ["sso setup"]
    assert snapshot["document"].tolist() == [
        "Open the profile.", "Billing.", "Logout.", "Billing → Export.", "Profile.", "Use SAML.",
    ]
    assert snapshot["label"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0, 1.0]
    assert snapshot["label"].dtype == np.float64
    assert snapshot["source_row"].tolist() == [1, 1, 1, 2, 2, 3]


def test_triplets_declared_explicitly(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "t.jsonl", TRIPLETS)
    result, _, _ = run(source, tmp_path, source_format="triplets")
    assert result.source_format == "triplets"
    assert result.pairs == 6


def test_triplet_extra_keys_are_dropped_and_reported(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "t.jsonl", [{**t, "ticket_id": i} for i, t in enumerate(TRIPLETS)])
    result, snapshot, _ = run(source, tmp_path)
    assert result.dropped_columns == ["ticket_id"]
    assert list(snapshot.columns) == SNAPSHOT_COLUMNS


def test_pairs_jsonl_is_not_mistaken_for_triplets(tmp_path: Path) -> None:
    result, _, _ = run(write_jsonl(tmp_path / "p.jsonl", ROWS), tmp_path)
    assert result.source_format == "jsonl"


def test_triplets_with_non_list_negatives_fail(tmp_path: Path) -> None:
    bad = [TRIPLETS[0], {"query": "q", "positive_text": "p", "negative_texts": "just one"}]
    with pytest.raises(DataError, match="negative_texts"):
        run(write_jsonl(tmp_path / "t.jsonl", bad), tmp_path, source_format="triplets")


def test_triplets_with_a_numeric_query_fail(tmp_path: Path) -> None:
    bad = [TRIPLETS[0], {"query": 42, "positive_text": "p", "negative_texts": ["n"]}]
    with pytest.raises(DataError, match="query"):
        run(write_jsonl(tmp_path / "t.jsonl", bad), tmp_path)


def test_declared_triplets_missing_keys_fail(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="negative_texts"):
        run(write_jsonl(tmp_path / "t.jsonl", ROWS), tmp_path, source_format="triplets")


# --------------------------------------------------------------------------- unreadable sources


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        extract_pairs(ExtractConfig(source_path=str(tmp_path / "nope.csv")), tmp_path / "extract")
    assert not (tmp_path / "extract" / MANIFEST_FILE).exists()


def test_a_directory_is_not_a_source(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(DataError, match="not a file"):
        detect_format(tmp_path / "dir.csv", "auto")


@pytest.mark.parametrize("name", ["pairs.txt", "pairs.json", "pairs.xlsx", "pairs"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    source = write_csv(tmp_path / name, csv_text())
    with pytest.raises(DataError, match="source_format"):
        extract_pairs(ExtractConfig(source_path=str(source)), tmp_path / "extract")


def test_data_error_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        extract_pairs(ExtractConfig(source_path=str(tmp_path / "nope.csv")), tmp_path / "extract")


@pytest.mark.parametrize("rows_before", [0, 5, 20_000])
def test_csv_not_utf8_names_the_byte_offset(tmp_path: Path, rows_before: int) -> None:
    head = b"query,document,label\n" + b"q,d,1\n" * rows_before + b"q,caf"
    (tmp_path / "p.csv").write_bytes(head + b"\xe9,1\n")  # Latin-1 'é'
    with pytest.raises(DataError) as info:
        extract_pairs(ExtractConfig(source_path=str(tmp_path / "p.csv")), tmp_path / "extract")
    message = str(info.value)
    assert "UTF-8" in message
    assert f"byte offset {len(head)}" in message, message


@pytest.mark.parametrize("lines_before", [0, 5, 20_000])
def test_jsonl_not_utf8_names_the_byte_offset(tmp_path: Path, lines_before: int) -> None:
    line = b'{"query": "q", "document": "d", "label": 1}\n'
    head = line * lines_before + b'{"query": "caf'
    (tmp_path / "p.jsonl").write_bytes(head + b'\xe9", "document": "d", "label": 1}\n')
    with pytest.raises(DataError) as info:
        extract_pairs(ExtractConfig(source_path=str(tmp_path / "p.jsonl")), tmp_path / "extract")
    message = str(info.value)
    assert "UTF-8" in message
    assert f"byte offset {len(head)}" in message, message


@pytest.mark.parametrize(
    "text",
    [
        # an extra field in a later row
        "query,document,label\nq1,d1,1\nq2,d2,0,extra\n",
        # an extra field in the first data row: pandas would take the first column as the index
        "query,document,label\nq1,d1,1,extra\nq2,d2,0\n",
        # every row one field wider than the header (e.g. an unquoted comma in the query)
        "query,document,label\nhow to, reset,d1,1\nhow to, export,d2,0\n",
    ],
    ids=["later-row", "first-row", "every-row"],
)
def test_ragged_csv_row_is_an_error_never_shifted_columns(tmp_path: Path, text: str) -> None:
    source = write_csv(tmp_path / "p.csv", text)
    try:
        result, snapshot, _ = run(source, tmp_path)
    except DataError:
        return
    pytest.fail(
        "a CSV row with more fields than the header was accepted: "
        f"{snapshot[['query', 'document', 'label']].values.tolist()}"
    )


def test_empty_csv_file(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        run(write_csv(tmp_path / "p.csv", ""), tmp_path)


def test_truncated_jsonl(tmp_path: Path) -> None:
    source = tmp_path / "p.jsonl"
    source.write_text(json.dumps(ROWS[0]) + "\n" + '{"query": "reset", "docu', encoding="utf-8")
    with pytest.raises(DataError, match="jsonl"):
        run(source, tmp_path)
    assert not (tmp_path / "run" / "extract" / MANIFEST_FILE).exists()


def test_truncated_parquet(tmp_path: Path) -> None:
    whole = write_parquet(tmp_path / "whole.parquet", pd.DataFrame(ROWS * 20)).read_bytes()
    source = tmp_path / "p.parquet"
    source.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="parquet"):
        run(source, tmp_path)
    assert not (tmp_path / "run" / "extract" / MANIFEST_FILE).exists()


def test_csv_declared_as_parquet(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p.parquet", csv_text())
    with pytest.raises(DataError):
        run(source, tmp_path)


def test_jsonl_blank_line_keeps_line_numbers(tmp_path: Path) -> None:
    # source_row is the JSONL *line*: a blank line in between must not renumber the rows after it.
    source = tmp_path / "p.jsonl"
    source.write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    snapshot = extract_frame(source, tmp_path)
    assert snapshot["source_row"].tolist() == [1, 3]


# --------------------------------------------------------------------------- no silent coercion


def test_csv_label_text_stays_text(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p.csv", "query,document,label\nq1,d1,1\nq2,d2,yes\nq3,d3,0\n")
    snapshot = extract_frame(source, tmp_path)
    assert not pd.api.types.is_numeric_dtype(snapshot["label"])
    assert snapshot["label"].tolist() == ["1", "yes", "0"]


@pytest.mark.parametrize("word", ["yes", "no", "true", "nan", "NaN", "one", "1,0"])
def test_csv_non_numeric_label_is_not_coerced(tmp_path: Path, word: str) -> None:
    source = write_csv(tmp_path / "p.csv", f'query,document,label\nq1,d1,1\nq2,d2,"{word}"\n')
    snapshot = extract_frame(source, tmp_path)
    assert not pd.api.types.is_numeric_dtype(snapshot["label"]), snapshot["label"].tolist()
    assert snapshot["label"].tolist()[1] == word


def test_csv_numeric_label_text_is_parsed(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p.csv", 'query,document,label\nq1,d1,1\nq2,d2," 0.0 "\nq3,d3,1.0\nq4,d4,0\n')
    snapshot = extract_frame(source, tmp_path)
    assert snapshot["label"].dtype == np.float64
    assert snapshot["label"].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_csv_blank_label_is_null_not_zero(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p.csv", "query,document,label\nq1,d1,1\nq2,d2,\nq3,d3,  \n")
    snapshot = extract_frame(source, tmp_path)
    assert snapshot["label"].dtype == np.float64
    assert snapshot["label"].tolist()[0] == 1.0
    assert snapshot["label"].isna().tolist() == [False, True, True]


@pytest.mark.parametrize("word", ["NA", "null", "NULL", "None", "nan", "N/A", "#N/A"])
def test_csv_null_like_query_stays_text(tmp_path: Path, word: str) -> None:
    source = write_csv(tmp_path / "p.csv", f"query,document,label\n{word},{word},1\nq2,d2,0\n")
    snapshot = extract_frame(source, tmp_path)
    assert snapshot["query"].isna().sum() == 0
    assert snapshot["query"].tolist() == [word, "q2"]
    assert snapshot["document"].tolist() == [word, "d2"]


def test_csv_numeric_looking_query_stays_text(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p.csv", "query,document,label\n00123,1e5,1\nq2,d2,0\n")
    snapshot = extract_frame(source, tmp_path)
    assert snapshot["query"].tolist() == ["00123", "q2"]
    assert snapshot["document"].tolist() == ["1e5", "d2"]


@pytest.mark.parametrize(
    "labels",
    [[True, False], [True, 0], [1, False]],
    ids=["all-bool", "bool-then-int", "int-then-bool"],
)
def test_jsonl_boolean_labels_are_not_coerced(tmp_path: Path, labels: list[Any]) -> None:
    rows = [{"query": f"q{i}", "document": f"d{i}", "label": label} for i, label in enumerate(labels)]
    snapshot = extract_frame(write_jsonl(tmp_path / "p.jsonl", rows), tmp_path)
    assert not pd.api.types.is_numeric_dtype(snapshot["label"]), snapshot["label"].tolist()
    assert not pd.api.types.is_bool_dtype(snapshot["label"])
    bool_positions = [i for i, label in enumerate(labels) if isinstance(label, bool)]
    for i in bool_positions:
        assert snapshot["label"].iloc[i] in ("True", "False", "true", "false")


def test_jsonl_string_labels_are_not_parsed(tmp_path: Path) -> None:
    rows = [{"query": "q1", "document": "d1", "label": "1"}, {"query": "q2", "document": "d2", "label": 0}]
    snapshot = extract_frame(write_jsonl(tmp_path / "p.jsonl", rows), tmp_path)
    assert not pd.api.types.is_numeric_dtype(snapshot["label"])
    assert snapshot["label"].tolist() == ["1", "0"]


def test_jsonl_int_and_null_labels(tmp_path: Path) -> None:
    rows = [
        {"query": "q1", "document": "d1", "label": 1},
        {"query": "q2", "document": "d2", "label": 0.5},
        {"query": "q3", "document": "d3", "label": None},
    ]
    snapshot = extract_frame(write_jsonl(tmp_path / "p.jsonl", rows), tmp_path)
    assert snapshot["label"].dtype == np.float64
    assert snapshot["label"].tolist()[:2] == [1.0, 0.5]
    assert pd.isna(snapshot["label"].iloc[2])


def test_parquet_boolean_labels_are_not_coerced(tmp_path: Path) -> None:
    frame = pd.DataFrame({"query": ["q1", "q2"], "document": ["d1", "d2"], "label": [True, False]})
    snapshot = extract_frame(write_parquet(tmp_path / "p.parquet", frame), tmp_path)
    assert not pd.api.types.is_numeric_dtype(snapshot["label"])
    assert not pd.api.types.is_bool_dtype(snapshot["label"])


def test_parquet_string_labels_are_not_parsed(tmp_path: Path) -> None:
    frame = pd.DataFrame({"query": ["q1", "q2"], "document": ["d1", "d2"], "label": ["1", "0"]})
    snapshot = extract_frame(write_parquet(tmp_path / "p.parquet", frame), tmp_path)
    assert not pd.api.types.is_numeric_dtype(snapshot["label"])


def test_parquet_int_labels_become_float(tmp_path: Path) -> None:
    frame = pd.DataFrame({"query": ["q1", "q2"], "document": ["d1", "d2"], "label": [1, 0]})
    snapshot = extract_frame(write_parquet(tmp_path / "p.parquet", frame), tmp_path)
    assert snapshot["label"].dtype == np.float64
    assert snapshot["label"].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("column", ["query", "document"])
@pytest.mark.parametrize("value", [42, 4.2, True, ["a"], {"a": 1}], ids=repr)
def test_jsonl_non_text_query_or_document_is_an_error(tmp_path: Path, column: str, value: Any) -> None:
    rows = [dict(ROWS[0]), {**ROWS[1], column: value}, dict(ROWS[2])]
    with pytest.raises(DataError) as info:
        run(write_jsonl(tmp_path / "p.jsonl", rows), tmp_path)
    message = str(info.value)
    assert repr(column) in message
    assert "[2]" in message  # the source row of the bad value


def test_jsonl_all_numeric_queries_are_an_error(tmp_path: Path) -> None:
    rows = [{"query": 1, "document": "d1", "label": 1}, {"query": 2, "document": "d2", "label": 0}]
    with pytest.raises(DataError, match="query"):
        run(write_jsonl(tmp_path / "p.jsonl", rows), tmp_path)


def test_parquet_numeric_query_is_an_error(tmp_path: Path) -> None:
    frame = pd.DataFrame({"query": [1, 2], "document": ["d1", "d2"], "label": [1.0, 0.0]})
    with pytest.raises(DataError, match="query"):
        run(write_parquet(tmp_path / "p.parquet", frame), tmp_path)


def test_jsonl_null_query_stays_null(tmp_path: Path) -> None:
    rows = [dict(ROWS[0]), {**ROWS[1], "query": None}]
    snapshot = extract_frame(write_jsonl(tmp_path / "p.jsonl", rows), tmp_path)
    assert snapshot["query"].isna().tolist() == [False, True]


def test_jsonl_date_like_text_is_not_converted(tmp_path: Path) -> None:
    rows = [{"query": "2026-11-23", "document": "1700000000", "label": 1}, dict(ROWS[1])]
    snapshot = extract_frame(write_jsonl(tmp_path / "p.jsonl", rows), tmp_path)
    assert snapshot["query"].tolist()[0] == "2026-11-23"
    assert snapshot["document"].tolist()[0] == "1700000000"


# --------------------------------------------------------------------------- fingerprint


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["query"] = frame["query"].astype("string")
    frame["document"] = frame["document"].astype("string")
    frame["label"] = frame["label"].astype("float64")
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype="int64")
    return frame


def test_fingerprint_is_independent_of_row_order(tmp_path: Path) -> None:
    forward = run(write_csv(tmp_path / "a.csv", csv_text(ROWS)), tmp_path / "a")[0]
    backward = run(write_csv(tmp_path / "b.csv", csv_text(ROWS[::-1])), tmp_path / "b")[0]
    assert forward.fingerprint == backward.fingerprint


def test_fingerprint_is_independent_of_source_row() -> None:
    frame = _frame(ROWS)
    shifted = frame.assign(source_row=frame["source_row"] + 100)
    assert fingerprint_pairs(frame) == fingerprint_pairs(shifted)


def test_fingerprint_changes_when_one_label_changes(tmp_path: Path) -> None:
    flipped = [dict(r) for r in ROWS]
    flipped[1]["label"] = 1.0
    a = run(write_csv(tmp_path / "a.csv", csv_text(ROWS)), tmp_path / "a")[0]
    b = run(write_csv(tmp_path / "b.csv", csv_text(flipped)), tmp_path / "b")[0]
    assert a.fingerprint != b.fingerprint


def test_fingerprint_is_the_same_across_formats(tmp_path: Path) -> None:
    a = run(write_csv(tmp_path / "a.csv", csv_text(ROWS)), tmp_path / "a")[0]
    b = run(write_jsonl(tmp_path / "b.jsonl", ROWS), tmp_path / "b")[0]
    c = run(write_parquet(tmp_path / "c.parquet", pd.DataFrame(ROWS)), tmp_path / "c")[0]
    assert a.fingerprint == b.fingerprint == c.fingerprint


def test_fingerprint_counts_duplicates() -> None:
    assert fingerprint_pairs(_frame(ROWS)) != fingerprint_pairs(_frame(ROWS + [ROWS[0]]))


def test_fingerprint_distinguishes_query_and_document_swap() -> None:
    swapped = [{"query": r["document"], "document": r["query"], "label": r["label"]} for r in ROWS]
    assert fingerprint_pairs(_frame(ROWS)) != fingerprint_pairs(_frame(swapped))


def test_fingerprint_changes_when_one_document_changes() -> None:
    edited = [dict(r) for r in ROWS]
    edited[2]["document"] = edited[2]["document"] + " "
    assert fingerprint_pairs(_frame(ROWS)) != fingerprint_pairs(_frame(edited))


def test_fingerprint_is_a_sha256_hex() -> None:
    digest = fingerprint_pairs(_frame(ROWS))
    assert len(digest) == 64
    int(digest, 16)


# --------------------------------------------------------------------------- reuse


def test_second_call_reuses_the_snapshot_even_if_the_source_changed(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p.csv", csv_text())
    out_dir = tmp_path / "extract"
    config = ExtractConfig(source_path=str(source))
    first = extract_pairs(config, out_dir)
    snapshot_bytes = Path(first.snapshot_path).read_bytes()

    write_csv(source, csv_text(ROWS + [{"query": "new", "document": "new doc", "label": 1.0}]))
    second = extract_pairs(config, out_dir)

    assert first.reused is False
    assert second.reused is True
    assert second.fingerprint == first.fingerprint
    assert second.pairs == first.pairs == 3
    assert second.snapshot_path == first.snapshot_path
    assert Path(second.snapshot_path).read_bytes() == snapshot_bytes


def test_reuse_even_if_the_source_is_gone(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "p.csv", csv_text())
    out_dir = tmp_path / "extract"
    config = ExtractConfig(source_path=str(source))
    first = extract_pairs(config, out_dir)
    source.unlink()
    second = extract_pairs(config, out_dir)
    assert second.reused is True
    assert second.to_dict() == {**first.to_dict(), "reused": True}


def test_a_reused_snapshot_is_named_where_it_is_now(tmp_path: Path) -> None:
    """A retry on another worker gets the folder's files (from the artifacts store) at another path: the result
    names that path, not the one the earlier try recorded in its manifest."""
    import shutil

    source = write_csv(tmp_path / "p.csv", csv_text())
    config = ExtractConfig(source_path=str(source))
    first = extract_pairs(config, tmp_path / "worker-a" / "extract")
    moved = tmp_path / "worker-b" / "extract"
    shutil.copytree(tmp_path / "worker-a" / "extract", moved)
    shutil.rmtree(tmp_path / "worker-a")
    second = extract_pairs(config, moved)
    assert second.reused is True and second.fingerprint == first.fingerprint
    assert second.snapshot_path == str(moved / SNAPSHOT_FILE) and Path(second.snapshot_path).is_file()


def test_incomplete_snapshot_without_manifest_is_rewritten(tmp_path: Path) -> None:
    # The manifest is written last: a snapshot without it is from a killed attempt, not reused.
    out_dir = tmp_path / "extract"
    out_dir.mkdir()
    (out_dir / SNAPSHOT_FILE).write_bytes(b"half a parquet file")
    source = write_csv(tmp_path / "p.csv", csv_text())
    result = extract_pairs(ExtractConfig(source_path=str(source)), out_dir)
    assert result.reused is False
    assert len(pd.read_parquet(result.snapshot_path)) == 3


# --------------------------------------------------------------------------- column and label mapping, duplicates


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_columns_are_mapped_and_unmapped_ones_dropped(tmp_path) -> None:
    source = _csv(tmp_path / "p.csv", "qtext,atext,rel,user_email,qid\nq1,d1,1,a@b.c,7\nq2,d2,0,c@d.e,8\n")
    config = ExtractConfig(source_path=str(source), columns={"query": "qtext", "document": "atext", "label": "rel",
                                                             "query_id": "qid"})
    result = extract_pairs(config, tmp_path / "x")
    snapshot = pd.read_parquet(result.snapshot_path)
    assert list(snapshot.columns) == ["query", "document", "label", "query_id", "source_row", "source_file"]
    assert snapshot["query_id"].tolist() == ["7", "8"]
    assert result.dropped_columns == ["user_email"]


def test_strict_columns_fails_on_an_unmapped_column(tmp_path) -> None:
    source = _csv(tmp_path / "p.csv", "query,document,label,user_email\nq1,d1,1,a@b.c\n")
    with pytest.raises(DataError, match=r"strict_columns: .*\['user_email'\]"):
        extract_pairs(ExtractConfig(source_path=str(source), strict_columns=True), tmp_path / "x")


def test_a_mapped_column_missing_from_the_source_is_named(tmp_path) -> None:
    source = _csv(tmp_path / "p.csv", "query,document,label\nq1,d1,1\n")
    with pytest.raises(DataError, match=r"'relevance' \(for 'label'\) not in the source"):
        extract_pairs(ExtractConfig(source_path=str(source), columns={"label": "relevance"}), tmp_path / "x")


def test_graded_labels_scale_into_unit_interval() -> None:
    mapped = map_labels(pd.Series(["0", "1", "2", "3"]), {"scale": [0, 3]}, parse_text=True)
    assert mapped.tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])


def test_categorical_and_boolean_labels_map_by_declared_values() -> None:
    rule = {"values": {"relevant": 1, "Irrelevant": 0, "true": 1, "false": 0, "2": 1}}
    assert map_labels(pd.Series(["Relevant", " irrelevant "]), rule, parse_text=True).tolist() == [1.0, 0.0]
    assert map_labels(pd.Series([True, False]), rule, parse_text=False).tolist() == [1.0, 0.0]
    assert map_labels(pd.Series([2, 2.0]), rule, parse_text=False).tolist() == [1.0, 1.0]


def test_an_unmapped_label_stays_text_for_validation_to_report() -> None:
    mapped = map_labels(pd.Series(["relevant", "maybe"]), {"values": {"relevant": 1}}, parse_text=True)
    assert not pd.api.types.is_numeric_dtype(mapped.dtype)
    assert mapped.tolist() == ["relevant", "maybe"]


@pytest.mark.parametrize(
    "label_map",
    [{"scale": [3, 0]}, {"scale": [0]}, {"values": {}}, {"values": {"a": 2}}, {"values": {"a": True}}, {"x": 1}],
)
def test_bad_label_maps_are_rejected(label_map) -> None:
    with pytest.raises(ConfigError, match="label_map"):
        load_run_config({"label_map": label_map})


def test_mapping_is_part_of_the_fingerprint() -> None:
    frame = pd.DataFrame({"query": ["q"], "document": ["d"], "label": [1.0]})
    plain = fingerprint_pairs(frame, ExtractConfig())
    mapped = fingerprint_pairs(frame, ExtractConfig(label_map={"scale": [0, 3]}))
    assert plain != mapped


def test_exact_duplicates_are_dropped_and_counted(tmp_path) -> None:
    source = _csv(tmp_path / "p.csv", "query,document,label\nq,d,1\nq,d,1\nq,e,0\nq,d,0\n")
    result = extract_pairs(ExtractConfig(source_path=str(source)), tmp_path / "x")
    assert (result.rows_read, result.pairs, result.duplicates_dropped) == (4, 3, 1)
    assert result.duplicate_rows == ["2"]  # the conflicting (q, d, 0) stays for validation to report
