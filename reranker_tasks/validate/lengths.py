"""Token lengths of (query, document) pairs: the seeded sample, the tokenizer, and the ``long_documents`` statistic.

The sample is drawn on the loading thread; :func:`_token_lengths` runs on a helper thread while GX runs (the Rust
tokenizer releases the GIL). A tokenizer that cannot be loaded or fails falls back to a whitespace-word estimate.
"""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reranker_tasks.config import ValidateConfig
from reranker_tasks.schema import format_refs
from reranker_tasks.validate.schema import CHECK_LONG_DOCUMENTS, ROWS_IN_MESSAGE, ROWS_IN_REPORT, _RowRefs
from reranker_tasks.validate.statistics import _pct, _Statistic

# The package's logger, as when this was one module: log settings and filters that name it keep working.
log = logging.getLogger("reranker_tasks.validate")

#: Long-document check: at most this many pairs are tokenised, drawn with this seed.
LONG_SAMPLE_ROWS = 20_000
LONG_SAMPLE_SEED = 0
#: Texts are cut at this many characters per ``max_length`` token before tokenising (a 20,000-word document costs
#: as much as a 2,000-character one); a cut text keeps far more than ``max_length`` tokens unless it is a few
#: giant "words" (each one [UNK] token).
CHARS_PER_TOKEN_CAP = 32
#: How long to wait for the tokenizer thread before falling back to the whitespace estimate.
TOKENIZER_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class _LengthSample:
    """The pairs whose token length is measured: frame positions, texts (cut), and how many pairs there were."""

    positions: np.ndarray
    queries: list[str]
    documents: list[str]
    population: int


def _length_sample(frame: pd.DataFrame, config: ValidateConfig) -> _LengthSample | None:
    """Seeded random sample (at most 20,000) of the rows with both texts, texts cut at 32 characters per token."""
    if "query" not in frame.columns or "document" not in frame.columns or frame.empty:
        return None
    valid = np.flatnonzero((frame["query"].notna() & frame["document"].notna()).to_numpy())
    population = len(valid)
    if population == 0:
        return None
    if population > LONG_SAMPLE_ROWS:
        rng = np.random.default_rng(LONG_SAMPLE_SEED)
        valid = np.sort(rng.choice(valid, size=LONG_SAMPLE_ROWS, replace=False))
    cap = CHARS_PER_TOKEN_CAP * config.max_length
    queries = frame["query"].take(valid).astype("string").str.slice(0, cap).tolist()
    documents = frame["document"].take(valid).astype("string").str.slice(0, cap).tolist()
    return _LengthSample(valid, [str(q) for q in queries], [str(d) for d in documents], population)


def _long_statistic(
    frame: pd.DataFrame,
    refs: _RowRefs,
    sample: _LengthSample | None,
    lengths: Future[np.ndarray] | None,
    problem: str,
    config: ValidateConfig,
) -> tuple[_Statistic | None, list[str]]:
    """The ``long_documents`` statistic, from the tokenizer's lengths or the whitespace estimate."""
    if sample is None:
        return None, []
    measured: np.ndarray | None = None
    if lengths is not None:
        try:
            measured = lengths.result(timeout=TOKENIZER_TIMEOUT_S)
        except FutureTimeout:
            problem = f"no result within {TOKENIZER_TIMEOUT_S:.0f} s"
        except Exception as exc:  # noqa: BLE001 - its message may quote text: keep the type only
            problem = f"tokenising failed: {type(exc).__name__}"
    notes: list[str] = []
    if measured is None:
        notes.append(
            f"{CHECK_LONG_DOCUMENTS}: could not use the tokenizer of {config.base_model} ({problem}); "
            "token counts estimated from whitespace-separated words"
        )
        # Words are a lower bound of sub-word tokens; 3 special tokens as in [CLS] q [SEP] d [SEP].
        measured = np.array(
            [len(q.split()) + len(d.split()) + 3 for q, d in zip(sample.queries, sample.documents, strict=True)],
            dtype="int64",
        )
        how = "estimated from whitespace-separated words"
    else:
        how = f"with the tokenizer of {config.base_model}"
    long = measured > config.max_length
    fraction = float(long.mean()) if len(measured) else 0.0
    where = f"{int(long.sum())} of {len(measured)}"
    if len(measured) < sample.population:
        where += f" sampled at random from {sample.population}"
    shown = refs.refs(sample.positions[long], ROWS_IN_REPORT)
    stat = _Statistic(
        CHECK_LONG_DOCUMENTS,
        "long_fraction",
        fraction,
        max_value=config.max_long_fraction,
        fact=f"{_pct(fraction)} of pairs ({where}) are longer than max_length {config.max_length} tokens ({how})",
        limit_fail=f"more than max_long_fraction {_pct(config.max_long_fraction)}",
        detail=f"e.g. source rows {format_refs(shown[:ROWS_IN_MESSAGE])}" if shown else "",
        source_rows=shown,
    )
    log.info("long documents: %s", stat.message())
    return stat, notes


def _tokenizer_or_problem(base_model: str) -> tuple[Any, str]:
    """The base model's tokenizer, or ``None`` and why not (exception type: the message may name a path)."""
    try:
        return _load_tokenizer(base_model), ""
    except Exception as exc:  # noqa: BLE001 - any failure (not installed, offline, no tokenizer) → estimate
        return None, type(exc).__name__


@functools.lru_cache(maxsize=4)
def _load_tokenizer(base_model: str) -> Any:
    """``AutoTokenizer.from_pretrained(resolve_base_model(base_model).load_path)``, cached per process.

    A fast tokenizer's backend is set to neither truncate nor pad (``tokenizer.json`` may ask for both; the
    transformers call resets them per call, :func:`_token_lengths` calls the backend directly).
    """
    from reranker_tasks.modelio import resolve_base_model

    path = resolve_base_model(base_model).load_path
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    backend = _backend(tokenizer)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    return tokenizer


def _backend(tokenizer: Any) -> Any:
    """The Rust ``tokenizers.Tokenizer`` of a fast tokenizer (``None`` for a slow one)."""
    return getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None


def _token_lengths(tokenizer: Any, queries: list[str], documents: list[str]) -> np.ndarray:
    """Length of each tokenised pair, special tokens included, without truncation.

    A fast tokenizer's backend encodes the batch in Rust without the GIL and without building the Python lists of
    ids that the transformers call returns (a third of its cost, all of it holding the GIL).
    """
    backend = _backend(tokenizer)
    if backend is not None:
        encode = getattr(backend, "encode_batch_fast", None) or backend.encode_batch
        encodings = encode(list(zip(queries, documents, strict=True)), add_special_tokens=True)
        return np.fromiter((len(e) for e in encodings), dtype="int64", count=len(queries))
    encoded = tokenizer(
        queries,
        documents,
        add_special_tokens=True,
        truncation=False,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )["input_ids"]
    return np.fromiter((len(ids) for ids in encoded), dtype="int64", count=len(queries))
