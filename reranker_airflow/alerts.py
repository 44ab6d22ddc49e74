"""Alerts and the failure record of the retraining DAGs.

A failed task, a candidate not promoted, a pending approval and a run far slower than usual send an e-mail through
the SMTP notifier to RERANKER_ALERT_EMAILS (connection RERANKER_ALERT_CONN_ID, default smtp_default). No recipients:
alerting is off and each would-be alert is one log line. The wording is in reranker_tasks.alerts (tested without
Airflow); only the transport is here.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from airflow.sdk import AsyncCallback, BaseNotifier, DeadlineAlert, DeadlineReference, get_current_context

from reranker_airflow.context import HUB_CONN_ID, artifact_store, artifacts
from reranker_airflow.defaults import approval_timeout
from reranker_tasks import layout


def record_failure(context: Any) -> None:
    """Write the failing task and its error next to the run's artifacts, for `make run` to report."""
    exc = context.get("exception")
    ti = context["ti"]
    with artifacts(context["run_id"]) as arts:
        arts.write_json(
            layout.FAILURE,
            {"task_id": ti.task_id, "try_number": ti.try_number, "error_type": type(exc).__name__,
             # "full report: <path>": the store's address, not the failed task's (deleted) scratch folder
             "message": arts.store.portable_text(context["run_id"], str(exc))},
        )


def alert_settings() -> Any:
    """Read at send time (the worker's environment), so a deployment can change recipients without a re-parse."""
    from reranker_tasks.alerts import alert_settings as from_environment

    return from_environment(os.environ)


def ui_base_url() -> str:
    """Airflow's own setting for links into its UI (``[api] base_url``), with Airflow's own default."""
    from airflow.sdk.configuration import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/"))


def alert_secrets(conn_id: str) -> list[str | None]:
    """Secrets that must never appear in a message: the Hub token and the SMTP password (masked if found)."""
    from airflow.sdk import Connection

    secrets: list[str | None] = [os.environ.get("HF_TOKEN")]
    for name in (HUB_CONN_ID, conn_id):
        try:
            secrets.append(Connection.get(name).password)
        except Exception:  # noqa: BLE001 - a missing connection just means there is no secret of it to hide
            pass
    return secrets


def send_alert(build: Callable[[list[str | None]], Any], context: Any) -> bool:
    """Build one alert (``build(secrets)`` → a message, or None for no alert) and send it.

    Never raises: an alert must not fail the gate or the approval task, nor hide a run's real outcome; a message
    that cannot be built or sent is one warning in the log. ``notify`` rather than calling the notifier: the
    message is final text, and calling it would render subject and body as Jinja templates (an error message
    with ``{{`` in it would break or be evaluated).
    """
    import logging

    # The logger's name predates this module (it was the DAG file's): log filters and tests select on it.
    log = logging.getLogger("reranker_retrain.alerts")
    try:
        settings = alert_settings()
        # Disabled: the message is only built for its subject (the log line); no connection lookups for it.
        message = build(alert_secrets(settings.conn_id) if settings.enabled else [os.environ.get("HF_TOKEN")])
        if message is None:
            return False
        if not settings.enabled:
            log.info(settings.off_line(message.subject))
            return False
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        SmtpNotifier(
            to=list(settings.recipients),
            from_email=settings.from_email,
            subject=message.subject,
            html_content=message.html,
            smtp_conn_id=settings.conn_id,
        ).notify(context)
    except Exception as exc:  # noqa: BLE001 - reported, never raised (see above)
        log.warning("alert NOT sent: %s: %s", type(exc).__name__, exc)
        return False
    log.info("alert sent to %d recipient(s) via connection %s: %s", len(settings.recipients), settings.conn_id,
             message.subject)
    return True


def alert_not_promoted(decision: dict[str, Any], next_step: str) -> bool:
    """The gate did not promote the candidate (rejected, or borderline and rejected by conf)."""
    from reranker_tasks.alerts import rejection_message

    context = get_current_context()
    ti = context["ti"]
    return send_alert(
        lambda secrets: rejection_message(
            dag_id=ti.dag_id, run_id=context["run_id"], task_id=ti.task_id, decision=decision, next_step=next_step,
            base_url=ui_base_url(), secrets=secrets,
            artifacts=artifact_store().uri(context["run_id"], layout.GATE_DECISION),
        ),
        context,
    )


