"""The reranker monitoring plugin without a running Airflow: data assembly on fake artifacts/XComs, rendering,
path safety of the Data Docs endpoint, the extra links' routing, and how Airflow's plugin loader sees the plugin."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
if str(PLUGINS) not in sys.path:  # as Airflow does for its plugins folder
    sys.path.insert(0, str(PLUGINS))
monitoring = importlib.import_module("reranker_monitoring")
runs = importlib.import_module("reranker_monitoring.runs")
render = importlib.import_module("reranker_monitoring.render")
DAG_ID: str = monitoring.DAG_ID
URL_PREFIX: str = monitoring.URL_PREFIX
DagRunInfo = runs.DagRunInfo
RunRecord = runs.RunRecord
build_record = runs.build_record
build_records = runs.build_records
decode_xcom_value = runs.decode_xcom_value
model_card_url = runs.model_card_url
render_metric_chart = render.render_metric_chart
render_page = render.render_page
resolve_data_docs_file = runs.resolve_data_docs_file
run_dir_for = runs.run_dir_for

HUB = "http://127.0.0.1:9999"
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
FP1 = "97b0fe68" + "a" * 56
FP2 = "12345678" + "b" * 56


def _metrics(cand: float, base: float, champ: float | None) -> dict[str, Any]:
    def model(v: float) -> dict[str, float]:
        return {"ndcg@10": v, "map": v - 0.05, "mrr@10": v - 0.02, "hit@1": v, "accuracy": 0.9}

    return {"primary_metric": "ndcg@10", "candidate": model(cand), "base": model(base),
            "champion": model(champ) if champ is not None else None, "eval_queries": 24}


def _write(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Two runs' artifacts: run 1 promoted and pushed, run 2 (same data) rejected."""
    r1 = run_dir_for("manual__2026-12-01T10:00:00+00:00", tmp_path)
    _write(r1 / "extract/manifest.json", {"fingerprint": FP1, "pairs": 600, "queries": 120})
    _write(r1 / "validate/validation.json", {
        "success": True, "data_docs_path": str(r1 / "validate/data_docs/index.html"), "failed": [],
        "summary": {"rows": 600, "queries": 120, "success": True, "failed": []},
    })
    (r1 / "validate/data_docs/static").mkdir(parents=True)
    (r1 / "validate/data_docs/index.html").write_text("<html>GX Data Docs</html>")
    (r1 / "validate/data_docs/static/style.css").write_text("body{}")
    _write(r1 / "evaluate/metrics.json", _metrics(0.91, 0.44, None))
    _write(r1 / "gate/decision.json", {"outcome": "promote", "reasons": ["all rules passed"], "forced": []})
    _write(r1 / "publish/publish.json", {
        "repo_id": "local/rr", "commit_sha": "c" * 40, "commit_url": f"{HUB}/local/rr/commit/{'c' * 40}",
        "tag": "run-20261201T100500Z-97b0fe68", "reused": False,
    })
    r2 = run_dir_for("manual__2026-12-02T10:00:00+00:00", tmp_path)
    _write(r2 / "extract/manifest.json", {"fingerprint": FP1, "pairs": 600, "queries": 120})
    _write(r2 / "evaluate/metrics.json", _metrics(0.91, 0.44, 0.91))
    _write(r2 / "gate/decision.json", {"outcome": "reject", "reasons": ["min_gain: +0.0000 < 0.005"], "forced": []})
    return tmp_path


def _info(run_id: str, day: int, state: str = "success", **conf: Any) -> DagRunInfo:
    start = T0 + timedelta(days=day)
    return DagRunInfo(run_id=run_id, state=state, run_type="manual", run_after=start, start_date=start,
                      end_date=start + timedelta(seconds=95), conf=conf)


RUN1 = "manual__2026-12-01T10:00:00+00:00"
RUN2 = "manual__2026-12-02T10:00:00+00:00"


def _records(root: Path, xcoms: dict[str, dict[tuple[str, str], Any]] | None = None) -> list[Any]:
    runs = [_info(RUN2, 1, hub_repo_id="local/rr"), _info(RUN1, 0)]
    return build_records(runs, xcoms or {}, dag_id=DAG_ID, prefix="/reranker", ui_base="", root=root)


