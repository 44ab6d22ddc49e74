"""Component tests: train → evaluate → gate → card → publish on a tiny BERT, against the loopback Hub."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reranker_tasks.config import EvaluateConfig, GateConfig, SplitConfig, TrainConfig
from reranker_tasks.errors import ConfigError, PublishConflict
from reranker_tasks.evaluate import build_eval_samples, evaluate_models
from reranker_tasks.gate import decide_promotion
from reranker_tasks.model_card import CardLeak, write_model_card
from reranker_tasks.publish import publish_model
from reranker_tasks.split import split_pairs
from reranker_tasks.train import MANIFEST_FILE, train_reranker
from tests.support import TINY_TRAINING, build_tiny_bert, learnable_pairs

FAST = TINY_TRAINING


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Data, split and one trained tiny model, shared by the module (training is the slow part)."""
    root = tmp_path_factory.mktemp("steps")
    frame = learnable_pairs()
    frame["source_row"] = range(1, len(frame) + 1)
    snapshot = root / "pairs.parquet"
    frame.to_parquet(snapshot, index=False)
    base = build_tiny_bert(root / "tiny", frame["query"].tolist() + frame["document"].tolist())
    splits = split_pairs(snapshot, root / "split", SplitConfig())
    config = TrainConfig(base_model=str(base), **FAST)
    trained = train_reranker(Path(splits.train_path), root / "train", config, model_id="local/steps")
    return {"root": root, "frame": frame, "base": base, "splits": splits, "config": config, "trained": trained}


def test_training_saves_a_complete_model_atomically(workspace) -> None:
    model_dir = Path(workspace["trained"].model_dir)
    manifest = json.loads((model_dir / MANIFEST_FILE).read_text())
    assert "model.safetensors" in manifest["files"]
    assert not list(model_dir.parent.glob(".model.tmp-*")), "no temporary folder is left behind"
    assert not any(p.suffix in (".bin", ".pt") for p in model_dir.iterdir())
    assert workspace["trained"].global_step > 0 and workspace["trained"].train_loss > 0


def test_retried_training_reuses_the_complete_model(workspace) -> None:
    again = train_reranker(
        Path(workspace["splits"].train_path), workspace["root"] / "train", workspace["config"], model_id="local/steps"
    )
    assert again.reused and again.model_dir == workspace["trained"].model_dir


def test_same_seed_gives_the_same_model(workspace, tmp_path) -> None:
    from sentence_transformers import CrossEncoder

    short = TrainConfig(base_model=str(workspace["base"]), **{**FAST, "epochs": 0.5})
    first = train_reranker(Path(workspace["splits"].train_path), tmp_path / "a", short)
    second = train_reranker(Path(workspace["splits"].train_path), tmp_path / "b", short)
    pairs = [["how to fix invoice", "open the invoice page and follow the invoice steps"]]
    assert CrossEncoder(first.model_dir).predict(pairs)[0] == pytest.approx(
        CrossEncoder(second.model_dir).predict(pairs)[0], abs=1e-6
    )


def test_generated_card_quotes_no_training_rows(workspace) -> None:
    card = (Path(workspace["trained"].model_dir) / "README.md").read_text()
    assert "BinaryCrossEntropyLoss" in card and "Training Dataset" in card
    assert "* Samples:" not in card
    for text in set(workspace["frame"]["query"]) | set(workspace["frame"]["document"]):
        assert text not in card


def test_eval_samples_drop_and_count_queries_without_a_positive_or_negative() -> None:
    frame = pd.DataFrame(
        {
            "query": ["a", "a", "b", "b", "c", "c"],
            "document": ["d1", "d2", "d3", "d4", "d5", "d6"],
            "label": [1.0, 0.0, 0.0, 0.0, 1.0, 1.0],
        }
    )
    built = build_eval_samples(frame)
    assert [s["query"] for s in built.samples] == ["a"]
    assert (built.dropped_no_positive, built.dropped_no_negative) == (1, 1)


