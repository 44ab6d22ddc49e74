"""Request and reply plumbing shared by every endpoint of the emulated Hub.

Reading a body exactly once (``Content-Length`` or ``Transfer-Encoding: chunked``, which http.server does not decode),
draining what an endpoint left unread before replying so a keep-alive connection never parses stray bytes as the next
request, and the reply helpers: plain bodies, JSON, errors with the ``X-Error-Code``/``X-Error-Message`` headers the
client's exception mapping keys on (its 401 heuristics need https, so every error carries them), and GitHub-style
``Link`` pagination.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from itertools import islice
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from hub_emulator.storage import HubError

if TYPE_CHECKING:
    from hub_emulator.server import HubHTTPServer, HubServer

logger = logging.getLogger("hub_emulator")

MAX_JSON_BODY = 64 * 1024 * 1024
DRAIN_LIMIT = 64 * 1024 * 1024  # larger unread bodies are not worth reading: the connection is closed instead
READ_CHUNK = 1024 * 1024


def truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes")


def header_safe(text: str) -> str:
    """Header values must be single-line latin-1; paths and repo names may be neither."""
    return text.encode("ascii", "backslashreplace").decode().replace("\r", " ").replace("\n", " ")


class Exchange(BaseHTTPRequestHandler):
    """One request/reply exchange; the per-request attributes below are set by the handler's dispatch."""

    server: HubHTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    timeout = 300  # idle keep-alive connections are dropped after this

    _hub: HubServer
    _replied: bool
    _body_read: bool
    _close_after: bool
    _chunked: bool
    _raw_path: str
    _query: dict[str, str]
    _base: str
    _length: int

    def log_message(self, format: str, *args: object) -> None:  # http.server's signature
        logger.info("%s %s", self.address_string(), format % args)

    # -- request body --------------------------------------------------------------------------------------

    def _read_exact(self, count: int) -> Iterator[bytes]:
        while count:
            data = self.rfile.read(min(count, READ_CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            count -= len(data)
            yield data

    def _iter_body(self) -> Iterator[bytes]:
        """The request body, once. Until it is fully read the connection is marked for closing, so a reply sent
        after a partial read can never leave stray bytes to be parsed as the next request."""
        if self._body_read:
            return
        self._body_read = True
        self.close_connection = True
        if self._chunked:
            while True:
                try:
                    size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                except ValueError:
                    raise HubError(400, "Malformed chunked request body") from None
                if size == 0:
                    while self.rfile.readline(8192).strip():  # trailers
                        pass
                    break
                yield from self._read_exact(size)
                if self.rfile.readline(8).strip():
                    raise HubError(400, "Malformed chunked request body")
        else:
            yield from self._read_exact(self._length)
        self.close_connection = self._close_after

    def _read_bytes(self, limit: int = MAX_JSON_BODY) -> bytes:
        data = bytearray()
        for chunk in self._iter_body():
            data += chunk
            if len(data) > limit:
                raise HubError(413, f"Request body larger than {limit} bytes")
        return bytes(data)

    def _read_json(self) -> dict[str, object]:
        raw = self._read_bytes()
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise HubError(400, "Request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise HubError(400, "Request body must be a JSON object")
        return data

    # -- replies -------------------------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        if not self._body_read:
            if self._chunked or self._length <= DRAIN_LIMIT:
                with contextlib.suppress(HubError):
                    for _ in self._iter_body():
                        pass
            else:
                self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self._replied = True
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _error(self, err: HubError, headers: dict[str, str] | None = None) -> None:
        if self._replied:  # headers already went out: all we can do is drop the connection
            self.close_connection = True
            return
        extra = {"X-Error-Message": header_safe(err.message), **(headers or {})}
        if err.code:
            extra["X-Error-Code"] = err.code
        self._json(err.status, {"error": err.message, **err.extra}, extra)

    def _paginate(self, items: Iterator[dict[str, object]], page_size: int) -> None:
        """Page through ``items`` with the GitHub-style ``Link: <...>; rel="next"`` header the client follows."""
        try:
            page = int(self._query.get("p", "0"))
            limit = min(int(self._query.get("limit", str(page_size))), page_size)
        except ValueError:
            raise HubError(400, "Query parameters 'p' and 'limit' must be integers") from None
        if page < 0 or limit < 1:
            raise HubError(400, "Query parameters 'p' and 'limit' are out of range")
        window = list(islice(items, page * limit, (page + 1) * limit + 1))
        headers = {}
        if len(window) > limit:
            query = urlencode({**self._query, "p": str(page + 1)})
            headers["Link"] = f'<{self._base}{self._raw_path}?{query}>; rel="next"'
        self._json(200, window[:limit], headers)
