"""Run the retraining DAG once through Airflow on this machine (``make run`` / ``make demo``).

Local set-up, all inside the project folder (no global state touched; ``RERANKER_LOCAL_STATE`` moves it
elsewhere, which the tests use):

* Airflow home ``.airflow/`` with a SQLite metadata DB (migrated on each start; a no-op when current);
* the loopback Hub emulator (``python -m hub_emulator serve``) on ``LOCALHUB_PORT`` (default 8791), storing
  repos in ``.localhub/``; it is started here and stopped when the run ends;
* its token goes into the Airflow connection ``huggingface_default`` (as an ``AIRFLOW_CONN_*`` variable of
  this process, so it is never written to a file by us);
* Hugging Face caches in ``.hf_home/``; artifacts in ``artifacts/<run id>/``.

The run itself is ``dag.test(run_conf=...)``: the real scheduler loop and task runner, in one process.
The last line printed is the outcome, in one of these forms::

    OUTCOME: promoted <commit url> tag=<tag>
    OUTCOME: not promoted: <reasons>
    OUTCOME: failed at <task>: <message>

Exit status 0 unless the run failed (1), or the conf was rejected before any work (2).

Console: Airflow's own log (every structlog line of the scheduler loop, task runner and libraries) goes to a file
under ``.airflow/logs/make-run/`` whose path is printed first; the console gets one line per task start and end,
training's dev evaluations, warnings and errors from our steps, then the summary and the outcome.
``--verbose`` (or ``VERBOSE=1``) prints everything to the console instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HUB_PORT = 8791


def airflow_env(home: Path, artifacts: Path, hf_home: Path, hub_endpoint: str) -> dict[str, str]:
    """Environment of a local Airflow + loopback Hub; must be in place before airflow/huggingface_hub import."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "RERANKER_ARTIFACTS_ROOT": str(artifacts),
        "HF_ENDPOINT": hub_endpoint,
        "HF_HOME": str(hf_home),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "TOKENIZERS_PARALLELISM": "false",
        "WANDB_DISABLED": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }


def hub_connection_env(token: str) -> dict[str, str]:
    """The ``huggingface_default`` connection as an Airflow environment-variable connection."""
    return {"AIRFLOW_CONN_HUGGINGFACE_DEFAULT": json.dumps({"conn_type": "generic", "password": token})}


def labels_db_env(state: Path) -> dict[str, str]:
    """The embedded SQL source: a SQLite DB holding the sample pairs as table ``labeled_pairs``.

    ``make run CONF='{"sql_query": "SELECT query, document, label FROM labeled_pairs"}'`` reads it through
    the ``labels_db`` connection, exactly as a PostgreSQL table would be read.
    """
    import sqlite3

    import pandas as pd

    from reranker_tasks.config import BUNDLED_DATA_DIR

    database = state / ".airflow" / "labels.sqlite"
    if not database.exists():
        database.parent.mkdir(parents=True, exist_ok=True)
        frame = pd.read_csv(BUNDLED_DATA_DIR / "support_pairs.csv")
        with sqlite3.connect(database) as connection:
            frame.to_sql("labeled_pairs", connection, index=False)
    return {"AIRFLOW_CONN_LABELS_DB": json.dumps({"conn_type": "sqlite", "host": str(database)})}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running_hub(root: Path, port: int) -> Iterator[str]:
    """Start the loopback Hub emulator as a child process; stop it on exit."""
    if _port_open(port):
        raise SystemExit(f"port {port} is already in use: stop whatever listens there or set LOCALHUB_PORT")
    log_path = root / "server.log"
    root.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub_emulator", "serve", "--root", str(root), "--port", str(port)],
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not _port_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the Hub emulator did not start; see {log_path}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def read_outcome(run_dir: Path, dag_run_state: str, failed_tasks: list[str]) -> tuple[str, int]:
    """The outcome line and exit status of a finished run, from its artifacts."""
    from reranker_tasks import layout  # here: ROOT is on sys.path once main() ran
    from reranker_tasks.layout import in_run

    failure = in_run(run_dir, layout.FAILURE)
    if failure.exists():
        info = json.loads(failure.read_text())
        lines = [line.strip() for line in (info.get("message") or "").splitlines() if line.strip()]
        message = " ".join(lines) or info.get("error_type") or "unknown error"
        return f"OUTCOME: failed at {info['task_id']}: {message}", 1
    if dag_run_state != "success":
        task = failed_tasks[0] if failed_tasks else "unknown task"
        return f"OUTCOME: failed at {task}: run ended {dag_run_state}; see the task log above", 1
    freshness = in_run(run_dir, layout.FRESHNESS)
    if freshness.exists() and json.loads(freshness.read_text()).get("skip"):
        return f"OUTCOME: skipped: {json.loads(freshness.read_text())['reason']}", 0
    published = in_run(run_dir, layout.PUBLISH_RESULT)
    if published.exists():
        info = json.loads(published.read_text())
        return f"OUTCOME: promoted {info['commit_url']} tag={info['tag']}", 0
    dry = in_run(run_dir, layout.PUBLISH_DRY_RUN)
    if dry.exists():
        info = json.loads(dry.read_text())
        return f"OUTCOME: dry run: would promote to {info['repo_id']} ({len(info['files'])} files); nothing pushed", 0
    conflict = in_run(run_dir, layout.PUBLISH_CONFLICT)
    if conflict.exists():
        return f"OUTCOME: not promoted: {json.loads(conflict.read_text())['reason']}", 0
    decision = in_run(run_dir, layout.GATE_DECISION)
    if decision.exists():
        info = json.loads(decision.read_text())
        outcome = info.get("outcome", "reject")
        approval = in_run(run_dir, layout.APPROVAL)
        if outcome == "needs_approval" and approval.exists():
            decided = json.loads(approval.read_text())
            return (
                f"OUTCOME: not promoted: needs approval and {decided['decided_by']} rejected it "
                f"(nobody to ask under make run; CONF='{{\"approval\": \"approve\"}}' pushes it): "
                + "; ".join(info["reasons"]),
                0,
            )
        return f"OUTCOME: not promoted ({outcome}): {'; '.join(info['reasons'])}", 0
    return "OUTCOME: failed at unknown task: the run succeeded but left no gate decision", 1


