"""Model-card step: the sentence-transformers card plus the evidence for this promotion.

The train step saved the card sentence-transformers generates (model details, training-set statistics,
loss and its parameters, hyperparameters, framework versions, usage), with training rows scrubbed.
This step stages the publishable files (an allow-list: weights, configs, tokenizer, card; never
checkpoints or pickles) and adds:

* an evaluation table: candidate vs untuned base vs champion on the held-out eval queries, with deltas,
  also written to the card's ``model-index`` metadata;
* the data-validation summary;
* the gate decision and its reasons;
* lineage: data fingerprint and counts, DAG run id, the run's configuration.

Last, it checks the finished card quotes no training or eval text (a privacy guard that does not trust
the scrubbing alone).
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reranker_tasks.errors import RerankerError
from reranker_tasks.train import MODEL_FILE_ALLOWLIST

log = logging.getLogger(__name__)

STAGING_DIR = "staging"
_METRIC_LABELS = {"map": "MAP", "mrr@10": "MRR@10", "ndcg@10": "NDCG@10"}
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")  # scheme://user:secret@host → scheme://host
_MIN_QUOTE_LEN = 16  # shorter strings ("reset password") can appear in a card by coincidence


class CardLeak(RerankerError):
    """The generated card quotes training or eval data."""


@dataclass(frozen=True)
class CardResult:
    staging_dir: str
    readme_path: str
    files: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"staging_dir": self.staging_dir, "readme_path": self.readme_path, "files": list(self.files)}


def write_model_card(
    candidate_dir: Path,
    out_dir: Path,
    *,
    metrics: dict[str, Any],
    decision: dict[str, Any],
    validation: dict[str, Any],
    lineage: dict[str, Any],
    data_paths: tuple[Path, ...] = (),
) -> CardResult:
    """Stage the candidate's publishable files with the full card in ``out_dir/staging``.

    Args:
        candidate_dir: the trained model folder (holds the generated README.md).
        out_dir: the run's ``model_card`` folder.
        metrics: the evaluate step's result.
        decision: the gate decision.
        validation: the validate step's summary.
        lineage: run id, DAG id, data fingerprint and counts, configuration.
        data_paths: Parquet files of the run's pairs; the card must quote none of their texts.

    Raises:
        CardLeak: the card contains a query or document of the run's data.
    """
    from huggingface_hub import EvalResult, ModelCard

    staging = out_dir / STAGING_DIR
    if staging.exists():
        shutil.rmtree(staging)  # a retry rebuilds the staging folder from scratch
    staging.mkdir(parents=True)
    copied = []
    for name in MODEL_FILE_ALLOWLIST:
        source = candidate_dir / name
        if source.is_file() and name != "README.md":
            shutil.copy2(source, staging / name)
            copied.append(name)

    card = ModelCard.load(candidate_dir / "README.md")
    metric_key = metrics["primary_metric"]
    card.data.model_name = card.data.model_name or f"Reranker {lineage.get('hub_repo_id', '')}".strip()
    card.data.eval_results = [
        EvalResult(
            task_type="text-ranking",
            task_name="Reranking",
            dataset_type="held-out-eval-queries",
            dataset_name=f"held-out eval queries ({metrics['eval_queries']})",
            metric_type=key,
            metric_name=_METRIC_LABELS.get(key, key),
            metric_value=round(float(value), 4),
        )
        for key, value in metrics["candidate"].items()
    ]
    tags = list(card.data.tags or [])
    for tag in ("reranker", "airflow-retrained"):
        if tag not in tags:
            tags.append(tag)
    card.data.tags = tags
    # Machine-readable lineage: the next run's freshness check reads it from the champion's card.
    card.data.reranker = {
        "data_fingerprint": lineage.get("data_fingerprint"),
        "pairs": lineage.get("pairs"),
        "queries": lineage.get("queries"),
        "eval_fingerprint": lineage.get("eval_fingerprint"),
        "run_id": lineage.get("run_id"),
        "primary_metric": metric_key,
        "primary_metric_value": round(float(metrics["candidate"][metric_key]), 6),
    }

    sections = "\n".join(
        [
            _evaluation_section(metrics, metric_key),
            _validation_section(validation),
            _gate_section(decision),
            _lineage_section(lineage),
        ]
    )
    text = card.text
    anchor = "## Training Details"
    card.text = text.replace(anchor, sections + "\n" + anchor, 1) if anchor in text else text + "\n" + sections
    readme = staging / "README.md"
    card.save(readme)
    _assert_no_data_quoted(readme.read_text(encoding="utf-8"), data_paths)
    copied.append("README.md")
    log.info("model card written: %s", readme)
    return CardResult(str(staging), str(readme), tuple(sorted(copied)))


def _fmt(value: Any) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return "n/a"


def _delta(a: Any, b: Any) -> str:
    try:
        return f"{float(a) - float(b):+.4f}"
    except (TypeError, ValueError):
        return "n/a"


def _evaluation_section(metrics: dict[str, Any], metric_key: str) -> str:
    champion = metrics.get("champion")
    header = "| Metric | Candidate | Untuned base | Δ vs base |"
    rule = "|:--|--:|--:|--:|"
    if champion:
        header += " Champion | Δ vs champion |"
        rule += "--:|--:|"
    rows = []
    for key, value in metrics["candidate"].items():
        label = _METRIC_LABELS.get(key, key)
        if key == metric_key:
            label = f"**{label}** (gate metric)"
        row = f"| {label} | {_fmt(value)} | {_fmt(metrics['base'].get(key))} | {_delta(value, metrics['base'].get(key))} |"
        if champion:
            row += f" {_fmt(champion.get(key))} | {_delta(value, champion.get(key))} |"
        rows.append(row)
    dropped = []
    if metrics.get("dropped_no_positive"):
        dropped.append(f"{metrics['dropped_no_positive']} without a positive")
    if metrics.get("dropped_no_negative"):
        dropped.append(f"{metrics['dropped_no_negative']} without a negative")
    champion_line = (
        f"Champion: the model on `main` at commit `{metrics['champion_commit']}`."
        if champion
        else "Champion: none (this is the first model of the repository)."
    )
    return "\n".join(
        [
            "## Evaluation",
            "",
            f"Reranking of {metrics['eval_queries']} held-out eval queries (no eval query appears in the training "
            "split), scored with `CrossEncoderRerankingEvaluator` for the candidate, the untuned base model (same "
            "seeded head initialisation as the start of training) and the champion."
            + (f" Dropped eval queries: {', '.join(dropped)}." if dropped else ""),
            "",
            header,
            rule,
            *rows,
            "",
            champion_line,
            "",
        ]
    )


def _validation_section(validation: dict[str, Any]) -> str:
    lines = [
        "## Data Validation",
        "",
        (
            f"Great Expectations suite: {validation.get('evaluated_expectations', 'n/a')} expectations evaluated, "
            f"{'all passed' if validation.get('success') else 'some failed'}."
        ),
        "",
        f"- Rows: {validation.get('rows', 'n/a')}",
        f"- Distinct queries: {validation.get('queries', 'n/a')}",
        f"- Positive / negative pairs: {validation.get('positives', 'n/a')} / {validation.get('negatives', 'n/a')}",
        "",
    ]
    return "\n".join(lines)


def _gate_section(decision: dict[str, Any]) -> str:
    verdict = "promoted" if decision.get("promote") else "not promoted"
    lines = ["## Promotion Decision", "", f"Decision: **{verdict}**.", "", "| Rule | Passed | Detail |", "|:--|:--|:--|"]
    for check in decision.get("checks", []):
        lines.append(f"| {check['rule']} | {'yes' if check['passed'] else 'no'} | {check['detail']} |")
    lines.append("")
    return "\n".join(lines)


def redact_config(config: dict[str, Any]) -> dict[str, Any]:
    """The run config as it may be published: no SQL text, no credentials inside URIs."""
    safe = dict(config)
    if safe.get("sql_query"):
        safe["sql_query"] = f"<{len(safe['sql_query'])} characters, not published>"
    for key in ("source_path", "eval_path"):
        if isinstance(safe.get(key), str):
            safe[key] = _USERINFO.sub(r"\1", safe[key])
    return safe


def _lineage_section(lineage: dict[str, Any]) -> str:
    config = redact_config(lineage.get("config", {}))
    lines = [
        "## Lineage",
        "",
        f"- Data fingerprint (sha256 of the pairs): `{lineage.get('data_fingerprint', 'n/a')}`",
        (
            f"- Pairs: {lineage.get('pairs', 'n/a')} ({lineage.get('train_pairs', 'n/a')} train / "
            f"{lineage.get('eval_pairs', 'n/a')} eval; {lineage.get('train_queries', 'n/a')} / "
            f"{lineage.get('eval_queries', 'n/a')} queries)"
        ),
        f"- Source format: {lineage.get('source_format', 'n/a')}",
        f"- Base model: `{lineage.get('base_model', 'n/a')}`",
        f"- Airflow DAG: `{lineage.get('dag_id', 'n/a')}`, run `{lineage.get('run_id', 'n/a')}`",
        "",
        "<details><summary>Run configuration</summary>",
        "",
        "```json",
        _json(config),
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def _json(payload: Any) -> str:
    import json

    return json.dumps(payload, indent=2, sort_keys=True, default=str)


def _assert_no_data_quoted(card_text: str, data_paths: tuple[Path, ...]) -> None:
    """Fail when any query or document of the run's data appears verbatim in the card."""
    for path in data_paths:
        frame = pd.read_parquet(path, columns=["query", "document"])
        for column in ("query", "document"):
            texts = frame[column].dropna().astype(str)
            texts = texts[texts.str.len() >= _MIN_QUOTE_LEN].unique()
            for text in texts:
                if text in card_text:
                    raise CardLeak(
                        f"the model card quotes a {column} of the run's data ({Path(path).name}); refusing to publish it"
                    )
