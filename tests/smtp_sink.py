"""A local SMTP sink for tests: accepts every message on a loopback port and keeps it in memory.

Standard library only (a threading ``socketserver``): enough of RFC 5321 for Python's ``smtplib`` and
``aiosmtplib`` (what Airflow's SMTP hook uses, sync and async): EHLO/HELO, AUTH PLAIN and LOGIN (so a connection
with a login and password is exercised, and the password can be checked to never reach a message), MAIL, RCPT,
DATA with dot-unstuffing, RSET, NOOP, QUIT. No TLS: the test connection sets ``disable_tls``/``disable_ssl``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import socketserver
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage


@dataclass
class Received:
    """One delivered message, parsed."""

    mail_from: str
    rcpt_to: list[str]
    raw: bytes
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[assignment]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def body(self) -> str:
        """The text of the HTML (or plain) part, decoded."""
        part = self.message.get_body(preferencelist=("html", "plain"))
        return part.get_content() if part is not None else ""


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def _reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def _line(self) -> str | None:
        raw = self.rfile.readline(65536)
        return raw.decode("utf-8", "replace").rstrip("\r\n") if raw else None

    def handle(self) -> None:
        self._reply("220 sink ESMTP ready")
        mail_from, rcpt_to = "", []
        while (line := self._line()) is not None:
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                self._reply("250-sink greets you")
                self._reply("250-8BITMIME")
                self._reply("250 AUTH PLAIN LOGIN")
            elif verb == "HELO":
                self._reply("250 sink")
            elif verb == "AUTH":
                self._auth(arg)
            elif verb == "MAIL":
                mail_from, rcpt_to = arg.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                self._reply("250 OK")
            elif verb == "RCPT":
                rcpt_to.append(arg.split(":", 1)[1].strip().split(" ")[0].strip("<>"))
                self._reply("250 OK")
            elif verb == "DATA":
                self._reply("354 end data with <CR><LF>.<CR><LF>")
                chunks = []
                while True:
                    raw = self.rfile.readline(1 << 20)
                    if not raw or raw in (b".\r\n", b".\n"):
                        break
                    chunks.append(raw[1:] if raw.startswith(b"..") else raw)
                self.server.sink.deliver(Received(mail_from, rcpt_to, b"".join(chunks)))
                self._reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                self._reply("250 OK")
            elif verb == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 not implemented")

    def _auth(self, arg: str) -> None:
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() == "PLAIN":
            if not initial:
                self._reply("334 ")
                initial = self._line() or ""
            _, user, password = base64.b64decode(initial).decode().split("\x00")
        elif mechanism.upper() == "LOGIN":
            if not initial:
                self._reply("334 " + base64.b64encode(b"Username:").decode())
                initial = self._line() or ""
            user = base64.b64decode(initial).decode()
            self._reply("334 " + base64.b64encode(b"Password:").decode())
            password = base64.b64decode(self._line() or "").decode()
        else:
            self._reply("504 unsupported mechanism")
            return
        self.server.sink.logins.append((user, password))
        self._reply("235 authenticated")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    sink: SmtpSink


class SmtpSink:
    """``with SmtpSink() as sink:`` listens on ``sink.port``; ``sink.messages`` holds what arrived."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._server = _Server((host, 0), _Handler)
        self._server.sink = self
        self.host = host
        self.port = int(self._server.server_address[1])
        self.messages: list[Received] = []
        self.logins: list[tuple[str, str]] = []
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._server.serve_forever, name="smtp-sink", daemon=True)

    def deliver(self, message: Received) -> None:
        with self._lock:
            self.messages.append(message)
            self._lock.notify_all()

    def wait_for(self, predicate, timeout: float = 60.0) -> Received:  # type: ignore[no-untyped-def]
        """The first message matching ``predicate``, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for message in self.messages:
                    if predicate(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching message in {timeout}s; got {[m.subject for m in self.messages]}")
                self._lock.wait(left)

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