def summary_lines(run_dir: Path) -> list[str]:
    """What a person wants to see after a run: rows validated, metrics, decision, commit."""
    from reranker_tasks import layout
    from reranker_tasks.layout import in_run

    lines = [f"artifacts: {run_dir}"]
    failure = in_run(run_dir, layout.FAILURE)
    if failure.exists():
        info = json.loads(failure.read_text())
        lines.append(f"task {info['task_id']} failed ({info['error_type']}, try {info['try_number']}):")
        lines.extend(f"  {line}" for line in (info.get("message") or "").splitlines())
    validation = in_run(run_dir, layout.VALIDATION_REPORT)
    if validation.exists():
        info = json.loads(validation.read_text())
        summary = info.get("summary", info)
        lines.append(
            f"validated: {summary.get('rows')} rows, {summary.get('queries')} queries, "
            f"success={summary.get('success')}"
        )
    curve_path = in_run(run_dir, layout.TRAINING_CURVE)
    if curve_path.exists():
        curve = json.loads(curve_path.read_text())
        evaluations = curve.get("evaluations") or []
        if evaluations:
            lines.append(
                f"model selection: kept step {curve.get('chosen_step')} of {evaluations[-1]['step']} evaluated "
                "(dev ndcg@10 " + " ".join(f"{e['ndcg@10']:.3f}" for e in evaluations) + ")"
            )
    metrics_path = in_run(run_dir, layout.METRICS)
    if metrics_path.exists():
        metrics = json.loads(metrics_path.read_text())
        lines.append(f"eval queries: {metrics['eval_queries']}")
        for name in ("candidate", "base", "champion"):
            values = metrics.get(name)
            if values:
                shown = {k: v for k, v in values.items() if k in SUMMARY_METRICS}
                lines.append(f"{name:>9}: " + "  ".join(f"{k}={_num(v)}" for k, v in shown.items()))
        if not metrics.get("champion"):
            lines.append(" champion: none")
    decision_path = in_run(run_dir, layout.GATE_DECISION)
    if decision_path.exists():
        decision = json.loads(decision_path.read_text())
        lines.append(f"gate: {decision.get('outcome', 'promote' if decision['promote'] else 'reject')}")
        lines.extend(f"  - {reason}" for reason in decision["reasons"])
    published = in_run(run_dir, layout.PUBLISH_RESULT)
    if published.exists():
        info = json.loads(published.read_text())
        lines.append(f"hub commit: {info['commit_url']}")
        lines.append(f"hub tag: {info['tag']}")
    return lines


SUMMARY_METRICS = ("map", "mrr@10", "ndcg@10", "hit@1", "hit@3", "average_precision", "f1", "score_std")


