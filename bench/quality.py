"""Benchmark: the seed card's training recipe vs the pipeline's defaults, on held-out queries (issue 10).

Both recipes run side by side in one process, same base model, same split, same seed, through
:func:`reranker_tasks.train.train_reranker` (what the DAG's train step runs), and are scored on the same
held-out eval queries, which neither recipe sees (the new recipe's dev split is carved out of the training
queries). Reported per data set: MAP, MRR@10, NDCG@10 of each recipe, the paired-bootstrap CI of
(defaults - seed) per metric over the eval queries, the pooled pairwise AP and the score spread (a near-constant
scorer has learned the label prior, not a ranking), and training wall time.

Data sets:

* ``sample``: the bundled support pairs (90 queries x 5 documents), what ``make run`` trains on;
* ``agro``: the AGRO code-search triplets (``--agro``, default ``../shared/data/agro``; skipped when absent), the
  seed model card's training data;
* ``faq``: an answer-selection set built from the PyPI package ``zaragoza-construction-faq`` (CC-BY-4.0, 503
  English question/answer pairs in 39 categories, installable offline): each question's own answer is relevant,
  ``--faq-negatives`` answers of other questions are not, drawn first from the same category (hard: same topic),
  then from the rest, seeded.

Recipes:

* ``seed``: the seed card's hyperparameters (1 epoch, batch 16, lr 5e-5, no warmup) with none of the recipe's parts:
  no dev split / model selection, pos_weight 1, no mined negatives;
* ``defaults``: ``TrainConfig()`` as shipped.

Both use ``max_length`` ``--max-length`` (256 by default; the seed card trained AGRO at 512, which only makes
that run slower: both recipes get the same).

    .venv/bin/python bench/quality.py [--datasets sample,agro,faq] [--seed 42] [--out bench/results/quality.json]
        [--variant NAME=KEY:VALUE,...]   # extra recipes: the defaults with overrides, for tuning
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from seed_reproduction import evaluate_set, machine, predict  # noqa: E402  (shared scoring of the benches)

from reranker_tasks.config import ExtractConfig, SplitConfig, TrainConfig, load_run_config  # noqa: E402
from reranker_tasks.errors import ConfigError  # noqa: E402
from reranker_tasks.extract import extract_pairs  # noqa: E402
from reranker_tasks.metrics import paired_bootstrap  # noqa: E402
from reranker_tasks.split import split_pairs  # noqa: E402
from reranker_tasks.train import train_reranker  # noqa: E402

log = logging.getLogger("quality")

METRICS = ("map", "mrr@10", "ndcg@10")
BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
SAMPLE = ROOT / "reranker_tasks" / "data" / "support_pairs.csv"


def seed_recipe(max_length: int, seed: int) -> TrainConfig:
    return TrainConfig(
        epochs=1.0, learning_rate=5e-5, batch_size=16, warmup_ratio=0.0, max_length=max_length, seed=seed,
        dev_fraction=0.0, pos_weight=1.0, hard_negatives=False,
        attention_dropout=0.1,  # BERT's default, which the seed card's CrossEncoder trains with
        precision="fp32",
    )


def default_recipe(max_length: int, seed: int) -> TrainConfig:
    return replace(TrainConfig(), max_length=max_length, seed=seed)


# --------------------------------------------------------------------------------------------------- data


def faq_pairs(negatives: int, seed: int) -> pd.DataFrame:
    """Answer selection on the Zaragoza construction FAQ: own answer relevant, others (same category first) not."""
    import zaragoza_construction_faq

    path = Path(zaragoza_construction_faq.__file__).parent / "data" / "faq-en.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    by_category: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_category.setdefault(row["category"], []).append(index)
    pairs = []
    for index, row in enumerate(rows):
        same = [i for i in by_category[row["category"]] if i != index and rows[i]["a"] != row["a"]]
        rng.shuffle(same)
        chosen = same[:negatives]
        while len(chosen) < negatives:
            other = rng.randrange(len(rows))
            if other != index and other not in chosen and rows[other]["a"] != row["a"]:
                chosen.append(other)
        pairs.append({"query": row["q"], "document": row["a"], "label": 1.0})
        pairs += [{"query": row["q"], "document": rows[i]["a"], "label": 0.0} for i in chosen]
    return pd.DataFrame(pairs)


def load_dataset(name: str, work: Path, args: argparse.Namespace) -> Path | None:
    """The data set as a snapshot Parquet (via the extract step where it reads the format), or None if absent."""
    if name == "sample":
        config = ExtractConfig(source_path=str(SAMPLE))
    elif name == "agro":
        triplets = Path(args.agro) / "triplets.jsonl"
        if not triplets.is_file():
            log.warning("skipping agro: %s not found", triplets)
            return None
        config = ExtractConfig(source_path=str(triplets), source_format="triplets")
    elif name == "faq":
        source = work / "faq.csv"
        source.parent.mkdir(parents=True, exist_ok=True)
        faq_pairs(args.faq_negatives, args.seed).to_csv(source, index=False)
        config = ExtractConfig(source_path=str(source))
    else:
        raise SystemExit(f"unknown data set {name!r}")
    return Path(extract_pairs(config, work / "extract").snapshot_path)


# --------------------------------------------------------------------------------------------------- run


def run_dataset(name: str, work: Path, args: argparse.Namespace) -> dict[str, Any] | None:
    from sentence_transformers import CrossEncoder

    snapshot = load_dataset(name, work, args)
    if snapshot is None:
        return None
    split = split_pairs(snapshot, work / "split", SplitConfig(eval_fraction=args.eval_fraction, seed=args.seed))
    held_out = pd.read_parquet(split.eval_path)
    recipes = {"seed": seed_recipe(args.max_length, args.seed), "defaults": default_recipe(args.max_length, args.seed)}
    for variant, overrides in args.variant:
        recipes[variant] = replace(recipes["defaults"], **overrides)
    out: dict[str, Any] = {
        "train_pairs": split.train_pairs, "eval_pairs": split.eval_pairs, "eval_queries": split.eval_queries,
        "recipes": {},
    }
    tables = {}
    for recipe, config in recipes.items():
        start = time.perf_counter()
        trained = train_reranker(Path(split.train_path), work / f"train-{recipe}", config, data_name=name)
        seconds = time.perf_counter() - start
        scores = predict(CrossEncoder(trained.model_dir), held_out)
        result = evaluate_set(held_out, scores)
        tables[recipe] = result.pop("per_query")
        out["recipes"][recipe] = {
            **{k: result["mean"][k] for k in METRICS},
            "pairwise_ap": result["pairwise"]["average_precision"],
            "score_std": float(np.std(scores)),
            "queries": result["queries"],
            "train_s": round(seconds, 1),
            "steps": trained.global_step,
            "chosen_step": trained.chosen_step,
            "stopped_early": trained.stopped_early,
            "mined_pairs": trained.mined_pairs,
            "pos_weight": trained.pos_weight,
            "curve": [e["ndcg@10"] for e in trained.curve or []],
        }
        log.info("%s / %s: %s", name, recipe, {k: out["recipes"][recipe][k] for k in (*METRICS, "train_s")})
    old = tables["seed"].sort_index()
    out["delta"] = {}  # each recipe minus the seed recipe, paired over the same eval queries
    for recipe in recipes:
        if recipe == "seed":
            continue
        new = tables[recipe].sort_index()
        out["delta"][recipe] = {
            key: paired_bootstrap(new[key].to_numpy(), old[key].to_numpy(), samples=BOOTSTRAP_SAMPLES,
                                  confidence=CONFIDENCE, seed=args.seed)
            for key in METRICS
        }
    return out


def print_report(results: dict[str, Any], info: dict[str, Any]) -> None:
    print(f"\nmachine: {info['cpu']}, {info['cpus_usable']} usable cores, torch {info['torch']}, "
          f"load {info['load_average_1m_at_start']:.1f} at start")
    header = f"{'data':<7} {'recipe':<9} {'MAP':>6} {'MRR@10':>7} {'NDCG@10':>8} {'pairAP':>7} {'std':>6} " \
             f"{'train s':>8} {'steps':>6} {'kept':>5}"
    print(header)
    for name, res in results.items():
        for recipe, r in res["recipes"].items():
            print(f"{name:<7} {recipe:<9} {r['map']:6.3f} {r['mrr@10']:7.3f} {r['ndcg@10']:8.3f} "
                  f"{r['pairwise_ap']:7.3f} {r['score_std']:6.3f} {r['train_s']:8.1f} {r['steps']:6d} "
                  f"{str(r['chosen_step'] or '-'):>5}")
        for recipe, deltas in res["delta"].items():
            for key, boot in deltas.items():
                print(f"{'':<7} {recipe} - seed {key:<8} {boot['mean_delta']:+.3f} "
                      f"[{boot['ci_low']:+.3f}, {boot['ci_high']:+.3f}] p={boot['p_value']:.3f} "
                      f"({res['eval_queries']} eval queries)")


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``name=key:value,key:value`` -> (name, overrides of TrainConfig).

    Values are JSON (``1e-4``, ``false``, ``6``) or else plain strings (``init_from:champion``), and go through
    the DAG's own conf checks (:func:`load_run_config`): a wrong type or an out-of-range value is an error naming
    the key, never coerced.
    """
    name, _, body = text.partition("=")
    if not name or name in ("seed", "defaults"):
        raise argparse.ArgumentTypeError(f"variant needs a new name: {text!r}")
    overrides: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        key, _, raw = item.partition(":")
        try:
            overrides[key] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key] = raw
    unknown = sorted(set(overrides) - {f.name for f in fields(TrainConfig)})
    if unknown:
        raise argparse.ArgumentTypeError(f"variant {name!r}: {unknown} are not TrainConfig keys")
    try:
        train = load_run_config(overrides).train
    except ConfigError as error:
        raise argparse.ArgumentTypeError(f"variant {name!r}: {error}") from error
    return name, {key: getattr(train, key) for key in overrides}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="sample,agro,faq")
    parser.add_argument("--agro", default=str(ROOT.parent / "shared" / "data" / "agro"))
    parser.add_argument("--faq-negatives", type=int, default=4)
    parser.add_argument("--eval-fraction", type=float, default=0.2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "quality.json"))
    parser.add_argument(
        "--variant", action="append", type=parse_variant, default=[], metavar="NAME=KEY:VALUE,...",
        help="also train the defaults with these TrainConfig overrides (repeatable), e.g. hi_lr=learning_rate:1e-4",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "reranker_tasks.train"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    info = machine()
    results: dict[str, Any] = {}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        for name in args.datasets.split(","):
            res = run_dataset(name.strip(), Path(tmp) / name, args)
            if res is not None:
                results[name] = res
                # After every data set: a run of an hour or more killed half-way keeps what it measured.
                out.write_text(json.dumps({"machine": info, "args": vars(args), "results": results}, indent=2))
    print_report(results, info)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
