"""The gate's verdict as a value: what gate decides and await_approval (approval.py) routes.

Its own module so that the approval step reads the decision without importing the gate step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reranker_tasks.paths import json_safe

PROMOTE, NEEDS_APPROVAL, REJECT = "promote", "needs_approval", "reject"


@dataclass(frozen=True)
class GateDecision:
    outcome: str  # promote | needs_approval | reject
    reasons: tuple[str, ...]  # the failing rules; every rule when promoting
    checks: tuple[dict[str, Any], ...]
    metric: str
    candidate: float
    base: float
    champion: float | None
    evidence: dict[str, Any] = field(default_factory=dict)  # bootstrap results vs champion and base
    forced: tuple[str, ...] = ()  # failing rules that conf force=true bypassed

    @property
    def promote(self) -> bool:
        return self.outcome == PROMOTE

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON dict (a non-finite score becomes None; the rule details still say ``nan``)."""
        return json_safe(
            {
                "outcome": self.outcome,
                "promote": self.promote,
                "reasons": list(self.reasons),
                "checks": [dict(c) for c in self.checks],
                "metric": self.metric,
                "candidate": self.candidate,
                "base": self.base,
                "champion": self.champion,
                "evidence": self.evidence,
                "forced": list(self.forced),
            }
        )

    def summary(self) -> str:
        """One line for the task log: the outcome and why."""
        head = {PROMOTE: "PROMOTE", NEEDS_APPROVAL: "NEEDS APPROVAL", REJECT: "NOT PROMOTED (rejected)"}[self.outcome]
        if self.forced:
            head = f"PROMOTE (forced by conf force=true, bypassing {', '.join(self.forced)})"
        return f"{head}: " + "; ".join(self.reasons)
