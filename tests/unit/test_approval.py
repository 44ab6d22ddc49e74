"""Unit tests of where a gate decision leads (``route_decision``) and who approved it (``read_approval``).

No Airflow: the routing returns task ids and writes ``approval.json`` into a folder of ``tmp_path``; the
approval task's response is passed in as the dict Airflow's HITL operator returns.
"""

from __future__ import annotations

import json

import pytest

from reranker_tasks.approval import (
    APPROVAL_FILE,
    APPROVAL_TASK,
    CARD_TASK,
    approval_body,
    read_approval,
    route_decision,
)
from reranker_tasks.decision import NEEDS_APPROVAL, PROMOTE, REJECT, GateDecision

MODES = ("wait", "approve", "reject")


def decision(outcome: str, **changes) -> GateDecision:
    values = {
        "outcome": outcome,
        "reasons": ("not clearly better than the champion (p = 0.2100)",),
        "checks": (),
        "metric": "ndcg@10",
        "candidate": 0.81234,
        "base": 0.6,
        "champion": 0.8,
    }
    return GateDecision(**(values | changes))


# --------------------------------------------------------------------------- route_decision


@pytest.mark.parametrize("approval", MODES)
def test_promote_goes_to_the_model_card_whatever_the_approval_mode(tmp_path, approval) -> None:
    route = route_decision(decision(PROMOTE), approval, tmp_path)
    assert route.follow == (CARD_TASK,) and route.approval_body == ""
    assert not (tmp_path / APPROVAL_FILE).exists()


@pytest.mark.parametrize("approval", MODES)
def test_reject_goes_nowhere_whatever_the_approval_mode(tmp_path, approval) -> None:
    route = route_decision(decision(REJECT), approval, tmp_path)
    assert route.follow == () and route.approval_body == ""
    assert "rejected" in route.message
    assert not (tmp_path / APPROVAL_FILE).exists()


def test_needs_approval_with_wait_asks_a_person(tmp_path) -> None:
    route = route_decision(decision(NEEDS_APPROVAL), "wait", tmp_path)
    assert route.follow == (APPROVAL_TASK,)
    assert route.approval_body == approval_body(decision(NEEDS_APPROVAL))
    assert "await_approval" in route.message
    assert not (tmp_path / APPROVAL_FILE).exists(), "a person decides; nothing is recorded yet"


def test_needs_approval_with_approve_promotes_and_records_the_conf(tmp_path) -> None:
    route = route_decision(decision(NEEDS_APPROVAL), "approve", tmp_path)
    assert route.follow == (CARD_TASK,) and route.approval_body == ""
    assert route.message.startswith("APPROVED by conf approval=approve")
    recorded = json.loads((tmp_path / APPROVAL_FILE).read_text(encoding="utf-8"))
    assert recorded == {"approved": True, "decided_by": "conf approval=approve", "responded_by": None}


def test_needs_approval_with_reject_ends_the_run_and_records_the_conf(tmp_path) -> None:
    route = route_decision(decision(NEEDS_APPROVAL), "reject", tmp_path)
    assert route.follow == () and route.approval_body == ""
    assert route.message.startswith("NOT PROMOTED: needs approval")
    recorded = json.loads((tmp_path / APPROVAL_FILE).read_text(encoding="utf-8"))
    assert recorded == {"approved": False, "decided_by": "conf approval=reject", "responded_by": None}


# --------------------------------------------------------------------------- read_approval


def test_a_person_who_approved_is_named(tmp_path) -> None:
    response = {"chosen_options": ["Approve"], "responded_by_user": {"id": "7", "name": "ana"},
                "responded_at": "2025-01-02T03:04:05+00:00"}
    assert read_approval(tmp_path, response) == {
        "approved": True,
        "decided_by": "a person in the Airflow UI",
        "responded_by": "ana",
        "responded_at": "2025-01-02T03:04:05+00:00",
    }


def test_a_person_who_rejected_is_not_an_approval(tmp_path) -> None:
    approval = read_approval(tmp_path, {"chosen_options": ["Reject"], "responded_by_user": "bob"})
    assert approval == {"approved": False, "decided_by": "a person in the Airflow UI", "responded_by": "bob",
                        "responded_at": None}


def test_the_persons_answer_wins_over_a_recorded_conf_decision(tmp_path) -> None:
    route_decision(decision(NEEDS_APPROVAL), "reject", tmp_path)
    approval = read_approval(tmp_path, {"chosen_options": ["Approve"], "responded_by_user": {"name": "ana"}})
    assert approval["approved"] is True and approval["responded_by"] == "ana"


@pytest.mark.parametrize("approval", ["approve", "reject"])
def test_without_a_response_the_conf_decision_is_read_back(tmp_path, approval) -> None:
    route_decision(decision(NEEDS_APPROVAL), approval, tmp_path)
    for response in (None, {}):
        assert read_approval(tmp_path, response) == {
            "approved": approval == "approve", "decided_by": f"conf approval={approval}", "responded_by": None,
        }


def test_no_response_and_no_record_is_no_approval(tmp_path) -> None:
    route_decision(decision(PROMOTE), "approve", tmp_path)
    assert read_approval(tmp_path, None) is None


# --------------------------------------------------------------------------- approval_body


def test_the_approval_body_shows_scores_evidence_and_reasons() -> None:
    evidence = {"vs_champion": {"queries": 120, "mean_delta": 0.01234, "ci_low": -0.004, "ci_high": 0.03,
                                "p_value": 0.21}}
    body = approval_body(decision(NEEDS_APPROVAL, evidence=evidence))
    assert "| Model | ndcg@10 |" in body
    assert "| candidate | 0.8123 |" in body
    assert "| champion (production) | 0.8000 |" in body
    assert "| untuned base | 0.6000 |" in body
    assert "Paired bootstrap over 120 eval queries: mean difference +0.0123 (CI -0.0040 … +0.0300), p = 0.2100." \
        in body
    assert "- not clearly better than the champion (p = 0.2100)" in body


def test_the_approval_body_without_champion_or_bootstrap() -> None:
    body = approval_body(decision(NEEDS_APPROVAL, champion=None))
    assert "| champion (production) | n/a |" in body
    assert "bootstrap" not in body
