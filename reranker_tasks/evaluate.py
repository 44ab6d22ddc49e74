"""Evaluate step: candidate vs untuned base vs champion, on the same eval queries and the same pairs.

Each model scores every eval pair once; all metrics come from those scores (:mod:`reranker_tasks.metrics`):

* ranking, per query and averaged: MAP, MRR@10, NDCG@10 (as sentence-transformers' reranking evaluator
  computes them) and Hit@1/3/10 (as the seed system reports them);
* pairwise, over all eval pairs: average precision, best F1 and its threshold (the classification evaluator's);
* per slice, when the data has a ``slice`` column: the ranking means over the slice's queries (a query's slice
  is the most common slice among its pairs).

Graded labels are binarised with ``relevance_threshold``. A query with no positive document is dropped and
counted (the evaluator would score it 0 and drag every model down by the same arbitrary amount); so is a query
with no negative (any model ranks it perfectly, so it only inflates the numbers).

Per-query scores go to ``per_query.parquet`` (the gate's bootstrap reads them); ``metrics.json`` and the XCom
carry the means. Sanity facts the gate checks ride along: are all weights finite, how spread and on what scale
are the scores, which activation does each model apply, and how many eval queries also occur in training.

The champion is the head of the Hub repo's ``main`` branch (production). Its commit sha is recorded: the
publish step pushes with that sha as the parent, so a push that raced ours cannot be overwritten.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker_tasks import layout
from reranker_tasks.config import EvaluateConfig, TrainConfig
from reranker_tasks.hardware import FP32, Compute, autocast, for_scoring, resolve_compute
from reranker_tasks.metrics import (
    AT_K,
    RANKING_KEYS,
    mean_metrics,
    pairwise_metrics,
    query_metrics,
    score_summary,
)
from reranker_tasks.modelio import load_cross_encoder, resolve_base_model
from reranker_tasks.paths import json_safe, write_json_atomic
from reranker_tasks.schema import normalise_queries, normalise_query

log = logging.getLogger(__name__)

PRIMARY_METRIC = f"ndcg@{AT_K}"
METRICS_FILE = layout.METRICS_FILE
PER_QUERY_FILE = layout.PER_QUERY_FILE
POSITIVE_THRESHOLD = 0.5
MODELS = ("candidate", "base", "champion")


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
class EvalQueries:
    """The eval pairs grouped into rankable queries (each with a positive and a negative)."""

    pairs: pd.DataFrame  # query, document, label, relevant (0/1), qkey, slice; all eval pairs
    queries: pd.DataFrame  # qkey, query, slice, rows (indices into pairs); rankable queries only
    dropped_no_positive: int
    dropped_no_negative: int


@dataclass(frozen=True)
class ModelScores:
    """One model's measurements on the eval set."""

    summary: dict[str, float]  # ranking means + pairwise metrics
    per_query: pd.DataFrame  # one row per rankable query, columns RANKING_KEYS
    sanity: dict[str, Any]
    slices: dict[str, dict[str, float]]


@dataclass(frozen=True)
class EvaluateResult:
    eval_queries: int
    eval_pairs: int
    dropped_no_positive: int
    dropped_no_negative: int
    candidate: dict[str, float]
    base: dict[str, float]
    champion: dict[str, float] | None
    champion_commit: str | None
    hub_head_commit: str | None
    sanity: dict[str, Any]
    slices: dict[str, Any]
    leaked_queries: int
    metrics_path: str
    per_query_path: str
    primary_metric: str = PRIMARY_METRIC
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "primary_metric": self.primary_metric,
                "eval_queries": self.eval_queries,
                "eval_pairs": self.eval_pairs,
                "dropped_no_positive": self.dropped_no_positive,
                "dropped_no_negative": self.dropped_no_negative,
                "candidate": self.candidate,
                "base": self.base,
                "champion": self.champion,
                "champion_commit": self.champion_commit,
                "hub_head_commit": self.hub_head_commit,
                "sanity": self.sanity,
                "slices": self.slices,
                "leaked_queries": self.leaked_queries,
                "metrics_path": self.metrics_path,
                "per_query_path": self.per_query_path,
                "notes": list(self.notes),
            }
        )


def build_eval_samples(frame: pd.DataFrame, relevance_threshold: float = POSITIVE_THRESHOLD) -> EvalSamples:
    """Group eval pairs into sentence-transformers' ``{query, positive, negative}`` reranking samples.

    Used to cross-check :func:`group_eval_queries` against ``CrossEncoderRerankingEvaluator`` itself.
    """
    grouped = group_eval_queries(frame, relevance_threshold)
    samples = []
    for _, row in grouped.queries.iterrows():
        rows = grouped.pairs.loc[row["rows"]]
        samples.append(
            {
                "query": row["query"],
                "positive": rows.loc[rows["relevant"] == 1, "document"].tolist(),
                "negative": rows.loc[rows["relevant"] == 0, "document"].tolist(),
            }
        )
    return EvalSamples(samples, grouped.dropped_no_positive, grouped.dropped_no_negative)


