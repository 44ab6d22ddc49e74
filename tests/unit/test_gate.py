"""Unit tests of the gate: the promotion rules of ``reranker_tasks.gate`` (its docstring is the spec).

All rules must hold; every failing rule is reported; NaN never promotes; ``min_gain`` is an absolute
margin over the champion; the first model of a repo is still bound by the floors.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from reranker_tasks.config import GateConfig
from reranker_tasks.gate import DECISION_FILE, GateDecision, decide_promotion, record_decision

METRIC = "ndcg@10"
RULES = ["finite", "min_eval_queries", "min_ndcg", "beats_base", "beats_champion"]
CONFIG = GateConfig(min_ndcg=0.5, min_gain=0.005, min_eval_queries=10)
_NO_CHAMPION = object()


def metrics(
    candidate: Any = 0.8,
    base: Any = 0.6,
    champion: Any = 0.7,
    eval_queries: int = 40,
) -> dict[str, Any]:
    """The evaluate step's result dict; ``champion=None`` means no champion (first model of the repo)."""
    return {
        "primary_metric": METRIC,
        "eval_queries": eval_queries,
        "candidate": {"map": 0.1, "mrr@10": 0.1, METRIC: candidate},
        "base": {"map": 0.1, "mrr@10": 0.1, METRIC: base},
        "champion": None if champion is None else {"map": 0.1, "mrr@10": 0.1, METRIC: champion},
    }


def failed_rules(decision: GateDecision) -> list[str]:
    return [c["rule"] for c in decision.checks if not c["passed"]]


def reason_rules(decision: GateDecision) -> list[str]:
    return [r.split(":", 1)[0] for r in decision.reasons]


# --------------------------------------------------------------------------- promote


def test_promote_when_all_rules_pass() -> None:
    decision = decide_promotion(metrics(), CONFIG)
    assert decision.promote is True
    assert [c["rule"] for c in decision.checks] == RULES
    assert all(c["passed"] for c in decision.checks)
    # when promoted, the reasons say what passed
    assert reason_rules(decision) == RULES
    assert decision.metric == METRIC
    assert decision.candidate == 0.8
    assert decision.base == 0.6
    assert decision.champion == 0.7


def test_first_model_promotes_when_floors_hold() -> None:
    decision = decide_promotion(metrics(champion=None), CONFIG)
    assert decision.promote is True
    assert decision.champion is None
    champion_check = decision.checks[RULES.index("beats_champion")]
    assert champion_check["passed"] is True
    assert "no champion" in champion_check["detail"]


def test_int_metrics_are_accepted() -> None:
    decision = decide_promotion(metrics(candidate=1, base=0, champion=0), CONFIG)
    assert decision.promote is True
    assert decision.candidate == 1.0


# --------------------------------------------------------------------------- NaN / non-finite candidate


@pytest.mark.parametrize("champion", [0.7, None], ids=["with-champion", "no-champion"])
@pytest.mark.parametrize("candidate", [math.nan, math.inf, -math.inf, None, "0.9x"], ids=repr)
def test_non_finite_candidate_never_promotes(candidate: Any, champion: Any) -> None:
    decision = decide_promotion(metrics(candidate=candidate, champion=champion), CONFIG)
    assert decision.promote is False
    assert "finite" in failed_rules(decision)
    assert "finite" in reason_rules(decision)


def test_nan_candidate_with_lenient_config_never_promotes() -> None:
    lenient = GateConfig(min_ndcg=0.0, min_gain=0.0, min_eval_queries=1)
    decision = decide_promotion(metrics(candidate=math.nan, base=math.nan, champion=None), lenient)
    assert decision.promote is False
    assert "finite" in failed_rules(decision)


def test_missing_candidate_metric_never_promotes() -> None:
    payload = metrics()
    del payload["candidate"][METRIC]
    decision = decide_promotion(payload, CONFIG)
    assert decision.promote is False
    assert "finite" in failed_rules(decision)


# --------------------------------------------------------------------------- NaN base / champion
# A baseline that could not be scored proves nothing: "candidate >= NaN" is not established, so the
# rule it guards must fail rather than pass by default (otherwise a broken champion evaluation lets any
# candidate over the floor replace production).


