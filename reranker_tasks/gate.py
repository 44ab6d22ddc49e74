"""Gate step: decide whether the candidate replaces production. A pure function plus its decision record.

Three outcomes:

* ``promote`` — every rule holds;
* ``needs_approval`` — the candidate is sound and better than the champion on the point estimate, but not
  clearly: the gain is below ``min_gain`` or the paired bootstrap cannot tell it from noise. A person decides
  (the DAG's approval task), or the run's ``approval`` setting does;
* ``reject`` — any hard rule fails.

Hard rules (a failure rejects; every failing rule is reported, not just the first):

1. ``finite``: the candidate's ranking metrics are finite numbers (``not (x < t)`` is True for NaN, so
   finiteness is checked explicitly, never implied by a comparison);
2. ``min_eval_queries``: enough eval queries were scored to say anything;
3. ``no_leakage``: no eval query occurs in the training split (a model graded on what it studied);
4. ``weights_finite``: no NaN/inf parameter in the candidate;
5. ``scores_vary``: the candidate's scores are finite and not constant (a collapsed model can still post a
   perfect-looking ranking when ties fall its way);
6. ``score_scale``: the candidate applies the champion's activation (sigmoid probabilities vs raw logits — a
   consumer thresholding at 0.5 would break silently), and sigmoid scores lie in [0, 1];
7. ``min_ndcg``: an absolute floor that also binds the first model of a repo;
8. ``beats_base``: fine-tuning must not make things worse than the untuned base model;
9. ``slices``: no slice (with at least ``min_slice_queries`` queries) drops more than ``max_slice_regression``
   below production (the champion; the base model when there is none);
10. ``beats_champion``: better than the champion on the point estimate.

Soft rules (when all hard rules hold, a failure asks for approval):

11. ``min_gain``: at least ``min_gain`` above the champion — an absolute margin, so it stays satisfiable near a
    perfect score (a relative margin over 0.99 would ask for more than 1.0);
12. ``significance``: a seeded paired bootstrap over per-query NDCG@10 differences gives
    ``P(mean difference <= 0) < 1 - confidence``.

``force`` (a person's explicit override, recorded in the card) bypasses exactly the comparisons with the
champion — rules 10-12 — never the floors, the slices or the sanity rules: a forced candidate whose only failing
rules are those is promoted, with ``forced`` listing what was bypassed.

The first model of a repo has no champion: rules 10-12 pass as not applicable, the floors and sanity rules
still apply. A base or champion score that is not a finite number fails its rule: a comparison that could not
be made is not a comparison that was won.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from reranker_tasks import layout
from reranker_tasks.config import GateConfig
from reranker_tasks.decision import NEEDS_APPROVAL, PROMOTE, REJECT, GateDecision  # noqa: F401 - re-exported
from reranker_tasks.metrics import RANKING_KEYS, paired_bootstrap
from reranker_tasks.paths import write_json_atomic

DECISION_FILE = layout.DECISION_FILE
_SCORE_STD_FLOOR = 1e-6
#: The rules ``force`` may bypass: the comparisons with the champion, nothing else.
FORCEABLE_RULES = frozenset({"beats_champion", "min_gain", "significance"})


def decide_promotion(
    metrics: Mapping[str, Any],
    config: GateConfig,
    per_query: Mapping[str, Any] | None = None,
) -> GateDecision:
    """Apply the promotion rules to the evaluate step's results.

    Args:
        metrics: the evaluate step's result dict (``primary_metric``, ``candidate``, ``base``, ``champion`` (or
            None), ``eval_queries``, and when present ``sanity``, ``slices``, ``leaked_queries``).
        config: floors, margins, confidence.
        per_query: per-query values of the primary metric for ``candidate``, ``base`` and ``champion`` (same
            query order). Without them the significance rule cannot be checked and fails as soft.

    Returns:
        The decision with one entry per rule in ``checks``.
    """
    metric = metrics["primary_metric"]
    candidate = _as_float(metrics["candidate"].get(metric))
    base = _as_float(metrics["base"].get(metric))
    champion_metrics = metrics.get("champion")
    champion = _as_float(champion_metrics.get(metric)) if champion_metrics else None
    n_eval = int(metrics["eval_queries"])
    sanity = metrics.get("sanity") or {}
    cand_sanity = sanity.get("candidate") or {}
    per_query = per_query or {}

    checks: list[dict[str, Any]] = []

    def check(name: str, passed: bool, detail: str, hard: bool = True) -> None:
        checks.append({"rule": name, "passed": bool(passed), "hard": hard, "detail": detail})

    ranking_values = [_as_float(v) for k, v in metrics["candidate"].items() if k in RANKING_KEYS]
    finite = math.isfinite(candidate) and all(math.isfinite(v) for v in ranking_values)
    check("finite", finite, f"candidate {metric} = {candidate!r}")
    check(
        "min_eval_queries",
        n_eval >= config.min_eval_queries,
        f"{n_eval} eval queries (need >= {config.min_eval_queries})",
    )
    leaked = int(metrics.get("leaked_queries") or 0)
    check("no_leakage", leaked == 0, f"{leaked} eval queries also occur in the training split")
    if cand_sanity:
        check("weights_finite", bool(cand_sanity.get("weights_finite")),
              "all candidate weights finite" if cand_sanity.get("weights_finite") else "candidate has NaN/inf weights")
        scores = cand_sanity.get("scores") or {}
        std = _as_float(scores.get("std"))
        non_finite = int(scores.get("non_finite") or 0)
        check("scores_vary", non_finite == 0 and math.isfinite(std) and std > _SCORE_STD_FLOOR,
              f"candidate scores: std {std:.3g}, {non_finite} non-finite of {scores.get('pairs')}")
        check("score_scale", *_score_scale(cand_sanity, (sanity.get("champion") or {}) if champion_metrics else None))
    else:
        check("sanity", False, "the evaluate step recorded no sanity facts (weights, score spread, activation)")
    check("min_ndcg", finite and candidate >= config.min_ndcg,
          f"candidate {candidate:.4f} vs floor {config.min_ndcg:.4f}")
    check("beats_base", finite and math.isfinite(base) and candidate >= base,
          f"candidate {candidate:.4f} vs untuned base {base:.4f}")
    _check_slices(metrics.get("slices") or {}, metric, config, check, has_champion=champion_metrics is not None)

    evidence: dict[str, Any] = {"confidence": config.confidence, "bootstrap_samples": config.bootstrap_samples}
    cand_q = _array(per_query.get("candidate"))
    base_q = _array(per_query.get("base"))
    if cand_q is not None and base_q is not None and cand_q.shape == base_q.shape:
        evidence["vs_base"] = paired_bootstrap(
            cand_q, base_q, samples=config.bootstrap_samples, confidence=config.confidence, seed=config.seed
        )
    if champion is None:
        check("beats_champion", True, "no champion yet: first model of the repo (floors and sanity still apply)")
        check("min_gain", True, "no champion yet: not applicable", hard=False)
        check("significance", True, "no champion yet: not applicable", hard=False)
    else:
        comparable = finite and math.isfinite(champion)
        delta = candidate - champion
        check("beats_champion", comparable and delta > 0,
              f"candidate {candidate:.4f} vs champion {champion:.4f} (delta {delta:+.4f})")
        needed = champion + config.min_gain
        check("min_gain", comparable and candidate >= needed,
              f"candidate {candidate:.4f} vs champion {champion:.4f} + min_gain {config.min_gain:.4f} = {needed:.4f}",
              hard=False)
        champ_q = _array(per_query.get("champion"))
        if cand_q is not None and champ_q is not None and cand_q.shape == champ_q.shape and cand_q.size:
            boot = paired_bootstrap(
                cand_q, champ_q, samples=config.bootstrap_samples, confidence=config.confidence, seed=config.seed
            )
            evidence["vs_champion"] = boot
            alpha = 1.0 - config.confidence
            significant = math.isfinite(boot["p_value"]) and boot["p_value"] < alpha
            check("significance", significant,
                  f"paired bootstrap over {boot['queries']} queries: mean delta {boot['mean_delta']:+.4f}, "
                  f"{config.confidence:.0%} CI [{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}], "
                  f"p {boot['p_value']:.4f} (need < {alpha:.4f})",
                  hard=False)
        else:
            check("significance", False, "no per-query scores for candidate and champion: significance unknown",
                  hard=False)

    hard_failed = [c for c in checks if not c["passed"] and c["hard"]]
    soft_failed = [c for c in checks if not c["passed"] and not c["hard"]]
    forced: tuple[str, ...] = ()
    failed = hard_failed + soft_failed
    if config.force and failed and all(c["rule"] in FORCEABLE_RULES for c in failed):
        forced = tuple(c["rule"] for c in failed)
        outcome, reasons = PROMOTE, failed
    elif hard_failed:
        outcome, reasons = REJECT, hard_failed + soft_failed
    elif soft_failed:
        outcome, reasons = NEEDS_APPROVAL, soft_failed
    else:
        outcome, reasons = PROMOTE, checks
    return GateDecision(
        outcome=outcome,
        reasons=tuple(f"{c['rule']}: {c['detail']}" for c in reasons),
        checks=tuple(checks),
        metric=metric,
        candidate=candidate,
        base=base,
        champion=champion,
        evidence=evidence,
        forced=forced,
    )


def record_decision(decision: GateDecision, out_dir: Path) -> Path:
    """Write the decision to the run's artifacts, whatever the outcome."""
    return write_json_atomic(out_dir / DECISION_FILE, decision.to_dict())


