"""The artifact layout: where a run's artifacts live, and what each step's folder and files are called.

One place for the layout ``<root>/<run>/<step>/<file>``: the steps write the names defined here, and whoever reads
a run back (``scripts/run_dag.py``, the monitoring plugin, the alerts) looks them up here instead of spelling them.

* step folders: :data:`STEPS` (``PREFLIGHT_STEP`` … ``ROLLBACK_STEP``); each step writes only below its own;
* file and folder names inside a step folder (``METRICS_FILE``, ``DATA_DOCS_DIR`` …);
* run-relative paths, ``"<step>/<file>"`` (``METRICS``, ``GATE_DECISION``, ``DATA_DOCS_INDEX_PAGE`` …), for
  :meth:`reranker_tasks.storage.ArtifactStore.read_json` / ``uri`` and for :func:`in_run`;
* the location: :func:`open_store` turns a local path, an fsspec URI or a path object (``ObjectStoragePath``,
  ``UPath``) into the :class:`~reranker_tasks.storage.ArtifactStore`; a URI naming an Airflow connection
  (``s3://aws_default@bucket/x``) needs the caller's ``resolve_connection`` (``reranker_airflow.context`` has it).

Standard library only (the plugin imports it in every task process): no Airflow, no numpy, fsspec only when a URI
is opened.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from reranker_tasks.errors import PermanentError

# -- path rules ---------------------------------------------------------------------------------------------------


class ArtifactPathError(PermanentError, ValueError):
    """A path that is not inside this run's artifacts (a root that differs between workers, a forged marker).

    Permanent: a retry reads the same XCom and the same marker.
    """


class ArtifactLocationError(PermanentError, ValueError):
    """The artifacts root cannot be opened: not a path nor a URI, an unknown scheme, its fsspec backend missing,
    or a connection named where nothing can resolve it. The message names the location."""


def check_step(step: str) -> None:
    """Refuse a step folder name that is empty, hidden or more than one path part."""
    if not step or "/" in step or "\\" in step or step.startswith("."):
        raise ArtifactPathError(f"{step!r} is not a step folder name")


def check_relative(rel: str) -> None:
    """Refuse a run-relative path that is absolute, empty or climbs out (``..``)."""
    parts = PurePosixPath(rel).parts
    if not parts or rel.startswith("/") or any(p in ("..", "") for p in parts):
        raise ArtifactPathError(f"{rel!r} is not a path inside a run's artifacts")


# -- step folders -----------------------------------------------------------------------------------------------

PREFLIGHT_STEP = "preflight"
EXTRACT_STEP = "extract"
VALIDATE_STEP = "validate"
SPLIT_STEP = "split"
TRAIN_STEP = "train"
EVALUATE_STEP = "evaluate"
GATE_STEP = "gate"
MODEL_CARD_STEP = "model_card"
PUBLISH_STEP = "publish"
ROLLBACK_STEP = "rollback"
#: The retraining DAG's step folders in pipeline order, then the rollback DAG's.
STEPS: tuple[str, ...] = (
    PREFLIGHT_STEP, EXTRACT_STEP, VALIDATE_STEP, SPLIT_STEP, TRAIN_STEP, EVALUATE_STEP, GATE_STEP, MODEL_CARD_STEP,
    PUBLISH_STEP, ROLLBACK_STEP,
)

# -- names inside the run folder and the step folders -----------------------------------------------------------

#: Written last into a step's folder: the step finished, and these are its files (``reranker_tasks.storage``).
COMPLETE_MARKER = "_COMPLETE.json"
#: Run level: the failing task and its error (``reranker_airflow.alerts.record_failure``).
FAILURE_FILE = "failure.json"

PREFLIGHT_FILE = "preflight.json"

SNAPSHOT_FILE = "pairs.parquet"
EVAL_SNAPSHOT_FILE = "eval_pairs.parquet"
EXTRACT_MANIFEST_FILE = "manifest.json"
#: The freshness decision (skip when too little is new since the champion), written by the DAG's extract task.
FRESHNESS_FILE = "freshness.json"

VALIDATION_FILE = "validation.json"
DATA_DOCS_DIR = "data_docs"
DATA_DOCS_INDEX = "index.html"

TRAIN_SPLIT_FILE = "train.parquet"
EVAL_SPLIT_FILE = "eval.parquet"
SPLIT_FILE = "split.json"

MODEL_DIR = "model"
#: In the model folder: the finished model's files and the inputs it was trained from.
MODEL_MANIFEST_FILE = "manifest.json"
CHECKPOINTS_DIR = "checkpoints"
INIT_MODEL_DIR = "init_model"
TRAINING_CURVE_FILE = "training_curve.json"
DEV_FILE = "dev.parquet"
MINED_NEGATIVES_FILE = "mined_negatives.parquet"

METRICS_FILE = "metrics.json"
PER_QUERY_FILE = "per_query.parquet"
#: The champion's download (a copy of what the Hub holds; kept out of the store).
CHAMPION_DIR = "champion"

DECISION_FILE = "decision.json"
APPROVAL_FILE = "approval.json"

#: The model card step's folder of exactly what is pushed: the model's files and the card.
STAGING_DIR = "staging"
#: The model card, as the Hub names it (in the staging folder, in the trained model, on the Hub).
MODEL_CARD_FILE = "README.md"
#: The weights file a pushed (or rolled back to) model must hold.
MODEL_WEIGHTS_FILE = "model.safetensors"

PUBLISH_FILE = "publish.json"
DRY_RUN_FILE = "dry_run.json"
CONFLICT_FILE = "conflict.json"

ROLLBACK_FILE = "rollback.json"
#: The tag's files downloaded from the Hub (kept out of the store).
ROLLBACK_SNAPSHOT_DIR = "snapshot"


def artifact_path(step: str, *names: str) -> str:
    """The run-relative path ``<step>/<names…>`` (posix separators, as the store and the XComs spell it)."""
    check_step(step)
    rel = posixpath.join(step, *names)
    check_relative(rel)
    return rel


# -- run-relative paths of the files people and tools read back ------------------------------------------------

FAILURE = FAILURE_FILE
PREFLIGHT_REPORT = artifact_path(PREFLIGHT_STEP, PREFLIGHT_FILE)
EXTRACT_MANIFEST = artifact_path(EXTRACT_STEP, EXTRACT_MANIFEST_FILE)
FRESHNESS = artifact_path(EXTRACT_STEP, FRESHNESS_FILE)
VALIDATION_REPORT = artifact_path(VALIDATE_STEP, VALIDATION_FILE)
DATA_DOCS = artifact_path(VALIDATE_STEP, DATA_DOCS_DIR)
DATA_DOCS_INDEX_PAGE = artifact_path(VALIDATE_STEP, DATA_DOCS_DIR, DATA_DOCS_INDEX)
SPLIT_SUMMARY = artifact_path(SPLIT_STEP, SPLIT_FILE)
MODEL = artifact_path(TRAIN_STEP, MODEL_DIR)
TRAINING_CURVE = artifact_path(TRAIN_STEP, TRAINING_CURVE_FILE)
METRICS = artifact_path(EVALUATE_STEP, METRICS_FILE)
PER_QUERY = artifact_path(EVALUATE_STEP, PER_QUERY_FILE)
GATE_DECISION = artifact_path(GATE_STEP, DECISION_FILE)
APPROVAL = artifact_path(GATE_STEP, APPROVAL_FILE)
MODEL_CARD = artifact_path(MODEL_CARD_STEP, STAGING_DIR, MODEL_CARD_FILE)
PUBLISH_RESULT = artifact_path(PUBLISH_STEP, PUBLISH_FILE)
PUBLISH_DRY_RUN = artifact_path(PUBLISH_STEP, DRY_RUN_FILE)
PUBLISH_CONFLICT = artifact_path(PUBLISH_STEP, CONFLICT_FILE)
ROLLBACK_RESULT = artifact_path(ROLLBACK_STEP, ROLLBACK_FILE)


def in_run(run_dir: Any, rel: str) -> Any:
    """``rel`` (a run-relative path of this module) under ``run_dir``: a Path, a ``UPath``, an ObjectStoragePath."""
    check_relative(rel)
    return run_dir.joinpath(*rel.split("/"))


# -- the location -------------------------------------------------------------------------------------------------


def is_uri(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names an fsspec location (``scheme://…``) rather than a plain local path."""
    text = os.fspath(location)
    head, sep, _ = text.partition("://")
    return bool(sep) and head.replace("+", "").replace("-", "").replace(".", "").isalnum() and len(head) > 1


