"""Token handling and the ``python -m hub_emulator`` commands (``ls`` must work with no server running)."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Protocol

from huggingface_hub import CommitOperationAdd, HfApi

from hub_emulator.server import HubServer
from hub_emulator.storage import ensure_token

REPO_ROOT = Path(__file__).resolve().parents[2]


class HubFixture(Protocol):
    """What the session fixture ``local_hub`` (tests/conftest.py) provides."""

    endpoint: str
    token: str
    root: Path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub_emulator", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_token_is_created_once_with_mode_0600_and_reused(tmp_path: Path, local_hub: HubFixture) -> None:
    token = ensure_token(tmp_path)
    assert re.fullmatch(r"hf_local_[0-9a-f]{40}", token)
    assert stat.S_IMODE((tmp_path / "token").stat().st_mode) == 0o600
    assert ensure_token(tmp_path) == token
    assert _cli("token", "--root", str(tmp_path)).stdout.strip() == token
    assert list(tmp_path.iterdir()) == [tmp_path / "token"]  # no temporary files left behind
    # The session server uses the token stored under its root.
    assert (local_hub.root / "token").read_text().strip() == local_hub.token


def test_ls_reads_storage_without_a_server(tmp_path: Path) -> None:
    assert _cli("ls", "--root", str(tmp_path / "empty")).stdout.strip() == "no repos"
    assert not (tmp_path / "empty").exists()

    root = tmp_path / "hub"
    with HubServer(root=root) as server:
        api = HfApi(endpoint=server.endpoint, token=server.token)
        repo_id = api.create_repo("listed", exist_ok=True).repo_id
        first = api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"a")], commit_message="first model").oid
        second = api.create_commit(repo_id, [CommitOperationAdd("a.txt", b"b")], commit_message="second model").oid
        api.create_tag(repo_id, tag="champion", revision=first, tag_message="best")
    result = _cli("ls", "--root", str(root))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "model local/listed"
    assert f"main -> {second[:7]}" in lines[1]
    commits = [line for line in lines if re.match(r"^    [0-9a-f]{7}  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  ", line)]
    assert [line.split("UTC  ")[1] for line in commits] == ["second model", "first model", "initial commit"]
    assert commits[0].split()[0] == second[:7]
    assert f"    champion -> {first[:7]}  (best)" in lines


def test_serve_runs_in_foreground_and_exits_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "hub_emulator", "serve", "--root", str(tmp_path / "hub")],
        cwd=REPO_ROOT,
        env={**os.environ, "LOCALHUB_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line == f"hub emulator listening on http://127.0.0.1:{port} (root {(tmp_path / 'hub').resolve()})"
        token = (tmp_path / "hub" / "token").read_text().strip()
        assert HfApi(endpoint=f"http://127.0.0.1:{port}", token=token).whoami()["name"] == "local"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