def test_records_from_artifacts(root: Path) -> None:
    newest, oldest = _records(root)
    assert [newest.run_id, oldest.run_id] == [RUN2, RUN1]

    assert oldest.fingerprint_short == "97b0fe68" and (oldest.pairs, oldest.queries) == (600, 120)
    assert oldest.validation_success is True
    assert oldest.data_docs_url == "/reranker/runs/manual__2026-12-01T10%3A00%3A00%2B00%3A00/data-docs/index.html"
    assert oldest.candidate == {"ndcg@10": 0.91, "map": pytest.approx(0.86), "mrr@10": pytest.approx(0.89)}
    assert oldest.champion is None and oldest.metric("base") == 0.44 and oldest.delta_vs_champion is None
    assert oldest.gate_outcome == "promote" and oldest.commit_sha == "c" * 40
    assert oldest.model_card_url == f"{HUB}/local/rr/blob/{'c' * 40}/README.md"
    assert oldest.tag == "run-20261201T100500Z-97b0fe68" and oldest.duration_s == 95.0
    assert oldest.ui_url == "/dags/reranker_retrain/runs/manual__2026-12-01T10%3A00%3A00%2B00%3A00"
    assert oldest.sources == {k: "artifact" for k in ("extract", "validate", "evaluate", "gate", "publish")}

    assert newest.gate_outcome == "reject" and newest.gate_reasons == ["min_gain: +0.0000 < 0.005"]
    assert newest.metric("champion") == 0.91 and newest.delta_vs_champion == pytest.approx(0.0)
    assert newest.commit_sha is None and newest.model_card_url is None and newest.repo_id == "local/rr"
    assert newest.validation_success is None and newest.data_docs_url is None
    assert json.loads(json.dumps(newest.to_dict()))["gate_outcome"] == "reject"


def test_xcoms_win_over_artifacts_and_are_enough_alone(root: Path, tmp_path: Path) -> None:
    xcoms = {RUN1: {
        ("extract", "return_value"): {"fingerprint": FP2, "pairs": 10, "queries": 5},
        ("validate", "return_value"): json.dumps({"success": False, "rows": 10, "queries": 5,
                                                  "failed": ["min_rows: 10 < 50"], "data_docs_path": "/x/index.html"}),
        ("gate", "decision"): {"outcome": "needs_approval", "reasons": ["significance"], "forced": []},
    }}
    _, oldest = _records(root, xcoms)
    assert oldest.fingerprint_short == "12345678" and oldest.pairs == 10
    assert oldest.validation_success is False and oldest.validation_failed == ["min_rows: 10 < 50"]
    assert oldest.gate_outcome == "needs_approval"
    assert oldest.sources["extract"] == "xcom" and oldest.sources["evaluate"] == "artifact"

    # No artifacts at all (another machine's disk, or pruned): the XComs alone make the row.
    record = build_record(_info(RUN1, 0), {**xcoms[RUN1], ("evaluate", "return_value"): _metrics(0.8, 0.4, 0.7)},
                          None, dag_id=DAG_ID, prefix="/base/reranker")
    assert record.metric("candidate") == 0.8 and record.delta_vs_champion == pytest.approx(0.1)
    assert record.data_docs_url is not None and record.data_docs_url.startswith("/base/reranker/runs/")
    assert set(record.sources.values()) == {"xcom"}


