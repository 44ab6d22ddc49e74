"""A real Airflow 3.3 deployment on loopback, for tests that must go through the scheduler and the REST API.

``dag.test()`` runs a DAG in one process and never talks to the api-server, so it cannot test what a person
or another system does *to* a running deployment: triggering through ``/api/v2``, answering a
human-in-the-loop step (which parks the task and resumes it through the API and the triggerer), reading task
logs the way the UI does. This module starts the real thing, each component in its own process:

* metadata DB: a fresh database on the session's PostgreSQL server (``tests/pg_server.py``), migrated once;
* ``airflow api-server`` on a free loopback port, ``airflow scheduler`` (LocalExecutor),
  ``airflow dag-processor`` and ``airflow triggerer``; DAGs from the repo's ``dags/``, plugins from ``plugins/``;
* the environment ``scripts/run_dag.py`` gives a local run (artifacts root, the loopback Hub as HF endpoint,
  the ``huggingface_default`` connection holding the Hub token, the ``labels_db`` SQLite source);
* the simple auth manager with one admin user and a password written by us into its passwords file, so the
  API is really behind auth; :class:`AirflowClient` logs in with ``POST /auth/token`` and sends the JWT.

Everything lives in one folder under the session's tmp dir (``AirflowStack.root``: ``home/`` is AIRFLOW_HOME
with the task logs, ``process-logs/<component>.log`` the components' output, ``artifacts/`` the runs'
artifacts); it is left in place after the session for debugging. The weekly cron is off
(``RERANKER_SCHEDULE=none``): unpausing the DAG would otherwise start a default run with the full-size base model,
and with ``max_active_runs=1`` a test's own run would queue behind it. Asset-triggered runs stay on.

The session's stack (``tests/stack/conftest.py``) is the multi-machine topology of ``docker-compose.yaml``:
CeleryExecutor with a real Redis broker (``tests/redis_server.py``), a Celery worker serving the ``default``
queue and the training queue (``gpu``, as a GPU worker would), results in PostgreSQL. Other variants pass
another executor, extra components and extra environment in :class:`StackOptions`.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from scripts.run_dag import ROOT, airflow_env, hub_connection_env, labels_db_env

if TYPE_CHECKING:
    from tests.conftest import LocalHub
    from tests.pg_server import PostgresServer

DAG_ID = "reranker_retrain"
ADMIN_USER = "admin"
BASE_COMPONENTS: tuple[tuple[str, ...], ...] = (("scheduler",), ("dag-processor",), ("triggerer",))
# Component name -> its entry in /api/v2/monitor/health.
HEALTH_KEYS = {"scheduler": "scheduler", "triggerer": "triggerer", "dag-processor": "dag_processor"}
MIGRATE_TIMEOUT_S = 240.0
PARK_SEEN_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 240.0  # api-server healthy and the DAGs parsed; about 30 s on 2 CPUs, generous for a loaded CI box
STOP_TIMEOUT_S = 20.0
RUN_END_STATES = frozenset({"success", "failed"})
TASK_FAILED_STATES = frozenset({"failed", "upstream_failed", "up_for_retry"})
INPUT_WAIT_STATES = frozenset({"awaiting_input", "deferred"})


class AirflowStackError(RuntimeError):
    """The deployment could not be started, or one of its processes died."""


class AirflowApiError(RuntimeError):
    """A REST call answered with an unexpected status."""

    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.body = response.text
        super().__init__(f"{method} {path} -> HTTP {response.status_code}: {response.text[:2000]}")


def free_port() -> int:
    """A loopback port nobody listens on now (the usual bind-to-0 trick; good enough on a test box)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class StackOptions:
    """What varies between deployments; the defaults are the LocalExecutor stack the HITL tests use.

    Attributes:
        executor: ``[core] executor``.
        components: Airflow sub-commands started beside the api-server, each in its own process group
            (a Celery variant adds ``("celery", "worker")``).
        extra_env: Added last, so it can override any setting (e.g. the Celery broker URL).
        dag_ids: DAGs that must be parsed before the stack counts as ready.
        parallelism: ``[core] parallelism``: small, the box has 2 CPUs and a task is a whole Python process.
        artifacts_in_store: artifacts under a ``file://`` URI, i.e. the store mode of ``reranker_tasks.storage``
            (each task in its own scratch folder, inputs downloaded from complete steps, completion markers), the
            way workers on different machines share an S3 bucket; False: a plain folder, written in place.
    """

    executor: str = "LocalExecutor"
    components: tuple[tuple[str, ...], ...] = BASE_COMPONENTS
    extra_env: Mapping[str, str] = field(default_factory=dict)
    dag_ids: tuple[str, ...] = (DAG_ID,)
    parallelism: int = 4
    artifacts_in_store: bool = False


