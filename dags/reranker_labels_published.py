"""
### Labels published: tell Airflow that new labeled pairs are in place

The asset-scheduled retraining DAG `reranker_retrain_on_labels` runs whenever the labels' Asset is updated.
A labelling pipeline updates it in one of two ways:

* trigger this DAG after writing the labels (`airflow dags trigger reranker_labels_published --conf '{"note": ...}'`),
  or make its own export task declare `outlets=[Asset(name="reranker_labels", uri=<labels URI>)]`;
* or post an event to the REST API: `POST /api/v2/assets/events` with the asset's id.

The Asset is declared on the labels' URI (`RERANKER_LABELS_URI`; default: the bundled sample file), not on the
retraining DAG's own snapshot Asset, so a retraining run never triggers another one. A run whose data did not
change ends early as skipped (`min_new_pairs` is 1 for the asset-scheduled DAG).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task

from reranker_airflow.defaults import LABELS_ASSET, START_DATE


@dag(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    doc_md=__doc__,
    tags=["ml", "reranker", "labels"],
    params={
        "note": Param("", type="string", title="Note", description="What changed in the labels (kept in the event)."),
    },
)
def reranker_labels_published() -> None:
    @task(outlets=[LABELS_ASSET])
    def announce() -> dict[str, Any]:
        """Emit the labels' Asset event; its extra says who announced it and why."""
        context = get_current_context()
        extra = {"note": context["params"]["note"], "announced_by_run": context["run_id"]}
        context["outlet_events"][LABELS_ASSET].extra = extra
        return extra

    announce()


reranker_labels_published()
