"""The runs view's FastAPI app, mounted by Airflow's api-server at ``/reranker`` (see ``plugins/reranker_plugin.py``).

Every route depends on Airflow's own ``requires_access_dag`` (``airflow/api_fastapi/core_api/security.py``): it
resolves the caller with ``get_user`` (a ``Bearer`` JWT from ``POST /auth/token``, or the ``_token`` cookie the UI's
login sets, so the page works inside the UI and from a REST client alike) and asks the configured auth manager
whether that user may read the DAG's runs / task instances / XComs. No credentials: 401; not allowed: 403.

Data: the DAG runs and their XComs are read through Airflow's DB session (``SessionDep``, the one the core API
uses); each run's artifact folder is located from its run id, its files by ``reranker_tasks.layout``'s names
(see :mod:`.runs`); the HTML is :mod:`.render`'s. Nothing is stored by the plugin.

Routes (under the mount point):

* ``GET /``: the HTML runs view (chart + table), ``?limit=`` newest runs (default 50);
* ``GET /api/runs``: the same rows as JSON; ``GET /api/runs/{run_id}``: one run;
* ``GET /runs/{run_id}/data-docs/{path}``: a file of that run's GX Data Docs (only below ``validate/data_docs``);
* ``GET /runs/{run_id}/model-card``: redirect to the model card of the run's Hub commit.
"""

from __future__ import annotations

import mimetypes
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from airflow.models.dagrun import DagRun
from airflow.models.xcom import XComModel
from fastapi import Depends, FastAPI, HTTPException, Query, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from reranker_monitoring import DAG_IDS
from reranker_monitoring.links import base_path, plugin_prefix
from reranker_monitoring.render import render_page
from reranker_monitoring.runs import (
    XCOM_KEYS,
    XCOM_TASK_IDS,
    DagRunInfo,
    RunRecord,
    build_records,
    data_docs_url,
    decode_xcom_value,
    local_run_dir,
    resolve_data_docs_file,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

# Airflow's authorization, per kind of data a route reveals: the view shows the runs of every DAG of the project
# (DAG_IDS), so a route needs that access on each of them.
READ_RUNS = [Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=d)) for d in DAG_IDS]
READ_XCOMS = [Depends(requires_access_dag("GET", DagAccessEntity.XCOM, param_dag_id=d)) for d in DAG_IDS]
READ_TASKS = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE, param_dag_id=d)) for d in DAG_IDS]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="How many of the newest runs")]


def _run_info(run: DagRun) -> DagRunInfo:
    return DagRunInfo(
        run_id=run.run_id,
        state=str(run.state) if run.state is not None else None,
        run_type=str(run.run_type) if run.run_type is not None else None,
        run_after=run.run_after,
        start_date=run.start_date,
        end_date=run.end_date,
        conf=dict(run.conf or {}),
        dag_id=run.dag_id,
    )


def load_runs(session: Session, limit: int, run_id: str | None = None) -> list[DagRunInfo]:
    """The newest ``limit`` runs of the project's DAGs (or the one ``run_id``), newest first."""
    query = select(DagRun).where(DagRun.dag_id.in_(DAG_IDS))
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    query = query.order_by(DagRun.run_after.desc(), DagRun.id.desc()).limit(limit)
    return [_run_info(run) for run in session.scalars(query)]


def load_xcoms(session: Session, run_ids: Sequence[str]) -> dict[str, dict[tuple[str, str], Any]]:
    """``{run_id: {(task_id, key): value}}``: the XComs the view reads, for these runs, in one query."""
    found: dict[str, dict[tuple[str, str], Any]] = defaultdict(dict)
    if not run_ids:
        return found
    rows = session.execute(
        select(XComModel.run_id, XComModel.task_id, XComModel.key, XComModel.value).where(
            XComModel.dag_id.in_(DAG_IDS),
            XComModel.run_id.in_(list(run_ids)),
            XComModel.task_id.in_(XCOM_TASK_IDS),
            XComModel.key.in_(XCOM_KEYS),
            XComModel.map_index == -1,
        )
    )
    for run_id, task_id, key, value in rows:
        found[run_id][(task_id, key)] = decode_xcom_value(value)
    return found


