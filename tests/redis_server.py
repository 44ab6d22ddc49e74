"""A real Redis server on loopback for the test session (fixture ``redis_server``): the Celery broker.

Redis comes from Debian's ``redis-server`` package (``make test`` installs it when missing). It runs without
persistence in a temporary folder on a free port and is stopped at the end of the session. If it cannot be
started the fixture *fails* with the reason: a missing broker is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class RedisServer:
    port: int
    folder: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; `make test` does this)")
    folder = Path(tempfile.mkdtemp(prefix="redis-"))
    port = _free_port()
    log = folder / "redis.log"
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--logfile", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    server = RedisServer(port, folder, process)
    deadline = time.monotonic() + 30
    while not server.ping():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"redis-server did not start on port {port}:\n{text}")
        time.sleep(0.1)
    try:
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)