@pytest.mark.parametrize("champion", [math.nan, math.inf, None], ids=["nan", "inf", "null-metric"])
def test_unscorable_champion_does_not_let_the_candidate_through(champion: Any) -> None:
    payload = metrics(candidate=0.8, champion=0.7)
    payload["champion"][METRIC] = champion
    decision = decide_promotion(payload, CONFIG)
    assert decision.promote is False
    assert "beats_champion" in failed_rules(decision)


def test_champion_without_the_primary_metric_does_not_let_the_candidate_through() -> None:
    payload = metrics(candidate=0.8, champion=0.7)
    del payload["champion"][METRIC]
    decision = decide_promotion(payload, CONFIG)
    assert decision.promote is False
    assert "beats_champion" in failed_rules(decision)


@pytest.mark.parametrize("base", [math.nan, None], ids=["nan", "null-metric"])
def test_unscorable_base_does_not_let_the_candidate_through(base: Any) -> None:
    decision = decide_promotion(metrics(candidate=0.8, base=base, champion=None), CONFIG)
    assert decision.promote is False
    assert "beats_base" in failed_rules(decision)


# --------------------------------------------------------------------------- single rules


def test_too_few_eval_queries() -> None:
    decision = decide_promotion(metrics(eval_queries=9), CONFIG)
    assert decision.promote is False
    assert failed_rules(decision) == ["min_eval_queries"]


def test_exactly_min_eval_queries_promotes() -> None:
    assert decide_promotion(metrics(eval_queries=10), CONFIG).promote is True


def test_below_floor() -> None:
    decision = decide_promotion(metrics(candidate=0.49, base=0.3, champion=0.2), CONFIG)
    assert decision.promote is False
    assert failed_rules(decision) == ["min_ndcg"]


def test_exactly_at_floor_promotes() -> None:
    assert decide_promotion(metrics(candidate=0.5, base=0.3, champion=None), CONFIG).promote is True


def test_first_model_is_still_subject_to_the_floor() -> None:
    decision = decide_promotion(metrics(candidate=0.4, base=0.3, champion=None), CONFIG)
    assert decision.promote is False
    assert failed_rules(decision) == ["min_ndcg"]


def test_first_model_is_still_subject_to_the_base() -> None:
    decision = decide_promotion(metrics(candidate=0.6, base=0.65, champion=None), CONFIG)
    assert decision.promote is False
    assert failed_rules(decision) == ["beats_base"]


def test_first_model_is_still_subject_to_min_eval_queries() -> None:
    decision = decide_promotion(metrics(champion=None, eval_queries=2), CONFIG)
    assert decision.promote is False
    assert failed_rules(decision) == ["min_eval_queries"]


def test_below_base() -> None:
    decision = decide_promotion(metrics(candidate=0.79, base=0.8, champion=0.6), CONFIG)
    assert decision.promote is False
    assert failed_rules(decision) == ["beats_base"]


def test_equal_to_base_promotes() -> None:
    assert decide_promotion(metrics(candidate=0.8, base=0.8, champion=None), CONFIG).promote is True


# --------------------------------------------------------------------------- champion margin


def test_exactly_champion_plus_min_gain_promotes() -> None:
    config = GateConfig(min_ndcg=0.5, min_gain=0.005, min_eval_queries=10)
    champion = 0.8
    candidate = champion + config.min_gain
    decision = decide_promotion(metrics(candidate=candidate, base=0.6, champion=champion), config)
    assert decision.promote is True


def test_just_below_champion_plus_min_gain_rejects() -> None:
    config = GateConfig(min_ndcg=0.5, min_gain=0.005, min_eval_queries=10)
    champion = 0.8
    candidate = math.nextafter(champion + config.min_gain, 0.0)
    decision = decide_promotion(metrics(candidate=candidate, base=0.6, champion=champion), config)
    assert decision.promote is False
    assert failed_rules(decision) == ["beats_champion"]


