"""Promotion gate (reranker_tasks.gate): promote / needs_approval / reject on realistic evaluate results.

The metrics dict is built the way the evaluate step builds it (``EvaluateResult.to_dict()``: NaN becomes None)
from per-query NDCG@10 arrays drawn with a seeded generator; the same arrays feed the gate's bootstrap.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reranker_tasks.config import GateConfig
from reranker_tasks.evaluate import EvaluateResult
from reranker_tasks.gate import (
    DECISION_FILE,
    NEEDS_APPROVAL,
    PROMOTE,
    REJECT,
    GateDecision,
    decide_promotion,
    record_decision,
)
from reranker_tasks.metrics import score_summary

METRIC = "ndcg@10"
CONFIG = GateConfig(min_ndcg=0.5, min_gain=0.005, min_eval_queries=10, max_slice_regression=0.05, min_slice_queries=5)
RULES = [
    "finite", "min_eval_queries", "no_leakage", "weights_finite", "scores_vary", "score_scale", "min_ndcg",
    "beats_base", "slices", "beats_champion", "min_gain", "significance",
]
SLICES = ("billing", "login", "api")
MODELS = ("candidate", "base", "champion")


def per_query_ndcg(
    n: int = 60, delta: float = 0.1, sd: float = 0.1, *, seed: int = 0, level: float = 0.6, base_shift: float = -0.1
) -> dict[str, np.ndarray]:
    """Per-query NDCG@10 of champion, candidate and base. ``candidate - champion`` has exactly mean ``delta`` and
    standard deviation ``sd`` (standardised noise), so a test's premise does not hinge on the draw."""
    rng = np.random.default_rng(seed)
    champion = rng.uniform(level - 0.05, level + 0.05, n)
    noise = rng.normal(0.0, 1.0, n)
    noise = (noise - noise.mean()) / noise.std() if n > 1 else np.zeros(n)
    candidate = champion + delta + sd * noise
    base = np.clip(champion + base_shift + rng.normal(0.0, 0.05, n), 0.0, 1.0)
    arrays = {"candidate": candidate, "base": base, "champion": champion}
    assert all(((a >= 0) & (a <= 1)).all() for a in arrays.values()), "per-query NDCG outside [0, 1]: pick a seed"
    return arrays


def summary_of(values: np.ndarray) -> dict[str, float]:
    """The means the evaluate step reports for one model (ranking keys plus pairwise metrics)."""
    ndcg = float(np.mean(values)) if values.size else math.nan
    return {
        "map": ndcg - 0.05, "mrr@10": ndcg - 0.02, METRIC: ndcg,
        "hit@1": ndcg - 0.1, "hit@3": min(1.0, ndcg + 0.1), "hit@10": min(1.0, ndcg + 0.2),
        "average_precision": ndcg - 0.05, "f1": 0.7, "f1_threshold": 0.4, "precision": 0.7, "recall": 0.7,
        "accuracy": 0.8, "accuracy_threshold": 0.5,
    }


def sanity_of(
    scores: np.ndarray, *, activation: str = "Sigmoid", weights_finite: bool = True
) -> dict[str, Any]:
    return {"weights_finite": weights_finite, "activation": activation, "scores": score_summary(scores)}


def evaluate_result(
    per_query: dict[str, np.ndarray],
    *,
    champion: bool = True,
    leaked: int = 0,
    sanity: dict[str, dict[str, Any]] | None = None,
    slices: bool = True,
) -> dict[str, Any]:
    """What the gate receives from the evaluate step (``EvaluateResult.to_dict()``)."""
    n = len(per_query["candidate"])
    rng = np.random.default_rng(n)
    pairs = 8 * n
    models = MODELS if champion else MODELS[:2]
    facts = {name: sanity_of(rng.uniform(0.0, 1.0, pairs)) for name in models}
    facts.update(sanity or {})
    slice_of = np.array([SLICES[i % len(SLICES)] for i in range(n)])
    by_slice = {
        s: {m: {"queries": int((slice_of == s).sum()), **summary_of(per_query[m][slice_of == s])} for m in models}
        for s in SLICES
    } if slices and n else {}
    result = EvaluateResult(
        eval_queries=n,
        eval_pairs=pairs,
        dropped_no_positive=0,
        dropped_no_negative=0,
        candidate=summary_of(per_query["candidate"]),
        base=summary_of(per_query["base"]),
        champion=summary_of(per_query["champion"]) if champion else None,
        champion_commit="a" * 40 if champion else None,
        hub_head_commit="a" * 40 if champion else None,
        sanity=facts,
        slices=by_slice,
        leaked_queries=leaked,
        metrics_path="/artifacts/run/evaluate/metrics.json",
        per_query_path="/artifacts/run/evaluate/per_query.parquet",
    )
    return result.to_dict()


