"""Fixtures for tests that run against a real Airflow deployment (see ``tests/stack/airflow_stack.py``).

``airflow_stack`` starts one deployment per session, after the session's PostgreSQL server and Hub emulator
(so it is torn down before them). When a test here fails, the components' log tails are attached to its
report; the start-up timings are printed in the terminal summary.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.smtp_sink import SmtpSink
from tests.stack.airflow_stack import (
    BASE_COMPONENTS,
    DAG_ID,
    AirflowClient,
    AirflowStack,
    StackOptions,
    start_airflow_stack,
)

if TYPE_CHECKING:
    from tests.conftest import LocalHub  # importing conftest again would re-run its set-up
    from tests.pg_server import PostgresServer
    from tests.redis_server import RedisServer

_STARTED: list[AirflowStack] = []


#: The training task's queue in the stack: only the worker that serves it (a GPU box in production) trains.
TRAIN_QUEUE = "gpu"


#: Alerts of the stack's runs go here (tests/smtp_sink.py); the deadline is short enough that every run misses it.
ALERT_TO = "oncall@example.com"
DEADLINE_MAX_H = "0.005"  # 18 s after a run was queued: "running too long", sent by the triggerer
RUN_TIMEOUT_S = 900.0


@pytest.fixture(scope="session")
def stack_smtp() -> Iterator[SmtpSink]:
    """The SMTP server the stack's alerts (failures, rejections, approvals, deadlines) are delivered to."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def airflow_stack(
    postgres_server: PostgresServer, redis_server: RedisServer, local_hub: LocalHub, session_tmp: Path,
    stack_smtp: SmtpSink,
) -> Iterator[AirflowStack]:
    """The multi-machine topology on loopback: api-server, scheduler, dag-processor, triggerer and two Celery
    workers (queue ``default``; queue ``gpu``) as separate processes; PostgreSQL metadata DB, Redis broker;
    artifacts in a ``file://`` store, so tasks see each other's outputs only through the store's complete steps."""
    options = StackOptions(
        executor="CeleryExecutor",
        # Two workers, as on two machines: a CPU one for everything but training, a "GPU" one for training only.
        components=(
            *BASE_COMPONENTS,
            ("celery", "worker", "--queues", "default", "--celery-hostname", "cpu@%h"),
            # One log server per host is enough (both write the same logs folder here); a second would clash.
            ("celery", "worker", "--queues", TRAIN_QUEUE, "--celery-hostname", f"{TRAIN_QUEUE}@%h",
             "--concurrency", "1", "--skip-serve-logs"),
        ),
        artifacts_in_store=True,
        extra_env={
            "AIRFLOW__CELERY__BROKER_URL": redis_server.url,
            "RERANKER_TRAIN_QUEUE": TRAIN_QUEUE,
            "RERANKER_ALERT_EMAILS": ALERT_TO,
            "RERANKER_ALERT_FROM": "airflow@example.com",
            "RERANKER_DEADLINE_MAX_H": DEADLINE_MAX_H,
            "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
                "conn_type": "smtp", "host": "127.0.0.1", "port": stack_smtp.port,
                "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 1},
            }),
        },
        dag_ids=("reranker_retrain", "reranker_retrain_on_labels", "reranker_labels_published"),
    )
    stack = start_airflow_stack(postgres_server, local_hub, session_tmp, options)
    _STARTED.append(stack)
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def stack_client(airflow_stack: AirflowStack) -> Iterator[AirflowClient]:
    """A REST client logged in as the stack's admin user."""
    client = airflow_stack.client()
    client.login()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def tiny_conf(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The e2e tests' run conf (tiny BERT, learnable pairs), so a run trains in seconds; tests add ``hub_repo_id``.

    Same values as ``tests/dags/test_reranker_e2e.py``'s ``e2e_inputs``: what passes there passes here, and a
    difference in outcome points at the deployment, not the data.
    """
    from tests.support import tiny_run_inputs

    return tiny_run_inputs(tmp_path_factory.mktemp("stack-inputs"))[1]


@dataclass(frozen=True)
class TwoRuns:
    repo: str
    promoted: str
    rejected: str
    commit_sha: str
    commit_url: str


@pytest.fixture(scope="session")
def two_runs(stack_client: AirflowClient, tiny_conf: dict[str, Any], local_hub: LocalHub) -> TwoRuns:
    """Run 1 promotes and pushes; run 2, on the same data, is not promoted. Both are evaluated.

    One pair for the session: the smoke test checks the first run's execution (queues, workers, store, alert),
    the UI tests both runs' links and views. A full run costs about a minute of CI, so they share it.
    """
    from huggingface_hub import HfApi

    repo = f"local/stack-runs-{uuid.uuid4().hex[:8]}"
    conf = {**tiny_conf, "hub_repo_id": repo, "approval": "reject"}
    stack_client.unpause(DAG_ID)
    began = time.perf_counter()
    first = stack_client.trigger_dag(DAG_ID, conf)
    stack_client.wait_for_run(DAG_ID, first, ("success",), timeout=RUN_TIMEOUT_S, fail_on_input_wait=True)
    print(f"run {first} succeeded in {time.perf_counter() - began:.1f} s")
    second = stack_client.trigger_dag(DAG_ID, conf)
    stack_client.wait_for_run(DAG_ID, second, ("success",), timeout=RUN_TIMEOUT_S, fail_on_input_wait=True)
    print(f"two runs in {time.perf_counter() - began:.1f} s: {first}, {second}")

    states = stack_client.task_instances(DAG_ID, first)
    assert states["publish"] == "success", stack_client.describe_run(DAG_ID, first)
    states = stack_client.task_instances(DAG_ID, second)
    assert states["publish"] == "skipped", stack_client.describe_run(DAG_ID, second)
    head = HfApi(endpoint=local_hub.endpoint, token=local_hub.token).list_repo_commits(repo, revision="main")[0]
    assert first in (head.message or "")
    return TwoRuns(repo, first, second, head.commit_id, f"{local_hub.endpoint}/{repo}/commit/{head.commit_id}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """On a failure, show what the components were saying: a REST timeout alone rarely tells why."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _STARTED:
        for stack in _STARTED:
            report.sections.append((f"Airflow stack logs (tail), files under {stack.root}", stack.logs_report()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for stack in _STARTED:
        timings = "  ".join(f"{k}={v:.1f}" for k, v in stack.timings.items())
        terminalreporter.write_line(f"airflow stack {stack.root}: {timings}")
