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
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar
from urllib.parse import quote, urlsplit

import numpy as np
import pandas as pd

from reranker_tasks.config import BUNDLED_PREFIX, ExtractConfig
from reranker_tasks.errors import DataError, RerankerError

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
TRIPLET_KEYS = {"query", "positive_text", "negative_texts"}
DELIMITERS = {"csv": ",", "tsv": "\t"}
#: Files that mark a saved ``datasets.Dataset`` / ``DatasetDict`` folder (``save_to_disk``).
DATASET_FILES = ("dataset_info.json", "state.json")
DATASET_DICT_FILE = "dataset_dict.json"
SQL_CHUNK_ROWS = 50_000
SQL_CONNECT_TIMEOUT_S = 15
_LABELS = {
    "csv": "CSV",
    "tsv": "TSV",
    "jsonl": "JSONL",
    "triplets": "triplets JSONL",
    "parquet": "Parquet",
}
# "s3://…", "file:///…", and chained "simplecache::s3://…"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(?:://|::)")
# SQLSTATE classes/codes of errors a retry can fix: connection exception, insufficient resources,
# transaction rollback (deadlock, serialization), admin/crash shutdown, cannot connect now.
_TRANSIENT_SQLSTATES = ("08", "53", "40", "57P01", "57P02", "57P03")
# libpq reports connection-time refusals without a SQLSTATE: recognise its (and MySQL's) wording.
_LOGIN_REFUSED = re.compile(
    r"password authentication failed|authentication failed for user|no pg_hba\.conf entry|"
    r"(role|database) \"[^\"]*\" does not exist|Access denied for user|Unknown database",
    re.IGNORECASE,
)
_T = TypeVar("_T")


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


@dataclass(frozen=True)
class _Location:
    """A file or folder on some fsspec filesystem, with what may be shown of it."""

    fs: Any  # fsspec.AbstractFileSystem
    path: str  # the path on ``fs`` (may hold credentials for some URIs: never shown)
    display: str  # what messages show: the local path, or the URI without userinfo and query
    uri: str | None = None  # the URI as configured (may hold credentials): only handed to libraries
    redactions: tuple[tuple[str, str], ...] = ()  # (secret, replacement) applied to library messages

    @property
    def remote(self) -> bool:
        return self.uri is not None

    @property
    def name(self) -> str:
        """The file name (for :attr:`RawSource.files`), scrubbed: ``memory://user:pw@x.csv`` has no folder."""
        return self.scrub(self.path.rstrip("/").rsplit("/", 1)[-1])

    def child(self, name: str) -> _Location:
        return _Location(
            self.fs, f"{self.path.rstrip('/')}/{name}", f"{self.display.rstrip('/')}/{name}", None, self.redactions
        )

    def scrub(self, text: str) -> str:
        for secret, replacement in self.redactions:
            text = text.replace(secret, replacement)
        return text


# --------------------------------------------------------------------------- entry point


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


# --------------------------------------------------------------------------- files


def detect_format(source: Path | str, declared: str) -> str:
    """The format of one file: the declared one, else from the extension (``.jsonl`` may hold triplets).

    ``source`` is a local path, or (as a string) an fsspec URI.
    """
    location = _locate(source) if isinstance(source, str) else _local(source)
    return _file_format(location, declared)


