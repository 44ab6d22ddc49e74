"""A real PostgreSQL 15 server on loopback for the test session (fixture ``postgres_url``).

The server runs from the distribution's binaries (``/usr/lib/postgresql/15/bin``, else the newest
``/usr/lib/postgresql/*/bin``, else ``initdb``/``postgres`` on ``PATH``) in a temporary data folder, with
``trust`` authentication, listening on 127.0.0.1 only, on a free port, with fsync off (throw-away data):
it starts in about a second.

``initdb`` and ``postgres`` refuse to run as root: as root, the data folder is handed to the ``postgres``
user, ``initdb`` runs through ``runuser -u postgres --``, and the server is started with ``Popen(user=...)``
so that the process we hold *is* the postmaster (SIGINT reaches it directly, no ``su`` in between).

The server is stopped (SIGINT = fast shutdown, then SIGKILL after a grace period) and its folder removed
when the session ends, whether tests passed or failed; an ``atexit`` hook covers an interrupted session, and
``setpriv --pdeathsig INT`` (util-linux, where present) stops the server if pytest itself is killed.
If the server cannot be started the fixture *fails* with the reason and the server log: CI installs
PostgreSQL (``apt-get install postgresql-15``), so a missing server is a broken environment, not a skip.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

PG_VERSION = "15"
PG_USER = "postgres"
DATABASE = "labels"
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be found or started."""


def find_pg_bin() -> Path:
    """The folder holding ``initdb`` and ``postgres`` (PostgreSQL 15 preferred)."""
    candidates = [Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")]
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise PostgresUnavailable(
        f"no PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/*/bin or on PATH; "
        f"install them with: apt-get install -y postgresql-{PG_VERSION}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One throw-away PostgreSQL server: ``start()``, ``url(database)``, ``stop()``."""

    def __init__(self) -> None:
        self.bin = find_pg_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="reranker-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None
        self._as_root = os.geteuid() == 0
        self._user: pwd.struct_passwd | None = None
        if self._as_root:
            try:
                self._user = pwd.getpwnam(PG_USER)
            except KeyError as exc:
                raise PostgresUnavailable(
                    f"running as root but there is no {PG_USER!r} user to run PostgreSQL as "
                    f"(apt-get install -y postgresql-{PG_VERSION} creates it)"
                ) from exc
            os.chown(self.root, self._user.pw_uid, self._user.pw_gid)

    def start(self) -> None:
        began = time.perf_counter()
        initdb = [
            str(self.bin / "initdb"), "-D", str(self.data), "-U", PG_USER, "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ]
        if self._as_root:
            initdb = ["runuser", "-u", PG_USER, "--", *initdb]
        done = subprocess.run(initdb, capture_output=True, text=True, timeout=60, check=False, cwd=self.root)
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")

        server = [
            str(self.bin / "postgres"), "-D", str(self.data), "-k", str(self.root), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off", "-c", "max_connections=50", "-c", "shared_buffers=32MB",
        ]
        setpriv = shutil.which("setpriv")
        if setpriv:  # if pytest dies hard (SIGKILL, os._exit), the kernel sends the server SIGINT: no orphan
            server = [setpriv, "--pdeathsig", "INT", "--", *server]
        user = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []} if self._user else {}
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                server, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.root,
                start_new_session=True, **user,  # own session: Ctrl-C in pytest does not reach it uncontrolled
            )
        atexit.register(self.stop)
        self._wait_ready()
        self._create_database(DATABASE)
        self.start_seconds = time.perf_counter() - began

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown: disconnects clients, then exits
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PostgresUnavailable(f"postgres exited with {self.process.returncode}:\n{self._log_tail()}")
            try:
                with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres",
                                     connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:  # not listening yet, or "the database system is starting up"
                last = exc
                time.sleep(0.05)
        raise PostgresUnavailable(
            f"postgres did not accept connections within {START_TIMEOUT_S:.0f} s ({last}):\n{self._log_tail()}"
        )

    def _create_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=PG_USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server with a ``labels`` database; fails (never skips) when it cannot start."""
    server: PostgresServer | None = None
    try:
        server = PostgresServer()
        server.start()
    except (PostgresUnavailable, OSError, subprocess.SubprocessError, ImportError) as exc:
        if server is not None:
            server.stop()
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session's ``labels`` database: ``postgresql+psycopg://postgres@127.0.0.1:PORT/labels``."""
    return postgres_server.url()


def load_table(url: str, name: str, frame: pd.DataFrame) -> None:
    """Write ``frame`` as table ``name`` (replacing it) through SQLAlchemy + pandas ``to_sql``."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        frame.to_sql(name, engine, index=False, if_exists="replace")
    finally:
        engine.dispose()
