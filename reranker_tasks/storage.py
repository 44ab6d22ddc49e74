"""Where a run's artifacts live: a local folder, or any fsspec location (``s3://…``, ``gs://…``, a shared volume).

``RERANKER_ARTIFACTS_ROOT`` is a deployment setting with two forms:

* **a plain path** (the default, ``<project>/artifacts``): steps write in place, ``<root>/<run>/<step>/``, with
  temp-file-and-rename writes. One machine, or every worker mounting the same folder at the same path.
* **a URI** (``s3://bucket/reranker``, ``gs://…``, ``file:///mnt/shared/reranker``, ``memory://…`` in tests):
  the *store* mode. Tasks may run on different machines that share nothing but the store, and object stores have no
  atomic rename, so:

  - each task works in a private local scratch folder (``RERANKER_SCRATCH_DIR``, default the system temp folder),
    deleted when the task ends;
  - a step's inputs are downloaded from the store into that scratch folder, and only from steps whose completion
    marker exists — a half-uploaded step is never read;
  - when the step's function returns, its folder is uploaded file by file and the marker ``_COMPLETE.json`` is
    written *last*. It lists every file with its size and sha256, and a reader downloads exactly those files and
    checks both, so a retried upload's leftovers or a torn object can never be mixed in;
  - a step that starts (first try or retry) first deletes its old marker, then reuses its own last complete output
    (the snapshot of a retried extract, the model of a retried train), so steps stay idempotent across machines;
  - a step that fails still uploads what it wrote, without a marker (validation's Data Docs matter most then);
  - training checkpoints are mirrored to ``<run>/train/checkpoints/`` as they are saved (each one's own marker
    uploaded last), so a retry on another worker resumes from the newest complete one
    (:mod:`reranker_tasks.checkpoint_mirror`).

Paths in XCom follow the mode: local paths in the local mode, the artifact's URI in the store mode (what the UI
shows is then where the file really is). :meth:`RunArtifacts.local` turns either back into a local file.

Credentials: fsspec's own (``AWS_*`` variables, instance roles, ``~/.config/gcloud``), or, from the DAG, an Airflow
connection named in the URI (``s3://aws_default@bucket/path``) through Airflow's ``ObjectStoragePath``: the DAG
passes that path object here, and this module only ever sees its fsspec filesystem. Turning a location into a
store is :func:`reranker_tasks.layout.open_store`; the names of the files are :mod:`reranker_tasks.layout`'s too.

The local mode writes the same markers, so readers check completeness the same way in both modes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from reranker_tasks.checkpoint_mirror import CheckpointMirror
from reranker_tasks.layout import COMPLETE_MARKER, ArtifactPathError, open_store

# The location rules lived here before reranker_tasks.layout: still importable from this module.
from reranker_tasks.layout import ArtifactLocationError as ArtifactLocationError
from reranker_tasks.layout import artifacts_location as artifacts_location
from reranker_tasks.layout import check_relative as _check_relative
from reranker_tasks.layout import check_step as _check_step
from reranker_tasks.layout import is_uri as is_uri
from reranker_tasks.layout import names_connection as names_connection
from reranker_tasks.paths import json_safe, read_json, safe_run_name, write_json_atomic

log = logging.getLogger(__name__)

SCRATCH_ENV = "RERANKER_SCRATCH_DIR"
_CHUNK = 1 << 20


class ArtifactsIncomplete(RuntimeError):
    """An upstream step's output is not (yet) complete in the store.

    Not a data or config error: with an eventually consistent store or a slow shared volume, a retry can succeed.
    """


class ArtifactCorrupt(RuntimeError):
    """A downloaded artifact does not match the size or checksum its step's marker recorded."""


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _listing(folder: Path, exclude: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Every file under ``folder`` (posix relative path → size, sha256), minus hidden temp entries and ``exclude``.

    Hidden names (``.x.tmp``, ``.model.tmp-…``) are in-progress files of a temp-and-rename write: never published.
    """
    skip = tuple(exclude)
    files: dict[str, dict[str, Any]] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or path.name == COMPLETE_MARKER:
            continue
        if any(part.startswith(".") for part in rel.parts) or (rel.parts and rel.parts[0] in skip):
            continue
        files[rel.as_posix()] = {"size": path.stat().st_size, "sha256": _sha256_file(path)}
    return files


@dataclass(frozen=True)
class ArtifactStore:
    """The artifacts root: a local folder, or an fsspec filesystem and a path on it.

    Build it with :func:`reranker_tasks.layout.open_store` (or :meth:`from_location`); ``local`` is True for plain
    paths (write in place).
    """

    location: str
    fs: Any = None
    root_path: str = ""
    root_obj: Any = field(default=None, compare=False, repr=False)
    """The path object the store was opened from (ObjectStoragePath, UPath), if it was."""

    @property
    def local(self) -> bool:
        return self.fs is None

    @classmethod
    def from_location(cls, location: Any = None) -> ArtifactStore:
        """:func:`reranker_tasks.layout.open_store` (a plain path, a URI, a path object; None: the environment)."""
        store: ArtifactStore = open_store(location)
        return store

    @property
    def root(self) -> Any:
        """The root as a path object (``/``, ``is_file``, ``open``): a Path locally, else the path object the store
        was opened from, else a ``UPath`` over the URI (universal_pathlib, installed with Airflow)."""
        if self.local:
            return Path(self.location)
        if self.root_obj is not None:
            return self.root_obj
        from upath import UPath

        return UPath(self.location)

    def filesystem(self) -> tuple[Any, str]:
        """The fsspec filesystem and the root's path on it; fsspec's local filesystem in the local mode."""
        if self.fs is not None:
            return self.fs, self.root_path
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), self.location

    # -- addressing ------------------------------------------------------------------------------------------
    def key(self, run_id: str, *parts: str) -> str:
        """The run-relative address ``<run>/<parts…>`` as a path on the store's filesystem (or a local path)."""
        rel = posixpath.join(safe_run_name(run_id), *parts) if parts else safe_run_name(run_id)
        if self.local:
            return str(Path(self.location, *rel.split("/")))
        return posixpath.join(self.root_path, rel)

    def uri(self, run_id: str, *parts: str) -> str:
        """What a person (or the UI) sees as the artifact's address: a local path, or the store URI."""
        if self.local:
            return self.key(run_id, *parts)
        rel = posixpath.join(safe_run_name(run_id), *parts) if parts else safe_run_name(run_id)
        return f"{self.location}/{rel}"

    # -- small files -----------------------------------------------------------------------------------------
    def read_bytes(self, run_id: str, rel: str) -> bytes | None:
        """A file of the run (``rel`` under ``<run>/``), or None when there is none."""
        if self.local:
            path = Path(self.key(run_id, rel))
            return path.read_bytes() if path.is_file() else None
        target = self.key(run_id, rel)
        try:
            return bytes(self.fs.cat_file(target))
        except (FileNotFoundError, IsADirectoryError):
            return None

    def read_json(self, run_id: str, rel: str) -> Any:
        data = self.read_bytes(run_id, rel)
        return None if data is None else json.loads(data)

    def write_json(self, run_id: str, rel: str, payload: Any) -> str:
        """One small JSON file, written whole: temp file and rename locally, a single PUT on an object store."""
        if self.local:
            return str(write_json_atomic(Path(self.key(run_id, rel)), payload))
        data = (json.dumps(json_safe(payload), indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
        self._put_bytes(self.key(run_id, rel), data)
        return self.uri(run_id, rel)

    def exists(self, run_id: str, rel: str) -> bool:
        if self.local:
            return Path(self.key(run_id, rel)).exists()
        return bool(self.fs.exists(self.key(run_id, rel)))

    def _put_bytes(self, target: str, data: bytes) -> None:
        if _is_local_fs(self.fs):  # file://: a plain write is not atomic, a rename is
            _replace_atomically(Path(target), lambda tmp: tmp.write_bytes(data))
            return
        self.fs.pipe_file(target, data)

    def _put_file(self, source: Path, target: str) -> None:
        if _is_local_fs(self.fs):
            _replace_atomically(Path(target), lambda tmp: shutil.copyfile(source, tmp))
            return
        self.fs.put_file(str(source), target)

    def _remove(self, target: str, recursive: bool = False) -> None:
        try:
            self.fs.rm(target, recursive=recursive)
        except FileNotFoundError:
            pass

    def portable_text(self, run_id: str, text: str) -> str:
        """``text`` (an error message) with paths in any task's scratch folder of this run replaced by the store URI:
        the scratch folder is gone when people read the message."""
        if self.local:
            return text
        pattern = rf"[^\s'\"]*/{re.escape(SCRATCH_PREFIX)}[^/\s'\"]+/{re.escape(safe_run_name(run_id))}(?=/|\b)"
        return re.sub(pattern, lambda _: self.uri(run_id), text)

    # -- runs ------------------------------------------------------------------------------------------------
    def run(self, run_id: str, scratch_dir: str | os.PathLike[str] | None = None) -> RunArtifacts:
        """The artifacts of one run, for one task (close it, or use it as a context manager)."""
        return RunArtifacts(self, run_id, scratch_dir)


SCRATCH_PREFIX = "reranker-scratch-"


def sweep_orphaned_scratch(base: Path) -> list[Path]:
    """Delete scratch folders of task processes that no longer exist (killed: their ``close`` never ran).

    A scratch folder is named ``reranker-scratch-<pid>@<host>-<random>``. Only this host's folders are considered (a
    scratch folder on a volume that several hosts or containers share is theirs to sweep), and among them those
    whose pid is not running. Without this a worker that loses tasks (the OOM killer, a SIGKILL) would pile up
    checkpoints and models in its temp folder.
    """
    removed = []
    host = _host()
    for folder in base.glob(f"{SCRATCH_PREFIX}*@*"):
        pid_text, _, rest = folder.name[len(SCRATCH_PREFIX):].partition("@")
        if rest.rsplit("-", 1)[0] != host or not folder.is_dir() or not pid_text.isdigit():
            continue
        if _pid_alive(int(pid_text)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        log.info("removed the scratch folder of a task process that is gone: %s", folder)
    return removed


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _replace_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """``write`` a hidden temp file beside ``target``, then rename it into place (readers never see half a file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _is_local_fs(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


class RunArtifacts:
    """One task's view of a run's artifacts: local folders to write into, inputs made local, outputs committed.

    Usage in a task::

        with store.run(run_id) as arts:
            out_dir = arts.step_dir("split")
            result = split_pairs(arts.local(extracted["snapshot_path"]), out_dir, ...)
            return arts.commit("split", result.to_dict())
    """

    def __init__(self, store: ArtifactStore, run_id: str, scratch_dir: str | os.PathLike[str] | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.run_name = safe_run_name(run_id)
        self._scratch: Path | None = None
        if not store.local:
            base = Path(scratch_dir or os.environ.get(SCRATCH_ENV) or tempfile.gettempdir())
            base.mkdir(parents=True, exist_ok=True)
            sweep_orphaned_scratch(base)
            self._scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}@{_host()}-", dir=base))
        self._materialized: set[str] = set()
        self._exclude: dict[str, tuple[str, ...]] = {}  # per step, as :meth:`writing` was told
        self._committed: set[str] = set()

    def __enter__(self) -> RunArtifacts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the task's scratch folder (store mode); the store keeps everything committed or uploaded."""
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    @property
    def run_dir(self) -> Path:
        """The local folder mirroring ``<run>/``: the run's own folder (local mode) or in the scratch folder."""
        if self._scratch is None:
            return Path(self.store.key(self.run_id))
        return self._scratch / self.run_name

    @property
    def disk_dir(self) -> Path:
        """The local folder whose disk holds this task's files (for free-space checks)."""
        return self._scratch if self._scratch is not None else Path(self.store.location)

    # -- writing a step ------------------------------------------------------------------------------------
    def step_dir(self, step: str, *, reuse: bool = False) -> Path:
        """The local folder ``step`` writes into, its old completion marker removed first.

        Args:
            reuse: store mode: download the step's last complete output (an earlier try's) into the folder, so
                steps that reuse their own output on a retry (extract's snapshot, train's model) do so on any
                worker. Best effort: a missing or damaged file is logged and the step starts clean. (The local
                mode always keeps the folder as it is.)
        """
        _check_step(step)
        folder = self.run_dir / step
        if self.store.local:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / COMPLETE_MARKER).unlink(missing_ok=True)
            return folder
        marker = self._marker(step) if reuse else None
        self.store._remove(self.store.key(self.run_id, step, COMPLETE_MARKER))
        if marker is not None:
            try:
                self._download(step, marker)
            except (ArtifactCorrupt, ArtifactPathError, OSError) as exc:
                log.warning("not reusing the earlier output of %s (%s): the step starts clean", step, exc)
                shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @contextmanager
    def writing(self, step: str, *, exclude: Iterable[str] = (), reuse: bool = False) -> Iterator[Path]:
        """:meth:`step_dir`; when the block raises (a failure, a skip), what the step wrote is still uploaded,
        without a marker (:meth:`save_partial`). A successful block ends with :meth:`commit`."""
        folder = self.step_dir(step, reuse=reuse)
        self._exclude[step] = tuple(exclude)
        try:
            yield folder
        except BaseException:
            if step not in self._committed:  # a skip raised after the commit: the store has it all already
                self.save_partial(step, exclude=exclude)
            raise

    def commit(self, step: str, result: Any = None, *, exclude: Iterable[str] | None = None) -> Any:
        """Mark ``step`` complete (store mode: upload its folder first, the marker last).

        Args:
            step: the step whose folder :meth:`step_dir` gave.
            result: the step's XCom value; in store mode every string naming a file under the step's scratch
                folder becomes that file's URI in the store.
            exclude: top-level entries of the folder kept out of the marker and the upload (the mirrored
                checkpoints); default: what :meth:`writing` was given for this step.

        Returns:
            ``result`` with its paths made portable.
        """
        folder = self.run_dir / step
        files = self._upload(step, exclude=self._exclude.get(step, ()) if exclude is None else exclude)
        marker = {
            "step": step,
            "run_id": self.run_id,
            "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
        }
        if self.store.local:
            write_json_atomic(folder / COMPLETE_MARKER, marker)
        else:
            self.store.write_json(self.run_id, f"{step}/{COMPLETE_MARKER}", marker)
            log.info("committed %s: %d files to %s", step, len(files), self.store.uri(self.run_id, step))
        self._materialized.add(step)
        self._committed.add(step)
        return self.portable(result)

    def save_partial(self, step: str, *, exclude: Iterable[str] = ()) -> None:
        """Upload what a failing step wrote, without a marker: for people to look at, never for a step to read."""
        if self.store.local or not (self.run_dir / step).is_dir():
            return
        try:
            files = self._upload(step, exclude=exclude)
            log.info("uploaded %d files of the failed step %s (no completion marker)", len(files), step)
        except Exception:  # noqa: BLE001 - the step's own error is the one to report
            log.exception("could not upload the failed step %s's files", step)

    def _upload(self, step: str, *, exclude: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
        folder = self.run_dir / step
        files = _listing(folder, exclude)
        if not self.store.local:
            for rel in files:
                self.store._put_file(folder / rel, self.store.key(self.run_id, step, rel))
        return files

    def portable(self, value: Any) -> Any:
        """``value`` with local paths under the run's scratch folder replaced by their URIs in the store."""
        if self._scratch is None:
            return value
        prefix = str(self.run_dir) + os.sep
        if isinstance(value, Mapping):
            return {k: self.portable(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.portable(v) for v in value]
        if isinstance(value, str) and value.startswith(prefix):
            rel = PurePosixPath(*Path(value).relative_to(self.run_dir).parts).as_posix()
            return self.store.uri(self.run_id, rel)
        return value

    # -- reading other steps ---------------------------------------------------------------------------------
    def local(self, value: str | os.PathLike[str]) -> Path:
        """A path from an upstream step's XCom as a local path, its step's complete output downloaded if needed.

        Raises:
            ArtifactsIncomplete: the step has no completion marker.
        """
        text = os.fspath(value)
        rel = self._relative(text)
        if rel is None:
            if self.store.local:
                return Path(text)
            raise ArtifactPathError(
                f"{text!r} is not an artifact of run {self.run_id!r} under {self.store.location}: is "
                "RERANKER_ARTIFACTS_ROOT the same on every worker?"
            )
        step = rel.split("/", 1)[0]
        self.materialize(step)
        return self.run_dir.joinpath(*rel.split("/"))

    def materialize(self, step: str) -> Path:
        """The local folder holding ``step``'s complete output (downloaded once per task in the store mode)."""
        _check_step(step)
        folder = self.run_dir / step
        if step in self._materialized:
            return folder
        marker = self._marker(step)
        if marker is None and self.store.local and folder.is_dir():
            # In place on one disk, Airflow's ordering is the guarantee; a folder without a marker was written
            # before markers existed, or its task was marked successful by hand. Read it, and say so.
            log.warning("step %r of run %r has no completion marker; reading %s as it is", step, self.run_id, folder)
            self._materialized.add(step)
            return folder
        if marker is None:
            raise ArtifactsIncomplete(
                f"step {step!r} of run {self.run_id!r} has no completion marker at "
                f"{self.store.uri(self.run_id, step, COMPLETE_MARKER)}: its task did not finish, or its upload is "
                "not visible yet"
            )
        if not self.store.local:
            self._download(step, marker)
        self._materialized.add(step)
        return folder

    def is_complete(self, step: str) -> bool:
        return self._marker(step) is not None

    def _marker(self, step: str) -> dict[str, Any] | None:
        if self.store.local:
            path = self.run_dir / step / COMPLETE_MARKER
            return read_json(path) if path.is_file() else None
        doc = self.store.read_json(self.run_id, f"{step}/{COMPLETE_MARKER}")
        return doc if isinstance(doc, dict) else None

    def _download(self, step: str, marker: Mapping[str, Any]) -> None:
        folder = self.run_dir / step
        for rel, meta in (marker.get("files") or {}).items():
            _check_relative(rel)
            target = folder.joinpath(*rel.split("/"))
            if target.is_file() and target.stat().st_size == meta["size"] and _sha256_file(target) == meta["sha256"]:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            self.store.fs.get_file(self.store.key(self.run_id, step, rel), str(target))
            size, digest = target.stat().st_size, _sha256_file(target)
            if size != meta["size"] or digest != meta["sha256"]:
                target.unlink(missing_ok=True)
                raise ArtifactCorrupt(
                    f"{self.store.uri(self.run_id, step, rel)}: {size} bytes sha256 {digest[:12]}…, but the step's "
                    f"marker recorded {meta['size']} bytes sha256 {str(meta['sha256'])[:12]}…"
                )
        log.info("downloaded %s of run %s (%d files)", step, self.run_id, len(marker.get("files") or {}))

    def _relative(self, text: str) -> str | None:
        """``<step>/<file…>`` of a path or URI of this run's artifacts (local, scratch or store form), or None."""
        candidates = [self.store.uri(self.run_id) + "/", str(self.run_dir) + os.sep]
        if not self.store.local:
            candidates.append(self.store.key(self.run_id) + "/")
        for prefix in candidates:
            if text.startswith(prefix):
                rel = text[len(prefix):].replace(os.sep, "/")
                _check_relative(rel)
                return rel
        return None

    # -- small run-level files -------------------------------------------------------------------------------
    def write_json(self, rel: str, payload: Any) -> str:
        """A run-level file (``failure.json``) written straight to the store."""
        return self.store.write_json(self.run_id, rel, payload)

    # -- checkpoints -----------------------------------------------------------------------------------------
    def checkpoint_mirror(self, step: str, folder: str, marker_name: str) -> CheckpointMirror | None:
        """A mirror of ``<step>/<folder>`` in the store (None in the local mode: checkpoints are already there)."""
        if self.store.local:
            return None
        return CheckpointMirror(self, step, folder, marker_name)


@contextmanager
def open_run(location: Any, run_id: str) -> Iterator[RunArtifacts]:
    """``open_store(location).run(run_id)`` as a context manager."""
    arts = open_store(location).run(run_id)
    try:
        yield arts
    finally:
        arts.close()
