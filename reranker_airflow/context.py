"""The run context of a task body: Airflow concepts turned into the plain arguments ``reranker_tasks`` takes.

Called only while a task runs (they read ``get_current_context()``, connections and the environment then), never
while a DAG file is parsed.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from airflow.sdk import get_current_context

HUB_CONN_ID = "huggingface_default"


def run_config() -> Any:
    """The validated run config: Params (defaults + form) overlaid with the raw conf, so unknown keys are seen."""
    from reranker_tasks.config import load_run_config

    context = get_current_context()
    conf = dict(context["dag_run"].conf or {})
    return load_run_config({**context["params"], **conf})


def object_storage_path(location: str) -> Any:
    """Airflow's ``ObjectStoragePath`` of a URI naming a connection (``s3://aws_default@bucket/reranker``): the
    credentials come from that connection (the provider of that scheme must be installed)."""
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(location)


def artifacts_root() -> Any:
    """``RERANKER_ARTIFACTS_ROOT``: a local folder, an fsspec URI, or a URI naming an Airflow connection.

    ``s3://aws_default@bucket/reranker`` takes its credentials from the connection ``aws_default`` through Airflow's
    ObjectStoragePath (:func:`object_storage_path`); ``s3://bucket/reranker`` uses fsspec's own credential chain.
    ``reranker_tasks.storage`` explains the local and the store mode.
    """
    from reranker_tasks.layout import artifacts_location, names_connection

    location = artifacts_location()
    return object_storage_path(location) if names_connection(location) else location


def artifact_store(location: Any = None) -> Any:
    """The artifacts store of ``location`` (default ``RERANKER_ARTIFACTS_ROOT``): ``reranker_tasks.layout.open_store``
    with Airflow's part, a connection named in the URI resolved to its ObjectStoragePath."""
    from reranker_tasks.layout import open_store

    return open_store(location, resolve_connection=object_storage_path)


def artifacts(run_id: str | None = None) -> Any:
    """This task's view of the run's artifacts (a context manager: the store mode's scratch folder goes at exit)."""
    return artifact_store().run(run_id or get_current_context()["run_id"])


def hub_token() -> str | None:
    """The Hub token from the connection, else from HF_TOKEN; masked in every log either way."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException
    from airflow.sdk.log import mask_secret

    token: str | None = None
    with contextlib.suppress(AirflowNotFoundException):
        token = Connection.get(HUB_CONN_ID).password or None
    token = token or os.environ.get("HF_TOKEN") or None
    if token:
        mask_secret(token)
    return token


def sql_url(conn_id: str) -> str:
    """A SQLAlchemy URL for an Airflow connection (``extra.sqlalchemy_url`` wins when set)."""
    from airflow.sdk import Connection

    from reranker_tasks.connections import sqlalchemy_url

    conn = Connection.get(conn_id)
    return sqlalchemy_url(
        conn.conn_type, host=conn.host, login=conn.login, password=conn.password, port=conn.port,
        schema=conn.schema, extra=conn.extra_dejson,
    )


def preflight_result() -> dict[str, Any]:
    """What this run's ``preflight`` returned (the commits it resolved); empty when it returned nothing."""
    return get_current_context()["ti"].xcom_pull(task_ids="preflight") or {}


def pinned_train_config(cfg: Any) -> Any:
    """The train config with a Hub base model pinned to the commit preflight resolved and loaded.

    Training and the base-model evaluation then use exactly the weights preflight checked, even if the base
    model's branch moves during the run; local and packaged base models have no commit and stay as they are.
    """
    from dataclasses import replace

    sha = preflight_result().get("base_model_sha")
    return replace(cfg.train, base_model_revision=sha) if sha else cfg.train
