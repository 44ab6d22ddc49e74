"""Training survives a killed worker: a retry resumes from the newest complete checkpoint in the run's artifacts.

The interrupted training runs in a child process that is SIGKILLed (what happens to an Airflow task process when
its worker dies or the task is killed): no ``finally``, no atexit, files half-written. The child pauses a few
steps after its second checkpoint so the kill lands mid-training at a known point; the parent waits for that
checkpoint to be complete (marker and files, as the resume decides it) and kills. Then ``train_reranker`` runs
again in this process, like the retried task.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from reranker_tasks.config import SplitConfig, TrainConfig
from reranker_tasks.split import split_pairs
from reranker_tasks.train import (
    CHECKPOINT_COMPLETE_FILE,
    CHECKPOINT_INPUTS_FILE,
    CHECKPOINTS_DIR,
    MANIFEST_FILE,
    _inputs_key,
    checkpoint_if_complete,
    find_resumable_checkpoint,
    prepare_checkpoints,
    train_reranker,
)
from tests.support import build_tiny_bert, learnable_pairs

ROOT = Path(__file__).resolve().parents[2]
EVERY = 10  # checkpoint_steps
KILL_AFTER_CHECKPOINT = 2 * EVERY  # the checkpoint the retry must resume from
CHILD_TIMEOUT_S = 180.0
# The resume machinery on its own: without model selection and mining, saves happen only every checkpoint_steps.
FAST = {"epochs": 2.0, "learning_rate": 3e-3, "batch_size": 16, "max_length": 64, "warmup_ratio": 0.05,
        "dev_fraction": 0.0, "hard_negatives": False}

# The killed "first try": train_reranker as the task calls it, with one extra callback that parks the process a few
# steps after the checkpoint the parent waits for, so the SIGKILL lands mid-training and never after the end.
_CHILD = """
import json, sys, time
from pathlib import Path
from reranker_tasks import train
from reranker_tasks.config import TrainConfig

train_path, out_dir, conf, park_at = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
store = sys.argv[5] if len(sys.argv) > 5 else None  # a store URI: out_dir is then this worker's scratch folder
progress = train._make_progress_callback()

class ParkingProgress(progress):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == park_at:
            print(f"parked at step {state.global_step}", flush=True)
            time.sleep(3600)

train.ProgressLogCallback = ParkingProgress
mirror = None
if store:
    from reranker_tasks.storage import ArtifactStore
    arts = ArtifactStore.from_location(store).run("run-1", scratch_dir=out_dir)
    out_dir = arts.step_dir("train")
    mirror = arts.checkpoint_mirror("train", train.CHECKPOINTS_DIR, train.CHECKPOINT_COMPLETE_FILE)
train.train_reranker(Path(train_path), Path(out_dir), TrainConfig(**conf), checkpoint_mirror=mirror)
print("finished: the kill came too late", flush=True)
"""


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("resume")
    frame = learnable_pairs()
    snapshot = root / "pairs.parquet"
    frame.to_parquet(snapshot, index=False)
    base = build_tiny_bert(root / "tiny", frame["query"].tolist() + frame["document"].tolist())
    splits = split_pairs(snapshot, root / "split", SplitConfig())
    config = TrainConfig(base_model=str(base), checkpoint_steps=EVERY, **FAST)
    return {"root": root, "train_path": Path(splits.train_path), "config": config}


def _kill_mid_training(
    train_path: Path, out_dir: Path, config: TrainConfig, store: str | None = None, watch: Path | None = None
) -> None:
    """Start training in a child process and SIGKILL it once checkpoint-KILL_AFTER_CHECKPOINT is complete.

    ``store``: train as a task with artifacts in that store (``out_dir`` is the scratch folder); ``watch``: the
    checkpoints folder to wait on (default ``out_dir/checkpoints``).
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(train_path), str(out_dir), json.dumps(asdict(config)),
         str(KILL_AFTER_CHECKPOINT + 3), *([store] if store else [])],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    key = _inputs_key(train_path, config)
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while True:
            newest = find_resumable_checkpoint(watch or out_dir / CHECKPOINTS_DIR, key)
            if newest is not None and newest.step >= KILL_AFTER_CHECKPOINT:
                break
            if child.poll() is not None:
                pytest.fail(f"training exited ({child.returncode}) before checkpoint-{KILL_AFTER_CHECKPOINT}:\n"
                            f"{child.stdout.read() if child.stdout else ''}")
            if time.monotonic() > deadline:
                pytest.fail(f"no checkpoint-{KILL_AFTER_CHECKPOINT} within {CHILD_TIMEOUT_S:.0f} s")
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        output = child.communicate(timeout=30)[0]
    assert child.returncode == -signal.SIGKILL, output
    assert "finished" not in output, output


