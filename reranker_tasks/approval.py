"""Where a gate decision leads, and who approved a borderline candidate.

* ``promote`` → the model card task; ``reject`` → nowhere (the run ends, not promoted).
* ``needs_approval`` → depends on the run's ``approval`` setting:
  ``wait`` → the Airflow approval task, whose body (:func:`approval_body`) shows the evidence to a person;
  ``approve`` / ``reject`` → decided without asking, recorded in ``gate/approval.json`` and said in the log.
  ``dag.test()`` (``make run``) has nobody to ask, so ``make run`` passes ``approval=reject`` unless told otherwise.

The approver — a person from the approval task's response, or the conf — goes into the model card.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_tasks import layout
from reranker_tasks.decision import NEEDS_APPROVAL, PROMOTE, GateDecision
from reranker_tasks.paths import read_json, write_json_atomic

CARD_TASK = "model_card"
APPROVAL_TASK = "await_approval"
APPROVAL_FILE = layout.APPROVAL_FILE


@dataclass(frozen=True)
class Route:
    follow: tuple[str, ...]  # task ids the branch follows
    message: str  # one line for the log: what happens next and why
    approval_body: str  # markdown for the approval task ("" unless a person is asked)


def route_decision(decision: GateDecision, approval: str, out_dir: Path) -> Route:
    """Map the gate outcome and the ``approval`` setting to the tasks to run next."""
    if decision.outcome == PROMOTE:
        return Route((CARD_TASK,), "next: model card and push", "")
    if decision.outcome != NEEDS_APPROVAL:
        return Route((), "next: nothing (rejected); model_card and publish are skipped", "")
    if approval == "wait":
        return Route(
            (APPROVAL_TASK,),
            "next: waiting for a person to approve or reject in the Airflow UI (task await_approval)",
            approval_body(decision),
        )
    approved = approval == "approve"
    write_json_atomic(
        out_dir / APPROVAL_FILE,
        {"approved": approved, "decided_by": f"conf approval={approval}", "responded_by": None},
    )
    if approved:
        return Route((CARD_TASK,), "APPROVED by conf approval=approve (nobody asked): next: model card and push", "")
    return Route(
        (),
        "NOT PROMOTED: needs approval, and conf approval=reject decided without asking "
        "(set approval=approve to push borderline candidates, or approval=wait to ask a person)",
        "",
    )


def read_approval(gate_dir: Path, hitl_response: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Who approved, for the card: the approval task's response, else the conf decision, else None (no approval)."""
    if hitl_response:
        user = hitl_response.get("responded_by_user") or {}
        name = user.get("name") if isinstance(user, Mapping) else str(user)
        chosen = list(hitl_response.get("chosen_options") or [])
        return {
            "approved": "Approve" in chosen,
            "decided_by": "a person in the Airflow UI",
            "responded_by": name or None,
            "responded_at": str(hitl_response.get("responded_at") or "") or None,
        }
    path = gate_dir / APPROVAL_FILE
    if path.exists():
        return dict(read_json(path))
    return None


def approval_body(decision: GateDecision) -> str:
    """The evidence a person needs to decide, as markdown (rendered in the Airflow approval form)."""
    data = decision.to_dict()
    lines = [
        "The candidate passed every hard rule but is not clearly better than production.",
        "",
        f"| Model | {data['metric']} |",
        "|---|---|",
        f"| candidate | {_fmt(data['candidate'])} |",
        f"| champion (production) | {_fmt(data['champion'])} |",
        f"| untuned base | {_fmt(data['base'])} |",
        "",
    ]
    boot = (data.get("evidence") or {}).get("vs_champion")
    if boot:
        lines.append(
            f"Paired bootstrap over {boot['queries']} eval queries: mean difference {_fmt(boot['mean_delta'], '+')} "
            f"(CI {_fmt(boot['ci_low'], '+')} … {_fmt(boot['ci_high'], '+')}), p = {_fmt(boot['p_value'])}."
        )
        lines.append("")
    lines.append("Why a person is asked:")
    lines.extend(f"- {reason}" for reason in data["reasons"])
    lines += ["", "Approve pushes the candidate to main (production); Reject or no answer keeps the champion."]
    return "\n".join(lines)


def _fmt(value: Any, sign: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:{sign}.4f}"