def names_connection(location: str) -> bool:
    """Whether a URI names an Airflow connection for its credentials (``s3://aws_default@bucket/path``)."""
    return is_uri(location) and "@" in location.split("://", 1)[1].split("/", 1)[0]


def artifacts_location() -> str:
    """The configured root (``reranker_tasks.paths.artifacts_root``) as a string, a malformed URI refused."""
    from reranker_tasks.paths import ARTIFACTS_ENV, artifacts_root

    root = artifacts_root()
    if isinstance(root, str) and not is_uri(root):
        raise ArtifactLocationError(f"{ARTIFACTS_ENV}={root!r}: not a URI (scheme://…) nor a local path")
    return str(root)


def open_store(location: Any = None, *, resolve_connection: Callable[[str], Any] | None = None) -> Any:
    """The :class:`~reranker_tasks.storage.ArtifactStore` of an artifacts root.

    Args:
        location: a plain path (the local mode), an fsspec URI (``s3://…``, ``file:///…``, ``memory://…``: the
            store mode), or a path object with ``.fs`` and ``.path`` (ObjectStoragePath, UPath), kept as the
            store's :attr:`~reranker_tasks.storage.ArtifactStore.root`. None reads ``RERANKER_ARTIFACTS_ROOT``.
        resolve_connection: turns a URI naming an Airflow connection (``s3://conn_id@bucket/x``) into a path
            object carrying that connection's credentials (``reranker_airflow.context.object_storage_path``).

    Raises:
        ArtifactLocationError: the location is empty or malformed, its scheme unknown or its fsspec backend not
            installed, or it names a connection and ``resolve_connection`` is None.
    """
    from reranker_tasks.storage import ArtifactStore

    if location is None:
        location = artifacts_location()
    fs = getattr(location, "fs", None)
    if fs is not None and hasattr(location, "path"):
        return ArtifactStore(str(location).rstrip("/"), fs, str(location.path).rstrip("/"), root_obj=location)
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    if not text.strip():
        raise ArtifactLocationError(f"artifacts location {text!r}: empty")
    if not is_uri(text):
        if "://" in text:
            raise ArtifactLocationError(f"artifacts location {text!r}: not a URI (scheme://…) nor a local path")
        return ArtifactStore(str(Path(text).expanduser().resolve()))
    if names_connection(text):
        if resolve_connection is None:
            conn_id = text.split("://", 1)[1].split("@", 1)[0]
            raise ArtifactLocationError(
                f"artifacts location {text!r} names the Airflow connection {conn_id!r}: open it through "
                "reranker_airflow.context.artifact_store()"
            )
        return open_store(resolve_connection(text))
    import fsspec.core

    try:
        fs, path = fsspec.core.url_to_fs(text)
    except (ImportError, ValueError) as exc:  # an unknown scheme, or its backend (s3fs, gcsfs) not installed
        raise ArtifactLocationError(f"artifacts location {text!r}: cannot open it here ({exc})") from exc
    return ArtifactStore(text.rstrip("/"), fs, str(path).rstrip("/"))
