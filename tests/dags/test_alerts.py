"""Alerts through Airflow (``dag.test``) into a local SMTP sink: a rejected gate, a failed validation, a pending
approval, a run far slower than usual, and a timed-out run.

The SMTP connection ``smtp_default`` is an ``AIRFLOW_CONN_*`` variable pointing at the sink, with a login and a
password: the sink checks that the password is used to log in and never written into a message, nor the Hub token.

What ``dag.test`` cannot show, and how it is covered here instead:

* deadline alerts: ``dag.test`` creates the run's deadlines but has no scheduler loop to notice a missed one nor a
  triggerer to run its callback. The test takes the deadline row Airflow created for a real run, marks it missed
  with Airflow's own ``Deadline.handle_miss`` (what the scheduler calls) and runs the resulting callback with
  Airflow's ``CallbackTrigger`` (what the triggerer runs);
* a run that fails without a task failure (``dagrun_timeout``): the DAG's ``on_failure_callback`` is called with
  the context the scheduler gives it (``reason="timed_out"``) rather than waiting 12 hours.
"""

from __future__ import annotations

import html
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.smtp_sink import Received, SmtpSink
from tests.support import build_tiny_bert, learnable_pairs, seed_untuned_champion, write_pairs

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "reranker_retrain"
RECIPIENTS = ["oncall@example.com", "ml-team@example.com"]
SENDER = "reranker-alerts@example.com"
SMTP_LOGIN, SMTP_PASSWORD = "alerts", "smtp-Pa55word-never-in-mail"
BASE_URL = "http://airflow.example.test:8080"
SEED_TAG = "run-20260101T000000Z-00000000"


def _text(message: Received) -> str:
    """The mail body as a person reads it: tags stripped, entities decoded."""
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", message.body))


@pytest.fixture(scope="module")
def sink(airflow_local, local_hub) -> Iterator[SmtpSink]:
    """The SMTP sink, the connection to it and the alert settings; the environment is restored afterwards."""
    env = {
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "login": SMTP_LOGIN, "password": SMTP_PASSWORD,
            "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10, "retry_limit": 1},
        }),
        "RERANKER_ALERT_EMAILS": ",".join(RECIPIENTS),
        "RERANKER_ALERT_FROM": SENDER,
        "RERANKER_DEADLINE_GRACE_MIN": "45",
        "AIRFLOW__API__BASE_URL": BASE_URL,
    }
    saved = {key: os.environ.get(key) for key in env}
    with SmtpSink() as smtp:
        conn = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
        env["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps({**conn, "port": smtp.port})
        os.environ.update(env)
        try:
            yield smtp
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, airflow_local) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("alerts")
    frame = learnable_pairs()
    source = write_pairs(frame, folder / "pairs.csv")
    base = build_tiny_bert(folder / "tiny-bert", frame["query"].tolist() + frame["document"].tolist())
    conf = {
        "source_path": str(source), "base_model": str(base), "epochs": 1.0, "learning_rate": 3e-3,
        "batch_size": 16, "max_length": 64, "warmup_ratio": 0.05, "min_eval_queries": 5,
    }
    return {"conf": conf, "frame": frame, "folder": folder, "base": base}


def _run(conf: dict[str, Any]) -> tuple[str, int, str, Path]:
    from reranker_tasks.paths import RunPaths
    from scripts.run_dag import run_once

    outcome, status, run_id = run_once(conf)
    return outcome, status, run_id, RunPaths.for_run(run_id or "no-run").run_dir


def _mails_of(sink: SmtpSink, run_id: str) -> list[Received]:
    return [m for m in sink.messages if run_id in m.subject or run_id in _text(m)]


def _check_envelope_and_secrets(message: Received, hub_token: str) -> None:
    assert message.mail_from == SENDER and sorted(message.rcpt_to) == sorted(RECIPIENTS)
    raw = message.raw.decode("utf-8", "replace")
    for secret in (hub_token, SMTP_PASSWORD):
        assert secret not in raw and secret not in message.subject and secret not in _text(message)


