"""Health checks of a registry home, a published bundle and a verifier's state.

``ecert doctor`` runs these. They only read: a finding says what is wrong and what to
do, and nothing is changed. (Removing a key file that no key row names is left to a
person on purpose: a registry writes a new key's file *before* its key row commits, so
a file that looks orphaned may belong to a ``rotate-key`` still running, or the rows
read may come from another database than the one this home serves.)

The checks take paths and, for the key files, the set of kids the registry's key
table names: they need nothing else from the registry, so they can run on a machine
that only publishes or only verifies.

Each :class:`Finding` has a stable ``code`` (listed in docs/cli.md, ``ecert doctor``),
a ``severity`` (``error`` and ``warning`` make the report unhealthy; ``info`` does not),
the file or document it is about, and one line for people.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ecert._formats import bundle as _bundle
from ecert._formats.jose import check_header, parse_compact, verify_signature
from ecert._formats.statuslist import STATUS_LIST_TYP, read_status_list_payload
from ecert._formats.trustlist import TrustList
from ecert._page import PAGE_DIR, check_page
from ecert.errors import FormatError, TrustListError
from ecert.models import Lease
from ecert.trust import MAX_TRUST_LIST_BYTES, TrustAnchor, verify_trust_list

__all__ = [
    "DEFAULT_SECRET_NAMES",
    "EXPIRY_WARNING_SECONDS",
    "Finding",
    "Report",
    "Severity",
    "check_bundle",
    "check_home",
    "check_lease",
    "check_verifier_state",
    "diagnose",
]

#: Warn when a published trust list or status list expires within this many seconds (at
#: most half its lifetime). ``ecert publish --watch`` republishes when a third of the
#: lifetime is left (eight hours of a day's status list), so under a working watcher this
#: never fires; it fires when the watcher has been failing or stopped for hours.
EXPIRY_WARNING_SECONDS = 6 * 3600
#: Key-store entries that are secrets, not keys: no key row names them. This is the name
#: the registry keeps its holder-pseudonym secret under (``<name>.p12``).
DEFAULT_SECRET_NAMES = frozenset({"holder-pseudonym", "log-commitment", "consent-code"})

_KEYS_DIR = "keys"
_DB_FILE = "registry.db"
#: SQLite's companions of the database file: they hold the same data.
_DB_COMPANIONS = ("-wal", "-shm", "-journal")
_STATE_DIR = "verifier-cache"
_STATE_FILE = "trust-state.json"
_KEY_SUFFIX = ".p12"
_TMP_SUFFIX = ".tmp"
#: Bound on directory entries looked at, so a huge or hostile directory cannot stall us.
_MAX_ENTRIES = 100_000
#: Largest verifier state file read (it holds a few lines per region).
_MAX_STATE_BYTES = 4 * 1024 * 1024
#: Largest status list token read (the verifier's own default bound).
_MAX_STATUS_LIST_BYTES = 8 * 1024 * 1024
#: A trust list's grace is not the doctor's business: expiry is reported, not refused.
_NO_GRACE_LIMIT = 2**40


def _now() -> int:
    """The current time (tests replace it)."""
    return int(time.time())


class Severity(StrEnum):
    """How bad a finding is: errors and warnings make a report unhealthy."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found: stable ``code``, ``severity``, ``subject`` (a path), ``message``."""

    code: str
    severity: Severity
    subject: str
    message: str

    def to_json(self) -> dict[str, str]:
        """``{"code", "severity", "subject", "message"}``."""
        return {"code": self.code, "severity": self.severity.value, "subject": self.subject,
                "message": self.message}