@pytest.fixture(scope="module")
def reference(inputs: dict[str, object]) -> tuple[object, float]:
    """The same training, never interrupted, and how long it took."""
    train_path, config, root = inputs["train_path"], inputs["config"], inputs["root"]
    assert isinstance(train_path, Path) and isinstance(config, TrainConfig) and isinstance(root, Path)
    began = time.perf_counter()
    result = train_reranker(train_path, root / "uninterrupted", config)
    assert result.global_step > KILL_AFTER_CHECKPOINT + 3, "the kill must land before the end"
    return result, time.perf_counter() - began


def _same_model(one: str, other: str) -> None:
    from sentence_transformers import CrossEncoder

    pairs = [["how to fix invoice", "open the invoice page and follow the invoice steps"],
             ["change my sso", "billing release notes from last year"]]
    assert CrossEncoder(one).predict(pairs) == pytest.approx(CrossEncoder(other).predict(pairs), abs=1e-5)


def test_a_killed_training_resumes_from_its_newest_complete_checkpoint(
    inputs: dict[str, object], reference: tuple[object, float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    train_path, config = inputs["train_path"], inputs["config"]
    assert isinstance(train_path, Path) and isinstance(config, TrainConfig)
    reference, reference_s = reference

    out_dir = tmp_path / "killed"
    _kill_mid_training(train_path, out_dir, config)
    checkpoints = out_dir / CHECKPOINTS_DIR
    assert (checkpoints / CHECKPOINT_INPUTS_FILE).is_file()
    assert not (out_dir / "model").exists()
    # What a kill during a save leaves: a checkpoint folder HF had begun to write. It must be ignored and removed.
    half_written = checkpoints / f"checkpoint-{KILL_AFTER_CHECKPOINT + EVERY}"
    half_written.mkdir(exist_ok=True)
    (half_written / "model.safetensors").write_bytes(b"\0" * 64)

    caplog.set_level(logging.INFO, logger="reranker_tasks.train")
    began = time.perf_counter()
    resumed = train_reranker(train_path, out_dir, config)
    resumed_s = time.perf_counter() - began

    expected = (f"resuming from checkpoint {checkpoints / f'checkpoint-{KILL_AFTER_CHECKPOINT}'} "
                f"(step {KILL_AFTER_CHECKPOINT} of {reference.global_step})")
    assert expected in caplog.text, caplog.text
    assert f"discarding incomplete checkpoint {half_written}" in caplog.text
    assert resumed.global_step == reference.global_step and not resumed.reused
    assert resumed.train_loss == pytest.approx(reference.train_loss, rel=1e-6), "loss over the whole run"
    manifest = json.loads((Path(resumed.model_dir) / MANIFEST_FILE).read_text())
    assert manifest["resumed_from_step"] == KILL_AFTER_CHECKPOINT
    assert "model.safetensors" in manifest["files"]
    assert not checkpoints.exists(), "checkpoints are removed once the model is complete"
    assert not list(out_dir.glob(".model.tmp-*")), "the killed try's temp folder is cleaned up"
    # Resuming restores weights, optimizer, scheduler, RNG and data position: the same model as without the kill.
    _same_model(resumed.model_dir, reference.model_dir)
    print(f"uninterrupted {reference_s:.1f} s, resumed {resumed_s:.1f} s")

    # A retry after success reuses the model; nothing is trained again.
    assert train_reranker(train_path, out_dir, config).reused


def test_a_retry_on_another_worker_resumes_from_the_checkpoint_in_the_store(
    inputs: dict[str, object], reference: tuple[object, float], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Artifacts in a store (``file://``: a shared volume): the killed worker's scratch folder is gone with it, and
    the retry, on a fresh scratch folder, resumes from the checkpoint that was mirrored to the store."""
    import shutil

    from reranker_tasks.storage import ArtifactStore

    train_path, config = inputs["train_path"], inputs["config"]
    assert isinstance(train_path, Path) and isinstance(config, TrainConfig)
    reference_result, _ = reference
    location = f"file://{tmp_path / 'store'}"
    store_checkpoints = tmp_path / "store" / "run-1" / "train" / CHECKPOINTS_DIR
    worker_a = tmp_path / "worker-a"
    _kill_mid_training(train_path, worker_a, config, store=location, watch=store_checkpoints)
    shutil.rmtree(worker_a)  # the dead worker's disk is not where the retry runs

    caplog.set_level(logging.INFO, logger="reranker_tasks")
    with ArtifactStore.from_location(location).run("run-1", scratch_dir=tmp_path / "worker-b") as arts:
        out_dir = arts.step_dir("train")
        mirror = arts.checkpoint_mirror("train", CHECKPOINTS_DIR, CHECKPOINT_COMPLETE_FILE)
        resumed = train_reranker(train_path, out_dir, config, checkpoint_mirror=mirror)
        assert f"checkpoint-{KILL_AFTER_CHECKPOINT}" in caplog.text and "downloaded checkpoints" in caplog.text
        expected = (f"resuming from checkpoint {out_dir / CHECKPOINTS_DIR / f'checkpoint-{KILL_AFTER_CHECKPOINT}'} "
                    f"(step {KILL_AFTER_CHECKPOINT} of {reference_result.global_step})")
        assert expected in caplog.text, caplog.text
        assert resumed.global_step == reference_result.global_step
        assert find_resumable_checkpoint(store_checkpoints, _inputs_key(train_path, config)) is not None, (
            "until the model is committed, the store keeps the checkpoints a retry would resume from")
        arts.commit("train", resumed.to_dict(), exclude=[CHECKPOINTS_DIR])
        mirror.clear()  # what the DAG's train task does once the commit returned
        _same_model(resumed.model_dir, reference_result.model_dir)
    assert not store_checkpoints.exists()
    assert (tmp_path / "store" / "run-1" / "train" / "model" / "model.safetensors").is_file()


def _fake_checkpoint(folder: Path, key: str, step: int, max_steps: int = 100, marker: bool = True) -> Path:
    folder.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
        (folder / name).write_bytes(b"x")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
    if marker:
        (folder / CHECKPOINT_COMPLETE_FILE).write_text(
            json.dumps({"inputs_key": key, "global_step": step, "max_steps": max_steps})
        )
    return folder


def test_completeness_needs_the_marker_every_file_and_a_matching_step(tmp_path: Path) -> None:
    good = _fake_checkpoint(tmp_path / "checkpoint-20", "k", 20)
    assert checkpoint_if_complete(good, "k") is not None
    assert checkpoint_if_complete(good, "other inputs") is None
    assert checkpoint_if_complete(_fake_checkpoint(tmp_path / "checkpoint-30", "k", 30, marker=False), "k") is None
    no_optimizer = _fake_checkpoint(tmp_path / "checkpoint-40", "k", 40)
    (no_optimizer / "optimizer.pt").unlink()
    assert checkpoint_if_complete(no_optimizer, "k") is None
    torn_state = _fake_checkpoint(tmp_path / "checkpoint-50", "k", 50)
    (torn_state / "trainer_state.json").write_text('{"global_st')
    assert checkpoint_if_complete(torn_state, "k") is None
    renamed = _fake_checkpoint(tmp_path / "checkpoint-60", "k", 70)  # marker and state name another step
    assert checkpoint_if_complete(renamed, "k") is None


def test_checkpoints_of_other_inputs_are_discarded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    checkpoints = tmp_path / CHECKPOINTS_DIR
    _fake_checkpoint(checkpoints / "checkpoint-10", "old", 10)
    (checkpoints / CHECKPOINT_INPUTS_FILE).write_text(json.dumps({"inputs_key": "old"}))
    caplog.set_level(logging.INFO, logger="reranker_tasks.train")
    assert prepare_checkpoints(checkpoints, "new") is None
    assert not checkpoints.exists()
    assert "they were written for other inputs" in caplog.text


def test_prepare_picks_the_newest_complete_and_removes_the_incomplete(tmp_path: Path) -> None:
    checkpoints = tmp_path / CHECKPOINTS_DIR
    (checkpoints).mkdir()
    (checkpoints / CHECKPOINT_INPUTS_FILE).write_text(json.dumps({"inputs_key": "k"}))
    _fake_checkpoint(checkpoints / "checkpoint-9", "k", 9)
    _fake_checkpoint(checkpoints / "checkpoint-10", "k", 10)
    _fake_checkpoint(checkpoints / "checkpoint-20", "k", 20, marker=False)
    _fake_checkpoint(checkpoints / "checkpoint-100", "k", 100, max_steps=100)  # the end: nothing to resume
    chosen = prepare_checkpoints(checkpoints, "k")
    assert chosen is not None and (chosen.step, chosen.max_steps) == (10, 100)
    assert chosen.path == checkpoints / "checkpoint-10"
    assert not (checkpoints / "checkpoint-20").exists()


def test_checkpoint_steps_is_not_part_of_the_inputs_key(inputs: dict[str, object]) -> None:
    from dataclasses import replace

    config = inputs["config"]
    train_path = inputs["train_path"]
    assert isinstance(config, TrainConfig) and isinstance(train_path, Path)
    assert _inputs_key(train_path, config) == _inputs_key(train_path, replace(config, checkpoint_steps=0))
    assert _inputs_key(train_path, config) != _inputs_key(train_path, replace(config, learning_rate=1e-3))
