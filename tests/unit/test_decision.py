"""Unit tests of the gate's verdict as a value: the outcome flag, its strict-JSON form and its log line."""

from __future__ import annotations

import json
import math

import pytest

from reranker_tasks.decision import NEEDS_APPROVAL, PROMOTE, REJECT, GateDecision


def decision(outcome: str, **changes) -> GateDecision:
    values = {
        "outcome": outcome,
        "reasons": ("beats the champion", "beats the base"),
        "checks": ({"rule": "beats_base", "passed": True},),
        "metric": "ndcg@10",
        "candidate": 0.8,
        "base": 0.6,
        "champion": 0.7,
    }
    return GateDecision(**(values | changes))


@pytest.mark.parametrize(("outcome", "promote"), [(PROMOTE, True), (NEEDS_APPROVAL, False), (REJECT, False)])
def test_only_the_promote_outcome_promotes(outcome, promote) -> None:
    assert decision(outcome).promote is promote
    assert decision(outcome).to_dict()["promote"] is promote


def test_to_dict_is_strict_json_with_non_finite_scores_as_null() -> None:
    data = decision(REJECT, candidate=math.nan, champion=None, base=math.inf, forced=("beats_base",),
                    evidence={"vs_champion": {"p_value": 0.2}}).to_dict()
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert (data["candidate"], data["base"], data["champion"]) == (None, None, None)
    assert data["reasons"] == ["beats the champion", "beats the base"]
    assert data["checks"] == [{"rule": "beats_base", "passed": True}]
    assert data["forced"] == ["beats_base"]
    assert data["outcome"] == REJECT and data["metric"] == "ndcg@10"
    assert data["evidence"] == {"vs_champion": {"p_value": 0.2}}


@pytest.mark.parametrize(
    ("outcome", "head"),
    [(PROMOTE, "PROMOTE: "), (NEEDS_APPROVAL, "NEEDS APPROVAL: "), (REJECT, "NOT PROMOTED (rejected): ")],
)
def test_summary_names_the_outcome_and_every_reason(outcome, head) -> None:
    assert decision(outcome).summary() == head + "beats the champion; beats the base"


def test_summary_of_a_forced_promotion_names_the_bypassed_rules() -> None:
    forced = decision(PROMOTE, reasons=("below the base",), forced=("beats_base", "min_eval_queries"))
    assert forced.summary() == (
        "PROMOTE (forced by conf force=true, bypassing beats_base, min_eval_queries): below the base"
    )