@dataclass(frozen=True, slots=True)
class Report:
    """All findings of one run."""

    findings: tuple[Finding, ...]

    @property
    def healthy(self) -> bool:
        """True when nothing is an error or a warning."""
        return all(f.severity is Severity.INFO for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        """``{"healthy": bool, "findings": [...]}`` (what ``ecert doctor --json`` prints)."""
        return {"healthy": self.healthy, "findings": [f.to_json() for f in self.findings]}


# -- helpers ---------------------------------------------------------------------------------


def _entries(directory: Path) -> Iterator[os.DirEntry[str]]:
    """Entries of ``directory`` (bounded); nothing if it cannot be listed."""
    try:
        with os.scandir(directory) as it:
            for count, entry in enumerate(it):
                if count >= _MAX_ENTRIES:
                    return
                yield entry
    except OSError:
        return


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def _too_open(path: Path, expected: int, why: str, *, mask: int = 0o077,
              severity: Severity = Severity.ERROR) -> list[Finding]:
    """A finding if ``path`` grants any of ``mask`` (group/other bits by default)."""
    mode = _mode(path)
    if mode is None or not mode & mask:
        return []
    return [Finding("mode_too_open", severity, str(path),
                    f"mode {mode:04o} is too open: {why}; run chmod {expected:04o} {path}")]


def _stray_temporaries(directory: Path, why: str) -> list[Finding]:
    """Temporary files (``*.tmp``) left by a killed write in ``directory``."""
    return [
        Finding("stray_temporary", Severity.WARNING, entry.path,
                f"temporary file left by an interrupted write ({why}); when no ecert "
                "command is running, delete it")
        for entry in sorted(_entries(directory), key=lambda e: e.name)
        if entry.name.endswith(_TMP_SUFFIX)
    ]


# -- the registry home -----------------------------------------------------------------------


def check_home(
    home: str | Path,
    *,
    known_kids: Collection[str] | None = None,
    active_kids: Collection[str] | None = None,
    secret_names: Collection[str] = DEFAULT_SECRET_NAMES,
) -> list[Finding]:
    """Check a registry home: file modes, stray temporaries and key files.

    ``known_kids`` are the kids the registry's key table names (any status); a
    ``<kid>.p12`` none names is an orphan, e.g. left by a killed ``rotate-key``. Without
    it the orphan check is skipped (said by an ``info`` finding). ``active_kids`` (a
    subset) are the keys still in use: a missing file of one is an error, and a file of a
    retired or compromised key (which should have been destroyed) is a warning.
    """
    home = Path(home)
    if not home.is_dir():
        if known_kids:  # e.g. a PostgreSQL registry opened with the wrong --home
            return [Finding("keys_dir_missing", Severity.ERROR, str(home / _KEYS_DIR),
                            "the registry has key rows but this home does not exist: its "
                            "private keys are elsewhere (wrong --home?) or gone")]
        return [Finding("home_missing", Severity.INFO, str(home),
                        "no registry home here: its keys and database were not checked")]
    database = home / _DB_FILE
    keys_dir = home / _KEYS_DIR
    findings: list[Finding] = []
    # A home only a verifier uses (verifier-cache alone) holds no secret: 0755 is fine.
    if known_kids is not None or database.exists() or keys_dir.exists():
        findings += _too_open(home, 0o700, "the home holds the registry's keys and database")
    for path in [database, *(home / (_DB_FILE + s) for s in _DB_COMPANIONS)]:
        findings += _too_open(path, 0o600, "the database holds every certificate and event")
    findings += _stray_temporaries(home, "registry home")
    if not keys_dir.is_dir():
        if known_kids:
            findings.append(Finding("keys_dir_missing", Severity.ERROR, str(keys_dir),
                                    "the registry has key rows but no key directory: its "
                                    "private keys are elsewhere (wrong --home?) or gone"))
        return findings
    findings += _too_open(keys_dir, 0o700, "the directory holds the private keys")
    findings += _stray_temporaries(keys_dir, "a key was being written")
    present: set[str] = set()
    for entry in sorted(_entries(keys_dir), key=lambda e: e.name):
        if not entry.name.endswith(_KEY_SUFFIX) or entry.name.startswith("."):
            continue
        name = entry.name[:-len(_KEY_SUFFIX)]
        present.add(name)
        path = Path(entry.path)
        findings += _too_open(path, 0o600, "it is a private key (encrypted, but offline "
                                           "guessing of the passphrase must not be offered)")
        if known_kids is None or name in secret_names:
            continue
        if name not in known_kids:
            findings.append(Finding(
                "orphan_key_file", Severity.WARNING, str(path),
                f"no key row names key {name}: a key created by an interrupted command "
                "(e.g. a killed rotate-key); when no ecert command is running, delete "
                "the file"))
        elif active_kids is not None and name not in active_kids:
            findings.append(Finding(
                "retired_key_file", Severity.WARNING, str(path),
                f"key {name} is retired or compromised but its private key was not "
                "destroyed; delete the file"))
    if known_kids is None:
        findings.append(Finding("key_rows_unavailable", Severity.INFO, str(keys_dir),
                                "the registry's key rows could not be read: key files "
                                "were not matched against them"))
    for kid in sorted(set(active_kids or ()) - present):
        findings.append(Finding("key_file_missing", Severity.ERROR,
                                str(keys_dir / f"{kid}{_KEY_SUFFIX}"),
                                f"active key {kid} has no private key file: the registry "
                                "cannot sign with it"))
    return findings


# -- a verifier's state ----------------------------------------------------------------------


def check_verifier_state(home: str | Path) -> list[Finding]:
    """Check ``home/verifier-cache/trust-state.json``, what ``ecert verify`` remembers.

    The file holds the trust list sequences and root rotations a verifier has seen; a
    verifier that loses it (or reads garbage, which it treats as empty) accepts a
    rolled-back trust list again, and one anybody may write can be rolled back at will.
    """
    cache = Path(home) / _STATE_DIR
    path = cache / _STATE_FILE
    if not cache.is_dir():
        return [Finding("verifier_state_missing", Severity.INFO, str(path),
                        "no verifier has kept state in this home yet")]
    findings = _too_open(cache, 0o700, "whoever may write here can roll the verifier back",
                         mask=0o022, severity=Severity.WARNING)
    findings += _stray_temporaries(cache, "the verifier state was being written")
    if not path.exists():
        return [*findings, Finding(
            "verifier_state_missing", Severity.WARNING, str(path),
            "the verifier cache exists but its state file does not: trust list "
            "sequences seen before are forgotten, so a rollback would go unnoticed")]
    findings += _too_open(path, 0o600, "whoever may write it can roll the verifier back",
                          mask=0o022, severity=Severity.WARNING)
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_STATE_BYTES + 1)
    except OSError as e:
        return [*findings, Finding("verifier_state_unreadable", Severity.ERROR, str(path),
                                   f"cannot read it: {e.strerror}")]
    try:
        if len(data) > _MAX_STATE_BYTES:
            raise ValueError("too large")
        value = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return [*findings, Finding(
            "verifier_state_malformed", Severity.ERROR, str(path),
            "not JSON: verifiers treat it as empty and forget what they have seen; "
            "move it away and verify again to rebuild it")]
    regions = value.get("regions") if isinstance(value, dict) else None
    if not isinstance(regions, dict) or not all(
            isinstance(entry, dict) and type(entry.get("sequence")) is int
            for entry in regions.values()):
        findings.append(Finding(
            "verifier_state_malformed", Severity.ERROR, str(path),
            "not the verifier's state ({\"regions\": {...}} with a sequence per region): "
            "verifiers treat it as empty; move it away and verify again to rebuild it"))
    return findings


