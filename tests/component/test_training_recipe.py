"""Component tests of the training recipe (issue 10): dev-split model selection, mined negatives, class weight,
warm start. Tiny BERT, real CrossEncoderTrainer, real mine_hard_negatives (the packaged MiniLM as the bi-encoder: a random tiny BERT rates all texts alike)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reranker_tasks.config import TrainConfig
from reranker_tasks.errors import ConfigError
from reranker_tasks.split import normalise_queries
from reranker_tasks.train import CURVE_FILE, InitModel, load_cross_encoder, train_reranker
from reranker_tasks.training_data import DEV_FILE, MINED_FILE
from tests.support import TINY_TRAINING, build_tiny_bert, learnable_pairs


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    root = tmp_path_factory.mktemp("recipe")
    frame = learnable_pairs()
    train_path = root / "train.parquet"
    frame.to_parquet(train_path, index=False)
    base = build_tiny_bert(root / "tiny", frame["query"].tolist() + frame["document"].tolist())
    config = TrainConfig(
        base_model=str(base), **{**TINY_TRAINING, "epochs": 4.0}, patience=2,
        hard_negatives_per_query=2,
    )
    trained = train_reranker(train_path, root / "train", config)
    return {"root": root, "frame": frame, "train_path": train_path, "base": base, "config": config,
            "trained": trained}


def test_dev_split_is_held_out_training_queries_and_the_best_step_is_kept(recipe) -> None:
    trained, frame = recipe["trained"], recipe["frame"]
    dev = pd.read_parquet(recipe["root"] / "train" / DEV_FILE)
    assert trained.dev_queries == dev["query"].nunique() == round(frame["query"].nunique() * 0.2)
    assert trained.labeled_pairs + len(dev) == len(frame)  # dev pairs are not trained on
    curve = trained.curve
    assert curve and [e["step"] for e in curve] == sorted(e["step"] for e in curve)
    best = max(curve, key=lambda e: e["ndcg@10"])
    assert trained.best_dev_ndcg == max(e["ndcg@10"] for e in curve)
    assert trained.chosen_step == min(e["step"] for e in curve if e["ndcg@10"] == best["ndcg@10"])
    on_disk = json.loads((recipe["root"] / "train" / CURVE_FILE).read_text())
    assert on_disk == {"chosen_step": trained.chosen_step, "evaluations": curve}


def test_early_stopping_ends_after_patience_evaluations_without_gain(recipe) -> None:
    trained = recipe["trained"]
    evaluated_after_best = [e for e in trained.curve if e["step"] > trained.chosen_step]
    if trained.stopped_early:
        assert len(evaluated_after_best) == recipe["config"].patience
        assert trained.global_step < trained.max_steps
    else:  # the dev metric kept improving to the ceiling
        assert trained.global_step == trained.max_steps
        assert len(evaluated_after_best) < recipe["config"].patience


def test_mined_negatives_are_label_0_new_pairs_of_training_documents(recipe) -> None:
    trained, frame = recipe["trained"], recipe["frame"]
    mined = pd.read_parquet(recipe["root"] / "train" / MINED_FILE)
    dev = pd.read_parquet(recipe["root"] / "train" / DEV_FILE)
    assert trained.mined_pairs == len(mined) > 0
    assert (mined["label"] == 0).all()
    assert mined.groupby("query").size().max() <= 2
    labeled = set(zip(normalise_queries(frame["query"]), frame["document"], strict=True))
    assert not any((k, d) in labeled for k, d in zip(normalise_queries(mined["query"]), mined["document"],
                                                      strict=True))
    dev_docs_only = set(dev["document"]) - set(frame.loc[~frame["query"].isin(dev["query"]), "document"])
    assert not set(mined["document"]) & dev_docs_only  # the corpus is the training documents only
    assert not set(mined["query"]) & set(dev["query"])
    assert trained.train_rows == trained.labeled_pairs + trained.mined_pairs
    assert trained.mining["mined_pairs"] == len(mined)


def test_auto_pos_weight_is_negatives_over_positives_of_what_was_trained(recipe) -> None:
    trained = recipe["trained"]
    dev = pd.read_parquet(recipe["root"] / "train" / DEV_FILE)
    kept = recipe["frame"][~recipe["frame"]["query"].isin(dev["query"])]
    positives = float(kept["label"].sum())
    negatives = float((1 - kept["label"]).sum()) + trained.mined_pairs
    assert trained.pos_weight == pytest.approx(negatives / positives, rel=1e-5)


def test_the_seed_recipe_still_trains_without_selection_or_mining(recipe, tmp_path: Path) -> None:
    config = TrainConfig(base_model=str(recipe["base"]), **{**TINY_TRAINING, "epochs": 1.0}, dev_fraction=0.0,
                         hard_negatives=False, pos_weight=1.0)
    trained = train_reranker(recipe["train_path"], tmp_path / "train", config)
    assert trained.curve == [] and trained.chosen_step is None and trained.mined_pairs == 0
    assert trained.pos_weight == 1.0 and trained.global_step == trained.max_steps
    assert not (tmp_path / "train" / MINED_FILE).exists()


def test_warm_start_continues_from_the_given_model_and_keys_on_its_commit(recipe, tmp_path: Path) -> None:
    config = TrainConfig(base_model=str(recipe["base"]), **{**TINY_TRAINING, "epochs": 0.5}, dev_fraction=0.0,
                         hard_negatives=False, init_from="champion")
    with pytest.raises(ConfigError, match="init_from"):
        train_reranker(recipe["train_path"], tmp_path / "none", config)
    champion = InitModel(path=str(Path(recipe["trained"].model_dir)), commit="a" * 40)
    warm = train_reranker(recipe["train_path"], tmp_path / "warm", config, init_model=champion)
    assert warm.init_from == "champion" and warm.init_commit == "a" * 40
    again = train_reranker(recipe["train_path"], tmp_path / "warm", config, init_model=champion)
    assert again.reused
    other = train_reranker(recipe["train_path"], tmp_path / "warm", config,
                           init_model=InitModel(champion.path, "b" * 40))
    assert not other.reused  # another champion commit is another training


def test_warm_start_begins_where_the_champion_is_not_at_the_base(recipe) -> None:
    # The champion scores the learnable pairs apart already; a fresh base head does not.
    frame = recipe["frame"].head(50)
    pairs = list(zip(frame["query"], frame["document"], strict=True))
    champion = load_cross_encoder(recipe["trained"].model_dir, 64, 0).predict(pairs)
    base = load_cross_encoder(str(recipe["base"]), 64, 0).predict(pairs)
    relevant = frame["label"].to_numpy() >= 0.5
    assert champion[relevant].mean() - champion[~relevant].mean() > base[relevant].mean() - base[~relevant].mean()
