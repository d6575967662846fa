"""Where a verifier reads published documents from (a bundle directory for now)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

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