def test_evaluate_gate_card_and_publish_against_the_hub(workspace, local_hub) -> None:
    from huggingface_hub import HfApi

    repo = "local/component-steps"
    root = workspace["root"]
    metrics = evaluate_models(
        Path(workspace["splits"].eval_path), Path(workspace["trained"].model_dir), root / "evaluate",
        workspace["config"], EvaluateConfig(), repo, token=local_hub.token,
    ).to_dict()
    assert metrics["champion"] is None and metrics["hub_head_commit"] is None
    assert metrics["candidate"]["ndcg@10"] > metrics["base"]["ndcg@10"]

    decision = decide_promotion(metrics, GateConfig(min_eval_queries=5)).to_dict()
    assert decision["promote"], decision["reasons"]
    card = write_model_card(
        Path(workspace["trained"].model_dir), root / "model_card", metrics=metrics, decision=decision,
        validation={"success": True, "rows": 600, "queries": 120, "positives": 120, "negatives": 480,
                    "evaluated_expectations": 11},
        lineage={"data_fingerprint": "f" * 64, "run_id": "manual__test", "dag_id": "reranker_retrain",
                 "config": {"epochs": 3.0}},
        data_paths=(Path(workspace["splits"].train_path), Path(workspace["splits"].eval_path)),
    )
    staged = set(card.files)
    assert "README.md" in staged and "model.safetensors" in staged and MANIFEST_FILE not in staged
    text = Path(card.readme_path).read_text()
    assert "| **NDCG@10** (gate metric) |" in text and "model-index" in text

    with pytest.raises(ConfigError, match="no Hub token"):
        publish_model(Path(card.staging_dir), root / "publish", repo_id=repo, token=None, parent_commit=None,
                      fingerprint="f" * 64, run_id="manual__test", metrics=metrics)

    first = publish_model(Path(card.staging_dir), root / "publish", repo_id=repo, token=local_hub.token,
                          parent_commit=None, fingerprint="f" * 64, run_id="manual__test", metrics=metrics)
    assert first.tag.startswith("run-") and first.tag.endswith("-ffffffff")
    api = HfApi(token=local_hub.token)
    # A retry of the same run finds its own commit instead of pushing a duplicate.
    retry = publish_model(Path(card.staging_dir), root / "publish", repo_id=repo, token=local_hub.token,
                          parent_commit=None, fingerprint="f" * 64, run_id="manual__test", metrics=metrics)
    assert retry.reused and retry.commit_sha == first.commit_sha and retry.tag == first.tag
    commits = list(api.list_repo_commits(repo))
    assert len(commits) == 2  # the repo's initial commit + ours

    # Another run (its own card) that evaluated against an older head must not overwrite main.
    import shutil

    other = shutil.copytree(card.staging_dir, root / "other-staging")
    (other / "README.md").write_text((other / "README.md").read_text() + "\nanother run\n")
    with pytest.raises(PublishConflict, match="moved since the champion was evaluated"):
        publish_model(other, root / "publish2", repo_id=repo, token=local_hub.token,
                      parent_commit=commits[-1].commit_id, fingerprint="e" * 64, run_id="manual__other",
                      metrics=metrics)
    assert len(list(api.list_repo_commits(repo))) == 2


def test_card_step_refuses_a_card_that_quotes_the_data(workspace, tmp_path) -> None:
    import shutil

    model_dir = tmp_path / "model"
    shutil.copytree(workspace["trained"].model_dir, model_dir)
    leaked = workspace["frame"]["document"].iloc[0]
    readme = model_dir / "README.md"
    readme.write_text(readme.read_text() + f"\n\nExample: {leaked}\n")
    metrics = {"primary_metric": "ndcg@10", "eval_queries": 1, "candidate": {"ndcg@10": 1.0},
               "base": {"ndcg@10": 0.5}, "champion": None, "champion_commit": None}
    with pytest.raises(CardLeak):
        write_model_card(model_dir, tmp_path / "card", metrics=metrics, decision={"promote": True, "checks": []},
                         validation={}, lineage={}, data_paths=(Path(workspace["splits"].train_path),))


# --------------------------------------------------------------------------- degraded candidates never promote


