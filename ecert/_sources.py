"""Where a verifier reads published documents from.

* :class:`BundleDirectory`: one region's published bundle on disk;
* :class:`HttpSource`: the web, with timeouts, size limits and an ETag cache on disk
  that also serves when the network fails (freshness is still enforced by the
  documents' own expiry, so a stale copy fails closed);
* :class:`MirrorSource`: an offline copy of several regions made by ``ecert trust sync``;
* :class:`RoutedSource`: picks a source by URL prefix.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from ecert._formats.bundle import relative_path
from ecert.errors import FormatError


class DocumentSource(Protocol):
    """Fetches a published document by its URI."""

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        """Return the document's bytes; raise :class:`FileNotFoundError` or ``FormatError``."""
        ...


class BundleDirectory:
    """A published bundle on disk, standing in for ``base_url``."""

    def __init__(self, root: Path, base_url: str) -> None:
        self.root = Path(root)
        self.base_url = base_url

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        path = self.root / relative_path(self.base_url, uri)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FormatError(f"{uri} exceeds {max_bytes} bytes", code="too_large")
        return data


class MemorySource:
    """Documents held in memory by bundle path (used to re-verify before publishing)."""

    def __init__(self, base_url: str, documents: Mapping[str, bytes]) -> None:
        self.base_url = base_url
        self._documents = documents

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        data = self._documents.get(relative_path(self.base_url, uri))
        if data is None:
            raise FileNotFoundError(uri)
        if len(data) > max_bytes:
            raise FormatError(f"{uri} exceeds {max_bytes} bytes", code="too_large")
        return data


def mirror_path(root: Path, uri: str) -> Path:
    """Where ``uri`` lives in an offline mirror: ``root/<host>[_<port>]/<path>``."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FormatError(f"{uri!r} is not an http(s) URL", code="foreign_uri")
    host = parts.hostname + (f"_{parts.port}" if parts.port else "")
    segments = [p for p in parts.path.split("/") if p]
    if not segments or any(p in (".", "..") or "\\" in p for p in segments) or parts.query:
        raise FormatError(f"{uri!r} cannot be mirrored", code="foreign_uri")
    return root.joinpath(host, *segments)


class MirrorSource:
    """Documents from an offline mirror directory (see :func:`mirror_path`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        path = mirror_path(self.root, uri)
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise FormatError(f"{uri} exceeds {max_bytes} bytes", code="too_large")
        return data

    def store(self, uri: str, data: bytes) -> None:
        """Write ``data`` for ``uri`` atomically."""
        path = mirror_path(self.root, uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)


class HttpSource:
    """Fetch over HTTP(S) with a timeout and a size limit; cache with ETag on disk."""

    def __init__(self, *, timeout: float = 10.0, cache_dir: Path | None = None,
                 user_agent: str = "ecert-verifier") -> None:
        self.timeout = timeout
        self._cache = MirrorSource(cache_dir) if cache_dir is not None else None
        self._etags: dict[str, str] = {}
        self._memory: dict[str, bytes] = {}
        self._user_agent = user_agent

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        if not uri.startswith(("https://", "http://")):
            raise FormatError(f"{uri!r} is not an http(s) URL", code="foreign_uri")
        cached = self._cached(uri, max_bytes)
        headers = {"User-Agent": self._user_agent, "Accept": "*/*"}
        etag = self._etags.get(uri) or self._stored_etag(uri)
        if etag and cached is not None:
            headers["If-None-Match"] = etag
        request = urllib.request.Request(uri, headers=headers)  # noqa: S310 - http(s) only
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                data = _read_within(response, max_bytes + 1, self.timeout, uri)
                new_etag = response.headers.get("ETag")
        except urllib.error.HTTPError as e:
            e.close()  # an error response holds its connection open until closed
            if e.code == 304 and cached is not None:
                return cached
            if cached is not None and e.code >= 500:
                return cached  # the server is ailing; the copy's own expiry still applies
            raise OSError(f"HTTP {e.code} for {uri}") from e
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            if cached is not None:
                return cached  # offline: the copy's own expiry still applies
            reason = getattr(e, "reason", e)
            raise OSError(f"cannot reach {uri}: {reason}") from e
        if len(data) > max_bytes:
            raise FormatError(f"{uri} exceeds {max_bytes} bytes", code="too_large")
        self._memory[uri] = data
        if new_etag:
            self._etags[uri] = new_etag
        if self._cache is not None:
            self._cache.store(uri, data)
            if new_etag:
                self._cache.store(uri + ".etag", new_etag.encode("utf-8", "replace"))
        return data

    def _cached(self, uri: str, max_bytes: int) -> bytes | None:
        if uri in self._memory:
            return self._memory[uri]
        if self._cache is None:
            return None
        try:
            return self._cache.fetch(uri, max_bytes=max_bytes)
        except (OSError, FormatError):
            return None

    def _stored_etag(self, uri: str) -> str | None:
        if self._cache is None:
            return None
        try:
            return self._cache.fetch(uri + ".etag", max_bytes=1024).decode("utf-8", "replace")
        except (OSError, FormatError):
            return None


class RoutedSource:
    """Send each URI to the first source whose URL prefix it starts with."""

    def __init__(self, routes: list[tuple[str, DocumentSource]],
                 fallback: DocumentSource) -> None:
        self._routes = [(prefix.rstrip("/") + "/", source) for prefix, source in routes]
        self._fallback = fallback

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        for prefix, source in self._routes:
            if uri.startswith(prefix):
                return source.fetch(uri, max_bytes=max_bytes)
        return self._fallback.fetch(uri, max_bytes=max_bytes)


def _read_within(response: Any, limit: int, seconds: float, uri: str) -> bytes:
    """Read at most ``limit`` bytes, giving up when the whole download exceeds ``seconds``.

    The socket timeout only bounds each read; a server dripping bytes must not hold a
    verifier longer than the total budget.
    """
    deadline = time.monotonic() + seconds
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = response.read(min(65_536, limit - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError(f"downloading {uri} took longer than {seconds:g} s")
    return b"".join(chunks)
