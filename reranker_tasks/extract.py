"""Extract step: labeled pairs from their source → an immutable Parquet snapshot of this run.

Sources (see :mod:`reranker_tasks.sources`): CSV, TSV, JSONL, Parquet files, local or fsspec URIs, a folder of
them; the seed system's triplets JSONL; an SQL query on an Airflow connection; a ``datasets`` dataset on disk.

What extract does to the rows, and nothing more:

* **Column mapping** (``columns``): the source's names for ``query``, ``document``, ``label`` and the optional
  ``query_id``, ``doc_id``, ``slice``. Every other column is dropped and reported, never trained on
  (``strict_columns`` fails instead). A missing *required* column is left for validate to report with
  everything else wrong at once; a missing *mapped* column fails here, naming the mapping.
* **Label mapping** (``label_map``): a declared rule (``scale`` or ``values``, see
  :func:`reranker_tasks.config.check_label_map`) maps graded or categorical labels into [0, 1]. A label no
  rule covers is kept as text, so validate names its rows. Nothing is coerced silently: CSV/TSV labels are
  parsed from text, typed sources must hold numbers (``true`` is not ``1`` unless the map says so).
* **Triplets** (``query``, ``positive_text``, ``negative_texts``) are expanded to one pair per document:
  the positive gets 1.0, each negative 0.0; ``source_row`` is the triplet's line.
* **Exact duplicates** (same query, document and label) are dropped and counted; validate fails the run when
  they exceed ``max_duplicate_fraction``. Conflicting labels for one pair are kept for validate to report.

The snapshot (``pairs.parquet``; ``eval_pairs.parquet`` for a fixed ``eval_path`` set read the same way) is
written once per run with a fingerprint over content and mapping; a retried task reuses a complete snapshot
instead of re-reading a source that may have changed since.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker_tasks import layout
from reranker_tasks.config import ExtractConfig
from reranker_tasks.errors import DataError
from reranker_tasks.paths import read_json, write_json_atomic
from reranker_tasks.schema import format_refs  # noqa: F401 - re-exported
from reranker_tasks.sources import TRIPLET_KEYS, RawSource, read_source

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("query", "document", "label")
OPTIONAL_COLUMNS = ("query_id", "doc_id", "slice")
PROVENANCE_COLUMNS = ("source_row", "source_file")
SNAPSHOT_FILE = layout.SNAPSHOT_FILE
EVAL_SNAPSHOT_FILE = layout.EVAL_SNAPSHOT_FILE
MANIFEST_FILE = layout.EXTRACT_MANIFEST_FILE
_HASH_SLICE = 100_000


@dataclass(frozen=True)
class ExtractResult:
    """What the extract step produced (small: goes to XCom)."""

    snapshot_path: str
    fingerprint: str
    source_format: str
    source_description: str
    source_files: list[str]
    rows_read: int
    pairs: int
    queries: int
    positives: int
    duplicates_dropped: int
    duplicate_rows: list[str]
    dropped_columns: list[str]
    eval_snapshot_path: str | None = None
    eval_fingerprint: str | None = None
    eval_pairs: int = 0
    reused: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Pairs:
    frame: pd.DataFrame
    rows_read: int
    dropped_columns: list[str]
    duplicates_dropped: int
    duplicate_rows: list[str]


def extract_pairs(
    config: ExtractConfig, out_dir: Path, sql_url: str | None = None, relevance_threshold: float = 0.5
) -> ExtractResult:
    """Read the labeled pairs (and the fixed eval set, if any) and write the run's snapshot.

    Args:
        config: where to read from and how to map columns and labels.
        out_dir: the run's ``extract`` folder.
        sql_url: SQLAlchemy URL of ``config.sql_conn_id`` for SQL sources (resolved by the orchestrator;
            never logged or stored).
        relevance_threshold: labels at or above it count as positives (for the counts in the result).

    Raises:
        DataError: the source is missing, unreadable, malformed, or does not match the mapping.
    """
    manifest_path = out_dir / MANIFEST_FILE
    if manifest_path.exists() and (out_dir / SNAPSHOT_FILE).exists():
        log.info("reusing the complete snapshot of this run: %s", out_dir / SNAPSHOT_FILE)
        names = {f.name for f in fields(ExtractResult)}
        recorded = {k: v for k, v in read_json(manifest_path).items() if k in names}
        # Paths as they are now: an earlier try may have written them in another worker's scratch folder.
        recorded["snapshot_path"] = str(out_dir / SNAPSHOT_FILE)
        if recorded.get("eval_snapshot_path"):
            recorded["eval_snapshot_path"] = str(out_dir / Path(recorded["eval_snapshot_path"]).name)
        return ExtractResult(**recorded, reused=True)

    raw = read_source(config, sql_url)
    if raw.truncated:
        # Reading stopped at max_rows + 1: fail here, before de-duplication could shrink the cut-off data
        # back under the limit and let a partial source pass validation.
        raise DataError(f"the source has more than max_rows={config.max_rows} rows ({raw.description})")
    pairs = to_pairs(raw, config)
    raw_fmt, raw_description, raw_files, raw_notes = raw.fmt, raw.description, list(raw.files), list(raw.notes)
    del raw  # the raw frame is no longer needed: free it before the snapshot is converted and written
    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot = _write_parquet(pairs.frame, out_dir / SNAPSHOT_FILE)
    fingerprint = fingerprint_pairs(pairs.frame, config)
    notes: list[str] = []
    if pairs.dropped_columns:
        notes.append(f"dropped column(s) not used for training: {pairs.dropped_columns}")
    if pairs.duplicates_dropped:
        notes.append(
            f"dropped {pairs.duplicates_dropped} exact duplicate pair(s), e.g. source rows {format_refs(pairs.duplicate_rows)}"
        )

    eval_path = eval_fingerprint = None
    eval_pairs = 0
    if config.eval_path:
        eval_config = replace(config, source_path=config.eval_path, source_format="auto", sql_query="")
        golden = to_pairs(read_source(eval_config), eval_config)
        eval_path = str(_write_parquet(golden.frame, out_dir / EVAL_SNAPSHOT_FILE))
        eval_fingerprint = fingerprint_pairs(golden.frame, config)
        eval_pairs = len(golden.frame)
        notes.append(f"fixed eval set: {eval_pairs} pairs from {config.eval_path}")

    labels = pd.to_numeric(pairs.frame["label"], errors="coerce") if "label" in pairs.frame else pd.Series([])
    result = ExtractResult(
        snapshot_path=str(snapshot),
        fingerprint=fingerprint,
        source_format=raw_fmt,
        source_description=raw_description,
        source_files=raw_files,
        rows_read=pairs.rows_read,
        pairs=len(pairs.frame),
        queries=int(pairs.frame["query"].nunique()) if "query" in pairs.frame else 0,
        positives=int((labels >= relevance_threshold).sum()),
        duplicates_dropped=pairs.duplicates_dropped,
        duplicate_rows=pairs.duplicate_rows,
        dropped_columns=pairs.dropped_columns,
        eval_snapshot_path=eval_path,
        eval_fingerprint=eval_fingerprint,
        eval_pairs=eval_pairs,
        notes=notes + raw_notes,
    )
    manifest = {k: v for k, v in result.to_dict().items() if k != "reused"}
    write_json_atomic(manifest_path, {**manifest, "columns": list(pairs.frame.columns), "mapping": _mapping(config)})
    for note in result.notes:
        log.warning(note)
    log.info(
        "snapshot: %d pairs from %d rows (%s), fingerprint %s",
        result.pairs, result.rows_read, raw_description, fingerprint,
    )
    return result


def to_pairs(raw: RawSource, config: ExtractConfig) -> _Pairs:
    """Map a raw source to snapshot columns, map labels, and drop exact duplicates."""
    frame = raw.frame
    rows_read = len(frame)
    if raw.fmt == "triplets" or (raw.fmt in ("datasets", "parquet", "sql") and _has_triplet_shape(frame)):
        dropped = sorted(str(c) for c in frame.columns if c not in TRIPLET_KEYS | set(PROVENANCE_COLUMNS))
        frame = _expand_triplets(frame, raw.files)
    else:
        targets = {t: config.source_column(t) for t in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
        missing = sorted(f"{src!r} (for {t!r})" for t, src in targets.items() if t in config.columns and src not in frame)
        if missing:
            raise DataError(
                f"columns: mapped source column(s) {', '.join(missing)} not in the source; "
                f"its columns are {sorted(str(c) for c in frame.columns if c not in PROVENANCE_COLUMNS)}"
            )
        used = {src for src in targets.values() if src in frame}
        dropped = sorted(str(c) for c in frame.columns if c not in used and c not in PROVENANCE_COLUMNS)
        selected = {t: frame[src] for t, src in targets.items() if src in frame}
        frame = pd.DataFrame({**selected, **{c: frame[c] for c in PROVENANCE_COLUMNS}})
        for column in ("query", "document"):
            if column in frame:
                frame[column] = _text_column(frame[column], column, frame, raw.files)
        for column in OPTIONAL_COLUMNS:
            if column in frame:
                frame[column] = frame[column].map(lambda v: v if v is None or v is pd.NA else str(v)).astype("string")
        if "label" in frame:
            frame["label"] = map_labels(frame["label"], config.label_map, parse_text=not raw.typed)
    if dropped and config.strict_columns:
        raise DataError(f"strict_columns: the source has unmapped column(s) {dropped}; map or remove them")
    frame, duplicates, duplicate_rows = _drop_exact_duplicates(frame, raw.files)
    return _Pairs(frame.reset_index(drop=True), rows_read, dropped, duplicates, duplicate_rows)


def map_labels(values: pd.Series, label_map: dict[str, Any], parse_text: bool) -> pd.Series:
    """Labels as float64 (mapped by the declared rule), or as text when some label is not covered."""
    if not label_map:
        return _label_column(values, parse_text)
    if "scale" in label_map:
        low, high = (float(b) for b in label_map["scale"])
        numeric = _label_column(values, parse_text)
        if not pd.api.types.is_float_dtype(numeric.dtype):
            return numeric  # some label is not a number: validate reports its rows
        return (numeric - low) / (high - low)
    table = {_label_key(k): float(v) for k, v in label_map["values"].items()}
    keys = values.map(lambda v: None if _is_null(v) else _label_key(v))
    mapped = keys.map(table)
    if mapped[keys.notna()].notna().all():
        return mapped.astype("float64")
    return values.map(lambda v: None if _is_null(v) else str(v)).astype("string")


def fingerprint_pairs(frame: pd.DataFrame, config: ExtractConfig | None = None) -> str:
    """sha256 over the pairs' content and the mapping that produced it; independent of row order and provenance."""
    columns = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in frame.columns]
    mapping = _mapping(config) if config else {}
    digest = hashlib.sha256((json.dumps({"columns": columns, **mapping}, sort_keys=True) + "\n").encode())
    if len(frame):
        digest.update(np.sort(_row_hashes(frame, columns)).tobytes())
    return digest.hexdigest()


