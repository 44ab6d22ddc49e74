"""Airflow 3 plugin: the reranker's monitoring in the Airflow UI.

* ``operator_extra_links``: "Hub commit" and "Model card" on ``publish``, "GX Data Docs" on ``validate`` of
  ``reranker_retrain``; listed here, attached to those tasks by the DAG (see ``reranker_monitoring/links.py`` for
  how Airflow 3.3 attaches and resolves extra links, and why per task);
* ``fastapi_apps``: the runs view and its JSON API at ``/reranker`` on the api-server, behind Airflow's auth
  (``reranker_monitoring/app.py``);
* ``external_views``: a "Reranker runs" entry in the UI's navigation bar, showing that page inside the UI
  (``/plugin/reranker-runs``).

Every Airflow process loads plugins, task processes included (for macros), so this module stays cheap to import:
the FastAPI app, and with it Airflow's API security module, is built on the first request the api-server routes to
it (:class:`LazyASGIApp`), never in a worker.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

# Airflow puts the plugins folder on sys.path (settings.prepare_syspath_for_config_and_plugins) in every process.
from reranker_monitoring import URL_PREFIX
from reranker_monitoring.links import LINKS, base_path

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyASGIApp:
    """An ASGI app that imports and builds the real one (``module:factory``) on its first request."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        with self._lock:
            if self._app is None:
                import importlib

                module_name, _, factory = self.target.partition(":")
                self._app = getattr(importlib.import_module(module_name), factory)()
            return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app or self._load()
        await app(scope, receive, send)


runs_app = LazyASGIApp("reranker_monitoring.app:create_app")


class RerankerMonitoringPlugin(AirflowPlugin):
    """Extra links, the runs view (FastAPI app) and its menu entry."""

    name = "reranker_monitoring"
    # Airflow's own plugin attributes are plain class-level lists (AirflowPlugin declares them so).
    fastapi_apps = [{"app": runs_app, "url_prefix": URL_PREFIX, "name": "Reranker runs"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Reranker runs",
            "href": f"{base_path()}{URL_PREFIX}/",
            "url_route": "reranker-runs",
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
    operator_extra_links = LINKS