# -- a published bundle ----------------------------------------------------------------------


def _trust_list(bundle: Path, anchor: TrustAnchor | str | Path | None, now: int
                ) -> tuple[TrustList | None, list[Finding]]:
    """The bundle's trust list verified against ``anchor`` (default: its anchor.json)."""
    anchor_path = Path(anchor) if isinstance(anchor, str | Path) else bundle / _bundle.ANCHOR_FILE
    try:
        pinned = anchor if isinstance(anchor, TrustAnchor) else TrustAnchor.load(anchor_path)
    except TrustListError as e:
        return None, [Finding("anchor_invalid", Severity.ERROR, str(anchor_path),
                              f"{e.message} ({e.code})")]
    path = bundle / _bundle.TRUST_LIST_PATH
    try:
        with open(path, "rb") as f:
            token = f.read(MAX_TRUST_LIST_BYTES + 1).decode("ascii", "replace")
    except OSError as e:
        return None, [Finding("trust_list_missing", Severity.ERROR, str(path),
                              f"cannot read the trust list: {e.strerror}")]
    try:
        trust_list, _current = verify_trust_list(token, pinned, now=now, grace=_NO_GRACE_LIMIT)
    except TrustListError as e:
        return None, [Finding("trust_list_invalid", Severity.ERROR, str(path),
                              f"{e.message} ({e.code})")]
    return trust_list, []