@dataclass
class Component:
    """One Airflow process (and its children, in the same process group), its output going to one file."""

    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: Mapping[str, str], cwd: Path) -> None:
        """Start in a new session, so the whole group (executor workers, uvicorn workers) can be signalled.

        ``setpriv --pdeathsig TERM`` (util-linux, where present) makes the kernel stop the component when
        pytest dies without running its teardown, so no scheduler keeps running against a dead database.
        """
        argv = list(self.argv)
        setpriv = shutil.which("setpriv")
        if setpriv:
            argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=dict(env), cwd=cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        """None while running (or never started)."""
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        """SIGTERM to the component itself only: each Airflow component stops its own children in order.

        Signalling the whole group at once races that shutdown (seen: the dag-processor hangs reaping a
        parser that was already killed, the triggerer waits out its 10 s escalation delay).
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def signal_group(self, sig: signal.Signals) -> None:
        """Signal the whole process group; a group that is already gone is fine."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def tail(self, lines: int = 60) -> str:
        return tail_file(self.log_path, lines)


def tail_file(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file, or a note saying why there are none."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 200 * lines))  # enough bytes for the tail without reading big logs
            text = handle.read().decode(errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class AirflowClient:
    """A small REST client for the stack's api-server (``/api/v2``), logged in as the admin user.

    Every wait polls, calls ``check`` (the stack's liveness probe) on each round so a dead scheduler fails the
    test at once with its log instead of after the timeout, and puts the run's task states and the failed
    tasks' log tails in the error so an assertion message says what went wrong.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        *,
        check: Callable[[], None] | None = None,
        before_answer: Callable[[Mapping[str, Any]], None] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._check = check or (lambda: None)
        self._before_answer = before_answer
        # trust_env=False: a proxy from the environment must never see loopback calls.
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout_s, trust_env=False)

    # -- plumbing
    def login(self) -> str:
        """Get a JWT from the simple auth manager and send it from now on."""
        response = self.http.post("/auth/token", json={"username": self.username, "password": self._password})
        if response.status_code not in (200, 201):
            raise AirflowApiError("POST", "/auth/token", response)
        token = str(response.json()["access_token"])
        self.http.headers["Authorization"] = f"Bearer {token}"
        return token

    def request(self, method: str, path: str, *, expect: Iterable[int] = (200,), **kwargs: Any) -> httpx.Response:
        """One call; logs in first when needed and once more on a 401 (the JWT expired)."""
        if "Authorization" not in self.http.headers:
            self.login()
        response = self.http.request(method, path, **kwargs)
        if response.status_code == 401:
            self.login()
            response = self.http.request(method, path, **kwargs)
        if response.status_code not in set(expect):
            raise AirflowApiError(method, path, response)
        return response

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def _run_path(dag_id: str, run_id: str) -> str:
        # Manual run ids hold ':' and '+' (manual__2026-01-01T00:00:00+00:00): quote everything.
        return f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"

    # -- DAGs and runs
    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` (needs no auth)."""
        response = self.http.get("/api/v2/monitor/health")
        if response.status_code != 200:
            raise AirflowApiError("GET", "/api/v2/monitor/health", response)
        return dict(response.json())

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/api/v2/dags/{quote(dag_id, safe='')}").json())

    def import_errors(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/api/v2/importErrors", params={"limit": 100}).json()["import_errors"])

    def unpause(self, dag_id: str) -> None:
        """A DAG is paused when first parsed (``dags_are_paused_at_creation``); its runs wait until unpaused."""
        body = self.request("PATCH", f"/api/v2/dags/{quote(dag_id, safe='')}", json={"is_paused": False}).json()
        if body.get("is_paused"):
            raise AssertionError(f"{dag_id} is still paused after PATCH is_paused=false: {body}")

    def trigger_dag(self, dag_id: str, conf: Mapping[str, Any], run_id: str | None = None) -> str:
        """Trigger a manual run (``logical_date`` null, as the UI does in Airflow 3); returns its run id."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf)}
        if run_id:
            body["dag_run_id"] = run_id
        response = self.request("POST", f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns", json=body)
        return str(response.json()["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", self._run_path(dag_id, run_id)).json())

    def task_instance_list(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """All task instances of the run, every page (``[api] maximum_page_limit`` caps one page at 100)."""
        items: list[dict[str, Any]] = []
        while True:
            page = self.request(
                "GET", f"{self._run_path(dag_id, run_id)}/taskInstances", params={"limit": 100, "offset": len(items)}
            ).json()
            items.extend(page["task_instances"])
            if not page["task_instances"] or len(items) >= page["total_entries"]:
                return items

    def task_instance(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """One task instance as the API returns it (``id``, ``state``, ``try_number``, ...)."""
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}"
        if map_index != -1:
            path += f"/{map_index}"
        return dict(self.request("GET", path).json())

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """``{task_id: state}``; a mapped task's instances are ``task_id[map_index]``; None = not scheduled yet."""
        states: dict[str, str | None] = {}
        for ti in self.task_instance_list(dag_id, run_id):
            key = ti["task_id"] if ti.get("map_index", -1) == -1 else f"{ti['task_id']}[{ti['map_index']}]"
            states[key] = ti["state"]
        return states

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        states: Iterable[str] = ("success",),
        timeout: float = 600.0,
        *,
        interval: float = 2.0,
        fail_on_input_wait: bool = False,
    ) -> dict[str, Any]:
        """Wait until the run is in one of ``states``; returns the run.

        Fails at once, with the task states and failed tasks' logs, when the run ends in a state not asked for.
        ``fail_on_input_wait`` also fails at once when a task waits for a human (HITL) answer that the caller
        does not intend to give, instead of sitting out the timeout.
        """
        wanted = set(states)
        deadline = time.monotonic() + timeout
        while True:
            self._check()
            run = self.dag_run(dag_id, run_id)
            if run["state"] in wanted:
                return run
            if run["state"] in RUN_END_STATES:
                raise AssertionError(
                    f"run {run_id} ended {run['state']!r}, expected {sorted(wanted)}\n"
                    f"{self.describe_run(dag_id, run_id)}"
                )
            if fail_on_input_wait:
                waiting = self.tasks_waiting_for_input(dag_id, run_id)
                if waiting:
                    raise AssertionError(
                        f"run {run_id} waits for human input at {waiting}, which this test does not answer\n"
                        f"{self.describe_run(dag_id, run_id)}"
                    )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"run {run_id} still {run['state']!r} after {timeout:.0f} s, expected {sorted(wanted)}\n"
                    f"{self.describe_run(dag_id, run_id)}"
                )
            time.sleep(interval)

    def wait_for_task_state(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        states: Iterable[str],
        timeout: float = 300.0,
        *,
        interval: float = 1.0,
        map_index: int = -1,
    ) -> str:
        """Wait until one task instance is in one of ``states`` (e.g. ``awaiting_input``/``deferred``); returns it.

        Fails at once when the run ends first, since the task can then no longer change state.
        """
        wanted = set(states)
        key = task_id if map_index == -1 else f"{task_id}[{map_index}]"
        deadline = time.monotonic() + timeout
        while True:
            self._check()
            state = self.task_instances(dag_id, run_id).get(key)
            if state in wanted:
                return str(state)
            run_state = self.dag_run(dag_id, run_id)["state"]
            if run_state in RUN_END_STATES:
                raise AssertionError(
                    f"run {run_id} ended {run_state!r} with {key} {state!r}, expected {sorted(wanted)}\n"
                    f"{self.describe_run(dag_id, run_id)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{key} still {state!r} after {timeout:.0f} s, expected {sorted(wanted)}\n"
                    f"{self.describe_run(dag_id, run_id)}"
                )
            time.sleep(interval)

    # -- human in the loop
    def get_hitl_details(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any]:
        """The question a HITL task asks (options, params, whether answered); 404 until the task has asked."""
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}/{map_index}/hitlDetails"
        return dict(self.request("GET", path).json())

    def patch_hitl_details(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        chosen_options: Sequence[str],
        params_input: Mapping[str, Any] | None = None,
        map_index: int = -1,
    ) -> dict[str, Any]:
        """Answer a HITL task as the logged-in user (400: not an offered option; 409: already answered).

        A stack client first waits (``before_answer``) until the scheduler has seen the task park: answered
        sooner, Airflow 3.3.2 marks the resumed task FAILED (see :meth:`AirflowStack.wait_until_park_seen`).
        """
        if self._before_answer is not None:
            ti = self.task_instance(dag_id, run_id, task_id, map_index)
            if ti["state"] in INPUT_WAIT_STATES:
                self._before_answer(ti)
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}/{map_index}/hitlDetails"
        body = {"chosen_options": list(chosen_options), "params_input": dict(params_input or {})}
        return dict(self.request("PATCH", path, json=body).json())

    def tasks_waiting_for_input(self, dag_id: str, run_id: str) -> list[str]:
        """Task instances parked on a HITL question (deferred tasks count only when they have HITL details)."""
        waiting = []
        for ti in self.task_instance_list(dag_id, run_id):
            if ti["state"] not in INPUT_WAIT_STATES:
                continue
            if ti["state"] == "deferred":
                try:
                    self.get_hitl_details(dag_id, run_id, ti["task_id"], ti.get("map_index", -1))
                except AirflowApiError as exc:
                    if exc.status_code == 404:
                        continue
                    raise
            waiting.append(ti["task_id"])
        return waiting

    # -- logs
    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1, map_index: int = -1) -> str:
        """A task try's log as text, read through the API the way the UI reads it."""
        path = f"{self._run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}/logs/{try_number}"
        body = self.request(
            "GET", path, params={"full_content": "true", "map_index": map_index}, headers={"Accept": "application/json"}
        ).json()
        lines = []
        for entry in body.get("content") or []:
            if isinstance(entry, str):
                lines.append(entry)
                continue
            level = entry.get("level", "")
            lines.append(f"{entry.get('timestamp') or ''} {level} {entry.get('event', '')}".strip())
            if entry.get("error_detail"):
                lines.append(json.dumps(entry["error_detail"], default=str)[:4000])
        return "\n".join(lines)

    def describe_run(self, dag_id: str, run_id: str, log_lines: int = 40) -> str:
        """Task states and the log tails of failed or retrying tasks: what an assertion message should show."""
        try:
            tis = self.task_instance_list(dag_id, run_id)
        except (AirflowApiError, httpx.HTTPError) as exc:
            return f"(cannot list the task instances: {exc})"
        out = ["task states: " + ", ".join(f"{ti['task_id']}={ti['state']}" for ti in tis)]
        for ti in tis:
            if ti["state"] not in TASK_FAILED_STATES or ti["state"] == "upstream_failed":
                continue
            try_number = max(1, int(ti.get("try_number") or 1))
            try:
                text = self.task_log(dag_id, run_id, ti["task_id"], try_number, ti.get("map_index", -1))
            except (AirflowApiError, httpx.HTTPError) as exc:
                text = f"(log unavailable: {exc})"
            tail = "\n".join(text.splitlines()[-log_lines:])
            out.append(f"--- log of {ti['task_id']} try {try_number} (last {log_lines} lines) ---\n{tail}")
        return "\n".join(out)


