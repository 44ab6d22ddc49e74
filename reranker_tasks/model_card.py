"""Model-card step: the sentence-transformers card plus the evidence for this promotion.

The train step saved the card sentence-transformers generates (model details, training-set statistics,
loss and its parameters, hyperparameters, framework versions, usage), with training rows scrubbed.
This step stages the publishable files (an allow-list: weights, configs, tokenizer, card; never
checkpoints or pickles) and adds:

* an evaluation table: candidate vs untuned base vs champion on the held-out eval queries, with deltas and the
  paired-bootstrap confidence intervals of the gate metric, also written to the card's ``model-index`` metadata;
* per-slice results when the data has slices;
* the data-validation summary;
* the gate decision: outcome, every rule, and who approved a borderline candidate;
* lineage: data fingerprint and counts, base model and its revision, config hash, DAG run id, library versions
  (never credentials, connection URLs or SQL text: :func:`redact_config`);
* a usage snippet that runs as written against the pushed repo (its texts are invented, not the run's data).

Last, it checks the finished card quotes no training or eval text (a privacy guard that does not trust
the scrubbing alone).
"""

from __future__ import annotations

import logging
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from reranker_tasks import layout
from reranker_tasks.errors import RerankerError
from reranker_tasks.modelio import MODEL_FILE_ALLOWLIST

log = logging.getLogger(__name__)

STAGING_DIR = layout.STAGING_DIR
_METRIC_LABELS = {
    "map": "MAP",
    "mrr@10": "MRR@10",
    "ndcg@10": "NDCG@10",
    "hit@1": "Hit@1",
    "hit@3": "Hit@3",
    "hit@10": "Hit@10",
    "average_precision": "Pairwise AP",
    "f1": "Pairwise best F1",
    "f1_threshold": "Best-F1 threshold",
    "precision": "Precision at best F1",
    "recall": "Recall at best F1",
    "accuracy": "Pairwise best accuracy",
    "accuracy_threshold": "Best-accuracy threshold",
}
# Thresholds are settings a consumer may copy, not quality scores: shown in the table, kept out of model-index.
_NOT_QUALITY = ("f1_threshold", "accuracy_threshold", "score_std")
LIBRARIES = ("sentence-transformers", "transformers", "torch", "huggingface-hub", "great-expectations",
             "apache-airflow", "datasets")
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
    examples: int = 0,
    training: dict[str, Any] | None = None,
) -> CardResult:
    """Stage the candidate's publishable files with the full card in ``out_dir/staging``.

    Args:
        candidate_dir: the trained model folder (holds the generated README.md).
        out_dir: the run's ``model_card`` folder.
        metrics: the evaluate step's result.
        decision: the gate decision.
        validation: the validate step's summary.
        lineage: run id, DAG id, data fingerprint and counts, configuration.
        data_paths: Parquet files of the run's pairs (training split first); the card quotes none of their texts,
            except ``examples`` training pairs when the run opted in.
        examples: training pairs to quote (``card_examples``; 0 = none).
        training: the train step's result (recipe facts: dev split, curve and chosen step, mined negatives).

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
        if source.is_file() and name != layout.MODEL_CARD_FILE:
            shutil.copy2(source, staging / name)
            copied.append(name)

    card = ModelCard.load(candidate_dir / layout.MODEL_CARD_FILE)
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
        if key not in _NOT_QUALITY and _is_number(value)
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

    quoted = _training_examples(data_paths[0], examples) if examples and data_paths else None
    sections = "\n".join(
        [
            _evaluation_section(metrics, metric_key, decision.get("evidence") or {}),
            _slices_section(metrics, metric_key),
            _validation_section(validation),
            _gate_section(decision),
            _training_section(training or {}),
            _lineage_section(lineage),
            _examples_section(quoted) if quoted is not None else "",
        ]
    )
    text = _with_usage_snippet(card.text, lineage.get("hub_repo_id") or "namespace/name")
    anchor = "## Training Details"
    card.text = text.replace(anchor, sections + "\n" + anchor, 1) if anchor in text else text + "\n" + sections
    readme = staging / layout.MODEL_CARD_FILE
    card.save(readme)
    allowed = set() if quoted is None else set(quoted["query"]) | set(quoted["document"])
    _assert_no_data_quoted(readme.read_text(encoding="utf-8"), data_paths, allowed)
    copied.append(layout.MODEL_CARD_FILE)
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


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _ci(boot: dict[str, Any] | None) -> str:
    if not boot or boot.get("mean_delta") is None:
        return ""
    return f" [{_signed(boot.get('ci_low'))}, {_signed(boot.get('ci_high'))}]"


def _signed(value: Any) -> str:
    try:
        return f"{float(value):+.4f}"
    except (TypeError, ValueError):
        return "n/a"


def _evaluation_section(metrics: dict[str, Any], metric_key: str, evidence: dict[str, Any]) -> str:
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
        ci_base = _ci(evidence.get("vs_base")) if key == metric_key else ""
        base_delta = _delta(value, metrics["base"].get(key)) + ci_base
        row = f"| {label} | {_fmt(value)} | {_fmt(metrics['base'].get(key))} | {base_delta} |"
        if champion:
            ci_champion = _ci(evidence.get("vs_champion")) if key == metric_key else ""
            row += f" {_fmt(champion.get(key))} | {_delta(value, champion.get(key))}{ci_champion} |"
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
            "seeded head initialisation as the start of training) and the champion. MAP, MRR@10 and NDCG@10 are "
            "sentence-transformers' reranking metrics, Hit@k the share of queries with a relevant document in the "
            "top k; the pairwise rows score every eval pair as a binary classification (labels binarised at "
            "the relevance threshold)."
            + (f" Dropped eval queries: {', '.join(dropped)}." if dropped else ""),
            "",
            f"Brackets: {_confidence(evidence)} confidence interval of the {_METRIC_LABELS.get(metric_key, metric_key)} "
            "difference from a seeded paired bootstrap over the eval queries."
            if evidence
            else "",
            "",
            header,
            rule,
            *rows,
            "",
            champion_line,
            "",
        ]
    )


def _confidence(evidence: dict[str, Any]) -> str:
    level = evidence.get("confidence")
    return f"two-sided {float(level):.0%}" if _is_number(level) else "two-sided"


def _slices_section(metrics: dict[str, Any], metric_key: str) -> str:
    slices = metrics.get("slices") or {}
    if not slices:
        return ""
    label = _METRIC_LABELS.get(metric_key, metric_key)
    lines = ["### Results per slice", "", f"| Slice | Queries | Candidate {label} | Base | Champion |",
             "|:--|--:|--:|--:|--:|"]
    for name, by_model in sorted(slices.items()):
        cand = (by_model or {}).get("candidate") or {}
        base = (by_model or {}).get("base") or {}
        champ = (by_model or {}).get("champion") or {}
        lines.append(
            f"| {name} | {cand.get('queries', 'n/a')} | {_fmt(cand.get(metric_key))} | {_fmt(base.get(metric_key))} "
            f"| {_fmt(champ.get(metric_key)) if champ else 'n/a'} |"
        )
    lines.append("")
    return "\n".join(lines)


def _with_usage_snippet(text: str, repo_id: str) -> str:
    """Put our snippet in place of sentence-transformers' usage code (one snippet, the tested one)."""
    heading = "### Direct Usage (Sentence Transformers)"
    start = text.find("```python", text.find(heading)) if heading in text else -1
    end = text.find("```\n", start + len("```python")) if start >= 0 else -1
    if start < 0 or end < 0:
        return text + "\n## Usage\n\n" + usage_snippet(repo_id)
    return text[:start] + usage_snippet(repo_id) + text[end + len("```\n"):]


