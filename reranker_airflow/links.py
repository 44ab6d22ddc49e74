"""The monitoring plugin's extra links, attached to the tasks they belong to."""

from __future__ import annotations

from typing import Any


def attach_ui_links(**tasks: Any) -> None:
    """The monitoring plugin's extra links (``plugins/reranker_monitoring/links.py``) on the tasks they belong to.

    Per task, not per operator class: every ``@task`` is the same class. Without the plugins folder (it is on
    sys.path in every Airflow process) the DAG still parses, just without the buttons.
    """
    try:
        from reranker_monitoring.links import links_for
    except ImportError:
        return
    for task_id, output in tasks.items():
        output.operator.operator_extra_links = links_for(task_id)
