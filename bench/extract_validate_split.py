"""Benchmark: extract + validate + split of 1,000,000 labeled pairs (documents of about 500 characters).

Target (issue 3): within 30 s and 2 GB of memory on the 2-core development machine.

Each step runs in a fresh subprocess, as each Airflow task does on a worker, so a step's peak RSS is its own
and the time includes its imports. One invocation measures a Parquet and a CSV source side by side on the
same generated data. Printed: wall time per step, their total, the largest per-step peak RSS, and the ratio
of each to its budget (< 1.00 meets it).

    .venv/bin/python bench/extract_validate_split.py [--rows 1000000] [--keep]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIME_BUDGET_S = 30.0
MEMORY_BUDGET_MB = 2048.0
WORDS = (
    "open settings account billing invoice export project team member token webhook calendar audit log "
    "password security workspace integration notification mobile report dashboard template archive restore "
    "permission role admin guest comment mention reminder label filter search upload download storage"
).split()


def generate(path: Path, rows: int, fmt: str, seed: int = 0) -> None:
    """Synthetic pairs: ~100k queries, 10 documents each, ~500-character documents, 20% positives."""
    import numpy as np
    import pandas as pd

    rng = random.Random(seed)
    vocab = np.array(WORDS)
    nprng = np.random.default_rng(seed)
    n_queries = max(2, rows // 10)
    queries = [" ".join(rng.sample(WORDS, 4)) + f" {i}" for i in range(n_queries)]
    # Documents: 80 random words (~500 characters) each, built in bulk.
    words = vocab[nprng.integers(0, len(vocab), size=(rows, 70))]
    documents = pd.Series([" ".join(row) for row in words])
    frame = pd.DataFrame(
        {
            "query": [queries[i // 10 % n_queries] for i in range(rows)],
            "document": documents + pd.Series([f" doc{i}" for i in range(rows)]),
            "label": (nprng.random(rows) < 0.2).astype("float64"),
        }
    )
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def measure(step: str, source: Path, work: Path) -> dict[str, float]:
    """Run one step in this process (after the earlier steps wrote their artifacts); time and peak RSS."""
    start = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from reranker_tasks.config import load_run_config
    from reranker_tasks.paths import read_json

    config = load_run_config({"source_path": str(source), "max_rows": 2_000_000, "max_length": 512})
    result: dict[str, float] = {}
    if step == "extract":
        from reranker_tasks.extract import extract_pairs

        extracted = extract_pairs(config.extract, work / "extract", relevance_threshold=0.5)
        result["pairs"] = extracted.pairs
    elif step == "validate":
        from reranker_tasks.validate import validate_pairs

        info = read_json(work / "extract" / "manifest.json")
        summary = validate_pairs(Path(info["snapshot_path"]), work / "validate", config.validate, info)
        result["validated"] = float(summary.success)
    else:
        from reranker_tasks.split import split_pairs

        info = read_json(work / "extract" / "manifest.json")
        result["train_pairs"] = split_pairs(Path(info["snapshot_path"]), work / "split", config.split).train_pairs
    result["seconds"] = time.perf_counter() - start
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). ru_maxrss would not do: Linux carries it over from the parent
    across fork and exec, and the parent generated the data."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the generated data and artifacts")
    parser.add_argument("--measure", nargs=3, metavar=("STEP", "SOURCE", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], Path(args.measure[1]), Path(args.measure[2]))))
        return 0

    folder = Path(tempfile.mkdtemp(prefix="bench-evs-"))
    try:
        results = {}
        for fmt in ("parquet", "csv"):
            source = folder / f"pairs.{fmt}"
            generate(source, args.rows, fmt)
            row: dict[str, float] = {"file_mb": source.stat().st_size / 2**20, "peak_rss_mb": 0.0, "total_s": 0.0}
            for step in ("extract", "validate", "split"):
                done = subprocess.run(
                    [sys.executable, __file__, "--measure", step, str(source), str(folder / f"work-{fmt}")],
                    capture_output=True, text=True, check=False,
                )
                if done.returncode:
                    print(done.stdout[-3000:], done.stderr[-3000:])
                    return 1
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                row[f"{step}_s"] = measured["seconds"]
                row["total_s"] += measured["seconds"]
                row["peak_rss_mb"] = max(row["peak_rss_mb"], measured["peak_rss_mb"])
                row[f"{step}_mb"] = measured["peak_rss_mb"]
            results[fmt] = row
        print(f"extract + validate + split of {args.rows:,} pairs (~500-character documents); "
              f"{_machine()}")
        print(f"{'source':8} {'file MB':>8} {'extract s':>10} {'validate s':>11} {'split s':>8} "
              f"{'total s':>8} {'x budget':>9} {'peak MB (extract/validate/split)':>34} {'x budget':>9}")
        for fmt, r in results.items():
            peaks = f"{r['peak_rss_mb']:.0f} ({r['extract_mb']:.0f}/{r['validate_mb']:.0f}/{r['split_mb']:.0f})"
            print(
                f"{fmt:8} {r['file_mb']:8.0f} {r['extract_s']:10.2f} {r['validate_s']:11.2f} {r['split_s']:8.2f} "
                f"{r['total_s']:8.2f} {r['total_s'] / TIME_BUDGET_S:9.2f} {peaks:>34} "
                f"{r['peak_rss_mb'] / MEMORY_BUDGET_MB:9.2f}"
            )
        print(f"budgets: {TIME_BUDGET_S:.0f} s, {MEMORY_BUDGET_MB:.0f} MB (ratios < 1.00 meet them); "
              f"csv/parquet time ratio {results['csv']['total_s'] / results['parquet']['total_s']:.2f}")
        return 0 if all(r["total_s"] <= TIME_BUDGET_S and r["peak_rss_mb"] <= MEMORY_BUDGET_MB
                        for r in results.values()) else 1
    finally:
        if args.keep:
            print(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _machine() -> str:
    import os
    import platform

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


if __name__ == "__main__":
    sys.exit(main())
