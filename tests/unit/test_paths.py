"""Unit tests of the artifact layout: run folder names, the configured root, atomic JSON writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reranker_tasks import paths
from reranker_tasks.paths import ARTIFACTS_ENV, RunPaths, artifacts_root, read_json, safe_run_name, write_json_atomic

SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
PROJECT = Path(paths.__file__).resolve().parents[1]


# --------------------------------------------------------------------------- safe_run_name


@pytest.mark.parametrize(
    "run_id",
    [
        "manual__2026-11-23T10:00:00.123+00:00",
        "manual__2026-11-23T10:00:00+00:00",
        "scheduled__2026-11-23T00:00:00+00:00",
        "backfill__2026-11-23T00:00:00+00:00",
        "asset_triggered__2026-11-23T10:00:00.123456+00:00",
        "dataset_triggered__2026-11-23T10:00:00+00:00",
        "my run / with spaces",
        "../../etc/passwd",
        "..hidden",
        "run\nwith\nnewlines",
        "ünïcödé-run",
    ],
)
def test_safe_run_name_is_a_plain_folder_name(run_id: str) -> None:
    name = safe_run_name(run_id)
    assert SAFE.match(name), name
    assert "/" not in name and "\\" not in name
    assert name not in (".", "..")
    assert not name.startswith(".")
    assert Path(name).name == name


def test_safe_run_name_of_an_airflow_manual_run_id() -> None:
    name = safe_run_name("manual__2026-11-23T10:00:00.123+00:00")
    assert name == "manual__2026-11-23T10_00_00.123_00_00"
    assert ":" not in name and "+" not in name


def test_safe_run_name_keeps_safe_ids_unchanged() -> None:
    assert safe_run_name("run-42_a.b") == "run-42_a.b"


def test_safe_run_name_is_deterministic() -> None:
    run_id = "manual__2026-11-23T10:00:00.123+00:00"
    assert safe_run_name(run_id) == safe_run_name(run_id)


def test_different_airflow_run_ids_get_different_folders() -> None:
    ids = [
        "manual__2026-11-23T10:00:00+00:00",
        "manual__2026-11-23T10:00:00.123+00:00",
        "manual__2026-11-23T10:00:01+00:00",
        "scheduled__2026-11-23T10:00:00+00:00",
    ]
    assert len({safe_run_name(i) for i in ids}) == len(ids)


@pytest.mark.parametrize("run_id", ["", ":::", "..", ".", "/", "+/+", "   "])
def test_safe_run_name_rejects_ids_with_nothing_left(run_id: str) -> None:
    with pytest.raises(ValueError, match="empty folder name"):
        safe_run_name(run_id)


# --------------------------------------------------------------------------- artifacts root


def test_artifacts_root_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / "artifacts"))
    assert artifacts_root() == (tmp_path / "artifacts").resolve()


def test_artifacts_root_relative_env_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ARTIFACTS_ENV, "rel/artifacts")
    root = artifacts_root()
    assert root.is_absolute()
    assert root == (tmp_path / "rel" / "artifacts").resolve()


def test_artifacts_root_expands_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(ARTIFACTS_ENV, "~/arts")
    assert artifacts_root() == (tmp_path / "arts").resolve()


@pytest.mark.parametrize("value", [None, ""])
def test_artifacts_root_default(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    else:
        monkeypatch.setenv(ARTIFACTS_ENV, value)
    assert artifacts_root() == PROJECT / "artifacts"


def test_run_paths_use_the_configured_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path))
    run = RunPaths.for_run("manual__2026-11-23T10:00:00.123+00:00")
    assert run.run_dir == tmp_path.resolve() / "manual__2026-11-23T10_00_00.123_00_00"
    assert not run.run_dir.exists()  # nothing is created until a step asks for its folder


def test_explicit_root_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ARTIFACTS_ENV, str(tmp_path / "env"))
    run = RunPaths.for_run("r1", root=tmp_path / "explicit")
    assert run.run_dir == tmp_path / "explicit" / "r1"


def test_step_folder_is_created_below_the_run(tmp_path: Path) -> None:
    run = RunPaths.for_run("r1", root=tmp_path)
    extract = run.step("extract")
    assert extract == tmp_path / "r1" / "extract"
    assert extract.is_dir()
    assert run.step("extract") == extract  # idempotent on retry


# --------------------------------------------------------------------------- write_json_atomic


def test_write_json_atomic_writes_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    payload = {"b": 2, "a": [1, 2.5, None, True], "text": "Straße"}
    assert write_json_atomic(target, payload) == target
    assert read_json(target) == payload
    assert json.loads(target.read_text(encoding="utf-8")) == payload
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_write_json_atomic_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_json_atomic(target, {"v": 1})
    write_json_atomic(target, {"v": 2})
    assert read_json(target) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_json_atomic_failure_keeps_the_old_file_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    import reranker_tasks.paths as paths

    target = tmp_path / "out.json"
    write_json_atomic(target, {"v": 1})

    def half_written(payload, handle, **kwargs):  # a write that dies half-way (disk full, killed worker)
        handle.write('{"v": ')
        raise OSError("No space left on device")

    monkeypatch.setattr(paths.json, "dump", half_written)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(target, {"v": 2})
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_json_atomic_stringifies_unknown_types(tmp_path: Path) -> None:
    target = write_json_atomic(tmp_path / "out.json", {"path": tmp_path})
    assert read_json(target) == {"path": str(tmp_path)}