def _num(value: Any) -> str:
    return "nan" if value is None else f"{value:.4f}"


def with_local_approval(conf: Mapping[str, Any]) -> dict[str, Any]:
    """``dag.test`` has nobody to approve a borderline candidate: ``approval`` defaults to ``reject`` here.

    ``wait`` would block forever, so it is refused with a pointer to the scheduler-run DAG.
    """
    conf = dict(conf)
    if conf.get("approval") == "wait":
        raise SystemExit(
            "approval=wait needs a person in the Airflow UI; make run has nobody to ask. "
            "Use approval=approve or approval=reject here, or trigger the DAG on a running Airflow."
        )
    conf.setdefault("approval", "reject")
    return conf


def load_conf(conf: str | None, conf_file: str | None) -> dict[str, Any]:
    if conf and conf_file:
        raise SystemExit("give CONF or CONF_FILE, not both")
    text = Path(conf_file).read_text() if conf_file else (conf or "{}")
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise SystemExit(f"conf is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SystemExit("conf must be a JSON object")
    return value


def migrate_db() -> None:
    """Create or upgrade the SQLite metadata DB (a no-op when it is current).

    In this process rather than through ``airflow db migrate``: the run imports Airflow anyway, and a second
    interpreter importing it again cost about 5 s of every ``make run`` (bench/speed.py --dag).
    """
    from airflow.utils import db

    try:
        db.upgradedb()
    except Exception as exc:  # noqa: BLE001 - any failure here stops the run before it starts
        raise SystemExit(f"migrating the Airflow metadata DB failed: {type(exc).__name__}: {exc}") from exc


#: A structlog console line: ``<timestamp> [<level>   ] <message> [<logger>] key=value ...``.
_LOG_LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<message>.*?)\s+\[(?P<logger>[\w.]+)\]")
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(?P<task>\w+)")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=(?P<task>\w+)")
#: Loggers of this project: the steps, and the DAG's own (its alerts log as ``reranker_retrain.alerts``).
_OUR_LOGGERS = ("reranker_tasks", "reranker_airflow", "reranker_retrain")
#: Messages of our steps worth a console line while a task runs (the rest is in the log file).
_PROGRESS = ("training ", "model selection: ", "dev evaluation at step", "hard negatives: mined", "stopping early")


def progress_line(line: str, started: dict[str, float], now: float) -> str | None:
    """The console line for one line of Airflow's log, or None when it belongs in the log file only.

    ``started`` maps task ids to their start time; it is updated here, so the end line can say how long it took.
    """
    if match := _TASK_START.search(line):
        started[match["task"]] = now
        return f"  {match['task']} ..."
    if match := _TASK_END.search(line):
        took = now - started.pop(match["task"], now)
        return f"  {match['task']} done in {took:.1f} s"
    match = _LOG_LINE.match(line)
    if match is None:
        return None
    level, message, logger = match["level"].lower(), match["message"], match["logger"]
    ours = logger.split(".")[0] in _OUR_LOGGERS
    if ours and level in ("warning", "error", "critical"):
        return f"    {level}: {message[:400]}"
    if ours and message.startswith(_PROGRESS):
        return f"    {message[:400]}"
    return None


@contextmanager
def quiet_console(log_path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors, so libraries and child processes too) to
    ``log_path``; a thread reads the file as it grows and prints ``progress_line``s to the real console."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    console = os.fdopen(os.dup(1), "w", buffering=1)
    saved_err = os.dup(2)
    log = open(log_path, "ab", buffering=0)  # noqa: SIM115 - closed in finally, after the descriptors are back
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    done = threading.Event()

    def follow() -> None:
        started: dict[str, float] = {}
        with open(log_path, encoding="utf-8", errors="replace") as reader:
            pending = ""
            while True:
                chunk = reader.read()
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        if (text := progress_line(line, started, time.monotonic())) is not None:
                            console.write(text + "\n")
                elif done.is_set():
                    return
                else:
                    time.sleep(0.2)

    follower = threading.Thread(target=follow, name="console-progress", daemon=True)
    follower.start()
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        done.set()
        follower.join(timeout=10)
        os.dup2(console.fileno(), 1)
        os.dup2(saved_err, 2)
        os.close(saved_err)
        console.close()
        log.close()


