"""Extract step: labeled pairs from a file → an immutable Parquet snapshot of this run.

Accepted sources (by extension, or ``source_format``):

* CSV (``.csv``) with columns ``query``, ``document``, ``label``;
* JSONL (``.jsonl``/``.ndjson``), same columns, one object per line;
* Parquet (``.parquet``/``.pq``), same columns;
* the seed system's triplets JSONL (``query``, ``positive_text``, ``negative_texts``), expanded to one
  pair per document: the positive gets label 1.0, each negative 0.0. Detected automatically in a
  ``.jsonl`` file that has those keys.

The snapshot keeps only ``query``, ``document``, ``label`` (the ones present: a missing required column is
reported by the validate step, with everything else wrong at once) and ``source_row``, the 1-based data row
of the pair in the source (CSV: header not counted; JSONL: line; triplets: the triplet's line). Other
columns are dropped and reported, never trained on.

Nothing is coerced silently: CSV labels are parsed from text, but a label that is not a number stays text
(the validate step names its rows); JSONL/Parquet labels must already be numbers (``true`` is not ``1``).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reranker_tasks.config import ExtractConfig
from reranker_tasks.errors import DataError
from reranker_tasks.paths import read_json, write_json_atomic

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("query", "document", "label")
SNAPSHOT_FILE = "pairs.parquet"
MANIFEST_FILE = "manifest.json"
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_TRIPLET_KEYS = {"query", "positive_text", "negative_texts"}


@dataclass(frozen=True)
class ExtractResult:
    """What the extract step produced (small: goes to XCom)."""

    snapshot_path: str
    fingerprint: str
    source_format: str
    source_rows: int
    pairs: int
    dropped_columns: tuple[str, ...]
    reused: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot_path": self.snapshot_path,
            "fingerprint": self.fingerprint,
            "source_format": self.source_format,
            "source_rows": self.source_rows,
            "pairs": self.pairs,
            "dropped_columns": list(self.dropped_columns),
            "reused": self.reused,
        }


def extract_pairs(config: ExtractConfig, out_dir: Path) -> ExtractResult:
    """Read the labeled pairs and write the run's snapshot.

    A snapshot is written once per run: when ``out_dir`` already holds a complete one (its manifest is
    written last), a retried task reuses it instead of re-reading a source that may have changed since.

    Args:
        config: where to read from.
        out_dir: the run's ``extract`` folder.

    Returns:
        Paths, fingerprint and counts of the snapshot.

    Raises:
        DataError: the source is missing, unreadable, not UTF-8, malformed, or of an unknown format.
    """
    manifest_path = out_dir / MANIFEST_FILE
    if manifest_path.exists() and (out_dir / SNAPSHOT_FILE).exists():
        manifest = read_json(manifest_path)
        log.info("reusing the complete snapshot of this run: %s", out_dir / SNAPSHOT_FILE)
        return _result_from_manifest(manifest, reused=True)

    source = config.resolved_source()
    fmt = detect_format(source, config.source_format)
    frame, source_rows, dropped = read_source(source, fmt)
    fingerprint = fingerprint_pairs(frame)

    out_dir.mkdir(parents=True, exist_ok=True)
    snapshot = out_dir / SNAPSHOT_FILE
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".pairs.", suffix=".parquet.tmp")
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, snapshot)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    manifest = {
        "snapshot_path": str(snapshot),
        "fingerprint": fingerprint,
        "source_path": str(source),
        "source_format": fmt,
        "source_rows": source_rows,
        "pairs": len(frame),
        "columns": list(frame.columns),
        "dropped_columns": dropped,
    }
    write_json_atomic(manifest_path, manifest)
    if dropped:
        log.warning("dropped column(s) not used for training: %s", dropped)
    log.info("snapshot: %d pairs from %d source rows (%s), fingerprint %s", len(frame), source_rows, fmt, fingerprint)
    return _result_from_manifest(manifest, reused=False)


def detect_format(source: Path, declared: str) -> str:
    """The source format: the declared one, else from the extension (``.jsonl`` may hold triplets)."""
    if not source.exists():
        raise DataError(f"source_path: no such file: {source}")
    if not source.is_file():
        raise DataError(f"source_path: not a file: {source}")
    if declared != "auto":
        return declared
    fmt = _EXTENSIONS.get(source.suffix.lower())
    if fmt is None:
        raise DataError(
            f"source_path: cannot tell the format of {source.name!r} from its extension; "
            f"use one of {sorted(_EXTENSIONS)} or set source_format"
        )
    if fmt == "jsonl" and _looks_like_triplets(source):
        return "triplets"
    return fmt


def read_source(source: Path, fmt: str) -> tuple[pd.DataFrame, int, list[str]]:
    """Read a source into the snapshot frame.

    Returns:
        ``(frame, source_rows, dropped_columns)``; the frame has the present required columns plus ``source_row``.
    """
    line_numbers: list[int] | None = None
    if fmt in ("csv", "jsonl", "triplets"):
        _check_utf8(source)
    if fmt == "csv":
        _check_csv_shape(source)
    elif fmt in ("jsonl", "triplets"):
        line_numbers = _nonblank_line_numbers(source)
    try:
        if fmt == "csv":
            # Every column as text and no "NA"/"null" → NaN guessing: a query "NA" is a query.
            raw = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig", on_bad_lines="error")
            typed_labels = False
        elif fmt in ("jsonl", "triplets"):
            raw = pd.read_json(source, lines=True, dtype=False, encoding="utf-8", encoding_errors="strict")
            typed_labels = True
        elif fmt == "parquet":
            raw = pd.read_parquet(source)
            typed_labels = True
        else:  # pragma: no cover - config validation rejects other values
            raise DataError(f"source_format: unsupported format {fmt!r}")
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source}: not valid UTF-8 at byte offset {exc.start} ({exc.reason}); re-export the file as UTF-8"
        ) from exc
    except (ValueError, OSError, ImportError) as exc:
        # pandas' ParserError/EmptyDataError and pyarrow's ArrowInvalid are ValueErrors.
        raise DataError(f"{source}: cannot be read as {fmt}: {_first_line(exc)}") from exc

    source_rows = len(raw)
    raw = raw.reset_index(drop=True)
    if line_numbers is not None and len(line_numbers) == source_rows:
        raw["source_row"] = np.asarray(line_numbers, dtype="int64")  # JSONL: the line, blank lines counted
    else:
        raw["source_row"] = np.arange(1, source_rows + 1, dtype="int64")
    if fmt == "triplets":
        return _expand_triplets(raw, source), source_rows, sorted(
            str(c) for c in raw.columns if c not in _TRIPLET_KEYS | {"source_row"}
        )

    dropped = sorted(str(c) for c in raw.columns if c not in (*REQUIRED_COLUMNS, "source_row"))
    keep = [c for c in (*REQUIRED_COLUMNS, "source_row") if c in raw.columns]
    frame = raw[keep].copy()
    for column in ("query", "document"):
        if column in frame:
            frame[column] = _text_column(frame[column], column, frame["source_row"], source)
    if "label" in frame:
        frame["label"] = _label_column(frame["label"], parse_text=not typed_labels)
    return frame, source_rows, dropped


def fingerprint_pairs(frame: pd.DataFrame) -> str:
    """sha256 over the (query, document, label) content, independent of row order and of ``source_row``."""
    columns = [c for c in REQUIRED_COLUMNS if c in frame.columns]
    digest = hashlib.sha256(("|".join(columns) + "\n").encode())
    if len(frame):
        content = frame[columns].astype("string").fillna("\x00<null>")
        row_hashes = pd.util.hash_pandas_object(content, index=False).to_numpy(dtype="uint64")
        digest.update(np.sort(row_hashes).tobytes())
    return digest.hexdigest()


def _expand_triplets(raw: pd.DataFrame, source: Path) -> pd.DataFrame:
    """One (query, positive, 1.0) pair and one (query, negative, 0.0) pair per negative, per triplet line."""
    missing = sorted(_TRIPLET_KEYS - set(raw.columns))
    if missing:
        raise DataError(f"{source}: triplets file lacks key(s) {missing}")
    queries: list[Any] = []
    documents: list[Any] = []
    labels: list[float] = []
    rows: list[int] = []
    bad_rows: list[int] = []
    for query, positive, negatives, row in zip(
        raw["query"], raw["positive_text"], raw["negative_texts"], raw["source_row"], strict=True
    ):
        if not isinstance(negatives, list):
            bad_rows.append(int(row))
            continue
        for document, label in [(positive, 1.0), *((n, 0.0) for n in negatives)]:
            queries.append(query)
            documents.append(document)
            labels.append(label)
            rows.append(int(row))
    if bad_rows:
        raise DataError(f"{source}: 'negative_texts' is not a list on line(s) {bad_rows[:5]} ({len(bad_rows)} in all)")
    frame = pd.DataFrame(
        {"query": queries, "document": documents, "label": labels, "source_row": np.array(rows, dtype="int64")}
    )
    for column in ("query", "document"):
        frame[column] = _text_column(frame[column], column, frame["source_row"], source)
    frame["label"] = frame["label"].astype("float64")
    return frame


def _text_column(values: pd.Series, column: str, source_rows: pd.Series, source: Path) -> pd.Series:
    """Text stays text, nulls stay null; any other type is an error (a number is not a query)."""
    is_text = values.map(lambda v: isinstance(v, str))
    is_null = values.isna()
    wrong = ~(is_text | is_null)
    if wrong.any():
        rows = source_rows[wrong].tolist()
        raise DataError(
            f"{source}: column {column!r} holds non-text values in {len(rows)} row(s), source rows {rows[:5]}"
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


def _check_utf8(source: Path) -> None:
    """Fail on the first invalid UTF-8 byte, naming its offset in the file.

    Checked before parsing because parsers decode in blocks and report offsets within a block.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = pending = 0
    with source.open("rb") as handle:
        try:
            while chunk := handle.read(1 << 20):
                pending = len(decoder.getstate()[0])
                decoder.decode(chunk)
                offset += len(chunk)
            pending = len(decoder.getstate()[0])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            position = offset - pending + exc.start
            raise DataError(
                f"{source}: not valid UTF-8 at byte offset {position} ({exc.reason}); re-export the file as UTF-8"
            ) from exc


