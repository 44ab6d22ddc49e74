"""Split step: a deterministic train/eval split by query.

Every pair of a query goes to the same side, so the eval metrics measure queries the model never saw.
Queries are compared normalised (case-folded, whitespace collapsed): "Reset password" and
"reset  password" are one query and cannot straddle the split.

The side of a query depends only on the seed and the query text (a salted sha256 ranking), not on
row order or on the other queries' presence beyond the eval fraction, so the same data and seed always
give the same split.

With a fixed evaluation set (``eval_path``, a "golden" set that stays the same across runs so metrics
are comparable run to run), that set is the eval side, and every pair whose normalised query appears in it
is removed from training (and counted).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reranker_tasks import layout
from reranker_tasks.config import SplitConfig
from reranker_tasks.errors import DataError
from reranker_tasks.paths import write_json_atomic
from reranker_tasks.schema import normalise_queries, normalise_query  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

TRAIN_FILE = layout.TRAIN_SPLIT_FILE
EVAL_FILE = layout.EVAL_SPLIT_FILE


@dataclass(frozen=True)
class SplitResult:
    train_path: str
    eval_path: str
    train_pairs: int
    eval_pairs: int
    train_queries: int
    eval_queries: int
    fixed_eval_set: bool = False
    removed_from_train: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def split_pairs(
    snapshot_path: Path, out_dir: Path, config: SplitConfig, eval_snapshot_path: Path | None = None
) -> SplitResult:
    """Split the validated snapshot into train and eval Parquet files by query.

    Args:
        snapshot_path: the validated snapshot (columns query, document, label, source_row, ...).
        out_dir: the run's ``split`` folder.
        config: eval fraction and seed.
        eval_snapshot_path: a fixed eval set's snapshot; when given it is the eval side.

    Returns:
        Paths and counts of both sides.

    Raises:
        DataError: fewer than two distinct queries, or nothing left to train on.
    """
    import pyarrow.parquet as pq

    # Arrow end to end: only the query column becomes pandas; the rows are filtered and written as Arrow,
    # which keeps a million-pair split well under 2 GB.
    table = pq.read_table(snapshot_path)
    keys = normalise_queries(table.column("query").to_pandas())
    removed = 0
    if eval_snapshot_path is not None:
        evaluation = pq.read_table(eval_snapshot_path)
        eval_keys = set(normalise_queries(evaluation.column("query").to_pandas()))
        is_eval = keys.isin(eval_keys).to_numpy()
        removed = int(is_eval.sum())
        train = table.filter(~is_eval)
        if train.num_rows == 0:
            raise DataError("split: every training query is also in the fixed eval set; nothing left to train on")
        n_eval = len(eval_keys)
    else:
        unique = sorted(set(keys))
        if len(unique) < 2:
            raise DataError(f"split: need at least 2 distinct queries to split by query, found {len(unique)}")
        ranked = sorted(unique, key=lambda q: hashlib.sha256(f"{config.seed}\x1f{q}".encode()).hexdigest())
        n_eval = min(len(unique) - 1, max(1, round(len(unique) * config.eval_fraction)))
        eval_keys = set(ranked[:n_eval])
        is_eval = keys.isin(eval_keys).to_numpy()
        train, evaluation = table.filter(~is_eval), table.filter(is_eval)
    train_keys = keys[~is_eval]
    del table

    # The whole point of splitting by query: assert it, not assume it.
    leaked = set(train_keys.unique()) & set(normalise_queries(evaluation.column("query").to_pandas()).unique())
    if leaked:  # pragma: no cover - impossible by construction; guards future edits
        raise AssertionError(f"split leaked {len(leaked)} queries into both sides")

    out_dir.mkdir(parents=True, exist_ok=True)
    train_path, eval_path = out_dir / TRAIN_FILE, out_dir / EVAL_FILE
    pq.write_table(train, train_path)
    pq.write_table(evaluation, eval_path)
    result = SplitResult(
        train_path=str(train_path),
        eval_path=str(eval_path),
        train_pairs=train.num_rows,
        eval_pairs=evaluation.num_rows,
        train_queries=int(train_keys.nunique()),
        eval_queries=n_eval,
        fixed_eval_set=eval_snapshot_path is not None,
        removed_from_train=removed,
    )
    write_json_atomic(out_dir / layout.SPLIT_FILE, result.to_dict())
    log.info(
        "split by query: train %d pairs / %d queries, eval %d pairs / %d queries%s",
        result.train_pairs, result.train_queries, result.eval_pairs, result.eval_queries,
        f" (fixed eval set; {removed} training pairs of eval queries removed)" if eval_snapshot_path else "",
    )
    return result
