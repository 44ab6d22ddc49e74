"""Evaluate step: candidate vs untuned base vs champion, on the same eval queries.

Metrics come from sentence-transformers' ``CrossEncoderRerankingEvaluator`` (MAP, MRR@10, NDCG@10): each
eval query's labeled documents are reranked by the model.

* A query with no positive document is dropped and counted: the evaluator would score it 0 and drag every
  model down by the same arbitrary amount.
* A query with no negative document is dropped and counted too: any model ranks it perfectly, so it only
  inflates the numbers.

The champion is the head of the Hub repo's ``main`` branch (production). Its commit sha is recorded: the
publish step pushes with that sha as the parent, so a push that raced ours cannot be overwritten.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reranker_tasks.config import EvaluateConfig, TrainConfig
from reranker_tasks.paths import write_json_atomic
from reranker_tasks.split import normalise_query
from reranker_tasks.train import load_cross_encoder, resolve_base_model

log = logging.getLogger(__name__)

AT_K = 10
PRIMARY_METRIC = f"ndcg@{AT_K}"
METRICS_FILE = "metrics.json"
POSITIVE_THRESHOLD = 0.5


@dataclass(frozen=True)
class EvalSamples:
    samples: list[dict[str, Any]]
    dropped_no_positive: int
    dropped_no_negative: int


@dataclass(frozen=True)
class ChampionRef:
    """The Hub repo's ``main``: its head commit, and whether a model is there."""

    repo_exists: bool
    head_commit: str | None
    has_model: bool


@dataclass(frozen=True)
class EvaluateResult:
    eval_queries: int
    dropped_no_positive: int
    dropped_no_negative: int
    candidate: dict[str, float]
    base: dict[str, float]
    champion: dict[str, float] | None
    champion_commit: str | None
    hub_head_commit: str | None
    metrics_path: str
    primary_metric: str = PRIMARY_METRIC
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary_metric": self.primary_metric,
            "eval_queries": self.eval_queries,
            "dropped_no_positive": self.dropped_no_positive,
            "dropped_no_negative": self.dropped_no_negative,
            "candidate": self.candidate,
            "base": self.base,
            "champion": self.champion,
            "champion_commit": self.champion_commit,
            "hub_head_commit": self.hub_head_commit,
            "metrics_path": self.metrics_path,
            "notes": list(self.notes),
        }


def build_eval_samples(frame: pd.DataFrame, relevance_threshold: float = POSITIVE_THRESHOLD) -> EvalSamples:
    """Group eval pairs by normalised query into the evaluator's ``{query, positive, negative}`` samples.

    Graded labels are binarised: at or above ``relevance_threshold`` is relevant.
    """
    samples: list[dict[str, Any]] = []
    no_positive = no_negative = 0
    for _, group in frame.groupby(frame["query"].map(normalise_query), sort=True):
        is_positive = group["label"] >= relevance_threshold
        positives = group.loc[is_positive, "document"].tolist()
        negatives = group.loc[~is_positive, "document"].tolist()
        if not positives:
            no_positive += 1
            continue
        if not negatives:
            no_negative += 1
            continue
        samples.append({"query": group["query"].iloc[0], "positive": positives, "negative": negatives})
    return EvalSamples(samples, no_positive, no_negative)


def score_model(model: Any, samples: list[dict[str, Any]], batch_size: int, name: str) -> dict[str, float]:
    """MAP, MRR@10 and NDCG@10 of one model (NaN scores stay NaN: the gate must see them)."""
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    if not samples:
        return {"map": math.nan, f"mrr@{AT_K}": math.nan, PRIMARY_METRIC: math.nan}
    evaluator = CrossEncoderRerankingEvaluator(
        samples=samples, at_k=AT_K, name=name, batch_size=batch_size, write_csv=False, show_progress_bar=False
    )
    raw = evaluator(model)
    prefix = f"{name}_"
    return {key.removeprefix(prefix): float(value) for key, value in raw.items()}


def find_champion(repo_id: str, token: str | None) -> ChampionRef:
    """Look up the head of ``main`` on the Hub; a repo without model weights has no champion."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    api = HfApi(token=token)
    try:
        info = api.model_info(repo_id, revision="main", files_metadata=False)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return ChampionRef(repo_exists=False, head_commit=None, has_model=False)
    files = {s.rfilename for s in info.siblings or []}
    return ChampionRef(repo_exists=True, head_commit=info.sha, has_model="model.safetensors" in files)


def evaluate_models(
    eval_path: Path,
    candidate_dir: Path,
    out_dir: Path,
    train_config: TrainConfig,
    config: EvaluateConfig,
    hub_repo_id: str,
    token: str | None = None,
) -> EvaluateResult:
    """Score candidate, untuned base and champion on the eval split; write ``metrics.json``.

    Args:
        eval_path: Parquet of eval pairs.
        candidate_dir: the trained model folder.
        out_dir: the run's ``evaluate`` folder (the champion is downloaded below it).
        train_config: base model, max length and seed (the base is rebuilt exactly as training started).
        config: evaluation settings.
        hub_repo_id: the production repo; its ``main`` is the champion.
        token: Hub token for private repos.
    """
    from huggingface_hub import snapshot_download
    from sentence_transformers import CrossEncoder

    frame = pd.read_parquet(eval_path, columns=["query", "document", "label"])
    built = build_eval_samples(frame, config.relevance_threshold)
    notes: list[str] = []
    if built.dropped_no_positive:
        notes.append(f"{built.dropped_no_positive} eval queries without a positive document were dropped")
    if built.dropped_no_negative:
        notes.append(f"{built.dropped_no_negative} eval queries without a negative document were dropped")
    log.info("evaluating on %d eval queries (%s)", len(built.samples), "; ".join(notes) or "none dropped")

    candidate = CrossEncoder(str(candidate_dir), trust_remote_code=False)
    candidate_metrics = score_model(candidate, built.samples, config.eval_batch_size, "candidate")
    del candidate

    base_ref = resolve_base_model(train_config.base_model)
    base = load_cross_encoder(base_ref.load_path, train_config.max_length, train_config.seed, token=token)
    base_metrics = score_model(base, built.samples, config.eval_batch_size, "base")
    del base

    champion = find_champion(hub_repo_id, token)
    champion_metrics: dict[str, float] | None = None
    if champion.has_model and champion.head_commit:
        local = snapshot_download(
            hub_repo_id, revision=champion.head_commit, token=token, local_dir=out_dir / "champion"
        )
        champion_model = CrossEncoder(local, trust_remote_code=False)
        champion_metrics = score_model(champion_model, built.samples, config.eval_batch_size, "champion")
        del champion_model
    elif champion.repo_exists:
        notes.append(f"{hub_repo_id} exists but main holds no model yet: no champion")
    else:
        notes.append(f"{hub_repo_id} does not exist yet: no champion")

    out_dir.mkdir(parents=True, exist_ok=True)
    result = EvaluateResult(
        eval_queries=len(built.samples),
        dropped_no_positive=built.dropped_no_positive,
        dropped_no_negative=built.dropped_no_negative,
        candidate=candidate_metrics,
        base=base_metrics,
        champion=champion_metrics,
        champion_commit=champion.head_commit if champion_metrics is not None else None,
        hub_head_commit=champion.head_commit,
        metrics_path=str(out_dir / METRICS_FILE),
        notes=notes,
    )
    write_json_atomic(out_dir / METRICS_FILE, result.to_dict())
    for name, metrics in (("candidate", candidate_metrics), ("base", base_metrics), ("champion", champion_metrics)):
        if metrics is not None:
            log.info("%-9s %s", name, "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    return result
