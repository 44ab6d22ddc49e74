"""Column and label mapping, the fixed eval set, the freshness check, and SQL connection URLs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from reranker_tasks.config import ExtractConfig, SplitConfig, load_run_config
from reranker_tasks.connections import sqlalchemy_url
from reranker_tasks.errors import ConfigError, DataError
from reranker_tasks.extract import extract_pairs, fingerprint_pairs, map_labels
from reranker_tasks.freshness import decide_freshness
from reranker_tasks.split import normalise_query, split_pairs


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


def test_fixed_eval_set_replaces_the_split_and_its_queries_leave_training(tmp_path) -> None:
    train_rows = ["query,document,label"] + [f"Query {i},doc {i},{i % 2}" for i in range(20)]
    source = _csv(tmp_path / "train.csv", "\n".join(train_rows) + "\n")
    golden = _csv(tmp_path / "golden.csv", "query,document,label\n  query 3 ,gold a,1\nquery 3,gold b,0\nnew q,x,1\n")
    result = extract_pairs(ExtractConfig(source_path=str(source), eval_path=str(golden)), tmp_path / "x")
    assert result.eval_pairs == 3 and result.eval_snapshot_path
    split = split_pairs(Path(result.snapshot_path), tmp_path / "s", SplitConfig(), Path(result.eval_snapshot_path))
    train = pd.read_parquet(split.train_path)
    evaluation = pd.read_parquet(split.eval_path)
    assert split.fixed_eval_set and split.removed_from_train == 1 and len(evaluation) == 3
    assert not set(train["query"].map(normalise_query)) & set(evaluation["query"].map(normalise_query))


def test_freshness_skips_only_when_too_little_new_data() -> None:
    champion = {"data_fingerprint": "a" * 64, "pairs": 100}
    assert decide_freshness("a" * 64, 100, 10, champion).skip
    assert decide_freshness("b" * 64, 105, 10, champion).skip
    assert not decide_freshness("b" * 64, 110, 10, champion).skip
    assert not decide_freshness("b" * 64, 100, 10, champion).skip, "relabelled data is always trained on"
    assert not decide_freshness("a" * 64, 100, 0, champion).skip, "0 disables the check"
    assert not decide_freshness("a" * 64, 100, 10, None).skip, "no champion: train"


def test_sqlalchemy_urls_from_connection_fields() -> None:
    assert sqlalchemy_url("sqlite", host="/tmp/x.db") == "sqlite:////tmp/x.db"
    url = sqlalchemy_url("postgres", host="db", login="u", password="p@ss", port=5432, schema="labels")
    assert url == "postgresql+psycopg://u:p%40ss@db:5432/labels"
    assert sqlalchemy_url("generic", extra={"sqlalchemy_url": "duckdb:///x"}) == "duckdb:///x"
    with pytest.raises(ConfigError, match="no known SQLAlchemy dialect"):
        sqlalchemy_url("http", host="x")


def test_sql_and_source_path_are_exclusive() -> None:
    with pytest.raises(ConfigError, match="either source_path or sql_query"):
        load_run_config({"source_path": "/x.csv", "sql_query": "SELECT 1"})
