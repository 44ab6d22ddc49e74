"""Unit tests of :mod:`reranker_tasks.sources`: files, folders, fsspec URIs, SQL, datasets on disk.

Spec (module docstring of ``reranker_tasks.sources``): every raw frame has ``source_row`` (1-based) and
``source_file`` (index into ``files``); a folder is one format and one set of columns; credentials (URI
userinfo, database password) and SQL text never appear in a description, a file name or an error; an
unreachable database is :class:`SourceUnavailable` (retried), everything else wrong is a ``DataError``.

The PostgreSQL tests run against a real server (fixture ``postgres_url`` of ``tests/pg_server.py``).
"""

from __future__ import annotations

import json
import sqlite3
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest

from reranker_tasks.config import ExtractConfig
from reranker_tasks.errors import DataError, PermanentError, RerankerError
from reranker_tasks.sources import RawSource, SourceUnavailable, read_source
from tests.pg_server import free_port, load_table

ROWS: list[dict[str, Any]] = [
    {"query": "reset password", "document": "Open the profile and reset.", "label": 1.0},
    {"query": "reset password", "document": "Update the credit card.", "label": 0.0},
    {"query": "export invoices", "document": "Billing, then Export.", "label": 1.0},
]
SECRET = "s3cr3t-Pa55word"


def read(source_path: str | Path, **kwargs: Any) -> RawSource:
    return read_source(ExtractConfig(source_path=str(source_path), **kwargs))


def logged(exc: BaseException) -> str:
    """What a task log shows of an error: the whole traceback, chained exceptions included."""
    return "".join(traceback.format_exception(exc))


def data_rows(raw: RawSource) -> list[list[Any]]:
    return raw.frame[["query", "document", "label"]].values.tolist()


def csv_bytes(rows: list[dict[str, Any]] = ROWS, sep: str = ",") -> bytes:
    return pd.DataFrame(rows).to_csv(index=False, sep=sep).encode("utf-8")


def jsonl_bytes(rows: list[dict[str, Any]] = ROWS) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A fresh ``memory://`` folder (the memory filesystem is process-wide), removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex[:12]}"
    yield root
    for path in list(fs.store):
        if path.startswith((root, f"/user:{SECRET}@")):
            fs.store.pop(path, None)
    for path in list(fs.pseudo_dirs):
        if path.startswith((root, f"/user:{SECRET}@")):
            fs.pseudo_dirs.remove(path)


def put(path: str, data: bytes) -> None:
    fsspec.filesystem("memory").pipe(path, data)


# --------------------------------------------------------------------------- TSV


def test_tsv_file_is_read_as_text_with_a_tab_delimiter(tmp_path: Path) -> None:
    rows = [*ROWS, {"query": "q, with comma", "document": 'say "hi"', "label": 0.5}]
    (tmp_path / "p.tsv").write_bytes(csv_bytes(rows, sep="\t"))
    raw = read(tmp_path / "p.tsv")
    assert (raw.fmt, raw.typed, raw.files) == ("tsv", False, ["p.tsv"])
    assert data_rows(raw) == [[r["query"], r["document"], str(r["label"])] for r in rows]
    assert raw.frame["source_row"].tolist() == [1, 2, 3, 4]
    assert raw.description.startswith("TSV file")


def test_tsv_declared_for_another_extension(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_bytes(csv_bytes(sep="\t"))
    assert data_rows(read(tmp_path / "p.txt", source_format="tsv"))[0] == ["reset password", ROWS[0]["document"], "1.0"]


def test_tsv_ragged_row_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "p.tsv").write_bytes(b"query\tdocument\tlabel\nq1\td1\t1\nq2\td2\t0\textra\n")
    expected = r"data row 2 \(line 3\) has 4 fields, the header has 3; quote fields that contain tabs"
    with pytest.raises(DataError, match=expected):
        read(tmp_path / "p.tsv")


