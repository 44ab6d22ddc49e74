"""Training checkpoints mirrored to the artifacts store while training runs (the store mode only).

A retried ``train`` on another worker resumes from the newest checkpoint whose own marker reached the store.
:meth:`reranker_tasks.storage.RunArtifacts.checkpoint_mirror` builds the mirror (None in the local mode: the
checkpoints are in the run's folder already); ``reranker_tasks.storage`` re-exports :class:`CheckpointMirror`.
"""

from __future__ import annotations

import logging
import posixpath
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from reranker_tasks.layout import check_relative

if TYPE_CHECKING:
    from reranker_tasks.storage import RunArtifacts

log = logging.getLogger(__name__)


class CheckpointMirror:
    """Keeps training checkpoints in the store while training runs, for a retry on any worker to resume from.

    A checkpoint is a folder ``checkpoint-<step>`` with its own completeness marker (``marker_name``), written by the
    trainer callback after the checkpoint was fully saved. :meth:`push` uploads the folder with that marker last;
    :meth:`pull` downloads only checkpoints whose marker is in the store. Loose files of the folder (the inputs key)
    are mirrored as they are.
    """

    def __init__(self, arts: RunArtifacts, step: str, folder: str, marker_name: str) -> None:
        self._arts = arts
        self._store = arts.store
        self._remote = arts.store.key(arts.run_id, step, folder)
        self._marker = marker_name

    def pull(self, local_dir: Path) -> None:
        """Download the store's complete checkpoints (and loose files) into ``local_dir``."""
        fs = self._store.fs
        if not fs.exists(self._remote):
            return
        pulled = []
        for entry in fs.ls(self._remote, detail=True):
            name = posixpath.basename(entry["name"].rstrip("/"))
            if entry["type"] == "file":
                local_dir.mkdir(parents=True, exist_ok=True)
                fs.get_file(entry["name"], str(local_dir / name))
            elif fs.exists(posixpath.join(entry["name"], self._marker)):
                target = local_dir / name
                shutil.rmtree(target, ignore_errors=True)
                for remote in fs.find(entry["name"]):
                    rel = posixpath.relpath(remote, entry["name"])
                    check_relative(rel)
                    if any(part.startswith(".") for part in rel.split("/")):
                        continue  # a temp file of an interrupted file:// write
                    (target / rel).parent.mkdir(parents=True, exist_ok=True)
                    fs.get_file(remote, str(target / rel))
                pulled.append(name)
        if pulled:
            log.info("downloaded checkpoints %s from %s", ", ".join(sorted(pulled)), self._remote)

    def push_file(self, path: Path) -> None:
        """A loose file of the checkpoints folder (written whole)."""
        self._store._put_file(path, posixpath.join(self._remote, path.name))

    def push(self, checkpoint: Path) -> None:
        """Upload one complete checkpoint folder, its marker last; drop store checkpoints no longer kept locally."""
        target = posixpath.join(self._remote, checkpoint.name)
        # Marker first, then the rest of an earlier upload of this step (a dead try's leftovers must not mix in).
        self._store._remove(posixpath.join(target, self._marker))
        self._store._remove(target, recursive=True)
        for path in sorted(checkpoint.rglob("*")):
            if path.is_file() and path.name != self._marker:
                self._store._put_file(path, posixpath.join(target, path.relative_to(checkpoint).as_posix()))
        self._store._put_file(checkpoint / self._marker, posixpath.join(target, self._marker))
        kept = {p.name for p in checkpoint.parent.iterdir() if p.is_dir()}
        fs = self._store.fs
        for entry in fs.ls(self._remote, detail=True):
            name = posixpath.basename(entry["name"].rstrip("/"))
            if entry["type"] != "file" and name.startswith("checkpoint-") and name not in kept:
                # marker first: a reader must never see a marker over a folder being deleted
                self._store._remove(posixpath.join(entry["name"], self._marker))
                self._store._remove(entry["name"], recursive=True)
        log.info("checkpoint uploaded to %s", target)

    def clear(self) -> None:
        """The final model is committed: the checkpoints in the store have served their purpose."""
        self._store._remove(self._remote, recursive=True)
