"""Length-grouped training batches: less padding, same randomness.

A batch is padded to its longest pair, so a random batch of mixed lengths spends most of its compute on padding
when lengths vary (code snippets, FAQ answers). The sampler below shuffles the pairs, cuts the shuffled order
into mega-batches of ``MEGA_BATCH`` batches, sorts each mega-batch by token length and cuts it into batches,
then shuffles the batch order. Every batch is still a random draw of the data (its members come from one random
mega-batch), so the optimisation sees the same mixture as with plain shuffling, and the order is seeded per
epoch, so a run is reproducible and a resumed run continues the same sequence.

Token lengths are counted once per run (one fast-tokenizer call over all pairs) and passed in; the loss still
tokenizes each batch, which costs little next to the forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

MEGA_BATCH = 32


def pair_lengths(tokenizer: Any, queries: Sequence[str], documents: Sequence[str], max_length: int) -> list[int]:
    """Token count of each (query, document) pair as the model will see it (truncated to ``max_length``)."""
    if not queries:
        return []
    encoded = tokenizer(
        list(queries), list(documents), truncation=True, max_length=max_length,
        return_attention_mask=False, return_token_type_ids=False,
    )
    return [len(ids) for ids in encoded["input_ids"]]


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, drop_last: bool = False, mega_batch: int = MEGA_BATCH
) -> list[list[int]]:
    """The batches (lists of indices) of one epoch; deterministic for a given seed."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    sizes = np.asarray(lengths)
    span = batch_size * max(1, mega_batch)
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = order[start:start + span]
        # Stable sort, longest first, so equal lengths keep their shuffled order.
        chunk = chunk[np.argsort(-sizes[chunk], kind="stable")]
        batches.extend(chunk[i:i + batch_size].tolist() for i in range(0, len(chunk), batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches = [b for b in batches if len(b) == batch_size]
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def padding_share(lengths: Sequence[int], batch_size: int, seed: int) -> dict[str, float]:
    """Share of padded positions in one epoch: length-grouped batches vs plain random batches (for the log)."""

    def share(batches: list[list[int]]) -> float:
        sizes = np.asarray(lengths)
        padded = sum(int(sizes[b].max()) * len(b) for b in batches if b)
        return round(1.0 - float(sizes.sum()) / padded, 4) if padded else 0.0

    order = np.random.default_rng(seed).permutation(len(lengths)).tolist()
    plain = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    return {"grouped": share(length_grouped_batches(lengths, batch_size, seed)), "random": share(plain)}


def make_length_grouped_sampler(lengths: Sequence[int]) -> Any:
    """A sentence-transformers ``batch_sampler`` class bound to these pair lengths.

    sentence-transformers accepts a ``DefaultBatchSampler`` subclass as ``batch_sampler``; it constructs it with
    the dataset, batch size and seed, and calls ``set_epoch`` at each epoch (the per-epoch order comes from it).
    """
    from sentence_transformers.base.sampler import DefaultBatchSampler

    frozen = list(int(n) for n in lengths)

    class LengthGroupedBatchSampler(DefaultBatchSampler):  # type: ignore[misc]
        def __init__(self, dataset: Any, batch_size: int, drop_last: bool, valid_label_columns: Any = None,
                     generator: Any = None, seed: int = 0) -> None:
            super().__init__(dataset, batch_size=batch_size, drop_last=drop_last,
                             valid_label_columns=valid_label_columns, generator=generator, seed=seed)
            if len(dataset) != len(frozen):
                raise ValueError(f"length-grouped sampler: {len(frozen)} lengths for {len(dataset)} pairs")

        def _batches(self) -> list[list[int]]:
            return length_grouped_batches(frozen, self.batch_size, self.seed + self.epoch, self.drop_last)

        def __iter__(self) -> Iterator[list[int]]:
            yield from self._batches()

        def __len__(self) -> int:
            full, rest = divmod(len(frozen), self.batch_size)
            return full if self.drop_last else full + bool(rest)

    return LengthGroupedBatchSampler
