"""`make run` as a user runs it: a subprocess with its own Airflow home, artifacts and loopback Hub."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "RERANKER_LOCAL_STATE": str(tmp_path / "state"),
        "LOCALHUB_PORT": str(_free_port()),
        **env,
    }
    return subprocess.run(
        ["make", "-s", "--no-print-directory", *args], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=600,
    )


def _hub_ls(tmp_path: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "hub_emulator", "ls", "--root", str(tmp_path / "state" / ".localhub")],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return done.stdout


def test_make_run_on_a_bad_file_names_the_expectation_and_pushes_nothing(tmp_path) -> None:
    bad = tmp_path / "bad.csv"
    rows = ["query,document,label"] + [f"query {i},document {i},{i % 2}" for i in range(60)]
    rows[5] = "query 4,document 4,1.7"  # out of range
    rows[9] = "query 8,   ,0"  # blank document
    bad.write_text("\n".join(rows) + "\n")
    done = _make(tmp_path, "run", CONF=json.dumps({"source_path": str(bad)}))
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("OUTCOME: failed at validate: data validation failed"), last
    assert "expect_column_values_to_be_between(label, 0..1): 1 of 60 rows fail, source rows [5]" in last
    assert "expect_column_values_to_not_match_regex(document, blank): 1 of 60 rows fail, source rows [9]" in last
    # Also printed in full above the outcome line, as the user reads it.
    assert "task validate failed (DataValidationFailed, try 1)" in done.stdout
    # The console shows progress, not Airflow's log: that went to the file whose path comes first.
    first = next((line for line in done.stdout.splitlines() if line.startswith("Airflow's log: ")), "")
    assert "VERBOSE=1" in first, done.stdout[:2000]
    log = Path(first.removeprefix("Airflow's log: ").split(" (VERBOSE=1")[0])
    assert "[DAG TEST] starting task_id=validate" in log.read_text()
    assert "[DAG TEST]" not in output and "  validate ..." in done.stdout and "  extract done in " in done.stdout
    assert _hub_ls(tmp_path).strip() == "no repos"


def test_make_run_rejects_an_unknown_key_before_any_work(tmp_path) -> None:
    done = _make(tmp_path, "run", CONF='{"epochs": 2, "learning_rte": 0.1}')
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("OUTCOME: failed at conf: unknown conf key(s) ['learning_rte']")
    assert not (tmp_path / "state" / ".airflow").exists(), "nothing was started"
