"""Length-grouped batches: every pair once per epoch, less padding than random batches, seeded order."""

from __future__ import annotations

import numpy as np
import pytest

from reranker_tasks.batching import length_grouped_batches, make_length_grouped_sampler, padding_share


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    return np.random.default_rng(seed).integers(8, 512, size=n).tolist()


@pytest.mark.parametrize("n, batch_size", [(1000, 16), (17, 4), (5, 16), (0, 8)])
def test_every_pair_appears_exactly_once_per_epoch(n: int, batch_size: int) -> None:
    batches = length_grouped_batches(_lengths(n), batch_size, seed=3)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(n))
    assert all(0 < len(b) <= batch_size for b in batches)
    assert sum(len(b) < batch_size for b in batches) <= 1  # only the last cut of the last mega-batch is short


def test_drop_last_drops_only_the_short_batch() -> None:
    batches = length_grouped_batches(_lengths(17), 4, seed=1, drop_last=True)
    assert len(batches) == 4 and all(len(b) == 4 for b in batches)


def test_same_seed_same_batches_other_seed_other_order() -> None:
    lengths = _lengths()
    assert length_grouped_batches(lengths, 16, seed=5) == length_grouped_batches(lengths, 16, seed=5)
    assert length_grouped_batches(lengths, 16, seed=5) != length_grouped_batches(lengths, 16, seed=6)


def test_grouping_cuts_padding_and_batches_are_not_in_length_order() -> None:
    lengths = _lengths()
    share = padding_share(lengths, 16, seed=0)
    assert share["grouped"] < share["random"] / 3
    longest = [max(lengths[i] for i in b) for b in length_grouped_batches(lengths, 16, seed=0)]
    assert longest != sorted(longest) and longest != sorted(longest, reverse=True)


def test_equal_lengths_pad_nothing() -> None:
    assert padding_share([20] * 64, 8, seed=0) == {"grouped": 0.0, "random": 0.0}


def test_sampler_follows_the_epoch_and_checks_the_dataset_size() -> None:
    lengths = _lengths(100)
    sampler_cls = make_length_grouped_sampler(lengths)
    sampler = sampler_cls(list(range(100)), batch_size=8, drop_last=False, seed=42)
    first = list(sampler)
    assert len(first) == len(sampler) == 13
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    with pytest.raises(ValueError, match="100 lengths for 99 pairs"):
        sampler_cls(list(range(99)), batch_size=8, drop_last=False)


def test_bad_batch_size_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        length_grouped_batches([1, 2], 0, seed=0)
