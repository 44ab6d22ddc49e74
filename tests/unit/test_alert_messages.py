"""Alert wording and settings (``reranker_tasks.alerts``), without Airflow or a mail server."""

from __future__ import annotations

import pytest

from reranker_tasks.alerts import (
    MASK,
    MAX_ERROR_CHARS,
    AlertSettings,
    alert_settings,
    approval_message,
    deadline_templates,
    failure_message,
    human_duration,
    redact,
    rejection_message,
    run_failed_message,
    run_url,
)

BASE = "http://airflow.example.test:8080/"
RUN = "manual__2026-03-01T10:00:00+00:00"
RUN_Q = "manual__2026-03-01T10%3A00%3A00%2B00%3A00"
TOKEN = "hf_AbCdEfGhIjKlMnOpQrStUvWx"

DECISION = {
    "outcome": "reject",
    "promote": False,
    "metric": "ndcg@10",
    "candidate": 0.61234,
    "base": 0.5,
    "champion": 0.7,
    "reasons": [
        "beats_champion: candidate 0.6123 vs champion 0.7000 (delta -0.0877)",
        "min_gain: candidate 0.6123 vs champion 0.7000 + min_gain 0.0050 = 0.7050",
    ],
}


def test_settings_off_without_recipients_and_parsed_with_them() -> None:
    off = alert_settings({})
    assert not off.enabled and off.conn_id == "smtp_default" and off.from_email is None
    assert off.off_line("[reranker] X") == (
        "alerting is off (RERANKER_ALERT_EMAILS is not set): not sending '[reranker] X'"
    )
    assert not alert_settings({"RERANKER_ALERT_EMAILS": " , "}).enabled

    on = alert_settings({
        "RERANKER_ALERT_EMAILS": "oncall@example.com, ml@example.com;oncall@example.com",
        "RERANKER_ALERT_CONN_ID": "smtp_ops",
        "RERANKER_ALERT_FROM": "airflow@example.com",
        "RERANKER_DEADLINE_GRACE_MIN": "30",
        "RERANKER_DEADLINE_MAX_H": "1.5",
    })
    assert on == AlertSettings(("oncall@example.com", "ml@example.com"), "smtp_ops", "airflow@example.com", 30.0, 1.5)
    assert on.enabled


@pytest.mark.parametrize(
    "env",
    [
        {"RERANKER_ALERT_EMAILS": "oncall@example.com,not-an-address"},
        {"RERANKER_DEADLINE_GRACE_MIN": "0"},
        {"RERANKER_DEADLINE_MAX_H": "six"},
    ],
)
def test_bad_settings_fail_loudly(env: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="RERANKER_"):
        alert_settings(env)


def test_run_url_quotes_the_run_id_like_airflow() -> None:
    assert run_url(BASE, "reranker_retrain", RUN) == f"{BASE}dags/reranker_retrain/runs/{RUN_Q}"
    assert run_url("http://h", "d", "r/1", "gate") == "http://h/dags/d/runs/r%2F1/tasks/gate"


def test_redact_masks_known_secrets_url_credentials_and_tokens() -> None:
    text = (
        f"POST failed with token {TOKEN}; url postgresql://reader:pa55word@db:5432/labels; "
        "password=hunter22 and Authorization: Bearer abc.def-ghi; the emulator token xyz-local-secret"
    )
    out = redact(text, ["xyz-local-secret", None, ""])
    for secret in (TOKEN, "pa55word", "hunter22", "abc.def-ghi", "xyz-local-secret"):
        assert secret not in out
    assert "postgresql://reader:***@db:5432/labels" in out and "password=***" in out and "Bearer ***" in out
    # Ordinary words around "token" stay readable.
    assert redact("the Hub token is missing") == "the Hub token is missing"


def test_failure_message_names_everything_and_hides_secrets() -> None:
    message = failure_message(
        dag_id="reranker_retrain", run_id=RUN, task_id="validate", try_number=1,
        error_type="DataValidationFailed",
        error=f"data validation failed:\n  expect_column_values_to_be_between(label): source rows [4]\n  token={TOKEN}",
        base_url=BASE, artifacts="/artifacts/run/failure.json", secrets=["hub-secret"],
    )
    assert message.subject == (
        "[reranker] FAILED: reranker_retrain task validate: DataValidationFailed: data validation failed:"
    )
    url = f"http://airflow.example.test:8080/dags/reranker_retrain/runs/{RUN_Q}/tasks/validate"
    assert message.url == url
    for expected in ("DAG:  reranker_retrain", f"Run:  {RUN}", "Task: validate", f"Link: {url}", "(try 1)",
                     "Reason: DataValidationFailed:", "expect_column_values_to_be_between(label): source rows [4]",
                     "Artifacts: /artifacts/run/failure.json"):
        assert expected in message.body, expected
    assert TOKEN not in message.body and TOKEN not in message.subject and MASK in message.body
    assert f'<a href="{url}">' in message.html and "<pre" in message.html


