"""The entry point: :func:`read_source` picks the reader for the configured source (SQL, a saved dataset, a
folder or one file).

Kept apart from the package ``__init__`` so the dispatch is one small module that imports every reader, while
the readers never import it.
"""

from __future__ import annotations

import numpy as np

from reranker_tasks.config import ExtractConfig
from reranker_tasks.sources.files import _LABELS, _file_format, _read_location
from reranker_tasks.sources.folders import _is_saved_dataset, _read_folder, _read_saved_dataset
from reranker_tasks.sources.locations import _call, _locate
from reranker_tasks.sources.results import RawSource
from reranker_tasks.sources.sql import read_sql


def read_source(config: ExtractConfig, sql_url: str | None = None) -> RawSource:
    """Read the configured source.

    Args:
        config: the extract config (``source_path``/``source_format``, or ``sql_query``).
        sql_url: SQLAlchemy URL of ``sql_conn_id`` (resolved by the orchestrator), for SQL sources.
            Never shown: not in the description, not in error messages.

    Returns:
        The raw frame with ``source_row``/``source_file``, the file names, the format and a description.

    Raises:
        DataError: missing, unreadable or malformed source; a folder mixing formats or columns; a failing query.
        SourceUnavailable: the database (or a remote filesystem) cannot be reached; worth a retry.
    """
    if config.is_sql:
        return read_sql(config, sql_url)
    location = _locate(config.source_path, config)
    if config.source_format == "datasets" or _is_saved_dataset(location):
        return _read_saved_dataset(location, config.max_rows)
    if _call(location, lambda: location.fs.isdir(location.path)):
        return _read_folder(location, config.source_format)
    fmt = _file_format(location, config.source_format)
    frame, typed = _read_location(location, fmt)
    frame["source_file"] = np.zeros(len(frame), dtype="int32")
    description = f"{_LABELS.get(fmt, fmt)} file {location.display}"
    return RawSource(frame=frame, files=[location.name], fmt=fmt, typed=typed, description=description)