def _read_delimited(location: _Location, fmt: str) -> pd.DataFrame:
    """CSV/TSV through Arrow's multi-threaded parser (about 15x faster than pandas' on large files).

    Every column is read as text, and no "NA"/"null" guessing: a query "NA" is a query. Arrow refuses a record
    whose field count differs from the header's, and invalid UTF-8; its messages quote the row, so on any
    failure the file is re-scanned with the precise checks (byte offset, data row and line), which never
    quote data.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = DELIMITERS[fmt]
    try:
        with location.fs.open(location.path, "rb") as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            header = next(csv.reader(text, delimiter=delimiter), None)
    except UnicodeDecodeError:
        _check_utf8(location)  # raises with the exact byte offset
        raise
    if not header:
        _check_csv_shape(location, delimiter)  # raises the "empty file" error
    try:
        with location.fs.open(location.path, "rb") as handle:
            table = pacsv.read_csv(
                handle,
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in header},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        _check_utf8(location)
        _check_csv_shape(location, delimiter)
        reason = re.sub(r"(Expected \d+ columns, got \d+).*", r"\1", _first_line(exc), flags=re.S)
        raise DataError(f"{location.display}: cannot be read as {fmt}: {location.scrub(reason)}") from None
    return table.to_pandas(self_destruct=True, split_blocks=True)


def _file_format(location: _Location, declared: str) -> str:
    if not _call(location, lambda: location.fs.exists(location.path)):
        raise DataError(f"source_path: no such file: {location.display}")
    if not _call(location, lambda: location.fs.isfile(location.path)):
        raise DataError(f"source_path: not a file: {location.display}")
    if declared != "auto":
        return declared
    fmt = EXTENSIONS.get(_suffix(location.name))
    if fmt is None:
        raise DataError(
            f"source_path: cannot tell the format of {location.name!r} from its extension; "
            f"use one of {sorted(EXTENSIONS)} or set source_format"
        )
    if fmt == "jsonl" and _looks_like_triplets(location):
        return "triplets"
    return fmt


def _read_location(location: _Location, fmt: str) -> tuple[pd.DataFrame, bool]:
    """Check and parse one file."""
    source = location.display
    line_numbers: list[int] | None = None
    try:
        if fmt in ("jsonl", "triplets"):
            _check_utf8(location)
            line_numbers = _nonblank_line_numbers(location)
        if fmt in DELIMITERS:
            raw, typed = _read_delimited(location, fmt), False
        elif fmt in ("jsonl", "triplets", "parquet"):
            with location.fs.open(location.path, "rb") as handle:
                if fmt == "parquet":
                    raw = pd.read_parquet(handle)
                else:
                    raw = pd.read_json(handle, lines=True, dtype=False, encoding="utf-8", encoding_errors="strict")
            typed = True
        else:
            raise DataError(f"source_format: {fmt!r} is not supported for {source}")
    except (DataError, SourceUnavailable):
        raise
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source}: not valid UTF-8 at byte offset {exc.start} ({exc.reason}); re-export the file as UTF-8"
        ) from _cause(location, exc)
    except FileNotFoundError as exc:
        raise DataError(f"source_path: no such file: {source}") from _cause(location, exc)
    except Exception as exc:
        reason = location.scrub(_first_line(exc))
        if location.remote and _looks_transient(exc):
            raise SourceUnavailable(f"{source}: cannot be reached: {reason}") from None
        if not location.remote and not isinstance(exc, ValueError | OSError | ImportError):
            raise  # a bug, not bad data (a remote backend's error is reported below: its text may hold secrets)
        # pandas' ParserError/EmptyDataError and pyarrow's ArrowInvalid are ValueErrors.
        raise DataError(f"{source}: cannot be read as {fmt}: {reason}") from _cause(location, exc)

    raw = raw.reset_index(drop=True)
    if line_numbers is not None and len(line_numbers) == len(raw):
        raw["source_row"] = np.asarray(line_numbers, dtype="int64")  # JSONL: the line, blank lines counted
    else:
        raw["source_row"] = np.arange(1, len(raw) + 1, dtype="int64")
    return raw, typed


def _check_utf8(location: _Location) -> None:
    """Fail on the first invalid UTF-8 byte, naming its offset in the file.

    Checked before parsing because parsers decode in blocks and report offsets within a block.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = pending = 0
    with location.fs.open(location.path, "rb") as handle:
        try:
            while chunk := handle.read(1 << 20):
                pending = len(decoder.getstate()[0])
                decoder.decode(chunk)
                offset += len(chunk)
            pending = len(decoder.getstate()[0])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            position = offset - pending + exc.start
            raise DataError(
                f"{location.display}: not valid UTF-8 at byte offset {position} ({exc.reason}); "
                "re-export the file as UTF-8"
            ) from exc


