"""SQL sources: ``sql_query`` run through SQLAlchemy on the URL of ``sql_conn_id``, at most ``max_rows + 1`` rows
fetched in chunks, in a transaction that is rolled back.

Its own module because it shares nothing with the file readers but :class:`RawSource`: its own redactions (the
URL, the password, the query text) and its own failure classification (SQLSTATEs, refused logins).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import suppress
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from reranker_tasks.config import ExtractConfig
from reranker_tasks.errors import DataError
from reranker_tasks.sources.locations import _first_line, _scrub
from reranker_tasks.sources.results import RawSource, SourceUnavailable

SQL_CHUNK_ROWS = 50_000
SQL_CONNECT_TIMEOUT_S = 15
# SQLSTATE classes/codes of errors a retry can fix: connection exception, insufficient resources,
# transaction rollback (deadlock, serialization), admin/crash shutdown, cannot connect now.
_TRANSIENT_SQLSTATES = ("08", "53", "40", "57P01", "57P02", "57P03")
# libpq reports connection-time refusals without a SQLSTATE: recognise its (and MySQL's) wording.
_LOGIN_REFUSED = re.compile(
    r"password authentication failed|authentication failed for user|no pg_hba\.conf entry|"
    r"(role|database) \"[^\"]*\" does not exist|Access denied for user|Unknown database",
    re.IGNORECASE,
)


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
