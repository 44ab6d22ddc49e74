"""Turn an orchestrator connection's fields into a SQLAlchemy URL (no Airflow import: plain fields in)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reranker_tasks.errors import ConfigError

# Airflow connection types → SQLAlchemy dialect(+driver).
_DIALECTS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mssql": "mssql+pymssql",
}


def sqlalchemy_url(
    conn_type: str | None,
    *,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The SQLAlchemy URL of a connection.

    ``extra["sqlalchemy_url"]`` wins when set (any dialect SQLAlchemy knows). SQLite connections keep the
    database file in ``host`` (Airflow's convention). The result holds the password: never log it.

    Raises:
        ConfigError: a connection type we cannot map and no ``sqlalchemy_url`` in its extra.
    """
    from sqlalchemy.engine import URL

    explicit = (extra or {}).get("sqlalchemy_url")
    if explicit:
        return str(explicit)
    kind = (conn_type or "").lower()
    if kind == "sqlite":
        if not host:
            raise ConfigError("sql_conn_id: a sqlite connection needs the database file path in 'host'")
        return f"sqlite:///{host}"
    dialect = _DIALECTS.get(kind)
    if dialect is None:
        raise ConfigError(
            f"sql_conn_id: connection type {conn_type!r} has no known SQLAlchemy dialect; "
            "put the URL in the connection's extra as {'sqlalchemy_url': ...}"
        )
    url = URL.create(dialect, username=login or None, password=password or None, host=host or None,
                     port=port or None, database=schema or None)
    return url.render_as_string(hide_password=False)