class RerankerAlert(BaseNotifier):
    """The retraining DAGs' notifier: builds the message for ``kind`` from the Airflow context and sends it.

    * ``task_failed``: a task's ``on_failure_callback`` (after :func:`record_failure`), i.e. a final failure;
    * ``run_failed``: the DAG's ``on_failure_callback``; only for runs that failed without a task failure
      (``dagrun_timeout``, deadlock): a task failure was already alerted by the task itself;
    * ``approval_pending``: the approval task's ``notifiers``, when it starts waiting for a person.
    """

    template_fields = ()

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in ("task_failed", "run_failed", "approval_pending"):
            raise ValueError(f"unknown alert kind {kind!r}")
        self.kind = kind

    def notify(self, context: Any) -> None:
        send_alert(lambda secrets: self._message(context, secrets), context)

    def _message(self, context: Any, secrets: list[str | None]) -> Any:
        from reranker_tasks import alerts

        dag_id = context["dag"].dag_id
        run_id = context["run_id"]
        base_url = ui_base_url()
        if self.kind == "run_failed":
            reason = str(context.get("reason") or "unknown")
            if reason == "task_failure":
                return None
            return alerts.run_failed_message(dag_id=dag_id, run_id=run_id, reason=reason, base_url=base_url)
        ti = context["ti"]
        if self.kind == "task_failed":
            exc = context.get("exception")
            store = artifact_store()
            return alerts.failure_message(
                dag_id=dag_id, run_id=run_id, task_id=ti.task_id, try_number=ti.try_number,
                error_type=type(exc).__name__ if exc is not None else "unknown error",
                error=store.portable_text(run_id, str(exc)) if exc is not None else "", base_url=base_url,
                artifacts=store.uri(run_id, layout.FAILURE), secrets=secrets,
            )
        return alerts.approval_message(
            dag_id=dag_id, run_id=run_id, task_id=ti.task_id,
            decision=ti.xcom_pull(task_ids="gate", key="decision") or {}, base_url=base_url,
            timeout=str(approval_timeout()), secrets=secrets,
        )


def deadline_alerts(dag_id: str) -> list[DeadlineAlert] | None:
    """Alert when a run is far slower than usual, and when it runs for hours whatever the history.

    The callback runs in the triggerer, which can import installed code only (not a DAG file): it is the SMTP
    notifier itself, awaited with the deadline's context; subject and body are templates of the run id and times.
    Recipients are read when the DAG is parsed. No recipients: no deadline alerts.
    """
    from reranker_tasks.alerts import alert_settings as from_environment
    from reranker_tasks.alerts import deadline_templates, human_duration

    settings = from_environment(os.environ)
    if not settings.enabled:
        return None

    def callback(rule: str) -> AsyncCallback:
        message = deadline_templates(dag_id=dag_id, base_url=ui_base_url(), rule=rule)
        return AsyncCallback(
            "airflow.providers.smtp.notifications.smtp.SmtpNotifier",
            kwargs={
                "to": list(settings.recipients), "from_email": settings.from_email, "subject": message.subject,
                "html_content": message.html, "smtp_conn_id": settings.conn_id,
            },
        )

    grace = timedelta(minutes=settings.deadline_grace_min)
    longest = timedelta(hours=settings.deadline_max_hours)
    return [
        DeadlineAlert(
            name="slower_than_usual",
            # Measured from the run's creation: the mean duration of the last (up to) 10 successful runs, from
            # the 3rd on; before that, only the fixed deadline below applies.
            reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=10, min_runs=3),
            interval=grace,
            callback=callback(
                f"not done {human_duration(grace.total_seconds())} after the average runtime of recent successful runs"
            ),
        ),
        DeadlineAlert(
            name="running_too_long",
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=longest,
            callback=callback(f"still running {human_duration(longest.total_seconds())} after it was queued"),
        ),
    ]
