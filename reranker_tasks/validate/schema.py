"""The snapshot's schema and the names the validate step uses, plus how a frame position is named as a source row.

Every other module of the package imports from here, and this module imports none of them: column, file, suite
and check names, the row-reference limits, the :class:`SkippedCheck` record and :class:`_RowRefs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reranker_tasks import layout

REQUIRED_COLUMNS = ("query", "document", "label")
ROW_ID_COLUMN = "source_row"
FILE_COLUMN = "source_file"
#: Columns every snapshot has.
EXPECTED_COLUMNS = (*REQUIRED_COLUMNS, ROW_ID_COLUMN)
#: Columns a snapshot may have besides those; anything else is an error.
OPTIONAL_COLUMNS = ("query_id", "doc_id", "slice", FILE_COLUMN)
REPORT_FILE = layout.VALIDATION_FILE
DATA_DOCS_DIR = layout.DATA_DOCS_DIR
DATA_DOCS_INDEX = layout.DATA_DOCS_INDEX
DATA_DOCS_SITE = "validate"
SUITE_NAME = "labeled_pairs"
EVAL_SUITE_NAME = "labeled_pairs_eval"
STATISTICS_SUITE_NAME = "labeled_pairs_statistics"
#: The default ``relevance_threshold``.
POSITIVE_THRESHOLD = 0.5
EVAL_PREFIX = "eval set: "
#: Source rows named per failure in the message / kept per expectation in the report.
ROWS_IN_MESSAGE = 5
ROWS_IN_REPORT = 20

CHECK_MAX_ROWS = "max_rows"
CHECK_MIN_QUERIES = "min_queries"
CHECK_POSITIVE_FRACTION = "positive_fraction"
CHECK_CONFLICTING_LABELS = "conflicting_labels"
CHECK_DUPLICATES = "duplicates"
CHECK_LONG_DOCUMENTS = "long_documents"

#: The expectation type of every check in the statistics suite.
_STATISTIC_TYPE = "expect_column_max_to_be_between"


@dataclass(frozen=True)
class SkippedCheck:
    """A check left out because the column it needs is missing or not numeric, or its input is not there."""

    check: str
    expectation_type: str
    column: str
    reason: str


def _is_numeric(dtype: Any) -> bool:
    return dtype is not None and pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


class _RowRefs:
    """Readable source-row references of frame positions: ``17``, or ``"a.csv:17"`` when there are several files."""

    def __init__(self, frame: pd.DataFrame, files: Sequence[str]) -> None:
        self.row_ids, self.numbering = _row_ids(frame)
        self.files: list[str] = list(files)
        self.file_ids: np.ndarray | None = None
        if FILE_COLUMN in frame.columns and pd.api.types.is_integer_dtype(frame[FILE_COLUMN].dtype):
            ids = frame[FILE_COLUMN].to_numpy(dtype="int64")
            if len(self.files) > 1 or (not self.files and len(ids) and ids.min() != ids.max()):
                self.file_ids = ids

    def refs(self, positions: Sequence[int] | np.ndarray, limit: int = ROWS_IN_REPORT) -> list[int | str]:
        chosen = [int(p) for p in np.asarray(positions)[:limit] if 0 <= int(p) < len(self.row_ids)]
        if self.file_ids is None:
            return [int(self.row_ids[p]) for p in chosen]
        return [f"{self._file_name(int(self.file_ids[p]))}:{int(self.row_ids[p])}" for p in chosen]

    def _file_name(self, index: int) -> str:
        return self.files[index] if 0 <= index < len(self.files) else f"file{index}"


def _row_ids(frame: pd.DataFrame) -> tuple[np.ndarray, str]:
    """The 1-based source row of each frame position, and how it was obtained (for the report)."""
    if ROW_ID_COLUMN in frame.columns and pd.api.types.is_integer_dtype(frame[ROW_ID_COLUMN].dtype):
        return frame[ROW_ID_COLUMN].to_numpy(dtype="int64"), ROW_ID_COLUMN
    # Not the extract contract; still name rows, by 1-based position in the snapshot.
    return np.arange(1, len(frame) + 1, dtype="int64"), "snapshot position (1-based; no integer source_row)"