def gate(
    per_query: dict[str, np.ndarray], config: GateConfig = CONFIG, *, champion: bool = True, **kwargs: Any
) -> GateDecision:
    metrics = evaluate_result(per_query, champion=champion, **kwargs)
    arrays = {k: v for k, v in per_query.items() if champion or k != "champion"}
    return decide_promotion(metrics, config, arrays)


def failed_rules(decision: GateDecision) -> list[str]:
    return [c["rule"] for c in decision.checks if not c["passed"]]


def reason_rules(decision: GateDecision) -> list[str]:
    return [r.split(":", 1)[0] for r in decision.reasons]


def check(decision: GateDecision, rule: str) -> dict[str, Any]:
    (found,) = [c for c in decision.checks if c["rule"] == rule]
    return found


# --------------------------------------------------------------------------- promote


def test_clearly_better_candidate_is_promoted() -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    decision = gate(pq)

    assert decision.outcome == PROMOTE and decision.promote is True
    assert [c["rule"] for c in decision.checks] == RULES
    assert failed_rules(decision) == []
    assert reason_rules(decision) == RULES  # promoting: the reasons say what passed
    assert decision.metric == METRIC
    assert decision.candidate == pytest.approx(float(pq["candidate"].mean()))
    assert decision.champion == pytest.approx(float(pq["champion"].mean()))
    assert decision.candidate - decision.champion == pytest.approx(0.1)
    vs_champion = decision.evidence["vs_champion"]
    assert vs_champion["queries"] == 60
    assert vs_champion["mean_delta"] == pytest.approx(0.1)
    assert vs_champion["p_value"] < 0.001 and vs_champion["ci_low"] > 0
    assert decision.evidence["vs_base"]["mean_delta"] > 0


def test_the_decision_is_reproducible() -> None:
    pq = per_query_ndcg(delta=0.01, sd=0.15, seed=2)
    assert gate(pq) == gate(pq)


def test_int_metrics_are_accepted() -> None:
    metrics = evaluate_result(per_query_ndcg(seed=1))
    metrics["candidate"][METRIC], metrics["champion"][METRIC], metrics["base"][METRIC] = 1, 0, 0
    decision = decide_promotion(metrics, CONFIG, per_query_ndcg(seed=1))
    assert decision.candidate == 1.0
    assert "beats_champion" not in failed_rules(decision) and "min_ndcg" not in failed_rules(decision)


# --------------------------------------------------------------------------- needs approval


def test_better_by_noise_only_needs_approval() -> None:
    pq = per_query_ndcg(delta=0.01, sd=0.15, seed=2)
    decision = gate(pq)

    # the premise: the point estimate clears champion + min_gain
    assert decision.candidate > decision.champion + CONFIG.min_gain
    assert decision.outcome == NEEDS_APPROVAL and decision.promote is False
    assert failed_rules(decision) == ["significance"]
    (reason,) = decision.reasons
    assert reason.startswith("significance:") and "p " in reason and "bootstrap" in reason
    assert decision.evidence["vs_champion"]["p_value"] >= 1 - CONFIG.confidence
    assert decision.evidence["vs_champion"]["ci_low"] < 0
    assert decision.summary().startswith("NEEDS APPROVAL: significance:")


def test_significant_gain_below_min_gain_needs_approval() -> None:
    pq = per_query_ndcg(delta=0.003, sd=0.002, seed=3)
    decision = gate(pq)

    assert decision.evidence["vs_champion"]["p_value"] < 0.001  # clearly better, just not by enough
    assert decision.outcome == NEEDS_APPROVAL and decision.promote is False
    assert failed_rules(decision) == ["min_gain"]
    assert "min_gain" in decision.reasons[0] and "0.0050" in decision.reasons[0]


