"""Domain errors of the retraining pipeline.

Two families matter to the orchestrator:

* :class:`PermanentError` (config and data problems): retrying cannot help, so the DAG turns
  these into a fail-without-retry.
* Everything else (network, Hub 5xx, a killed worker) is treated as transient and retried.
"""

from __future__ import annotations


class RerankerError(Exception):
    """Base class of every error this package raises on purpose."""


class PermanentError(RerankerError):
    """An error that a retry of the same task cannot fix (bad config, bad data)."""


class ConfigError(PermanentError, ValueError):
    """The run configuration is invalid: an unknown key, a wrong type, a value out of range."""


class DataError(PermanentError):
    """The source data cannot be read or has the wrong shape (missing file, broken file, no usable rows)."""


class DataValidationFailed(PermanentError):
    """The data was read but failed one or more validation expectations.

    Args:
        failures: one human-readable line per failed expectation (expectation, column, counts,
            a few 1-based source row numbers); never raw row text.
        report_path: where the full validation result was written, if it was.
    """

    def __init__(self, failures: list[str], report_path: str | None = None) -> None:
        self.failures = list(failures)
        self.report_path = report_path
        lines = [f"data validation failed ({len(self.failures)} expectation(s)):"]
        lines += [f"  - {failure}" for failure in self.failures]
        if report_path:
            lines.append(f"  full report: {report_path}")
        super().__init__("\n".join(lines))


class PublishConflict(PermanentError):
    """The Hub branch moved since the champion was evaluated (compare-and-swap lost)."""


class PreflightFailed(PermanentError):
    """One or more preflight checks failed for a reason a retry cannot fix (no token, token rejected or
    read-only, a namespace it cannot write, a base model that does not load, too little disk).

    Every failed check is listed, so one run tells the operator everything to fix before the next.

    Args:
        failures: one line per failed check (check name and what to do); never the token.
        report_path: where ``preflight.json`` was written, if it was.
    """

    def __init__(self, failures: list[str], report_path: str | None = None) -> None:
        self.failures = list(failures)
        self.report_path = report_path
        lines = [f"preflight failed ({len(self.failures)} check(s)):"]
        lines += [f"  - {failure}" for failure in self.failures]
        if report_path:
            lines.append(f"  full report: {report_path}")
        super().__init__("\n".join(lines))