def _row_hashes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """A 64-bit hash of each row's text, computed in slices: the text copy of a slice is small, the whole
    frame's would double peak memory."""
    return np.concatenate(
        [
            pd.util.hash_pandas_object(
                frame[columns].iloc[start : start + _HASH_SLICE].astype("string").fillna("\x00<null>"), index=False
            ).to_numpy(dtype="uint64")
            for start in range(0, len(frame), _HASH_SLICE)
        ]
    )


def row_refs(frame: pd.DataFrame, files: list[str], limit: int = 5) -> list[str]:
    """Readable references of the first rows of ``frame``: ``"12"``, or ``"a.csv:12"`` with several files."""
    head = frame.head(limit)
    if len(files) > 1:
        return [f"{files[int(f)]}:{int(r)}" for f, r in zip(head["source_file"], head["source_row"], strict=True)]
    return [str(int(r)) for r in head["source_row"]]


def _expand_triplets(raw: pd.DataFrame, files: list[str]) -> pd.DataFrame:
    """One (query, positive, 1.0) pair and one (query, negative, 0.0) pair per negative, per triplet line."""
    missing = sorted(TRIPLET_KEYS - set(raw.columns))
    if missing:
        raise DataError(f"triplets source lacks key(s) {missing}")
    is_list = raw["negative_texts"].map(lambda v: isinstance(v, (list, np.ndarray)))
    if not is_list.all():
        bad = raw[~is_list]
        raise DataError(
            f"'negative_texts' is not a list in {len(bad)} triplet(s), source rows {format_refs(row_refs(bad, files))}"
        )
    negatives = raw[["query", "negative_texts", *PROVENANCE_COLUMNS]].explode("negative_texts")
    negatives = negatives[negatives["negative_texts"].map(lambda v: not (isinstance(v, float) and np.isnan(v)))]
    frame = pd.concat(
        [
            pd.DataFrame({"query": raw["query"], "document": raw["positive_text"], "label": 1.0,
                          **{c: raw[c] for c in PROVENANCE_COLUMNS}}),
            pd.DataFrame({"query": negatives["query"], "document": negatives["negative_texts"], "label": 0.0,
                          **{c: negatives[c] for c in PROVENANCE_COLUMNS}}),
        ],
        ignore_index=True,
    ).sort_values(["source_file", "source_row"], kind="stable", ignore_index=True)
    for column in ("query", "document"):
        frame[column] = _text_column(frame[column], column, frame, files)
    frame["label"] = frame["label"].astype("float64")
    frame["source_row"] = frame["source_row"].astype("int64")
    frame["source_file"] = frame["source_file"].astype("int32")
    return frame


