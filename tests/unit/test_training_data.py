"""Unit tests of the training-data helpers: dev split, evaluator samples, class weight (no model needed)."""

from __future__ import annotations

import pandas as pd
import pytest

from reranker_tasks.errors import DataError
from reranker_tasks.split import normalise_queries
from reranker_tasks.training_data import MIN_DEV_QUERIES, dev_samples, resolve_pos_weight, split_dev


def _pairs(queries: int, docs: int = 4) -> pd.DataFrame:
    rows = []
    for q in range(queries):
        for d in range(docs):
            rows.append({"query": f"Query {q}", "document": f"doc {q}-{d}", "label": 1.0 if d == 0 else 0.0})
    return pd.DataFrame(rows)


def test_dev_split_holds_out_whole_queries_seeded() -> None:
    frame = _pairs(50)
    train, dev = split_dev(frame, 0.2, seed=7, relevance_threshold=0.5)
    assert dev["query"].nunique() == 10 and len(train) + len(dev) == len(frame)
    assert not set(normalise_queries(train["query"])) & set(normalise_queries(dev["query"]))
    again_train, again_dev = split_dev(frame, 0.2, seed=7, relevance_threshold=0.5)
    assert again_dev.equals(dev) and again_train.equals(train)
    assert set(split_dev(frame, 0.2, seed=8, relevance_threshold=0.5)[1]["query"]) != set(dev["query"])


def test_case_and_spacing_variants_of_a_query_stay_on_one_side() -> None:
    frame = _pairs(30)
    variant = frame[frame["query"] == "Query 3"].assign(query="  query 3 ")
    frame = pd.concat([frame, variant], ignore_index=True)
    train, dev = split_dev(frame, 0.3, seed=1, relevance_threshold=0.5)
    in_train = "query 3" in set(normalise_queries(train["query"]))
    in_dev = "query 3" in set(normalise_queries(dev["query"]))
    assert in_train != in_dev


def test_only_rankable_queries_are_drawn_for_dev() -> None:
    frame = _pairs(40)
    frame.loc[frame["query"].isin([f"Query {i}" for i in range(20)]), "label"] = 0.0  # half: no positive
    _, dev = split_dev(frame, 0.4, seed=0, relevance_threshold=0.5)
    assert dev["query"].nunique() == 16
    assert all(dev.groupby("query")["label"].max() == 1.0)


def test_too_few_dev_queries_switch_selection_off() -> None:
    enough = _pairs(MIN_DEV_QUERIES * 5)  # 20% of 25 queries: exactly the minimum
    train, dev = split_dev(enough, 0.2, seed=0, relevance_threshold=0.5)
    assert dev["query"].nunique() == MIN_DEV_QUERIES and len(dev) == MIN_DEV_QUERIES * 4
    few = _pairs(MIN_DEV_QUERIES * 5 - 5)
    train, dev = split_dev(few, 0.2, seed=0, relevance_threshold=0.5)
    assert dev.empty and len(train) == len(few)
    train, dev = split_dev(enough, 0.0, seed=0, relevance_threshold=0.5)
    assert dev.empty and len(train) == len(enough)


def test_dev_samples_group_relevant_and_other_documents_per_query() -> None:
    frame = _pairs(3)
    samples = dev_samples(frame, relevance_threshold=0.5)
    assert [s["query"] for s in samples] == ["Query 0", "Query 1", "Query 2"]
    assert samples[0]["positive"] == ["doc 0-0"] and samples[0]["negative"] == ["doc 0-1", "doc 0-2", "doc 0-3"]


def test_auto_pos_weight_is_negatives_over_positives() -> None:
    assert resolve_pos_weight("auto", pd.Series([1.0, 0.0, 0.0, 0.0, 0.0])) == 4.0
    assert resolve_pos_weight("auto", pd.Series([1.0, 0.5, 0.0])) == pytest.approx(1.5 / 1.5)
    assert resolve_pos_weight(2.5, pd.Series([1.0, 0.0])) == 2.5
    assert resolve_pos_weight("auto", pd.Series([1.0, 1.0])) == 1.0
    with pytest.raises(DataError, match="pos_weight"):
        resolve_pos_weight("auto", pd.Series([0.0, 0.0]))
