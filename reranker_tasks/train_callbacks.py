"""The train step's hooks into the HF Trainer loop: progress lines in the task log, and the checkpoint marker.

* :func:`ProgressLogCallback`: step, loss, learning rate, elapsed time, ETA and each dev evaluation, as log lines
  (tqdm is off in a task log; :func:`_drop_printer_callback` removes the raw dicts transformers would print).
* :func:`CheckpointMarkerCallback`: marks each checkpoint complete once HF has saved it
  (:func:`reranker_tasks.checkpoints.mark_complete`), pushes it to the store's mirror, and makes HF log the loss
  at every save, which the train step's whole-run loss needs after a resume.

The callback classes subclass ``transformers.TrainerCallback`` and are built on first use, so importing this module
(and the train step) stays cheap. Kept out of :mod:`reranker_tasks.train` so that module reads as the training
step. The log lines go to the train step's logger, as before the split.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from reranker_tasks.checkpoints import CheckpointStore, mark_complete

log = logging.getLogger("reranker_tasks.train")

#: The evaluator metric model selection maximises (CrossEncoderRerankingEvaluator's primary metric, name "dev").
#: The train step selects on it; the progress log recognises a dev evaluation by it.
DEV_METRIC = "dev_ndcg@10"


def ProgressLogCallback() -> Any:
    """A TrainerCallback logging progress (built lazily: importing transformers is slow)."""
    return _make_progress_callback()()


def CheckpointMarkerCallback(
    checkpoints_dir: Path, inputs_key: str, mirror: CheckpointStore | None = None, selecting: bool = False
) -> Any:
    """A TrainerCallback writing the completeness marker into each saved checkpoint (built lazily)."""
    return _make_checkpoint_marker_callback()(checkpoints_dir, inputs_key, mirror, selecting)


def _drop_printer_callback(trainer: Any) -> None:
    """With tqdm disabled, transformers prints raw log dicts; our progress lines already say it all."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def _make_progress_callback() -> type:
    from transformers import TrainerCallback

    class _ProgressLog(TrainerCallback):  # type: ignore[misc]
        """Logs step, loss, learning rate, elapsed time and ETA to the task log."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._start = time.monotonic()
            self._first_step = state.global_step  # > 0 after a resume: the ETA counts this try's steps only

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            logs = logs or {}
            if f"eval_{DEV_METRIC}" in logs:
                best = state.best_metric
                log.info(
                    "dev evaluation at step %d/%d (epoch %.2f): ndcg@10 %.4f  mrr@10 %.4f  map %.4f  (best so far %s)",
                    state.global_step, state.max_steps, state.epoch or 0.0, logs[f"eval_{DEV_METRIC}"],
                    logs.get("eval_dev_mrr@10", float("nan")), logs.get("eval_dev_map", float("nan")),
                    "this one" if best is None or logs[f"eval_{DEV_METRIC}"] > best else f"{best:.4f}",
                )
                return
            if "loss" not in logs or not state.global_step:
                return
            elapsed = time.monotonic() - self._start
            done = max(1, state.global_step - self._first_step)
            remaining = elapsed / done * max(0, state.max_steps - state.global_step)
            log.info(
                "step %d/%d  epoch %.2f  loss %.4f  lr %.2e  elapsed %s  ETA %s",
                state.global_step, state.max_steps, state.epoch or 0.0, logs["loss"],
                logs.get("learning_rate", float("nan")), _duration(elapsed), _duration(remaining),
            )

    return _ProgressLog


def _make_checkpoint_marker_callback() -> type:
    from transformers import TrainerCallback

    class _CheckpointMarker(TrainerCallback):  # type: ignore[misc]
        """Marks a checkpoint complete once HF has saved it, and logs the loss at every save.

        ``on_save`` runs after ``Trainer._save_checkpoint`` returned (weights, optimizer, scheduler, RNG and
        trainer state written, old checkpoints rotated), so the marker is the last file of a complete checkpoint.
        Logging at each save puts the loss up to that step into the checkpoint's trainer state, which is what
        ``reranker_tasks.train._whole_run_loss`` needs after a resume.
        """

        def __init__(self, checkpoints_dir: Path, inputs_key: str, mirror: CheckpointStore | None,
                     selecting: bool) -> None:
            self._dir = checkpoints_dir
            self._inputs_key = inputs_key
            self._mirror = mirror
            self._selecting = selecting

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            # With model selection the last step's evaluation may be the best: HF must save it to be able to load it.
            if state.global_step >= state.max_steps and not self._selecting:
                # HF also checkpoints the last step. We save the final model right after, so that checkpoint only
                # costs time and disk, and HF cannot resume from it anyway (it would train one step too many).
                control.should_save = False
            if control.should_save:
                control.should_log = True
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            folder = self._dir / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                mark_complete(folder, self._inputs_key, state.global_step, state.max_steps)
                log.info("checkpoint saved: %s (step %d of %d)", folder, state.global_step, state.max_steps)
                if self._mirror is not None:
                    # Synchronously: training waits for the upload, so the store never lags a save behind.
                    self._mirror.push(folder)

    return _CheckpointMarker


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
