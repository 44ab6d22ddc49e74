"""Retention of run artifacts: old runs' folders under the artifacts root are deleted.

Every run leaves ``<root>/<run>/`` behind (snapshots, splits, a model, checkpoints while training): hundreds of MB
per run with a real base model. The retrain DAG's last task, ``prune``, calls :func:`prune_from_env` after every
run, whatever its outcome.

Policy (deployment settings, not run parameters):

* ``RERANKER_RETENTION_DAYS`` (default 30): runs with activity in the last that many days are kept;
* ``RERANKER_RETENTION_KEEP_LAST`` (default 20): the newest that many runs are kept whatever their age, so a
  DAG that has not run for months still has its history (the runs view, a rollback's evidence).

A run folder is deleted only when both allow it: older than the age limit *and* not among the newest
``keep_last``. "Age" is the newest modification time of anything in the folder (its last activity), not its name.

Never deleted:

* runs named in ``protect`` (the current run; any run the caller knows to be running);
* any run with activity in the last ``min_idle_hours`` (default 24 h, longer than the DAG's 12 h
  ``dagrun_timeout``): a safety net for runs the caller cannot name, e.g. another DAG writing into the same
  root, whatever the retention settings say;
* anything that is not a run folder: files, and hidden entries (``.name``) such as temporary folders.

The root may be a local folder or an fsspec URI (``s3://…``): listing, dating and deleting go through fsspec.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from reranker_tasks.errors import ConfigError
from reranker_tasks.layout import open_store
from reranker_tasks.paths import safe_run_name

log = logging.getLogger(__name__)

RETENTION_DAYS_ENV = "RERANKER_RETENTION_DAYS"
RETENTION_KEEP_LAST_ENV = "RERANKER_RETENTION_KEEP_LAST"
DEFAULT_RETENTION_DAYS = 30.0
DEFAULT_KEEP_LAST = 20
#: Runs active this recently are never deleted (longer than the retrain DAG's 12 h dagrun_timeout).
DEFAULT_MIN_IDLE_HOURS = 24.0
_DAY_S = 86_400.0


@dataclass(frozen=True)
class RetentionSettings:
    """How long run artifacts are kept (see the module docstring)."""

    keep_days: float = DEFAULT_RETENTION_DAYS
    keep_last: int = DEFAULT_KEEP_LAST

    def __post_init__(self) -> None:
        if not 0 <= self.keep_days <= 36_500:  # also refuses NaN and infinity
            raise ConfigError(f"{RETENTION_DAYS_ENV}: {self.keep_days!r} is not a number of days in [0, 36500]")
        if not 0 <= self.keep_last <= 1_000_000:
            raise ConfigError(f"{RETENTION_KEEP_LAST_ENV}: {self.keep_last!r} is not a count in [0, 1000000]")


@dataclass
class PruneResult:
    """What one pruning pass did. ``removed`` and ``kept`` are run folder names, ``errors`` one line each."""

    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retention_from_env(env: Mapping[str, str] | None = None) -> RetentionSettings:
    """The retention settings from ``RERANKER_RETENTION_DAYS`` / ``RERANKER_RETENTION_KEEP_LAST``.

    Raises:
        ConfigError: a value that is not a number / a whole number, or out of range.
    """
    env = os.environ if env is None else env
    raw_days = env.get(RETENTION_DAYS_ENV, "").strip()
    raw_last = env.get(RETENTION_KEEP_LAST_ENV, "").strip()
    try:
        days = float(raw_days) if raw_days else DEFAULT_RETENTION_DAYS
    except ValueError:
        raise ConfigError(f"{RETENTION_DAYS_ENV}: {raw_days!r} is not a number of days") from None
    try:
        keep_last = int(raw_last) if raw_last else DEFAULT_KEEP_LAST
    except ValueError:
        raise ConfigError(f"{RETENTION_KEEP_LAST_ENV}: {raw_last!r} is not a whole number") from None
    return RetentionSettings(keep_days=days, keep_last=keep_last)


def prune_artifacts(
    root: Any,
    keep_days: float,
    keep_last: int,
    protect: Iterable[str] = (),
    *,
    now: float | None = None,
    min_idle_hours: float = DEFAULT_MIN_IDLE_HOURS,
) -> PruneResult:
    """Delete the run folders under ``root`` that the retention policy lets go (see the module docstring).

    Args:
        root: the artifacts root: a local path or an fsspec URI / path object (``s3://bucket/artifacts``).
        keep_days: runs with activity in the last that many days are kept.
        keep_last: the newest that many runs are kept regardless of age.
        protect: run ids (as Airflow names them, or as folder names) that are never deleted.
        now: the current time as a UNIX timestamp (tests pin it).
        min_idle_hours: runs with activity this recently are never deleted.

    Returns:
        The folders removed and kept, and one line per folder that could not be dated or deleted (those are
        kept; a failure to delete one run never stops the others).
    """
    RetentionSettings(keep_days, keep_last)  # validates
    now = time.time() if now is None else now
    protected = {safe_run_name(run_id) for run_id in protect}
    fs, base = _filesystem(root)
    result = PruneResult()
    if not fs.isdir(base):
        log.info("retention: no artifacts root at %s, nothing to prune", base)
        return result

    runs: list[tuple[float, str, str]] = []  # (last activity, name, path)
    for entry in fs.ls(base, detail=True):
        name = _basename(entry["name"])
        if entry.get("type") != "directory" or entry.get("islink") or name.startswith("."):
            continue  # not a run folder (a symlink would delete what it points to elsewhere)
        try:
            activity = _last_activity(fs, entry["name"], entry)
        except Exception as exc:  # noqa: BLE001 - one unreadable run must not stop the pass
            result.errors.append(f"{name}: cannot read its age ({type(exc).__name__}: {exc})")
            result.kept.append(name)
            continue
        runs.append((activity, name, entry["name"]))

    runs.sort(reverse=True)  # newest first
    age_limit = now - keep_days * _DAY_S
    idle_limit = now - min_idle_hours * 3600.0
    for index, (activity, name, path) in enumerate(runs):
        reason = None
        if name in protected:
            reason = "protected"
        elif index < keep_last:
            reason = f"one of the newest {keep_last}"
        elif activity >= age_limit:
            reason = f"active within {keep_days:g} days"
        elif activity >= idle_limit:
            reason = f"active within {min_idle_hours:g} h: may still be running"
        if reason is not None:
            result.kept.append(name)
            continue
        try:
            fs.rm(path, recursive=True)
        except Exception as exc:  # noqa: BLE001 - keep going; report it
            result.errors.append(f"{name}: not deleted ({type(exc).__name__}: {exc})")
            result.kept.append(name)
            continue
        result.removed.append(name)
        log.info("retention: removed %s (last activity %s)", path, _iso(activity))
    log.info(
        "retention (keep %g days, keep the last %d): removed %d run folder(s), kept %d%s",
        keep_days, keep_last, len(result.removed), len(result.kept),
        f", {len(result.errors)} error(s)" if result.errors else "",
    )
    for error in result.errors:
        log.warning("retention: %s", error)
    return result


def prune_from_env(root: Any, protect: Iterable[str] = ()) -> dict[str, Any]:
    """Prune with the deployment's settings; never raises (a cleanup must not fail the run it cleans up after).

    Returns:
        :class:`PruneResult` as a dict, plus ``error`` when the pass could not run at all (bad settings,
        unreachable root); the error is also logged.
    """
    try:
        settings = retention_from_env()
        return prune_artifacts(root, settings.keep_days, settings.keep_last, protect).to_dict()
    except Exception as exc:  # noqa: BLE001 - by design: log and carry on
        log.exception("retention: pruning the artifacts under %s failed; nothing more was deleted", root)
        return {**PruneResult().to_dict(), "error": f"{type(exc).__name__}: {exc}"}


def _filesystem(root: Any) -> tuple[Any, str]:
    """fsspec filesystem and path of ``root`` (a path object with ``.fs``, such as ObjectStoragePath, keeps its own)."""
    store = open_store(root)
    fs, path = store.filesystem()
    return fs, str(path)


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _last_activity(fs: Any, path: str, entry: Mapping[str, Any]) -> float:
    """The newest modification time of the folder and everything in it (object stores: of its objects).

    Raises:
        ValueError: nothing in it carries a time; such a run is kept rather than guessed at.
    """
    times = [t for t in (_mtime(entry),) if t is not None]
    for info in fs.find(path, withdirs=True, detail=True).values():
        stamp = _mtime(info)
        if stamp is not None:
            times.append(stamp)
    if not times:
        raise ValueError("no modification times")
    return max(times)


def _mtime(info: Mapping[str, Any]) -> float | None:
    """A modification time from an fsspec info dict, across backends (local, memory, S3, GCS, Azure)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created", "creation_time"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")