def test_failure_message_cuts_long_errors_and_escapes_html() -> None:
    message = failure_message(
        dag_id="d", run_id="r", task_id="t", try_number=None, error_type="RuntimeError",
        error="<script>" + "x" * (MAX_ERROR_CHARS + 50), base_url=BASE,
    )
    assert "58 more characters in the task log" in message.body
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html
    assert len(message.subject) < 200


def test_rejection_message_lists_the_gate_reasons() -> None:
    message = rejection_message(
        dag_id="reranker_retrain", run_id=RUN, task_id="gate", decision=DECISION,
        next_step="next: nothing (rejected); model_card and publish are skipped", base_url=BASE,
        artifacts="/a/gate/decision.json",
    )
    assert message.subject == f"[reranker] NOT PROMOTED: reranker_retrain run {RUN}: beats_champion, min_gain"
    body = message.body
    assert "NOT PROMOTED (rejected by the gate)" in body and "Gate outcome: reject" in body
    assert "candidate ndcg@10: 0.6123" in body and "champion  ndcg@10: 0.7000" in body
    for reason in DECISION["reasons"]:
        assert f"  - {reason}" in body
    assert "What happens now: nothing (rejected)" in body and "Decision record: /a/gate/decision.json" in body
    assert message.url and message.url.endswith("/tasks/gate")


def test_borderline_rejected_by_conf_says_so() -> None:
    decision = {**DECISION, "outcome": "needs_approval", "champion": None, "reasons": ["min_gain: too small"]}
    message = rejection_message(dag_id="d", run_id="r", task_id="gate", decision=decision, next_step="x",
                                base_url=BASE)
    assert "borderline, rejected without asking (conf approval=reject)" in message.body
    assert "champion  ndcg@10: n/a" in message.body and message.subject.endswith(": min_gain")


def test_approval_message_links_to_the_required_action() -> None:
    decision = {**DECISION, "outcome": "needs_approval", "reasons": ["significance: p 0.2 (need < 0.05)"]}
    message = approval_message(dag_id="reranker_retrain", run_id=RUN, task_id="await_approval", decision=decision,
                               base_url=BASE, timeout="3 days, 0:00:00")
    assert message.subject == f"[reranker] APPROVAL NEEDED: reranker_retrain run {RUN}"
    assert message.url == f"{BASE}dags/reranker_retrain/runs/{RUN_Q}/tasks/await_approval/required_actions"
    assert "  - significance: p 0.2 (need < 0.05)" in message.body
    assert "No answer within 3 days, 0:00:00 counts as Reject." in message.body


def test_run_failed_message_explains_a_timeout() -> None:
    message = run_failed_message(dag_id="reranker_retrain", run_id=RUN, reason="timed_out", base_url=BASE)
    assert message.subject == f"[reranker] FAILED: reranker_retrain run {RUN}: timed_out"
    assert "exceeded the DAG's dagrun_timeout" in message.body and f"runs/{RUN_Q}" in message.body


def test_deadline_templates_render_with_the_deadline_callback_context() -> None:
    """The deadline's context is what the scheduler builds on a miss: the run as the REST API shows it."""
    import jinja2

    message = deadline_templates(dag_id="reranker_retrain", base_url=BASE, rule="still running 6 h after queueing")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    context = {
        "dag_run": {"dag_run_id": RUN, "queued_at": "2026-03-01T10:00:00Z", "start_date": "2026-03-01T10:00:01Z"},
        "deadline": {"id": "d1", "deadline_time": "2026-03-01T16:00:00Z"},
    }
    subject = env.from_string(message.subject).render(context)
    body = env.from_string(message.html).render(context)
    assert subject == f"[reranker] RUNNING LONG: reranker_retrain run {RUN}"
    assert "still running 6 h after queueing" in body and "Deadline:   2026-03-01T16:00:00Z" in body
    assert f'href="http://airflow.example.test:8080/dags/reranker_retrain/runs/{RUN_Q}"' in body


@pytest.mark.parametrize(("seconds", "text"), [(7200, "2 h"), (5400, "1 h 30 min"), (90, "1 min 30 s"),
                                               (3 * 86400 + 60, "3 d 1 min"), (0, "0 s")])
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
