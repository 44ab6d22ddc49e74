"""Artifact layout of a run: ``<root>/<run>/<step>/``.

Every step writes only below its own folder, so a retried task overwrites nothing of another step's.
The root comes from ``RERANKER_ARTIFACTS_ROOT`` (a deployment setting, not a run parameter) and
defaults to ``./artifacts`` in the project folder; it may also be an fsspec URI, see ``reranker_tasks.storage``
(the DAG reaches artifacts through that module; ``RunPaths`` is the plain local layout).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ARTIFACTS_ENV = "RERANKER_ARTIFACTS_ROOT"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def artifacts_root() -> Path | str:
    """The configured artifacts root (``RERANKER_ARTIFACTS_ROOT``, else ``<project>/artifacts``).

    A local folder as a resolved Path; a URI (``s3://…``, ``file:///…``) as the string, for fsspec
    (``reranker_tasks.storage`` explains the two modes).
    """
    configured = os.environ.get(ARTIFACTS_ENV, "").strip()
    if "://" in configured:
        return configured.rstrip("/")
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parents[1] / "artifacts"


def safe_run_name(run_id: str) -> str:
    """A run id as a folder name: Airflow run ids hold ``:`` and ``+`` (``manual__2026-11-23T10:00:00+00:00``)."""
    name = _UNSAFE.sub("_", run_id).strip("._")
    if not name:
        raise ValueError(f"run id {run_id!r} gives an empty folder name")
    return name


@dataclass(frozen=True)
class RunPaths:
    """Folders of one run's artifacts."""

    run_dir: Path

    @classmethod
    def for_run(cls, run_id: str, root: Path | None = None) -> RunPaths:
        return cls((root or artifacts_root()) / safe_run_name(run_id))

    def step(self, name: str) -> Path:
        """The folder of one step, created on first use."""
        path = self.run_dir / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def json_safe(value: Any) -> Any:
    """Plain strict-JSON values, recursively: numpy scalars become Python numbers, NaN and infinities None,
    sets and tuples lists, mapping keys strings, anything else its ``str``."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write strict JSON (NaN → null) through a temp file and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(json_safe(payload), handle, indent=2, sort_keys=True, default=str, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)
