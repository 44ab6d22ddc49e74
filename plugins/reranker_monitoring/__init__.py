"""The reranker's monitoring UI inside Airflow: extra links, a runs view and the runs' GX Data Docs.

Imported by ``plugins/reranker_plugin.py`` (the module Airflow's plugin manager loads; this package is listed in
``plugins/.airflowignore`` so the manager does not execute its files a second time as top-level modules).

* :mod:`.runs`: pure data assembly, no Airflow import (unit-tested on fake artifacts), the artifacts found by
  ``reranker_tasks.layout``'s names;
* :mod:`.render`: the HTML/SVG of the runs view, from :mod:`.runs`' records;
* :mod:`.links`: the operator extra links, resolved by the api-server from the run's XComs;
* :mod:`.app`: the FastAPI app mounted at :data:`URL_PREFIX`, behind Airflow's own auth dependencies.

Only :mod:`.runs`, :mod:`.render` and the constants here are cheap to import: every task process loads plugins
(for macros), so the FastAPI app and Airflow's API security module are imported only when the api-server serves a
request.
"""

from __future__ import annotations

DAG_ID = "reranker_retrain"
"""The weekly (and manually triggered) retraining DAG."""
DAG_IDS: tuple[str, ...] = (DAG_ID, f"{DAG_ID}_on_labels")
"""Every DAG of this project that runs the pipeline: the weekly DAG and its twin scheduled on the labels' Asset
(``dags/reranker_retrain.py`` builds both; tests/dags checks this list against the DAG bag). The view lists the
runs of all of them and their tasks get the links. Run ids are unique across them: the artifacts are keyed by
run id alone (``artifacts/<run id>/``), and Airflow's run ids carry the run type and a timestamp."""
URL_PREFIX = "/reranker"
"""Where the plugin's FastAPI app is mounted on the api-server (not one of Airflow's reserved prefixes)."""
