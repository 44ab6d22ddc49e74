"""Train step: fine-tune a CrossEncoder with ``CrossEncoderTrainer`` + ``BinaryCrossEntropyLoss``.

Reproducibility: the seed is set right before the model is built, so the fresh 1-logit scoring head that
a bare encoder gets is initialised the same way in every run with that seed (and the evaluate step
rebuilds exactly this untuned model as the "base" to beat).

Atomicity: the model is saved into a temporary sibling folder, a manifest with the sha256 of every
file is written into it, and only then is the folder renamed to ``model/``. A reader therefore sees
either no model or a complete one; a retried task finds a complete model for the same inputs and
reuses it instead of training again.

Surviving a killed worker: with ``checkpoint_steps`` > 0, the HF Trainer saves a resumable checkpoint
(weights, optimizer, scheduler, RNG states, trainer state) every that many steps into
``<run>/train/checkpoints/checkpoint-<step>``, keeping the newest two. These live in the run's artifacts, not
in a temp folder, so an Airflow retry of the task finds them: it resumes from the newest *complete* checkpoint
and logs ``resuming from checkpoint <path> (step N of M)``. The folder records the inputs key of the training
that wrote it; checkpoints of other inputs are discarded, never resumed (the layout, the completeness marker and
the choice of checkpoint: :mod:`reranker_tasks.checkpoints`; the Trainer callbacks that mark each save complete
and log progress: :mod:`reranker_tasks.train_callbacks`). Once the final model is in place the checkpoints have
served their purpose and are deleted.

Heartbeats: nothing here has to yield for them. In Airflow 3 the task runs in a child process forked by the
task supervisor (``airflow.sdk.execution_time.supervisor``); the supervisor, a separate process, sends the
heartbeats to the API server while it relays this process's logs. A long, CPU-bound ``trainer.train()`` cannot
block it; only a killed or hung supervisor stops the heartbeats, and then the scheduler fails the task over to
its retry, which resumes from the checkpoint.

Privacy: sentence-transformers' generated card quotes training rows (a "Samples" table and a usage
example built from the first rows). Both are scrubbed before the model is saved. (Checkpoints hold the
unscrubbed card, but they sit next to the training split in the run's artifacts and are never published.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from reranker_tasks import layout

# The checkpoint layout and the Trainer callbacks have their own modules; the names that lived here before are
# re-exported (the DAG, tests and benchmarks import them from here). train_reranker looks ProgressLogCallback up
# in this module's namespace at each call, so a test that replaces it here still takes effect.
from reranker_tasks.checkpoints import (  # noqa: F401
    CHECKPOINT_COMPLETE_FILE,
    CHECKPOINT_INPUTS_FILE,
    CHECKPOINT_KEEP,
    CHECKPOINT_REQUIRED_FILES,
    CHECKPOINT_WEIGHT_FILES,
    CHECKPOINTS_DIR,
    Checkpoint,
    CheckpointStore,
    checkpoint_if_complete,
    checkpoint_step,
    find_resumable_checkpoint,
    prepare_checkpoints,
)
from reranker_tasks.config import TrainConfig
from reranker_tasks.errors import ConfigError

# Re-exported: callers of the training API used to find the model I/O here.
from reranker_tasks.modelio import (  # noqa: F401
    MODEL_FILE_ALLOWLIST,
    BaseModelRef,
    load_cross_encoder,
    resolve_base_model,
)
from reranker_tasks.paths import read_json, write_json_atomic
from reranker_tasks.train_callbacks import (  # noqa: F401
    DEV_METRIC,
    CheckpointMarkerCallback,
    ProgressLogCallback,
    _drop_printer_callback,
    _make_progress_callback,
)

log = logging.getLogger(__name__)

# Artifact names come from the layout registry (the plugin and make run read the same ones).
MODEL_DIR = layout.MODEL_DIR
MANIFEST_FILE = layout.MODEL_MANIFEST_FILE
#: Config fields that do not change the trained weights, so a reused model or a checkpoint stays valid across them.
_NOT_IN_INPUTS_KEY = ("checkpoint_steps",)
_CURVE_METRICS = ("ndcg@10", "mrr@10", "map")
#: In the train folder: the dev evaluations and the chosen step (also in the card).
CURVE_FILE = layout.TRAINING_CURVE_FILE
#: In the train folder: the downloaded champion a warm start continues from (not an artifact: the Hub has it).
INIT_MODEL_DIR = layout.INIT_MODEL_DIR


@dataclass(frozen=True)
class TrainResult:
    model_dir: str
    train_rows: int  # pairs trained on: labeled pairs of the train part + mined negatives
    global_step: int
    train_loss: float
    runtime_s: float
    reused: bool
    labeled_pairs: int = 0  # labeled pairs trained on (the dev queries' pairs are not among them)
    dev_queries: int = 0  # 0: model selection was off for this run
    dev_pairs: int = 0
    mined_pairs: int = 0
    mining: dict[str, Any] | None = None  # MiningReport.to_dict() when hard negatives were mined
    pos_weight: float = 1.0
    init_from: str = "base"
    init_commit: str | None = None  # the champion commit a warm start continued from
    #: The dev evaluations in order: {"step", "epoch", "ndcg@10", "mrr@10", "map"}; empty without model selection.
    curve: list[dict[str, float]] | None = None
    chosen_step: int | None = None  # the step whose weights were kept (the best dev NDCG@10)
    best_dev_ndcg: float | None = None
    stopped_early: bool = False
    max_steps: int = 0
    #: hardware.Compute.to_dict(): device, precision ("fp32" | "bf16"), why, torch threads.
    compute: dict[str, Any] | None = None
    #: Padding share of the training batches as sampled (length-grouped) vs in random batches of the same size.
    padding: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class InitModel:
    """The production model a warm start (``init_from: champion``) continues from."""

    path: str  # a local folder with the downloaded model
    commit: str  # the Hub commit it was downloaded at (part of the inputs key)


def train_reranker(
    train_path: Path,
    out_dir: Path,
    config: TrainConfig,
    model_id: str | None = None,
    data_name: str = "labeled pairs",
    token: str | None = None,
    checkpoint_mirror: CheckpointStore | None = None,
    init_model: InitModel | None = None,
) -> TrainResult:
    """Fine-tune the base model on the train split and save it atomically to ``out_dir/model``.

    A complete model of the same inputs is reused. Otherwise training resumes from the newest complete
    checkpoint of the same inputs in ``out_dir/checkpoints`` (left by an earlier, killed try), or starts fresh.
    Errors in the config or the data raise :class:`~reranker_tasks.errors.PermanentError` subclasses as before;
    a resume changes nothing about which errors are retried.

    Args:
        train_path: Parquet with ``query``, ``document``, ``label``.
        out_dir: the run's ``train`` folder.
        config: hyperparameters.
        model_id: the Hub repo id the model will be published as (goes into the card's usage snippet).
        data_name: how the card names the training data.
        token: Hub token, only needed when the base model is a private Hub repo.
        checkpoint_mirror: where checkpoints are also kept when ``out_dir`` is a task's scratch folder (artifacts in
            an object store, ``reranker_tasks.storage``): pulled before resuming, each new one pushed once complete.
            The caller clears it once the model is committed to the store, not before: a failed upload of the
            model must still leave the retry something to resume from.
        init_model: with ``init_from: champion``, the production model to continue from (downloaded by the
            caller at the commit preflight resolved); ``None`` fine-tunes ``base_model``.

    Returns:
        Where the model is and how training went.
    """
    import pandas as pd
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoderModelCardData,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import EarlyStoppingCallback

    from reranker_tasks.batching import padding_share, pair_lengths
    from reranker_tasks.hardware import resolve_compute
    from reranker_tasks.training_data import (
        DEV_FILE,
        MINED_FILE,
        dev_samples,
        mine_negatives,
        resolve_pos_weight,
        split_dev,
    )

    if config.init_from == "champion" and init_model is None:
        raise ConfigError("init_from: 'champion' needs the production model, and none was given to the train step")
    final_dir = out_dir / MODEL_DIR
    inputs_key = _inputs_key(train_path, config, init_model)
    if (final_dir / MANIFEST_FILE).exists():
        manifest = read_json(final_dir / MANIFEST_FILE)
        if manifest.get("inputs_key") == inputs_key:
            log.info("reusing the complete model trained earlier in this run: %s", final_dir)
            # model_dir as it is now: an earlier try may have written it on another worker's scratch folder
            return TrainResult(**{**manifest["result"], "model_dir": str(final_dir), "reused": True})
        shutil.rmtree(final_dir)  # trained from other inputs: stale
    elif final_dir.exists():
        shutil.rmtree(final_dir)  # cannot happen with the rename below; never trust it either

    frame = pd.read_parquet(train_path, columns=["query", "document", "label"])
    out_dir.mkdir(parents=True, exist_ok=True)
    labeled, dev = split_dev(frame, config.dev_fraction, config.seed, config.relevance_threshold)
    samples = dev_samples(dev, config.relevance_threshold)
    dev.to_parquet(out_dir / DEV_FILE, index=False)
    mining = None
    mined = labeled.iloc[0:0]
    if config.hard_negatives:
        mined, report = mine_negatives(
            labeled, _load_embedder(config.mining_model, token), config.mining_model,
            config.hard_negatives_per_query, config.hard_negatives_margin, config.relevance_threshold,
        )
        mining = report.to_dict()
        mined.to_parquet(out_dir / MINED_FILE, index=False)
    pairs = pd.concat([labeled[["query", "document", "label"]], mined[["query", "document", "label"]]],
                      ignore_index=True)
    pos_weight = resolve_pos_weight(config.pos_weight, pairs["label"])
    dataset = Dataset.from_pandas(pairs.astype({"label": "float32"}), preserve_index=False)
    base = resolve_base_model(config.base_model)
    card_data = CrossEncoderModelCardData(
        model_id=model_id,
        train_datasets=[{"name": data_name}],
        local_files_only=True,
        generate_widget_examples=False,
    )
    if init_model is not None:
        # Warm start: the production model's weights, head included; the card still names the original base.
        model = load_cross_encoder(init_model.path, config.max_length, config.seed, model_card_data=card_data,
                                   attention_dropout=config.attention_dropout)
    else:
        model = load_cross_encoder(
            base.load_path, config.max_length, config.seed,
            revision=config.base_model_revision or None, token=token, model_card_data=card_data,
            attention_dropout=config.attention_dropout,
        )
    if base.hub_id:
        model.model_card_data.base_model = base.hub_id
    if config.freeze_embeddings:
        frozen = freeze_word_embeddings(model)
        log.info("word embeddings frozen: %d of %d weights not trained", frozen,
                 sum(p.numel() for p in model.parameters()))
    compute = resolve_compute(config.precision)
    # One tokenizer pass over all pairs: the lengths drive the length-grouped batches (reranker_tasks.batching).
    lengths = pair_lengths(model.tokenizer, pairs["query"].tolist(), pairs["document"].tolist(), config.max_length)
    padding = padding_share(lengths, config.batch_size, config.seed)

    steps_per_epoch = math.ceil(len(dataset) / config.batch_size)
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    select = bool(samples)
    # HF keeps a best model only at a save and wants saves on the evaluation grid, so while selecting every
    # evaluation is a checkpoint: the auto cadence (twice per epoch) tightens to checkpoint_steps when that is less.
    eval_steps = config.eval_steps or min(max(1, math.ceil(steps_per_epoch / 2)), config.checkpoint_steps or 1 << 30)
    callbacks = [ProgressLogCallback()]
    evaluator = None
    if select:
        evaluator = _autocast_evaluator(CrossEncoderRerankingEvaluator, compute)(
            samples=samples, at_k=10, name="dev", batch_size=64, show_progress_bar=False,
        )
        if config.patience:
            callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.patience))
    elif config.model_selection:
        log.warning("model selection off for this run: too few rankable dev queries; training for %s epochs",
                    config.epochs)
    for stale in out_dir.glob(".model.tmp-*"):  # left by a killed try: its finally never ran
        shutil.rmtree(stale, ignore_errors=True)
    checkpoints_dir = out_dir / CHECKPOINTS_DIR
    if checkpoint_mirror is not None:
        checkpoint_mirror.pull(checkpoints_dir)
    resume = prepare_checkpoints(checkpoints_dir, inputs_key)
    if config.checkpoint_steps:
        write_json_atomic(checkpoints_dir / CHECKPOINT_INPUTS_FILE, {"inputs_key": inputs_key})
        if checkpoint_mirror is not None:
            checkpoint_mirror.push_file(checkpoints_dir / CHECKPOINT_INPUTS_FILE)
    work_dir = Path(tempfile.mkdtemp(dir=out_dir, prefix=".model.tmp-"))
    try:
        args = CrossEncoderTrainingArguments(
            output_dir=str(checkpoints_dir),
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.learning_rate,
            warmup_steps=config.warmup_ratio,  # transformers 5: a float in [0, 1) is a ratio
            seed=config.seed,
            data_seed=config.seed,
            eval_strategy="steps" if select else "no",
            eval_steps=eval_steps,
            # Model selection: every evaluation saves a checkpoint, so the best one can be loaded at the end (HF
            # records the best only at a save). Without checkpoint_steps those saves hold only the weights.
            save_strategy="steps" if (config.checkpoint_steps or select) else "no",
            save_steps=eval_steps if select else (config.checkpoint_steps or 500),  # HF rejects 0
            save_only_model=select and not config.checkpoint_steps,
            save_total_limit=CHECKPOINT_KEEP,  # HF keeps the best checkpoint beyond this limit
            load_best_model_at_end=select,
            metric_for_best_model=f"eval_{DEV_METRIC}" if select else None,
            greater_is_better=True,
            logging_strategy="steps",
            logging_steps=max(1, total_steps // 20),
            report_to="none",
            disable_tqdm=True,
            # bf16 autocast (weights and optimizer stay fp32); on CPU HF wants use_cpu for it.
            bf16=compute.bf16,
            use_cpu=compute.device == "cpu",
        )
        trainer = _length_grouped_trainer(CrossEncoderTrainer, lengths)(
            model=model,
            args=args,
            train_dataset=dataset,
            evaluator=evaluator,
            loss=BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(pos_weight)),
            callbacks=[*callbacks, CheckpointMarkerCallback(checkpoints_dir, inputs_key, checkpoint_mirror, select)],
        )
        _drop_printer_callback(trainer)
        log.info(
            "training %s%s on %d pairs (%d labeled, %d mined negatives): up to %s epochs, batch %d, lr %g, "
            "max_length %d, pos_weight %.3g, seed %d (%d steps, checkpoint every %s); %s %s (%s), %d threads, "
            "length-grouped batches (padding %.0f%% vs %.0f%% in random batches)",
            base.name, f" from champion {init_model.commit[:12]}" if init_model else "", len(dataset), len(labeled),
            len(mined), config.epochs, config.batch_size, config.learning_rate, config.max_length, pos_weight,
            config.seed, total_steps, (eval_steps if select else config.checkpoint_steps) or "never",
            compute.device, compute.precision, compute.reason, compute.threads,
            100 * padding["grouped"], 100 * padding["random"],
        )
        if select:
            log.info(
                "model selection: %d dev queries (%d pairs), %s every %d steps, %s",
                len(samples), len(dev), DEV_METRIC, eval_steps,
                f"stop after {config.patience} evaluations without gain" if config.patience else "no early stop",
            )
        if resume is not None:
            log.info("resuming from checkpoint %s (step %d of %d)", resume.path, resume.step, resume.max_steps)
        output = trainer.train(resume_from_checkpoint=str(resume.path) if resume else None)
        curve = training_curve(trainer.state.log_history)
        chosen_step, best = _chosen(trainer.state, curve) if select else (None, None)
        stopped_early = select and int(output.global_step) < int(trainer.state.max_steps)
        if select:
            log.info(
                "chose step %s of %d (dev %s %.4f)%s", chosen_step, output.global_step, DEV_METRIC, best or 0.0,
                f"; stopped early: {config.patience} evaluations without gain" if stopped_early else "",
            )
        _scrub_card_of_training_rows(model)
        staged = work_dir / MODEL_DIR
        model.save_pretrained(str(staged))
        result = TrainResult(
            model_dir=str(final_dir),
            train_rows=len(dataset),
            global_step=int(output.global_step),
            train_loss=_whole_run_loss(trainer.state.log_history, resume, output),
            runtime_s=round(float(output.metrics.get("train_runtime", 0.0)), 2),
            reused=False,
            labeled_pairs=len(labeled),
            dev_queries=len(samples),
            dev_pairs=len(dev) if select else 0,
            mined_pairs=len(mined),
            mining=mining,
            pos_weight=round(pos_weight, 6),
            init_from=config.init_from,
            init_commit=init_model.commit if init_model else None,
            curve=curve,
            chosen_step=chosen_step,
            best_dev_ndcg=best,
            stopped_early=stopped_early,
            max_steps=int(trainer.state.max_steps),
            compute=compute.to_dict(),
            padding=padding,
        )
        write_json_atomic(out_dir / CURVE_FILE, {"chosen_step": chosen_step, "evaluations": curve})
        write_json_atomic(
            staged / MANIFEST_FILE,
            {
                "inputs_key": inputs_key,
                "base_model": asdict(base),
                "config": asdict(config),
                "files": {p.name: _sha256(p) for p in sorted(staged.iterdir()) if p.is_file()},
                "result": {k: v for k, v in result.to_dict().items() if k != "reused"},
                "resumed_from_step": resume.step if resume else None,
            },
        )
        os.replace(staged, final_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    # The model is complete and a retry reuses it: the checkpoints (optimizer state: twice the model) can go.
    # The mirrored copies stay until the caller has the model safely in the store (CheckpointMirror.clear).
    shutil.rmtree(checkpoints_dir, ignore_errors=True)
    log.info("saved model to %s (train loss %.4f, %d steps)", final_dir, result.train_loss, result.global_step)
    return result


def freeze_word_embeddings(model: Any) -> int:
    """Stop training the model's word-embedding matrix; returns how many weights that keeps as loaded.

    The Trainer's optimizer only takes parameters that require grad, so the matrix gets neither a gradient nor
    AdamW state; it is still saved with the model.
    """
    weight = model.model.get_input_embeddings().weight
    weight.requires_grad_(False)
    return weight.numel()


def download_init_model(repo_id: str, commit: str | None, dest: Path, token: str | None) -> InitModel:
    """Download the production model a warm start continues from, at the commit preflight pinned.

    Raises:
        ConfigError: no commit was pinned (preflight found no champion, or ran without ``init_from: champion``).
    """
    from huggingface_hub import snapshot_download

    if not commit:
        raise ConfigError(f"init_from: 'champion' but preflight pinned no champion commit of {repo_id}")
    path = snapshot_download(
        repo_id, revision=commit, local_dir=str(dest), token=token, allow_patterns=list(MODEL_FILE_ALLOWLIST),
    )
    log.info("warm start: continuing from the champion %s@%s", repo_id, commit[:12])
    return InitModel(path=str(path), commit=commit)


def training_curve(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """The dev evaluations of a training, in step order (one entry per step; a resumed run's are restored)."""
    by_step: dict[int, dict[str, float]] = {}
    for entry in log_history:
        if f"eval_{DEV_METRIC}" not in entry:
            continue
        step = int(entry["step"])
        by_step[step] = {
            "step": step,
            "epoch": round(float(entry.get("epoch") or 0.0), 4),
            **{name: round(float(entry[f"eval_dev_{name}"]), 6) for name in _CURVE_METRICS
               if f"eval_dev_{name}" in entry},
        }
    return [by_step[step] for step in sorted(by_step)]


def _chosen(state: Any, curve: list[dict[str, float]]) -> tuple[int | None, float | None]:
    """The step HF loaded at the end (its best checkpoint) and its dev NDCG@10."""
    checkpoint = state.best_model_checkpoint
    step = checkpoint_step(Path(checkpoint).name) if checkpoint else None
    if step is None:
        return None, None
    scores = {int(entry["step"]): entry.get("ndcg@10") for entry in curve}
    best = scores.get(step, state.best_metric)
    return step, None if best is None else round(float(best), 6)


def _load_embedder(name: str, token: str | None) -> Any:
    """The bi-encoder that mines hard negatives (a SentenceTransformer; mean-pooled when it is a bare encoder)."""
    from sentence_transformers import SentenceTransformer

    ref = resolve_base_model(name)
    try:
        return SentenceTransformer(ref.load_path, device="cpu", token=token, trust_remote_code=False)
    except OSError as exc:
        raise ConfigError(f"mining_model: cannot load {name!r} as a SentenceTransformer: {exc}") from exc


def _whole_run_loss(log_history: list[dict[str, Any]], resume: Checkpoint | None, output: Any) -> float:
    """The mean training loss over all steps, also when this try resumed part-way.

    HF reports the mean over the steps of *this* ``train()`` call only. The steps before the checkpoint are in
    the restored log history: :class:`CheckpointMarkerCallback` makes HF log at every save, so the logged
    interval means up to the checkpoint cover exactly steps 1..N.
    """
    if resume is None:
        return float(output.training_loss)
    before, last = 0.0, 0
    for entry in log_history:
        step = int(entry.get("step", 0))
        if "loss" in entry and step <= resume.step:
            before += float(entry["loss"]) * (step - last)
            last = step
    total = int(output.global_step)
    after = float(output.training_loss) * (total - resume.step)
    return (before + after) / max(total, 1)


def _length_grouped_trainer(trainer_cls: type, lengths: list[int]) -> type:
    """``trainer_cls`` whose training batches are length-grouped (reranker_tasks.batching).

    Done by overriding ``get_batch_sampler`` rather than passing ``batch_sampler=`` in the arguments: the
    arguments are pickled into every checkpoint and rendered into the model card, and the lengths do not
    belong in either.
    """
    from reranker_tasks.batching import make_length_grouped_sampler

    sampler_cls = make_length_grouped_sampler(lengths)

    class LengthGroupedTrainer(trainer_cls):  # type: ignore[misc, valid-type]
        def get_batch_sampler(self, dataset: Any, batch_size: int, drop_last: bool,
                              valid_label_columns: Any = None, generator: Any = None, seed: int = 0) -> Any:
            if dataset is not self.train_dataset or len(dataset) != len(lengths):
                return super().get_batch_sampler(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
            return sampler_cls(dataset, batch_size=batch_size, drop_last=drop_last,
                               valid_label_columns=valid_label_columns, generator=generator, seed=seed)

    return LengthGroupedTrainer


def _autocast_evaluator(evaluator_cls: type, compute: Any) -> type:
    """``evaluator_cls`` that scores the dev split under the step's precision (the trainer does not autocast it)."""
    from reranker_tasks.hardware import autocast

    class AutocastEvaluator(evaluator_cls):  # type: ignore[misc, valid-type]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with autocast(compute):
                return super().__call__(*args, **kwargs)

    return AutocastEvaluator


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


def _inputs_key(train_path: Path, config: TrainConfig, init_model: InitModel | None = None) -> str:
    """What the trained weights depend on: the train split's bytes, every config field that shapes training, and
    the champion commit a warm start continues from."""
    fields = {k: v for k, v in asdict(config).items() if k not in _NOT_IN_INPUTS_KEY}
    if init_model is not None:
        fields["init_commit"] = init_model.commit
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode())
    digest.update(_sha256(train_path).encode())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
