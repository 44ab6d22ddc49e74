"""Sources that are folders: a folder of data files (one format, the same columns, read in name order) and a
``datasets`` dataset saved with ``save_to_disk``.

Both are told apart from a single file by looking inside the folder; each file of a plain folder is read by
:mod:`reranker_tasks.sources.files`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reranker_tasks.errors import DataError
from reranker_tasks.sources.files import _LABELS, EXTENSIONS, _looks_like_triplets, _read_location, _suffix
from reranker_tasks.sources.locations import _call, _cause, _first_line, _Location, _looks_transient
from reranker_tasks.sources.results import RawSource, SourceUnavailable

#: Files that mark a saved ``datasets.Dataset`` / ``DatasetDict`` folder (``save_to_disk``).
DATASET_FILES = ("dataset_info.json", "state.json")
DATASET_DICT_FILE = "dataset_dict.json"


# --------------------------------------------------------------------------- folders


def _read_folder(folder: _Location, declared: str) -> RawSource:
    """Every data file directly in ``folder``, in name order: one format, the same columns."""
    entries = _call(folder, lambda: folder.fs.ls(folder.path, detail=True))
    names = sorted(
        name
        for name in (str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e.get("type") == "file")
        if not name.startswith((".", "_"))  # hidden files, _SUCCESS / _committed_* / _metadata markers
    )
    data_files = [n for n in names if _suffix(n) in EXTENSIONS]
    skipped = [n for n in names if _suffix(n) not in EXTENSIONS]
    if not data_files:
        found = f"; it holds only {skipped[:10]}" if skipped else ""
        raise DataError(
            f"source_path: no data files in folder {folder.display} (extensions {sorted(EXTENSIONS)}){found}"
        )

    formats = {name: EXTENSIONS[_suffix(name)] for name in data_files}
    if declared == "auto":
        for name, fmt in formats.items():
            if fmt == "jsonl" and _looks_like_triplets(folder.child(name)):
                formats[name] = "triplets"
    first = data_files[0]
    for name in data_files[1:]:
        if formats[name] != formats[first]:
            raise DataError(
                f"source_path: folder {folder.display} mixes formats: {formats[first]!r} ({first}) and "
                f"{formats[name]!r} ({name}); keep one format per folder"
            )
    fmt = formats[first] if declared == "auto" else declared

    frames: list[pd.DataFrame] = []
    typed = False
    for index, name in enumerate(data_files):
        frame, typed = _read_location(folder.child(name), fmt)
        frame["source_file"] = np.full(len(frame), index, dtype="int32")
        if frames:
            _check_same_columns(folder, data_files[0], frames[0], name, frame)
        frames.append(frame)
    columns = list(frames[0].columns)
    combined = pd.concat([f[columns] for f in frames], ignore_index=True)
    notes = []
    if skipped:
        notes.append(f"skipped {len(skipped)} file(s) without a data extension in {folder.display}: {skipped[:10]}")
    count = len(data_files)
    return RawSource(
        frame=combined, files=data_files, fmt=fmt, typed=typed, notes=notes,
        description=f"{count} {_LABELS.get(fmt, fmt)} file{'s' if count != 1 else ''} in {folder.display}",
    )


def _check_same_columns(
    folder: _Location, first: str, first_frame: pd.DataFrame, name: str, frame: pd.DataFrame
) -> None:
    """Every file has the first file's columns: a column one has and another lacks is an error naming both.

    Never aligned by filling NaN: a missing label column in one part file would become "no label" rows.
    """
    have, first_have = set(map(str, frame.columns)), set(map(str, first_frame.columns))
    for lacking, lacks, other, other_has in ((name, have, first, first_have), (first, first_have, name, have)):
        missing = sorted(other_has - lacks)
        if missing:
            raise DataError(
                f"source_path: {folder.child(lacking).display} lacks column(s) {missing} that {other} has; "
                "every file in the folder must have the same columns"
            )


# --------------------------------------------------------------------------- datasets


def _read_saved_dataset(location: _Location, max_rows: int) -> RawSource:
    """A ``datasets.Dataset`` saved with ``save_to_disk`` (memory-mapped; at most ``max_rows + 1`` rows read)."""
    import datasets

    target = location.uri if location.uri is not None else location.path
    try:
        loaded = datasets.load_from_disk(target)
    except FileNotFoundError as exc:
        raise DataError(
            f"source_path: no dataset saved with save_to_disk at {location.display} "
            f"({location.scrub(_first_line(exc))})"
        ) from _cause(location, exc)
    except Exception as exc:
        reason = location.scrub(_first_line(exc))
        if location.remote and _looks_transient(exc):
            raise SourceUnavailable(f"{location.display}: cannot be reached: {reason}") from None
        if not location.remote and not isinstance(exc, ValueError | OSError | ImportError | KeyError | TypeError):
            raise
        raise DataError(
            f"{location.display}: cannot be loaded as a datasets dataset: {reason}"
        ) from _cause(location, exc)
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        example = f"{location.display.rstrip('/')}/{splits[0]}" if splits else location.display
        raise DataError(
            f"source_path: {location.display} is a DatasetDict with splits {splits}; "
            f"point source_path at one split's folder, e.g. {example}"
        )
    notes: list[str] = []
    limit = max_rows + 1
    truncated = len(loaded) > limit
    if truncated:
        notes.append(f"the dataset has {len(loaded)} rows, more than max_rows={max_rows}; read the first {limit}")
        loaded = loaded.select(range(limit))
    frame = loaded.to_pandas().reset_index(drop=True)
    frame["source_row"] = np.arange(1, len(frame) + 1, dtype="int64")
    frame["source_file"] = np.zeros(len(frame), dtype="int32")
    return RawSource(
        frame=frame, files=[location.name], fmt="datasets", typed=True, notes=notes, truncated=truncated,
        description=f"datasets dataset at {location.display}",
    )


def _is_saved_dataset(location: _Location) -> bool:
    """A folder written by ``Dataset.save_to_disk`` (or ``DatasetDict.save_to_disk``: reported as such)."""
    def check() -> bool:
        if not location.fs.isdir(location.path):
            return False
        if location.fs.exists(location.child(DATASET_DICT_FILE).path):
            return True
        return all(location.fs.exists(location.child(name).path) for name in DATASET_FILES)

    return _call(location, check)
