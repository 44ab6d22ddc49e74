"""Freshness check: is there enough new labeled data since the champion to be worth a training run?

The champion's data lineage is read from its model card on the Hub (the ``reranker`` block of the card's
YAML metadata, written by :mod:`reranker_tasks.model_card`), so no side database is needed.

New pairs are counted as ``pairs - champion pairs``: labels accumulate. An unchanged data fingerprint counts
as 0 new pairs. A changed fingerprint with no more pairs than the champion's (relabelled or pruned data)
cannot be counted from a fingerprint and counts and is never skipped: the gate then decides.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from reranker_tasks import layout

log = logging.getLogger(__name__)

CARD_METADATA_KEY = "reranker"


@dataclass(frozen=True)
class FreshnessDecision:
    skip: bool
    reason: str
    new_pairs: int | None
    champion_fingerprint: str | None
    champion_pairs: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_champion_lineage(repo_id: str, token: str | None) -> dict[str, Any] | None:
    """The ``reranker`` metadata block of the card on ``main``; None when there is no repo, card or block."""
    from huggingface_hub import ModelCard, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        path = hf_hub_download(repo_id, layout.MODEL_CARD_FILE, revision="main", token=token)
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        return None
    block = ModelCard.load(path).data.to_dict().get(CARD_METADATA_KEY)
    return block if isinstance(block, dict) else None


def decide_freshness(
    fingerprint: str, pairs: int, min_new_pairs: int, champion: dict[str, Any] | None
) -> FreshnessDecision:
    """Skip when the data differs from the champion's by fewer than ``min_new_pairs`` pairs (0 disables it)."""
    champion_fp = champion.get("data_fingerprint") if champion else None
    champion_pairs = champion.get("pairs") if champion else None
    if min_new_pairs <= 0:
        return FreshnessDecision(False, "min_new_pairs is 0: always train", None, champion_fp, champion_pairs)
    if champion is None or champion_fp is None or not isinstance(champion_pairs, int):
        return FreshnessDecision(False, "no champion data lineage to compare with", None, champion_fp, champion_pairs)
    if champion_fp == fingerprint:
        return FreshnessDecision(
            True, f"the data is the champion's (fingerprint {fingerprint[:8]}): 0 new pairs < min_new_pairs "
            f"{min_new_pairs}", 0, champion_fp, champion_pairs,
        )
    new_pairs = pairs - champion_pairs
    if new_pairs <= 0:
        return FreshnessDecision(
            False, f"the data changed (fingerprint {fingerprint[:8]} vs {champion_fp[:8]}) without growing: "
            "relabelled or pruned data is always trained on", None, champion_fp, champion_pairs,
        )
    if new_pairs < min_new_pairs:
        return FreshnessDecision(
            True, f"{new_pairs} new pairs since the champion ({pairs} vs {champion_pairs}) < min_new_pairs "
            f"{min_new_pairs}", new_pairs, champion_fp, champion_pairs,
        )
    return FreshnessDecision(
        False, f"{new_pairs} new pairs since the champion >= min_new_pairs {min_new_pairs}", new_pairs,
        champion_fp, champion_pairs,
    )