def test_tsv_not_utf8_names_the_byte_offset(tmp_path: Path) -> None:
    head = b"query\tdocument\tlabel\nq\tcaf"
    (tmp_path / "p.tsv").write_bytes(head + b"\xe9\t1\n")
    with pytest.raises(DataError, match=f"byte offset {len(head)}"):
        read(tmp_path / "p.tsv")


# --------------------------------------------------------------------------- folders


def test_folder_of_csv_files_in_name_order(tmp_path: Path) -> None:
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "part-b.csv").write_bytes(csv_bytes(ROWS[2:]))
    (folder / "part-a.csv").write_bytes(csv_bytes(ROWS[:2]))
    (folder / "_SUCCESS").write_bytes(b"")
    (folder / ".part-a.csv.crc").write_bytes(b"\x00\xff")
    (folder / "_committed_123").write_bytes(b"{}")
    (folder / "nested").mkdir()
    (folder / "nested" / "more.csv").write_bytes(csv_bytes())  # not recursive

    raw = read(folder)

    assert raw.files == ["part-a.csv", "part-b.csv"]
    assert (raw.fmt, raw.typed) == ("csv", False)
    assert [r[0] for r in data_rows(raw)] == [r["query"] for r in ROWS]
    assert raw.frame["source_file"].tolist() == [0, 0, 1]
    assert raw.frame["source_row"].tolist() == [1, 2, 1]
    assert str(raw.frame["source_file"].dtype) == "int32" and str(raw.frame["source_row"].dtype) == "int64"
    assert raw.description == f"2 CSV files in {folder}"


def test_folder_notes_files_it_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_bytes())
    (tmp_path / "README.md").write_text("about the labels")
    raw = read(tmp_path)
    assert raw.files == ["a.csv"] and any("README.md" in note for note in raw.notes)


def test_folder_column_mismatch_names_the_file_and_the_column(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_bytes())
    (tmp_path / "b.csv").write_bytes(pd.DataFrame(ROWS).drop(columns="label").to_csv(index=False).encode())
    with pytest.raises(DataError) as info:
        read(tmp_path)
    message = str(info.value)
    assert "b.csv" in message and "'label'" in message, message


def test_folder_extra_column_in_a_later_file_is_a_mismatch_too(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_bytes())
    (tmp_path / "b.csv").write_bytes(pd.DataFrame(ROWS).assign(user_email="x@example.com").to_csv(index=False).encode())
    with pytest.raises(DataError, match=r"a\.csv lacks column\(s\) \['user_email'\] that b\.csv has"):
        read(tmp_path)


def test_folder_same_columns_in_another_order_is_fine(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_bytes(ROWS[:1]))
    reordered = pd.DataFrame(ROWS[1:])[["label", "document", "query"]]
    (tmp_path / "b.csv").write_bytes(reordered.to_csv(index=False).encode())
    raw = read(tmp_path)
    assert list(raw.frame.columns[:3]) == ["query", "document", "label"]
    assert data_rows(raw)[2] == ["export invoices", ROWS[2]["document"], "1.0"]


def test_folder_mixing_formats_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_bytes())
    (tmp_path / "b.jsonl").write_bytes(jsonl_bytes())
    with pytest.raises(DataError, match=r"mixes formats: 'csv' \(a\.csv\) and 'jsonl' \(b\.jsonl\)"):
        read(tmp_path)


def test_folder_mixing_pairs_and_triplets_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_bytes(jsonl_bytes())
    triplet = {"query": "q", "positive_text": "p", "negative_texts": ["n"]}
    (tmp_path / "b.jsonl").write_bytes(jsonl_bytes([triplet]))
    with pytest.raises(DataError, match="'jsonl'.*'triplets'"):
        read(tmp_path)


def test_folder_of_parquet_is_typed(tmp_path: Path) -> None:
    pd.DataFrame(ROWS[:2]).to_parquet(tmp_path / "1.parquet", index=False)
    pd.DataFrame(ROWS[2:]).to_parquet(tmp_path / "2.parquet", index=False)
    raw = read(tmp_path)
    assert (raw.fmt, raw.typed, len(raw.frame)) == ("parquet", True, 3)
    assert raw.frame["label"].dtype == "float64"


