"""Operator extra links of the retraining DAG: the pushed Hub commit, its model card, the run's GX Data Docs.

How Airflow 3.3 handles extra links (read in ``airflow/sdk/execution_time/task_runner.py`` ``finalize``,
``airflow/serialization/serialized_objects.py`` and ``api_fastapi/core_api/routes/public/extra_links.py``):

* **per-task links** (``operator_extra_links`` on the task): when the task ends (success, failure or skip), the
  worker calls ``get_link(operator, ti_key=<the running task instance>)`` and stores the URL in the XCom
  ``_link_<class name>``; the DAG is serialized with ``{link name: xcom key}`` and the api-server's
  ``XComOperatorLink`` reads the URL back for ``GET /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/links``.
* **plugin links for an operator class** (``AirflowPlugin.operator_extra_links`` with ``operators``): attached
  when the api-server deserializes the DAG to *every* task of that class and resolved there. All TaskFlow tasks are
  ``_PythonDecoratedOperator``, so every ``@task`` of every DAG would get these buttons' names, and the UI shows an
  empty "Extra Links" box on each of them (seen in the browser test). Global links are worse: every operator.

So the DAG attaches these links to ``publish`` and ``validate`` only (:func:`links_for`), the worker builds each URL
from what the task returned (``publish``'s commit, the Data Docs ``validate`` wrote, even when validation failed),
and the plugin lists the classes (``operators`` left empty: they bind to no class). :meth:`_RerankerLink.get_link`
also works on the api-server side (a ``TaskInstanceKey``: the XCom is read through Airflow's session).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

from airflow.sdk.bases.operatorlink import BaseOperatorLink

from reranker_monitoring import DAG_IDS, URL_PREFIX
from reranker_monitoring.runs import data_docs_url, decode_xcom_value, local_run_dir, model_card_url
from reranker_tasks import layout

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)


def base_path() -> str:
    """The URL path the api-server is served under (``[api] base_url``'s path; "" at the root)."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - an api-server without the Task SDK
        from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def plugin_prefix() -> str:
    """URL path of the plugin app as the browser sees it, e.g. ``/reranker`` (or ``/airflow/reranker``)."""
    return f"{base_path()}{URL_PREFIX}"


def read_xcom(ti_key: Any, task_id: str, key: str = "return_value") -> Any:
    """A decoded XCom of ``task_id`` in the run of ``ti_key`` (None if absent).

    On a worker ``ti_key`` is the running task instance (``xcom_pull`` through the Task SDK); on the api-server it
    is a ``TaskInstanceKey`` and the XCom is read through Airflow's DB session.
    """
    if hasattr(ti_key, "xcom_pull"):
        return decode_xcom_value(ti_key.xcom_pull(task_ids=task_id, key=key))
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == ti_key.dag_id,
                XComModel.run_id == ti_key.run_id,
                XComModel.task_id == task_id,
                XComModel.map_index == -1,
                XComModel.key == key,
            ).limit(1)
        )
    return decode_xcom_value(value)


class _RerankerLink(BaseOperatorLink):
    """A link that only ``task_id`` of the retraining DAGs shows; the URL is built by :meth:`url`."""

    operators: ClassVar[list[type[Any]]] = []  # attached per task by the DAG (links_for), not to a whole class
    task_id: ClassVar[str] = ""

    def url(self, ti_key: TaskInstanceKey) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        """The URL for this task instance, or "" (the UI hides the button) when it has none."""
        if ti_key.dag_id not in DAG_IDS or ti_key.task_id != self.task_id:
            return ""
        try:
            return self.url(ti_key)
        except Exception:  # a broken link must never break the task page
            log.exception("cannot build the %r link of %s", self.name, ti_key)
            return ""


class HubCommitLink(_RerankerLink):
    """``publish``'s Hub commit (``commit_url`` of the XCom it returned)."""

    name = "Hub commit"
    task_id = "publish"

    def url(self, ti_key: TaskInstanceKey) -> str:
        published = read_xcom(ti_key, "publish")
        if not isinstance(published, dict):
            return ""
        return str(published.get("commit_url") or "")


class ModelCardLink(_RerankerLink):
    """The model card (``layout.MODEL_CARD_FILE``, README.md) exactly as ``publish`` pushed it: ``<hub>/<repo>/blob/<sha>/README.md``."""

    name = "Model card"
    task_id = "publish"

    def url(self, ti_key: TaskInstanceKey) -> str:
        published = read_xcom(ti_key, "publish")
        if not isinstance(published, dict):
            return ""
        return model_card_url(published.get("commit_url"), published.get("repo_id"), published.get("commit_sha")) or ""


class DataDocsLink(_RerankerLink):
    """The GX Data Docs ``validate`` built for this run, served by the plugin's app (behind Airflow's login).

    Shown when the validation's XCom names the Data Docs or their index page is in the run's artifacts (a failed
    validation returns no XCom, and that is when the Data Docs matter most).
    """

    name = "GX Data Docs"
    task_id = "validate"

    def url(self, ti_key: TaskInstanceKey) -> str:
        validated = read_xcom(ti_key, "validate")
        named = isinstance(validated, dict) and bool(validated.get("data_docs_path"))
        if not named:
            run_dir = local_run_dir(ti_key.run_id)
            if run_dir is None or not layout.in_run(run_dir, layout.DATA_DOCS_INDEX_PAGE).is_file():
                return ""
        return data_docs_url(plugin_prefix(), ti_key.run_id)


LINKS: list[BaseOperatorLink] = [HubCommitLink(), ModelCardLink(), DataDocsLink()]


def links_for(task_id: str) -> list[BaseOperatorLink]:
    """The links to set as ``operator_extra_links`` of the DAG's task ``task_id`` (empty for the other tasks)."""
    return [link for link in LINKS if isinstance(link, _RerankerLink) and link.task_id == task_id]