def test_missing_per_query_scores_fail_significance_softly() -> None:
    metrics = evaluate_result(per_query_ndcg(delta=0.1, sd=0.1, seed=1))
    for per_query in (None, {}, {"candidate": [0.7] * 60, "base": [0.5] * 60}):
        decision = decide_promotion(metrics, CONFIG, per_query)
        assert decision.outcome == NEEDS_APPROVAL, per_query
        assert failed_rules(decision) == ["significance"]
        assert "significance unknown" in decision.reasons[0]
        assert "vs_champion" not in decision.evidence


def test_per_query_scores_of_other_queries_fail_significance_softly() -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    metrics = evaluate_result(pq)
    decision = decide_promotion(metrics, CONFIG, {**pq, "champion": pq["champion"][:-1]})
    assert decision.outcome == NEEDS_APPROVAL
    assert failed_rules(decision) == ["significance"]


# --------------------------------------------------------------------------- reject


def test_worse_than_champion_is_rejected() -> None:
    pq = per_query_ndcg(delta=-0.02, sd=0.05, seed=4)
    decision = gate(pq)

    assert decision.outcome == REJECT and decision.promote is False
    assert {"beats_champion", "min_gain", "significance"} <= set(failed_rules(decision))
    assert reason_rules(decision) == failed_rules(decision)  # every failing rule is reported
    assert decision.summary().startswith("NOT PROMOTED (rejected): ")


def test_reasons_list_hard_failures_before_soft_ones() -> None:
    pq = per_query_ndcg(delta=-0.02, sd=0.05, seed=4)
    decision = gate(pq, leaked=3)
    rules = reason_rules(decision)
    assert rules[0] == "no_leakage"
    assert rules.index("beats_champion") < rules.index("min_gain") < rules.index("significance")


