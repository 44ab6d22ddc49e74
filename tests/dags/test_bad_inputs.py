"""The bad-input corpus: every kind of broken file or config runs through the DAG end to end (``dag.test``).

Each case must stop at extract or validate with the expected message, before any training, without a
retry on a deterministic error, and push nothing. One Airflow set-up (SQLite DB, Hub emulator) serves all
cases; the suite's summary line reports the totals ("N bad inputs tried, N stopped before training, 0 pushed").
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.support import learnable_pairs

pytestmark = pytest.mark.slow
REPO = "local/corpus-never-pushed"
RESULTS: list[dict[str, Any]] = []  # read by tests/conftest.py's terminal summary


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path, pd.DataFrame], dict[str, Any]]  # writes its files, returns conf overrides
    task: str
    expect: tuple[str, ...]
    retried: bool = False  # transient (unreachable source): retried, then failed
    outcome: str = "failed"
    extra_env: dict[str, str] = field(default_factory=dict)


def _csv(folder: Path, name: str, frame: pd.DataFrame) -> dict[str, Any]:
    path = folder / name
    frame.to_csv(path, index=False)
    return {"source_path": str(path)}


def _text(folder: Path, name: str, text: str | bytes) -> dict[str, Any]:
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return {"source_path": str(path)}


def _with(frame: pd.DataFrame, **rows: Any) -> pd.DataFrame:
    """A copy with cells replaced: _with(f, label={3: 5.0}) sets row 3's label."""
    frame = frame.copy()
    for column, values in rows.items():
        if column not in frame:
            frame[column] = None
        frame[column] = frame[column].astype(object)
        for index, value in values.items():
            frame.loc[index, column] = value
    return frame


def _sqlite(folder: Path, frame: pd.DataFrame) -> Path:
    path = folder / "labels.sqlite"
    with sqlite3.connect(path) as connection:
        frame.to_sql("pairs", connection, index=False, if_exists="replace")
    return path


def _sql_case(query: str, url: Callable[[Path, pd.DataFrame], str], **conf: Any):
    def make(folder: Path, frame: pd.DataFrame) -> dict[str, Any]:
        import os

        os.environ["AIRFLOW_CONN_CORPUS_DB"] = json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": url(folder, frame)}}
        )
        return {"sql_conn_id": "corpus_db", "sql_query": query, "source_path": "bundled:support_pairs.csv", **conf}

    return make


def _long_documents(folder: Path, frame: pd.DataFrame) -> dict[str, Any]:
    long = frame.copy()
    long["document"] = long["document"] + " " + " ".join(["steps"] * 80)
    return {**_csv(folder, "long.csv", long), "max_length": 32}


def _triplets_bad(folder: Path, frame: pd.DataFrame) -> dict[str, Any]:
    lines = [json.dumps({"query": f"q{i}", "positive_text": "p", "negative_texts": ["n1", "n2"]}) for i in range(30)]
    lines[4] = json.dumps({"query": "q4", "positive_text": "p", "negative_texts": "n1"})
    return _text(folder, "triplets.jsonl", "\n".join(lines) + "\n")


def _eval_set_bad(folder: Path, frame: pd.DataFrame) -> dict[str, Any]:
    golden = _with(frame.head(40), label={2: float("nan")})
    golden_path = folder / "golden.csv"
    golden.to_csv(golden_path, index=False)
    return {**_csv(folder, "pairs.csv", frame), "eval_path": str(golden_path)}


def _parquet_truncated(folder: Path, frame: pd.DataFrame) -> dict[str, Any]:
    path = folder / "pairs.parquet"
    frame.to_parquet(path, index=False)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return {"source_path": str(path)}


