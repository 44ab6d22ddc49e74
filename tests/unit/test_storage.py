"""Artifacts under a local folder or an fsspec store: markers, scratch folders, downloads, checkpoint mirroring.

The object store is fsspec's ``memory://`` filesystem (a real fsspec backend with object-store semantics: no
folders, no rename), and ``file://`` for the store mode on a shared volume. Two ``RunArtifacts`` with different
scratch folders stand for two workers that share nothing but the store.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest

from reranker_tasks.errors import PermanentError
from reranker_tasks.storage import (
    COMPLETE_MARKER,
    ArtifactCorrupt,
    ArtifactsIncomplete,
    ArtifactStore,
    artifacts_location,
    is_uri,
    names_connection,
)

RUN = "manual__2026-12-03T10:00:00+00:00"
RUN_DIR = "manual__2026-12-03T10_00_00_00_00"


@pytest.fixture
def memory_store() -> ArtifactStore:
    store = ArtifactStore.from_location(f"memory://reranker-{uuid.uuid4().hex}/artifacts")
    yield store
    if store.fs.exists(store.root_path):
        store.fs.rm(store.root_path, recursive=True)


def _worker(store: ArtifactStore, tmp_path: Path, name: str):
    scratch = tmp_path / name
    return store.run(RUN, scratch_dir=scratch)


def _write_extract(folder: Path) -> dict[str, str]:
    (folder / "snapshot.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 10)
    (folder / "nested").mkdir()
    (folder / "nested" / "report.json").write_text('{"ok": true}')
    (folder / ".snapshot.parquet.abc.tmp").write_bytes(b"half a file")  # a temp file of an atomic write
    return {"snapshot_path": str(folder / "snapshot.parquet"), "rows": 3}


def test_locations_uris_and_connections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert is_uri("s3://bucket/x") and is_uri("file:///mnt/shared") and is_uri("memory://a")
    assert not is_uri("/srv/artifacts") and not is_uri("artifacts") and not is_uri("C:\\artifacts")
    assert names_connection("s3://aws_default@bucket/reranker") and not names_connection("s3://bucket/reranker")
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", "s3://bucket/reranker/")
    assert artifacts_location() == "s3://bucket/reranker"
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", str(tmp_path / "x" / ".." / "arts"))
    assert artifacts_location() == str((tmp_path / "arts").resolve())
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", "://nowhere")
    with pytest.raises(ValueError, match="RERANKER_ARTIFACTS_ROOT='://nowhere': not a URI"):
        artifacts_location()


def test_local_mode_writes_in_place_with_a_marker_listing_every_file(tmp_path: Path) -> None:
    store = ArtifactStore.from_location(tmp_path / "arts")
    assert store.local
    with store.run(RUN) as arts:
        folder = arts.step_dir("extract")
        assert folder == tmp_path / "arts" / RUN_DIR / "extract"
        result = _write_extract(folder)
        assert arts.commit("extract", result) == result  # local paths stay local paths
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    assert set(marker["files"]) == {"snapshot.parquet", "nested/report.json"}, "temp files are not outputs"
    assert marker["files"]["snapshot.parquet"]["size"] == 4 + 2560
    assert marker["step"] == "extract" and marker["run_id"] == RUN
    with store.run(RUN) as reader:
        assert reader.local(result["snapshot_path"]) == folder / "snapshot.parquet"
        with pytest.raises(ArtifactsIncomplete, match="step 'split' of run .* has no completion marker"):
            reader.local(str(tmp_path / "arts" / RUN_DIR / "split" / "train.parquet"))
    # A step that starts again is not complete until it commits again.
    with store.run(RUN) as again:
        again.step_dir("extract")
        assert not again.is_complete("extract")
    # A folder without a marker (written before markers existed, or its task marked successful by hand) is read,
    # with a warning: on one disk, Airflow's task order is the guarantee.
    with store.run(RUN) as reader:
        assert reader.local(result["snapshot_path"]) == folder / "snapshot.parquet"


def test_store_mode_moves_outputs_between_workers_only_through_the_store(
    memory_store: ArtifactStore, tmp_path: Path
) -> None:
    writer = _worker(memory_store, tmp_path, "worker-a")
    folder = writer.step_dir("extract")
    assert folder.is_relative_to(tmp_path / "worker-a"), "store mode writes into the task's scratch folder"
    result = writer.commit("extract", _write_extract(folder))
    uri = f"{memory_store.location}/{RUN_DIR}/extract/snapshot.parquet"
    assert result == {"snapshot_path": uri, "rows": 3}, "XCom paths become store URIs"
    writer.close()
    assert not (tmp_path / "worker-a").exists() or not any((tmp_path / "worker-a").iterdir())

    fs, root = memory_store.fs, memory_store.root_path
    stored = sorted(p[len(root) + 1:] for p in fs.find(root))
    assert stored == [f"{RUN_DIR}/extract/{COMPLETE_MARKER}", f"{RUN_DIR}/extract/nested/report.json",
                      f"{RUN_DIR}/extract/snapshot.parquet"]

    with _worker(memory_store, tmp_path, "worker-b") as reader:
        local = reader.local(uri)
        assert local.is_relative_to(tmp_path / "worker-b")
        assert local.read_bytes() == b"PAR1" + bytes(range(256)) * 10
        assert (local.parent / "nested" / "report.json").read_text() == '{"ok": true}'


def test_the_marker_is_the_last_object_written(memory_store: ArtifactStore, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[str] = []
    fs = memory_store.fs
    for name, target_arg in (("put_file", 1), ("pipe_file", 0)):  # put_file(lpath, rpath), pipe_file(path, value)
        original = getattr(fs, name)

        def recording(*args, _original=original, _at=target_arg, **kwargs):
            writes.append(str(args[_at]).rsplit("/", 1)[-1])
            return _original(*args, **kwargs)

        monkeypatch.setattr(fs, name, recording)
    with _worker(memory_store, tmp_path, "a") as arts:
        arts.commit("extract", _write_extract(arts.step_dir("extract")))
    assert writes[-1] == COMPLETE_MARKER and writes.count(COMPLETE_MARKER) == 1
    assert set(writes[:-1]) == {"snapshot.parquet", "report.json"}


def test_a_failed_step_is_uploaded_without_a_marker_and_never_read(memory_store: ArtifactStore, tmp_path: Path) -> None:
    with _worker(memory_store, tmp_path, "a") as arts, pytest.raises(RuntimeError, match="validation failed"):
        with arts.writing("validate") as folder:
            (folder / "data_docs").mkdir()
            (folder / "data_docs" / "index.html").write_text("<html>failed checks</html>")
            raise RuntimeError("validation failed")
    assert memory_store.read_bytes(RUN, "validate/data_docs/index.html") == b"<html>failed checks</html>"
    assert not memory_store.exists(RUN, f"validate/{COMPLETE_MARKER}")
    with _worker(memory_store, tmp_path, "b") as reader, pytest.raises(ArtifactsIncomplete, match="'validate'"):
        reader.local(f"{memory_store.location}/{RUN_DIR}/validate/data_docs/index.html")


def test_downloads_are_checked_against_the_marker(memory_store: ArtifactStore, tmp_path: Path) -> None:
    with _worker(memory_store, tmp_path, "a") as arts:
        result = arts.commit("extract", _write_extract(arts.step_dir("extract")))
    # A leftover of an earlier, interrupted upload is not in the marker: never downloaded.
    memory_store.fs.pipe_file(memory_store.key(RUN, "extract", "stale.parquet"), b"old")
    with _worker(memory_store, tmp_path, "b") as reader:
        local = reader.local(result["snapshot_path"])
        assert not (local.parent / "stale.parquet").exists()
    # A torn or replaced object does not match its size and checksum.
    memory_store.fs.pipe_file(memory_store.key(RUN, "extract", "snapshot.parquet"), b"PAR1 truncated")
    with _worker(memory_store, tmp_path, "c") as reader:
        with pytest.raises(ArtifactCorrupt, match="snapshot.parquet: 14 bytes"):
            reader.local(result["snapshot_path"])


def test_a_retried_step_starts_from_its_last_complete_output_on_any_worker(
    memory_store: ArtifactStore, tmp_path: Path
) -> None:
    with _worker(memory_store, tmp_path, "a") as arts:
        arts.commit("extract", _write_extract(arts.step_dir("extract")))
    with _worker(memory_store, tmp_path, "b") as retry:
        folder = retry.step_dir("extract", reuse=True)
        assert (folder / "snapshot.parquet").read_bytes().startswith(b"PAR1"), "the earlier try's output is there"
        assert not retry.is_complete("extract"), "the marker goes while the step runs again"
        retry.commit("extract")
        assert retry.is_complete("extract")
    with _worker(memory_store, tmp_path, "c") as other:
        assert not any(other.step_dir("extract").iterdir()), "steps that do not reuse their output start empty"
        other.commit("extract", {})


def test_a_damaged_earlier_output_is_not_reused_and_does_not_block_the_retry(
    memory_store: ArtifactStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _worker(memory_store, tmp_path, "a") as arts:
        arts.commit("extract", _write_extract(arts.step_dir("extract")))
    memory_store.fs.rm(memory_store.key(RUN, "extract", "snapshot.parquet"))  # a lifecycle rule, a person
    with _worker(memory_store, tmp_path, "b") as retry:
        folder = retry.step_dir("extract", reuse=True)
        assert not any(folder.iterdir()) and not retry.is_complete("extract")
    assert "not reusing the earlier output of extract" in caplog.text


def test_paths_outside_the_run_are_refused(memory_store: ArtifactStore, tmp_path: Path) -> None:
    with _worker(memory_store, tmp_path, "a") as arts:
        with pytest.raises(ValueError, match="not a path inside a run's artifacts"):
            arts.local(f"{memory_store.location}/{RUN_DIR}/extract/../../other-run/extract/x")
        with pytest.raises(ValueError, match="is not an artifact of run") as refused:
            arts.local("memory://elsewhere/file.parquet")
        assert isinstance(refused.value, PermanentError), "a retry reads the same XCom: fail without retrying"
        with pytest.raises(ValueError, match="not a step folder name"):
            arts.step_dir("../escape")


def test_error_messages_name_the_store_not_a_dead_scratch_folder(memory_store: ArtifactStore, tmp_path: Path) -> None:
    with _worker(memory_store, tmp_path, "a") as arts:
        report = arts.step_dir("validate") / "validation.json"
    message = f"3 checks failed; full report: {report}"
    assert memory_store.portable_text(RUN, message) == (
        f"3 checks failed; full report: {memory_store.location}/{RUN_DIR}/validate/validation.json"
    )
    assert memory_store.portable_text(RUN, "no paths here") == "no paths here"
    local = ArtifactStore.from_location(tmp_path / "arts")
    assert local.portable_text(RUN, message) == message


def test_run_level_json_and_uris(memory_store: ArtifactStore) -> None:
    uri = memory_store.write_json(RUN, "failure.json", {"task_id": "train", "loss": float("nan")})
    assert uri == f"{memory_store.location}/{RUN_DIR}/failure.json"
    assert memory_store.read_json(RUN, "failure.json") == {"task_id": "train", "loss": None}
    assert memory_store.read_json(RUN, "missing.json") is None


def test_file_uri_is_the_store_mode_on_a_shared_volume(tmp_path: Path) -> None:
    store = ArtifactStore.from_location(f"file://{tmp_path / 'shared'}")
    assert not store.local
    with store.run(RUN, scratch_dir=tmp_path / "scratch") as arts:
        result = arts.commit("split", {"train_path": str(_touch(arts.step_dir("split") / "train.parquet"))})
    assert result["train_path"] == f"file://{tmp_path / 'shared'}/{RUN_DIR}/split/train.parquet"
    assert (tmp_path / "shared" / RUN_DIR / "split" / COMPLETE_MARKER).is_file()
    assert not list((tmp_path / "shared").rglob("*.tmp")), "writes go through a temp file and a rename"


def _touch(path: Path) -> Path:
    path.write_bytes(b"rows")
    return path


def _checkpoint(folder: Path, step: int, marker: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "optimizer.pt").write_bytes(b"o" * step)
    (folder / "model.safetensors").write_bytes(b"m" * step)
    if marker:
        (folder / "done.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_checkpoints_are_mirrored_marker_last_and_pulled_only_when_complete(
    memory_store: ArtifactStore, tmp_path: Path
) -> None:
    with _worker(memory_store, tmp_path, "a") as arts:
        mirror = arts.checkpoint_mirror("train", "checkpoints", "done.json")
        assert mirror is not None
        local = arts.step_dir("train") / "checkpoints"
        local.mkdir()
        (local / "inputs.json").write_text('{"inputs_key": "k"}')
        mirror.push_file(local / "inputs.json")
        for step in (10, 20, 30):
            mirror.push(_checkpoint(local / f"checkpoint-{step}", step))
            if step == 20:  # the trainer rotates: only the newest two stay on disk, and in the store
                shutil.rmtree(local / "checkpoint-10")
        shutil.rmtree(local / "checkpoint-20")
        # A dead try had begun uploading checkpoint-30 with a file the new one does not have: it must not mix in.
        memory_store.fs.pipe_file(memory_store.key(RUN, "train", "checkpoints", "checkpoint-30", "stale.bin"), b"x")
        mirror.push(local / "checkpoint-30")
        # A checkpoint whose upload was cut off before its marker:
        half = memory_store.key(RUN, "train", "checkpoints", "checkpoint-40", "optimizer.pt")
        memory_store.fs.pipe_file(half, b"half")
    stored = memory_store.fs.ls(memory_store.key(RUN, "train", "checkpoints"), detail=False)
    names = {p.rsplit("/", 1)[-1] for p in stored}
    assert names == {"inputs.json", "checkpoint-30", "checkpoint-40"}

    with _worker(memory_store, tmp_path, "b") as retry:
        target = retry.step_dir("train") / "checkpoints"
        retry.checkpoint_mirror("train", "checkpoints", "done.json").pull(target)
        assert sorted(p.name for p in target.iterdir()) == ["checkpoint-30", "inputs.json"]
        assert not (target / "checkpoint-30" / "stale.bin").exists()
        assert (target / "checkpoint-30" / "optimizer.pt").read_bytes() == b"o" * 30
        retry.checkpoint_mirror("train", "checkpoints", "done.json").clear()
    assert not memory_store.fs.exists(memory_store.key(RUN, "train", "checkpoints"))


def test_local_mode_needs_no_mirror(tmp_path: Path) -> None:
    with ArtifactStore.from_location(tmp_path).run(RUN) as arts:
        assert arts.checkpoint_mirror("train", "checkpoints", "done.json") is None
        assert arts.disk_dir == tmp_path.resolve()


def test_scratch_folders_of_dead_task_processes_are_swept(memory_store: ArtifactStore, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from reranker_tasks.storage import SCRATCH_PREFIX, _host

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    host = _host()
    dead = tmp_path / "scratch" / f"{SCRATCH_PREFIX}{gone.stdout.strip()}@{host}-abc"
    (dead / "run" / "train").mkdir(parents=True)
    (dead / "run" / "train" / "optimizer.pt").write_bytes(b"big")
    alive = tmp_path / "scratch" / f"{SCRATCH_PREFIX}{os.getpid()}@{host}-def"
    alive.mkdir()
    other_host = tmp_path / "scratch" / f"{SCRATCH_PREFIX}{gone.stdout.strip()}@another-host-ghi"
    other_host.mkdir()  # a volume shared with another host: its pids mean nothing here
    unrelated = tmp_path / "scratch" / "someone-elses-folder"
    unrelated.mkdir()
    with memory_store.run(RUN, scratch_dir=tmp_path / "scratch") as arts:
        assert arts.run_dir.parent.name.startswith(f"{SCRATCH_PREFIX}{os.getpid()}@{host}-")
        assert not dead.exists() and alive.exists() and other_host.exists() and unrelated.exists()
    assert not arts.run_dir.exists(), "a task's scratch folder goes when it ends"


def test_commit_uses_the_steps_exclusions_and_a_skip_after_it_uploads_nothing_again(
    memory_store: ArtifactStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads: list[str] = []
    put_file = memory_store.fs.put_file
    monkeypatch.setattr(memory_store.fs, "put_file", lambda lpath, rpath, **kw: (uploads.append(rpath),
                                                                                 put_file(lpath, rpath, **kw)))
    with _worker(memory_store, tmp_path, "a") as arts, pytest.raises(KeyboardInterrupt):
        with arts.writing("train", exclude=["checkpoints"]) as folder:
            (folder / "checkpoints").mkdir()
            (folder / "checkpoints" / "optimizer.pt").write_bytes(b"o")
            (folder / "model.safetensors").write_bytes(b"m")
            arts.commit("train", {})
            raise KeyboardInterrupt  # stands for a skip raised after the commit
    marker = memory_store.read_json(RUN, f"train/{COMPLETE_MARKER}")
    assert set(marker["files"]) == {"model.safetensors"}, "writing's exclusions hold for the commit"
    assert [u.rsplit("/", 1)[-1] for u in uploads] == ["model.safetensors"], "nothing uploaded twice"
