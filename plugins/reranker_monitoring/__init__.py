"""The reranker's monitoring UI inside Airflow: extra links, a runs view and the runs' GX Data Docs.

Imported by ``plugins/reranker_plugin.py`` (the module Airflow's plugin manager loads; this package is listed in
``plugins/.airflowignore`` so the manager does not execute its files a second time as top-level modules).

* :mod:`.runs`: pure data assembly and HTML/SVG rendering, no Airflow import (unit-tested on fake artifacts);
* :mod:`.links`: the operator extra links, resolved by the api-server from the run's XComs;
* :mod:`.app`: the FastAPI app mounted at :data:`URL_PREFIX`, behind Airflow's own auth dependencies.

Only :mod:`.runs` and the constants here are cheap to import: every task process loads plugins (for macros),
so the FastAPI app and Airflow's API security module are imported only when the api-server serves a request.
"""

from __future__ import annotations

DAG_ID = "reranker_retrain"
URL_PREFIX = "/reranker"
"""Where the plugin's FastAPI app is mounted on the api-server (not one of Airflow's reserved prefixes)."""