def _dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "reranker_retrain.py"))
    assert not bag.import_errors
    return bag.get_dag(DAG_ID)


def test_a_rejected_gate_sends_its_reasons(sink, inputs, local_hub) -> None:
    # No eval set is that large: the gate's min_eval_queries rule rejects, whatever the model learned.
    conf = {**inputs["conf"], "hub_repo_id": "local/alerts-reject", "min_eval_queries": 100_000}
    outcome, status, run_id, run_dir = _run(conf)
    assert status == 0 and outcome.startswith("OUTCOME: not promoted (reject): min_eval_queries"), outcome

    mails = _mails_of(sink, run_id)
    assert len(mails) == 1, [m.subject for m in mails]
    mail = mails[0]
    assert mail.subject == f"[reranker] NOT PROMOTED: {DAG_ID} run {run_id}: min_eval_queries"
    text = _text(mail)
    decision = json.loads((run_dir / "gate" / "decision.json").read_text())
    assert decision["outcome"] == "reject"
    for expected in (f"DAG:  {DAG_ID}", f"Run:  {run_id}", "Task: gate", "Gate outcome: reject",
                     *(f"  - {reason}" for reason in decision["reasons"]),
                     "What happens now: nothing (rejected); model_card and publish are skipped",
                     f"Decision record: {run_dir / 'gate' / 'decision.json'}"):
        assert expected in text, (expected, text)
    link = f"{BASE_URL}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/gate"
    assert f"Link: {link}" in text and f'href="{link}"' in mail.body
    _check_envelope_and_secrets(mail, local_hub.token)
    assert (SMTP_LOGIN, SMTP_PASSWORD) in sink.logins  # the connection's credentials were used, not mailed


def test_a_failed_validation_sends_the_error_once(sink, inputs, local_hub) -> None:
    bad = inputs["frame"].copy()
    bad.loc[3, "label"] = 5.0
    source = write_pairs(bad, inputs["folder"] / "bad.csv")
    outcome, status, run_id, run_dir = _run({**inputs["conf"], "source_path": str(source),
                                             "hub_repo_id": "local/alerts-bad"})
    assert status == 1 and outcome.startswith("OUTCOME: failed at validate: data validation failed"), outcome
    assert json.loads((run_dir / "failure.json").read_text())["task_id"] == "validate"  # make run still reads it

    # One mail: the task's own alert. The DAG-level callback (reason task_failure) does not repeat it.
    mails = _mails_of(sink, run_id)
    assert len(mails) == 1, [m.subject for m in mails]
    mail = mails[0]
    assert mail.subject.startswith(
        f"[reranker] FAILED: {DAG_ID} task validate: DataValidationFailed: data validation failed"
    ), mail.subject
    text = _text(mail)
    for expected in (f"Run:  {run_id}", "Task: validate", "(try 1)", "Reason: DataValidationFailed:",
                     "expect_column_values_to_be_between(label", "source rows [4]",
                     f"Artifacts: {run_dir / 'failure.json'}"):
        assert expected in text, (expected, text)
    assert f"Link: {BASE_URL}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/validate" in text
    _check_envelope_and_secrets(mail, local_hub.token)


def _answer_approval(run_id: str, option: str) -> None:
    """Answer the approval task the way the UI's button does: through the HITL REST handler itself."""
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.utils.session import create_session

    class Reviewer:
        def get_id(self) -> str:
            return "reviewer"

        def get_name(self) -> str:
            return "reviewer"

    with create_session() as session:
        update_hitl_detail(
            dag_id=DAG_ID, dag_run_id=run_id, task_id="await_approval",
            update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
            user=Reviewer(), session=session,
        )


def _waiting_run_id() -> str | None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == DAG_ID, TaskInstance.task_id == "await_approval",
                    TaskInstance.state == "awaiting_input")
            .first()
        )
        return ti.run_id if ti else None