def _expiry(code: str, subject: str, what: str, issued_at: int, expires_at: int, now: int,
            warn_within: int) -> list[Finding]:
    """Expired (error), or expiring soon (warning).

    "Soon" is ``warn_within``, but at most half the document's lifetime: status lists
    are published for one day by default, and a warning on every fresh bundle would
    teach people to ignore it.
    """
    warn_within = min(warn_within, max(0, expires_at - issued_at) // 2)
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(expires_at))
    if now >= expires_at:
        return [Finding(f"{code}_expired", Severity.ERROR, subject,
                        f"{what} expired at {when}: verifiers refuse it; publish again")]
    if expires_at - now <= warn_within:
        hours = (expires_at - now) / 3600
        return [Finding(f"{code}_expiring", Severity.WARNING, subject,
                        f"{what} expires at {when} (in {hours:.1f} h): publish again")]
    return []


def _status_list(bundle: Path, trust_list: TrustList, uri: str, now: int,
                 warn_within: int) -> list[Finding]:
    try:
        relative = _bundle.relative_path(trust_list.base_url, uri)
    except FormatError as e:
        return [Finding("status_list_invalid", Severity.ERROR, uri, e.message)]
    path = bundle / relative
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_STATUS_LIST_BYTES + 1)
    except OSError as e:
        return [Finding("status_list_missing", Severity.ERROR, str(path),
                        f"the trust list names {uri}, which cannot be read: {e.strerror}")]
    keys = {k.kid: k for k in trust_list.status_keys}
    try:
        parsed = parse_compact(data.decode("ascii", "replace").strip(),
                               max_bytes=_MAX_STATUS_LIST_BYTES)
        entry = keys.get(check_header(parsed.header, STATUS_LIST_TYP))
        if entry is None:
            raise FormatError("not signed by a status key of the trust list")
        alg, key = entry.public_key()
        if parsed.header["alg"] != alg or not verify_signature(
                alg, key, parsed.signing_input, parsed.signature):
            raise FormatError("its signature does not verify")
        token = read_status_list_payload(parsed.payload)
        if token.uri != uri:
            raise FormatError(f"its sub {token.uri!r} is not {uri!r}")
    except FormatError as e:
        return [Finding("status_list_invalid", Severity.ERROR, str(path), e.message)]
    expires_at = token.expires_at
    if expires_at is None and token.ttl is not None:
        expires_at = token.issued_at + token.ttl
    if expires_at is None:  # pragma: no cover - read_status_list_payload requires exp or ttl
        return []
    return _expiry("status_list", str(path), f"status list {uri}", token.issued_at,
                   expires_at, now, warn_within)


