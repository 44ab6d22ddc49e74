"""What every reranker DAG shares: the Assets, the retry policy, the start date and the default task arguments.

Deployment settings read from the environment (``RERANKER_RETRY_DELAY_S``, ``RERANKER_APPROVAL_TIMEOUT_H``) are
read by functions, when a DAG file is parsed, rather than once at import: a process that parses the DAGs again
(tests, ``dag.test``) sees the environment of that parse, as when the settings lived in the DAG files. The
labels' URI (``RERANKER_LABELS_URI``) is read once, at import: its Asset is one object that the DAG updating it and
the DAG scheduled on it share.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Asset, ExceptionRetryPolicy, RetryAction, RetryRule

from reranker_tasks.config import labels_uri

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")

# The run's immutable training snapshot. Its events carry the data fingerprint and counts. This is not the
# labels' own Asset (what data teams update), so a snapshot event never triggers the retraining DAG.
SNAPSHOT_ASSET = Asset(name="reranker_training_snapshot", uri="reranker://snapshots/training-pairs")
# The data teams' labels, declared on their URI (RERANKER_LABELS_URI; default: the bundled sample file). Whoever
# writes labels updates it (the reranker_labels_published DAG, or their own outlet); it schedules the
# asset-triggered twin of the retraining DAG.
LABELS_ASSET = Asset(name="reranker_labels", uri=labels_uri())


def fail_permanent_errors(reason: str) -> ExceptionRetryPolicy:
    """A ``PermanentError`` fails its task at once; anything else keeps the task's normal retries.

    ``reason`` is what the task log says when the rule fires, worded for the DAG's own permanent errors.
    """
    return ExceptionRetryPolicy(
        rules=[RetryRule(exception="reranker_tasks.errors.PermanentError", action=RetryAction.FAIL, reason=reason)]
    )


# Config and data errors cannot be fixed by running the same task again: fail at once. Anything else
# (network, Hub 5xx, a killed worker) keeps the normal retries.
RETRY_POLICY = fail_permanent_errors("configuration or data error: a retry cannot fix it")
# The rollback's permanent errors also include a lost compare-and-swap: main moved since the task read it.
ROLLBACK_RETRY_POLICY = fail_permanent_errors("configuration error or main moved: a retry cannot fix it")


def default_args(
    *, execution_timeout: timedelta, retry_policy: ExceptionRetryPolicy = RETRY_POLICY, **extra: Any
) -> dict[str, Any]:
    """The tasks' defaults: two retries with exponential backoff, except for what ``retry_policy`` fails at once."""
    return {
        "retries": 2,
        # A deployment setting, not a run parameter (tests shorten it): transient errors wait this long.
        "retry_delay": timedelta(seconds=float(os.environ.get("RERANKER_RETRY_DELAY_S", "60"))),
        "retry_exponential_backoff": 2.0,
        "retry_policy": retry_policy,
        "execution_timeout": execution_timeout,
        **extra,
    }


def approval_timeout() -> timedelta:
    """A borderline candidate waits this long for a person; no answer means Reject (a deployment setting)."""
    return timedelta(hours=float(os.environ.get("RERANKER_APPROVAL_TIMEOUT_H", "72")))
