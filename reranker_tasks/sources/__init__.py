"""Sources of labeled pairs: read a source as it is into a raw frame, with row provenance.

Readers never interpret the data beyond parsing it: column mapping, label mapping and typing happen in
:mod:`reranker_tasks.extract`. Every raw frame carries ``source_row`` (1-based: CSV/TSV data row, header not
counted; JSONL line, blank lines counted; Parquet/SQL/datasets row) and ``source_file`` (index into
:attr:`RawSource.files`), so a validation failure can point a data engineer at the exact row.

What ``source_path`` may name (:func:`read_source`):

* a **file**: CSV, TSV, JSONL (pairs or the seed system's triplets), Parquet; the format from the extension
  or ``source_format``;
* a **folder** of such files (not recursive; hidden ``.x`` and ``_x`` files such as ``_SUCCESS`` are skipped):
  read in sorted name order, one format, the same columns in every file;
* an **fsspec URI** (``file:///…``, ``memory://…``, ``s3://…``: whatever fsspec implementation is installed),
  a file or a folder, checked the same way. Credentials in the URI are never shown: not in
  :attr:`RawSource.description`, not in :attr:`RawSource.files`, not in error messages;
* a **datasets** dataset saved with ``Dataset.save_to_disk`` (``source_format="datasets"``, or a folder
  holding ``dataset_info.json`` and ``state.json``).

Or ``sql_query``, run through SQLAlchemy on the URL of the connection ``sql_conn_id``; at most
``max_rows + 1`` rows are fetched (in chunks), so a runaway query fails validation instead of memory.

Text files are checked before parsing: invalid UTF-8 fails with the byte offset, and a CSV/TSV record with a
different number of fields than the header fails instead of shifting columns.

Errors: :class:`~reranker_tasks.errors.DataError` (permanent: missing, malformed, wrong query) or
:class:`SourceUnavailable` (transient: the database or the object store cannot be reached; retried).

The package, one module per concern (the readers never import :mod:`~reranker_tasks.sources.read`):

* :mod:`~reranker_tasks.sources.read`: :func:`read_source`, the dispatch to a reader;
* :mod:`~reranker_tasks.sources.results`: :class:`RawSource` and :class:`SourceUnavailable`;
* :mod:`~reranker_tasks.sources.locations`: local paths and fsspec URIs, URI redaction, filesystem errors;
* :mod:`~reranker_tasks.sources.files`: one CSV/TSV/JSONL/Parquet file, :func:`detect_format`;
* :mod:`~reranker_tasks.sources.folders`: a folder of files, a saved ``datasets`` dataset;
* :mod:`~reranker_tasks.sources.sql`: ``sql_query`` through SQLAlchemy.

The names below are re-exported for importers; the constants are read where they are defined, so a test that
patches one (e.g. ``SQL_CONNECT_TIMEOUT_S``) patches it on its module (:mod:`reranker_tasks.sources.sql`).
"""

from reranker_tasks.sources.files import DELIMITERS, EXTENSIONS, TRIPLET_KEYS, detect_format
from reranker_tasks.sources.folders import DATASET_DICT_FILE, DATASET_FILES
from reranker_tasks.sources.read import read_source
from reranker_tasks.sources.results import RawSource, SourceUnavailable
from reranker_tasks.sources.sql import SQL_CHUNK_ROWS, SQL_CONNECT_TIMEOUT_S, read_sql

__all__ = [
    "DATASET_DICT_FILE",
    "DATASET_FILES",
    "DELIMITERS",
    "EXTENSIONS",
    "SQL_CHUNK_ROWS",
    "SQL_CONNECT_TIMEOUT_S",
    "TRIPLET_KEYS",
    "RawSource",
    "SourceUnavailable",
    "detect_format",
    "read_source",
    "read_sql",
]