def test_a_pending_approval_notifies_before_it_waits(sink, inputs, local_hub, tmp_path) -> None:
    """approval=wait parks the run; the mail arrives while it waits; a person's Reject lets it end."""
    import time

    from huggingface_hub import HfApi

    repo = "local/alerts-approval"
    seed_untuned_champion(HfApi(token=local_hub.token), repo, inputs["base"], tmp_path / "champion", SEED_TAG)
    conf = {**inputs["conf"], "hub_repo_id": repo, "min_gain": 0.99, "approval": "wait"}
    seen: dict[str, Any] = {}

    done = threading.Event()

    def reviewer() -> None:
        """Once the task waits, look for the mail (sent before it parks), then answer Reject, mail or not,
        so a missing mail fails the assertions below instead of hanging dag.test."""
        while not done.is_set():
            run_id = _waiting_run_id()
            if run_id:
                break
            time.sleep(1)
        else:
            return
        seen["run_id"] = run_id
        try:
            seen["mail"] = sink.wait_for(lambda m: "APPROVAL NEEDED" in m.subject and run_id in m.subject, timeout=30)
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            seen["error"] = exc
        for attempt in range(5):  # SQLite may be briefly locked by the dag.test loop
            try:
                _answer_approval(run_id, "Reject")
                return
            except Exception as exc:  # noqa: BLE001 - the last one is reported below
                seen["answer_error"] = exc
                time.sleep(1 + attempt)

    # Import and set up everything the reviewer uses here first: two threads importing Airflow's models at once
    # deadlock on the import lock.
    dag = _dag()
    assert _waiting_run_id() is None
    import airflow.api_fastapi.core_api.routes.public.hitl  # noqa: F401

    thread = threading.Thread(target=reviewer, daemon=True)
    thread.start()
    dag.deadline = None  # as scripts/run_dag.py does: dag.test cannot serve deadlines (see there)
    try:
        dag_run = dag.test(run_conf=conf)
    finally:
        done.set()
        thread.join(timeout=30)

    assert "error" not in seen, seen.get("error")
    run_id = dag_run.run_id
    assert seen["run_id"] == run_id and str(dag_run.state) == "success"
    mail = seen["mail"]
    assert mail.subject == f"[reranker] APPROVAL NEEDED: {DAG_ID} run {run_id}"
    text = _text(mail)
    link = f"{BASE_URL}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/await_approval/required_actions"
    for expected in (f"Run:  {run_id}", "Task: await_approval", f"Link: {link}", "  - min_gain: candidate",
                     "Approve pushes the candidate to main", "counts as Reject"):
        assert expected in text, (expected, text)
    _check_envelope_and_secrets(mail, local_hub.token)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert states["publish"] != "success", states
    assert [m.subject for m in _mails_of(sink, run_id)] == [mail.subject]  # the Reject itself mails nobody


def _queue_a_run_like_the_rest_api(session: Any) -> Any:
    """Sync the dags folder to the DB and create a queued run from the stored DAG, as ``POST /dagRuns`` does."""
    import uuid

    from airflow._shared.timezones import timezone
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    bundle = manager.get_bundle("dags-folder")
    bundle.initialize()
    sync_bag_to_db(BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name),
                   bundle.name, bundle.version)
    stored = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session)
    return stored.create_dagrun(
        run_id=f"manual__alerts-deadline-{uuid.uuid4().hex[:8]}", logical_date=None, data_interval=None,
        run_after=timezone.utcnow(), conf={}, run_type=DagRunType.MANUAL,
        triggered_by=DagRunTriggeredByType.TEST, state=DagRunState.QUEUED, session=session,
    )