def _gate_on(workspace, candidate_dir: Path, out: Path, eval_path: Path | None = None) -> dict:
    """Evaluate a candidate for real (tiny BERT base, no champion repo) and run the gate on it."""
    from reranker_tasks.evaluate import load_per_query

    metrics = evaluate_models(
        eval_path or Path(workspace["splits"].eval_path), candidate_dir, out, workspace["config"], EvaluateConfig(),
        "local/degraded-never-pushed", train_path=Path(workspace["splits"].train_path),
    ).to_dict()
    per_query = {name: load_per_query(metrics["per_query_path"], name) for name in ("candidate", "base")}
    decision = decide_promotion(metrics, GateConfig(min_eval_queries=5), per_query)
    return {"metrics": metrics, "decision": decision}


def _edited_copy(workspace, tmp_path: Path, edit) -> Path:
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(workspace["trained"].model_dir)
    edit(model)
    out = tmp_path / "edited"
    model.save_pretrained(str(out))
    return out


def test_healthy_candidate_is_promoted_as_first_model(workspace, tmp_path) -> None:
    """The control: the same path that rejects the degraded candidates below promotes the real one."""
    result = _gate_on(workspace, Path(workspace["trained"].model_dir), tmp_path / "evaluate")
    assert result["decision"].outcome == "promote", result["decision"].reasons
    assert result["metrics"]["sanity"]["candidate"]["weights_finite"] is True
    assert result["metrics"]["candidate"]["hit@10"] == pytest.approx(1.0)
    assert set(result["metrics"]["candidate"]) >= {"map", "mrr@10", "ndcg@10", "hit@1", "hit@3", "hit@10",
                                                   "average_precision", "f1", "f1_threshold"}


def test_nan_weights_are_rejected(workspace, tmp_path) -> None:
    import torch

    def poison(model) -> None:
        with torch.no_grad():
            next(model.model.parameters()).view(-1)[0] = float("nan")

    result = _gate_on(workspace, _edited_copy(workspace, tmp_path, poison), tmp_path / "evaluate")
    decision = result["decision"]
    assert decision.outcome == "reject"
    failed = {c["rule"] for c in decision.checks if not c["passed"]}
    assert "weights_finite" in failed


def test_constant_scorer_is_rejected(workspace, tmp_path) -> None:
    import torch

    def flatten(model) -> None:
        with torch.no_grad():
            for name, param in model.model.named_parameters():
                if name.startswith("classifier"):
                    param.zero_()

    result = _gate_on(workspace, _edited_copy(workspace, tmp_path, flatten), tmp_path / "evaluate")
    assert result["metrics"]["sanity"]["candidate"]["scores"]["std"] == pytest.approx(0.0, abs=1e-7)
    assert result["decision"].outcome == "reject"
    assert "scores_vary" in {c["rule"] for c in result["decision"].checks if not c["passed"]}


def test_model_trained_on_flipped_labels_is_rejected(workspace, tmp_path) -> None:
    train = pd.read_parquet(workspace["splits"].train_path)
    train["label"] = 1.0 - train["label"]
    flipped_path = tmp_path / "flipped.parquet"
    train.to_parquet(flipped_path, index=False)
    flipped = train_reranker(flipped_path, tmp_path / "train", workspace["config"], model_id="local/flipped")
    result = _gate_on(workspace, Path(flipped.model_dir), tmp_path / "evaluate")
    assert result["decision"].outcome == "reject"
    failed = {c["rule"] for c in result["decision"].checks if not c["passed"]}
    assert {"beats_base", "min_ndcg"} & failed, result["decision"].reasons


def test_empty_eval_set_is_rejected(workspace, tmp_path) -> None:
    frame = pd.read_parquet(workspace["splits"].eval_path)
    only_positives = frame[frame["label"] >= 0.5]
    eval_path = tmp_path / "eval.parquet"
    only_positives.to_parquet(eval_path, index=False)
    result = _gate_on(workspace, Path(workspace["trained"].model_dir), tmp_path / "evaluate", eval_path)
    assert result["metrics"]["eval_queries"] == 0
    assert result["decision"].outcome == "reject"
    failed = {c["rule"] for c in result["decision"].checks if not c["passed"]}
    assert {"finite", "min_eval_queries"} <= failed


def test_candidate_evaluated_on_training_queries_is_rejected(workspace, tmp_path) -> None:
    """Evaluating on the training split scores well — and is exactly what the gate must not believe."""
    train_path = Path(workspace["splits"].train_path)
    result = _gate_on(workspace, Path(workspace["trained"].model_dir), tmp_path / "evaluate", train_path)
    assert result["metrics"]["leaked_queries"] == result["metrics"]["eval_queries"] > 0
    assert result["decision"].outcome == "reject"
    assert "no_leakage" in {c["rule"] for c in result["decision"].checks if not c["passed"]}


