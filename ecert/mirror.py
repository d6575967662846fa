"""Offline mirrors: everything a verifier needs, verified first, then written to disk.

``sync()`` follows a home anchor exactly as a verifier would (home trust list, its status
lists, then every recognized region's trust list and status lists), verifies each
document, and only then writes the set into a directory that
``Verifier.from_anchor(anchor, offline=DIR)`` reads with no network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ecert._clock import Clock, system_clock
from ecert._formats.bundle import ANCHOR_FILE
from ecert._sources import BundleDirectory, DocumentSource, HttpSource, MirrorSource, RoutedSource
from ecert.errors import EcertError
from ecert.trust import TrustAnchor
from ecert.verify import VerificationLimits, Verifier

__all__ = ["SyncReport", "sync"]



@dataclass(frozen=True, slots=True)
class SyncReport:
    """What :func:`sync` mirrored."""

    directory: Path
    regions: tuple[str, ...]
    documents: int
    problems: tuple[str, ...]


class _Recorder:
    """Remembers the bytes of every document that verified after it was fetched."""

    def __init__(self, inner: DocumentSource) -> None:
        self.inner = inner
        self.seen: dict[str, bytes] = {}

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        """Fetch from the inner source."""
        return self.inner.fetch(uri, max_bytes=max_bytes)

    def verified(self, uri: str, data: bytes) -> None:
        """Record ``data`` for the mirror (and tell the inner source)."""
        self.inner.verified(uri, data)
        self.seen[uri] = data


def sync(
    anchor: TrustAnchor,
    out: str | Path,
    *,
    bundle: str | Path | None = None,
    clock: Clock | None = None,
    limits: VerificationLimits | None = None,
    progress: Callable[[str], None] | None = None,
) -> SyncReport:
    """Mirror what a verifier anchored at ``anchor`` needs into ``out``.

    ``bundle`` serves the home region from a local bundle directory instead of its URL.
    A recognized region that cannot be fetched or verified is reported in ``problems``
    and left out; the home region failing raises :class:`ecert.errors.TrustListError`.
    """
    now = clock or system_clock
    base_url = anchor.trust_list_url.rsplit("/", 1)[0]
    upstream: DocumentSource = HttpSource()
    if bundle is not None:
        upstream = RoutedSource([(base_url, BundleDirectory(Path(bundle), base_url))],
                                upstream)
    recorder = _Recorder(upstream)
    verifier = Verifier.from_anchor(anchor, source=recorder, clock=now, limits=limits)
    home = verifier.trust_list
    regions = [home.region]
    problems: list[str] = []
    for uri in home.status_lists:
        if progress:
            progress(uri)
        verifier.check_status_list(uri)
    for agreement in home.agreements:
        if progress:
            progress(agreement.trust_list_url)
        before = set(recorder.seen)
        try:
            foreign = verifier.foreign_trust_list(agreement.region)
            for uri in foreign.status_lists:
                if progress:
                    progress(uri)
                verifier.check_status_list(uri, region=agreement.region)
        except (EcertError, OSError) as e:
            problems.append(f"{agreement.region}: {e}")
            # Nothing of a region that failed verification reaches the mirror: a good
            # earlier copy there stays as it was.
            for uri in set(recorder.seen) - before:
                del recorder.seen[uri]
            continue
        regions.append(agreement.region)
    mirror = MirrorSource(Path(out))
    for uri, data in recorder.seen.items():
        mirror.store(uri, data)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / ANCHOR_FILE).write_bytes(verifier.anchor.to_bytes())
    return SyncReport(Path(out), tuple(regions), len(recorder.seen), tuple(problems))