def test_deadline_alerts_are_declared_and_a_missed_one_mails_through_the_triggerer_path(sink, local_hub) -> None:
    import asyncio

    from airflow.models.deadline import Deadline
    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.triggers.callback import CallbackTrigger
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag = _dag()
    alerts = {alert.name: alert for alert in dag.deadline}
    assert set(alerts) == {"slower_than_usual", "running_too_long"}
    slow, late = alerts["slower_than_usual"], alerts["running_too_long"]
    assert slow.reference.serialize_reference() == {
        "reference_type": "AverageRuntimeDeadline", "max_runs": 10, "min_runs": 3,
    }
    assert slow.interval.total_seconds() == 45 * 60  # RERANKER_DEADLINE_GRACE_MIN
    assert late.reference.serialize_reference() == {"reference_type": "DagRunQueuedAtDeadline"}
    assert late.interval.total_seconds() == 6 * 3600 and dag.dagrun_timeout.total_seconds() > 6 * 3600
    assert late.callback.path == "airflow.providers.smtp.notifications.smtp.SmtpNotifier"

    # A queued run gets its deadline rows from the stored DAG; miss the queued-at one as the scheduler does.
    with create_session() as session:
        run = _queue_a_run_like_the_rest_api(session)
        session.flush()
        run_id = run.run_id
        try:
            row = session.scalar(
                select(Deadline).join(DeadlineAlertModel, Deadline.deadline_alert_id == DeadlineAlertModel.id)
                .where(Deadline.dagrun_id == run.id, DeadlineAlertModel.name == "running_too_long")
            )
            assert row is not None, "the queued run has no running_too_long deadline"
            assert abs((row.deadline_time - run.queued_at).total_seconds() - 6 * 3600) < 5
            row.handle_miss(session=session)
            session.flush()
            data = dict(row.callback.data)
        finally:
            session.delete(run)
    assert data["path"] == "airflow.providers.smtp.notifications.smtp.SmtpNotifier"

    async def trigger() -> list[Any]:
        return [event.payload async for event in CallbackTrigger(data["path"], dict(data["kwargs"])).run()]

    payloads = asyncio.run(trigger())
    assert str(payloads[-1]["state"]).lower().endswith("success"), payloads
    mail = sink.wait_for(lambda m: "RUNNING LONG" in m.subject and run_id in m.subject, timeout=30)
    assert mail.subject == f"[reranker] RUNNING LONG: {DAG_ID} run {run_id}"
    text = _text(mail)
    assert "still running 6 h after it was queued" in text and f"Run:  {run_id}" in text
    assert f"Link: {BASE_URL}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}" in text
    assert "Deadline:   20" in text and "{{" not in text
    _check_envelope_and_secrets(mail, local_hub.token)


def test_a_timed_out_run_alerts_and_alerting_is_off_without_recipients(sink, caplog) -> None:
    dag = _dag()
    notifier = dag.on_failure_callback
    before = len(sink.messages)
    notifier({"dag": dag, "run_id": "scheduled__2026-05-03T00:00:00+00:00", "reason": "task_failure"})
    assert len(sink.messages) == before  # a task failure was already alerted by the task
    notifier({"dag": dag, "run_id": "scheduled__2026-05-03T00:00:00+00:00", "reason": "timed_out"})
    mail = sink.wait_for(lambda m: "timed_out" in m.subject, timeout=30)
    assert mail.subject == f"[reranker] FAILED: {DAG_ID} run scheduled__2026-05-03T00:00:00+00:00: timed_out"
    assert "exceeded the DAG's dagrun_timeout" in _text(mail)

    saved = os.environ.pop("RERANKER_ALERT_EMAILS")
    try:
        count = len(sink.messages)
        with caplog.at_level("INFO"):
            notifier({"dag": dag, "run_id": "scheduled__2026-05-10T00:00:00+00:00", "reason": "timed_out"})
        assert len(sink.messages) == count
        off = [r.getMessage() for r in caplog.records if "alerting is off" in r.getMessage()]
        assert off == [
            "alerting is off (RERANKER_ALERT_EMAILS is not set): not sending "
            f"'[reranker] FAILED: {DAG_ID} run scheduled__2026-05-10T00:00:00+00:00: timed_out'"
        ]
        assert _dag().deadline in (None, [])  # and no deadline alerts are declared
    finally:
        os.environ["RERANKER_ALERT_EMAILS"] = saved