def _score_scale(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None) -> tuple[bool, str]:
    activation = str(candidate.get("activation"))
    scores = candidate.get("scores") or {}
    problems = []
    if activation == "Sigmoid" and not scores.get("in_unit_interval"):
        problems.append(f"sigmoid scores outside [0, 1] (min {scores.get('min')}, max {scores.get('max')})")
    if champion is not None and champion.get("activation") and champion.get("activation") != activation:
        problems.append(f"candidate applies {activation} but the champion applies {champion.get('activation')}")
    if problems:
        return False, "; ".join(problems)
    return True, f"{activation} activation" + (", as the champion" if champion else "")


def _check_slices(
    slices: Mapping[str, Any], metric: str, config: GateConfig, check: Any, *, has_champion: bool
) -> None:
    """No slice may fall more than ``max_slice_regression`` below production (the base without a champion)."""
    if not slices:
        check("slices", True, "no slice column: nothing to compare per slice")
        return
    reference = "champion" if has_champion else "base"
    regressions, compared = [], 0
    for name, by_model in sorted(slices.items()):
        cand, ref = (by_model or {}).get("candidate"), (by_model or {}).get(reference)
        if not cand or not ref or int(cand.get("queries") or 0) < config.min_slice_queries:
            continue
        compared += 1
        c, r = _as_float(cand.get(metric)), _as_float(ref.get(metric))
        if not (math.isfinite(c) and math.isfinite(r)) or c < r - config.max_slice_regression:
            regressions.append(f"{name} {c:.4f} vs {reference} {r:.4f}")
    detail = (
        f"{len(regressions)} of {compared} slices fall more than {config.max_slice_regression:.4f} below "
        f"the {reference}: " + ", ".join(regressions)
        if regressions
        else f"{compared} slices with >= {config.min_slice_queries} queries, none more than "
        f"{config.max_slice_regression:.4f} below the {reference}"
    )
    check("slices", not regressions, detail)


def _array(values: Any) -> np.ndarray | None:
    if values is None:
        return None
    return np.asarray(values, dtype=float)


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
