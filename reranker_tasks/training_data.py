"""What the train step trains on: the dev split for model selection, mined hard negatives, the class weight.

These are the parts of the recipe that decide whether a model learns (issue 10 measured the seed card's recipe:
a model that barely moved from the label prior). They are plain functions on DataFrames so the benchmark
(``bench/quality.py``) and the tests exercise exactly what the DAG runs.

* **Dev split** (:func:`split_dev`): a seeded share of the *training* queries, grouped by normalised query like the
  train/eval split, is held out to choose the checkpoint and to stop early. The eval split is never touched: the
  gate's numbers stay an unbiased estimate of the chosen model. Only queries with a relevant and a non-relevant
  document can be ranked, so only those are drawn.
* **Hard negatives** (:func:`mine_negatives`): for each training query, documents *of the training data* that an
  embedding model (a bi-encoder; offline the packaged all-MiniLM-L6-v2) ranks close to the query, become extra
  label-0 pairs. Labeled data usually brings few negatives per query and mostly easy ones; the mined ones are the
  confusable documents a reranker exists to push down. Guards against false negatives: a document labeled for the
  query (relevant or not) is never mined for it, nor a document whose similarity is within ``margin`` (relative)
  of the query's most similar positive, nor a document identical to a positive. Dev and eval documents are not in
  the corpus, so neither side leaks into training. Mined pairs stay in the run's artifacts
  (``train/mined_negatives.parquet``) and are counted in the card; they are never published.
* **Class weight** (:func:`resolve_pos_weight`): ``BinaryCrossEntropyLoss(pos_weight=negatives/positives)`` so a
  1:4 (or, with mined negatives, 1:7) label ratio is not learned as "say no": the loss of the few positives
  counts as much as that of the many negatives. Labels may be graded, so the counts are label sums.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from reranker_tasks import layout
from reranker_tasks.errors import DataError
from reranker_tasks.schema import normalise_queries

log = logging.getLogger(__name__)

#: Fewer rankable dev queries than this and the dev metric is noise: model selection is switched off for the run
#: (it trains for ``epochs`` and says so in the log and the card) rather than choosing on a coin toss.
MIN_DEV_QUERIES = 5
MINED_FILE = layout.MINED_NEGATIVES_FILE
DEV_FILE = layout.DEV_FILE


@dataclass(frozen=True)
class MiningReport:
    """What hard-negative mining added (for the task log, the train result and the card)."""

    model: str
    queries: int
    mined_pairs: int
    skipped_labeled: int
    per_query: int
    margin: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_dev(frame: pd.DataFrame, dev_fraction: float, seed: int, relevance_threshold: float) -> tuple[
    pd.DataFrame, pd.DataFrame
]:
    """Hold out ``dev_fraction`` of the rankable training queries (seeded, by normalised query).

    Returns:
        ``(train, dev)``; ``dev`` is empty when the fraction is 0 or fewer than :data:`MIN_DEV_QUERIES` queries
        could be drawn (then ``train`` is the whole frame).
    """
    if dev_fraction <= 0:
        return frame, frame.iloc[0:0]
    keys = normalise_queries(frame["query"])
    relevant = frame["label"] >= relevance_threshold
    stats = pd.DataFrame({"key": keys, "relevant": relevant}).groupby("key")["relevant"].agg(["sum", "count"])
    rankable = sorted(stats.index[(stats["sum"] > 0) & (stats["sum"] < stats["count"])])
    n_queries = int(stats.shape[0])
    n_dev = min(len(rankable), round(n_queries * dev_fraction))
    if n_dev < MIN_DEV_QUERIES or n_queries - n_dev < 1:
        log.info(
            "model selection off: %d rankable training queries give %d dev queries (at least %d needed)",
            len(rankable), n_dev, MIN_DEV_QUERIES,
        )
        return frame, frame.iloc[0:0]
    # Salted differently from the train/eval split, so dev is not "the next queries in the eval order".
    ranked = sorted(rankable, key=lambda q: hashlib.sha256(f"dev\x1f{seed}\x1f{q}".encode()).hexdigest())
    dev_keys = set(ranked[:n_dev])
    is_dev = keys.isin(dev_keys).to_numpy()
    return frame[~is_dev].reset_index(drop=True), frame[is_dev].reset_index(drop=True)


def dev_samples(dev: pd.DataFrame, relevance_threshold: float) -> list[dict[str, Any]]:
    """``CrossEncoderRerankingEvaluator`` samples: each dev query with its relevant and non-relevant documents."""
    samples = []
    for _, group in dev.groupby(normalise_queries(dev["query"]), sort=True):
        relevant = group["label"] >= relevance_threshold
        samples.append(
            {
                "query": group["query"].iloc[0],
                "positive": group.loc[relevant, "document"].tolist(),
                "negative": group.loc[~relevant, "document"].tolist(),
            }
        )
    return [s for s in samples if s["positive"] and s["negative"]]


def mine_negatives(
    frame: pd.DataFrame,
    embedder: Any,
    model_name: str,
    per_query: int,
    margin: float,
    relevance_threshold: float,
    batch_size: int = 64,
) -> tuple[pd.DataFrame, MiningReport]:
    """Mine up to ``per_query`` label-0 pairs per training query from the training documents.

    Args:
        frame: the training pairs (``query``, ``document``, ``label``), dev queries already removed.
        embedder: a ``SentenceTransformer`` (bi-encoder) scoring query-document similarity.
        model_name: how the embedder is named in the report.
        per_query: negatives to mine per query with a positive.
        margin: relative margin: a candidate is kept only when its similarity is below
            ``positive - |positive| * margin`` for the query's most similar positive (false-negative guard).
        relevance_threshold: labels at or above it are positives.

    Returns:
        The mined pairs (``query``, ``document``, ``label`` = 0.0, ``mined_score``) and a report.
    """
    from datasets import Dataset
    from sentence_transformers.util import mine_hard_negatives

    empty = pd.DataFrame({"query": [], "document": [], "label": [], "mined_score": []})
    positives = frame.loc[frame["label"] >= relevance_threshold, ["query", "document"]].drop_duplicates()
    corpus = sorted(set(frame["document"]))
    # Mining needs somewhere to look: with fewer documents than positives+wanted negatives it finds nothing useful.
    if positives.empty or per_query <= 0 or len(corpus) < 2:
        return empty, MiningReport(model_name, 0, 0, 0, per_query, margin)
    # A query's candidates must leave room for its positives and already-labeled documents to be excluded.
    labeled_per_query = int(frame.groupby("query").size().max())
    range_max = min(len(corpus), labeled_per_query + 4 * per_query)
    if range_max <= per_query:
        return empty, MiningReport(model_name, 0, 0, 0, per_query, margin)
    mined = mine_hard_negatives(
        Dataset.from_pandas(positives.reset_index(drop=True), preserve_index=False),
        embedder,
        anchor_column_name="query",
        positive_column_name="document",
        corpus=corpus,
        range_max=range_max,
        relative_margin=margin,
        num_negatives=min(per_query + labeled_per_query, range_max),
        sampling_strategy="top",
        output_format="labeled-pair",
        output_scores=True,
        batch_size=batch_size,
        use_faiss=False,
        verbose=False,
    ).to_pandas()
    # With output_scores the "labeled-pair" format is (query, document, score): each anchor's positive row
    # followed by its candidates. Positives are labeled pairs, so the labeled-pair filter below drops them.
    mined = pd.DataFrame(
        {
            "query": mined["query"].to_numpy(),
            "document": mined["document"].to_numpy(),
            "mined_score": mined["score"].astype(float).to_numpy(),
        }
    )
    positive_keys = set(zip(normalise_queries(positives["query"]), positives["document"], strict=True))
    # Never contradict or duplicate a label: a document labeled for the query (either way) is not mined for it.
    labeled = set(zip(normalise_queries(frame["query"]), frame["document"], strict=True))
    keys = normalise_queries(mined["query"])
    is_labeled = pd.Series([(k, d) in labeled for k, d in zip(keys, mined["document"], strict=True)], dtype=bool)
    is_positive = [(k, d) in positive_keys for k, d in zip(keys, mined["document"], strict=True)]
    skipped = int(is_labeled.sum()) - int(sum(is_positive))
    mined = mined[~is_labeled.to_numpy()].copy()
    mined["key"] = normalise_queries(mined["query"])
    mined = mined.drop_duplicates(["key", "document"])
    # "top" order is kept by mine_hard_negatives: the hardest first, so head() keeps the hardest per query.
    mined = mined.groupby("key", sort=False).head(per_query).drop(columns="key").reset_index(drop=True)
    mined.insert(2, "label", 0.0)
    report = MiningReport(
        model=model_name,
        queries=int(normalise_queries(mined["query"]).nunique()) if len(mined) else 0,
        mined_pairs=len(mined),
        skipped_labeled=skipped,
        per_query=per_query,
        margin=margin,
    )
    log.info(
        "hard negatives: mined %d pairs for %d queries with %s (up to %d per query, relative margin %.2f; "
        "%d candidates already labeled for their query skipped)",
        report.mined_pairs, report.queries, model_name, per_query, margin, skipped,
    )
    return mined, report


def resolve_pos_weight(setting: str | float, labels: pd.Series) -> float:
    """The positive-class weight of ``BinaryCrossEntropyLoss``: ``auto`` = negatives / positives (label sums).

    Raises:
        DataError: ``auto`` on training data without any positive label.
    """
    if setting != "auto":
        return float(setting)
    positive = float(labels.sum())
    negative = float((1.0 - labels).sum())
    if positive <= 0:
        raise DataError("pos_weight: 'auto' needs at least one positive training label; the training split has none")
    return negative / positive if negative > 0 else 1.0