class AirflowStack:
    """A running deployment: its folders, environment, processes, and a client factory.

    Build one with :func:`start_airflow_stack`; :meth:`stop` ends every process group and keeps the files.
    """

    def __init__(self, root: Path, env: dict[str, str], api_port: int, password: str, options: StackOptions) -> None:
        self.root = root
        self.home = Path(env["AIRFLOW_HOME"])
        # The files themselves (a file:// store keeps the same <run>/<step>/ layout on disk).
        self.artifacts = Path(env["RERANKER_ARTIFACTS_ROOT"].removeprefix("file://"))
        self.process_logs = root / "process-logs"
        self.env = env
        self.api_port = api_port
        self.base_url = f"http://127.0.0.1:{api_port}"
        self.username = ADMIN_USER
        self.password = password
        self.options = options
        self.components: list[Component] = []
        self.timings: dict[str, float] = {}
        self._warmer: threading.Thread | None = None
        self._stopped = False

    # -- start-up
    def start(self) -> None:
        """Migrate the DB, start the components, and return once the API answers and the DAGs are parsed."""
        began = time.perf_counter()
        self._migrate()
        self.timings["migrate_s"] = time.perf_counter() - began
        airflow = [sys.executable, "-m", "airflow"]
        api = Component(
            "api-server",
            [*airflow, "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"],
            self.process_logs / "api-server.log",
        )
        self.components = [api] + [
            Component(_component_name(cmd), [*airflow, *cmd], self.process_logs / f"{_component_name(cmd)}.log")
            for cmd in self.options.components
        ]
        atexit.register(self.stop)  # an interrupted session still ends its processes
        for component in self.components:
            component.start(self.env, ROOT)
        launched = time.perf_counter()
        client = self.client()
        try:
            self._wait_healthy(client)
            self.timings["healthy_s"] = time.perf_counter() - launched
            self._wait_dags_parsed(client)
            self.timings["dags_parsed_s"] = time.perf_counter() - launched
        finally:
            client.close()
        self.timings["startup_s"] = time.perf_counter() - began

    def _migrate(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=self.env, cwd=ROOT, capture_output=True,
            text=True, timeout=MIGRATE_TIMEOUT_S, check=False,
        )
        (self.process_logs / "db-migrate.log").write_text(done.stdout + done.stderr)
        if done.returncode:
            raise AirflowStackError(
                f"airflow db migrate failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )

    def _wait_healthy(self, client: AirflowClient) -> None:
        """Wait until the API answers and reports the DB and every started component healthy (by heartbeat).

        A test that needs the triggerer (HITL) must not start before it heartbeats, so the API alone is not enough.
        """
        names = {c.name for c in self.components}
        required = ["metadatabase"] + [key for name, key in HEALTH_KEYS.items() if name in names]
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = "no answer yet"
        while time.monotonic() < deadline:
            self.check_running()
            try:
                health = client.health()
                if self._warmer is None:  # the API answers: start building the Execution API meanwhile
                    self._warmer = threading.Thread(target=self._warm_execution_api, name="warm-exec-api", daemon=True)
                    self._warmer.start()
                if all((health.get(key) or {}).get("status") == "healthy" for key in required):
                    return
                last = json.dumps(health)
            except (httpx.HTTPError, AirflowApiError) as exc:
                last = str(exc) or type(exc).__name__
            time.sleep(0.5)
        raise AirflowStackError(
            f"the api-server did not report healthy within {READY_TIMEOUT_S:.0f} s ({last})\n{self.logs_report()}"
        )

    def _warm_execution_api(self) -> None:
        """Make the api-server build its task Execution API now, in the background, not for the first task.

        The api-server builds the ``/execution`` app on the first request to it: about 10 s on a busy 2-CPU box.
        Left to the first task, its start call times out client-side and is retried (400s in the api-server
        log, a retry warning in the task log). Done here, it overlaps the DAG parse and the test's own set-up.
        """
        began = time.perf_counter()
        try:
            with httpx.Client(base_url=self.base_url, timeout=120.0, trust_env=False) as http:
                http.get("/execution/health")
        except httpx.HTTPError:
            return  # only an optimisation: a real problem shows in the first task
        self.timings["execution_api_warm_s"] = time.perf_counter() - began

    def _wait_dags_parsed(self, client: AirflowClient) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        missing = list(self.options.dag_ids)
        while time.monotonic() < deadline:
            self.check_running()
            for dag_id in list(missing):
                try:
                    client.get_dag(dag_id)
                    missing.remove(dag_id)
                except AirflowApiError as exc:
                    if exc.status_code != 404:
                        raise
            if not missing:
                return
            time.sleep(1.0)
        try:
            errors = json.dumps(client.import_errors(), indent=1)[:6000]
        except (httpx.HTTPError, AirflowApiError) as exc:
            errors = f"(cannot read import errors: {exc})"
        raise AirflowStackError(
            f"DAG(s) {missing} not parsed within {READY_TIMEOUT_S:.0f} s; import errors: {errors}\n{self.logs_report()}"
        )

    # -- while running
    def client(self) -> AirflowClient:
        """A new client logged in lazily as the admin user; it fails its waits at once if a component died."""
        return AirflowClient(
            self.base_url, self.username, self.password, check=self.check_running,
            before_answer=self.wait_until_park_seen,
        )

    def wait_until_park_seen(self, ti: Mapping[str, Any], timeout: float = PARK_SEEN_TIMEOUT_S) -> bool:
        """Wait until the scheduler has processed the executor event of every time this task instance parked.

        Why: a HITL task parks (``awaiting_input``), its worker process exits, and the executor reports that
        exit to the scheduler a loop later. If the answer arrives in between (a script answers within a second;
        a person never does), the API re-queues the task with the *same* try number, the scheduler then reads
        the stale exit event as "finished, but the task is queued", and Airflow 3.3.2 marks it FAILED
        ("Executor ... reported that the task instance ... finished with state success, but the task instance's
        state attribute is queued"). Seen in this stack with LocalExecutor.

        How: the worker's "Pausing task as ..." lines (tagged with the TI id) and the scheduler's "Received
        executor event ... TaskInstanceKey(...)" lines are counted in the component logs; done when there are as
        many events as parks (at least one). Returns False, with a warning, when that is not seen in time
        (e.g. another executor logging elsewhere); the caller then answers anyway.
        """
        key = (
            f"TaskInstanceKey(dag_id='{ti['dag_id']}', task_id='{ti['task_id']}', run_id='{ti['dag_run_id']}', "
            f"try_number={ti['try_number']}, map_index={ti.get('map_index', -1)})"
        )
        ti_id = str(ti["id"])
        # The park is logged by the task: in the scheduler's output under the LocalExecutor (key=value), only in the
        # task's log file under Celery (JSON lines). The executor event is always in the scheduler's output.
        # Counted per kind of source (the same park may show in both), the larger count wins.
        task_logs = self.home.joinpath(
            "logs", f"dag_id={ti['dag_id']}", f"run_id={ti['dag_run_id']}", f"task_id={ti['task_id']}"
        )
        deadline = time.monotonic() + timeout
        while True:
            events = 0
            parks_by_kind = {"components": 0, "task logs": 0}
            sources = [("components", c.log_path) for c in self.components]
            sources += [("task logs", path) for path in sorted(task_logs.glob("attempt=*.log"))]
            for kind, source in sources:
                try:
                    text = source.read_text(errors="replace")
                except OSError:
                    continue
                for line in text.splitlines():
                    if "Pausing task as" in line and ti_id in line:
                        parks_by_kind[kind] += 1
                    elif "Received executor event with state" in line and key in line:
                        events += 1
            parks = max(parks_by_kind.values())
            if parks and events >= parks:
                return True
            if time.monotonic() > deadline:
                warnings.warn(
                    f"did not see the scheduler process the park of {ti['task_id']} ({parks} park(s), {events} "
                    f"executor event(s)) within {timeout:.0f} s; answering anyway", stacklevel=2,
                )
                return False
            time.sleep(0.5)

    def check_running(self) -> None:
        """Raise, with the logs, when a component has exited: nothing would make progress any more."""
        dead = [f"{c.name} (exit {c.exit_code()})" for c in self.components if c.exit_code() is not None]
        if dead and not self._stopped:
            raise AirflowStackError(f"Airflow component(s) exited: {', '.join(dead)}\n{self.logs_report()}")

    def logs_report(self, lines: int = 60, task_logs: int = 3) -> str:
        """The tails of every component's output and of the newest task logs, for a failure message."""
        parts = []
        for component in self.components:
            state = "running" if component.exit_code() is None else f"exited {component.exit_code()}"
            parts.append(f"===== {component.name} ({state}) {component.log_path} =====\n{component.tail(lines)}")
        logs = self.home / "logs"
        newest = sorted(
            (p for p in logs.rglob("*.log") if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True
        )[:task_logs] if logs.is_dir() else []
        for path in newest:
            parts.append(f"===== task log {path.relative_to(logs)} =====\n{tail_file(path, lines)}")
        return "\n".join(parts)

    # -- shutdown
    def stop(self) -> None:
        """SIGTERM every component (scheduler first, so it launches nothing new), then SIGKILL each process group.

        The final SIGKILL sweeps what a component left behind or what did not stop within the grace period.
        Files (AIRFLOW_HOME, logs, artifacts) stay for debugging; the session tmp dir holds them.
        """
        if self._stopped:
            return
        self._stopped = True
        order = sorted(self.components, key=lambda c: c.name != "scheduler")
        began = time.perf_counter()
        for component in order:
            component.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for component in order:
            if component.process is None:
                continue
            try:
                component.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                component.signal_group(signal.SIGKILL)
                component.process.wait(STOP_TIMEOUT_S)
            component.signal_group(signal.SIGKILL)  # stragglers of a leader that exited (executor workers)
        self.timings["stop_s"] = time.perf_counter() - began


def create_database(server: PostgresServer, name: str) -> str:
    """A new, empty database on the session's PostgreSQL server; returns its SQLAlchemy URL."""
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=server.port, user="postgres", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


def _component_name(cmd: tuple[str, ...]) -> str:
    """``scheduler``, ``dag-processor``; ``celery-worker-default`` for ``celery worker --queues default …``."""
    if cmd[:2] == ("celery", "worker") and "--queues" in cmd:
        return f"celery-worker-{cmd[cmd.index('--queues') + 1].replace(',', '-')}"
    return "-".join(cmd)


def stack_env(
    root: Path, database_url: str, hub: LocalHub, api_port: int, password_file: Path, options: StackOptions
) -> dict[str, str]:
    """The components' environment: ``scripts/run_dag.py``'s local set-up, pointed at PostgreSQL and the API.

    Inherited ``AIRFLOW*`` variables (the test session's own SQLite set-up, connections a test patched in)
    are dropped, so the deployment sees only what is set here.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTEST_"))}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_TOKEN", None)  # the token must come from the connection, as in production
    env.update(airflow_env(root / "home", root / "artifacts", root / "hf_home", hub.endpoint))
    env.update(hub_connection_env(hub.token))
    env.update(labels_db_env(root))
    from cryptography.fernet import Fernet

    base_url = f"http://127.0.0.1:{api_port}"
    env.update({
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
        # Airflow derives postgresql+asyncpg for its async engine; asyncpg is not installed, psycopg 3 does async.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": database_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",  # the test server allows 50 connections in all
        "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "6",
        "AIRFLOW__CORE__EXECUTOR": options.executor,
        "AIRFLOW__CORE__PARALLELISM": str(options.parallelism),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__WORKERS": "1",
        # Shared by every component: the scheduler signs task tokens that the api-server checks.
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(64),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
        # Log servers on free ports: two stacks (or a stray local Airflow) must not fight over 8793/8794.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        # No cron runs (they would queue a full-size default run before the tests' own), but the scheduler must
        # still create asset-triggered runs, which use_job_schedule=False would switch off too.
        "RERANKER_SCHEDULE": "none",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
        "RERANKER_RETRY_DELAY_S": "2",  # transient errors retry after seconds, not minutes
    })
    if options.executor == "CeleryExecutor":
        # Task results go to the metadata DB (psycopg 3 through SQLAlchemy), as in docker-compose.yaml.
        env["AIRFLOW__CELERY__RESULT_BACKEND"] = f"db+{database_url}"
        env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "2"
    if options.artifacts_in_store:
        env["RERANKER_ARTIFACTS_ROOT"] = f"file://{root / 'artifacts'}"
        env["RERANKER_SCRATCH_DIR"] = str(root / "scratch")
    env.update(options.extra_env)
    return env


def start_airflow_stack(
    server: PostgresServer, hub: LocalHub, parent: Path, options: StackOptions | None = None
) -> AirflowStack:
    """Create the DB, write the config, start every component and wait until the stack is usable.

    On failure every started process is stopped and the error carries the components' log tails.
    """
    options = options or StackOptions()
    began = time.perf_counter()
    parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="airflow-stack-", dir=parent))
    (root / "process-logs").mkdir()
    (root / "home").mkdir()
    database_url = create_database(server, f"airflow_{root.name.replace('-', '_').lower()}")
    # The simple auth manager keeps plaintext passwords in this JSON file and only generates one for a user
    # missing from it: writing it first gives the admin a password the tests know.
    password = secrets.token_urlsafe(16)
    password_file = root / "home" / "simple_auth_manager_passwords.json"
    password_file.write_text(json.dumps({ADMIN_USER: password}) + "\n")
    password_file.chmod(0o600)
    api_port = free_port()
    env = stack_env(root, database_url, hub, api_port, password_file, options)
    (root / "env.json").write_text(
        json.dumps({k: v for k, v in env.items() if k.startswith(("AIRFLOW", "RERANKER", "HF_"))
                    and "SECRET" not in k and "KEY" not in k and not k.startswith("AIRFLOW_CONN_")}, indent=1)
    )
    stack = AirflowStack(root, env, api_port, password, options)
    stack.timings["prepare_s"] = time.perf_counter() - began
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    stack.timings["total_s"] = time.perf_counter() - began
    return stack