def assemble(session: Session, limit: int, run_id: str | None = None) -> list[RunRecord]:
    """The view's rows, newest first."""
    runs = load_runs(session, limit, run_id)
    xcoms = load_xcoms(session, [r.run_id for r in runs])
    return build_records(runs, xcoms, dag_id=DAG_IDS[0], prefix=plugin_prefix(), ui_base=base_path())


def _one(session: Session, run_id: str) -> RunRecord:
    records = assemble(session, 1, run_id)
    if not records:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r} of {', '.join(DAG_IDS)}")
    return records[0]


def create_app() -> FastAPI:
    """The plugin's app; every route requires an Airflow user allowed to read the DAG's runs."""
    app = FastAPI(
        title="Reranker runs",
        description=f"Runs of {', '.join(DAG_IDS)}: data, metrics, gate outcome and Hub commit. Behind Airflow's auth.",
        docs_url=None,
        redoc_url=None,
    )

    @app.get("/", response_class=HTMLResponse, dependencies=[*READ_RUNS, *READ_XCOMS])
    def runs_page(session: SessionDep, limit: Limit = DEFAULT_LIMIT) -> HTMLResponse:
        """The runs view: chart of the primary metric over runs, and the table of runs."""
        records = assemble(session, limit)
        page = render_page(records, dag_id=DAG_IDS, prefix=plugin_prefix(), ui_base=base_path(),
                           generated_at=datetime.now(UTC))
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    @app.get("/api/runs", dependencies=[*READ_RUNS, *READ_XCOMS])
    def runs_json(session: SessionDep, limit: Limit = DEFAULT_LIMIT) -> dict[str, Any]:
        """The runs, newest first, as JSON."""
        records = assemble(session, limit)
        return {"dag_ids": list(DAG_IDS), "total_entries": len(records), "runs": [r.to_dict() for r in records]}

    @app.get("/api/runs/{run_id}", dependencies=[*READ_RUNS, *READ_XCOMS])
    def run_json(run_id: str, session: SessionDep) -> dict[str, Any]:
        """One run as JSON (404 when the DAG has no such run)."""
        return _one(session, run_id).to_dict()

    @app.get("/runs/{run_id}/model-card", dependencies=[*READ_RUNS, *READ_XCOMS])
    def model_card(run_id: str, session: SessionDep) -> RedirectResponse:
        """Redirect to the model card of the run's Hub commit (404 when the run pushed nothing)."""
        record = _one(session, run_id)
        if not record.model_card_url:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"run {run_id!r} pushed no model")
        return RedirectResponse(record.model_card_url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    @app.get("/runs/{run_id}/data-docs", dependencies=[*READ_RUNS, *READ_TASKS])
    def data_docs_root(run_id: str) -> RedirectResponse:
        """The Data Docs' links are relative to their index page: send the folder's URL there."""
        return RedirectResponse(data_docs_url(plugin_prefix(), run_id))

    @app.get("/runs/{run_id}/data-docs/{path:path}", dependencies=[*READ_RUNS, *READ_TASKS])
    def data_docs(run_id: str, path: str, session: SessionDep) -> Response:
        """A file of the run's GX Data Docs; only files below that run's ``validate/data_docs`` are served.

        From the local folder or the object store the workers wrote to (read through fsspec here).
        """
        if not load_runs(session, 1, run_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r} of {', '.join(DAG_IDS)}")
        run_dir = local_run_dir(run_id)
        if run_dir is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "the artifacts store cannot be read from this server")
        target = resolve_data_docs_file(run_dir, path)
        if target is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no Data Docs file {path!r} for run {run_id!r}")
        headers = {"Cache-Control": "no-store"}
        if isinstance(target, Path):
            return FileResponse(target, headers=headers)
        media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        try:
            content = target.read_bytes()
        except OSError as exc:  # the store answered is_file, then failed: say so instead of a 500
            raise HTTPException(
                status.HTTP_502_BAD_GATEWAY, f"reading {path!r} from the artifacts store: {exc}"
            ) from exc
        return Response(content, media_type=media_type, headers=headers)

    return app
