"""make run's quiet console: which lines of Airflow's log reach the console (scripts/run_dag.py)."""

from __future__ import annotations

from scripts.run_dag import progress_line

TS = "2026-12-07T07:10:14.409872Z"


def test_task_start_and_end_become_progress_lines_with_the_duration() -> None:
    started: dict[str, float] = {}
    start = f"{TS} [info     ] [DAG TEST] starting task_id=train map_index=-1 [airflow.sdk.definitions.dag] loc=x"
    end = f"{TS} [info     ] [DAG TEST] end task task_id=train map_index=-1 [airflow.sdk.definitions.dag] loc=x"
    assert progress_line(start, started, 10.0) == "  train ..."
    assert progress_line(end, started, 74.25) == "  train done in 64.2 s"
    assert started == {}


def test_our_warnings_and_dev_evaluations_pass_airflows_chatter_does_not() -> None:
    def line(level: str, message: str, logger: str) -> str | None:
        return progress_line(f"{TS} [{level:<9}] {message} [{logger}] loc=x", {}, 0.0)

    assert line("warning", "snapshot has 3 duplicates", "reranker_tasks.extract") == \
        "    warning: snapshot has 3 duplicates"
    assert line("error", "alert not sent", "reranker_retrain.alerts") == "    error: alert not sent"
    assert line("info", "dev evaluation at step 15/116: ndcg@10 0.5", "reranker_tasks.train") == \
        "    dev evaluation at step 15/116: ndcg@10 0.5"
    assert line("info", "split by query: train 360 pairs", "reranker_tasks.split") is None
    assert line("warning", "GitWildMatchPattern is deprecated", "py.warnings") is None
    assert line("info", "Task instance state updated", "airflow.api_fastapi.execution_api") is None
    assert progress_line("Writing model shards: 100%", {}, 0.0) is None
