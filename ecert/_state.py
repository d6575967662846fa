"""What a verifier has seen, kept across runs: ``trust-state.json`` in its cache directory.

Per region (home and recognized): the root kid it was pinned to, the highest trust list
sequence accepted (rollback) and the root in force after followed rotations. The file
records the anchor it belongs to (region and root kid); a file of another anchor, or one
that cannot be read as this structure, is refused (``TrustListError``
``trust_state_wrong_anchor`` / ``trust_state_corrupt``) instead of silently starting
afresh, which would re-open rollbacks. ``ecert trust reset-state`` starts it afresh
deliberately. A deleted file cannot be told from a first run: back the file up.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ecert._formats.jose import strict_json_loads
from ecert._sources import _create_temporary, _unlink_quietly
from ecert.errors import FormatError, TrustListError
from ecert.trust import TrustAnchor

__all__ = ["STATE_FILE", "TrustState"]

#: The file name in a verifier's cache directory.
STATE_FILE = "trust-state.json"
_VERSION = 2
_MAX_BYTES = 4 * 1024 * 1024
_RESET_HINT = "ecert trust reset-state --anchor FILE"


class TrustState:
    """The trust state file at ``path``, belonging to ``anchor`` (the anchor as pinned)."""

    def __init__(self, path: Path, anchor: TrustAnchor) -> None:
        self.path = Path(path)
        self.anchor = anchor
        #: The anchor the file belongs to, as read: kept when the file is rewritten.
        self._bound = {"region": anchor.region, "root_kid": anchor.kid}
        self._regions = self._read()

    # -- reading -------------------------------------------------------------------------

    def _corrupt(self, why: str) -> TrustListError:
        return TrustListError(
            f"the verifier's trust state {self.path} {why}: it cannot be trusted to refuse "
            f"rollbacks; restore it from a backup, or start afresh with '{_RESET_HINT}'",
            code="trust_state_corrupt")

    def _read(self, *, any_anchor: bool = False) -> dict[str, Any]:
        """The regions of the file (empty if there is none); refuse a bad or foreign file."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise self._corrupt(f"cannot be read ({e.strerror})") from e
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise self._corrupt("is not a regular file")
            data = f.read(_MAX_BYTES + 1)
        if len(data) > _MAX_BYTES:
            raise self._corrupt("is too large")
        try:
            doc = strict_json_loads(data)
        except FormatError as e:
            raise self._corrupt(f"is not valid JSON ({e.message})") from e
        regions = self._check(doc)
        if not any_anchor:
            self._check_anchor(doc, regions)
        return regions

    def _check(self, doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict) or not isinstance(doc.get("regions"), dict):
            raise self._corrupt("has no 'regions' object")
        version = doc.get("version")
        if version is not None and version != _VERSION:
            raise self._corrupt(f"has an unknown version {version!r}")
        regions: dict[str, Any] = doc["regions"]
        for code, entry in regions.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("pinned_kid"), str)
                    and type(entry.get("sequence")) is int and entry["sequence"] >= 0
                    and isinstance(entry.get("root_key"), dict)
                    and isinstance(entry["root_key"].get("kid"), str)):
                raise self._corrupt(f"has a malformed entry for region {code!r}")
        return regions

    def _check_anchor(self, doc: dict[str, Any], regions: dict[str, Any]) -> None:
        bound = doc.get("anchor")
        if bound is None and doc.get("version") is None:
            return  # written before files named their anchor: bound at the next write
        if not (isinstance(bound, dict) and isinstance(bound.get("region"), str)
                and isinstance(bound.get("root_kid"), str)):
            raise self._corrupt("does not say which anchor it belongs to")
        anchor = self.anchor
        if bound["region"] == anchor.region and anchor.kid in (
                bound["root_kid"], _known_root(regions, anchor.region)):
            # The anchor it was made for, or the root the state followed it to (reached
            # by verified rotations, or pinned by such an anchor before).
            self._bound = {"region": bound["region"], "root_kid": bound["root_kid"]}
            return
        raise TrustListError(
            f"the verifier's trust state {self.path} belongs to the anchor of region "
            f"{bound['region']} (root {bound['root_kid']}), not to this one "
            f"({anchor.region}, root {anchor.kid}): use another cache directory (--home), "
            f"or start afresh for this anchor with '{_RESET_HINT}'",
            code="trust_state_wrong_anchor")

    # -- use -----------------------------------------------------------------------------

    def pinned(self, anchor: TrustAnchor) -> tuple[TrustAnchor, int | None]:
        """The anchor to use (a followed rotation of this pin) and the sequence seen."""
        self._regions = self._read()  # another verifier sharing the cache may know more
        entry = self._regions.get(anchor.region)
        if not isinstance(entry, dict):
            return anchor, None
        sequence: int = entry["sequence"]
        root: dict[str, str] = entry["root_key"]
        if entry["pinned_kid"] == anchor.kid:
            if root["kid"] != anchor.kid:
                return TrustAnchor(anchor.region, anchor.name, dict(root),
                                   anchor.trust_list_url), sequence
            return anchor, sequence
        if root["kid"] == anchor.kid:
            # Pinned to the root an earlier pin rotated to: what was seen then still counts.
            return anchor, sequence
        return anchor, None

    def record(self, pinned: TrustAnchor, current: TrustAnchor, sequence: int) -> None:
        """Remember the newest sequence and root for the region pinned by ``pinned``.

        Read, merge and write happen under an exclusive lock, and a sequence never goes
        down: verifiers sharing one cache cannot undo what another has seen.
        """
        with self._locked():
            regions = self._read()
            entry = regions.get(pinned.region)
            # Never lower a sequence seen for this pin, nor one seen under the same root
            # in force (reached through another pin of the same line).
            if isinstance(entry, dict) and entry["sequence"] > sequence and (
                    pinned.kid == entry["pinned_kid"]
                    or current.kid == entry["root_key"]["kid"]):
                self._regions = regions
                return
            regions[pinned.region] = {"pinned_kid": pinned.kid, "sequence": sequence,
                                      "root_key": dict(current.root_jwk)}
            self._write(regions)
            self._regions = regions

    @classmethod
    def reset(cls, path: Path, anchor: TrustAnchor) -> int | None:
        """Start the file at ``path`` afresh, bound to ``anchor``.

        Returns how many regions were forgotten (None if the file was corrupt). A corrupt
        file, or one of another anchor, is replaced all the same: this is the way out of
        both, once a person decided so.
        """
        state = cls.__new__(cls)
        state.path = Path(path)
        state.anchor = anchor
        state._bound = {"region": anchor.region, "root_kid": anchor.kid}
        state._regions = {}
        with state._locked():
            forgotten: int | None
            try:
                forgotten = len(state._read(any_anchor=True))
            except TrustListError:
                forgotten = None
            state._bound = {"region": anchor.region, "root_kid": anchor.kid}
            state._write({})
        return forgotten

    # -- files ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the lock file (private, never through a symlink) exclusively."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path.with_suffix(".lock"),
                         os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as e:
            raise self._unwritable(e) from e
        try:
            with contextlib.suppress(OSError):  # not ours to change: leave it
                os.fchmod(fd, 0o600)
            # Imported where used: importing ecert.verify (which imports this module)
            # must work where there is no fcntl (Windows).
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _unwritable(self, error: OSError) -> TrustListError:
        return TrustListError(f"cannot write the verifier's trust state {self.path} "
                              f"({error.strerror or error})", code="trust_state_unwritable")

    def _write(self, regions: dict[str, Any]) -> None:
        """Replace the file atomically: a private temporary, created exclusively, renamed."""
        doc = {"version": _VERSION, "anchor": dict(self._bound), "regions": regions}
        try:
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                temporary, fd = _create_temporary(directory, self.path.name, 0o600)
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as f:
                        f.write(json.dumps(doc, indent=2))
                    os.replace(temporary, self.path.name, src_dir_fd=directory,
                               dst_dir_fd=directory)
                except BaseException:
                    _unlink_quietly(temporary, directory)
                    raise
            finally:
                os.close(directory)
        except OSError as e:
            raise self._unwritable(e) from e


def _known_root(regions: dict[str, Any], region: str) -> str | None:
    entry = regions.get(region)
    return str(entry["root_key"]["kid"]) if isinstance(entry, dict) else None