def _check_csv_shape(source: Path) -> None:
    """Every record has as many fields as the header.

    pandas does not reliably refuse a wider row: when the first data row (or every row) has one field
    more than the header, it silently takes the first column as the index and shifts the rest.
    """
    with source.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(f"{source}: empty CSV file (no header row)")
            width = len(header)
            data_row = 0
            for record in reader:
                if not record:
                    continue  # blank line: skipped by the parser too
                data_row += 1
                if len(record) != width:
                    raise DataError(
                        f"{source}: data row {data_row} (line {reader.line_num}) has {len(record)} fields, "
                        f"the header has {width}; quote fields that contain commas"
                    )
        except csv.Error as exc:
            raise DataError(f"{source}: malformed CSV at line {reader.line_num}: {exc}") from exc


def _nonblank_line_numbers(source: Path) -> list[int]:
    """1-based numbers of the non-blank lines (the JSON records) of a JSONL file."""
    with source.open("rb") as handle:
        return [number for number, line in enumerate(handle, start=1) if line.strip()]


def _looks_like_triplets(source: Path) -> bool:
    """True when the first non-blank JSONL line has the triplet keys and no ``document``."""
    import json

    try:
        with source.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    first = json.loads(line)
                    return isinstance(first, dict) and _TRIPLET_KEYS <= set(first) and "document" not in first
    except (UnicodeDecodeError, ValueError):
        return False  # let the real reader report the error with its position
    return False


def _result_from_manifest(manifest: dict[str, Any], reused: bool) -> ExtractResult:
    return ExtractResult(
        snapshot_path=manifest["snapshot_path"],
        fingerprint=manifest["fingerprint"],
        source_format=manifest["source_format"],
        source_rows=int(manifest["source_rows"]),
        pairs=int(manifest["pairs"]),
        dropped_columns=tuple(manifest["dropped_columns"]),
        reused=reused,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
