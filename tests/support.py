"""Test helpers: a tiny BERT built on the fly, and labeled pairs a tiny model can learn.

The tiny model has a WordPiece vocabulary fitted to the words it will see, 2 layers, 32 wide: training
and evaluating it takes seconds on 2 CPUs, and it is a real ``BertForSequenceClassification`` under a
real ``CrossEncoder``. Nothing is downloaded.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import Any
from pathlib import Path

import pandas as pd

TOPICS = (
    "password", "invoice", "webhook", "calendar", "export", "import", "avatar", "billing", "sso", "token",
    "backup", "archive", "label", "comment", "mention", "reminder", "template", "dashboard", "report", "audit",
    "mobile", "desktop", "printer", "language", "timezone", "currency", "storage", "upload", "download", "search",
)
_PHRASINGS = ("how to fix {t}", "{t} settings help", "where is {t} option", "change my {t}")
_DOC = "open the {t} page and follow the {t} steps"
_NEGATIVE_DOC = "{t} release notes from last year"


def learnable_pairs(topics: Iterable[str] = TOPICS, negatives: int = 4, seed: int = 0) -> pd.DataFrame:
    """Queries phrased several ways per topic; the relevant document is a how-to page of that topic.

    Negatives are release notes of other topics: a tiny model learns within a few hundred steps what
    separates them, so the pipeline's mechanics (gate, push, reload) can be tested on a model that
    really ranks better than its untuned start, in seconds.
    """
    rng = random.Random(seed)
    topics = list(topics)
    rows = []
    for topic in topics:
        others = [t for t in topics if t != topic]
        for phrasing in _PHRASINGS:
            query = phrasing.format(t=topic)
            rows.append((query, _DOC.format(t=topic), 1.0))
            for other in rng.sample(others, negatives):
                rows.append((query, _NEGATIVE_DOC.format(t=other), 0.0))
    return pd.DataFrame(rows, columns=["query", "document", "label"])


def build_tiny_bert(path: Path, texts: Iterable[str], seed: int = 0) -> Path:
    """Save a tiny, randomly initialised BERT (encoder + tokenizer) that CrossEncoder can load."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = sorted({w for text in texts for w in re.findall(r"\w+|[^\w\s]", text.lower())})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    tokenizer = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast = BertTokenizerFast(tokenizer_object=tokenizer, model_max_length=64)
    path.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(path)
    return path


def write_pairs(frame: pd.DataFrame, path: Path) -> Path:
    """Write pairs in the format the file extension names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(path)
    return path


TUTORIAL_PAIRS = pd.DataFrame(
    {
        "query": [
            "reset a user password", "reset a user password",
            "enable two-factor authentication", "enable two-factor authentication",
            "export audit logs", "export audit logs",
            "restore a deleted project", "restore a deleted project",
        ],
        "document": [
            "Open the user profile, choose Reset password, and send a recovery email.",
            "Open billing settings and update the saved credit card.",
            "Open account security, scan the authenticator QR code, and save backup codes.",
            "Open the release dashboard and deploy the web container.",
            "Open compliance reports, choose Audit logs, and export the CSV file.",
            "Open team settings and invite a new member by email.",
            "Open deleted projects, select the project, and click Restore.",
            "Open API tokens, revoke the old token, and create a replacement token.",
        ],
        "label": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
    }
)


def seed_untuned_champion(api: Any, repo_id: str, base: Path, folder: Path, tag: str, max_length: int = 64) -> str:
    """Put the untuned base model (its seeded head, as evaluate rebuilds it) on ``main`` as a weak champion.

    Every candidate the DAG trains from ``base`` beats it by far, so a ``min_gain`` near 1.0 makes the candidate
    sound and better, but not by enough: the gate's *needs approval*, deterministically. Returns the commit.
    """
    from reranker_tasks.train import load_cross_encoder

    load_cross_encoder(str(base), max_length, 42).save_pretrained(str(folder))
    api.create_repo(repo_id, exist_ok=True)
    commit = api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message="seed champion")
    api.create_tag(repo_id, tag=tag, revision=commit.oid)
    return str(commit.oid)


#: Training settings under which the tiny BERT learns ``learnable_pairs`` in seconds (NDCG@10 1.0 on its eval split).
TINY_TRAINING: dict[str, Any] = {
    "epochs": 3.0, "learning_rate": 3e-3, "batch_size": 16, "max_length": 64, "warmup_ratio": 0.05,
}


def tiny_run_inputs(folder: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The learnable pairs as a CSV plus a tiny BERT in ``folder``, and the run conf that trains on them fast.

    Shared by the dag.test, alert and deployment tests, so an outcome that differs between them points at the
    set-up, not the data. Callers add ``hub_repo_id``.
    """
    frame = learnable_pairs()
    source = write_pairs(frame, folder / "pairs.csv")
    base = build_tiny_bert(folder / "tiny-bert", frame["query"].tolist() + frame["document"].tolist())
    return frame, {"source_path": str(source), "base_model": str(base), **TINY_TRAINING, "min_eval_queries": 5}