def test_per_query_means_match_sentence_transformers_evaluator(workspace) -> None:
    """Our per-query metrics average to exactly what CrossEncoderRerankingEvaluator reports."""
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator

    from reranker_tasks.evaluate import group_eval_queries, measure

    frame = pd.read_parquet(workspace["splits"].eval_path)
    model = CrossEncoder(workspace["trained"].model_dir)
    ours = measure(model, group_eval_queries(frame), 32).summary
    theirs = CrossEncoderRerankingEvaluator(
        samples=build_eval_samples(frame).samples, at_k=10, write_csv=False, show_progress_bar=False
    )(model)
    for key in ("map", "mrr@10", "ndcg@10"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-6)


def test_publish_can_create_the_repo_private(tmp_path, local_hub) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"weights")
    (staging / "README.md").write_text("# private reranker\n")
    repo = "local/private-reranker"
    publish_model(staging, tmp_path / "publish", repo_id=repo, token=local_hub.token, parent_commit=None,
                  fingerprint="a" * 64, run_id="manual__private", metrics=_commit_metrics(), private=True)
    assert HfApi(token=local_hub.token).model_info(repo).private is True
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info(repo)


def _commit_metrics() -> dict:
    values = {"map": 0.9, "mrr@10": 0.9, "ndcg@10": 0.9}
    return {"primary_metric": "ndcg@10", "eval_queries": 12, "candidate": values, "base": values, "champion": None}


def test_attention_dropout_reaches_the_trained_model_and_the_speed_facts_are_recorded(workspace, tmp_path) -> None:
    base_config = json.loads((Path(workspace["base"]) / "config.json").read_text())
    assert base_config["attention_probs_dropout_prob"] == pytest.approx(0.1)
    # The default (0: the fused attention kernel) overrides the base model's 0.1 ...
    default_config = json.loads((Path(workspace["trained"].model_dir) / "config.json").read_text())
    assert default_config["attention_probs_dropout_prob"] == 0.0
    # ... and an explicit value is applied as given.
    kept = TrainConfig(base_model=str(workspace["base"]), **{**FAST, "epochs": 0.5, "attention_dropout": 0.2})
    result = train_reranker(Path(workspace["splits"].train_path), tmp_path / "kept", kept)
    assert json.loads((Path(result.model_dir) / "config.json").read_text())["attention_probs_dropout_prob"] == 0.2
    assert result.compute is not None and result.compute["precision"] in ("fp32", "bf16")
    assert result.compute["threads"] >= 1
    assert result.padding is not None and 0.0 <= result.padding["grouped"] <= result.padding["random"]


def test_out_of_range_attention_dropout_fails_at_config_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="attention_dropout"):
        TrainConfig(attention_dropout=1.0)


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return {key.removeprefix("bert."): value for key, value in load_file(str(model_dir / "model.safetensors")).items()}


def test_frozen_word_embeddings_stay_as_loaded_and_the_rest_still_trains(workspace, tmp_path) -> None:
    base = _weights(Path(workspace["base"]))
    word, layer = "embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight"
    # The default trains every weight ...
    default = _weights(Path(workspace["trained"].model_dir))
    assert not default[word].equal(base[word]) and not default[layer].equal(base[layer])
    # ... freeze_embeddings keeps the word-embedding matrix bit for bit, saved with the model, and trains the rest.
    frozen_config = TrainConfig(base_model=str(workspace["base"]), **{**FAST, "epochs": 0.5, "freeze_embeddings": True})
    result = train_reranker(Path(workspace["splits"].train_path), tmp_path / "frozen", frozen_config)
    frozen = _weights(Path(result.model_dir))
    assert frozen[word].equal(base[word])
    assert not frozen[layer].equal(base[layer])
    assert not frozen["embeddings.position_embeddings.weight"].equal(base["embeddings.position_embeddings.weight"])
    manifest = json.loads((Path(result.model_dir) / MANIFEST_FILE).read_text())
    assert manifest["config"]["freeze_embeddings"] is True