def check_bundle(
    bundle: str | Path,
    *,
    anchor: TrustAnchor | str | Path | None = None,
    now: int | None = None,
    warn_within: int = EXPIRY_WARNING_SECONDS,
) -> list[Finding]:
    """Check a published bundle: trust list and status lists valid and not near expiry.

    The trust list is verified against ``anchor`` (an anchor or its file; default the
    bundle's own ``anchor.json``) as a verifier would, except that expiry is reported
    rather than refused: past ``next_update`` is an error, within ``warn_within``
    seconds a warning. Each status list the trust list names is read from the bundle,
    its signature checked against the list's status keys, and its ``exp`` (or
    ``iat + ttl``) judged the same way. Temporaries left by a killed publish are reported,
    and so is every file of the verifier page (``verify/``) that is not the one whose
    digest the trust list signed.
    """
    bundle = Path(bundle)
    now = _now() if now is None else now
    if not bundle.is_dir():
        return [Finding("bundle_missing", Severity.ERROR, str(bundle),
                        "no bundle directory here")]
    findings: list[Finding] = []
    for directory in (bundle, bundle / _bundle.STATUS_DIR, bundle / ".well-known"):
        findings += _stray_temporaries(directory, "a publish was interrupted")
    trust_list, problems = _trust_list(bundle, anchor, now)
    findings += problems
    if trust_list is None:
        return findings
    findings += _expiry("trust_list", str(bundle / _bundle.TRUST_LIST_PATH),
                        f"trust list {trust_list.sequence} of {trust_list.region}",
                        trust_list.issued_at, trust_list.next_update, now, warn_within)
    for uri in trust_list.status_lists:
        findings += _status_list(bundle, trust_list, uri, now, warn_within)
    if trust_list.verifier_page is not None:
        # The page is served by the same host as the bundle: what is there must be what
        # the region signed (docs/verifier-page.md).
        page_dir = bundle / PAGE_DIR
        findings += [Finding("verifier_page_mismatch", Severity.ERROR, str(page_dir), problem +
                             ": the page served is not the one the trust list signed; "
                             "publish again and find out who changed it")
                     for problem in check_page(page_dir, trust_list.verifier_page)]
    return findings


# -- the publication watcher -----------------------------------------------------------------


def check_lease(lease: Lease | None, now: int | None = None) -> list[Finding]:
    """Judge the registry's publication lease (``Registry.publication_lease()``).

    Held and current: an ``ecert publish --watch`` runs (``info``). Held but expired: its
    holder stopped renewing without releasing it — it crashed, was killed, or lost the
    database — and nothing keeps the bundle fresh any more (``warning``). Nobody holding
    it says nothing: publishing by hand or from cron is a choice, not a fault.
    """
    if lease is None:
        return []
    now = _now() if now is None else now
    until = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(int(lease.expires_at.timestamp())))
    where = f"{lease.host} (pid {lease.pid}) publishing to {lease.directory}"
    if int(lease.expires_at.timestamp()) <= now:
        return [Finding("publish_watcher_stopped", Severity.WARNING, lease.directory,
                        f"the publish watcher on {where} stopped renewing its lease at "
                        f"{until}: it crashed or lost the database; start it again "
                        "(ecert publish DIR --watch)")]
    return [Finding("publish_watcher", Severity.INFO, lease.directory,
                    f"ecert publish --watch runs on {where}, lease until {until}")]


def diagnose(
    home: str | Path | None,
    *,
    bundle: str | Path | None = None,
    anchor: TrustAnchor | str | Path | None = None,
    known_kids: Collection[str] | None = None,
    active_kids: Collection[str] | None = None,
    extra: Iterable[Finding] = (),
    now: int | None = None,
    warn_within: int = EXPIRY_WARNING_SECONDS,
) -> Report:
    """Every check that applies: the home (keys, modes, verifier state) and the bundle
    (warning when a document expires within ``warn_within`` seconds)."""
    findings = list(extra)
    if home is not None:
        findings += check_home(home, known_kids=known_kids, active_kids=active_kids)
        findings += check_verifier_state(home)
    if bundle is not None:
        findings += check_bundle(bundle, anchor=anchor, now=now, warn_within=warn_within)
    return Report(tuple(findings))

