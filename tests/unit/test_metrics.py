"""Ranking, pairwise and bootstrap metrics (reranker_tasks.metrics).

The ranking and pairwise numbers are checked against sentence-transformers' own evaluators, run on a duck-typed
model that returns fixed scores, so "matches the evaluator" is tested rather than assumed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from reranker_tasks.metrics import (
    RANKING_KEYS,
    mean_metrics,
    paired_bootstrap,
    pairwise_metrics,
    query_metrics,
    score_summary,
)

PAIRWISE_KEYS = ("average_precision", "f1", "f1_threshold", "precision", "recall", "accuracy", "accuracy_threshold")


class FixedScoreModel:
    """Just enough of a 1-logit CrossEncoder for the evaluators: ``predict`` looks the scores up."""

    num_labels = 1

    def __init__(self, scores: Mapping[tuple[str, str], float]) -> None:
        self.scores = dict(scores)
        self.predicted_pairs = 0
        self.model_card_data = SimpleNamespace(set_evaluation_metrics=lambda *args, **kwargs: None)

    def predict(self, pairs: list[Any], **kwargs: Any) -> np.ndarray:
        self.predicted_pairs += len(pairs)
        return np.array([self.scores[(query, doc)] for query, doc in pairs], dtype=float)


def random_queries(seed: int, n_queries: int = 40, max_negatives: int = 20) -> list[dict[str, Any]]:
    """Queries with 1-3 positives and 1-``max_negatives`` negatives (lists longer than at_k = 10), in data order."""
    rng = np.random.default_rng(seed)
    queries = []
    for q in range(n_queries):
        n_pos, n_neg = int(rng.integers(1, 4)), int(rng.integers(1, max_negatives + 1))
        relevant = rng.permutation([1] * n_pos + [0] * n_neg)  # positives anywhere in the data order
        docs = [f"q{q}-doc{d}" for d in range(len(relevant))]
        queries.append({"query": f"query {q}", "docs": docs, "relevant": relevant.tolist()})
    return queries


def evaluator_samples(queries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "query": q["query"],
            "positive": [d for d, r in zip(q["docs"], q["relevant"], strict=True) if r],
            "negative": [d for d, r in zip(q["docs"], q["relevant"], strict=True) if not r],
        }
        for q in queries
    ]


def run_reranking_evaluator(queries: list[dict[str, Any]], scores: Mapping[tuple[str, str], float]) -> dict[str, Any]:
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    model = FixedScoreModel(scores)
    evaluator = CrossEncoderRerankingEvaluator(
        samples=evaluator_samples(queries), at_k=10, write_csv=False, show_progress_bar=False
    )
    result = evaluator(model)
    assert model.predicted_pairs == len(scores)  # the evaluator really scored through the fake model
    return result


def ours(queries: list[dict[str, Any]], scores: Mapping[tuple[str, str], float]) -> dict[str, float]:
    rows = [query_metrics(q["relevant"], [scores[(q["query"], d)] for d in q["docs"]]) for q in queries]
    return mean_metrics(rows)


# --------------------------------------------------------------------------- query_metrics vs the evaluator


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranking_means_equal_the_reranking_evaluator_on_random_scores(seed: int) -> None:
    queries = random_queries(seed)
    rng = np.random.default_rng(100 + seed)
    scores = {(q["query"], d): float(rng.normal()) for q in queries for d in q["docs"]}

    expected = run_reranking_evaluator(queries, scores)
    got = ours(queries, scores)

    for key in ("map", "mrr@10", "ndcg@10"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    # the comparison is not vacuous: a mediocre random ranking, and some first positives beyond rank 10
    assert 0.1 < got["ndcg@10"] < 0.95
    per_query = [query_metrics(q["relevant"], [scores[(q["query"], d)] for d in q["docs"]]) for q in queries]
    assert any(row["mrr@10"] == 0.0 for row in per_query)


def test_ties_rank_pessimistically_where_the_evaluator_is_arbitrary() -> None:
    # Coarse scores (many ties), positives anywhere in the data order. numpy's default argsort (the evaluator's)
    # orders tied documents arbitrarily; query_metrics ranks negatives first. MAP and NDCG average over ties
    # and must agree exactly; MRR can only be lower (never more generous than the evaluator).
    queries = random_queries(seed=7)
    rng = np.random.default_rng(8)
    scores = {(q["query"], d): float(rng.integers(0, 3)) for q in queries for d in q["docs"]}

    expected = run_reranking_evaluator(queries, scores)
    got = ours(queries, scores)

    assert got["map"] == pytest.approx(expected["map"], abs=1e-12)
    assert got["ndcg@10"] == pytest.approx(expected["ndcg@10"], abs=1e-12)
    assert got["mrr@10"] <= expected["mrr@10"] + 1e-12


def test_a_perfect_ranking_scores_one_everywhere() -> None:
    row = query_metrics([1, 0, 1, 0, 0], [0.9, 0.2, 0.8, 0.1, 0.3])
    assert row == dict.fromkeys(RANKING_KEYS, 1.0)


# --------------------------------------------------------------------------- hand-computed cases


@pytest.mark.parametrize(
    ("position", "mrr", "hits"),
    [
        (0, 1.0, (1.0, 1.0, 1.0)),
        (1, 0.5, (0.0, 1.0, 1.0)),
        (2, 1 / 3, (0.0, 1.0, 1.0)),
        (3, 0.25, (0.0, 0.0, 1.0)),
        (9, 0.1, (0.0, 0.0, 1.0)),
        (10, 0.0, (0.0, 0.0, 0.0)),
        (11, 0.0, (0.0, 0.0, 0.0)),
    ],
)
def test_hit_at_k_and_mrr_by_rank_of_the_only_positive(position: int, mrr: float, hits: tuple[float, ...]) -> None:
    scores = [1.0 - 0.05 * i for i in range(12)]  # already in rank order
    relevant = [0] * 12
    relevant[position] = 1
    row = query_metrics(relevant, scores)
    assert row["mrr@10"] == pytest.approx(mrr)
    assert (row["hit@1"], row["hit@3"], row["hit@10"]) == hits
    assert row["map"] == pytest.approx(1 / (position + 1))


def test_hit_uses_the_first_of_several_positives() -> None:
    # ranked: neg, neg, pos, neg, pos → first hit at rank 3; AP = (1/3 + 2/5) / 2
    row = query_metrics([0, 0, 1, 0, 1], [0.9, 0.8, 0.7, 0.6, 0.5])
    assert (row["hit@1"], row["hit@3"], row["hit@10"]) == (0.0, 1.0, 1.0)
    assert row["mrr@10"] == pytest.approx(1 / 3)
    assert row["map"] == pytest.approx((1 / 3 + 2 / 5) / 2)


def test_ranking_ignores_the_order_of_the_pairs() -> None:
    relevant, scores = [0, 1, 0, 0, 1, 0], [0.3, 0.9, 0.1, 0.95, 0.2, 0.5]
    order = [4, 2, 0, 5, 1, 3]
    shuffled = query_metrics([relevant[i] for i in order], [scores[i] for i in order])
    assert shuffled == query_metrics(relevant, scores)


@pytest.mark.parametrize("positive_at", ["first", "last"])
def test_a_constant_scorer_ranks_negatives_first(positive_at: str) -> None:
    relevant = [1, 0, 0, 0] if positive_at == "first" else [0, 0, 0, 1]
    row = query_metrics(relevant, [0.5] * 4)
    assert row["hit@1"] == 0.0
    assert row["mrr@10"] == 0.25
    assert row["hit@3"] == 0.0
    assert row["hit@10"] == 1.0


@pytest.mark.parametrize("positive_at", ["first", "last"])
def test_a_constant_scorer_is_not_rewarded_on_a_long_list(positive_at: str) -> None:
    # 40 documents: numpy's default argsort orders ties arbitrarily on lists this long; the tie rule must hold.
    relevant = [0] * 40
    relevant[0 if positive_at == "first" else -1] = 1
    row = query_metrics(relevant, [0.0] * 40)
    assert (row["hit@1"], row["hit@3"], row["hit@10"], row["mrr@10"]) == (0.0, 0.0, 0.0, 0.0)


def test_ties_rank_negatives_first_within_each_score_level() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        scores = rng.integers(0, 3, 30).astype(float)
        relevant = rng.integers(0, 2, 30)
        relevant[rng.integers(0, 30)] = 1
        # pessimistic order: higher score first; within a score, negatives before positives
        order = sorted(range(30), key=lambda i: (-scores[i], relevant[i]))
        first_hit = next(rank for rank, i in enumerate(order) if relevant[i])
        row = query_metrics(relevant.tolist(), scores.tolist())
        assert row["mrr@10"] == pytest.approx(1 / (first_hit + 1) if first_hit < 10 else 0.0)
        assert row["hit@1"] == float(first_hit < 1)
        assert row["hit@3"] == float(first_hit < 3)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_scores_give_nan_metrics(bad: float) -> None:
    row = query_metrics([1, 0, 0], [0.9, bad, 0.1])
    assert set(row) == set(RANKING_KEYS)
    assert all(math.isnan(v) for v in row.values())


def test_mean_metrics() -> None:
    rows = [query_metrics([1, 0], [0.9, 0.1]), query_metrics([1, 0], [0.1, 0.9])]
    means = mean_metrics(rows)
    assert means["mrr@10"] == pytest.approx(0.75)
    assert means["hit@1"] == pytest.approx(0.5)
    assert means["hit@3"] == 1.0


def test_mean_metrics_of_no_queries_is_nan() -> None:
    means = mean_metrics([])
    assert set(means) == set(RANKING_KEYS)
    assert all(math.isnan(v) for v in means.values())


def test_one_nan_query_makes_the_mean_nan() -> None:
    rows = [query_metrics([1, 0], [0.9, 0.1]), query_metrics([1, 0], [math.nan, 0.1])]
    assert all(math.isnan(v) for v in mean_metrics(rows).values())


# --------------------------------------------------------------------------- pairwise_metrics


def run_classification_evaluator(labels: list[int], scores: list[float]) -> dict[str, Any]:
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderClassificationEvaluator

    pairs = [[f"query {i // 4}", f"doc {i}"] for i in range(len(labels))]
    model = FixedScoreModel({(q, d): s for (q, d), s in zip(pairs, scores, strict=True)})
    evaluator = CrossEncoderClassificationEvaluator(pairs, labels, write_csv=False, show_progress_bar=False)
    result = evaluator(model)
    assert model.predicted_pairs == len(labels)
    return result


@pytest.mark.parametrize("coarse", [False, True], ids=["continuous", "tied"])
def test_pairwise_metrics_equal_the_classification_evaluator(coarse: bool) -> None:
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 2, 200)
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1.5, 200) + 1.2 * labels)))  # informative but imperfect
    if coarse:
        scores = np.round(scores, 1)
    expected = run_classification_evaluator(labels.tolist(), scores.tolist())
    got = pairwise_metrics(labels.tolist(), scores.tolist())

    assert set(got) == set(PAIRWISE_KEYS)
    for key in PAIRWISE_KEYS:
        assert got[key] == pytest.approx(float(expected[key]), abs=1e-12), key
    assert 0.5 < got["accuracy"] < 1.0 and 0.5 < got["average_precision"] < 1.0


@pytest.mark.parametrize(
    ("labels", "scores"),
    [
        ([1, 1, 1], [0.2, 0.5, 0.9]),
        ([0, 0, 0], [0.2, 0.5, 0.9]),
        ([], []),
        ([1, 0, 1], [0.2, math.nan, 0.9]),
    ],
    ids=["all-positive", "all-negative", "empty", "nan-score"],
)
def test_pairwise_metrics_nan_when_no_threshold_can_be_chosen(labels: list[int], scores: list[float]) -> None:
    got = pairwise_metrics(labels, scores)
    assert set(got) == set(PAIRWISE_KEYS)
    assert all(math.isnan(v) for v in got.values())


# --------------------------------------------------------------------------- score_summary


def test_score_summary_of_sigmoid_scores() -> None:
    summary = score_summary([0.1, 0.4, 0.9, 0.6])
    assert summary["pairs"] == 4 and summary["non_finite"] == 0
    assert (summary["min"], summary["max"]) == (0.1, 0.9)
    assert summary["std"] == pytest.approx(np.std([0.1, 0.4, 0.9, 0.6]))
    assert summary["in_unit_interval"] is True


def test_score_summary_of_logits_and_of_a_constant_scorer() -> None:
    assert score_summary([-2.0, 0.3, 4.1])["in_unit_interval"] is False
    assert score_summary([0.5] * 10)["std"] == 0.0


def test_score_summary_counts_non_finite_scores() -> None:
    summary = score_summary([0.2, math.nan, 0.8, math.inf])
    assert summary["pairs"] == 4 and summary["non_finite"] == 2
    assert (summary["min"], summary["max"]) == (0.2, 0.8)


def test_score_summary_of_nothing() -> None:
    summary = score_summary([])
    assert summary["pairs"] == 0
    assert math.isnan(summary["std"]) and math.isnan(summary["min"])
    assert summary["in_unit_interval"] is False


# --------------------------------------------------------------------------- paired_bootstrap


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(5)
    cand, ref = rng.uniform(0, 1, 50), rng.uniform(0, 1, 50)
    first = paired_bootstrap(cand, ref, samples=1000, confidence=0.95, seed=42)
    assert paired_bootstrap(cand, ref, samples=1000, confidence=0.95, seed=42) == first
    other = paired_bootstrap(cand, ref, samples=1000, confidence=0.95, seed=43)
    assert other["mean_delta"] == first["mean_delta"]
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])


def test_bootstrap_of_identical_inputs() -> None:
    values = np.random.default_rng(1).uniform(0, 1, 30)
    result = paired_bootstrap(values, values.copy(), samples=500, confidence=0.95, seed=0)
    assert result == {"queries": 30, "mean_delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0}


def test_bootstrap_of_a_clearly_better_candidate() -> None:
    rng = np.random.default_rng(2)
    ref = rng.uniform(0.3, 0.7, 60)
    cand = ref + rng.normal(0.1, 0.05, 60)
    result = paired_bootstrap(cand, ref, samples=2000, confidence=0.95, seed=42)
    assert result["queries"] == 60
    assert result["mean_delta"] == pytest.approx(float(np.mean(cand - ref)))
    assert result["p_value"] < 0.001
    assert 0 < result["ci_low"] < result["mean_delta"] < result["ci_high"]


def test_bootstrap_of_a_clearly_worse_candidate() -> None:
    rng = np.random.default_rng(3)
    ref = rng.uniform(0.3, 0.7, 60)
    result = paired_bootstrap(ref - 0.1 + rng.normal(0, 0.05, 60), ref, samples=2000, confidence=0.95, seed=42)
    assert result["p_value"] > 0.999
    assert result["ci_high"] < 0


def test_bootstrap_of_noise_is_not_significant() -> None:
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 1, 60)
    deltas = 0.01 + 0.15 * (noise - noise.mean()) / noise.std()  # mean +0.01, sd 0.15: ~0.5 standard errors
    ref = np.full(60, 0.5)
    result = paired_bootstrap(ref + deltas, ref, samples=2000, confidence=0.95, seed=42)
    assert result["mean_delta"] == pytest.approx(0.01)
    assert 0.15 < result["p_value"] < 0.5
    assert result["ci_low"] < 0 < result["ci_high"]


def test_bootstrap_confidence_sets_the_interval_width() -> None:
    rng = np.random.default_rng(6)
    cand, ref = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    narrow = paired_bootstrap(cand, ref, samples=2000, confidence=0.5, seed=1)
    wide = paired_bootstrap(cand, ref, samples=2000, confidence=0.99, seed=1)
    assert wide["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < wide["ci_high"]


def test_bootstrap_on_a_large_eval_set_resamples_in_chunks() -> None:
    # 5000 queries: more than one chunk of resamples; every resample must be filled in.
    rng = np.random.default_rng(9)
    ref = rng.uniform(0, 1, 5000)
    cand = ref + rng.normal(0.01, 0.1, 5000)
    result = paired_bootstrap(cand, ref, samples=1000, confidence=0.95, seed=0)
    standard_error = float(np.std(cand - ref) / np.sqrt(5000))
    assert result["ci_low"] == pytest.approx(result["mean_delta"] - 1.96 * standard_error, abs=standard_error * 0.3)
    assert result["ci_high"] == pytest.approx(result["mean_delta"] + 1.96 * standard_error, abs=standard_error * 0.3)
    assert result["p_value"] < 0.001


def test_bootstrap_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="same queries"):
        paired_bootstrap([0.1, 0.2, 0.3], [0.1, 0.2], samples=100, confidence=0.95, seed=0)


@pytest.mark.parametrize(
    ("cand", "ref"), [([], []), ([0.5, math.nan], [0.4, 0.3]), ([0.5, 0.6], [0.4, math.inf])],
    ids=["empty", "nan-candidate", "inf-reference"],
)
def test_bootstrap_without_usable_values_is_nan(cand: list[float], ref: list[float]) -> None:
    result = paired_bootstrap(cand, ref, samples=100, confidence=0.95, seed=0)
    assert result["queries"] == len(cand)
    assert all(math.isnan(result[k]) for k in ("mean_delta", "ci_low", "ci_high", "p_value"))
