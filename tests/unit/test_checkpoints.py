"""Unit tests of resumable training checkpoints: what makes one complete, which one a retry resumes.

The folders are built by hand in ``tmp_path`` the way the HF Trainer and our marker callback leave them; no model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reranker_tasks.checkpoints import (
    CHECKPOINT_COMPLETE_FILE,
    CHECKPOINT_INPUTS_FILE,
    CHECKPOINT_REQUIRED_FILES,
    Checkpoint,
    checkpoint_if_complete,
    checkpoint_step,
    find_resumable_checkpoint,
    mark_complete,
    prepare_checkpoints,
)

KEY = "inputs-a"
OTHER_KEY = "inputs-b"
MAX_STEPS = 100


def write_checkpoint(
    checkpoints_dir: Path,
    step: int,
    inputs_key: str = KEY,
    *,
    max_steps: int = MAX_STEPS,
    marker: bool = True,
    weights: str | None = "model.safetensors",
    missing: str | None = None,
) -> Path:
    """A ``checkpoint-<step>`` folder as HF writes it, with our completion marker unless ``marker=False``."""
    folder = checkpoints_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name in CHECKPOINT_REQUIRED_FILES:
        if name == "trainer_state.json":
            (folder / name).write_text(json.dumps({"global_step": step, "max_steps": max_steps}), encoding="utf-8")
        else:
            (folder / name).write_bytes(b"binary")
    if weights:
        (folder / weights).write_bytes(b"weights")
    if missing:
        (folder / missing).unlink()
    if marker:
        mark_complete(folder, inputs_key, step, max_steps)
    return folder


def record_inputs(checkpoints_dir: Path, inputs_key: str = KEY) -> None:
    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    (checkpoints_dir / CHECKPOINT_INPUTS_FILE).write_text(json.dumps({"inputs_key": inputs_key}), encoding="utf-8")


# --------------------------------------------------------------------------- checkpoint_step


@pytest.mark.parametrize(
    ("name", "step"),
    [("checkpoint-0", 0), ("checkpoint-12", 12), ("checkpoint-1000", 1000), ("checkpoint-", None),
     ("checkpoint-12.tmp", None), ("tmp-checkpoint-12", None), ("checkpoint-x", None), ("runs", None)],
)
def test_checkpoint_step_reads_only_checkpoint_folder_names(name, step) -> None:
    assert checkpoint_step(name) == step


# --------------------------------------------------------------------------- checkpoint_if_complete


def test_a_marked_checkpoint_with_every_file_is_complete(tmp_path) -> None:
    folder = write_checkpoint(tmp_path, 40)
    assert checkpoint_if_complete(folder, KEY) == Checkpoint(path=folder, step=40, max_steps=MAX_STEPS)


def test_mark_complete_writes_the_marker_the_check_reads(tmp_path) -> None:
    folder = write_checkpoint(tmp_path, 40, marker=False)
    assert checkpoint_if_complete(folder, KEY) is None
    mark_complete(folder, KEY, 40, MAX_STEPS)
    marker = json.loads((folder / CHECKPOINT_COMPLETE_FILE).read_text(encoding="utf-8"))
    assert marker == {"inputs_key": KEY, "global_step": 40, "max_steps": MAX_STEPS}
    assert checkpoint_if_complete(folder, KEY) is not None


def test_pytorch_bin_weights_count_as_weights(tmp_path) -> None:
    folder = write_checkpoint(tmp_path, 40, weights="pytorch_model.bin")
    assert checkpoint_if_complete(folder, KEY) is not None


def test_without_the_marker_a_checkpoint_is_half_written(tmp_path) -> None:
    assert checkpoint_if_complete(write_checkpoint(tmp_path, 40, marker=False), KEY) is None


def test_a_half_written_marker_is_no_marker(tmp_path) -> None:
    folder = write_checkpoint(tmp_path, 40)
    (folder / CHECKPOINT_COMPLETE_FILE).write_text('{"inputs_key": "inp', encoding="utf-8")
    assert checkpoint_if_complete(folder, KEY) is None


def test_a_checkpoint_of_other_inputs_is_not_ours(tmp_path) -> None:
    assert checkpoint_if_complete(write_checkpoint(tmp_path, 40, inputs_key=OTHER_KEY), KEY) is None


def test_a_marker_for_another_step_does_not_vouch_for_this_folder(tmp_path) -> None:
    folder = write_checkpoint(tmp_path, 40, marker=False)
    mark_complete(folder, KEY, 30, MAX_STEPS)
    assert checkpoint_if_complete(folder, KEY) is None


@pytest.mark.parametrize("missing", CHECKPOINT_REQUIRED_FILES)
def test_a_missing_required_file_makes_it_incomplete(tmp_path, missing) -> None:
    assert checkpoint_if_complete(write_checkpoint(tmp_path, 40, missing=missing), KEY) is None


def test_no_weights_makes_it_incomplete(tmp_path) -> None:
    assert checkpoint_if_complete(write_checkpoint(tmp_path, 40, weights=None), KEY) is None


@pytest.mark.parametrize("state", ['{"global_step": 4', '{"global_step": 30, "max_steps": 100}', "[]"])
def test_a_trainer_state_that_is_torn_or_disagrees_makes_it_incomplete(tmp_path, state) -> None:
    folder = write_checkpoint(tmp_path, 40)
    (folder / "trainer_state.json").write_text(state, encoding="utf-8")
    assert checkpoint_if_complete(folder, KEY) is None


def test_max_steps_falls_back_to_the_marker(tmp_path) -> None:
    folder = write_checkpoint(tmp_path, 40, max_steps=80)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 40}), encoding="utf-8")
    assert checkpoint_if_complete(folder, KEY).max_steps == 80


def test_a_folder_not_named_like_a_checkpoint_is_none(tmp_path) -> None:
    folder = write_checkpoint(tmp_path, 40)
    renamed = folder.rename(tmp_path / "last")
    assert checkpoint_if_complete(renamed, KEY) is None


# --------------------------------------------------------------------------- find_resumable_checkpoint


def test_find_returns_the_newest_complete_checkpoint_by_step_not_by_name(tmp_path) -> None:
    write_checkpoint(tmp_path, 9)  # "checkpoint-9" sorts last as text
    newest = write_checkpoint(tmp_path, 20)
    write_checkpoint(tmp_path, 10)
    assert find_resumable_checkpoint(tmp_path, KEY).path == newest


def test_find_skips_newer_half_written_and_foreign_checkpoints(tmp_path) -> None:
    good = write_checkpoint(tmp_path, 20)
    write_checkpoint(tmp_path, 30, marker=False)
    write_checkpoint(tmp_path, 40, missing="optimizer.pt")
    write_checkpoint(tmp_path, 50, inputs_key=OTHER_KEY)
    assert find_resumable_checkpoint(tmp_path, KEY) == Checkpoint(path=good, step=20, max_steps=MAX_STEPS)


def test_find_does_not_resume_the_end_of_training(tmp_path) -> None:
    write_checkpoint(tmp_path, 60)
    write_checkpoint(tmp_path, MAX_STEPS)
    assert find_resumable_checkpoint(tmp_path, KEY).step == 60


def test_find_changes_nothing_on_disk(tmp_path) -> None:
    write_checkpoint(tmp_path, 20)
    write_checkpoint(tmp_path, 30, marker=False)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    find_resumable_checkpoint(tmp_path, OTHER_KEY)
    find_resumable_checkpoint(tmp_path, KEY)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_find_with_no_folder_or_no_checkpoint(tmp_path) -> None:
    assert find_resumable_checkpoint(tmp_path / "missing", KEY) is None
    write_checkpoint(tmp_path, 20, marker=False)
    assert find_resumable_checkpoint(tmp_path, KEY) is None


# --------------------------------------------------------------------------- prepare_checkpoints


def test_prepare_resumes_the_newest_complete_and_deletes_incomplete_ones(tmp_path) -> None:
    checkpoints = tmp_path / "checkpoints"
    record_inputs(checkpoints)
    older = write_checkpoint(checkpoints, 9)
    newest = write_checkpoint(checkpoints, 20)
    half = write_checkpoint(checkpoints, 30, marker=False)
    torn = write_checkpoint(checkpoints, 40, missing="scheduler.pt")
    assert prepare_checkpoints(checkpoints, KEY) == Checkpoint(path=newest, step=20, max_steps=MAX_STEPS)
    assert older.is_dir() and newest.is_dir()
    assert not half.exists() and not torn.exists()
    assert (checkpoints / CHECKPOINT_INPUTS_FILE).is_file()


def test_prepare_keeps_but_does_not_resume_the_end_of_training(tmp_path) -> None:
    checkpoints = tmp_path / "checkpoints"
    record_inputs(checkpoints)
    write_checkpoint(checkpoints, 50)
    end = write_checkpoint(checkpoints, MAX_STEPS)
    assert prepare_checkpoints(checkpoints, KEY).step == 50
    assert end.is_dir()


def test_prepare_leaves_other_entries_alone(tmp_path) -> None:
    checkpoints = tmp_path / "checkpoints"
    record_inputs(checkpoints)
    (checkpoints / "runs").mkdir()
    (checkpoints / "checkpoint-7").write_text("a file, not a folder", encoding="utf-8")
    assert prepare_checkpoints(checkpoints, KEY) is None
    assert (checkpoints / "runs").is_dir() and (checkpoints / "checkpoint-7").is_file()


@pytest.mark.parametrize("recorded", [OTHER_KEY, None, "torn"])
def test_prepare_discards_everything_written_for_other_inputs(tmp_path, recorded) -> None:
    checkpoints = tmp_path / "checkpoints"
    if recorded == "torn":
        checkpoints.mkdir()
        (checkpoints / CHECKPOINT_INPUTS_FILE).write_text('{"inputs_k', encoding="utf-8")
    elif recorded:
        record_inputs(checkpoints, recorded)
    write_checkpoint(checkpoints, 20, inputs_key=KEY)  # complete for KEY, but the folder says otherwise
    assert prepare_checkpoints(checkpoints, KEY) is None
    assert not checkpoints.exists()


def test_prepare_with_no_folder_trains_from_the_start(tmp_path) -> None:
    assert prepare_checkpoints(tmp_path / "checkpoints", KEY) is None
    assert not (tmp_path / "checkpoints").exists()
