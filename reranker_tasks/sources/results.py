"""What every reader hands back: :class:`RawSource` on success, :class:`SourceUnavailable` when it cannot reach
the source right now.

Its own module because the readers (files, folders, datasets, SQL) and the entry point all build or raise these,
and none of them should have to import another reader to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from reranker_tasks.errors import RerankerError


class SourceUnavailable(RerankerError):
    """The source cannot be reached right now (database down, connection refused, DNS, object-store outage).

    Not a :class:`~reranker_tasks.errors.PermanentError`: the orchestrator retries the task.
    """


@dataclass
class RawSource:
    """A source read as it is."""

    frame: pd.DataFrame  # the source's own columns + source_row (int64) + source_file (int32)
    files: list[str]  # display names of the files read; source_file indexes this list
    fmt: str  # csv, tsv, jsonl, triplets, parquet, sql, datasets
    typed: bool  # True when values carry their types (JSON, Parquet, SQL); False for text formats (CSV, TSV)
    description: str = ""  # human-readable, never credentials or SQL text
    notes: list[str] = field(default_factory=list)
    truncated: bool = False  # True when reading stopped at max_rows + 1 rows (SQL, datasets): the source has more
