"""What the store mode of ``RERANKER_ARTIFACTS_ROOT`` costs, side by side with the local mode, in one run.

The handed-over artifact is the biggest one a run passes between tasks: the trained model folder (the offline base
model's files, all-MiniLM-L6-v2, ~90 MB), committed by one task and read by the next; plus one training checkpoint
(the model + an optimizer state twice its size, as AdamW keeps) mirrored during training.

Modes, each measured ``--repeat`` times (median reported):

* ``local``: write in place; commit = marker with sha256 of every file; the reader checks the marker.
* ``file://``: the store mode on a shared volume: upload (temp file + rename per file) + marker; the reader, in its
  own scratch folder, downloads and verifies size and sha256.
* ``memory://``: the store mode against fsspec's in-memory object store (no disk on the store side): isolates the
  protocol's own cost (hashing, copying) from the storage medium.

    .venv/bin/python bench/artifact_store.py [--repeat 3] [--out bench/results/artifact_store.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reranker_tasks.config import OFFLINE_BASE_MODEL  # noqa: E402
from reranker_tasks.storage import ArtifactStore  # noqa: E402
from reranker_tasks.train import CHECKPOINT_COMPLETE_FILE, resolve_base_model  # noqa: E402


def _model_files(target: Path) -> int:
    """Copy the offline base model's files into ``target``; returns their total size in bytes."""
    source = Path(resolve_base_model(OFFLINE_BASE_MODEL).load_path)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.pyc"))
    return sum(p.stat().st_size for p in target.rglob("*") if p.is_file())


def _one_handover(location: str, work: Path, model_src: Path) -> dict[str, float]:
    run = f"bench-{uuid.uuid4().hex[:8]}"
    store = ArtifactStore.from_location(location)
    began = time.perf_counter()
    with store.run(run, scratch_dir=work / "writer") as writer:
        out = writer.step_dir("train")
        shutil.copytree(model_src, out / "model")  # the step's own work: same in every mode
        produced = time.perf_counter()
        writer.commit("train", {"model_dir": str(out / "model")})
        committed = time.perf_counter()
        uri = writer.portable(str(out / "model"))
    with store.run(run, scratch_dir=work / "reader") as reader:
        local = reader.local(uri)
        assert (local / "config.json").is_file()
        read = time.perf_counter()
    # A checkpoint: model + optimizer state (2x the weights) + the small trainer files, mirrored marker last.
    with store.run(run, scratch_dir=work / "trainer") as trainer:
        mirror = trainer.checkpoint_mirror("train", "checkpoints", CHECKPOINT_COMPLETE_FILE)
        checkpoint = trainer.step_dir("train") / "checkpoints" / "checkpoint-100"
        checkpoint.mkdir(parents=True)
        weights = next(model_src.rglob("model.safetensors"))
        shutil.copy(weights, checkpoint / "model.safetensors")
        (checkpoint / "optimizer.pt").write_bytes(os.urandom(2 * weights.stat().st_size))
        (checkpoint / CHECKPOINT_COMPLETE_FILE).write_text('{"global_step": 100}')
        ready = time.perf_counter()
        if mirror is not None:
            mirror.push(checkpoint)
        mirrored = time.perf_counter()
    if store.local:
        shutil.rmtree(store.key(run), ignore_errors=True)
    else:
        store.fs.rm(store.key(run), recursive=True)
    return {
        "commit_s": committed - produced,
        "read_s": read - committed,
        "handover_s": read - produced,
        "checkpoint_mirror_s": mirrored - ready,
        "wall_s": mirrored - began,
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        tmp_path = Path(tmp)
        size = _model_files(tmp_path / "model")
        modes = {
            "local": str(tmp_path / "local-root"),
            "file://": f"file://{tmp_path / 'shared-volume'}",
            "memory://": f"memory://bench-{uuid.uuid4().hex[:8]}/artifacts",
        }
        results: dict[str, dict[str, float]] = {}
        samples: dict[str, list[dict[str, float]]] = {name: [] for name in modes}
        for _ in range(args.repeat):  # interleaved repeats: load drifts hit every mode alike
            for name, location in modes.items():
                work = tmp_path / f"work-{uuid.uuid4().hex[:6]}"
                samples[name].append(_one_handover(location, work, tmp_path / "model"))
                shutil.rmtree(work, ignore_errors=True)
        for name, runs in samples.items():
            results[name] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}

    mb = size / 1e6
    machine = f"{_cpu_name()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    print(f"model folder: {mb:.1f} MB ({OFFLINE_BASE_MODEL}); checkpoint: {3 * mb:.0f} MB-ish; "
          f"median of {args.repeat}; {machine}")
    print(f"{'mode':<10} {'commit s':>9} {'read s':>8} {'handover s':>11} {'x local':>8} {'MB/s':>7} "
          f"{'ckpt mirror s':>14}")
    base = results["local"]["handover_s"]
    for name, r in results.items():
        print(f"{name:<10} {r['commit_s']:>9.3f} {r['read_s']:>8.3f} {r['handover_s']:>11.3f} "
              f"{r['handover_s'] / base:>8.2f} {mb / r['handover_s']:>7.0f} {r['checkpoint_mirror_s']:>14.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model_mb": mb, "repeat": args.repeat, "machine": machine,
                                        "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
