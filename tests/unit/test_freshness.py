"""Unit tests of the freshness check: skip retraining when too little of the data is new."""

from __future__ import annotations

from reranker_tasks.freshness import decide_freshness


def test_freshness_skips_only_when_too_little_new_data() -> None:
    champion = {"data_fingerprint": "a" * 64, "pairs": 100}
    assert decide_freshness("a" * 64, 100, 10, champion).skip
    assert decide_freshness("b" * 64, 105, 10, champion).skip
    assert not decide_freshness("b" * 64, 110, 10, champion).skip
    assert not decide_freshness("b" * 64, 100, 10, champion).skip, "relabelled data is always trained on"
    assert not decide_freshness("a" * 64, 100, 0, champion).skip, "0 disables the check"
    assert not decide_freshness("a" * 64, 100, 10, None).skip, "no champion: train"