def test_publish_variants(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    _write(run_dir / "publish/dry_run.json", {"dry_run": True, "repo_id": "local/rr", "files": ["README.md"]})
    record = build_record(_info("r", 0), {}, run_dir, dag_id=DAG_ID, prefix=URL_PREFIX)
    assert record.dry_run and record.commit_sha is None and record.publish_note == "dry run: nothing pushed"
    other = tmp_path / "c"
    _write(other / "publish/conflict.json", {"promoted": False, "reason": "main moved"})
    record = build_record(_info("c", 0), {}, other, dag_id=DAG_ID, prefix=URL_PREFIX)
    assert record.publish_note == "main moved" and record.commit_sha is None


def test_artifacts_in_an_object_store_are_read_through_fsspec(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store root (here fsspec's ``memory://``): the fallback records and the Data Docs come from the store."""
    import uuid

    from upath import UPath

    location = f"memory://runs-view-{uuid.uuid4().hex[:8]}/artifacts"
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", location)
    root = runs.artifacts_root()
    assert isinstance(root, UPath) and str(root) == location
    run_dir = runs.local_run_dir(RUN1)
    (run_dir / "evaluate").mkdir(parents=True, exist_ok=True)
    (run_dir / "evaluate" / "metrics.json").write_text(json.dumps(_metrics(0.8, 0.4, None)))
    docs = run_dir / "validate" / "data_docs"
    (docs / "static").mkdir(parents=True, exist_ok=True)
    (docs / "index.html").write_text("<html>checks</html>")
    (docs / "static" / "style.css").write_text("p {}")
    (run_dir / "validate" / "validation.json").write_text('{"success": false}')

    (record,) = build_records([_info(RUN1, 0)], {}, dag_id=DAG_ID, prefix=URL_PREFIX)
    assert record.metric("candidate") == 0.8 and record.sources == {"evaluate": "artifact", "validate": "artifact"}
    assert record.data_docs_url and record.validation_success is False
    assert resolve_data_docs_file(run_dir, "").read_text() == "<html>checks</html>"
    assert resolve_data_docs_file(run_dir, "static/style.css").read_text() == "p {}"
    for bad in ("../validation.json", "static/../../validation.json", "/etc/passwd", "..", "static", "missing.html",
                "a\x00b", "C:/x"):
        assert resolve_data_docs_file(run_dir, bad) is None, bad
    root.fs.rm(root.path, recursive=True)


def test_a_store_this_server_cannot_open_leaves_the_xcoms(monkeypatch: pytest.MonkeyPatch) -> None:
    """No fsspec backend for the scheme on the api-server (a scheme fsspec does not know): XComs only, no error."""
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", "nosuchstore://bucket/artifacts")
    assert runs.artifacts_root() is None and runs.local_run_dir(RUN1) is None
    xcoms = {RUN1: {("evaluate", "return_value"): _metrics(0.8, 0.4, None)}}
    (record,) = build_records([_info(RUN1, 0)], xcoms, dag_id=DAG_ID, prefix=URL_PREFIX)
    assert record.metric("candidate") == 0.8 and record.sources == {"evaluate": "xcom"}


def test_model_card_url() -> None:
    sha = "d" * 40
    card = f"https://hf.co/org/m/blob/{sha}/README.md"
    assert model_card_url(f"https://hf.co/org/m/commit/{sha}", "org/m", sha) == card
    assert model_card_url(None, "org/m", sha, endpoint="http://hub:1/") == f"http://hub:1/org/m/blob/{sha}/README.md"
    assert model_card_url(None, "org/m", None) is None


def test_decode_xcom_value() -> None:
    assert decode_xcom_value({"a": 1}) == {"a": 1}
    assert decode_xcom_value('{"a": 1}') == {"a": 1}
    assert decode_xcom_value(b'[1, 2]') == [1, 2]
    assert decode_xcom_value("s3://bucket/xcom/abc") == "s3://bucket/xcom/abc"  # an object-storage reference
    assert decode_xcom_value(None) is None


def test_data_docs_files_are_confined_to_the_runs_data_docs(root: Path, tmp_path: Path) -> None:
    run_dir = run_dir_for(RUN1, root)
    docs = run_dir / "validate/data_docs"
    assert resolve_data_docs_file(run_dir, "") == (docs / "index.html").resolve()
    assert resolve_data_docs_file(run_dir, "static/style.css") == (docs / "static/style.css").resolve()
    (tmp_path / "secret.txt").write_text("no")
    (docs / "leak.txt").symlink_to(tmp_path / "secret.txt")
    for bad in ("../validation.json", "../../../secret.txt", "static/../../validation.json", "/etc/passwd",
                "leak.txt", "static", "missing.html", "a\x00b", "C:/x"):
        assert resolve_data_docs_file(run_dir, bad) is None, bad
    assert resolve_data_docs_file(run_dir_for(RUN2, root), "index.html") is None  # run 2 has no Data Docs


def test_page_and_chart(root: Path) -> None:
    records = _records(root)
    page = render_page(records, dag_id=DAG_ID, prefix="/reranker", generated_at=T0)
    assert page.count('<tr class="run"') == 2
    assert page.index(f'data-run-id="{RUN2}') < page.index(f'data-run-id="{RUN1}')  # newest first
    for text in ("97b0fe68", "600 pairs", "120 queries", "not promoted", "0.9100", "0.4400", "promote", "reject",
                 "+0.0000",
                 f"{HUB}/local/rr/blob/{'c' * 40}/README.md", "Data Docs", 'href="/reranker/api/runs"'):
        assert text in page, text
    assert "<script" not in page and "src=" not in page  # self-contained: no JS, no external resources
    chart = render_metric_chart(records)
    assert chart.startswith("<svg") and chart.count('class="point"') == 2
    assert chart.count('class="champion"') == 1  # run 2's champion, a ring around its equal candidate point
    assert "No evaluated runs yet" in render_metric_chart([])


def test_page_escapes_what_it_shows(tmp_path: Path) -> None:
    evil = 'manual__<script>alert("x")</script>'
    record = build_record(_info(evil, 0), {("gate", "decision"): {"outcome": "<b>x</b>", "reasons": ['"><i>']}},
                          tmp_path, dag_id=DAG_ID, prefix=URL_PREFIX)
    page = render_page([record], dag_id=DAG_ID, prefix=URL_PREFIX)
    assert "<script>" not in page and "<b>x</b>" not in page and '"><i>' not in page
    assert "&lt;script&gt;" in page


@pytest.fixture
def links() -> Iterator[Any]:
    yield importlib.import_module("reranker_monitoring.links")


class _RunningTI:
    """What the worker passes as ``ti_key`` when a task ends: a task instance with ``xcom_pull``."""

    def __init__(self, task_id: str, xcoms: dict[str, Any], dag_id: str = DAG_ID) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = dag_id, task_id, RUN1, -1
        self._xcoms = xcoms

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self._xcoms.get(task_ids) if key == "return_value" else None


def test_extra_links_answer_only_for_their_task(links: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sha = "e" * 40
    xcoms: dict[str, Any] = {
        "publish": {"repo_id": "local/rr", "commit_sha": sha, "commit_url": f"{HUB}/local/rr/commit/{sha}"},
        "validate": {"data_docs_path": "/a/index.html"},
    }
    monkeypatch.setattr(links, "base_path", lambda: "")
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", str(tmp_path))

    commit, card, docs = links.HubCommitLink(), links.ModelCardLink(), links.DataDocsLink()
    assert [link.name for link in links.links_for("publish")] == ["Hub commit", "Model card"]
    assert [link.name for link in links.links_for("validate")] == ["GX Data Docs"]
    assert links.links_for("train") == [] and all(link.operators == [] for link in links.LINKS)
    assert commit.get_link(None, ti_key=_RunningTI("publish", xcoms)) == f"{HUB}/local/rr/commit/{sha}"
    assert card.get_link(None, ti_key=_RunningTI("publish", xcoms)) == f"{HUB}/local/rr/blob/{sha}/README.md"
    assert docs.get_link(None, ti_key=_RunningTI("validate", xcoms)) == (
        "/reranker/runs/manual__2026-12-01T10%3A00%3A00%2B00%3A00/data-docs/index.html")
    for link in (commit, card, docs):
        assert link.get_link(None, ti_key=_RunningTI("train", xcoms)) == ""
        assert link.get_link(None, ti_key=_RunningTI(link.task_id, xcoms, dag_id="other_dag")) == ""
    empty: dict[str, Any] = {}  # publish in a dry run, or a failed validation: no return value
    assert commit.get_link(None, ti_key=_RunningTI("publish", empty)) == ""
    assert docs.get_link(None, ti_key=_RunningTI("validate", empty)) == ""
    index = run_dir_for(RUN1, tmp_path) / "validate/data_docs/index.html"
    index.parent.mkdir(parents=True)
    index.write_text("<html></html>")  # a failed validation still wrote its Data Docs: the link shows them
    assert docs.get_link(None, ti_key=_RunningTI("validate", empty)).endswith("/data-docs/index.html")


def test_the_dag_attaches_the_links_to_their_tasks_only() -> None:
    """Serialized as the api-server reads them: ``{name: xcom key}`` on ``publish`` and ``validate``, nothing else."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.serialized_objects import DagSerialization

    bag = DagBag(str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    serialized = DagSerialization.to_dict(bag.dags[DAG_ID])
    found = {}
    for task in serialized["dag"]["tasks"]:
        task = task.get("__var", task)
        if task.get("_operator_extra_links"):
            found[task["task_id"]] = task["_operator_extra_links"]
    assert found == {
        "publish": {"Hub commit": "_link_HubCommitLink", "Model card": "_link_ModelCardLink"},
        "validate": {"GX Data Docs": "_link_DataDocsLink"},
    }


def test_airflow_loads_the_plugin_cheaply() -> None:
    """Airflow's own loader finds exactly our plugin (the helper package is .airflowignore'd); loading it imports
    neither FastAPI nor Airflow's API security module, as every task process loads plugins."""
    probe = (
        "import sys, json\n"
        "from airflow.sdk._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory\n"
        f"plugins, errors = _load_plugins_from_plugin_directory({str(PLUGINS)!r})\n"
        "p = plugins[0]\n"
        "print(json.dumps({'names': [x.name for x in plugins], 'errors': errors,\n"
        "  'links': [l.name for l in p.operator_extra_links],\n"
        "  'apps': [(a['url_prefix'], a['name']) for a in p.fastapi_apps],\n"
        "  'views': [(v['href'], v['url_route'], v['destination']) for v in p.external_views],\n"
        "  'heavy': [m for m in ('fastapi', 'airflow.api_fastapi.core_api.security', 'reranker_monitoring.app')\n"
        "            if m in sys.modules], 'helpers_as_top_level': [m for m in ('runs', 'links', 'app')\n"
        "            if m in sys.modules]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=180, check=True)
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["names"] == ["reranker_monitoring"] and found["errors"] == {}
    assert found["links"] == ["Hub commit", "Model card", "GX Data Docs"]
    assert found["apps"] == [["/reranker", "Reranker runs"]]
    assert found["views"] == [["/reranker/", "reranker-runs", "nav"]]
    assert found["heavy"] == [] and found["helpers_as_top_level"] == []


def test_every_route_requires_airflow_auth() -> None:
    """No credentials, no data: Airflow's ``get_user`` answers 401 before any route or DB access."""
    from fastapi.testclient import TestClient

    app = importlib.import_module("reranker_monitoring.app").create_app()
    with TestClient(app) as client:
        for path in ("/", "/api/runs", f"/api/runs/{RUN1}", f"/runs/{RUN1}/model-card",
                     f"/runs/{RUN1}/data-docs/index.html", f"/runs/{RUN1}/data-docs"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 401, (path, response.status_code, response.text)


def test_the_twin_dags_tasks_get_the_links_and_its_runs_link_to_their_own_dag(
    links: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The asset-scheduled twin runs the same pipeline: its publish and validate show the same buttons, and its
    runs in the view link to the twin's run page (the bug: the plugin served ``reranker_retrain`` only)."""
    twin = f"{DAG_ID}_on_labels"
    assert monitoring.DAG_IDS == (DAG_ID, twin)
    sha = "f" * 40
    xcoms = {"publish": {"repo_id": "local/rr", "commit_sha": sha, "commit_url": f"{HUB}/local/rr/commit/{sha}"},
             "validate": {"data_docs_path": "/a/index.html"}}
    monkeypatch.setattr(links, "base_path", lambda: "")
    monkeypatch.setenv("RERANKER_ARTIFACTS_ROOT", str(tmp_path))
    assert links.HubCommitLink().get_link(None, ti_key=_RunningTI("publish", xcoms, dag_id=twin)) == (
        f"{HUB}/local/rr/commit/{sha}")
    assert links.DataDocsLink().get_link(None, ti_key=_RunningTI("validate", xcoms, dag_id=twin)).endswith(
        "/data-docs/index.html")

    weekly_run = DagRunInfo(run_id=RUN1, state="success", run_after=T0, dag_id=DAG_ID)
    twin_run = DagRunInfo(run_id="asset_triggered__2026-12-02T10:00:00+00:00", state="success",
                          run_after=T0 + timedelta(days=1), dag_id=twin)
    records = build_records([twin_run, weekly_run], {}, dag_id=DAG_ID, prefix=URL_PREFIX, root=tmp_path)
    assert [r.dag_id for r in records] == [twin, DAG_ID]
    assert records[0].ui_url == f"/dags/{twin}/runs/asset_triggered__2026-12-02T10%3A00%3A00%2B00%3A00"
    assert records[1].ui_url.startswith(f"/dags/{DAG_ID}/runs/")
    assert records[0].to_dict()["dag_id"] == twin
    page = render_page(records, dag_id=monitoring.DAG_IDS, prefix=URL_PREFIX)
    assert f'href="/dags/{twin}"' in page and f'href="/dags/{DAG_ID}"' in page
    assert f'data-dag-id="{twin}"' in page and f'data-dag-id="{DAG_ID}"' in page
