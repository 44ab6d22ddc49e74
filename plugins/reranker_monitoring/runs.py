"""What the runs view shows, assembled from what Airflow holds about each run (the HTML is :mod:`.render`'s).

Pure functions, no Airflow import: :mod:`.app` reads the DAG runs and their XComs through Airflow's session and
hands them here. Each field of a run comes from the run's XCom when present (what the task returned) and falls back
to the run's artifact file (``$RERANKER_ARTIFACTS_ROOT/<safe run id>/<task>/...``, located from the run id Airflow
gave): XComs can be cleared or held by an object-storage backend, while the artifacts stay. The artifact names are
``reranker_tasks.layout``'s, the names the steps write:

==========  =====================  ==============================================================
source      XCom (task, key)       artifact (fallback)
==========  =====================  ==============================================================
extract     extract, return_value  ``layout.EXTRACT_MANIFEST`` (extract/manifest.json)
validate    validate, return_value ``layout.VALIDATION_REPORT`` (validate/validation.json)
evaluate    evaluate, return_value ``layout.METRICS`` (evaluate/metrics.json)
gate        gate, decision         ``layout.GATE_DECISION`` (gate/decision.json)
publish     publish, return_value  ``layout.PUBLISH_RESULT`` (publish/publish.json), else the dry run's
                                   or the conflict's record
==========  =====================  ==============================================================
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reranker_tasks import layout

DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DATA_DOCS_DIR: tuple[str, ...] = tuple(layout.DATA_DOCS.split("/"))
DATA_DOCS_INDEX = layout.DATA_DOCS_INDEX
PRIMARY_METRIC_FALLBACK = "ndcg@10"
#: Read when a run has no publish result: what a dry run or a lost race recorded instead (first found wins).
PUBLISH_ALTERNATIVES: tuple[str, ...] = (layout.PUBLISH_DRY_RUN, layout.PUBLISH_CONFLICT)


@dataclass(frozen=True)
class Source:
    """Where one part of a run's record lives: an XCom of a task, else a file under the run's artifacts."""

    task_id: str
    key: str
    artifact: str


SOURCES: dict[str, Source] = {
    "extract": Source("extract", "return_value", layout.EXTRACT_MANIFEST),
    "validate": Source("validate", "return_value", layout.VALIDATION_REPORT),
    "evaluate": Source("evaluate", "return_value", layout.METRICS),
    "gate": Source("gate", "decision", layout.GATE_DECISION),
    "publish": Source("publish", "return_value", layout.PUBLISH_RESULT),
}
XCOM_TASK_IDS: tuple[str, ...] = tuple(sorted({s.task_id for s in SOURCES.values()}))
XCOM_KEYS: tuple[str, ...] = tuple(sorted({s.key for s in SOURCES.values()}))
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class DagRunInfo:
    """The few columns of a DAG run the view needs (copied out of Airflow's ``DagRun`` row)."""

    run_id: str
    state: str | None
    run_type: str | None = None
    run_after: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    conf: Mapping[str, Any] = field(default_factory=dict)
    dag_id: str = ""
    """The DAG the run belongs to ("": the ``dag_id`` given to :func:`build_records`)."""


@dataclass
class RunRecord:
    """One row of the runs view (and one item of its JSON API)."""

    run_id: str
    state: str | None
    run_type: str | None
    run_after: str | None
    start_date: str | None
    end_date: str | None
    duration_s: float | None
    ui_url: str
    dag_id: str = ""
    fingerprint: str | None = None
    fingerprint_short: str | None = None
    pairs: int | None = None
    queries: int | None = None
    validation_success: bool | None = None
    validation_failed: list[str] = field(default_factory=list)
    data_docs_url: str | None = None
    primary_metric: str = PRIMARY_METRIC_FALLBACK
    candidate: dict[str, float | None] | None = None
    champion: dict[str, float | None] | None = None
    base: dict[str, float | None] | None = None
    delta_vs_champion: float | None = None
    gate_outcome: str | None = None
    gate_reasons: list[str] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    repo_id: str | None = None
    commit_sha: str | None = None
    commit_url: str | None = None
    model_card_url: str | None = None
    tag: str | None = None
    dry_run: bool = False
    publish_note: str | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return asdict(self)

    def metric(self, model: str, name: str | None = None) -> float | None:
        """``candidate`` / ``champion`` / ``base`` value of ``name`` (default: the primary metric)."""
        values: dict[str, float | None] | None = getattr(self, model)
        if not values:
            return None
        return values.get(name or self.primary_metric)


# -- reading ---------------------------------------------------------------------------------------------------


def decode_xcom_value(value: Any) -> Any:
    """An XCom row's value as plain JSON data.

    Values written by the Task SDK are stored as JSON (SQLAlchemy returns them parsed); older rows hold a JSON
    string. Only ``json.loads`` is used, never Airflow's class-restoring decoder: nothing from the database is
    turned into arbitrary objects here.
    """
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def safe_run_name(run_id: str) -> str:
    """The run's artifact folder name: ``reranker_tasks.paths.safe_run_name`` (same rule when not importable)."""
    try:
        from reranker_tasks.paths import safe_run_name as project_rule
    except ImportError:  # pragma: no cover - the package is installed wherever the plugin runs
        return _UNSAFE.sub("_", run_id).strip("._")
    return project_rule(run_id)


def artifacts_root() -> Any:
    """``$RERANKER_ARTIFACTS_ROOT`` as the pipeline opens it (``reranker_airflow.context.artifact_store``), as a path.

    A local folder is a :class:`~pathlib.Path`; a store URI (``s3://…``, ``file:///…``) a universal_pathlib
    ``UPath`` over the same fsspec filesystem the tasks write through (``s3://conn_id@bucket/…``: Airflow's
    ``ObjectStoragePath``, credentials from that connection). Both answer ``/``, ``is_file`` and ``open``, so the
    view reads the run's files, and serves its Data Docs, wherever the workers put them. None when the store
    cannot be opened here (its fsspec backend is not installed on the api-server): XComs only.
    """
    from reranker_airflow.context import artifact_store

    try:
        return artifact_store().root
    except (ImportError, ValueError) as exc:  # no fsspec backend for the scheme on this server
        logging.getLogger(__name__).warning("runs view: artifacts not readable here (%s)", exc)
        return None


def run_dir_for(run_id: str, root: Any) -> Any:
    """The run's artifact folder under ``root`` (it may not exist: a run that failed early, or pruned)."""
    return root / safe_run_name(run_id)


def local_run_dir(run_id: str) -> Any:
    """The run's artifact folder under the configured root (a Path or a store path), or None when not readable."""
    root = artifacts_root()
    return run_dir_for(run_id, root) if root is not None else None


def _read_json(path: Any) -> Any:
    try:
        with path.open("r", encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def gather(xcoms: Mapping[tuple[str, str], Any], run_dir: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Each source's dict for one run, XCom first, artifact second; and which one each came from.

    Args:
        xcoms: ``{(task_id, key): value}`` of the run (decoded, or the JSON text of an XCom row).
        run_dir: the run's artifact folder, or None when it is not reachable from here.
    """
    found: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for name, source in SOURCES.items():
        value = decode_xcom_value(xcoms.get((source.task_id, source.key)))
        if isinstance(value, Mapping):
            found[name], origin[name] = dict(value), "xcom"
            continue
        if run_dir is not None:
            doc = _read_json(layout.in_run(run_dir, source.artifact))
            if isinstance(doc, Mapping):
                found[name], origin[name] = dict(doc), "artifact"
    if "publish" not in found and run_dir is not None:
        for extra in PUBLISH_ALTERNATIVES:
            doc = _read_json(layout.in_run(run_dir, extra))
            if isinstance(doc, Mapping):
                found["publish"], origin["publish"] = {**doc, "_file": extra.rsplit("/", 1)[-1]}, "artifact"
                break
    return found, origin


# -- assembling ------------------------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _metrics(values: Any, primary: str) -> dict[str, float | None] | None:
    """The primary metric, MAP and MRR@k of one model (None when the model was not evaluated)."""
    if not isinstance(values, Mapping):
        return None
    keys = [primary, "map", *sorted(k for k in values if str(k).startswith("mrr@"))]
    return {key: _number(values.get(key)) for key in dict.fromkeys(keys)}


def model_card_url(commit_url: str | None, repo_id: str | None, commit_sha: str | None,
                   endpoint: str | None = None) -> str | None:
    """``<endpoint>/<repo>/blob/<sha>/README.md``: the model card as pushed in that commit.

    The endpoint is taken from the commit URL the push returned (``<endpoint>/<repo>/commit/<sha>``), i.e. the Hub
    the model really went to; ``endpoint`` (else ``HF_ENDPOINT``, else huggingface.co) only when it cannot be.
    """
    if not repo_id or not commit_sha:
        return None
    base = None
    marker = f"/{repo_id}/commit/{commit_sha}"
    if commit_url and marker in commit_url:
        base = commit_url[: commit_url.index(marker)]
    base = (base or endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_HUB_ENDPOINT).rstrip("/")
    return f"{base}/{repo_id}/blob/{commit_sha}/{layout.MODEL_CARD_FILE}"


def data_docs_url(prefix: str, run_id: str, path: str = DATA_DOCS_INDEX) -> str:
    """The plugin URL serving a file of the run's GX Data Docs (``prefix`` = base path + mount point)."""
    return f"{prefix.rstrip('/')}/runs/{quote(run_id, safe='')}/data-docs/{quote(path)}"


def ui_run_url(ui_base: str, dag_id: str, run_id: str) -> str:
    """The Airflow UI page of a DAG run."""
    return f"{ui_base.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def build_record(
    info: DagRunInfo,
    xcoms: Mapping[tuple[str, str], Any],
    run_dir: Any,
    *,
    dag_id: str,
    prefix: str,
    ui_base: str = "",
) -> RunRecord:
    """One run's row: DAG run columns from Airflow, the rest from its XComs, else from its artifacts.

    Args:
        info: the DAG run.
        xcoms: ``{(task_id, key): decoded value}`` of the run (see :data:`SOURCES`).
        run_dir: the run's artifact folder (None: XComs only).
        dag_id: the run's DAG, for the link to the run in the Airflow UI (``info.dag_id`` wins when set).
        prefix: URL path of the plugin app (for the Data Docs link).
        ui_base: URL path the Airflow UI is served under ("" at the root).
    """
    found, origin = gather(xcoms, run_dir)
    duration = None
    if info.start_date is not None and info.end_date is not None:
        duration = round((info.end_date - info.start_date).total_seconds(), 1)
    record = RunRecord(
        run_id=info.run_id,
        state=info.state,
        run_type=info.run_type,
        run_after=_iso(info.run_after),
        start_date=_iso(info.start_date),
        end_date=_iso(info.end_date),
        duration_s=duration,
        ui_url=ui_run_url(ui_base, info.dag_id or dag_id, info.run_id),
        dag_id=info.dag_id or dag_id,
        sources=origin,
    )
    extract = found.get("extract") or {}
    if extract:
        fingerprint = extract.get("fingerprint")
        record.fingerprint = str(fingerprint) if fingerprint else None
        record.fingerprint_short = record.fingerprint[:8] if record.fingerprint else None
        record.pairs, record.queries = _int(extract.get("pairs")), _int(extract.get("queries"))

    validate = found.get("validate") or {}
    nested = validate.get("summary")
    summary: Mapping[str, Any] = nested if isinstance(nested, Mapping) else validate
    if validate:
        success = validate.get("success", summary.get("success"))
        record.validation_success = bool(success) if isinstance(success, bool) else None
        record.validation_failed = [str(x) for x in summary.get("failed") or validate.get("failed") or []]
        if record.pairs is None:  # extract's XCom may be gone; validation counted the same rows
            record.pairs, record.queries = _int(summary.get("rows")), _int(summary.get("queries"))
    docs_path = validate.get("data_docs_path") or summary.get("data_docs_path")
    index = layout.in_run(run_dir, layout.DATA_DOCS_INDEX_PAGE) if run_dir is not None else None
    has_docs = bool(docs_path) or (index is not None and index.is_file())
    if has_docs:
        record.data_docs_url = data_docs_url(prefix, info.run_id)

    evaluate = found.get("evaluate") or {}
    if evaluate:
        primary = str(evaluate.get("primary_metric") or PRIMARY_METRIC_FALLBACK)
        record.primary_metric = primary
        record.candidate = _metrics(evaluate.get("candidate"), primary)
        record.champion = _metrics(evaluate.get("champion"), primary)
        record.base = _metrics(evaluate.get("base"), primary)
        cand, champ = record.metric("candidate"), record.metric("champion")
        if cand is not None and champ is not None:
            record.delta_vs_champion = cand - champ

    gate = found.get("gate") or {}
    if gate:
        record.gate_outcome = str(gate["outcome"]) if gate.get("outcome") else None
        record.gate_reasons = [str(r) for r in gate.get("reasons") or []]
        record.forced = [str(r) for r in gate.get("forced") or []]

    publish = found.get("publish") or {}
    conf_repo = info.conf.get("hub_repo_id") if isinstance(info.conf, Mapping) else None
    record.repo_id = str(publish.get("repo_id") or conf_repo or "") or None
    if publish.get("dry_run"):
        record.dry_run = True
        record.publish_note = "dry run: nothing pushed"
    elif publish.get("_file") == layout.CONFLICT_FILE or publish.get("promoted") is False:
        record.publish_note = str(publish.get("reason") or "not promoted")
    elif publish.get("commit_sha"):
        record.commit_sha = str(publish["commit_sha"])
        record.commit_url = str(publish.get("commit_url") or "") or None
        record.tag = str(publish.get("tag") or "") or None
        record.model_card_url = model_card_url(record.commit_url, record.repo_id, record.commit_sha)
    return record


def build_records(
    runs: Sequence[DagRunInfo],
    xcoms: Mapping[str, Mapping[tuple[str, str], Any]],
    *,
    dag_id: str,
    prefix: str,
    ui_base: str = "",
    root: Any = None,
) -> list[RunRecord]:
    """Rows for ``runs`` (kept in the given order); ``xcoms`` maps run id → that run's XComs.

    ``dag_id`` is the DAG of the runs that do not name theirs (``DagRunInfo.dag_id``).
    """
    base = root if root is not None else artifacts_root()
    return [
        build_record(run, xcoms.get(run.run_id, {}), run_dir_for(run.run_id, base) if base is not None else None,
                     dag_id=dag_id, prefix=prefix, ui_base=ui_base)
        for run in runs
    ]


def resolve_data_docs_file(run_dir: Any, relative: str) -> Any:
    """The file ``relative`` under the run's ``validate/data_docs`` folder, or None.

    None for anything that would leave that folder (``..``, an absolute path, a symlink pointing out), for
    folders and for missing files: the endpoint serving Data Docs can never read another file on the server.
    In a store (no symlinks, no resolve) the relative path is normalised and refused if it climbs out.
    """
    relative = relative or DATA_DOCS_INDEX
    if "\x00" in relative or relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        return None
    if not isinstance(run_dir, Path):
        import posixpath

        clean = posixpath.normpath(relative.replace("\\", "/"))
        if clean in (".", "") or clean == ".." or clean.startswith("../") or clean.startswith("/"):
            return None
        target = run_dir.joinpath(*DATA_DOCS_DIR, *clean.split("/"))
        try:
            return target if target.is_file() else None
        except OSError:
            return None
    base = run_dir.joinpath(*DATA_DOCS_DIR).resolve()
    try:
        target = (base / relative).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(base) or not target.is_file():
        return None
    return target

