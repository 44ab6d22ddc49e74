"""Resumable training checkpoints: their layout in the train folder, what makes one complete, which to resume.

The train step (:func:`reranker_tasks.train.train_reranker`) lets the HF Trainer save a checkpoint every
``checkpoint_steps`` into ``<run>/train/checkpoints/checkpoint-<step>``; a retry of a killed task resumes from the
newest *complete* one. This module is the one place that knows what such a folder holds and when it can be
trusted, so the train step, the Trainer callback that marks a save complete
(:mod:`reranker_tasks.train_callbacks`), the store mirror (``reranker_tasks.storage.CheckpointMirror``, which is
handed the marker's name) and the tests all agree on it:

* the checkpoints folder records the inputs key of the training that wrote it (:data:`CHECKPOINT_INPUTS_FILE`);
  checkpoints of other inputs are discarded, never resumed;
* a checkpoint is complete only when our marker (:data:`CHECKPOINT_COMPLETE_FILE`, written after HF returned from
  saving) names its step and inputs, and every file a resume reads is there (:func:`checkpoint_if_complete`).

It knows nothing of transformers or of how the inputs key is computed (the train step owns both), so it imports
nothing heavy. Its log lines go to the train step's logger: they are part of the train task's log.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from reranker_tasks import layout
from reranker_tasks.paths import read_json, write_json_atomic

log = logging.getLogger("reranker_tasks.train")

#: In the train folder: where the HF Trainer writes its resumable checkpoints.
CHECKPOINTS_DIR = layout.CHECKPOINTS_DIR
#: In the checkpoints folder: the inputs key of the training whose checkpoints these are.
CHECKPOINT_INPUTS_FILE = "inputs.json"
#: In a checkpoint folder: written by us after HF finished saving it; without it the folder may be half-written.
CHECKPOINT_COMPLETE_FILE = "reranker_checkpoint.json"
#: Files HF writes into every resumable checkpoint (weights are checked separately: safetensors or bin).
CHECKPOINT_REQUIRED_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth")
CHECKPOINT_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
#: Checkpoints kept on disk: the newest one, plus the one before it while the newest is being written.
CHECKPOINT_KEEP = 2
_CHECKPOINT_NAME = re.compile(r"^checkpoint-(\d+)$")


class CheckpointStore(Protocol):
    """Somewhere else checkpoints are kept (``reranker_tasks.storage.CheckpointMirror``)."""

    def pull(self, local_dir: Path) -> None: ...
    def push_file(self, path: Path) -> None: ...
    def push(self, checkpoint: Path) -> None: ...
    def clear(self) -> None: ...


@dataclass(frozen=True)
class Checkpoint:
    """A complete, resumable checkpoint of this training."""

    path: Path
    step: int
    max_steps: int


def checkpoint_step(name: str) -> int | None:
    """The step of a checkpoint folder named ``checkpoint-<step>``, or None for any other name."""
    match = _CHECKPOINT_NAME.match(name)
    return int(match.group(1)) if match else None


def mark_complete(folder: Path, inputs_key: str, global_step: int, max_steps: int) -> None:
    """Write the marker that makes ``folder`` a complete checkpoint of ``inputs_key`` (read by
    :func:`checkpoint_if_complete`); called only once HF has finished saving the folder."""
    write_json_atomic(
        folder / CHECKPOINT_COMPLETE_FILE,
        {"inputs_key": inputs_key, "global_step": global_step, "max_steps": max_steps},
    )


def prepare_checkpoints(checkpoints_dir: Path, inputs_key: str) -> Checkpoint | None:
    """Make the checkpoints folder safe to train into, and return the checkpoint to resume from, if any.

    * Checkpoints written for other inputs (other data, config or base model) are deleted, with a log line:
      resuming them would silently train a mix of two runs.
    * Incomplete checkpoint folders (the worker died while HF was writing one) are deleted, so neither the
      resume nor HF's rotation ever counts them.

    Returns:
        The newest complete checkpoint of these inputs, or None (train from the start).
    """
    if not checkpoints_dir.is_dir():
        return None
    recorded = _read_json_or_none(checkpoints_dir / CHECKPOINT_INPUTS_FILE)
    if not isinstance(recorded, dict) or recorded.get("inputs_key") != inputs_key:
        if any(_CHECKPOINT_NAME.match(p.name) for p in checkpoints_dir.iterdir()):
            log.info("discarding checkpoints in %s: they were written for other inputs (data or config changed)",
                     checkpoints_dir)
        shutil.rmtree(checkpoints_dir)
        return None
    complete: list[Checkpoint] = []
    for folder in sorted(checkpoints_dir.iterdir()):
        match = _CHECKPOINT_NAME.match(folder.name)
        if not match or not folder.is_dir():
            continue
        checkpoint = checkpoint_if_complete(folder, inputs_key)
        if checkpoint is None:
            log.info("discarding incomplete checkpoint %s (the previous try died while saving it)", folder)
            shutil.rmtree(folder, ignore_errors=True)
        elif checkpoint.step >= checkpoint.max_steps:
            # Not written by this code (we never checkpoint the last step); HF would train past the end from it.
            log.info("not resuming from %s: it is the end of training (step %d of %d)", folder, checkpoint.step,
                     checkpoint.max_steps)
        else:
            complete.append(checkpoint)
    return max(complete, key=lambda c: c.step, default=None)


def find_resumable_checkpoint(checkpoints_dir: Path, inputs_key: str) -> Checkpoint | None:
    """The newest complete checkpoint for ``inputs_key`` in ``checkpoints_dir``, without changing anything."""
    if not checkpoints_dir.is_dir():
        return None
    found = (checkpoint_if_complete(folder, inputs_key) for folder in checkpoints_dir.iterdir()
             if _CHECKPOINT_NAME.match(folder.name) and folder.is_dir())
    return max((c for c in found if c is not None and c.step < c.max_steps), key=lambda c: c.step, default=None)


def checkpoint_if_complete(folder: Path, inputs_key: str) -> Checkpoint | None:
    """The checkpoint in ``folder`` if it is complete and belongs to ``inputs_key``, else None.

    HF writes a checkpoint folder file by file (weights, optimizer, scheduler, RNG states, trainer state, then
    rotates old ones), so a folder that exists may be half-written. Complete means: our marker, written by
    :func:`mark_complete` (from ``reranker_tasks.train_callbacks.CheckpointMarkerCallback``) only after HF returned
    from saving, names this step and these inputs; and every file a resume reads is there, with a trainer state
    that parses and agrees on the step.
    """
    match = _CHECKPOINT_NAME.match(folder.name)
    if not match:
        return None
    step = int(match.group(1))
    marker = _read_json_or_none(folder / CHECKPOINT_COMPLETE_FILE)
    if not isinstance(marker, dict) or marker.get("inputs_key") != inputs_key or marker.get("global_step") != step:
        return None
    if not all((folder / name).is_file() for name in CHECKPOINT_REQUIRED_FILES):
        return None
    if not any((folder / name).is_file() for name in CHECKPOINT_WEIGHT_FILES):
        return None
    state = _read_json_or_none(folder / "trainer_state.json")
    if not isinstance(state, dict) or state.get("global_step") != step:
        return None
    return Checkpoint(path=folder, step=step, max_steps=int(state.get("max_steps") or marker.get("max_steps") or 0))


def _read_json_or_none(path: Path) -> Any:
    """Parsed JSON, or None when the file is missing or half-written."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None
