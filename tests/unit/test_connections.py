"""Unit tests of SQL connection URLs built from Airflow connection fields."""

from __future__ import annotations

import pytest

from reranker_tasks.connections import sqlalchemy_url
from reranker_tasks.errors import ConfigError


def test_sqlalchemy_urls_from_connection_fields() -> None:
    assert sqlalchemy_url("sqlite", host="/tmp/x.db") == "sqlite:////tmp/x.db"
    url = sqlalchemy_url("postgres", host="db", login="u", password="p@ss", port=5432, schema="labels")
    assert url == "postgresql+psycopg://u:p%40ss@db:5432/labels"
    assert sqlalchemy_url("generic", extra={"sqlalchemy_url": "duckdb:///x"}) == "duckdb:///x"
    with pytest.raises(ConfigError, match="no known SQLAlchemy dialect"):
        sqlalchemy_url("http", host="x")
