"""Unit tests of the split step: a deterministic train/eval split by *normalised* query.

Spec (module docstring of ``reranker_tasks.split``): every pair of a query goes to one side; queries are
compared case-folded with whitespace collapsed; the side of a query depends only on the seed and the query
text, so the same data and seed always give the same split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from reranker_tasks.config import ExtractConfig, SplitConfig
from reranker_tasks.errors import DataError
from reranker_tasks.extract import extract_pairs
from reranker_tasks.split import EVAL_FILE, TRAIN_FILE, SplitResult, normalise_query, split_pairs

VARIANTS = ["{q}", " {Q}  ", "{q}\t", "{T}"]  # one query written four ways


def make_frame(n_queries: int = 50, docs_per_query: int = 4, variants: bool = True) -> pd.DataFrame:
    """``n_queries`` distinct queries; with ``variants`` each query's rows are spelled differently."""
    queries, documents, labels = [], [], []
    for i in range(n_queries):
        base = f"reset  password for account {i}"
        for j in range(docs_per_query):
            spelling = VARIANTS[j % len(VARIANTS)] if variants else "{q}"
            queries.append(
                spelling.format(q=base, Q=base.upper().replace("  ", "   "), T=base.title().replace(" ", "  "))
            )
            documents.append(f"doc {i}-{j}")
            labels.append(1.0 if j == 0 else 0.0)
    n = len(queries)
    return pd.DataFrame(
        {
            "query": pd.array(queries, dtype="string"),
            "document": pd.array(documents, dtype="string"),
            "label": np.array(labels, dtype="float64"),
            "source_row": np.arange(1, n + 1, dtype="int64"),
        }
    )


def write_snapshot(tmp_path: Path, frame: pd.DataFrame, name: str = "pairs.parquet") -> Path:
    path = tmp_path / "extract" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def do_split(
    tmp_path: Path, frame: pd.DataFrame, config: SplitConfig | None = None, tag: str = "split"
) -> tuple[SplitResult, pd.DataFrame, pd.DataFrame]:
    snapshot = write_snapshot(tmp_path / tag, frame)
    result = split_pairs(snapshot, tmp_path / tag / "split", config or SplitConfig())
    return result, pd.read_parquet(result.train_path), pd.read_parquet(result.eval_path)


def eval_keys(evaluation: pd.DataFrame) -> set[str]:
    return set(evaluation["query"].map(normalise_query))


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Reset password", " reset  PASSWORD "),
        ("Reset password", "reset\tpassword\n"),
        ("Reset password", "RESET\u00a0PASSWORD"),  # no-break space
        ("Straße", "STRASSE"),  # case-folding, not lower()
    ],
)
def test_normalise_query_identifies_variants(a: str, b: str) -> None:
    assert normalise_query(a) == normalise_query(b)


def test_normalise_query_keeps_distinct_queries_apart() -> None:
    assert normalise_query("reset password") != normalise_query("reset passwords")
    assert normalise_query("reset password") != normalise_query("resetpassword")


# --------------------------------------------------------------------------- no leakage


@pytest.mark.parametrize("seed", [0, 1, 42, 2**32 - 1])
def test_no_normalised_query_on_both_sides(tmp_path: Path, seed: int) -> None:
    frame = make_frame()
    result, train, evaluation = do_split(tmp_path, frame, SplitConfig(eval_fraction=0.3, seed=seed))
    train_keys = set(train["query"].map(normalise_query))
    assert train_keys and eval_keys(evaluation)
    assert not train_keys & eval_keys(evaluation)
    assert result.train_queries == len(train_keys) == 50 - result.eval_queries
    assert result.eval_queries == len(eval_keys(evaluation))


def test_reset_password_variants_stay_together(tmp_path: Path) -> None:
    rows = [("Reset password", "a", 1.0), (" reset  PASSWORD ", "b", 0.0), ("RESET password\t", "c", 0.0)]
    rows += [(f"other query {i}", f"d{i}", float(i % 2)) for i in range(20)]
    frame = pd.DataFrame(rows, columns=["query", "document", "label"])
    frame["query"] = frame["query"].astype("string")
    frame["document"] = frame["document"].astype("string")
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype="int64")
    for seed in range(20):
        _, train, evaluation = do_split(tmp_path, frame, SplitConfig(eval_fraction=0.5, seed=seed), tag=f"s{seed}")
        in_train = train["query"].map(normalise_query).eq("reset password").sum()
        in_eval = evaluation["query"].map(normalise_query).eq("reset password").sum()
        assert (in_train, in_eval) in ((3, 0), (0, 3)), f"seed {seed}: {in_train} in train, {in_eval} in eval"


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_split(tmp_path: Path) -> None:
    frame = make_frame()
    _, train_a, eval_a = do_split(tmp_path, frame, SplitConfig(seed=7), tag="a")
    _, train_b, eval_b = do_split(tmp_path, frame, SplitConfig(seed=7), tag="b")
    pd.testing.assert_frame_equal(train_a, train_b)
    pd.testing.assert_frame_equal(eval_a, eval_b)