def _has_triplet_shape(frame: pd.DataFrame) -> bool:
    """Triplet columns and no ``document`` column: the seed system's format in a typed container."""
    return TRIPLET_KEYS <= set(frame.columns) and "document" not in frame.columns


def _drop_exact_duplicates(frame: pd.DataFrame, files: list[str]) -> tuple[pd.DataFrame, int, list[str]]:
    """Drop repeated (query, document, label) rows, keeping the first; count them."""
    keys = [c for c in REQUIRED_COLUMNS if c in frame.columns]
    if len(keys) < 3 or frame.empty:
        return frame, 0, []
    # Candidates by row hash (light on memory), then confirmed on the exact text of the candidates only, so a
    # hash collision can never drop a row that is not an exact duplicate.
    hashes = pd.Series(_row_hashes(frame, keys), index=frame.index)
    candidates = hashes.duplicated(keep=False).to_numpy()
    repeated = np.zeros(len(frame), dtype=bool)
    if candidates.any():
        repeated[candidates] = frame.loc[candidates, keys].duplicated(keep="first").to_numpy()
    count = int(repeated.sum())
    return frame[~repeated], count, row_refs(frame[repeated], files) if count else []


def _write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".parquet.tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _mapping(config: ExtractConfig) -> dict[str, Any]:
    return {"columns": dict(config.columns), "label_map": dict(config.label_map)}


