"""Session-wide test set-up.

The Hugging Face client reads ``HF_ENDPOINT`` and friends when ``huggingface_hub`` is first imported,
so the loopback Hub's address is fixed here, at conftest import, before any test module imports it.
The emulator itself starts lazily (session fixture ``local_hub``) on that port with temporary storage.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest_plugins = ["tests.pg_server", "tests.redis_server"]

ROOT = Path(__file__).resolve().parents[1]
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="reranker-tests-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


HUB_PORT = _free_port()
os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf_home")
os.environ["NO_PROXY"] = "127.0.0.1,localhost"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["WANDB_DISABLED"] = "true"
os.environ.pop("HF_HUB_OFFLINE", None)
os.environ.pop("HF_TOKEN", None)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# Airflow reads its configuration at import, too: a private AIRFLOW_HOME with a SQLite DB per session.
from scripts.run_dag import airflow_env

os.environ.update(
    airflow_env(
        home=_SESSION_TMP / "airflow",
        artifacts=_SESSION_TMP / "artifacts",
        hf_home=_SESSION_TMP / "hf_home",
        hub_endpoint=os.environ["HF_ENDPOINT"],
    )
)


@dataclass(frozen=True)
class LocalHub:
    endpoint: str
    token: str
    root: Path


@pytest.fixture(scope="session")
def local_hub() -> Iterator[LocalHub]:
    """A running loopback Hub emulator with its own temporary storage, shared by the session."""
    from hub_emulator.server import HubServer

    root = _SESSION_TMP / "localhub"
    server = HubServer(root=root, host="127.0.0.1", port=HUB_PORT)
    server.start()
    try:
        yield LocalHub(endpoint=server.endpoint, token=server.token, root=root)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def session_tmp() -> Path:
    return _SESSION_TMP


@pytest.fixture(scope="session")
def airflow_local(local_hub: LocalHub) -> Iterator[Path]:
    """A migrated SQLite metadata DB and the Hub connection, for dag.test() runs in this process."""
    from scripts.run_dag import hub_connection_env, migrate_db

    migrate_db()
    os.environ.update(hub_connection_env(local_hub.token))
    yield Path(os.environ["RERANKER_ARTIFACTS_ROOT"])


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    """Report the bad-input corpus totals when it ran."""
    module = sys.modules.get("tests.dags.test_bad_inputs") or sys.modules.get("test_bad_inputs")
    results = getattr(module, "RESULTS", None)
    if results:
        stopped = sum(r["stopped_before_training"] for r in results)
        pushed = sum(r["pushed"] for r in results)
        terminalreporter.write_line(
            f"bad-input corpus: {len(results)} bad inputs tried, {stopped} stopped before training, {pushed} pushed"
        )