def group_eval_queries(frame: pd.DataFrame, relevance_threshold: float = POSITIVE_THRESHOLD) -> EvalQueries:
    """Binarise labels and group pairs by normalised query; count queries that cannot be ranked."""
    pairs = frame.reset_index(drop=True).copy()
    if "slice" not in pairs.columns:
        pairs["slice"] = None
    pairs["relevant"] = (pairs["label"] >= relevance_threshold).astype(int)
    pairs["qkey"] = normalise_queries(pairs["query"])
    records = []
    no_positive = no_negative = 0
    for qkey, group in pairs.groupby("qkey", sort=True):
        positives = int(group["relevant"].sum())
        if positives == 0:
            no_positive += 1
            continue
        if positives == len(group):
            no_negative += 1
            continue
        slices = [s for s in group["slice"].tolist() if isinstance(s, str) and s]
        records.append(
            {
                "qkey": qkey,
                "query": group["query"].iloc[0],
                "slice": Counter(slices).most_common(1)[0][0] if slices else None,
                "rows": group.index.to_numpy(),
            }
        )
    queries = pd.DataFrame.from_records(records, columns=["qkey", "query", "slice", "rows"])
    return EvalQueries(pairs, queries, no_positive, no_negative)


def score_pairs(model: Any, pairs: pd.DataFrame, batch_size: int, compute: Compute | None = None) -> np.ndarray:
    """The model's score for every eval pair, one batched ``predict`` (length-sorted batches, see below).

    ``CrossEncoder.predict`` sorts the pairs by length before batching and restores the order after, so
    padding is already minimal; ``compute`` adds bf16 autocast where the step resolved bf16.
    """
    if pairs.empty:
        return np.zeros(0)
    inputs = list(zip(pairs["query"].tolist(), pairs["document"].tolist(), strict=True))
    with autocast(compute or FP32):
        scores = model.predict(inputs, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(scores, dtype=float).reshape(-1)


def measure(model: Any, grouped: EvalQueries, batch_size: int, compute: Compute | None = None) -> ModelScores:
    """All metrics and sanity facts of one model on the grouped eval set."""
    scores = score_pairs(model, grouped.pairs, batch_size, compute)
    relevant = grouped.pairs["relevant"].to_numpy()
    per_query = pd.DataFrame.from_records(
        [query_metrics(relevant[rows], scores[rows], AT_K) for rows in grouped.queries["rows"]],
        columns=list(RANKING_KEYS),
    )
    summary = {**mean_metrics(per_query.to_dict("records")), **pairwise_metrics(relevant, scores)}
    # A near-constant scorer (the seed recipe's failure) shows here before it shows anywhere else.
    summary["score_std"] = float(np.std(scores)) if len(scores) else float("nan")
    slices: dict[str, dict[str, float]] = {}
    labelled = grouped.queries["slice"].notna()
    if labelled.any():
        for name, index in grouped.queries[labelled].groupby("slice").groups.items():
            slices[str(name)] = {
                "queries": len(index),
                **mean_metrics(per_query.loc[index].to_dict("records")),
            }
    sanity = {
        "weights_finite": weights_finite(model),
        "activation": activation_name(model),
        "scores": score_summary(scores),
    }
    return ModelScores(summary, per_query, sanity, slices)


def weights_finite(model: Any) -> bool:
    """True when no parameter of the model holds NaN or infinity (a diverged run can still score "fine")."""
    import torch

    with torch.no_grad():
        return all(bool(torch.isfinite(p).all()) for p in model.model.parameters())


def activation_name(model: Any) -> str:
    """The activation the CrossEncoder applies to its logit (Sigmoid: scores in [0, 1]; Identity: logits)."""
    activation = getattr(model, "activation_fn", None)
    return type(activation).__name__ if activation is not None else "none"


def leaked_query_count(eval_queries: pd.Series, train_path: Path | None) -> int:
    """How many eval queries (normalised) also occur in the training split: evaluation on seen queries."""
    if train_path is None or not Path(train_path).exists():
        return 0
    train = pd.read_parquet(train_path, columns=["query"])
    seen = set(normalise_queries(train["query"]).unique())
    return int(sum(1 for q in eval_queries if normalise_query(q) in seen))


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
    return ChampionRef(repo_exists=True, head_commit=info.sha, has_model=layout.MODEL_WEIGHTS_FILE in files)


def evaluate_models(
    eval_path: Path,
    candidate_dir: Path,
    out_dir: Path,
    train_config: TrainConfig,
    config: EvaluateConfig,
    hub_repo_id: str,
    token: str | None = None,
    train_path: Path | None = None,
) -> EvaluateResult:
    """Score candidate, untuned base and champion on the eval set; write ``metrics.json`` and per-query scores.

    Args:
        eval_path: Parquet of eval pairs (``query``, ``document``, ``label``, optional ``slice``).
        candidate_dir: the trained model folder.
        out_dir: the run's ``evaluate`` folder (the champion is downloaded below it).
        train_config: base model, revision, max length and seed (the base is rebuilt exactly as training started).
        config: evaluation settings.
        hub_repo_id: the production repo; its ``main`` is the champion.
        token: Hub token for private repos.
        train_path: the training split, to count eval queries that leaked into training.
    """
    import pyarrow.parquet as pq
    from huggingface_hub import snapshot_download
    from sentence_transformers import CrossEncoder

    columns = ["query", "document", "label"]
    if "slice" in pq.read_schema(eval_path).names:
        columns.append("slice")
    grouped = group_eval_queries(pd.read_parquet(eval_path, columns=columns), config.relevance_threshold)
    notes: list[str] = []
    if grouped.dropped_no_positive:
        notes.append(f"{grouped.dropped_no_positive} eval queries without a positive document were dropped")
    if grouped.dropped_no_negative:
        notes.append(f"{grouped.dropped_no_negative} eval queries without a negative document were dropped")
    leaked = leaked_query_count(grouped.queries["query"], train_path)
    if leaked:
        notes.append(f"{leaked} eval queries also occur in the training split")
    log.info("evaluating on %d eval queries (%s)", len(grouped.queries), "; ".join(notes) or "none dropped")

    compute = resolve_compute(config.precision)
    log.info("scoring on %s in %s (%s), %d threads", compute.device, compute.precision, compute.reason, compute.threads)
    measured: dict[str, ModelScores] = {}
    # Every model here is scored and dropped, so its weights may go to bf16 (for_scoring; lossy, never saved).
    measured["candidate"] = measure(
        for_scoring(CrossEncoder(str(candidate_dir), trust_remote_code=False), compute), grouped,
        config.eval_batch_size, compute,
    )
    base_ref = resolve_base_model(train_config.base_model)
    base = load_cross_encoder(
        base_ref.load_path, train_config.max_length, train_config.seed,
        revision=train_config.base_model_revision or None, token=token,
    )
    measured["base"] = measure(for_scoring(base, compute), grouped, config.eval_batch_size, compute)
    del base

    champion = find_champion(hub_repo_id, token)
    if champion.has_model and champion.head_commit:
        local = snapshot_download(
            hub_repo_id, revision=champion.head_commit, token=token, local_dir=out_dir / layout.CHAMPION_DIR
        )
        measured["champion"] = measure(
            for_scoring(CrossEncoder(local, trust_remote_code=False), compute), grouped, config.eval_batch_size,
            compute,
        )
    elif champion.repo_exists:
        notes.append(f"{hub_repo_id} exists but main holds no model yet: no champion")
    else:
        notes.append(f"{hub_repo_id} does not exist yet: no champion")

    out_dir.mkdir(parents=True, exist_ok=True)
    per_query = grouped.queries[["query", "slice"]].copy()
    for name, scores in measured.items():
        for key in RANKING_KEYS:
            per_query[f"{name}:{key}"] = scores.per_query[key].to_numpy()
    per_query_path = out_dir / PER_QUERY_FILE
    tmp = per_query_path.with_suffix(".tmp")
    per_query.to_parquet(tmp, index=False)
    tmp.replace(per_query_path)

    slice_names = sorted({s for m in measured.values() for s in m.slices})
    slices = {
        s: {name: m.slices.get(s) for name, m in measured.items()} for s in slice_names
    }
    has_champion = "champion" in measured
    result = EvaluateResult(
        eval_queries=len(grouped.queries),
        eval_pairs=len(grouped.pairs),
        dropped_no_positive=grouped.dropped_no_positive,
        dropped_no_negative=grouped.dropped_no_negative,
        candidate=measured["candidate"].summary,
        base=measured["base"].summary,
        champion=measured["champion"].summary if has_champion else None,
        champion_commit=champion.head_commit if has_champion else None,
        hub_head_commit=champion.head_commit,
        sanity={name: m.sanity for name, m in measured.items()},
        slices=slices,
        leaked_queries=leaked,
        metrics_path=str(out_dir / METRICS_FILE),
        per_query_path=str(per_query_path),
        notes=notes,
    )
    write_json_atomic(out_dir / METRICS_FILE, result.to_dict())
    for name, m in measured.items():
        log.info("%-9s %s", name, "  ".join(f"{k} {v:.4f}" for k, v in m.summary.items() if k in RANKING_KEYS))
    return result


def load_per_query(path: str | Path, model: str, metric: str = PRIMARY_METRIC) -> np.ndarray:
    """One model's per-query values of one metric, in eval-query order (the gate's bootstrap input)."""
    column = f"{model}:{metric}"
    frame = pd.read_parquet(path, columns=[column])
    return frame[column].to_numpy(dtype=float)


