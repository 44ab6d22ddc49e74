"""Gate step: decide whether the candidate replaces production. A pure function plus its record.

Rules (all must hold; every failing rule is reported, not just the first):

1. the candidate's NDCG@10 is a finite number (``not (x < t)`` is True for NaN, so finiteness is checked
   explicitly, never implied by a comparison);
2. at least ``min_eval_queries`` eval queries were scored;
3. NDCG@10 >= ``min_ndcg`` (an absolute floor that also binds the first model of a repo);
4. NDCG@10 >= the untuned base model's (fine-tuning must not make things worse);
5. when a champion exists: NDCG@10 >= champion + ``min_gain``. The margin is absolute, so it stays
   satisfiable near a perfect score (a relative margin over 0.99 would ask for more than 1.0).

A base or champion score that is not a finite number fails its rule: a comparison that could not be made
is not a comparison that was won, and production is never replaced on a broken measurement.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reranker_tasks.config import GateConfig
from reranker_tasks.paths import json_safe, write_json_atomic

DECISION_FILE = "decision.json"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: tuple[str, ...]  # why not, when rejected; what passed, when promoted
    checks: tuple[dict[str, Any], ...]
    metric: str
    candidate: float
    base: float
    champion: float | None

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON dict (a non-finite score becomes None; the rule details still say ``nan``)."""
        payload = json_safe(asdict(self))
        payload["reasons"] = list(self.reasons)
        payload["checks"] = [dict(c) for c in self.checks]
        return payload


def decide_promotion(metrics: dict[str, Any], config: GateConfig) -> GateDecision:
    """Apply the promotion rules to the evaluate step's metrics.

    Args:
        metrics: the evaluate step's result dict (``primary_metric``, ``candidate``, ``base``,
            ``champion`` (or None), ``eval_queries``).
        config: floors and margins.

    Returns:
        The decision with one entry per rule in ``checks``.
    """
    metric = metrics["primary_metric"]
    candidate = _as_float(metrics["candidate"].get(metric))
    base = _as_float(metrics["base"].get(metric))
    champion_metrics = metrics.get("champion")
    champion = _as_float(champion_metrics.get(metric)) if champion_metrics else None
    n_eval = int(metrics["eval_queries"])

    checks: list[dict[str, Any]] = []

    def check(name: str, passed: bool, detail: str) -> None:
        checks.append({"rule": name, "passed": bool(passed), "detail": detail})

    finite = math.isfinite(candidate)
    check("finite", finite, f"candidate {metric} = {candidate!r}")
    check(
        "min_eval_queries",
        n_eval >= config.min_eval_queries,
        f"{n_eval} eval queries (need >= {config.min_eval_queries})",
    )
    check("min_ndcg", finite and candidate >= config.min_ndcg, f"candidate {candidate:.4f} vs floor {config.min_ndcg:.4f}")
    check("beats_base", finite and math.isfinite(base) and candidate >= base,
          f"candidate {candidate:.4f} vs untuned base {base:.4f}")
    if champion is not None:
        needed = champion + config.min_gain
        check(
            "beats_champion",
            finite and math.isfinite(champion) and candidate >= needed,
            f"candidate {candidate:.4f} vs champion {champion:.4f} + min_gain {config.min_gain:.4f} = {needed:.4f}",
        )
    else:
        check("beats_champion", True, "no champion yet: first model of the repo (floors still apply)")

    failed = [f"{c['rule']}: {c['detail']}" for c in checks if not c["passed"]]
    promote = not failed
    reasons = tuple(failed) if failed else tuple(f"{c['rule']}: {c['detail']}" for c in checks)
    return GateDecision(promote, reasons, tuple(checks), metric, candidate, base, champion)


def record_decision(decision: GateDecision, out_dir: Path) -> Path:
    """Write the decision to the run's artifacts, promoted or not."""
    return write_json_atomic(out_dir / DECISION_FILE, decision.to_dict())


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