def test_better_than_champion_but_by_less_than_min_gain_rejects() -> None:
    decision = decide_promotion(metrics(candidate=0.803, base=0.6, champion=0.8), CONFIG)
    assert decision.promote is False
    assert failed_rules(decision) == ["beats_champion"]


def test_equal_to_champion_with_zero_gain_promotes() -> None:
    config = GateConfig(min_ndcg=0.5, min_gain=0.0, min_eval_queries=10)
    assert decide_promotion(metrics(candidate=0.8, base=0.6, champion=0.8), config).promote is True


def test_margin_is_absolute_near_a_perfect_score() -> None:
    config = GateConfig(min_ndcg=0.5, min_gain=0.005, min_eval_queries=10)
    decision = decide_promotion(metrics(candidate=1.0, base=0.9, champion=0.995), config)
    assert decision.promote is True


def test_perfect_champion_cannot_be_beaten_with_a_positive_margin() -> None:
    decision = decide_promotion(metrics(candidate=1.0, base=0.9, champion=1.0), CONFIG)
    assert decision.promote is False
    assert failed_rules(decision) == ["beats_champion"]


# --------------------------------------------------------------------------- reasons


def test_every_failing_rule_is_listed() -> None:
    decision = decide_promotion(metrics(candidate=0.3, base=0.4, champion=0.9, eval_queries=3), CONFIG)
    assert decision.promote is False
    expected = ["min_eval_queries", "min_ndcg", "beats_base", "beats_champion"]
    assert failed_rules(decision) == expected
    assert reason_rules(decision) == expected
    assert len(decision.checks) == len(RULES)


def test_nan_candidate_lists_every_rule_it_fails() -> None:
    decision = decide_promotion(metrics(candidate=math.nan, champion=0.7, eval_queries=3), CONFIG)
    assert decision.promote is False
    assert reason_rules(decision) == ["finite", "min_eval_queries", "min_ndcg", "beats_base", "beats_champion"]


def test_reasons_carry_the_numbers() -> None:
    decision = decide_promotion(metrics(candidate=0.801, base=0.6, champion=0.8), CONFIG)
    (reason,) = decision.reasons
    assert reason.startswith("beats_champion:")
    assert "0.8010" in reason and "0.8000" in reason and "0.0050" in reason


# --------------------------------------------------------------------------- record


def test_record_decision_writes_json(tmp_path: Path) -> None:
    decision = decide_promotion(metrics(candidate=0.3, eval_queries=3), CONFIG)
    path = record_decision(decision, tmp_path / "gate")
    assert path == tmp_path / "gate" / DECISION_FILE
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload == json.loads(json.dumps(decision.to_dict()))
    assert payload["promote"] is False
    assert payload["metric"] == METRIC
    assert payload["candidate"] == 0.3
    assert payload["champion"] == 0.7
    assert [c["rule"] for c in payload["checks"]] == RULES
    assert payload["reasons"] == list(decision.reasons)
    assert [p.name for p in (tmp_path / "gate").iterdir()] == [DECISION_FILE]


def test_record_decision_of_a_first_model(tmp_path: Path) -> None:
    decision = decide_promotion(metrics(champion=None), CONFIG)
    payload = json.loads(record_decision(decision, tmp_path).read_text(encoding="utf-8"))
    assert payload["promote"] is True
    assert payload["champion"] is None


def test_record_decision_of_a_nan_candidate_is_strict_json(tmp_path: Path) -> None:
    # decision.json is the audit record read by people and tools; bare NaN is not JSON (RFC 8259).
    decision = decide_promotion(metrics(candidate=math.nan), CONFIG)
    text = record_decision(decision, tmp_path).read_text(encoding="utf-8")

    def reject(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant} in {DECISION_FILE}")

    payload = json.loads(text, parse_constant=reject)
    assert payload["promote"] is False


def test_record_decision_overwrites_a_previous_attempt(tmp_path: Path) -> None:
    record_decision(decide_promotion(metrics(candidate=0.3), CONFIG), tmp_path)
    record_decision(decide_promotion(metrics(), CONFIG), tmp_path)
    payload = json.loads((tmp_path / DECISION_FILE).read_text(encoding="utf-8"))
    assert payload["promote"] is True
