"""Ranking and pairwise metrics computed from one set of model scores.

Each model is scored once (one ``predict`` over every eval pair); every metric below is computed from those
scores, so candidate, base and champion are measured on exactly the same pairs and inference is not repeated
per metric.

* Per-query ranking metrics follow sentence-transformers' ``CrossEncoderRerankingEvaluator`` to the letter
  (``compute_metrics``: rank by ``argsort(scores)[::-1]``, sklearn ``ndcg_score`` and
  ``average_precision_score``), so the means equal the evaluator's MAP / MRR@10 / NDCG@10 (a test checks it).
  The one difference is on tied scores, where numpy's default argsort (the evaluator's) orders the tied
  documents arbitrarily; here the sort is stable (below), so MRR and Hit@k take the pessimistic order. MAP
  and NDCG do not depend on it (sklearn averages over ties).
  Hit@k — a relevant document in the top k — is what the seed system reports beside them.
* Pairwise metrics use the classification evaluator's own helpers (best-F1 threshold search, best accuracy,
  sklearn average precision) over all eval pairs with graded labels binarised.
* Documents are laid out as the evaluator lays them out (positives, then negatives) and sorted stably, so ties
  rank the later document first (the evaluator's ``[::-1]``), i.e. negatives before positives, whatever the
  order of the eval pairs: a model that gives every document the same score is not rewarded, and the gate's
  sanity rule rejects it anyway.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

AT_K = 10
HIT_KS = (1, 3, 10)
RANKING_KEYS = ("map", f"mrr@{AT_K}", f"ndcg@{AT_K}", *(f"hit@{k}" for k in HIT_KS))


def query_metrics(relevant: Sequence[int], scores: Sequence[float], at_k: int = AT_K) -> dict[str, float]:
    """MAP, MRR@k, NDCG@k and Hit@1/3/10 of one query's documents.

    Args:
        relevant: 1 for a relevant document, 0 otherwise (at least one of each).
        scores: the model's score per document, same order.
        at_k: cut-off of MRR and NDCG.
    """
    from sklearn.metrics import average_precision_score, ndcg_score

    y_true = np.asarray(relevant, dtype=int)
    y_pred = np.asarray(scores, dtype=float)
    if not np.all(np.isfinite(y_pred)):
        return dict.fromkeys(RANKING_KEYS, math.nan)
    # The evaluator's layout (positives, then negatives) and a stable sort: a tie ranks negatives first whatever
    # the order of the eval pairs and the length of the list (numpy's default argsort orders ties arbitrarily).
    layout = np.argsort(-y_true, kind="stable")
    y_true, y_pred = y_true[layout], y_pred[layout]
    ranking = np.argsort(y_pred, kind="stable")[::-1]
    first_hit = next((rank for rank, index in enumerate(ranking) if y_true[index]), None)
    mrr = 1.0 / (first_hit + 1) if first_hit is not None and first_hit < at_k else 0.0
    out = {
        "map": float(average_precision_score(y_true, y_pred)),
        f"mrr@{at_k}": mrr,
        f"ndcg@{at_k}": float(ndcg_score([y_true], [y_pred], k=at_k)),
    }
    for k in HIT_KS:
        out[f"hit@{k}"] = 1.0 if first_hit is not None and first_hit < k else 0.0
    return out


def mean_metrics(rows: Iterable[dict[str, float]], keys: Sequence[str] = RANKING_KEYS) -> dict[str, float]:
    """Mean of each metric over queries (NaN when there are none, or when any query is NaN)."""
    rows = list(rows)
    if not rows:
        return dict.fromkeys(keys, math.nan)
    return {key: float(np.mean([row[key] for row in rows])) for key in keys}


def pairwise_metrics(labels: Sequence[int], scores: Sequence[float]) -> dict[str, float]:
    """Average precision, best F1 (with its threshold, precision and recall) and best accuracy over all pairs.

    The same numbers ``CrossEncoderClassificationEvaluator`` reports for a 1-logit model; NaN when the scores are
    not finite or the labels are all of one class (no threshold can be chosen).
    """
    from sentence_transformers.sentence_transformer.evaluation import BinaryClassificationEvaluator
    from sklearn.metrics import average_precision_score

    keys = ("average_precision", "f1", "f1_threshold", "precision", "recall", "accuracy", "accuracy_threshold")
    y_true = np.asarray(labels, dtype=int)
    y_pred = np.asarray(scores, dtype=float)
    if len(y_true) == 0 or len(set(y_true.tolist())) < 2 or not np.all(np.isfinite(y_pred)):
        return dict.fromkeys(keys, math.nan)
    accuracy, accuracy_threshold = BinaryClassificationEvaluator.find_best_acc_and_threshold(y_pred, y_true, True)
    f1, precision, recall, f1_threshold = BinaryClassificationEvaluator.find_best_f1_and_threshold(y_pred, y_true, True)
    return {
        "average_precision": float(average_precision_score(y_true, y_pred)),
        "f1": float(f1),
        "f1_threshold": float(f1_threshold),
        "precision": float(precision),
        "recall": float(recall),
        "accuracy": float(accuracy),
        "accuracy_threshold": float(accuracy_threshold),
    }


def score_summary(scores: Sequence[float]) -> dict[str, Any]:
    """Range and spread of a model's scores (sanity: a constant or non-finite scorer; the score scale)."""
    values = np.asarray(scores, dtype=float)
    finite = values[np.isfinite(values)]
    return {
        "pairs": int(values.size),
        "non_finite": int(values.size - finite.size),
        "min": float(finite.min()) if finite.size else math.nan,
        "max": float(finite.max()) if finite.size else math.nan,
        "std": float(finite.std()) if finite.size else math.nan,
        "in_unit_interval": bool(finite.size and finite.min() >= 0.0 and finite.max() <= 1.0),
    }


def paired_bootstrap(
    candidate: Sequence[float], reference: Sequence[float], *, samples: int, confidence: float, seed: int
) -> dict[str, float]:
    """Seeded paired bootstrap over per-query differences ``candidate - reference``.

    Queries are resampled with replacement ``samples`` times; the mean difference of each resample forms the
    bootstrap distribution. Returns the observed mean difference, a two-sided ``confidence`` interval, and the
    one-sided p-value ``P(mean difference <= 0)`` — the share of resamples in which the candidate is no better.
    A candidate is significantly better when ``p_value < 1 - confidence``.
    """
    cand = np.asarray(candidate, dtype=float)
    ref = np.asarray(reference, dtype=float)
    if cand.shape != ref.shape:
        raise ValueError(f"paired bootstrap needs the same queries: {cand.shape} vs {ref.shape}")
    n = cand.size
    if n == 0 or not (np.all(np.isfinite(cand)) and np.all(np.isfinite(ref))):
        return {"queries": n, "mean_delta": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan}
    deltas = cand - ref
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    # Chunked so that a large eval set does not build a samples x n index matrix at once.
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = deltas[idx].mean(axis=1)
    alpha = 1.0 - confidence
    return {
        "queries": n,
        "mean_delta": float(deltas.mean()),
        "ci_low": float(np.quantile(means, alpha / 2)),
        "ci_high": float(np.quantile(means, 1 - alpha / 2)),
        "p_value": float(np.mean(means <= 0.0)),
    }
