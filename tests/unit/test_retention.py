"""Retention: which run folders ``prune_artifacts`` deletes, and that ``prune_from_env`` never raises."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from reranker_tasks.errors import ConfigError
from reranker_tasks.retention import (
    RETENTION_DAYS_ENV,
    RETENTION_KEEP_LAST_ENV,
    prune_artifacts,
    prune_from_env,
    retention_from_env,
)

NOW = 1_800_000_000.0
DAY = 86_400.0


def _run(root: Path, name: str, age_days: float, now: float = NOW) -> Path:
    """A run folder whose every file and folder was last touched ``age_days`` before ``now``."""
    folder = root / name
    (folder / "train" / "model").mkdir(parents=True)
    (folder / "extract").mkdir()
    (folder / "extract" / "pairs.parquet").write_bytes(b"x")
    (folder / "train" / "model" / "model.safetensors").write_bytes(b"x")
    stamp = now - age_days * DAY
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (stamp, stamp))
    return folder


def _names(root: Path) -> set[str]:
    return {p.name for p in root.iterdir()}


def test_old_runs_beyond_the_newest_n_are_removed(tmp_path: Path) -> None:
    for index, age in enumerate([1, 5, 40, 50, 60, 70]):
        _run(tmp_path, f"run{index}", age)
    result = prune_artifacts(tmp_path, keep_days=30, keep_last=3, now=NOW)
    # run0, run1: younger than 30 days; run2: one of the newest 3 although 40 days old; the rest go.
    assert sorted(result.removed) == ["run3", "run4", "run5"]
    assert _names(tmp_path) == {"run0", "run1", "run2"}
    assert sorted(result.kept) == ["run0", "run1", "run2"] and result.errors == []


def test_keep_last_keeps_history_when_nothing_ran_for_months(tmp_path: Path) -> None:
    for index in range(5):
        _run(tmp_path, f"run{index}", 200 + index)
    result = prune_artifacts(tmp_path, keep_days=30, keep_last=2, now=NOW)
    assert _names(tmp_path) == {"run0", "run1"} and len(result.removed) == 3


def test_age_is_the_newest_activity_inside_the_run(tmp_path: Path) -> None:
    folder = _run(tmp_path, "old_but_touched", 90)
    recent = NOW - 2 * DAY
    os.utime(folder / "train" / "model" / "model.safetensors", (recent, recent))
    _run(tmp_path, "old", 90)
    result = prune_artifacts(tmp_path, keep_days=30, keep_last=0, now=NOW)
    assert result.removed == ["old"] and _names(tmp_path) == {"old_but_touched"}


def test_protected_and_recently_active_runs_are_never_removed(tmp_path: Path) -> None:
    run_id = "manual__2026-01-01T00:00:00+00:00"
    from reranker_tasks.paths import safe_run_name

    _run(tmp_path, safe_run_name(run_id), 400)  # the current run, resumed after a long pause: protected by id
    _run(tmp_path, "other_dag_running", 0.2)  # a run nobody named, active 5 hours ago
    _run(tmp_path, "finished", 3)
    result = prune_artifacts(tmp_path, keep_days=0, keep_last=0, protect=[run_id], now=NOW)
    assert result.removed == ["finished"]
    assert _names(tmp_path) == {safe_run_name(run_id), "other_dag_running"}


def test_files_hidden_folders_and_symlinks_are_not_runs(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    root.mkdir()
    elsewhere = _run(tmp_path, "elsewhere", 400)
    (root / "notes.txt").write_text("x")
    hidden = _run(root, ".model.tmp-abc", 400)
    (root / "link").symlink_to(elsewhere, target_is_directory=True)
    _run(root, "old", 400)
    result = prune_artifacts(root, keep_days=1, keep_last=0, now=NOW)
    assert result.removed == ["old"]
    assert hidden.is_dir() and elsewhere.is_dir() and (root / "notes.txt").is_file()


def test_a_missing_root_prunes_nothing(tmp_path: Path) -> None:
    assert prune_artifacts(tmp_path / "absent", keep_days=1, keep_last=0, now=NOW).removed == []


def test_a_folder_that_cannot_be_deleted_is_reported_and_the_others_still_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fsspec.implementations.local import LocalFileSystem

    _run(tmp_path, "stuck", 400)
    _run(tmp_path, "old", 400)
    real_rm = LocalFileSystem.rm

    def flaky_rm(self, path, *args, **kwargs):
        if str(path).endswith("stuck"):
            raise PermissionError("read-only")
        return real_rm(self, path, *args, **kwargs)

    monkeypatch.setattr(LocalFileSystem, "rm", flaky_rm)
    result = prune_artifacts(tmp_path, keep_days=1, keep_last=0, now=NOW)
    assert result.removed == ["old"] and "stuck" in result.kept
    assert len(result.errors) == 1 and "stuck: not deleted (PermissionError" in result.errors[0]


def test_an_fsspec_root_is_pruned_too() -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/retention-{time.time_ns()}"
    for name in ("a", "b"):
        fs.pipe(f"{root}/{name}/train/model/model.safetensors", b"x")
    # Memory files are dated now: with keep_days=0 and no idle guard both would go; the newest one is kept.
    result = prune_artifacts(f"memory://{root}", keep_days=0, keep_last=1, now=time.time() + 10, min_idle_hours=0)
    assert len(result.removed) == 1 and len(result.kept) == 1
    assert [p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)] == result.kept


@pytest.mark.parametrize(("days", "keep_last"), [(-1, 20), (30, -1), (float("nan"), 20), (float("inf"), 20)])
def test_bad_settings_are_refused(tmp_path: Path, days: float, keep_last: int) -> None:
    with pytest.raises(ConfigError):
        prune_artifacts(tmp_path, keep_days=days, keep_last=keep_last)


def test_settings_come_from_the_environment() -> None:
    assert retention_from_env({}) == retention_from_env({RETENTION_DAYS_ENV: "30", RETENTION_KEEP_LAST_ENV: "20"})
    settings = retention_from_env({RETENTION_DAYS_ENV: "7.5", RETENTION_KEEP_LAST_ENV: "3"})
    assert (settings.keep_days, settings.keep_last) == (7.5, 3)
    for env in ({RETENTION_DAYS_ENV: "a week"}, {RETENTION_KEEP_LAST_ENV: "2.5"}, {RETENTION_DAYS_ENV: "nan"}):
        with pytest.raises(ConfigError, match="RERANKER_RETENTION"):
            retention_from_env(env)


def test_prune_from_env_never_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     caplog: pytest.LogCaptureFixture) -> None:
    _run(tmp_path, "old", 400, now=time.time())
    monkeypatch.setenv(RETENTION_DAYS_ENV, "soon")
    outcome = prune_from_env(tmp_path, protect=["current"])
    assert outcome["removed"] == [] and "RERANKER_RETENTION_DAYS" in outcome["error"]
    assert "pruning the artifacts" in caplog.text and (tmp_path / "old").is_dir()

    monkeypatch.setenv(RETENTION_DAYS_ENV, "1")
    monkeypatch.setenv(RETENTION_KEEP_LAST_ENV, "0")
    outcome = prune_from_env(tmp_path, protect=["current"])
    assert outcome["removed"] == ["old"] and "error" not in outcome
