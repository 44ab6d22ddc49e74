"""The runs view's HTML and SVG: the chart of the primary metric over runs and the table of runs.

Pure functions of :class:`~reranker_monitoring.runs.RunRecord` rows (assembled by :mod:`.runs`), no Airflow import;
every value is HTML-escaped on its way in. :mod:`.runs` still answers for :func:`render_page` and
:func:`render_metric_chart` (they lived there).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from reranker_monitoring.runs import PRIMARY_METRIC_FALLBACK, RunRecord

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