def _duplicates(folder: Path, frame: pd.DataFrame) -> dict[str, Any]:
    return _csv(folder, "dupes.csv", pd.concat([frame, frame.head(len(frame) // 4)], ignore_index=True))


CASES = [
    # ---- broken files and sources: stop at extract
    Case("missing_file", lambda d, f: {"source_path": str(d / "nope.csv")}, "extract", ("no such file",)),
    Case("unknown_extension", lambda d, f: _text(d, "pairs.txt", "query,document,label\n"), "extract",
         ("cannot tell the format",)),
    Case("empty_file", lambda d, f: _text(d, "empty.csv", ""), "extract", ("empty CSV file",)),
    Case("non_utf8", lambda d, f: _text(d, "latin1.csv", "query,document,label\ncaf\xe9,d,1\n".encode("latin-1")),
         "extract", ("not valid UTF-8 at byte offset 24",)),
    Case("ragged_row_extra_field", lambda d, f: _text(d, "ragged.csv", "query,document,label\nq,d,1\nq,d,0,x\n"),
         "extract", ("data row 2 (line 3) has 4 fields, the header has 3",)),
    Case("ragged_row_missing_field", lambda d, f: _text(d, "short.csv", "query,document,label\nq,d,1\nq,d\n"),
         "extract", ("data row 2 (line 3) has 2 fields",)),
    Case("bad_quoting", lambda d, f: _text(d, "quotes.csv", 'query,document,label\n"q,d,1\nq2,d2,0\n'),
         "extract", ("data row 1 (line 3) has 1 fields, the header has 3",)),
    Case("truncated_jsonl", lambda d, f: _text(d, "cut.jsonl", '{"query": "q", "document": "d", "label": 1}\n{"query": "q2", "docu'),
         "extract", ("cannot be read as jsonl",)),
    Case("truncated_parquet", _parquet_truncated, "extract", ("cannot be read as parquet",)),
    Case("non_text_query", lambda d, f: _text(d, "num.jsonl", "\n".join(
        json.dumps({"query": 42 if i == 3 else f"q{i}", "document": "d", "label": i % 2}) for i in range(20)) + "\n"),
         "extract", ("column 'query' holds non-text values in 1 row(s), source rows [4]",)),
    Case("triplets_negatives_not_a_list", _triplets_bad, "extract", ("'negative_texts' is not a list", "[5]")),
    Case("mapped_column_missing", lambda d, f: {**_csv(d, "p.csv", f), "columns": {"label": "relevance"}},
         "extract", ("'relevance' (for 'label') not in the source",)),
    Case("strict_columns", lambda d, f: {**_csv(d, "p.csv", f.assign(user_email="x@y.z")), "strict_columns": True},
         "extract", ("strict_columns", "['user_email']")),
    Case("sql_syntax_error", _sql_case("SELEC query FROM pairs", lambda d, f: f"sqlite:///{_sqlite(d, f)}"),
         "extract", ("syntax error",)),
    Case("sql_missing_table", _sql_case("SELECT query, document, label FROM nope",
                                        lambda d, f: f"sqlite:///{_sqlite(d, f)}"),
         "extract", ("no such table",)),
    Case("sql_more_than_max_rows", _sql_case("SELECT query, document, label FROM pairs",
                                             lambda d, f: f"sqlite:///{_sqlite(d, f)}", max_rows=100),
         "extract", ("more than max_rows=100 rows",)),
    Case("unreachable_database", _sql_case(
        "SELECT query, document, label FROM pairs",
        lambda d, f: "postgresql+psycopg://reader:not-the-password@127.0.0.1:9/labels"),
         "extract", ("cannot be reached",), retried=True),
    # ---- bad configs: rejected before any work
    # A bad conf fails the first task, preflight, which validates the whole config before anything else.
    Case("unknown_conf_key", lambda d, f: {**_csv(d, "p.csv", f), "learning_rte": 0.1}, "preflight",
         ("unknown conf key(s) ['learning_rte']",)),
    Case("wrong_conf_type", lambda d, f: {**_csv(d, "p.csv", f), "epochs": "3"}, "conf",
         ("Invalid input for param epochs: '3' is not of type 'number'",)),
    Case("out_of_range_conf", lambda d, f: {**_csv(d, "p.csv", f), "min_gain": -0.1}, "conf",
         ("Invalid input for param min_gain",)),
    Case("bad_label_map", lambda d, f: {**_csv(d, "p.csv", f), "label_map": {"scale": [3, 0]}}, "preflight",
         ("label_map",)),
    # ---- readable but wrong data: stop at validate
    Case("missing_label_column", lambda d, f: _csv(d, "p.csv", f.drop(columns=["label"])), "validate",
         ("missing column(s): ['label']",)),
    Case("text_labels", lambda d, f: _csv(d, "p.csv", _with(f, label={5: "yes"})), "validate", ("label", "[6]")),
    Case("labels_out_of_range", lambda d, f: _csv(d, "p.csv", _with(f, label={3: 5.0, 7: -3.0})), "validate",
         ("expect_column_values_to_be_between(label", "[4, 8]")),
    Case("nan_label", lambda d, f: _csv(d, "p.csv", _with(f, label={9: float("nan")})), "validate",
         ("expect_column_values_to_not_be_null(label", "[10]")),
    Case("blank_document", lambda d, f: _csv(d, "p.csv", _with(f, document={11: "   "})), "validate",
         ("document", "blank", "[12]")),
    Case("null_query_jsonl", lambda d, f: _text(d, "p.jsonl", f.assign(query=[None if i == 2 else q for i, q in enumerate(f["query"])]).to_json(orient="records", lines=True)),
         "validate", ("expect_column_values_to_not_be_null(query", "[3]")),
    Case("conflicting_labels", lambda d, f: _csv(d, "p.csv", pd.concat([f, f.head(3).assign(label=1 - f.head(3)["label"])], ignore_index=True)),
         "validate", ("conflicting",)),
    Case("too_few_rows", lambda d, f: {**_csv(d, "p.csv", f.head(30)), "min_queries": 1}, "validate",
         ("expect_table_row_count_to_be_between",)),
    Case("too_few_queries", lambda d, f: {**_csv(d, "p.csv", f[f["query"].isin(f["query"].unique()[:5])]), "min_rows": 10},
         "validate", ("queries",)),
    Case("all_positive", lambda d, f: _csv(d, "p.csv", f.assign(label=1.0)), "validate", ("negative",)),
    Case("all_negative", lambda d, f: _csv(d, "p.csv", f.assign(label=0.0)), "validate", ("positive",)),
    Case("positive_fraction_too_low", lambda d, f: {**_csv(d, "p.csv", f.assign(label=[1.0 if i == 0 else 0.0 for i in range(len(f))])),
                                                    "min_positive_fraction": 0.05}, "validate", ("positive",)),
    Case("long_documents", _long_documents, "validate", ("longer than", "max_length")),
    Case("too_many_duplicates", _duplicates, "validate", ("duplicate",)),
    Case("more_than_max_rows", lambda d, f: {**_csv(d, "p.csv", f), "max_rows": 100}, "validate", ("max_rows",)),
    Case("unmapped_category", lambda d, f: {**_csv(d, "p.csv", f.assign(label=["relevant" if x else "meh" for x in f["label"]])),
                                            "label_map": {"values": {"relevant": 1, "irrelevant": 0}}}, "validate",
         ("label",)),
    Case("bad_fixed_eval_set", _eval_set_bad, "validate", ("eval set:",)),
]


@pytest.fixture(scope="module")
def corpus_base(airflow_local, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("RERANKER_RETRY_DELAY_S", "1")
    return learnable_pairs()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_stops_before_training_and_pushes_nothing(case: Case, corpus_base, tmp_path, local_hub) -> None:
    from huggingface_hub import HfApi

    from tests.dags.test_reranker_e2e import _run, _task_tries

    conf = {"hub_repo_id": REPO, "min_eval_queries": 5, **case.make(tmp_path, corpus_base)}
    outcome, status, run_id, run_dir = _run(conf)
    if case.task == "conf":  # Airflow's Param validation refused the conf: no run was created at all
        pushed = HfApi(token=local_hub.token).repo_exists(REPO)
        RESULTS.append({"case": case.name, "stopped_before_training": True, "pushed": pushed})
        assert status == 2 and not run_id and not pushed, outcome
        assert outcome.startswith("OUTCOME: failed at conf: "), outcome
        for expected in case.expect:
            assert expected in outcome, f"{expected!r} not in {outcome!r}"
        return
    tries = _task_tries(run_id)
    trained = (run_dir / "train").exists() or tries.get("train", ("none",))[0] not in ("upstream_failed", "skipped", "none", "None")
    pushed = HfApi(token=local_hub.token).repo_exists(REPO)
    RESULTS.append({"case": case.name, "stopped_before_training": not trained, "pushed": pushed})

    assert status == 1, outcome
    assert outcome.startswith(f"OUTCOME: failed at {case.task}: "), outcome
    for expected in case.expect:
        assert expected in outcome, f"{expected!r} not in {outcome!r}"
    assert not trained and not pushed
    assert tries[case.task][0] == "failed"
    assert (tries[case.task][1] > 1) if case.retried else (tries[case.task][1] == 1), tries[case.task]


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert len({c.name for c in CASES}) == len(CASES)