def test_another_seed_another_split(tmp_path: Path) -> None:
    frame = make_frame()
    _, _, eval_a = do_split(tmp_path, frame, SplitConfig(seed=7), tag="a")
    _, _, eval_b = do_split(tmp_path, frame, SplitConfig(seed=8), tag="b")
    assert eval_keys(eval_a) != eval_keys(eval_b)


def test_split_does_not_depend_on_row_order(tmp_path: Path) -> None:
    frame = make_frame()
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    _, _, eval_a = do_split(tmp_path, frame, SplitConfig(seed=3), tag="a")
    _, _, eval_b = do_split(tmp_path, shuffled, SplitConfig(seed=3), tag="b")
    assert eval_keys(eval_a) == eval_keys(eval_b)
    assert set(eval_a["source_row"]) == set(eval_b["source_row"])


def test_split_does_not_depend_on_query_spelling(tmp_path: Path) -> None:
    # The side of a query is a function of its normalised text: re-spelling it changes nothing.
    plain = make_frame(variants=False)
    spelled = make_frame(variants=True)
    _, _, eval_a = do_split(tmp_path, plain, SplitConfig(seed=11), tag="a")
    _, _, eval_b = do_split(tmp_path, spelled, SplitConfig(seed=11), tag="b")
    assert set(eval_a["source_row"]) == set(eval_b["source_row"])


# --------------------------------------------------------------------------- sizes and counts


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_eval_fraction_is_respected(tmp_path: Path, fraction: float) -> None:
    n_queries = 100
    result, _, evaluation = do_split(tmp_path, make_frame(n_queries), SplitConfig(eval_fraction=fraction))
    assert result.eval_queries == round(n_queries * fraction)
    # every query has the same number of pairs here, so the pair fraction follows
    assert len(evaluation) / (n_queries * 4) == pytest.approx(fraction, abs=0.02)


def test_eval_side_never_empty_and_train_side_never_empty(tmp_path: Path) -> None:
    result, train, evaluation = do_split(tmp_path, make_frame(3), SplitConfig(eval_fraction=0.01))
    assert result.eval_queries == 1 and len(evaluation) > 0
    result, train, evaluation = do_split(tmp_path, make_frame(3), SplitConfig(eval_fraction=0.9), tag="b")
    assert result.train_queries >= 1 and len(train) > 0


def test_two_queries_are_enough(tmp_path: Path) -> None:
    result, train, evaluation = do_split(tmp_path, make_frame(2), SplitConfig(eval_fraction=0.5))
    assert result.train_queries == result.eval_queries == 1
    assert len(train) == len(evaluation) == 4


@pytest.mark.parametrize("n_queries", [0, 1])
def test_fewer_than_two_queries_is_a_data_error(tmp_path: Path, n_queries: int) -> None:
    frame = make_frame(n_queries) if n_queries else make_frame(1).iloc[:0]
    with pytest.raises(DataError, match="2 distinct queries"):
        do_split(tmp_path, frame)


def test_one_query_spelled_many_ways_is_one_query(tmp_path: Path) -> None:
    frame = make_frame(1, docs_per_query=8)  # four spellings of the same query
    assert frame["query"].nunique() > 1
    with pytest.raises(DataError, match="found 1"):
        do_split(tmp_path, frame)


def test_row_counts_add_up(tmp_path: Path) -> None:
    frame = make_frame(37, docs_per_query=3)
    result, train, evaluation = do_split(tmp_path, frame, SplitConfig(eval_fraction=0.25, seed=5))
    assert result.train_pairs == len(train)
    assert result.eval_pairs == len(evaluation)
    assert result.train_pairs + result.eval_pairs == len(frame)
    assert result.train_queries + result.eval_queries == 37
    # nothing lost, nothing duplicated
    rows = sorted(train["source_row"].tolist() + evaluation["source_row"].tolist())
    assert rows == frame["source_row"].tolist()


def test_columns_and_values_are_kept(tmp_path: Path) -> None:
    frame = make_frame(10)
    _, train, evaluation = do_split(tmp_path, frame)
    assert list(train.columns) == list(frame.columns) == list(evaluation.columns)
    merged = pd.concat([train, evaluation]).sort_values("source_row").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, frame, check_dtype=False)


def test_split_writes_its_files_and_summary(tmp_path: Path) -> None:
    result, _, _ = do_split(tmp_path, make_frame(10))
    out_dir = tmp_path / "split" / "split"
    assert Path(result.train_path) == out_dir / TRAIN_FILE
    assert Path(result.eval_path) == out_dir / EVAL_FILE
    summary = json.loads((out_dir / "split.json").read_text(encoding="utf-8"))
    assert summary == result.to_dict()
    assert not [p for p in out_dir.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- a fixed eval set


def _csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


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
