"""End to end with a real (tiny) sentence-transformers CrossEncoder: push, tag, load by tag, push_to_hub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, RepoFile

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "cat", "dog", "sat", "on", "mat", "ran", "in",
    "park", "is", "what", "where", "who", "how", "big", "small", "red", "blue", "bird", "fish", "tree", "house",
    "runs", "?", ".",
]  # fmt: skip
PAIRS = [("where is the cat", "the cat sat on the mat"), ("what is red", "a blue bird"), ("who ran", "the dog ran")]


class HubFixture(Protocol):
    """What the session fixture ``local_hub`` (tests/conftest.py) provides."""

    endpoint: str
    token: str
    root: Path


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> CrossEncoder:
    """A randomly initialised 1-layer BERT cross-encoder with a WordPiece tokenizer built from ``VOCAB``."""
    import torch
    import transformers
    from sentence_transformers import CrossEncoder
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForSequenceClassification

    vocab = {token: index for index, token in enumerate(VOCAB)}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = transformers.BertTokenizerFast(  # type: ignore[attr-defined]  # a lazy alias in transformers 5
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    config.num_labels = 1
    base = tmp_path_factory.mktemp("tiny-bert")
    BertForSequenceClassification(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    model: CrossEncoder = CrossEncoder(str(base), device="cpu")
    return model


def test_push_tag_and_load_cross_encoder_by_tag(
    tiny_cross_encoder: CrossEncoder, local_hub: HubFixture, tmp_path: Path
) -> None:
    from sentence_transformers import CrossEncoder

    api = HfApi(token=local_hub.token)
    repo_id = api.create_repo("tiny-reranker", exist_ok=True).repo_id
    saved = tmp_path / "saved"
    tiny_cross_encoder.save_pretrained(str(saved))
    files = sorted(p for p in saved.rglob("*") if p.is_file())
    operations = [CommitOperationAdd(path_in_repo=p.relative_to(saved).as_posix(), path_or_fileobj=p) for p in files]
    pushed = api.create_commit(repo_id, operations, commit_message="train run 1")
    api.create_tag(repo_id, tag="champion", revision=pushed.oid)
    api.create_commit(repo_id, [CommitOperationAdd("later.txt", b"moves main on")], commit_message="later")

    weights = next(f for f in api.list_repo_tree(repo_id, revision="champion") if f.path == "model.safetensors")
    assert isinstance(weights, RepoFile) and weights.lfs is not None  # binary weights took the LFS path
    loaded = CrossEncoder(repo_id, revision="champion", device="cpu", token=local_hub.token)
    np.testing.assert_allclose(loaded.predict(PAIRS), tiny_cross_encoder.predict(PAIRS), rtol=0, atol=1e-6)


def test_cross_encoder_push_to_hub(tiny_cross_encoder: CrossEncoder, local_hub: HubFixture) -> None:
    api = HfApi(token=local_hub.token)
    url = tiny_cross_encoder.push_to_hub("pushed-reranker", token=local_hub.token, exist_ok=True)
    assert "/local/pushed-reranker/commit/" in url
    files = set(api.list_repo_files("local/pushed-reranker"))
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= files
    commits = api.list_repo_commits("local/pushed-reranker")
    assert [c.title for c in commits] == ["Add new CrossEncoder model", "initial commit"]

    again = tiny_cross_encoder.push_to_hub("pushed-reranker", token=local_hub.token, exist_ok=True)
    assert again.rsplit("/", 1)[-1] == commits[0].commit_id  # identical files: the client makes no new commit
