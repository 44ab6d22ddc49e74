"""What the runs view shows, assembled from what Airflow holds about each run, and its HTML/SVG rendering.

Pure functions, no Airflow import: :mod:`.app` reads the DAG runs and their XComs through Airflow's session and
hands them here. Each field of a run comes from the run's XCom when present (what the task returned) and falls back
to the run's artifact file (``$RERANKER_ARTIFACTS_ROOT/<safe run id>/<task>/...``, located from the run id Airflow
gave): XComs can be cleared or held by an object-storage backend, while the artifacts stay.

==========  =====================  ===============================
source      XCom (task, key)       artifact (fallback)
==========  =====================  ===============================
extract     extract, return_value  extract/manifest.json
validate    validate, return_value validate/validation.json
evaluate    evaluate, return_value evaluate/metrics.json
gate        gate, decision         gate/decision.json
publish     publish, return_value  publish/publish.json (dry_run.json, conflict.json)
==========  =====================  ===============================
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DATA_DOCS_DIR = ("validate", "data_docs")
DATA_DOCS_INDEX = "index.html"
PRIMARY_METRIC_FALLBACK = "ndcg@10"


@dataclass(frozen=True)
class Source:
    """Where one part of a run's record lives: an XCom of a task, else a file under the run's artifacts."""

    task_id: str
    key: str
    artifact: str


SOURCES: dict[str, Source] = {
    "extract": Source("extract", "return_value", "extract/manifest.json"),
    "validate": Source("validate", "return_value", "validate/validation.json"),
    "evaluate": Source("evaluate", "return_value", "evaluate/metrics.json"),
    "gate": Source("gate", "decision", "gate/decision.json"),
    "publish": Source("publish", "return_value", "publish/publish.json"),
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
    """``$RERANKER_ARTIFACTS_ROOT`` as the pipeline resolves it (``reranker_tasks.paths.artifacts_root``), as a path.

    A local folder is a :class:`~pathlib.Path`; a store URI (``s3://…``, ``file:///…``) a universal_pathlib
    ``UPath`` over the same fsspec filesystem the tasks write through (``s3://conn_id@bucket/…``: Airflow's
    ``ObjectStoragePath``, credentials from that connection). Both answer ``/``, ``is_file`` and ``open``, so the
    view reads the run's files, and serves its Data Docs, wherever the workers put them. None when the store
    cannot be opened here (its fsspec backend is not installed on the api-server): XComs only.
    """
    try:
        from reranker_tasks.paths import artifacts_root as project_root
    except ImportError:  # pragma: no cover - the package is installed wherever the plugin runs
        return Path(os.environ.get("RERANKER_ARTIFACTS_ROOT", "artifacts")).expanduser().resolve()
    root = project_root()
    if isinstance(root, Path):
        return root
    text = str(root)
    try:
        from reranker_tasks.storage import names_connection

        if names_connection(text):
            from airflow.sdk import ObjectStoragePath

            path: Any = ObjectStoragePath(text)
        else:
            from upath import UPath

            path = UPath(text)
        path.fs  # noqa: B018 - opens the filesystem now: a missing backend (s3fs, gcsfs) fails here, not mid-page
        return path
    except (ImportError, ValueError) as exc:  # no fsspec backend for the scheme on this server
        import logging

        logging.getLogger(__name__).warning("runs view: artifacts at %s not readable here (%s)", text, exc)
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
            doc = _read_json(run_dir / source.artifact)
            if isinstance(doc, Mapping):
                found[name], origin[name] = dict(doc), "artifact"
    if "publish" not in found and run_dir is not None:
        for extra in ("dry_run.json", "conflict.json"):
            doc = _read_json(run_dir / "publish" / extra)
            if isinstance(doc, Mapping):
                found["publish"], origin["publish"] = {**doc, "_file": extra}, "artifact"
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
    return f"{base}/{repo_id}/blob/{commit_sha}/README.md"


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
    index = run_dir.joinpath(*DATA_DOCS_DIR, DATA_DOCS_INDEX) if run_dir is not None else None
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
    elif publish.get("_file") == "conflict.json" or publish.get("promoted") is False:
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


# -- rendering ---------------------------------------------------------------------------------------------------

OUTCOME_COLORS = {"promote": "#1a7f37", "needs_approval": "#bf8700", "reject": "#cf222e"}
NO_OUTCOME_COLOR = "#6e7781"
SERIES = (  # model, label, stroke, dash
    ("candidate", "candidate", "#0969da", ""),
    ("champion", "champion (production)", "#8250df", "6 4"),
    ("base", "base (untuned)", "#6e7781", "2 4"),
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _short_time(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return datetime.fromisoformat(iso).strftime("%m-%d %H:%M")
    except ValueError:
        return iso[:16]


def chronological(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Oldest first (by when the run was due; runs without that time last, in their given order)."""
    keyed = [(r.run_after is None, r.run_after or "", i, r) for i, r in enumerate(records)]
    return [item[-1] for item in sorted(keyed, key=lambda k: k[:3])]


def render_metric_chart(records: Sequence[RunRecord], metric: str | None = None, *, width: int = 760,
                        height: int = 260) -> str:
    """An inline SVG line chart of ``metric`` (default: the primary metric) over runs, oldest left.

    The candidate is the solid line; each of its points is coloured by the gate's outcome and carries a tooltip.
    The champion and the base model are dashed and dotted. Runs without an evaluation are left out.
    """
    runs = [r for r in chronological(records) if r.metric("candidate", metric) is not None]
    name = metric or (runs[0].primary_metric if runs else PRIMARY_METRIC_FALLBACK)
    left, right, top, bottom = 52, 16, 28, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [
        (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}" aria-label="{_e(name)} over runs">'),
        f'<title>{_e(name)} of the candidate, champion and base model over runs</title>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#d0d7de" '
                     f'stroke-width="1"/>')
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="11" fill="#57606a">'
                     f'{tick:.2f}</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2:.1f}" font-size="12" fill="#24292f" text-anchor="middle" '
                 f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{_e(name)}</text>')
    if not runs:
        parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
                     f'font-size="14" fill="#57606a">No evaluated runs yet</text></svg>')
        return "".join(parts)

    step = plot_w / max(len(runs) - 1, 1)

    def xy(index: int, value: float) -> tuple[float, float]:
        x = left + (index * step if len(runs) > 1 else plot_w / 2)
        return x, top + plot_h * (1 - min(max(value, 0.0), 1.0))

    for model, label, stroke, dash in reversed(SERIES):
        points = [(i, r.metric(model, metric)) for i, r in enumerate(runs)]
        coords = [xy(i, v) for i, v in points if v is not None]
        if len(coords) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            parts.append(f'<polyline class="series-{model}" points="{path}" fill="none" stroke="{stroke}" '
                         f'stroke-width="{2.5 if model == "candidate" else 1.5}" stroke-dasharray="{dash}"/>')
        if model == "base":
            for x, y in coords:
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{stroke}"/>')
    for i, run in enumerate(runs):  # rings, drawn last, so a champion equal to the candidate still shows
        champion = run.metric("champion", metric)
        if champion is not None:
            x, y = xy(i, champion)
            parts.append(f'<circle class="champion" cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" '
                         f'stroke="{SERIES[1][2]}" '
                         f'stroke-width="2"><title>{_e(f"{run.run_id}: champion {_fmt(champion)}")}</title></circle>')
    label_every = max(1, math.ceil(len(runs) / 10))
    for i, run in enumerate(runs):
        value = run.metric("candidate", metric)
        assert value is not None
        x, y = xy(i, value)
        color = OUTCOME_COLORS.get(run.gate_outcome or "", NO_OUTCOME_COLOR)
        tip = f"{run.run_id}\n{name}: candidate {_fmt(value)}, champion {_fmt(run.metric('champion', metric))}, " \
              f"base {_fmt(run.metric('base', metric))}\ngate: {run.gate_outcome or 'n/a'}"
        parts.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}" stroke="#fff" '
                     f'stroke-width="1.5"><title>{_e(tip)}</title></circle>')
        if i % label_every == 0 or i == len(runs) - 1:
            anchor = "middle"
            if len(runs) > 1 and i in (0, len(runs) - 1):  # keep the first and last labels inside the chart
                anchor = "start" if i == 0 else "end"
            parts.append(f'<text x="{x:.1f}" y="{top + plot_h + 18}" text-anchor="{anchor}" font-size="11" '
                         f'fill="#57606a">{_e(_short_time(run.run_after) or f"#{i + 1}")}</text>')
    legend_x = left + 8
    for model, label, stroke, dash in SERIES:
        parts.append(f'<line x1="{legend_x}" y1="{height - 14}" x2="{legend_x + 22}" y2="{height - 14}" '
                     f'stroke="{stroke}" stroke-width="2" stroke-dasharray="{dash}"/>'
                     f'<text x="{legend_x + 28}" y="{height - 10}" font-size="11" fill="#24292f">{_e(label)}</text>')
        legend_x += 40 + 7 * len(label)
    for outcome, color in OUTCOME_COLORS.items():
        parts.append(f'<circle cx="{legend_x + 5}" cy="{height - 14}" r="5" fill="{color}"/>'
                     f'<text x="{legend_x + 14}" y="{height - 10}" font-size="11" fill="#24292f">'
                     f'{_e(outcome.replace("_", " "))}</text>')
        legend_x += 30 + 7 * len(outcome)
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#24292f;margin:14px 18px;background:#fff}
h1{font-size:19px;margin:0 0 4px}p.sub{color:#57606a;margin:0 0 10px}.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;margin-top:10px}th,td{border-bottom:1px solid #d0d7de;padding:5px 7px;
text-align:left;vertical-align:top}th{background:#f6f8fa;font-weight:600}th .small{font-weight:400}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.small{color:#57606a;font-size:11.5px}
.nowrap{white-space:nowrap}a.rid{font-size:12px;word-break:break-all}.wrap{word-break:break-all;max-width:180px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:1px 4px;border-radius:4px}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;color:#fff;font-size:12px;white-space:nowrap}
.why{max-width:220px}.state-success{color:#1a7f37}.state-failed{color:#cf222e}
.state-running,.state-queued{color:#bf8700}a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
.chart{max-width:100%;height:auto}
""".strip()
REASON_CHARS = 90


def _metric_cell(record: RunRecord, model: str) -> str:
    values = getattr(record, model)
    if not values:
        return '<td class="num">–</td>'
    primary = values.get(record.primary_metric)
    others = " · ".join(f"{_e(k.upper())} {_fmt(v, 3)}" for k, v in values.items() if k != record.primary_metric)
    return f'<td class="num"><b>{_fmt(primary)}</b><div class="small">{others}</div></td>'


def _gate_cell(record: RunRecord) -> str:
    if not record.gate_outcome:
        return "<td>–</td>"
    color = OUTCOME_COLORS.get(record.gate_outcome, NO_OUTCOME_COLOR)
    reasons = "; ".join(record.gate_reasons)
    cell = (f'<span class="badge outcome" style="background:{color}" title="{_e(reasons)}">'
            f'{_e(record.gate_outcome.replace("_", " "))}</span>')
    if record.forced:
        cell += f'<div class="small">forced past: {_e(", ".join(record.forced))}</div>'
    if record.gate_outcome != "promote" and record.gate_reasons:  # the first failed rule, in full on hover
        first = record.gate_reasons[0]
        short = first if len(first) <= REASON_CHARS else first[: REASON_CHARS - 1] + "…"
        cell += f'<div class="small why" title="{_e(reasons)}">{_e(short)}</div>'
    return f"<td>{cell}</td>"


def _hub_cell(record: RunRecord) -> str:
    if record.commit_sha:
        commit = (f'<a class="commit" href="{_e(record.commit_url)}">{_e(record.commit_sha[:8])}</a>'
                  if record.commit_url else f"<code>{_e(record.commit_sha[:8])}</code>")
        card = f' · <a class="model-card" href="{_e(record.model_card_url)}">card</a>' if record.model_card_url else ""
        return (f'<td><span class="nowrap">{commit}{card}</span><div class="small wrap">{_e(record.repo_id)}</div>'
                f'<div class="small wrap">{_e(record.tag or "")}</div></td>')
    if record.publish_note:
        return f'<td class="small">{_e(record.publish_note)}</td>'
    if record.gate_outcome in ("reject", "needs_approval") and record.state in ("success", "failed"):
        return '<td class="small">not promoted</td>'
    return "<td>–</td>"


def _row(record: RunRecord) -> str:
    data = "–"
    if record.fingerprint_short:
        data = (f'<code title="{_e(record.fingerprint)}">{_e(record.fingerprint_short)}</code>'
                f'<div class="small nowrap">{_e(record.pairs)} pairs</div>'
                f'<div class="small nowrap">{_e(record.queries)} queries</div>')
    validation = "–"
    if record.validation_success is not None:
        failed = "; ".join(record.validation_failed)
        validation = "passed" if record.validation_success else f'<span title="{_e(failed)}">failed</span>'
    if record.data_docs_url:
        link = f'<a class="data-docs" href="{_e(record.data_docs_url)}">Data Docs</a>'
        validation += f'<div class="small nowrap">{link}</div>'
    delta = "–" if record.delta_vs_champion is None else f"{record.delta_vs_champion:+.4f}"
    duration = f" · {record.duration_s:.0f} s" if record.duration_s is not None else ""
    return (
        f'<tr class="run" data-run-id="{_e(record.run_id)}" data-dag-id="{_e(record.dag_id)}">'
        f'<td><a class="rid" href="{_e(record.ui_url)}">{_e(record.run_id)}</a>'
        f'<div class="small">{_e(_short_time(record.run_after))} · {_e(record.run_type or "")}{_e(duration)}'
        f'</div><div class="small dag">{_e(record.dag_id)}</div></td>'
        f'<td class="state-{_e(record.state)}">{_e(record.state)}</td>'
        f"<td>{data}</td><td>{validation}</td>"
        f'{_metric_cell(record, "candidate")}{_metric_cell(record, "champion")}{_metric_cell(record, "base")}'
        f'<td class="num">{delta}</td>{_gate_cell(record)}{_hub_cell(record)}</tr>'
    )


def render_page(records: Sequence[RunRecord], *, dag_id: str | Sequence[str], prefix: str, ui_base: str = "",
                generated_at: datetime | None = None) -> str:
    """The runs view: a chart of the primary metric over runs and a table of the runs, newest first.

    ``dag_id``: the DAG, or the DAGs, whose runs these are (each linked in the header).
    """
    dag_ids = [dag_id] if isinstance(dag_id, str) else list(dag_id)
    primary = next((r.primary_metric for r in records if r.candidate), PRIMARY_METRIC_FALLBACK)
    stamp = f" · generated {generated_at:%Y-%m-%d %H:%M:%S %Z}" if generated_at else ""
    newest_first = list(reversed(chronological(records)))
    rows = "".join(_row(r) for r in newest_first) or (
        '<tr><td colspan="10" class="small">No runs of this DAG yet.</td></tr>')
    dag_links = ", ".join(
        f'<a href="{_e(ui_base.rstrip("/"))}/dags/{_e(quote(d, safe=""))}"><code>{_e(d)}</code></a>' for d in dag_ids)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Reranker runs · {_e(", ".join(dag_ids))}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>Reranker retraining runs</h1>
<p class="sub">DAG{"s" if len(dag_ids) > 1 else ""} {dag_links} · {len(records)} run(s) · primary metric
<b>{_e(primary)}</b> · from Airflow's DAG runs and XComs (the runs' artifacts where an XCom is missing){_e(stamp)} ·
<a href="{_e(prefix.rstrip('/'))}/api/runs">JSON</a></p>
{render_metric_chart(records, primary)}
<div class="scroll"><table id="runs"><thead><tr><th>Run</th><th>State</th><th>Data</th><th>Validation</th>
<th class="num">Candidate<div class="small">{_e(primary)}</div></th>
<th class="num">Champion<div class="small">{_e(primary)}</div></th>
<th class="num">Base<div class="small">{_e(primary)}</div></th>
<th class="num">Δ vs<div class="small">champion</div></th><th>Gate</th><th>Hub commit</th></tr></thead>
<tbody>{rows}</tbody></table></div>
</body></html>
"""