@pytest.mark.parametrize("contents", [[], ["_SUCCESS", ".keep"]], ids=["empty", "only-markers"])
def test_folder_without_data_files_is_an_error(tmp_path: Path, contents: list[str]) -> None:
    for name in contents:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(DataError, match="no data files in folder"):
        read(tmp_path)


def test_a_broken_file_in_a_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_bytes())
    (tmp_path / "b.csv").write_bytes(b"query,document,label\nq,d,1,extra\n")
    with pytest.raises(DataError, match=rf"{tmp_path / 'b.csv'}: data row 1"):
        read(tmp_path)


# --------------------------------------------------------------------------- fsspec URIs


def test_memory_uri_file(memory_root: str) -> None:
    put(f"{memory_root}/pairs.csv", csv_bytes())
    raw = read(f"memory://{memory_root}/pairs.csv")
    assert (raw.fmt, raw.files) == ("csv", ["pairs.csv"])
    assert data_rows(raw)[0] == ["reset password", ROWS[0]["document"], "1.0"]
    assert raw.frame["source_row"].tolist() == [1, 2, 3]
    assert raw.description == f"CSV file memory://{memory_root}/pairs.csv"


def test_memory_uri_folder(memory_root: str) -> None:
    put(f"{memory_root}/labels/b.parquet", pd.DataFrame(ROWS[1:]).to_parquet(index=False))
    put(f"{memory_root}/labels/a.parquet", pd.DataFrame(ROWS[:1]).to_parquet(index=False))
    put(f"{memory_root}/labels/_SUCCESS", b"")
    raw = read(f"memory://{memory_root}/labels")
    assert raw.files == ["a.parquet", "b.parquet"]
    assert raw.frame["source_file"].tolist() == [0, 1, 1]
    assert raw.frame["source_row"].tolist() == [1, 1, 2]
    assert raw.description == f"2 Parquet files in memory://{memory_root}/labels"


def test_memory_uri_folder_column_mismatch(memory_root: str) -> None:
    put(f"{memory_root}/d/a.jsonl", jsonl_bytes())
    put(f"{memory_root}/d/b.jsonl", jsonl_bytes([{"query": "q", "document": "d"}]))
    with pytest.raises(DataError, match=r"b\.jsonl lacks column\(s\) \['label'\]"):
        read(f"memory://{memory_root}/d")


def test_file_uri(tmp_path: Path) -> None:
    (tmp_path / "p.jsonl").write_bytes(jsonl_bytes())
    raw = read(f"file://{tmp_path}/p.jsonl")
    assert (raw.fmt, raw.typed, raw.files) == ("jsonl", True, ["p.jsonl"])
    assert raw.frame["label"].tolist() == [1.0, 0.0, 1.0]


def test_file_uri_folder(tmp_path: Path) -> None:
    (tmp_path / "a.tsv").write_bytes(csv_bytes(ROWS[:1], sep="\t"))
    (tmp_path / "b.tsv").write_bytes(csv_bytes(ROWS[1:], sep="\t"))
    raw = read(f"file://{tmp_path}")
    assert (raw.fmt, raw.files, len(raw.frame)) == ("tsv", ["a.tsv", "b.tsv"], 3)