def _check_csv_shape(location: _Location, delimiter: str = ",") -> None:
    """Every record has as many fields as the header.

    pandas does not reliably refuse a wider row: when the first data row (or every row) has one field
    more than the header, it silently takes the first column as the index and shifts the rest.
    """
    source = location.display
    kind = "TSV" if delimiter == "\t" else "CSV"
    separator = "tabs" if delimiter == "\t" else "commas"
    with _text(location, encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(f"{source}: empty {kind} file (no header row)")
            width = len(header)
            data_row = 0
            for record in reader:
                if not record:
                    continue  # blank line: skipped by the parser too
                data_row += 1
                if len(record) != width:
                    raise DataError(
                        f"{source}: data row {data_row} (line {reader.line_num}) has {len(record)} fields, "
                        f"the header has {width}; quote fields that contain {separator}"
                    )
        except csv.Error as exc:
            raise DataError(f"{source}: malformed {kind} at line {reader.line_num}: {exc}") from exc


def _nonblank_line_numbers(location: _Location) -> list[int]:
    """1-based numbers of the non-blank lines (the JSON records) of a JSONL file."""
    with location.fs.open(location.path, "rb") as handle:
        return [number for number, line in enumerate(handle, start=1) if line.strip()]


def _looks_like_triplets(location: _Location) -> bool:
    """True when the first non-blank JSONL line has the triplet keys and no ``document``."""
    try:
        with _text(location, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    first = json.loads(line)
                    return isinstance(first, dict) and TRIPLET_KEYS <= set(first) and "document" not in first
    except (UnicodeDecodeError, ValueError):
        return False  # let the real reader report the error with its position
    return False


@contextmanager
def _text(location: _Location, encoding: str) -> Iterator[IO[str]]:
    with location.fs.open(location.path, "rb") as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as text:
        yield text


# --------------------------------------------------------------------------- folders


def _read_folder(folder: _Location, declared: str) -> RawSource:
    """Every data file directly in ``folder``, in name order: one format, the same columns."""
    entries = _call(folder, lambda: folder.fs.ls(folder.path, detail=True))
    names = sorted(
        name
        for name in (str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file")
        if not name.startswith((".", "_"))  # hidden files, _SUCCESS / _committed_* / _metadata markers
    )
    data_files = [n for n in names if _suffix(n) in EXTENSIONS]
    skipped = [n for n in names if _suffix(n) not in EXTENSIONS]
    if not data_files:
        found = f"; it holds only {skipped[:10]}" if skipped else ""
        raise DataError(
            f"source_path: no data files in folder {folder.display} (extensions {sorted(EXTENSIONS)}){found}"
        )

    formats = {name: EXTENSIONS[_suffix(name)] for name in data_files}
    if declared == "auto":
        for name, fmt in formats.items():
            if fmt == "jsonl" and _looks_like_triplets(folder.child(name)):
                formats[name] = "triplets"
    first = data_files[0]
    for name in data_files[1:]:
        if formats[name] != formats[first]:
            raise DataError(
                f"source_path: folder {folder.display} mixes formats: {formats[first]!r} ({first}) and "
                f"{formats[name]!r} ({name}); keep one format per folder"
            )
    fmt = formats[first] if declared == "auto" else declared

    frames: list[pd.DataFrame] = []
    typed = False
    for index, name in enumerate(data_files):
        frame, typed = _read_location(folder.child(name), fmt)
        frame["source_file"] = np.full(len(frame), index, dtype="int32")
        if frames:
            _check_same_columns(folder, data_files[0], frames[0], name, frame)
        frames.append(frame)
    columns = list(frames[0].columns)
    combined = pd.concat([f[columns] for f in frames], ignore_index=True)
    notes = []
    if skipped:
        notes.append(f"skipped {len(skipped)} file(s) without a data extension in {folder.display}: {skipped[:10]}")
    count = len(data_files)
    return RawSource(
        frame=combined, files=data_files, fmt=fmt, typed=typed, notes=notes,
        description=f"{count} {_LABELS.get(fmt, fmt)} file{'s' if count != 1 else ''} in {folder.display}",
    )


def _check_same_columns(
    folder: _Location, first: str, first_frame: pd.DataFrame, name: str, frame: pd.DataFrame
) -> None:
    """Every file has the first file's columns: a column one has and another lacks is an error naming both.

    Never aligned by filling NaN: a missing label column in one part file would become "no label" rows.
    """
    have, first_have = set(map(str, frame.columns)), set(map(str, first_frame.columns))
    for lacking, lacks, other, other_has in ((name, have, first, first_have), (first, first_have, name, have)):
        missing = sorted(other_has - lacks)
        if missing:
            raise DataError(
                f"source_path: {folder.child(lacking).display} lacks column(s) {missing} that {other} has; "
                "every file in the folder must have the same columns"
            )


# --------------------------------------------------------------------------- datasets


def _read_saved_dataset(location: _Location, max_rows: int) -> RawSource:
    """A ``datasets.Dataset`` saved with ``save_to_disk`` (memory-mapped; at most ``max_rows + 1`` rows read)."""
    import datasets

    target = location.uri if location.uri is not None else location.path
    try:
        loaded = datasets.load_from_disk(target)
    except FileNotFoundError as exc:
        raise DataError(
            f"source_path: no dataset saved with save_to_disk at {location.display} "
            f"({location.scrub(_first_line(exc))})"
        ) from _cause(location, exc)
    except Exception as exc:
        reason = location.scrub(_first_line(exc))
        if location.remote and _looks_transient(exc):
            raise SourceUnavailable(f"{location.display}: cannot be reached: {reason}") from None
        if not location.remote and not isinstance(exc, ValueError | OSError | ImportError | KeyError | TypeError):
            raise
        raise DataError(
            f"{location.display}: cannot be loaded as a datasets dataset: {reason}"
        ) from _cause(location, exc)
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        example = f"{location.display.rstrip('/')}/{splits[0]}" if splits else location.display
        raise DataError(
            f"source_path: {location.display} is a DatasetDict with splits {splits}; "
            f"point source_path at one split's folder, e.g. {example}"
        )
    notes: list[str] = []
    limit = max_rows + 1
    truncated = len(loaded) > limit
    if truncated:
        notes.append(f"the dataset has {len(loaded)} rows, more than max_rows={max_rows}; read the first {limit}")
        loaded = loaded.select(range(limit))
    frame = loaded.to_pandas().reset_index(drop=True)
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype="int64")
    frame["source_file"] = np.zeros(len(frame), dtype="int32")
    return RawSource(
        frame=frame, files=[location.name], fmt="datasets", typed=True, notes=notes, truncated=truncated,
        description=f"datasets dataset at {location.display}",
    )


def _is_saved_dataset(location: _Location) -> bool:
    """A folder written by ``Dataset.save_to_disk`` (or ``DatasetDict.save_to_disk``: reported as such)."""
    def check() -> bool:
        if not location.fs.isdir(location.path):
            return False
        if location.fs.exists(location.child(DATASET_DICT_FILE).path):
            return True
        return all(location.fs.exists(location.child(name).path) for name in DATASET_FILES)

    return _call(location, check)


# --------------------------------------------------------------------------- SQL


def read_sql(config: ExtractConfig, sql_url: str | None) -> RawSource:
    """Run ``config.sql_query`` on ``sql_url``; fetch at most ``max_rows + 1`` rows, in chunks.

    The query runs in a transaction that is rolled back (never committed); the URL and the query text are
    never shown. A connection failure raises :class:`SourceUnavailable`, anything else :class:`DataError`.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    conn_id = config.sql_conn_id
    where = f"connection {conn_id!r}"
    if not sql_url:
        raise DataError(f"sql_query: no database URL for {where}; define the Airflow connection {conn_id!r}")
    redactions = _sql_redactions(sql_url, config.sql_query)

    def reason(exc: BaseException) -> str:
        return _scrub(_db_message(exc), redactions)

    try:
        engine = create_engine(sql_url, poolclass=NullPool, connect_args=_connect_args(sql_url))
    except (SQLAlchemyError, ImportError, ValueError, TypeError) as exc:  # unparsable URL, unknown dialect, no driver
        raise DataError(f"{where}: cannot use its URL: {type(exc).__name__}: {reason(exc)}") from None
    limit = config.max_rows + 1
    chunks: list[pd.DataFrame] = []
    fetched = 0
    try:
        try:
            connection = engine.connect()
        except DBAPIError as exc:
            if _refused_login(exc):  # wrong credentials or database name: a retry cannot help
                raise DataError(f"{where}: cannot log in: {reason(exc)}") from None
            raise SourceUnavailable(f"{where}: the database cannot be reached: {reason(exc)}") from None
        except SQLAlchemyError as exc:
            raise SourceUnavailable(f"{where}: the database cannot be reached: {reason(exc)}") from None
        with connection:
            # A server-side cursor where the driver has one: rows arrive chunk by chunk, not all at once.
            streaming = connection.execution_options(stream_results=True, max_row_buffer=SQL_CHUNK_ROWS)
            reader: Iterator[pd.DataFrame] | None = None
            try:
                # The query as written: every ":" escaped, so text() binds no ":name" parameters (it would, even
                # inside string literals), while SQLAlchemy still escapes "%" for pyformat drivers (psycopg).
                statement = text(config.sql_query.replace(":", "\\:"))
                reader = pd.read_sql(statement, streaming, chunksize=min(limit, SQL_CHUNK_ROWS))
                for chunk in reader:
                    chunks.append(chunk)
                    fetched += len(chunk)
                    if fetched >= limit:
                        break
            except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
                # pandas wraps the SQLAlchemy error in a DatabaseError whose text quotes the SQL: use the cause.
                error: BaseException = exc
                if isinstance(exc, pd.errors.DatabaseError) and isinstance(exc.__cause__, SQLAlchemyError):
                    error = exc.__cause__
                if isinstance(error, DBAPIError):
                    if error.connection_invalidated or _sqlstate(error).startswith(_TRANSIENT_SQLSTATES):
                        raise SourceUnavailable(
                            f"{where}: the connection failed during the query: {reason(error)}"
                        ) from None
                    raise DataError(f"sql_query on {where} failed: {reason(error)}") from None
                # e.g. ResourceClosedError: the statement returns no rows
                raise DataError(f"sql_query on {where} failed: {type(error).__name__}: {reason(error)}") from None
            finally:
                if reader is not None and hasattr(reader, "close"):
                    with suppress(Exception):  # the connection is closed next anyway
                        reader.close()  # closes the (server-side) result before the connection
        # Leaving ``with connection`` rolls back: the extract never writes, whatever the query did is undone.
    finally:
        engine.dispose()

    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else (chunks[0] if chunks else pd.DataFrame())
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        raise DataError(f"sql_query on {where}: the result has duplicate column name(s) {duplicated}; alias them")
    notes: list[str] = []
    truncated = fetched > config.max_rows
    if truncated:
        frame = frame.iloc[:limit]
        notes.append(f"the query returned more than max_rows={config.max_rows} rows; stopped reading at {limit}")
    frame = frame.reset_index(drop=True)
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype="int64")
    frame["source_file"] = np.zeros(len(frame), dtype="int32")
    return RawSource(
        frame=frame, files=[f"sql:{conn_id}"], fmt="sql", typed=True, notes=notes, truncated=truncated,
        description=f"SQL query on {where}",
    )


def _connect_args(sql_url: str) -> dict[str, Any]:
    """A connect timeout for drivers that hang on an unreachable host (unless the URL sets one)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(sql_url)
    except (ArgumentError, ValueError):
        return {}
    if url.get_backend_name() in ("postgresql", "mysql", "mariadb") and "connect_timeout" not in url.query:
        return {"connect_timeout": SQL_CONNECT_TIMEOUT_S}
    return {}


def _sql_redactions(sql_url: str, query: str) -> tuple[tuple[str, str], ...]:
    """What must never appear in a message: the URL (raw and rendered), its password, the query text."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    secrets: list[tuple[str, str]] = [(sql_url, "<url>")]
    with suppress(ArgumentError, ValueError):
        url = make_url(sql_url)
        secrets.append((url.render_as_string(hide_password=False), "<url>"))
        if url.password:
            secrets.append((str(url.password), "***"))
            secrets.append((quote(str(url.password), safe=""), "***"))  # as written in the URL
    if query.strip():
        secrets.append((query.strip(), "<query>"))
    return tuple(sorted(secrets, key=lambda s: -len(s[0])))


def _db_message(exc: BaseException) -> str:
    """The database's own message, without the SQL text SQLAlchemy appends (``[SQL: …]``) or a ``LINE 1:`` echo."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    message = primary or str(orig)
    return _first_line(ValueError(message.split("[SQL:")[0])) if message.strip() else type(orig).__name__


def _refused_login(exc: BaseException) -> bool:
    """The server answered but refused the login (SQLSTATE class 28 / 3D, or the drivers' wording for it)."""
    if _sqlstate(exc)[:2] in ("28", "3D"):
        return True
    return bool(_LOGIN_REFUSED.search(_db_message(exc)))


def _sqlstate(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


# --------------------------------------------------------------------------- locations


def _locate(source_path: str, config: ExtractConfig | None = None) -> _Location:
    """A local path (``bundled:`` aliases resolved) or an fsspec URI."""
    if _URI.match(source_path) and not source_path.startswith(BUNDLED_PREFIX):
        from fsspec.core import url_to_fs

        display, redactions = _redact_uri(source_path)
        try:
            fs, path = url_to_fs(source_path)
        except ImportError as exc:
            raise DataError(
                f"source_path: no filesystem for {display}: {_scrub(_first_line(exc), redactions)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - ValueError("Protocol not known: …"), any backend's own errors
            reason = _scrub(_first_line(exc), redactions)
            raise DataError(f"source_path: cannot open {display}: {reason}") from None
        return _Location(fs, path, display, source_path, redactions)
    if config is not None:
        return _local(config.resolved_source())
    return _local(ExtractConfig(source_path=source_path).resolved_source())


def _local(source: Path) -> _Location:
    from fsspec.implementations.local import LocalFileSystem

    return _Location(LocalFileSystem(), str(source.absolute()), str(source))


def _redact_uri(uri: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The URI as it may be shown (no userinfo, no query/fragment) and the secrets to scrub from messages."""
    shown: list[str] = []
    secrets: list[tuple[str, str]] = []
    for part in uri.split("::"):
        try:
            parts = urlsplit(part)
        except ValueError:
            shown.append("<uri>")
            secrets.append((part, "<uri>"))
            continue
        netloc = parts.netloc
        display = part.split("#", 1)[0].split("?", 1)[0]
        if "@" in netloc:
            userinfo, netloc = netloc.rsplit("@", 1)
            display = display.replace(userinfo + "@", "", 1)
            secrets.append((userinfo + "@", ""))
            for piece in userinfo.split(":"):
                if len(piece) >= 3:
                    secrets.append((piece, "***"))
        if parts.query:
            secrets.append(("?" + parts.query, ""))
            for pair in parts.query.split("&"):
                value = pair.split("=", 1)[-1]
                if len(value) >= 3:
                    secrets.append((value, "***"))
        if parts.fragment:
            secrets.append(("#" + parts.fragment, ""))
        shown.append(display)
    return "::".join(shown), tuple(sorted(set(secrets), key=lambda s: -len(s[0])))


def _call(location: _Location, action: Callable[[], _T]) -> _T:
    """A filesystem call whose failure becomes a DataError or (remote and transient) SourceUnavailable."""
    try:
        return action()
    except (DataError, SourceUnavailable):
        raise
    except FileNotFoundError as exc:
        raise DataError(f"source_path: no such file: {location.display}") from _cause(location, exc)
    except PermissionError as exc:
        raise DataError(f"source_path: permission denied: {location.display}") from _cause(location, exc)
    except Exception as exc:  # noqa: BLE001 - any fsspec backend's errors: classified, never swallowed
        message = location.scrub(_first_line(exc))
        if location.remote and _looks_transient(exc):
            raise SourceUnavailable(f"{location.display}: cannot be reached: {message}") from None
        raise DataError(f"source_path: cannot access {location.display}: {message}") from None


def _cause(location: _Location, exc: BaseException) -> BaseException | None:
    """The exception to chain: none for a URI, whose library messages may quote credentials."""
    return None if location.remote else exc


def _looks_transient(exc: BaseException) -> bool:
    """A network-ish failure: ConnectionError/TimeoutError, or a library error named so (botocore, aiohttp)."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return any(word in cls.__name__ for cls in type(exc).__mro__ for word in ("Connect", "Timeout", "Unavailable"))


def _scrub(text: str, redactions: tuple[tuple[str, str], ...]) -> str:
    for secret, replacement in redactions:
        if secret:
            text = text.replace(secret, replacement)
    return text


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
