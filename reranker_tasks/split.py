"""Split step: a deterministic train/eval split by query.

Every pair of a query goes to the same side, so the eval metrics measure queries the model never saw.
Queries are compared normalised (case-folded, whitespace collapsed): "Reset password" and
"reset  password" are one query and cannot straddle the split.

The side of a query depends only on the seed and the query text (a salted sha256 ranking), not on
row order or on the other queries' presence beyond the eval fraction, so the same data and seed always
give the same split.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reranker_tasks.config import SplitConfig
from reranker_tasks.errors import DataError
from reranker_tasks.paths import write_json_atomic

log = logging.getLogger(__name__)

TRAIN_FILE = "train.parquet"
EVAL_FILE = "eval.parquet"


@dataclass(frozen=True)
class SplitResult:
    train_path: str
    eval_path: str
    train_pairs: int
    eval_pairs: int
    train_queries: int
    eval_queries: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def normalise_query(text: str) -> str:
    """Case-folded, whitespace-collapsed query text: the identity of a query for the split."""
    return " ".join(str(text).split()).casefold()


def split_pairs(snapshot_path: Path, out_dir: Path, config: SplitConfig) -> SplitResult:
    """Split the validated snapshot into train and eval Parquet files by query.

    Args:
        snapshot_path: the validated snapshot (columns query, document, label, source_row).
        out_dir: the run's ``split`` folder.
        config: eval fraction and seed.

    Returns:
        Paths and counts of both sides.

    Raises:
        DataError: fewer than two distinct queries (no split is possible).
    """
    frame = pd.read_parquet(snapshot_path)
    keys = frame["query"].map(normalise_query)
    unique = sorted(set(keys))
    if len(unique) < 2:
        raise DataError(f"split: need at least 2 distinct queries to split by query, found {len(unique)}")
    ranked = sorted(unique, key=lambda q: hashlib.sha256(f"{config.seed}\x1f{q}".encode()).hexdigest())
    n_eval = min(len(unique) - 1, max(1, round(len(unique) * config.eval_fraction)))
    eval_keys = set(ranked[:n_eval])
    is_eval = keys.isin(eval_keys)
    train, evaluation = frame[~is_eval], frame[is_eval]

    # The whole point of splitting by query: assert it, not assume it.
    leaked = set(keys[~is_eval]) & set(keys[is_eval])
    if leaked:  # pragma: no cover - impossible by construction; guards future edits
        raise AssertionError(f"split leaked {len(leaked)} queries into both sides")

    out_dir.mkdir(parents=True, exist_ok=True)
    train_path, eval_path = out_dir / TRAIN_FILE, out_dir / EVAL_FILE
    train.to_parquet(train_path, index=False)
    evaluation.to_parquet(eval_path, index=False)
    result = SplitResult(
        train_path=str(train_path),
        eval_path=str(eval_path),
        train_pairs=len(train),
        eval_pairs=len(evaluation),
        train_queries=len(unique) - n_eval,
        eval_queries=n_eval,
    )
    write_json_atomic(out_dir / "split.json", result.to_dict())
    log.info(
        "split by query: train %d pairs / %d queries, eval %d pairs / %d queries",
        result.train_pairs, result.train_queries, result.eval_pairs, result.eval_queries,
    )
    return result