def usage_snippet(repo_id: str) -> str:
    """Code that runs as written once the model is on the Hub (texts invented, never the run's data).

    The project's end-to-end tests run it against the pushed repository.
    """
    return "\n".join(
        [
            "```python",
            "from sentence_transformers import CrossEncoder",
            "",
            f'model = CrossEncoder("{repo_id}")',
            'query = "Which planet is known as the red planet?"',
            "documents = [",
            '    "Mars is often called the red planet because of the iron oxide on its surface.",',
            '    "The Pacific Ocean is the largest and deepest of the oceans on Earth.",',
            "]",
            "scores = model.predict([(query, doc) for doc in documents])",
            "ranking = model.rank(query, documents)",
            'print(scores, ranking[0]["corpus_id"])',
            "```",
            "",
        ]
    )


def _training_section(training: dict[str, Any]) -> str:
    """How the weights were chosen: dev split, evaluations, the kept step, class weight, mined negatives."""
    if not training:
        return ""
    lines = ["## Training recipe", ""]
    start = "the base model" if training.get("init_from", "base") == "base" else (
        f"the production model (commit `{(training.get('init_commit') or '')[:12]}`)")
    lines.append(
        f"- Fine-tuned from {start} on {training.get('train_rows')} pairs: {training.get('labeled_pairs')} labeled "
        f"and {training.get('mined_pairs', 0)} mined hard negatives (label 0; kept in the run's artifacts, "
        "not published)."
    )
    mining = training.get("mining") or {}
    if mining:
        lines.append(
            f"- Hard negatives mined with `{mining.get('model')}`: up to {mining.get('per_query')} per query for "
            f"{mining.get('queries')} queries, relative margin {mining.get('margin')} below the best positive; "
            f"{mining.get('skipped_labeled')} candidates already labeled for their query were skipped."
        )
    lines.append(f"- BinaryCrossEntropyLoss with pos_weight {_fmt(training.get('pos_weight'))}.")
    curve = training.get("curve") or []
    if training.get("dev_queries") and curve:
        stop = "stopped early" if training.get("stopped_early") else "ran to the epoch ceiling"
        lines.append(
            f"- Model selection on {training['dev_queries']} held-out training queries (dev split, not the eval "
            f"set): kept step {training.get('chosen_step')} of {training.get('global_step')} "
            f"(dev NDCG@10 {_fmt(training.get('best_dev_ndcg'))}); training {stop}."
        )
        lines += ["", "| Step | Epoch | Dev NDCG@10 | Dev MRR@10 | Dev MAP |", "|---:|---:|---:|---:|---:|"]
        for entry in curve:
            mark = " (kept)" if entry.get("step") == training.get("chosen_step") else ""
            lines.append(
                f"| {entry.get('step')}{mark} | {_fmt(entry.get('epoch'))} | {_fmt(entry.get('ndcg@10'))} | "
                f"{_fmt(entry.get('mrr@10'))} | {_fmt(entry.get('map'))} |"
            )
    else:
        lines.append(f"- No model selection: trained {training.get('global_step')} steps, the last one kept.")
    return "\n".join(lines) + "\n"


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
    outcome = decision.get("outcome") or ("promote" if decision.get("promote") else "reject")
    approval = decision.get("approval")
    if outcome == "promote" and decision.get("forced"):
        verdict = f"promoted by force (conf force=true), bypassing {', '.join(decision['forced'])}"
    elif outcome == "promote":
        verdict = "promoted: every rule passed"
    elif approval and approval.get("approved"):
        who = approval.get("responded_by") or approval.get("decided_by")
        verdict = f"promoted after approval by {who} ({approval.get('decided_by')})"
    else:
        verdict = f"not promoted ({outcome})"
    lines = [
        "## Promotion Decision",
        "",
        f"Decision: **{verdict}**.",
        "",
        "| Rule | Kind | Passed | Detail |",
        "|:--|:--|:--|:--|",
    ]
    for check in decision.get("checks", []):
        kind = "hard" if check.get("hard", True) else "needs approval"
        lines.append(f"| {check['rule']} | {kind} | {'yes' if check['passed'] else 'no'} | {check['detail']} |")
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
        f"- Base model: `{lineage.get('base_model', 'n/a')}`"
        + (f" at revision `{lineage['base_model_revision']}`" if lineage.get("base_model_revision") else ""),
        f"- Config hash (sha256 of the run configuration): `{config_hash(lineage.get('config', {}))}`",
        f"- Libraries: {', '.join(f'{name} {version}' for name, version in library_versions().items())}",
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


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the run config (the same config always hashes the same)."""
    import hashlib

    return hashlib.sha256(_json(config).encode()).hexdigest()


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape the model (``not installed`` when missing)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _json(payload: Any) -> str:
    import json

    return json.dumps(payload, indent=2, sort_keys=True, default=str)


def _training_examples(train_path: Path, count: int) -> pd.DataFrame:
    """The first ``count`` training pairs (the split is seeded, so the same run quotes the same pairs)."""
    frame = pd.read_parquet(train_path, columns=["query", "document", "label"])
    return frame.head(count).astype({"query": str, "document": str})


def _examples_section(examples: pd.DataFrame) -> str:
    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    lines = [
        "## Training Examples",
        "",
        f"{len(examples)} training pairs, quoted because the run set `card_examples` (by default no training text is "
        "published).",
        "",
        "| Query | Document | Label |",
        "|:--|:--|--:|",
        *(f"| {cell(q)} | {cell(d)} | {float(lab):g} |" for q, d, lab in examples.itertuples(index=False)),
        "",
    ]
    return "\n".join(lines)


def _assert_no_data_quoted(card_text: str, data_paths: tuple[Path, ...], allowed: set[str] | None = None) -> None:
    """Fail when any query or document of the run's data appears verbatim in the card (opted-in examples aside)."""
    allowed = allowed or set()
    for path in data_paths:
        frame = pd.read_parquet(path, columns=["query", "document"])
        for column in ("query", "document"):
            texts = frame[column].dropna().astype(str)
            texts = texts[texts.str.len() >= _MIN_QUOTE_LEN].unique()
            for text in texts:
                if text in card_text and text not in allowed:
                    raise CardLeak(
                        f"the model card quotes a {column} of the run's data ({Path(path).name}); refusing to publish it"
                    )
