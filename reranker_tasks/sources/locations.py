"""Where a source lives and what may be shown of it: local paths and fsspec URIs (:class:`_Location`), URI
redaction, and the translation of filesystem errors into ``DataError`` / :class:`SourceUnavailable`.

Every reader goes through a location, so credentials in a URI are scrubbed and a remote outage is told apart
from bad data in one place.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from reranker_tasks.config import BUNDLED_PREFIX, ExtractConfig
from reranker_tasks.errors import DataError
from reranker_tasks.sources.results import SourceUnavailable

# "s3://…", "file:///…", and chained "simplecache::s3://…"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(?:://|::)")
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Location:
    """A file or folder on some fsspec filesystem, with what may be shown of it."""

    fs: Any  # fsspec.AbstractFileSystem
    path: str  # the path on ``fs`` (may hold credentials for some URIs: never shown)
    display: str  # what messages show: the local path, or the URI without userinfo and query
    uri: str | None = None  # the URI as configured (may hold credentials): only handed to libraries
    redactions: tuple[tuple[str, str], ...] = ()  # (secret, replacement) applied to library messages

    @property
    def remote(self) -> bool:
        return self.uri is not None

    @property
    def name(self) -> str:
        """The file name (for :attr:`RawSource.files`), scrubbed: ``memory://user:pw@x.csv`` has no folder."""
        return self.scrub(self.path.rstrip("/").rsplit("/", 1)[-1])

    def child(self, name: str) -> _Location:
        return _Location(
            self.fs, f"{self.path.rstrip('/')}/{name}", f"{self.display.rstrip('/')}/{name}", None, self.redactions
        )

    def scrub(self, text: str) -> str:
        for secret, replacement in self.redactions:
            text = text.replace(secret, replacement)
        return text


def _locate(source_path: str, config: ExtractConfig | None = None) -> _Location:
    """A local path (``bundled:`` aliases resolved) or an fsspec URI."""
    if _URI.match(source_path) and not source_path.startswith(BUNDLED_PREFIX):
        from fsspec.core import url_to_fs

        display, redactions = _redact_uri(source_path)
        try:
            fs, path = url_to_fs(source_path)
        except ImportError as exc:
            raise DataError(
                f"source_path: no filesystem for {display}: {_scrub(_first_line(exc), redactions)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - ValueError("Protocol not known: …"), any backend's own errors
            reason = _scrub(_first_line(exc), redactions)
            raise DataError(f"source_path: cannot open {display}: {reason}") from None
        return _Location(fs, path, display, source_path, redactions)
    if config is not None:
        return _local(config.resolved_source())
    return _local(ExtractConfig(source_path=source_path).resolved_source())


def _local(source: Path) -> _Location:
    from fsspec.implementations.local import LocalFileSystem

    return _Location(LocalFileSystem(), str(source.absolute()), str(source))


def _redact_uri(uri: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The URI as it may be shown (no userinfo, no query/fragment) and the secrets to scrub from messages."""
    shown: list[str] = []
    secrets: list[tuple[str, str]] = []
    for part in uri.split("::"):
        try:
            parts = urlsplit(part)
        except ValueError:
            shown.append("<uri>")
            secrets.append((part, "<uri>"))
            continue
        netloc = parts.netloc
        display = part.split("#", 1)[0].split("?", 1)[0]
        if "@" in netloc:
            userinfo, netloc = netloc.rsplit("@", 1)
            display = display.replace(userinfo + "@", "", 1)
            secrets.append((userinfo + "@", ""))
            for piece in userinfo.split(":"):
                if len(piece) >= 3:
                    secrets.append((piece, "***"))
        if parts.query:
            secrets.append(("?" + parts.query, ""))
            for pair in parts.query.split("&"):
                value = pair.split("=", 1)[-1]
                if len(value) >= 3:
                    secrets.append((value, "***"))
        if parts.fragment:
            secrets.append(("#" + parts.fragment, ""))
        shown.append(display)
    return "::".join(shown), tuple(sorted(set(secrets), key=lambda s: -len(s[0])))


def _call(location: _Location, action: Callable[[], _T]) -> _T:
    """A filesystem call whose failure becomes a DataError or (remote and transient) SourceUnavailable."""
    try:
        return action()
    except (DataError, SourceUnavailable):
        raise
    except FileNotFoundError as exc:
        raise DataError(f"source_path: no such file: {location.display}") from _cause(location, exc)
    except PermissionError as exc:
        raise DataError(f"source_path: permission denied: {location.display}") from _cause(location, exc)
    except Exception as exc:  # noqa: BLE001 - any fsspec backend's errors: classified, never swallowed
        message = location.scrub(_first_line(exc))
        if location.remote and _looks_transient(exc):
            raise SourceUnavailable(f"{location.display}: cannot be reached: {message}") from None
        raise DataError(f"source_path: cannot access {location.display}: {message}") from None


def _cause(location: _Location, exc: BaseException) -> BaseException | None:
    """The exception to chain: none for a URI, whose library messages may quote credentials."""
    return None if location.remote else exc


def _looks_transient(exc: BaseException) -> bool:
    """A network-ish failure: ConnectionError/TimeoutError, or a library error named so (botocore, aiohttp)."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    return any(word in cls.__name__ for cls in type(exc).__mro__ for word in ("Connect", "Timeout", "Unavailable"))


def _scrub(text: str, redactions: tuple[tuple[str, str], ...]) -> str:
    for secret, replacement in redactions:
        if secret:
            text = text.replace(secret, replacement)
    return text



def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