def _outcome_files(run_id: str) -> Path:
    """A local folder with the run's JSON records: the run's own folder, or (artifacts in an object store) a
    download of just its ``.json`` files, which is all the outcome and the summary read."""
    import tempfile

    from reranker_airflow.context import artifact_store

    store = artifact_store()
    if store.local:
        return Path(store.key(run_id))
    local = Path(tempfile.mkdtemp(prefix="reranker-outcome-")) / Path(store.key(run_id)).name
    remote = store.key(run_id)
    for path in store.fs.find(remote):
        if path.endswith(".json"):
            target = local / path[len(remote):].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            store.fs.get_file(path, str(target))
    return local


def run_once(conf: Mapping[str, Any], mark_success_pattern: str | None = None) -> tuple[str, int, str]:
    """Run the DAG once with ``dag.test`` (Airflow env already in ``os.environ``); print the run's summary.

    Returns:
        ``(outcome line, exit status, run id)``.
    """
    outcome, status, run_id, summary = _run(conf, mark_success_pattern)
    if summary:
        print("\n".join(summary))
    return outcome, status, run_id


def _run(conf: Mapping[str, Any], mark_success_pattern: str | None = None) -> tuple[str, int, str, list[str]]:
    """``run_once`` without the printing: also returns the summary lines (empty when no run was made)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "reranker_retrain.py"))
    if bag.import_errors:
        raise SystemExit(f"the DAG does not import: {bag.import_errors}")
    dag = bag.get_dag("reranker_retrain")
    # Deadline alerts (declared when RERANKER_ALERT_EMAILS is set) need the scheduler to notice a miss and the
    # triggerer to send it; dag.test has neither, and Airflow 3.3.2's dag.test crashes at the end of a successful
    # run of a DAG with deadlines (it looks the alerts up by definition instead of by id). Drop them here only.
    dag.deadline = None
    from airflow.sdk.exceptions import ParamValidationError

    try:
        dag_run = dag.test(run_conf=with_local_approval(conf), mark_success_pattern=mark_success_pattern)
    except ParamValidationError as exc:  # Airflow checks the conf against the Params before creating the run
        message = " ".join(str(exc).split("\n\n")[0].split())
        return f"OUTCOME: failed at conf: {message}", 2, "", []
    run_dir = _outcome_files(dag_run.run_id)
    failed = [ti.task_id for ti in dag_run.get_task_instances() if str(ti.state) in ("failed", "upstream_failed")]
    outcome, status = read_outcome(run_dir, str(dag_run.state), failed)
    return outcome, status, dag_run.run_id, summary_lines(run_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conf", default=os.environ.get("CONF") or None, help="DAG-run conf as a JSON object")
    parser.add_argument("--conf-file", default=os.environ.get("CONF_FILE") or None, help="file holding the conf")
    parser.add_argument("--verbose", action="store_true", default=os.environ.get("VERBOSE", "") not in ("", "0"),
                        help="print Airflow's whole log to the console instead of a file (also VERBOSE=1)")
    args = parser.parse_args(argv)

    conf = with_local_approval(load_conf(args.conf, args.conf_file))
    print(f"approval of borderline candidates: {conf['approval']} "
          "(conf key 'approval'; nobody is asked under make run)")
    sys.path.insert(0, str(ROOT))
    from reranker_tasks.config import load_run_config
    from reranker_tasks.errors import ConfigError

    try:
        load_run_config(conf)  # reject a bad conf before starting anything
    except ConfigError as exc:
        print(f"conf rejected: {exc}")
        print(f"OUTCOME: failed at conf: {exc}")
        return 2

    port = int(os.environ.get("LOCALHUB_PORT", DEFAULT_HUB_PORT))
    state = Path(os.environ.get("RERANKER_LOCAL_STATE") or ROOT).resolve()
    hub_root = state / ".localhub"
    with running_hub(hub_root, port) as endpoint:
        from hub_emulator.storage import ensure_token

        os.environ.update(airflow_env(state / ".airflow", state / "artifacts", state / ".hf_home", endpoint))
        os.environ.update(hub_connection_env(ensure_token(hub_root)))
        os.environ.update(labels_db_env(state))
        os.environ.pop("HF_HUB_OFFLINE", None)
        if args.verbose:
            migrate_db()
            outcome, status, _ = run_once(conf)
        else:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            log_path = state / ".airflow" / "logs" / "make-run" / f"{stamp}-{os.getpid()}.log"
            print(f"Airflow's log: {log_path} (VERBOSE=1 prints it here)", flush=True)
            with quiet_console(log_path):
                migrate_db()
                outcome, status, _, summary = _run(conf)
            if summary:
                print("\n".join(summary))
    print(outcome, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