def _nan_weights(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    m["sanity"]["candidate"]["weights_finite"] = False


def _constant_scorer(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    m["sanity"]["candidate"]["scores"] = score_summary(np.full(m["eval_pairs"], 0.73))


def _nan_scores(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    scores = np.random.default_rng(0).uniform(0, 1, m["eval_pairs"])
    scores[::7] = math.nan
    m["sanity"]["candidate"]["scores"] = score_summary(scores)


def _nan_metrics(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    m["candidate"] = {k: None for k in m["candidate"]}  # NaN after to_dict
    for by_model in m["slices"].values():
        by_model["candidate"] = {"queries": by_model["candidate"]["queries"], **dict.fromkeys(summary_of(pq["base"]))}
    pq["candidate"] = np.full_like(pq["candidate"], math.nan)


def _empty_eval_set(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    empty = evaluate_result({k: np.zeros(0) for k in MODELS}, sanity={k: sanity_of(np.zeros(0)) for k in MODELS})
    m.clear()
    m.update(empty)
    pq.update({k: np.zeros(0) for k in MODELS})


def _leaked(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    m["leaked_queries"] = 4


def _logits_vs_sigmoid_champion(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    logits = np.random.default_rng(0).normal(0, 3, m["eval_pairs"])
    m["sanity"]["candidate"] = sanity_of(logits, activation="Identity")


def _sigmoid_outside_unit_interval(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    m["sanity"]["candidate"]["scores"] = score_summary(np.random.default_rng(0).normal(0.5, 1.0, m["eval_pairs"]))


def _no_sanity_facts(m: dict[str, Any], pq: dict[str, np.ndarray]) -> None:
    del m["sanity"]


CHAMPION_RULES = ["beats_champion", "min_gain", "significance"]
DEGRADED: dict[str, tuple[Callable[[dict[str, Any], dict[str, np.ndarray]], None], list[str]]] = {
    "nan-weights": (_nan_weights, ["weights_finite"]),
    "constant-scorer": (_constant_scorer, ["scores_vary"]),
    "nan-scores": (_nan_scores, ["scores_vary"]),
    "nan-metrics": (_nan_metrics, ["finite", "min_ndcg", "beats_base", "slices", *CHAMPION_RULES]),
    "empty-eval-set": (
        _empty_eval_set,
        ["finite", "min_eval_queries", "scores_vary", "score_scale", "min_ndcg", "beats_base", *CHAMPION_RULES],
    ),
    "leaked-queries": (_leaked, ["no_leakage"]),
    "logits-vs-sigmoid-champion": (_logits_vs_sigmoid_champion, ["score_scale"]),
    "sigmoid-outside-0-1": (_sigmoid_outside_unit_interval, ["score_scale"]),
    "no-sanity-facts": (_no_sanity_facts, ["sanity"]),
}


@pytest.mark.parametrize("case", list(DEGRADED))
def test_degraded_candidate_is_rejected(case: str) -> None:
    degrade, expected = DEGRADED[case]
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)  # would be promoted as it stands
    metrics = evaluate_result(pq)
    degrade(metrics, pq)
    metrics = json.loads(json.dumps(metrics, allow_nan=False))  # the XCom/metrics.json round trip

    decision = decide_promotion(metrics, CONFIG, pq)

    assert decision.outcome == REJECT and decision.promote is False
    assert failed_rules(decision) == expected
    assert reason_rules(decision) == expected
    json.dumps(decision.to_dict(), allow_nan=False)


def test_no_degraded_candidate_is_promoted_even_by_a_lenient_gate() -> None:
    lenient = GateConfig(min_ndcg=0.0, min_gain=0.0, min_eval_queries=1, max_slice_regression=1.0, confidence=0.5)
    promoted = []
    for case, (degrade, _) in DEGRADED.items():
        pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
        metrics = evaluate_result(pq)
        degrade(metrics, pq)
        if decide_promotion(metrics, lenient, pq).outcome != REJECT:
            promoted.append(case)
    assert promoted == []


def test_force_cannot_promote_a_degraded_candidate() -> None:
    """``force`` bypasses the champion comparisons only: every degraded candidate stays rejected."""
    forced = GateConfig(min_ndcg=0.5, min_gain=0.005, min_eval_queries=10, force=True)
    for case, (degrade, _) in DEGRADED.items():
        pq = per_query_ndcg(delta=-0.05, sd=0.1, seed=1)  # also worse than the champion: force would bypass that
        metrics = evaluate_result(pq)
        degrade(metrics, pq)
        decision = decide_promotion(metrics, forced, pq)
        assert decision.outcome == REJECT and not decision.forced, case


def test_force_promotes_a_candidate_that_only_fails_the_champion_comparisons() -> None:
    pq = per_query_ndcg(delta=-0.02, sd=0.05, seed=4)
    assert gate(pq).outcome == REJECT
    decision = gate(pq, GateConfig(min_ndcg=0.5, min_gain=0.005, min_eval_queries=10, force=True))
    assert decision.outcome == PROMOTE and decision.promote
    assert set(decision.forced) == {"beats_champion", "min_gain", "significance"}
    assert decision.to_dict()["forced"] == list(decision.forced)
    assert decision.summary().startswith("PROMOTE (forced by conf force=true, bypassing beats_champion")


def test_force_does_not_lower_the_floor() -> None:
    pq = per_query_ndcg(delta=-0.02, sd=0.05, seed=4, level=0.45)
    decision = gate(pq, GateConfig(min_ndcg=0.5, min_gain=0.005, min_eval_queries=10, force=True))
    assert decision.outcome == REJECT and "min_ndcg" in failed_rules(decision) and decision.forced == ()


def test_logits_are_named_in_the_score_scale_reason() -> None:
    pq = per_query_ndcg(seed=1)
    metrics = evaluate_result(pq)
    _logits_vs_sigmoid_champion(metrics, pq)
    detail = check(decide_promotion(metrics, CONFIG, pq), "score_scale")["detail"]
    assert "Identity" in detail and "champion applies Sigmoid" in detail


def test_champion_on_logits_accepts_a_candidate_on_logits() -> None:
    pq = per_query_ndcg(seed=1)
    metrics = evaluate_result(pq)
    rng = np.random.default_rng(0)
    metrics["sanity"]["candidate"] = sanity_of(rng.normal(0, 3, 480), activation="Identity")
    metrics["sanity"]["champion"] = sanity_of(rng.normal(0, 3, 480), activation="Identity")
    decision = decide_promotion(metrics, CONFIG, pq)
    assert decision.outcome == PROMOTE


# --------------------------------------------------------------------------- NaN base / champion
# A baseline that could not be scored proves nothing: the rule it guards fails rather than passing by default.


@pytest.mark.parametrize("value", [math.nan, math.inf, None, "0.9x"], ids=["nan", "inf", "null", "text"])
def test_unscorable_champion_does_not_let_the_candidate_through(value: Any) -> None:
    pq = per_query_ndcg(seed=1)
    metrics = evaluate_result(pq)
    metrics["champion"][METRIC] = value
    decision = decide_promotion(metrics, CONFIG, pq)
    assert decision.outcome == REJECT
    assert "beats_champion" in failed_rules(decision)


def test_champion_without_the_primary_metric_does_not_let_the_candidate_through() -> None:
    pq = per_query_ndcg(seed=1)
    metrics = evaluate_result(pq)
    del metrics["champion"][METRIC]
    assert decide_promotion(metrics, CONFIG, pq).outcome == REJECT


@pytest.mark.parametrize("champion", [True, False], ids=["with-champion", "first-model"])
def test_unscorable_base_does_not_let_the_candidate_through(champion: bool) -> None:
    pq = per_query_ndcg(seed=1)
    metrics = evaluate_result(pq, champion=champion)
    metrics["base"][METRIC] = None
    decision = decide_promotion(metrics, GateConfig(min_ndcg=0.0, min_gain=0.0, min_eval_queries=1), pq)
    assert decision.outcome == REJECT
    assert failed_rules(decision) == ["beats_base"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, None], ids=repr)
def test_non_finite_candidate_never_promotes_even_with_a_lenient_gate(value: Any) -> None:
    lenient = GateConfig(min_ndcg=0.0, min_gain=0.0, min_eval_queries=1)
    pq = per_query_ndcg(seed=1)
    for champion in (True, False):
        metrics = evaluate_result(pq, champion=champion)
        metrics["candidate"][METRIC] = value
        metrics["base"][METRIC] = math.nan
        decision = decide_promotion(metrics, lenient, pq)
        assert decision.outcome == REJECT
        assert "finite" in failed_rules(decision)


def test_one_non_finite_ranking_metric_is_enough_to_reject() -> None:
    pq = per_query_ndcg(seed=1)
    metrics = evaluate_result(pq)
    metrics["candidate"]["hit@3"] = None
    decision = decide_promotion(metrics, CONFIG, pq)
    assert decision.outcome == REJECT
    assert failed_rules(decision)[0] == "finite"


# --------------------------------------------------------------------------- floors and margins


def test_too_few_eval_queries() -> None:
    decision = gate(per_query_ndcg(n=9, delta=0.1, sd=0.05, seed=1), slices=False)
    assert decision.outcome == REJECT
    assert failed_rules(decision) == ["min_eval_queries"]


def test_below_the_floor() -> None:
    decision = gate(per_query_ndcg(delta=0.1, sd=0.05, seed=1, level=0.35))
    assert decision.candidate < CONFIG.min_ndcg
    assert failed_rules(decision) == ["min_ndcg"]


def test_below_the_untuned_base() -> None:
    decision = gate(per_query_ndcg(delta=0.1, sd=0.1, seed=1, base_shift=0.15))
    assert decision.outcome == REJECT
    assert "beats_base" in failed_rules(decision)


def test_exactly_champion_plus_min_gain_promotes() -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    metrics = evaluate_result(pq)
    metrics["candidate"][METRIC] = metrics["champion"][METRIC] + CONFIG.min_gain
    assert decide_promotion(metrics, CONFIG, pq).outcome == PROMOTE
    metrics["candidate"][METRIC] = math.nextafter(metrics["champion"][METRIC] + CONFIG.min_gain, 0.0)
    decision = decide_promotion(metrics, CONFIG, pq)
    assert decision.outcome == NEEDS_APPROVAL
    assert failed_rules(decision) == ["min_gain"]


def test_equal_to_the_champion_is_not_better() -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    metrics = evaluate_result(pq)
    metrics["candidate"][METRIC] = metrics["champion"][METRIC]
    decision = decide_promotion(metrics, GateConfig(min_gain=0.0), pq)
    assert decision.outcome == REJECT
    assert failed_rules(decision) == ["beats_champion"]


def test_min_gain_is_absolute_near_a_perfect_score() -> None:
    # Champion 0.995 (six queries at 0.95), candidate perfect: +0.005 is exactly min_gain. A relative margin
    # would ask for more than 1.0.
    champion = np.ones(60)
    champion[::10] = 0.95
    pq = {"candidate": np.ones(60), "base": np.full(60, 0.9), "champion": champion}
    decision = gate(pq)
    assert decision.champion == pytest.approx(0.995)
    assert check(decision, "min_gain")["passed"] is True
    assert decision.outcome == PROMOTE


def test_a_perfect_champion_cannot_be_beaten() -> None:
    pq = {"candidate": np.ones(60), "base": np.full(60, 0.9), "champion": np.ones(60)}
    decision = gate(pq)
    assert decision.outcome == REJECT
    assert failed_rules(decision) == CHAMPION_RULES
    assert decision.evidence["vs_champion"]["p_value"] == 1.0


def test_every_failing_rule_is_reported() -> None:
    pq = per_query_ndcg(n=9, delta=-0.05, sd=0.05, seed=1, level=0.4, base_shift=0.1)
    metrics = evaluate_result(pq, leaked=2, slices=False)
    metrics["sanity"]["candidate"]["weights_finite"] = False
    decision = decide_promotion(metrics, CONFIG, pq)
    expected = [
        "min_eval_queries", "no_leakage", "weights_finite", "min_ndcg", "beats_base", *CHAMPION_RULES,
    ]
    assert failed_rules(decision) == expected
    assert reason_rules(decision) == expected
    assert len(decision.checks) == len(RULES)


# --------------------------------------------------------------------------- slices


def _slices_gate(
    cand_drop: float, *, queries: int = 20, champion: bool = True, reference_gap: float = 0.0
) -> GateDecision:
    """A good candidate whose ``billing`` slice sits ``cand_drop`` below the reference model's."""
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    metrics = evaluate_result(pq, champion=champion)
    billing = metrics["slices"]["billing"]
    reference = "champion" if champion else "base"
    billing[reference][METRIC] = 0.7
    billing["candidate"][METRIC] = 0.7 - cand_drop
    billing["candidate"]["queries"] = queries
    if champion:
        billing["base"][METRIC] = 0.7 - reference_gap
    arrays = {k: v for k, v in pq.items() if champion or k != "champion"}
    return decide_promotion(metrics, CONFIG, arrays)


def test_slice_regression_beyond_the_limit_rejects() -> None:
    decision = _slices_gate(0.08)
    assert decision.outcome == REJECT
    assert failed_rules(decision) == ["slices"]
    assert "billing" in decision.reasons[0] and "champion" in decision.reasons[0]


def test_slice_regression_within_the_limit_passes() -> None:
    decision = _slices_gate(0.04)
    assert decision.outcome == PROMOTE
    assert "3 slices" in check(decision, "slices")["detail"]


def test_small_slices_are_ignored() -> None:
    decision = _slices_gate(0.5, queries=CONFIG.min_slice_queries - 1)
    assert decision.outcome == PROMOTE
    assert "2 slices" in check(decision, "slices")["detail"]  # billing not compared
    assert _slices_gate(0.5, queries=CONFIG.min_slice_queries).outcome == REJECT


def test_slices_compare_against_the_champion_not_the_base() -> None:
    # 0.08 below the champion but well above the base: production is the champion.
    decision = _slices_gate(0.08, reference_gap=0.3)
    assert failed_rules(decision) == ["slices"]


def test_without_a_champion_slices_compare_against_the_base() -> None:
    decision = _slices_gate(0.08, champion=False)
    assert decision.outcome == REJECT
    assert failed_rules(decision) == ["slices"]
    assert "vs base" in decision.reasons[0]
    assert _slices_gate(0.04, champion=False).outcome == PROMOTE


def test_a_nan_slice_metric_is_a_regression() -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    metrics = evaluate_result(pq)
    metrics["slices"]["login"]["candidate"][METRIC] = None
    decision = decide_promotion(metrics, CONFIG, pq)
    assert failed_rules(decision) == ["slices"]


def test_no_slice_column_passes_the_slice_rule() -> None:
    decision = gate(per_query_ndcg(delta=0.1, sd=0.1, seed=1), slices=False)
    assert decision.outcome == PROMOTE
    assert "no slice column" in check(decision, "slices")["detail"]


# --------------------------------------------------------------------------- first model (no champion)


def test_first_model_is_promoted_on_floors_and_sanity() -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    decision = gate(pq, champion=False)

    assert decision.outcome == PROMOTE
    assert decision.champion is None
    assert [c["rule"] for c in decision.checks] == RULES
    for rule in CHAMPION_RULES:
        assert check(decision, rule)["passed"] is True
        assert "no champion" in check(decision, rule)["detail"]
    assert "vs_champion" not in decision.evidence
    vs_base = decision.evidence["vs_base"]
    assert vs_base["queries"] == 60
    assert vs_base["mean_delta"] == pytest.approx(float(np.mean(pq["candidate"] - pq["base"])))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"level": 0.35}, ["min_ndcg"]),
        ({"base_shift": 0.15}, ["beats_base", "slices"]),  # without a champion, slices compare with the base
        ({"n": 8}, ["min_eval_queries"]),
    ],
    ids=["floor", "base", "eval-queries"],
)
def test_first_model_is_bound_by_the_floors(change: dict[str, Any], expected: list[str]) -> None:
    decision = gate(per_query_ndcg(**{"delta": 0.1, "sd": 0.05, "seed": 1, **change}), champion=False)
    assert decision.outcome == REJECT
    assert failed_rules(decision) == expected


def test_first_model_is_bound_by_sanity() -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    bad = sanity_of(np.full(480, 0.5), weights_finite=False)
    decision = gate(pq, champion=False, sanity={"candidate": bad})
    assert decision.outcome == REJECT
    assert failed_rules(decision) == ["weights_finite", "scores_vary"]


def test_first_model_on_logits_is_not_compared_with_an_activation() -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    logits = sanity_of(np.random.default_rng(0).normal(0, 3, 480), activation="Identity")
    decision = gate(pq, champion=False, sanity={"candidate": logits})
    assert decision.outcome == PROMOTE


# --------------------------------------------------------------------------- decision record


def _strict_loads(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize(
    ("name", "outcome", "head"),
    [
        ("promote", PROMOTE, "PROMOTE: "),
        ("noise", NEEDS_APPROVAL, "NEEDS APPROVAL: "),
        ("nan", REJECT, "NOT PROMOTED (rejected): "),
        ("empty", REJECT, "NOT PROMOTED (rejected): "),
    ],
)
def test_decision_dict_is_strict_json_and_summary_leads_with_the_outcome(name: str, outcome: str, head: str) -> None:
    pq = per_query_ndcg(delta=0.01 if name == "noise" else 0.1, sd=0.15 if name == "noise" else 0.1, seed=2)
    metrics = evaluate_result(pq)
    if name == "nan":
        _nan_metrics(metrics, pq)
    if name == "empty":
        _empty_eval_set(metrics, pq)
    decision = decide_promotion(metrics, CONFIG, pq)
    assert decision.outcome == outcome

    payload = decision.to_dict()
    round_trip = _strict_loads(json.dumps(payload, allow_nan=False))
    assert round_trip == payload
    assert round_trip["outcome"] == outcome
    assert round_trip["promote"] is (outcome == PROMOTE)
    assert [c["rule"] for c in round_trip["checks"]] == [c["rule"] for c in decision.checks]
    assert round_trip["reasons"] == list(decision.reasons)
    if name in ("nan", "empty"):
        assert round_trip["candidate"] is None
    summary = decision.summary()
    assert summary.startswith(head)
    assert summary == head + "; ".join(decision.reasons)


def test_record_decision_writes_strict_json(tmp_path: Path) -> None:
    pq = per_query_ndcg(delta=0.1, sd=0.1, seed=1)
    metrics = evaluate_result(pq)
    _nan_metrics(metrics, pq)
    decision = decide_promotion(metrics, CONFIG, pq)

    path = record_decision(decision, tmp_path / "gate")

    assert path == tmp_path / "gate" / DECISION_FILE
    payload = _strict_loads(path.read_text(encoding="utf-8"))
    assert payload == decision.to_dict()
    assert payload["outcome"] == REJECT and payload["promote"] is False
    assert payload["evidence"]["vs_champion"]["p_value"] is None  # NaN bootstrap recorded as null
    assert [p.name for p in (tmp_path / "gate").iterdir()] == [DECISION_FILE]


def test_record_decision_of_a_first_model_overwrites_a_previous_attempt(tmp_path: Path) -> None:
    pq = per_query_ndcg(delta=-0.02, sd=0.05, seed=4)
    record_decision(gate(pq), tmp_path)
    record_decision(gate(per_query_ndcg(delta=0.1, sd=0.1, seed=1), champion=False), tmp_path)
    payload = _strict_loads((tmp_path / DECISION_FILE).read_text(encoding="utf-8"))
    assert payload["outcome"] == PROMOTE and payload["champion"] is None
