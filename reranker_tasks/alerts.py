"""Alert messages: what a person on call reads when a run fails, is not promoted, waits for them, or runs late.

Plain functions from dicts to a :class:`Message` (subject, text body, HTML body); no Airflow here. The DAG file
does the sending, through an Airflow notifier (SMTP by default), so the wording can be tested without a mail
server and the transport can change without touching the wording.

Deployment settings (environment variables, read by :func:`alert_settings`):

* ``RERANKER_ALERT_EMAILS``: comma- or semicolon-separated recipients; empty or unset turns alerting off.
* ``RERANKER_ALERT_CONN_ID``: the Airflow SMTP connection (default ``smtp_default``).
* ``RERANKER_ALERT_FROM``: the sender (default: the connection's ``from_email`` extra).
* ``RERANKER_DEADLINE_GRACE_MIN``: minutes over the average runtime of recent successful runs before the
  "slower than usual" alert (default 120).
* ``RERANKER_DEADLINE_MAX_H``: hours after queueing before the "still running" alert, whatever the history
  (default 6; the DAG's ``dagrun_timeout`` fails the run later).

Secrets: every text that comes from outside (error messages, gate details) passes :func:`redact` with the
secrets the caller knows (the Hub token, connection passwords); URL credentials and Hugging Face style tokens
are masked even when the caller does not know them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

EMAILS_ENV = "RERANKER_ALERT_EMAILS"
CONN_ID_ENV = "RERANKER_ALERT_CONN_ID"
FROM_ENV = "RERANKER_ALERT_FROM"
GRACE_ENV = "RERANKER_DEADLINE_GRACE_MIN"
MAX_HOURS_ENV = "RERANKER_DEADLINE_MAX_H"
DEFAULT_CONN_ID = "smtp_default"
DEFAULT_GRACE_MIN = 120.0
DEFAULT_MAX_HOURS = 6.0
SUBJECT_PREFIX = "[reranker]"
MASK = "***"
#: Longer error texts are cut: a mail is a pointer to the log, not a copy of it.
MAX_ERROR_CHARS = 2000

_SPLIT = re.compile(r"[,;\s]+")
# user:password@ in URLs (SQLAlchemy, fsspec, HTTP), and Hugging Face user/org access tokens.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s:@]*):(?P<pw>[^/\s@]+)@")
_NEXT = re.compile(r"^next:\s*", re.IGNORECASE)  # the route message's own "next:" prefix
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{16,}\b")
_KEY_VALUE = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)(\s*[=:]\s*)(['\"]?)[^\s'\",;]+")
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)()[A-Za-z0-9._~+/-]+=*")


@dataclass(frozen=True)
class AlertSettings:
    """Who gets alerts and through which connection; ``enabled`` is False without recipients."""

    recipients: tuple[str, ...]
    conn_id: str = DEFAULT_CONN_ID
    from_email: str | None = None
    deadline_grace_min: float = DEFAULT_GRACE_MIN
    deadline_max_hours: float = DEFAULT_MAX_HOURS

    @property
    def enabled(self) -> bool:
        return bool(self.recipients)

    def off_line(self, subject: str) -> str:
        """The one log line said instead of sending, so a missing setting is visible and not an error."""
        return f"alerting is off ({EMAILS_ENV} is not set): not sending {subject!r}"


@dataclass(frozen=True)
class Message:
    """One alert: a subject line and a body, as plain text and as HTML (the SMTP notifier sends HTML)."""

    subject: str
    body: str
    url: str | None = None

    @property
    def html(self) -> str:
        """The text body, escaped and preformatted, plus a clickable link to the run."""
        link = f'<p><a href="{html.escape(self.url, quote=True)}">Open in Airflow</a></p>' if self.url else ""
        return f'<html><body><pre style="font-family: monospace">{html.escape(self.body)}</pre>{link}</body></html>'


def alert_settings(env: Mapping[str, str]) -> AlertSettings:
    """Read the alert settings from an environment mapping (``os.environ`` in the DAG).

    Raises:
        ValueError: a recipient that is not an e-mail address, or a non-positive deadline setting: a typo in a
            deployment setting should fail loudly at parse time, not silently drop alerts.
    """
    recipients = tuple(dict.fromkeys(r for r in _SPLIT.split(env.get(EMAILS_ENV, "") or "") if r))
    bad = [r for r in recipients if not re.fullmatch(r"[^@\s]+@[^@\s]+", r)]
    if bad:
        raise ValueError(f"{EMAILS_ENV}: not e-mail addresses: {bad}")
    grace = _positive(env, GRACE_ENV, DEFAULT_GRACE_MIN)
    max_hours = _positive(env, MAX_HOURS_ENV, DEFAULT_MAX_HOURS)
    return AlertSettings(
        recipients=recipients,
        conn_id=(env.get(CONN_ID_ENV) or "").strip() or DEFAULT_CONN_ID,
        from_email=(env.get(FROM_ENV) or "").strip() or None,
        deadline_grace_min=grace,
        deadline_max_hours=max_hours,
    )


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError as exc:
        raise ValueError(f"{name}: not a number: {raw!r}") from exc
    if not value > 0:
        raise ValueError(f"{name}: must be > 0, got {raw!r}")
    return value


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Mask known secrets, URL credentials, Hugging Face tokens and ``password=...`` style pairs."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    text = _HF_TOKEN.sub(MASK, text)
    text = _KEY_VALUE.sub(lambda m: f"{m[1]}{m[2]}{m[3]}{MASK}", text)
    return _BEARER.sub(lambda m: f"{m[1]}{m[2]}{MASK}", text)


def run_url(base_url: str, dag_id: str, run_id: str, task_id: str | None = None) -> str:
    """The run (or one task of it) in the Airflow 3 UI, as Airflow builds its own log links."""
    url = f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
    return f"{url}/tasks/{quote(task_id, safe='')}" if task_id else url


def _header(dag_id: str, run_id: str, task_id: str | None, url: str) -> list[str]:
    lines = [f"DAG:  {dag_id}", f"Run:  {run_id}"]
    if task_id:
        lines.append(f"Task: {task_id}")
    lines.append(f"Link: {url}")
    return lines


def human_duration(seconds: float) -> str:
    """``7200`` → ``2 h``, ``5400`` → ``1 h 30 min``, ``90`` → ``1 min 30 s``: readable in a subject line."""
    total = int(round(seconds))
    parts = [(total // 86400, "d"), (total % 86400 // 3600, "h"), (total % 3600 // 60, "min"), (total % 60, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n]
    return " ".join(shown[:2]) or "0 s"


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def failure_message(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    try_number: int | None,
    error_type: str,
    error: str,
    base_url: str,
    artifacts: str | None = None,
    secrets: Iterable[str | None] = (),
) -> Message:
    """A task failed for good (after its retries, or at once for a config/data error)."""
    text = redact(error or "", secrets).strip() or "(no message)"
    if len(text) > MAX_ERROR_CHARS:
        text = text[:MAX_ERROR_CHARS] + f"\n... ({len(text) - MAX_ERROR_CHARS} more characters in the task log)"
    first = text.splitlines()[0][:120]
    url = run_url(base_url, dag_id, run_id, task_id)
    lines = [
        f"Task {task_id} of the reranker retraining failed"
        + (f" (try {try_number})" if try_number else "")
        + ". Nothing was pushed to the Hub by this run after the failure.",
        "",
        *_header(dag_id, run_id, task_id, url),
        "",
        f"Reason: {error_type}:",
        *(f"  {line}" for line in text.splitlines()),
    ]
    if artifacts:
        lines += ["", f"Artifacts: {artifacts}"]
    return Message(f"{SUBJECT_PREFIX} FAILED: {dag_id} task {task_id}: {error_type}: {first}", "\n".join(lines), url)


def run_failed_message(*, dag_id: str, run_id: str, reason: str, base_url: str) -> Message:
    """The whole run failed without a task failure of its own (``dagrun_timeout``, deadlock)."""
    url = run_url(base_url, dag_id, run_id)
    explained = {
        "timed_out": "the run exceeded the DAG's dagrun_timeout and was stopped",
        "all_tasks_deadlocked": "no task could run any more (deadlocked dependencies)",
    }.get(reason, reason)
    lines = [
        "The reranker retraining run failed.",
        "",
        *_header(dag_id, run_id, None, url),
        "",
        f"Reason: {reason}: {explained}",
    ]
    return Message(f"{SUBJECT_PREFIX} FAILED: {dag_id} run {run_id}: {reason}", "\n".join(lines), url)


def _decision_lines(decision: Mapping[str, Any], secrets: Iterable[str | None]) -> list[str]:
    metric = decision.get("metric") or "metric"
    lines = [
        f"  candidate {metric}: {_fmt(decision.get('candidate'))}",
        f"  champion  {metric}: {_fmt(decision.get('champion'))}",
        f"  untuned base {metric}: {_fmt(decision.get('base'))}",
        "",
        "Reasons:",
    ]
    reasons = list(decision.get("reasons") or []) or ["(none recorded)"]
    lines.extend(f"  - {redact(str(reason), secrets)}" for reason in reasons)
    return lines


def rejection_message(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    decision: Mapping[str, Any],
    next_step: str,
    base_url: str,
    artifacts: str | None = None,
    secrets: Iterable[str | None] = (),
) -> Message:
    """The gate did not promote the candidate: production keeps the champion. ``decision`` is decision.json."""
    outcome = str(decision.get("outcome") or "reject")
    how = {
        "reject": "rejected by the gate",
        "needs_approval": "borderline, rejected without asking (conf approval=reject)",
    }.get(outcome, outcome)
    reasons = list(decision.get("reasons") or [])
    rules = ", ".join(str(r).split(":", 1)[0] for r in reasons) or outcome
    url = run_url(base_url, dag_id, run_id, task_id)
    lines = [
        f"The reranker candidate of this run was NOT PROMOTED ({how}); production keeps its current model.",
        "",
        *_header(dag_id, run_id, task_id, url),
        "",
        f"Gate outcome: {outcome}",
        *_decision_lines(decision, secrets),
        "",
        f"What happens now: {_NEXT.sub('', next_step.strip())}",
    ]
    if artifacts:
        lines.append(f"Decision record: {artifacts}")
    return Message(f"{SUBJECT_PREFIX} NOT PROMOTED: {dag_id} run {run_id}: {rules}", "\n".join(lines), url)


def approval_message(
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    decision: Mapping[str, Any],
    base_url: str,
    timeout: str | None = None,
    secrets: Iterable[str | None] = (),
) -> Message:
    """A borderline candidate waits for a person to Approve or Reject in the Airflow UI."""
    url = run_url(base_url, dag_id, run_id, task_id) + "/required_actions"
    lines = [
        "A reranker candidate is sound and better than production on the point estimate, but not clearly:",
        "a person decides whether it is pushed to production.",
        "",
        *_header(dag_id, run_id, task_id, url),
        "",
        *_decision_lines(decision, secrets),
        "",
        "Approve pushes the candidate to main (production); Reject keeps the champion.",
    ]
    if timeout:
        lines.append(f"No answer within {timeout} counts as Reject.")
    return Message(f"{SUBJECT_PREFIX} APPROVAL NEEDED: {dag_id} run {run_id}", "\n".join(lines), url)


def deadline_templates(*, dag_id: str, base_url: str, rule: str) -> Message:
    """Subject and body of a missed deadline, as Jinja templates the notifier renders when the deadline passes.

    The run is not known when the DAG is parsed, so its id and times are placeholders filled from the deadline
    callback's context (``dag_run``: the run as the REST API shows it; ``deadline``: ``deadline_time``).
    """
    run = "{{ dag_run.dag_run_id }}"
    url = f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{{{{ dag_run.dag_run_id | urlencode }}}}"
    lines = [
        f"A reranker retraining run is taking far longer than usual: {rule}.",
        "It is still running; nothing was stopped. Check the training task's log and the worker.",
        "",
        f"DAG:  {dag_id}",
        f"Run:  {run}",
        f"Link: {url}",
        "",
        "Queued at:  {{ dag_run.queued_at }}",
        "Started at: {{ dag_run.start_date }}",
        "Deadline:   {{ deadline.deadline_time }}",
    ]
    return Message(f"{SUBJECT_PREFIX} RUNNING LONG: {dag_id} run {run}", "\n".join(lines), url)
