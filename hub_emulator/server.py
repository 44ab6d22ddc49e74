"""The emulated Hub's server: storage, the accepted token and one-time LFS upload tickets, served over HTTP.

:class:`HubServer` is what tests, ``scripts/run_dag.py`` and ``python -m hub_emulator serve`` start. The HTTP side
is split by area, every route answered the way ``huggingface_hub`` 2.4 parses it (see the shared protocol notes):

* :mod:`hub_emulator.handler`: per-request setup and the routing table;
* :mod:`hub_emulator.transport`: body reading and draining (keep-alive safety, chunked bodies), replies, errors
  carrying ``X-Error-Code``/``X-Error-Message``, pagination;
* :mod:`hub_emulator.access`: bearer-token auth, repo addressing, private-repo visibility;
* :mod:`hub_emulator.repos`: whoami, repo creation and info, refs, tags, branches, commit history;
* :mod:`hub_emulator.uploads`: preupload, the LFS batch/PUT/verify API, commits;
* :mod:`hub_emulator.downloads`: resolve (byte ranges), tree listings, blob pages.

LFS uploads are PUT with no Authorization header, so the batch reply embeds a one-time ticket, issued and claimed
here, in the href.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socketserver
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from hub_emulator.handler import HubHandler
from hub_emulator.storage import HubError, HubStorage, RepoId, ensure_token

__all__ = ["HubServer"]

logger = logging.getLogger("hub_emulator")

TICKET_TTL_S = 3600.0


@dataclass(frozen=True)
class _Ticket:
    """Permission to PUT one LFS object (``oid`` of ``size`` bytes) into ``repo`` until ``expires``."""

    repo: RepoId
    oid: str
    size: int
    expires: float


class HubHTTPServer(ThreadingHTTPServer):
    """One thread per connection, each served by :class:`~hub_emulator.handler.HubHandler` for ``hub``."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], hub: HubServer) -> None:
        self.hub = hub
        super().__init__(address, HubHandler)

    def server_bind(self) -> None:
        """Skip HTTPServer's ``getfqdn`` lookup, which can stall for seconds on a host without DNS."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away mid-request; nothing to report
        logger.exception("unhandled error serving %s", client_address)


class HubServer:
    """The emulator: storage under ``root``, served on ``host:port`` (0 picks a free port) from a daemon thread.

    The socket is bound at construction so ``endpoint`` is known before ``start()``. Only ``token`` (by default the
    one stored under ``root``, created on first use) is accepted; it owns every namespace.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0, token: str | None = None) -> None:
        self.root = Path(root)
        self.storage = HubStorage(self.root)
        self.token = token if token is not None else ensure_token(self.root)
        self._tickets: dict[str, _Ticket] = {}
        self._tickets_lock = threading.Lock()
        self._httpd = HubHTTPServer((host, port), self)
        self._thread: threading.Thread | None = None
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self.endpoint = f"http://{url_host}:{self._httpd.server_port}"

    def start(self) -> HubServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, name="hub-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def issue_ticket(self, repo: RepoId, oid: str, size: int) -> str:
        now = time.monotonic()
        ticket = secrets.token_urlsafe(24)
        with self._tickets_lock:
            self._tickets = {key: t for key, t in self._tickets.items() if t.expires > now}
            self._tickets[ticket] = _Ticket(repo, oid, size, now + TICKET_TTL_S)
        return ticket

    @contextlib.contextmanager
    def claim_ticket(self, ticket: str, repo: RepoId, oid: str) -> Iterator[int]:
        """Consume ``ticket`` for this object and yield its announced size; a failed upload gives it back."""
        with self._tickets_lock:
            found = self._tickets.get(ticket)
            if found is None or found.repo != repo or found.oid != oid or found.expires < time.monotonic():
                raise HubError(403, "Invalid or expired LFS upload ticket; request a new one from the batch API")
            del self._tickets[ticket]
        try:
            yield found.size
        except BaseException:
            with self._tickets_lock:
                self._tickets[ticket] = found
            raise