def _label_key(value: Any) -> str:
    """Canonical text of a label for ``label_map.values``: booleans as true/false, 2.0 as 2, text case-folded."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip()
    try:
        return _label_key(float(text)) if text else text
    except ValueError:
        return text.casefold()


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _text_column(values: pd.Series, column: str, frame: pd.DataFrame, files: list[str]) -> pd.Series:
    """Text stays text, nulls stay null; any other type is an error (a number is not a query)."""
    if pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values.dtype):
        return values.astype("string")
    is_text = values.map(lambda v: isinstance(v, str))
    wrong = ~(is_text | values.isna())
    if wrong.any():
        raise DataError(
            f"column {column!r} holds non-text values in {int(wrong.sum())} row(s), "
            f"source rows {format_refs(row_refs(frame[wrong], files))}"
        )
    return values.astype("string")


def _label_column(values: pd.Series, parse_text: bool) -> pd.Series:
    """float64 when every non-null label is a number; otherwise the labels as text, for validate to report."""
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("string")
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.astype("float64")
    non_null = values[values.notna()]
    if parse_text:
        stripped = values.where(values.isna(), values.astype(str).str.strip())
        blank = stripped.isna() | (stripped == "")
        parsed = pd.to_numeric(stripped.where(~blank), errors="coerce")
        if parsed[~blank].notna().all():
            return parsed.astype("float64")
        return values.astype("string")
    if non_null.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)).all():
        return values.astype("float64")
    return values.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)).astype("string")