def test_fsspec_jsonl_blank_line_keeps_line_numbers(memory_root: str) -> None:
    put(f"{memory_root}/p.jsonl", (json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n").encode())
    assert read(f"memory://{memory_root}/p.jsonl").frame["source_row"].tolist() == [1, 3]


def test_fsspec_triplets_are_detected(memory_root: str) -> None:
    put(f"{memory_root}/t.jsonl", jsonl_bytes([{"query": "q", "positive_text": "p", "negative_texts": ["n"]}]))
    assert read(f"memory://{memory_root}/t.jsonl").fmt == "triplets"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_fsspec_not_utf8_names_the_byte_offset(memory_root: str, fmt: str) -> None:
    if fmt == "csv":
        head = b"query,document,label\n" + b"q,d,1\n" * 3000 + b"q,caf"
        data = head + b"\xe9,1\n"
    else:
        head = b'{"query": "q", "document": "d", "label": 1}\n' * 3000 + b'{"query": "caf'
        data = head + b'\xe9", "document": "d", "label": 1}\n'
    put(f"{memory_root}/p.{fmt}", data)
    with pytest.raises(DataError) as info:
        read(f"memory://{memory_root}/p.{fmt}")
    assert f"memory://{memory_root}/p.{fmt}: not valid UTF-8 at byte offset {len(head)}" in str(info.value)


def test_fsspec_ragged_csv_is_an_error(memory_root: str) -> None:
    put(f"{memory_root}/p.csv", b"query,document,label\nhow to, reset,d1,1\n")
    with pytest.raises(DataError, match="has 4 fields, the header has 3"):
        read(f"memory://{memory_root}/p.csv")


def test_fsspec_missing_file(memory_root: str) -> None:
    with pytest.raises(DataError, match="no such file"):
        read(f"memory://{memory_root}/nope.csv")


def test_unknown_uri_scheme_is_a_data_error() -> None:
    with pytest.raises(DataError, match="nosuchproto://bucket/p.csv"):
        read("nosuchproto://bucket/p.csv")


def test_credentials_in_a_uri_are_never_shown(memory_root: str) -> None:
    base = f"memory://user:{SECRET}@bucket"
    put(f"/user:{SECRET}@bucket/ok/p.csv", csv_bytes())
    put(f"/user:{SECRET}@bucket/bad.csv", b"query,document,label\nq,caf\xe9,1\n")
    put(f"/user:{SECRET}@bucket/broken.parquet", b"PAR1 not really")

    raw = read(f"{base}/ok/p.csv")
    shown = [raw.description, *raw.files, *raw.notes]
    folder = read(f"{base}/ok")
    shown += [folder.description, *folder.files]
    assert raw.description == "CSV file memory://bucket/ok/p.csv"
    for path in ("bad.csv", "broken.parquet", "missing.csv", "nothing-here/"):
        with pytest.raises(DataError) as info:
            read(f"{base}/{path}")
        shown.append(logged(info.value))  # a chained library error could quote the URI
    assert all(SECRET not in text and "user:" not in text for text in shown), shown


def test_local_paths_still_work_with_a_colon_in_the_name(tmp_path: Path) -> None:
    (tmp_path / "a:b.csv").write_bytes(csv_bytes())
    assert len(read(tmp_path / "a:b.csv").frame) == 3


# --------------------------------------------------------------------------- SQL (SQLite)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    db = tmp_path / "labels.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE pairs (query TEXT, document TEXT, label REAL, grade INTEGER)")
        conn.executemany(
            "INSERT INTO pairs VALUES (?, ?, ?, ?)",
            [(f"q{i}", f"d{i}", float(i % 2), i % 4) for i in range(25)],
        )
    return f"sqlite:///{db}"


def sql(query: str, url: str | None, **kwargs: Any) -> RawSource:
    return read_source(ExtractConfig(sql_query=query, sql_conn_id="labels_db", **kwargs), url)


def test_sqlite_rows_provenance_and_types(sqlite_url: str) -> None:
    raw = sql("SELECT query, document, label, grade FROM pairs ORDER BY grade, query", sqlite_url)
    assert (raw.fmt, raw.typed, raw.files, raw.truncated) == ("sql", True, ["sql:labels_db"], False)
    assert raw.description == "SQL query on connection 'labels_db'"
    assert len(raw.frame) == 25
    assert raw.frame["source_row"].tolist() == list(range(1, 26))
    assert raw.frame["source_file"].eq(0).all()
    assert raw.frame["label"].dtype == "float64" and raw.frame["grade"].dtype == "int64"
    assert raw.frame["query"].iloc[0] == "q0"


def test_sqlite_stops_after_max_rows_plus_one(sqlite_url: str) -> None:
    raw = sql("SELECT * FROM pairs", sqlite_url, max_rows=10)
    assert len(raw.frame) == 11 and raw.truncated
    assert raw.frame["source_row"].tolist()[-1] == 11
    assert any("max_rows=10" in note for note in raw.notes)


def test_sqlite_exactly_max_rows_is_not_truncated(sqlite_url: str) -> None:
    raw = sql("SELECT * FROM pairs", sqlite_url, max_rows=25)
    assert len(raw.frame) == 25 and not raw.truncated


def test_sqlite_empty_result_keeps_the_columns(sqlite_url: str) -> None:
    raw = sql("SELECT query, document, label FROM pairs WHERE 0", sqlite_url)
    assert raw.frame.empty and {"query", "document", "label", "source_row"} <= set(raw.frame.columns)


def test_sql_syntax_error_is_a_data_error_without_the_sql(sqlite_url: str) -> None:
    query = "SELEC query, secret_column FROM pairs"
    with pytest.raises(DataError) as info:
        sql(query, sqlite_url)
    message = str(info.value)
    assert "syntax error" in message and "labels_db" in message
    log = logged(info.value)
    assert query not in log and "secret_column" not in log and sqlite_url not in log


def test_sql_missing_table(sqlite_url: str) -> None:
    with pytest.raises(DataError, match="no such table: nope"):
        sql("SELECT * FROM nope", sqlite_url)


def test_sql_colons_and_percent_signs_are_sql_not_parameters(sqlite_url: str) -> None:
    raw = sql("SELECT query, 'at 10:30 :b' AS note, '100%' AS pct FROM pairs WHERE query LIKE 'q1%'", sqlite_url)
    assert raw.frame["note"].iloc[0] == "at 10:30 :b" and raw.frame["pct"].iloc[0] == "100%"
    assert len(raw.frame) == 11  # q1, q10..q19


def test_sql_duplicate_column_names(sqlite_url: str) -> None:
    with pytest.raises(DataError, match=r"duplicate column name\(s\) \['query'\]"):
        sql("SELECT query, document AS query FROM pairs", sqlite_url)


def test_sql_statement_without_rows(sqlite_url: str) -> None:
    with pytest.raises(DataError, match="does not return rows"):
        sql("DELETE FROM pairs", sqlite_url)
    assert len(sql("SELECT * FROM pairs", sqlite_url).frame) == 25  # rolled back, never committed


def test_sql_without_a_url() -> None:
    with pytest.raises(DataError, match="no database URL for connection 'labels_db'"):
        sql("SELECT 1", None)


def test_sql_unusable_url_is_a_data_error() -> None:
    with pytest.raises(DataError, match="cannot use its URL") as info:
        sql("SELECT 1", f"nodialect://user:{SECRET}@host/db")
    assert SECRET not in logged(info.value)


# --------------------------------------------------------------------------- SQL (PostgreSQL)


def test_postgres_table_rows_and_types(postgres_url: str) -> None:
    frame = pd.DataFrame(
        {
            "query": ["reset password", "reset password", "export invoices", None],
            "document": ["Open the profile.", "Update the card.", "Billing → Export.", "d"],
            "label": [1.0, 0.0, 0.5, 1.0],
            "grade": [3, 0, 2, 1],
        }
    )
    load_table(postgres_url, "pairs_types", frame)
    raw = sql(
        "SELECT query, document, label, grade, CAST(label AS NUMERIC(4, 2)) AS label_numeric, label > 0.4 AS relevant "
        "FROM pairs_types ORDER BY grade DESC",
        postgres_url,
    )
    assert (raw.fmt, raw.typed, raw.files) == ("sql", True, ["sql:labels_db"])
    assert raw.frame["query"].tolist()[:2] == ["reset password", "export invoices"]
    assert pd.isna(raw.frame["query"].iloc[2])
    assert raw.frame["document"].tolist()[1] == "Billing → Export."
    assert raw.frame["label"].tolist() == [1.0, 0.5, 1.0, 0.0] and raw.frame["label"].dtype == "float64"
    assert raw.frame["grade"].dtype == "int64"
    assert raw.frame["label_numeric"].dtype == "float64"  # NUMERIC → Decimal → float (coerce_float)
    assert raw.frame["relevant"].dtype == "bool"
    assert raw.frame["source_row"].tolist() == [1, 2, 3, 4]


def test_postgres_query_as_written(postgres_url: str) -> None:
    raw = sql("SELECT '5'::int AS n, 'a :b' AS note, '100%' AS pct WHERE 'reset' LIKE 'res%'", postgres_url)
    assert raw.frame[["n", "note", "pct"]].values.tolist() == [[5, "a :b", "100%"]]


def test_postgres_stops_after_max_rows_plus_one(postgres_url: str) -> None:
    raw = sql("SELECT g AS query, 'd' AS document, 1.0 AS label FROM generate_series(1, 1000000) AS g", postgres_url,
              max_rows=99)
    assert len(raw.frame) == 100 and raw.truncated
    assert raw.frame["query"].tolist()[:3] == [1, 2, 3]


def test_postgres_missing_table_and_bad_query(postgres_url: str) -> None:
    with pytest.raises(DataError, match='relation "no_such_table" does not exist'):
        sql("SELECT * FROM no_such_table", postgres_url)
    query = "SELECT query FROM pairs_types WHERE label >>> 'hunter2-literal'"
    with pytest.raises(DataError) as info:
        sql(query, postgres_url)
    assert "hunter2-literal" not in str(info.value) and "LINE 1" not in str(info.value)


def test_postgres_wrong_database_is_a_data_error(postgres_url: str) -> None:
    with pytest.raises(DataError, match='cannot log in: .*database "no_such_db" does not exist'):
        sql("SELECT 1", postgres_url.rsplit("/", 1)[0] + "/no_such_db")


def test_unreachable_postgres_is_source_unavailable_without_the_password() -> None:
    url = f"postgresql+psycopg://labeler:{SECRET}@127.0.0.1:{free_port()}/labels"  # nothing listens there
    with pytest.raises(SourceUnavailable) as info:
        sql("SELECT * FROM pairs", url)
    message = str(info.value)
    assert "'labels_db'" in message
    assert SECRET not in message and url not in message and "labeler:" not in message, message
    assert isinstance(info.value, RerankerError) and not isinstance(info.value, PermanentError)
    log = logged(info.value)
    assert SECRET not in log and "labeler:" not in log


# --------------------------------------------------------------------------- datasets on disk


def test_saved_dataset_is_detected_and_read(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    for source_format in ("auto", "datasets"):
        raw = read(tmp_path / "ds", source_format=source_format)
        assert (raw.fmt, raw.typed, raw.truncated) == ("datasets", True, False)
        assert data_rows(raw) == [[r["query"], r["document"], r["label"]] for r in ROWS]
        assert raw.frame["label"].dtype == "float64"
        assert raw.frame["source_row"].tolist() == [1, 2, 3] and raw.frame["source_file"].eq(0).all()
        assert raw.description == f"datasets dataset at {tmp_path / 'ds'}"


def test_saved_dataset_stops_after_max_rows_plus_one(tmp_path: Path) -> None:
    from datasets import Dataset

    Dataset.from_list(ROWS * 10).save_to_disk(str(tmp_path / "ds"))
    raw = read(tmp_path / "ds", max_rows=4)
    assert len(raw.frame) == 5 and raw.truncated


def test_saved_dataset_dict_asks_for_one_split(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(ROWS), "test": Dataset.from_list(ROWS[:1])}).save_to_disk(
        str(tmp_path / "dd")
    )
    with pytest.raises(DataError, match=r"DatasetDict with splits \['train', 'test'\]") as info:
        read(tmp_path / "dd")
    assert "one split" in str(info.value)
    assert len(read(tmp_path / "dd" / "train").frame) == 3  # a split's folder is a Dataset


def test_declared_datasets_on_a_plain_folder(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(csv_bytes())
    with pytest.raises(DataError, match="datasets"):
        read(tmp_path, source_format="datasets")
