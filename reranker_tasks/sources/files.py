"""Single data files: CSV/TSV (through Arrow, with exact UTF-8 and field-count checks), JSONL (pairs or the
seed system's triplets) and Parquet; the format from the extension or ``source_format``.

The checks that run before and after parsing (byte offsets, data rows, line numbers) belong with the parsers
they guard; folders reuse :func:`_read_location` for each of their files.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from reranker_tasks.errors import DataError
from reranker_tasks.sources.locations import _call, _cause, _first_line, _local, _locate, _Location, _looks_transient
from reranker_tasks.sources.results import SourceUnavailable

EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
TRIPLET_KEYS = {"query", "positive_text", "negative_texts"}
DELIMITERS = {"csv": ",", "tsv": "\t"}
_LABELS = {
    "csv": "CSV",
    "tsv": "TSV",
    "jsonl": "JSONL",
    "triplets": "triplets JSONL",
    "parquet": "Parquet",
}


def detect_format(source: Path | str, declared: str) -> str:
    """The format of one file: the declared one, else from the extension (``.jsonl`` may hold triplets).

    ``source`` is a local path, or (as a string) an fsspec URI.
    """
    location = _locate(source) if isinstance(source, str) else _local(source)
    return _file_format(location, declared)


def _read_delimited(location: _Location, fmt: str) -> pd.DataFrame:
    """CSV/TSV through Arrow's multi-threaded parser (about 15x faster than pandas' on large files).

    Every column is read as text, and no "NA"/"null" guessing: a query "NA" is a query. Arrow refuses a record
    whose field count differs from the header's, and invalid UTF-8; its messages quote the row, so on any
    failure the file is re-scanned with the precise checks (byte offset, data row and line), which never
    quote data.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = DELIMITERS[fmt]
    try:
        with location.fs.open(location.path, "rb") as handle:
            text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
            header = next(csv.reader(text, delimiter=delimiter), None)
    except UnicodeDecodeError:
        _check_utf8(location)  # raises with the exact byte offset
        raise
    if not header:
        _check_csv_shape(location, delimiter)  # raises the "empty file" error
    try:
        with location.fs.open(location.path, "rb") as handle:
            table = pacsv.read_csv(
                handle,
                parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types={name: pa.string() for name in header},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        _check_utf8(location)
        _check_csv_shape(location, delimiter)
        reason = re.sub(r"(Expected \d+ columns, got \d+).*", r"\1", _first_line(exc), flags=re.S)
        raise DataError(f"{location.display}: cannot be read as {fmt}: {location.scrub(reason)}") from None
    return table.to_pandas(self_destruct=True, split_blocks=True)


def _file_format(location: _Location, declared: str) -> str:
    if not _call(location, lambda: location.fs.exists(location.path)):
        raise DataError(f"source_path: no such file: {location.display}")
    if not _call(location, lambda: location.fs.isfile(location.path)):
        raise DataError(f"source_path: not a file: {location.display}")
    if declared != "auto":
        return declared
    fmt = EXTENSIONS.get(_suffix(location.name))
    if fmt is None:
        raise DataError(
            f"source_path: cannot tell the format of {location.name!r} from its extension; "
            f"use one of {sorted(EXTENSIONS)} or set source_format"
        )
    if fmt == "jsonl" and _looks_like_triplets(location):
        return "triplets"
    return fmt


def _read_location(location: _Location, fmt: str) -> tuple[pd.DataFrame, bool]:
    """Check and parse one file."""
    source = location.display
    line_numbers: list[int] | None = None
    try:
        if fmt in ("jsonl", "triplets"):
            _check_utf8(location)
            line_numbers = _nonblank_line_numbers(location)
        if fmt in DELIMITERS:
            raw, typed = _read_delimited(location, fmt), False
        elif fmt in ("jsonl", "triplets", "parquet"):
            with location.fs.open(location.path, "rb") as handle:
                if fmt == "parquet":
                    raw = pd.read_parquet(handle)
                else:
                    raw = pd.read_json(handle, lines=True, dtype=False, encoding="utf-8", encoding_errors="strict")
            typed = True
        else:
            raise DataError(f"source_format: {fmt!r} is not supported for {source}")
    except (DataError, SourceUnavailable):
        raise
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{source}: not valid UTF-8 at byte offset {exc.start} ({exc.reason}); re-export the file as UTF-8"
        ) from _cause(location, exc)
    except FileNotFoundError as exc:
        raise DataError(f"source_path: no such file: {source}") from _cause(location, exc)
    except Exception as exc:
        reason = location.scrub(_first_line(exc))
        if location.remote and _looks_transient(exc):
            raise SourceUnavailable(f"{source}: cannot be reached: {reason}") from None
        if not location.remote and not isinstance(exc, ValueError | OSError | ImportError):
            raise  # a bug, not bad data (a remote backend's error is reported below: its text may hold secrets)
        # pandas' ParserError/EmptyDataError and pyarrow's ArrowInvalid are ValueErrors.
        raise DataError(f"{source}: cannot be read as {fmt}: {reason}") from _cause(location, exc)

    raw = raw.reset_index(drop=True)
    if line_numbers is not None and len(line_numbers) == len(raw):
        raw["source_row"] = np.asarray(line_numbers, dtype="int64")  # JSONL: the line, blank lines counted
    else:
        raw["source_row"] = np.arange(1, len(raw) + 1, dtype="int64")
    return raw, typed


def _check_utf8(location: _Location) -> None:
    """Fail on the first invalid UTF-8 byte, naming its offset in the file.

    Checked before parsing because parsers decode in blocks and report offsets within a block.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = pending = 0
    with location.fs.open(location.path, "rb") as handle:
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
                f"{location.display}: not valid UTF-8 at byte offset {position} ({exc.reason}); "
                "re-export the file as UTF-8"
            ) from exc


def _check_csv_shape(location: _Location, delimiter: str = ",") -> None:
    """Every record has as many fields as the header.

    pandas does not reliably refuse a wider row: when the first data row (or every row) has one field
    more than the header, it silently takes the first column as the index and shifts the rest.
    """
    source = location.display
    kind = "TSV" if delimiter == "\t" else "CSV"
    separator = "tabs" if delimiter == "\t" else "commas"
    with _text(location, encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(f"{source}: empty {kind} file (no header row)")
            width = len(header)
            data_row = 0
            for record in reader:
                if not record:
                    continue  # blank line: skipped by the parser too
                data_row += 1
                if len(record) != width:
                    raise DataError(
                        f"{source}: data row {data_row} (line {reader.line_num}) has {len(record)} fields, "
                        f"the header has {width}; quote fields that contain {separator}"
                    )
        except csv.Error as exc:
            raise DataError(f"{source}: malformed {kind} at line {reader.line_num}: {exc}") from exc


def _nonblank_line_numbers(location: _Location) -> list[int]:
    """1-based numbers of the non-blank lines (the JSON records) of a JSONL file."""
    with location.fs.open(location.path, "rb") as handle:
        return [number for number, line in enumerate(handle, start=1) if line.strip()]


def _looks_like_triplets(location: _Location) -> bool:
    """True when the first non-blank JSONL line has the triplet keys and no ``document``."""
    try:
        with _text(location, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    first = json.loads(line)
                    return isinstance(first, dict) and TRIPLET_KEYS <= set(first) and "document" not in first
    except (UnicodeDecodeError, ValueError):
        return False  # let the real reader report the error with its position
    return False


@contextmanager
def _text(location: _Location, encoding: str) -> Iterator[IO[str]]:
    with location.fs.open(location.path, "rb") as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as text:
        yield text


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()
