"""The registry: where a region's agencies issue, suspend, reinstate and revoke certificates.

A registry lives in a *home* directory (encrypted private keys, operators' encrypted
personal keys, and the embedded SQLite database unless ``database_url`` points
elsewhere, e.g. PostgreSQL). :class:`Registry` is a thin facade: every change goes
through one unit of work (:mod:`ecert.registry._core`) that authenticates the acting
operator, authorizes the action, applies it and appends a signed entry to the region's
Merkle log, in one transaction. The services by concern live beside it: catalog,
agencies and keys, issuance, lifecycle, recognition, operators, publication, audit.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ecert._authority import ALL_ROLES, revocations_digest
from ecert._clock import DEFAULT_TZ, Clock, from_seconds, start_of_day, to_seconds, zone
from ecert._formats import bundle as _bundle
from ecert._formats.catalog import catalog_document
from ecert._formats.log import commitment, commitment_opening
from ecert._formats.sharing import UseKind
from ecert._formats.statuslist import MIN_LIST_SIZE
from ecert._formats.text import TextInvalid
from ecert._formats.trustlist import Agreement, Entitlement, TrustList
from ecert._formats.url import check_http_url
from ecert._merge_patch import merge_patch
from ecert._pagination import Page, decode_cursor, page_of
from ecert._slots import LIST_BITS, shape_problem
from ecert._storage.database import make_engine, migrate, schema_is_current, sqlite_url
from ecert._storage.repository import Repository
from ecert.batch import (
    BatchFile,
    BatchRow,
    ExportedRow,
    RejectCode,
    RejectsFile,
    RevocationRow,
    RowOutcome,
    RowStatus,
    open_rows,
)
from ecert.errors import (
    AlreadyExists,
    ClaimsInvalid,
    FormatError,
    InputError,
    InvalidCertificateId,
    InvalidTransition,
    NotFound,
    PermissionDenied,
    StorageError,
)
from ecert.holder_ids import normalize_id, parse_scheme
from ecert.identifiers import CertificateId
from ecert.keys import KeyProvider, Signer
from ecert.models import (
    Agency,
    ApprovalRequest,
    Certificate,
    CertificateStatus,
    CertificateType,
    KeyInfo,
    KeyRole,
    Lease,
    LogEntry,
    Operator,
    Region,
    RequestStatus,
    RevocationReason,
)
from ecert.qr import Standing
from ecert.registry import (
    _agencies,
    _audit,
    _batch,
    _catalog,
    _check,
    _core,
    _fetch,
    _issuance,
    _lifecycle,
    _limits,
    _operators,
    _printing,
    _publication,
    _recognition,
    _sharing,
    _transfer,
    _watch,
    _witness,  # also registers the witness.cosign operation
)
from ecert.registry._audit import AuditReport, History
from ecert.registry._catalog import CatalogImport
from ecert.registry._check import CheckOutcome
from ecert.registry._core import (
    OperatorCredential,
    Passphrase,
    Unit,
    _Context,
    new_operator_key,
    operator_keys,
)
from ecert.registry._fetch import FetchResult, UseRecord
from ecert.registry._limits import ShareLimits
from ecert.registry._publication import PublishReport, log_origin
from ecert.registry._rules import is_no_end, until_seconds
from ecert.registry._sharing import Consent, ConsentCode
from ecert.registry._transfer import ExportReport
from ecert.registry._watch import WatchCycle, WatchOutcome
from ecert.registry._witness import CosignReport
from ecert.trust import TrustAnchor
from ecert.verify import Verifier


class Unset:
    """The type of :data:`UNSET`: an argument not given (where ``None`` means something)."""


UNSET = Unset()

__all__ = ["AuditReport", "CatalogImport", "CheckOutcome", "Consent", "ConsentCode",
           "CosignReport", "ExportReport", "FetchResult", "History", "OperatorCredential",
           "PublishReport", "Registry", "ShareLimits", "UseRecord", "WatchCycle", "WatchOutcome"]

_DB_FILE = "registry.db"


def _code_text(code: str) -> str:
    """A type or agency code as typed: NFKC (full-width letters), no outer white space,
    lower case (the case of every ecert code)."""
    if not isinstance(code, str):
        raise InputError("a type or agency code must be text", code="invalid_code")
    return unicodedata.normalize("NFKC", code).strip().lower()


class Registry:
    """A region's certificate registry. Open with :meth:`init` or :meth:`open`.

    ``operator`` is who acts (:class:`OperatorCredential`). Reading needs no operator;
    every change does, and is refused (:class:`ecert.errors.AccessError`) for an unknown,
    disabled or unauthenticated operator, or one whose roles do not permit it.
    """

    def __init__(self, ctx: _Context) -> None:
        self._ctx = ctx
        self._leases = _limits.QuotaLeases()

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        home: str | Path,
        *,
        region: str,
        name: str,
        base_url: str,
        admin: OperatorCredential,
        passphrase: Passphrase | None = None,
        database_url: str | None = None,
        clock: Clock | None = None,
        kdf_rounds: int | None = None,
        status_list_size: int = MIN_LIST_SIZE,
        key_provider: KeyProvider | None = None,
        tz: str = DEFAULT_TZ,
    ) -> Registry:
        """Create a registry for ``region``, its first admin (holding every role), and its
        root, status-list, log and witness keys — the first unit of its log. ``tz`` (an
        IANA name) is where its clerks are: a date they give ends at local midnight."""
        zone(tz)  # an unknown zone is refused before anything is made
        if not region.isascii() or not region.isalnum() or len(region) > 16:
            raise InputError(f"region code {region!r} must be 1 to 16 letters or digits",
                             code="invalid_code")
        base_url = base_url.rstrip("/")
        try:
            check_http_url(base_url, base=True)
        except FormatError as e:
            raise InputError(f"base URL: {e.message}", code="invalid_url") from e
        _operators.check_operator_name(admin.name)
        home_path = Path(home)
        home_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        home_path.chmod(0o700)  # keys and the database live here
        if database_url is None:
            # Create the database file private before SQLite opens it with the umask.
            db_file = home_path / _DB_FILE
            os.close(os.open(db_file, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = make_engine(database_url or sqlite_url(home_path / _DB_FILE))
        try:
            if not schema_is_current(engine):
                migrate(engine)
            value = Region(region.upper(), name, base_url, tz)
            ctx = _Context(home_path, engine, value, passphrase=passphrase, clock=clock,
                           operator=admin, kdf_rounds=kdf_rounds, key_provider=key_provider,
                           status_list_size=_checked_list_size(status_list_size))
            with ctx.read() as repo:
                if repo.get_region() is not None:
                    where = str(home_path) if database_url is None else "that database"
                    raise AlreadyExists(f"a registry exists already in {where}")
            first, signer = _first_admin(ctx, admin)
            with ctx._write() as repo:
                unit = Unit(ctx, repo, first, ctx.now())
                _operators.genesis(ctx, unit, value, log_origin(value))
                unit.seal(signer)
            return cls(ctx)
        except BaseException:
            engine.dispose()  # a failed init must not leave connections behind
            raise

    @classmethod
    def open(
        cls,
        home: str | Path,
        *,
        operator: OperatorCredential | None = None,
        passphrase: Passphrase | None = None,
        database_url: str | None = None,
        clock: Clock | None = None,
        kdf_rounds: int | None = None,
        status_list_size: int = MIN_LIST_SIZE,
        key_provider: KeyProvider | None = None,
    ) -> Registry:
        """Open an existing registry. ``passphrase`` may be a callable asked on first need."""
        home_path = Path(home)
        if database_url is None and not (home_path / _DB_FILE).exists():
            raise StorageError(f"no registry in {home_path}: run 'ecert init' first",
                               code="not_initialized")
        engine = make_engine(database_url or sqlite_url(home_path / _DB_FILE))
        try:
            if not schema_is_current(engine):
                migrate(engine)
            with engine.connect() as conn:
                region = Repository(conn).get_region()
            if region is None:
                where = str(home_path) if database_url is None else "that database"
                raise StorageError(f"no registry in {where}: run 'ecert init' first",
                                   code="not_initialized")
            return cls(_Context(home_path, engine, region, passphrase=passphrase, clock=clock,
                                operator=operator, kdf_rounds=kdf_rounds,
                                key_provider=key_provider,
                                status_list_size=_checked_list_size(status_list_size)))
        except SQLAlchemyError as e:
            engine.dispose()
            raise StorageError(f"cannot open registry database: {e}") from e
        except BaseException:
            engine.dispose()  # a failed open must not leave connections behind
            raise

    @classmethod
    def adopt(cls, home: str | Path, *, admin: OperatorCredential,
              passphrase: Passphrase | None = None, database_url: str | None = None,
              clock: Clock | None = None, kdf_rounds: int | None = None,
              key_provider: KeyProvider | None = None) -> Registry:
        """Bring a registry made before 0.2 (no operators, no log) under the log.

        Needs the registry passphrase (proving ownership) and names its first admin. Its
        old events become the first (legacy, unsigned) log entries; the admin then signs
        one unit recording the types, agencies, keys and agreements as they stand.
        Refused once the registry has a log.
        """
        registry = cls.open(home, passphrase=passphrase, database_url=database_url,
                            clock=clock, kdf_rounds=kdf_rounds, key_provider=key_provider)
        ctx = registry._ctx
        try:
            _operators.check_operator_name(admin.name)
            with ctx.read() as repo:
                if repo.counter("log_size") or repo.list_operators():
                    raise AlreadyExists("this registry has a log and operators already")
                legacy = repo.list_events(None, 10_000_000)
            first, signer = _first_admin(ctx, admin)
            with ctx._write() as repo:
                unit = Unit(ctx, repo, first, ctx.now())
                _operators.adopt(ctx, unit, legacy)
                unit.seal(signer)
            ctx.credential = admin
            return registry
        except BaseException:
            registry.close()
            raise

    def close(self) -> None:
        """Release database connections."""
        self._ctx.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def home(self) -> Path:
        """The registry home directory."""
        return self._ctx.home

    @property
    def region(self) -> Region:
        """The region this registry belongs to."""
        return self._ctx.region

    @property
    def clock(self) -> Clock:
        """The registry's clock (the system clock unless one was given)."""
        return self._ctx.clock

    @property
    def engine(self) -> Engine:
        """The database engine (for operations tooling and tests)."""
        return self._ctx.engine

    @property
    def keystore(self) -> KeyProvider:
        """The registry's private keys (the file store asks for the passphrase once)."""
        return self._ctx.keystore

    @property
    def operator(self) -> str | None:
        """The name of the operator this registry acts as, if any."""
        return None if self._ctx.credential is None else self._ctx.credential.name

    def _now(self) -> int:
        return self._ctx.now()

    # -- operators, policies, requests -------------------------------------------------------

    def whoami(self) -> Operator:
        """The acting operator, authenticated (raises :class:`ecert.errors.AccessError`)."""
        return self._ctx.authenticate()[0]

    def operators(self) -> list[Operator]:
        """Every operator account."""
        with self._ctx.read() as repo:
            return repo.list_operators()

    def add_operator(self, name: str, *, roles: Iterable[str],
                     agencies: Iterable[str] | None = None, types: Iterable[str] | None = None,
                     passphrase: bytes | str | None = None,
                     public_jwk: Mapping[str, str] | None = None) -> Operator:
        """Add an operator with a new personal key encrypted under ``passphrase``, or with
        the public key (``public_jwk``) of a key held elsewhere — a smart card, an HSM, a
        key bound to the deployment's single sign-on — whose holder then acts with
        ``OperatorCredential(name, signer=...)``."""
        _operators.check_operator_name(name)
        grants = _operators.parse_grants(roles, agencies, types)
        if (passphrase is None) == (public_jwk is None):
            raise InputError("give the new operator a passphrase (a key file is made) or "
                             "the public key of a key they hold elsewhere, not both",
                             code="missing_passphrase")
        with self._ctx.read() as repo:
            if repo.get_operator(name) is not None:
                raise AlreadyExists(f"operator {name} exists already")
        if public_jwk is not None:
            jwk = _operators.checked_public_jwk(public_jwk)
        else:
            assert passphrase is not None  # noqa: S101 - checked above
            jwk = new_operator_key(self.home, name, passphrase, self._ctx.kdf_rounds).public_jwk
        return self._ctx.execute(_operators.ADD_OPERATOR, {
            "name": name, "jwk": dict(jwk), "grants": [g.to_json() for g in grants]})

    def disable_operator(self, name: str) -> Operator:
        """Disable an operator for good (their past entries stay attributable)."""
        return self._ctx.execute(_operators.DISABLE_OPERATOR, {"name": name})

    def grant(self, name: str, *, roles: Iterable[str], agencies: Iterable[str] | None = None,
              types: Iterable[str] | None = None) -> Operator:
        """Replace an operator's roles and scopes."""
        grants = _operators.parse_grants(roles, agencies, types)
        return self._ctx.execute(_operators.GRANT_OPERATOR, {
            "name": name, "grants": [g.to_json() for g in grants]})

    def reset_operator(self, name: str, *, passphrase: bytes | str) -> Operator:
        """Give another operator a new key under a new passphrase (an admin's action)."""
        signer = new_operator_key(self.home, name, passphrase, self._ctx.kdf_rounds)
        return self._ctx.execute(_operators.RESET_OPERATOR,
                                 {"name": name, "jwk": dict(signer.public_jwk)})

    def rotate_operator_key(self, *, passphrase: bytes | str) -> Operator:
        """Give the acting operator a new personal key (under ``passphrase``)."""
        me = self.whoami()
        signer = new_operator_key(self.home, me.name, passphrase, self._ctx.kdf_rounds)
        updated = self._ctx.execute(_operators.ROTATE_OPERATOR_KEY,
                                    {"name": me.name, "jwk": dict(signer.public_jwk)})
        self._ctx._authenticated = (updated, signer)
        return updated

    def change_passphrase(self, new_passphrase: bytes | str) -> None:
        """Re-encrypt the acting operator's key file under ``new_passphrase``."""
        credential = self._ctx.credential
        me = self.whoami()
        if credential is None or credential.signer is not None:
            raise InputError("only a key file's passphrase can be changed here")
        if not new_passphrase:
            raise InputError("the new passphrase is empty", code="missing_passphrase")
        self._ctx.execute(_operators.PASSWD, {"name": me.name})
        store = operator_keys(self.home, me.name, _resolve(credential.passphrase),
                              self._ctx.kdf_rounds)
        store.reencrypt(me.kid, new_passphrase)

    def set_policy(self, action: str, *, approvals: int, type_code: str | None = None) -> None:
        """Require ``approvals`` operators for ``action`` (on ``type_code``, or every type)."""
        self._ctx.execute(_operators.SET_POLICY,
                          _operators.policy_params(action, approvals, type_code))

    def policies(self) -> dict[tuple[str, str], int]:
        """Four-eyes policies: ``(action, type or "")`` -> operators needed."""
        with self._ctx.read() as repo:
            return repo.list_policies()

    def requests(self, *, pending: bool = False, limit: int = 100) -> list[ApprovalRequest]:
        """Four-eyes requests, newest first (``pending``: only those still waiting)."""
        return list(self.requests_page(pending=pending, limit=limit).items)

    def requests_page(self, *, pending: bool = False, limit: int = 100,
                      after: str | None = None) -> Page[ApprovalRequest]:
        """One page of four-eyes requests, newest first (``after``: a ``next`` cursor)."""
        if limit < 1:
            raise InputError("limit must be at least 1")
        before = None if after is None else int(decode_cursor(after, (int,))[0])
        now = self._now()
        with self._ctx.read() as repo:
            found = repo.list_requests(
                status=RequestStatus.PENDING if pending else None, limit=limit + 1,
                before_id=before, unexpired_at=now if pending else None)
        found = [r if r.status is not RequestStatus.PENDING
                 or now < int(r.expires_at.timestamp()) else _expired(r) for r in found]
        return page_of(found, limit, lambda r: (r.id,))

    def approve(self, request_id: int) -> ApprovalRequest:
        """Approve a request; the last approval needed carries the change out."""
        return self._ctx.execute(_operators.APPROVE, {"request": request_id})

    def reject(self, request_id: int, *, reason: str) -> ApprovalRequest:
        """Reject a request (``reason`` is kept in the registry, its hash in the log)."""
        if not reason.strip():
            raise InputError("a rejection needs a reason", code="missing_reason")
        return self._ctx.execute(_operators.REJECT, {"request": request_id, "reason": reason})

    # -- catalog -----------------------------------------------------------------------------

    def add_type(self, code: str, *, name: str, national_type_code: str,
                 schema: Mapping[str, Any], validity_days: int | None = None,
                 qr_claims: Iterable[str] = (), version: int = 1,
                 extra: Mapping[str, Any] | None = None,
                 holder_id_scheme: str | None = None,
                 holder_claims: Mapping[str, str] | None = None) -> CertificateType:
        """Add a certificate type to the catalog; its JSON Schema is checked first.

        ``holder_id_scheme`` (``resident-id``, ``uscc`` or ``pattern:<regex>``, see
        :mod:`ecert.holder_ids`) is the scheme its holders' ids must follow;
        ``holder_claims`` (``{"holder_id": claim, "holder_name": claim}``) the claims that
        must agree with the holder id and name at issuance. Without them, any id is taken.

        ``extra`` keeps catalog fields ecert does not interpret (written back on export).
        """
        return self._ctx.execute(_catalog.ADD_TYPE, _catalog.type_params(
            code, name, national_type_code, schema, validity_days, qr_claims, version, extra,
            holder_id_scheme, holder_claims))

    def update_type(self, code: str, *, schema: Mapping[str, Any] | None = None,
                    name: str | None = None, validity_days: int | Unset | None = UNSET,
                    qr_claims: Iterable[str] | None = None, version: int | None = None,
                    extra: Mapping[str, Any] | None = None,
                    holder_id_scheme: str | Unset | None = UNSET,
                    holder_claims: Mapping[str, str] | None = None) -> CertificateType:
        """Add a new version of type ``code``; what is not given stays as it is.

        New certificates use the new version; issued ones keep theirs and still verify.
        ``version`` defaults to the next one. The national type code cannot change.
        """
        current = self.get_type(code)
        return self._ctx.execute(_catalog.UPDATE_TYPE, _catalog.type_params(
            code, current.name if name is None else name, current.national_type_code,
            current.schema if schema is None else schema,
            current.validity_days if isinstance(validity_days, Unset) else validity_days,
            current.qr_claims if qr_claims is None else qr_claims, version,
            current.extra if extra is None else extra,
            current.holder_id_scheme if isinstance(holder_id_scheme, Unset)
            else holder_id_scheme,
            current.holder_claims if holder_claims is None else holder_claims))

    def get_type(self, code: str, *, version: int | None = None) -> CertificateType:
        """The catalog entry of ``code``: its latest version, or ``version``."""
        with self._ctx.read() as repo:
            value = repo.get_type(code) if version is None else repo.get_type_version(code,
                                                                                      version)
        if value is None:
            raise NotFound(f"no certificate type {code!r}"
                           + ("" if version is None else f" version {version}"))
        return value

    def type_versions(self, code: str) -> list[CertificateType]:
        """Every version of type ``code``, oldest first."""
        with self._ctx.read() as repo:
            values = repo.list_type_versions(code)
        if not values:
            raise NotFound(f"no certificate type {code!r}")
        return values

    def types(self) -> list[CertificateType]:
        """All catalog types (their latest versions)."""
        with self._ctx.read() as repo:
            return repo.list_types()

    def import_catalog(self, catalog: str | Path | Mapping[str, Any], *,
                       dry_run: bool = False) -> CatalogImport:
        """Load a catalog file (or parsed document) in one unit of work, idempotently.

        New types are added; a type whose definition differs becomes a new version; the
        same catalog imported again changes nothing (and logs nothing). Schema paths are
        relative to the file (a parsed document must embed its schemas). With
        ``dry_run``, only says what would change.
        """
        types = _catalog.read_catalog(catalog)
        params = [_catalog.type_params(t["code"], t["name"], t["national_type_code"],
                                       t["schema"], t["validity_days"], t["qr_claims"],
                                       t["version"], t["extra"], t["holder_id_scheme"],
                                       t["holder_claims"]) for t in types]
        with self._ctx.read() as repo:
            plan, _steps = _catalog.plan_import(repo, params)
        if dry_run or not plan.changed:
            return plan
        return self._ctx.execute(_catalog.IMPORT_CATALOG, {"types": params})

    def export_catalog(self) -> dict[str, Any]:
        """The catalog as ``import_catalog`` reads it, schemas embedded."""
        return catalog_document(
            {"code": t.code, "name": t.name, "national_type_code": t.national_type_code,
             "version": t.version, "schema": t.schema, "validity_days": t.validity_days,
             "qr_claims": t.qr_claims, "extra": t.extra,
             "holder_id_scheme": t.holder_id_scheme, "holder_claims": dict(t.holder_claims)}
            for t in self.types())

    # -- agencies and keys -------------------------------------------------------------------

    def add_agency(self, code: str, *, name: str, uscc: str, types: Iterable[str],
                   alg: str = "ES256") -> Agency:
        """Register an agency with the types it may issue, and give it a signing key."""
        return self._ctx.execute(_agencies.ADD_AGENCY,
                                 _agencies.agency_params(code, name, uscc, types, alg))

    def get_agency(self, code: str) -> Agency:
        """The agency ``code``."""
        with self._ctx.read() as repo:
            value = repo.get_agency(code)
        if value is None:
            raise NotFound(f"no agency {code!r}")
        return value

    def agencies(self) -> list[Agency]:
        """All agencies."""
        with self._ctx.read() as repo:
            return repo.list_agencies()

    def update_agency(self, code: str, *, name: str | None = None,
                      allow_types: Iterable[str] = (), deny_types: Iterable[str] = (),
                      deny_from: datetime | date | None = None) -> Agency:
        """Rename agency ``code``, give it types, or deny it types from ``deny_from`` on.

        Each change is its own logged operation (so four-eyes policies on
        ``agency.rename``, ``agency.allow_type`` and ``agency.deny_type`` hold each one),
        carried out in the order name, given types, denied types. Denying a type takes
        effect from ``deny_from`` (default: when the change is carried out; a date means
        its start in the registry's time zone) and never earlier: what the agency issued
        before keeps verifying, as the next trust list gives the type a validity window.
        """
        allow, deny = list(dict.fromkeys(allow_types)), list(dict.fromkeys(deny_types))
        if name is None and not allow and not deny:
            raise InputError("nothing to change: give a new name, types to allow or to deny",
                             code="missing_change")
        if set(allow) & set(deny):
            raise InputError("a type cannot be given and denied at once", code="invalid_change")
        if deny_from is not None and not deny:
            raise InputError("a date to deny from needs types to deny", code="invalid_change")
        since = None
        if isinstance(deny_from, datetime):
            since = to_seconds(deny_from, "deny_from")
        elif deny_from is not None:  # that day's start in the registry's time zone
            since = start_of_day(deny_from, zone(self._ctx.region.tz))
        agency = self.get_agency(code)
        if name is not None:
            agency = self._ctx.execute(_agencies.RENAME_AGENCY, {"agency": code, "name": name})
        for type_code in allow:
            agency = self._ctx.execute(_agencies.ALLOW_TYPE, {"agency": code, "type": type_code})
        for type_code in deny:
            agency = self._ctx.execute(_agencies.DENY_TYPE,
                                       {"agency": code, "type": type_code, "since": since})
        return agency

    def keys(self, agency_code: str | None = None) -> list[KeyInfo]:
        """Signing keys, optionally of one agency."""
        with self._ctx.read() as repo:
            return repo.list_keys(agency_code=agency_code)

    def rotate_agency_key(self, code: str, *, alg: str = "ES256") -> KeyInfo:
        """Give an agency a new signing key; the old one stops signing but keeps verifying.

        The old private key is destroyed once the change is committed.
        """
        return self._key_change(KeyRole.AGENCY, code, alg)

    def _key_change(self, role: KeyRole, agency: str | None, alg: str = "ES256", *,
                    replace: bool = True, create: bool = True) -> KeyInfo:
        key = self._ctx.execute(_agencies.ROTATE_KEY, _agencies.rotate_params(
            role, None if agency is None else _code_text(agency), alg, replace=replace,
            create=create))
        assert key is not None  # noqa: S101 - create is set
        return key

    def create_requester_key(self, code: str, *, alg: str = "ES256") -> KeyInfo:
        """Give agency ``code`` its first requester key (RFC 9421 requests to other regions'
        sharing services; never the key that signs its certificates). An agency that only
        consumes has a registry home of its own where it is an agency without types."""
        return self._key_change(KeyRole.REQUESTER, code, alg, replace=False)

    def rotate_requester_key(self, code: str, *, alg: str = "ES256") -> KeyInfo:
        """Replace agency ``code``'s requester key (the old one stops verifying requests
        once the next trust list is published)."""
        return self._key_change(KeyRole.REQUESTER, code, alg)

    def retire_requester_key(self, code: str) -> None:
        """Retire agency ``code``'s requester key without a successor."""
        self._ctx.execute(_agencies.ROTATE_KEY, _agencies.rotate_params(
            KeyRole.REQUESTER, _code_text(code), "ES256", create=False))

    def rotate_sharing_key(self, *, alg: str = "ES256") -> KeyInfo:
        """Replace the registry's sharing key (which signs purpose-bound copies), or give a
        registry made before sharing existed its first one."""
        return self._key_change(KeyRole.SHARING, None, alg)

    def requester_signer(self, code: str) -> Signer:
        """The signer of agency ``code``'s active requester key, for signing requests to
        other regions' sharing services (``share fetch``)."""
        with self._ctx.read() as repo:
            key = repo.active_key(KeyRole.REQUESTER, _code_text(code))
        if key is None:
            raise NotFound(f"agency {code} has no active requester key: create one with "
                           "'ecert key create-requester'", code="no_requester_key")
        return self._ctx.signer(key.kid)

    def mark_key_compromised(self, kid: str, *, since: datetime | None = None) -> KeyInfo:
        """Declare an agency key compromised from ``since`` (default: now).

        Verifiers refuse certificates it signed at or after ``since`` once the next trust
        list is published. If it was the agency's active key, the agency gets a new one.
        The private key is destroyed. :meth:`find` with ``kid`` lists what to reissue.
        """
        when = self._now() if since is None else to_seconds(since, "since")
        return self._ctx.execute(_agencies.COMPROMISE_KEY, {"kid": kid, "since": when})

    def signed_count(self, kid: str, *, since: datetime | None = None) -> int:
        """How many certificates ``kid`` signed (at or after ``since``)."""
        start = 0 if since is None else to_seconds(since, "since")
        with self._ctx.read() as repo:
            return repo.count_signed_since(kid, start)

    def rotate_root(self, *, alg: str = "ES256") -> KeyInfo:
        """Replace the region root key; the old root signs a hand-over to the new one."""
        return self._ctx.execute(_agencies.ROTATE_ROOT, {"alg": alg})

    # -- sharing: entitlements (用证清单) and consent codes (用证码) ----------------------------

    def share_allow(self, requester: str, types: Iterable[str], purposes: Iterable[str],
                    claims: Iterable[str] | None = None, without_consent: bool = False, *,
                    valid_until: datetime | date | None = None) -> Entitlement:
        """Let ``requester`` (``REGION/agency-code``, or ``REGION`` for all its agencies)
        fetch certificates of ``types`` for ``purposes`` through the sharing service,
        receiving only ``claims`` (None: all of the type's claims).

        ``without_consent`` (依职能用证, by statute) lets it fetch without the holder's
        consent code; such an entitlement always needs a second operator's approval
        (:class:`ecert.errors.PendingApproval` until then), whatever the policies say.
        Published in the next trust list, so everyone sees who may receive what.
        """
        end = None if valid_until is None else until_seconds(valid_until, self._ctx.region.tz)
        if isinstance(types, str):
            types = [types]
        return self._ctx.execute(_sharing.ALLOW, _sharing.entitlement_params(
            requester, [_code_text(t) for t in types], purposes, claims, without_consent,
            end))

    def share_list(self, *, ended: bool = False, limit: int = 100,
                   after: str | None = None) -> Page[Entitlement]:
        """One page of entitlements by id (``ended``: also those revoked or expired)."""
        if limit < 1:
            raise InputError("limit must be at least 1")
        start = None if after is None else str(decode_cursor(after, (str,))[0])
        with self._ctx.read() as repo:
            rows = repo.list_entitlements(in_force_at=None if ended else self._now(),
                                          after=start, limit=limit + 1)
        return page_of(rows, limit, lambda e: (e.id,))

    def share_revoke(self, entitlement_id: str) -> Entitlement:
        """End entitlement ``entitlement_id`` now."""
        return self._ctx.execute(_sharing.REVOKE, {"id": entitlement_id})

    def consent_grant(self, holder_id: str, to: str, types: Iterable[str], purpose: str,
                      ttl: timedelta | int = timedelta(hours=1)) -> ConsentCode:
        """Make a consent code (用证码) at the service window, on the holder's behalf: it
        lets requester ``to`` (``REGION/agency-code``) fetch the holder's certificates of
        ``types`` once, for ``purpose``, within ``ttl`` (a minute to 30 days).

        The acting clerk needs ``consent.grant`` for every type (within an agency that
        issues it); the grant is logged with their identity, the holder only as a
        commitment. The code is returned once: the registry keeps only its keyed hash.
        """
        return self._consent(holder_id, to, types, purpose, ttl, _sharing.CLERK_CHANNEL)

    def consent_grant_by_holder(self, authenticated_holder_id: str, to: str,
                                types: Iterable[str], purpose: str,
                                ttl: timedelta | int = timedelta(hours=1)) -> ConsentCode:
        """The holder's own channel: as :meth:`consent_grant`, for a holder the deployment's
        identity hook (an OIDC login, …) has authenticated — this function trusts that id.
        The acting operator must be the ``service`` operator; the log marks the grant
        ``channel: holder``. At most ``ShareLimits.grants_per_holder`` an hour per holder
        (then :class:`ecert.errors.PermissionDenied`, code ``too_many_requests``), so a
        stolen login cannot mint codes without end."""
        if not self._take_request("grant", self._holder(authenticated_holder_id)):
            raise PermissionDenied("this holder granted too many consent codes this hour",
                                   code="too_many_requests")
        return self._consent(authenticated_holder_id, to, types, purpose, ttl,
                             _sharing.HOLDER_CHANNEL)

    def _consent(self, holder_id: str, to: str, types: Iterable[str], purpose: str,
                 ttl: timedelta | int, channel: str) -> ConsentCode:
        seconds = int(ttl.total_seconds()) if isinstance(ttl, timedelta) else ttl
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise InputError("ttl is a number of seconds or a timedelta", code="invalid_ttl")
        if isinstance(types, str):
            types = [types]
        return self._ctx.execute(_sharing.GRANT_CONSENT, _sharing.consent_params(
            self._holder(holder_id), to, [_code_text(t) for t in types], purpose, seconds,
            channel))

    def _holder(self, holder_id: str) -> str:
        """A holder id as typed, normalised as issuance does, as its pseudonym."""
        if not isinstance(holder_id, str) or not normalize_id(holder_id):
            raise InputError("no holder id", code="holder_id_empty")
        return self.holder_pseudonym(normalize_id(holder_id))

    def consent_revoke(self, consent_id: str, *, holder_id: str | None = None) -> None:
        """Revoke an unused consent: at the window by a clerk within its agencies and
        types, or (``holder_id``) on the holder's own channel by the ``service`` operator,
        only if it is that holder's."""
        self._ctx.execute(_sharing.REVOKE_CONSENT, {
            "id": consent_id,
            "holder": None if holder_id is None else self._holder(holder_id)})

    def consents(self, holder_id: str) -> list[Consent]:
        """The consents a holder gave, newest first (to show the holder; never the codes)."""
        holder = self._holder(holder_id)
        with self._ctx.read() as repo:
            rows = repo.consents_of(holder)
        return [Consent.from_row(r) for r in rows]

    # -- sharing: the fetch, use records, nonces --------------------------------------------

    def share_fetch(self, requester: str, holder_id: str, types: Iterable[str], *,
                    purpose: str, case: str, service_item: str, staff_id: str,
                    staff_role: str, request_hash: str, consent: str | None = None,
                    copy_ttl: timedelta = timedelta(hours=24),
                    nonce: tuple[str, int] | None = None) -> FetchResult:
        """Answer an authenticated requester's fetch (the sharing service calls this as
        the ``service`` operator, after checking the request's signature, region and
        nonce): purpose-bound copies of the holder's valid certificates of ``types``, or
        the first problem (``not_entitled``, ``purpose_not_permitted``,
        ``consent_required``, ``too_many_requests``, ``consent_invalid``) — see
        :mod:`ecert.registry._fetch`. Granted or refused, the call is one use record and
        one ``share.fetch`` log entry. A holder with no such certificate gets no copy.
        Malformed parameters raise :class:`ecert.errors.InputError` (``invalid_request``,
        ``invalid_requester``) before anything is decided: the service records such a
        request with :meth:`share_refused` (``bad_request``).

        ``nonce`` (the request's nonce and when it may be forgotten, epoch seconds) is
        remembered in the fetch's own transaction, as :meth:`remember_nonce` would, saving
        the sharing service a transaction per request: one seen before raises
        :class:`ecert.errors.Replayed` and nothing is recorded (the service records the
        replay as it records its own refusals).
        """
        if isinstance(types, str):
            types = [types]
        params = _fetch.fetch_params(
            requester=requester, holder=self._holder(holder_id),
            types=[_code_text(t) for t in types], purpose=purpose, case=case,
            service_item=service_item, staff_id=staff_id, staff_role=staff_role,
            consent=consent, request_hash=request_hash,
            ttl=int(copy_ttl.total_seconds()), nonce=nonce)
        if not self._take_request("fetch", requester):
            params["refused"] = "too_many_requests"
        return self._ctx.execute(_fetch.FETCH, params)

    def share_check(self, requester: str, type: str, values: Mapping[str, str], *,
                    purpose: str, case: str, service_item: str, staff_id: str,
                    staff_role: str, request_hash: str, consent: str | None = None,
                    nonce: tuple[str, int] | None = None) -> CheckOutcome:
        """Answer an authenticated requester's check (核验; the sharing service calls this
        as the ``service`` operator, as it calls :meth:`share_fetch`): whether ``values``
        match one certificate of type ``type`` valid now, and nothing else.

        ``values`` are text by name: ``certificate_id`` or ``holder_id`` (one of them is
        required, so a check is about a known subject, never a search), ``holder_name``,
        and claim names. The answer is one ``match`` for all of them, never which matched.
        Refusals, in order: ``too_many_requests`` (the requester's checks this hour),
        ``not_entitled``, ``purpose_not_permitted``, ``not_entitled`` (a claim the
        entitlements do not hand out; ``holder_name`` unless they hand out every claim),
        ``too_many_requests`` (the subject's checks this hour), then the consent as for a
        fetch — see :mod:`ecert.registry._check`. Every call is a use record of kind
        ``check`` and a ``share.check`` log entry.
        :meth:`CheckOutcome.answer` is what a :class:`ecert.sharing.SharingBackend`'s
        ``check`` returns. Malformed parameters raise :class:`ecert.errors.InputError`;
        ``nonce`` as for :meth:`share_fetch`.
        """
        if not isinstance(values, Mapping):
            raise InputError("values are text by name", code="invalid_request")
        holder_id = values.get(_check.HOLDER_ID)
        holder = None if holder_id is None else self._holder(holder_id)
        params = _check.check_params(
            requester=requester, holder=holder, type_code=_code_text(type), values=values,
            purpose=purpose, case=case, service_item=service_item, staff_id=staff_id,
            staff_role=staff_role, consent=consent, request_hash=request_hash,
            nonce=nonce)
        if not self._take_request("check", requester):
            params["refused"] = "too_many_requests"
        return self._ctx.execute(_check.CHECK, params)

    def _take_request(self, kind: str, who: str) -> bool:
        """Count one request of ``kind`` (``fetch``, ``check``: by requester; ``grant``:
        a holder's own consent, by the holder's pseudonym) by ``who``; whether it is
        within the hourly limit. From this process's lease of requests when it has one
        left (:class:`~ecert.registry._limits.QuotaLeases`), else a short transaction of
        its own before the request's unit of work that counts a new lease, so concurrent
        requests hold the counter's row lock only for the increment."""
        scope = f"{kind}:{who}"
        now = self._now()

        def count() -> int:
            with self._ctx._write() as repo:  # bookkeeping, no change of state to log
                # A crash may forget the last counts (a few requests more that hour),
                # which is harmless; waiting for the disk for each is not (format 15.14).
                repo.commit_lazily()
                limits = _limits.current_limits(repo)
                limit = {"fetch": limits.fetches_per_hour, "check": limits.checks_per_hour,
                         "grant": limits.grants_per_holder}[kind]
                return _limits.lease(repo, scope, limit, _limits.lease_size(limit), now)

        return self._leases.take(scope, now, count)

    def share_limits(self) -> ShareLimits:
        """The sharing service's rate limits in force (:class:`ShareLimits`)."""
        with self._ctx.read() as repo:
            return _limits.current_limits(repo)

    def set_share_limits(self, *, fetches_per_hour: int | None = None,
                         checks_per_hour: int | None = None,
                         checks_per_subject: int | None = None,
                         grants_per_holder: int | None = None) -> ShareLimits:
        """Set the sharing service's rate limits (those not given stay): requests per
        requester and hour, checks per subject and hour, and consent codes a holder
        grants on their own channel per hour (0: none). A trust admin's
        logged ``share.limits`` change; every worker reads the new numbers at its next
        request."""
        with self._ctx.read() as repo:
            current = _limits.current_limits(repo)
        return self._ctx.execute(_limits.SET_LIMITS, _limits.limits_params(current, {
            "fetches_per_hour": fetches_per_hour, "checks_per_hour": checks_per_hour,
            "checks_per_subject": checks_per_subject,
            "grants_per_holder": grants_per_holder}))

    def share_refused(self, problem: str, *, kind: UseKind | str, requester: str | None,
                      holder_id: str | None, types: Iterable[str] | str | None = None,
                      purpose: str | None = None, case: str | None = None,
                      service_item: str | None = None, staff_id: str | None = None,
                      staff_role: str | None = None, request_hash: str | None = None
                      ) -> FetchResult | CheckOutcome:
        """Record a request the sharing service refused before asking the registry
        (``not_authenticated``, ``region_not_recognized``, ``replay``,
        ``too_many_requests``, ``bad_request``): a use record and a log entry, like every
        other request, of the ``kind`` of the endpoint it called — ``fetch``
        (``share.fetch``, a :class:`FetchResult`) or ``check`` (``share.check``, a
        :class:`CheckOutcome`). The fields are what the request *claimed* (it was not
        authenticated, or not well formed); each is kept printable and cut to size."""
        holder = "-"
        if isinstance(holder_id, str) and normalize_id(holder_id):
            holder = self.holder_pseudonym(normalize_id(holder_id))
        claimed: dict[str, Any] = {
            "requester": requester, "holder": holder,
            "types": list(types) if types is not None and not isinstance(types, str)
            else types, "purpose": purpose, "case": case, "service_item": service_item,
            "staff_id": staff_id, "staff_role": staff_role, "request_hash": request_hash}
        if kind == UseKind.CHECK:
            return self._ctx.execute(_check.CHECK, _check.refusal_params(problem, **claimed))
        if kind != UseKind.FETCH:
            raise InputError(f"{str(kind)[:40]!r} is no kind of request: fetch or check",
                             code="invalid_request")
        return self._ctx.execute(_fetch.FETCH, _fetch.refusal_params(problem, **claimed))

    def uses(self, holder_id: str, *, limit: int = 100,
             after: str | None = None) -> Page[UseRecord]:
        """One page of a holder's use records, newest first: who fetched their
        certificates, when, for which case and purpose, on which consent."""
        if limit < 1:
            raise InputError("limit must be at least 1")
        before = None if after is None else int(decode_cursor(after, (int,))[0])
        holder = self._holder(holder_id)
        with self._ctx.read() as repo:
            rows = repo.list_uses(holder, before=before, limit=limit + 1)
        return page_of([UseRecord.from_row(r) for r in rows], limit, lambda u: (u.id,))

    def remember_nonce(self, requester: str, nonce: str, expires_at: int) -> bool:
        """Keep a signed request's nonce until ``expires_at`` (epoch seconds); False if
        ``requester`` used it before (a replay). Atomic between workers and hosts sharing
        the database: the second insert of a key fails on its primary key."""
        if not nonce or len(nonce) > 200 or not requester or len(requester) > 120:
            raise InputError("a nonce is 1 to 200 characters", code="invalid_request")
        with self._ctx._write() as repo:  # bookkeeping, no change of state to log
            return repo.remember_nonce(requester, nonce, expires_at, self._now())

    def forget_nonces(self) -> int:
        """Drop the nonces whose time passed, and the request counts and wrong consent
        codes' counts of windows before the current one; how many nonces."""
        now = self._now()
        with self._ctx._write() as repo:
            repo.forget_request_counts(_limits.window_of(now))
            # Each count by its own window: one of a lockout still running stays.
            repo.forget_consent_failures(now - now % _sharing.FAILURE_WINDOW)
            return repo.forget_nonces(now)

    # -- issuing -----------------------------------------------------------------------------

    def holder_pseudonym(self, holder_id: str) -> str:
        """The keyed pseudonym of a holder id: stable per registry, unlinkable across regions."""
        return _issuance.holder_pseudonym(self._ctx.pseudonym_key, holder_id)

    def validate_claims(self, type_code: str, claims: Mapping[str, Any]) -> None:
        """Raise :class:`ecert.errors.ClaimsInvalid`, naming the field, unless ``claims`` fit."""
        _issuance.validate_claims(self.get_type(type_code), claims)

    def issue(self, type_code: str, agency_code: str, *, holder_id: str, holder_name: str,
              claims: Mapping[str, Any], valid_from: datetime | None = None,
              valid_until: datetime | date | None = None,
              supersedes: str | None = None) -> Certificate:
        """Issue and sign a certificate. All of it happens in one transaction, or none.

        The input rules of the type apply (docs/holder-ids.md): the holder id is normalised
        (NFKC, upper case) and checked against the type's ``holder_id_scheme``; it and
        ``holder_name`` must agree with the type's ``holder_claims``; names and claim
        strings may hold no control, line-breaking or bidi-override characters; the short
        QR form must fit a printable code. ``valid_until`` 9999-12-31 (长期) means no end.
        Every refusal is an :class:`ecert.errors.InputError` with a stable ``code``.
        """
        if not isinstance(holder_name, str) or not holder_name.strip():
            raise TextInvalid("holder name is empty", code="text_empty")
        if not isinstance(claims, Mapping):
            raise ClaimsInvalid("claims must be a JSON object", field="$.claims")
        type_code, agency_code = _code_text(type_code), _code_text(agency_code)
        holder_id = normalize_id(holder_id)
        # An operator who may not issue this is refused (and logged) as such, not told
        # whether their holder id was well-formed; the type's scheme is read in the same
        # transaction (one round of the database less than two reads).
        scheme = self._ctx.precheck(_issuance.ISSUE, {"type": type_code, "agency": agency_code},
                                    read=lambda repo: _scheme_of(repo, type_code))
        if scheme is not None:
            # Here, where the raw id is known: the unit of work sees only its pseudonym.
            holder_id = parse_scheme(scheme).check(holder_id, today=from_seconds(
                self._now()).date())
        start = None if valid_from is None else to_seconds(valid_from, "valid_from")
        no_end = is_no_end(valid_until)
        end = None if no_end else until_seconds(valid_until, self._ctx.region.tz)
        return self._ctx.execute(_issuance.ISSUE, {
            "type": type_code, "agency": agency_code,
            "holder": self.holder_pseudonym(holder_id), "holder_name": holder_name.strip(),
            "claims": _issuance.plain_claims(claims), "valid_from": start, "valid_until": end,
            "default_validity": valid_until is None,
            "supersedes": None if supersedes is None else str(CertificateId.parse(supersedes)),
        })

    def issue_batch(self, type_code: str, agency_code: str, rows: Iterable[BatchRow], *,
                    chunk_size: int = _batch.DEFAULT_CHUNK) -> Iterator[RowOutcome]:
        """Issue many certificates, ``chunk_size`` per unit of work; the outcome of every
        row (issued, skipped as issued by an earlier run, or rejected with a
        :class:`ecert.batch.RejectCode`), chunk by chunk as they are done.

        Each row is checked as :meth:`issue` checks one (holder id scheme, holder claims,
        text, schema, short QR form) and issued fully or not at all, whenever the run is
        stopped: each chunk is one transaction, authorized and signed by the operator
        once, with one log entry per certificate. Rows are recognised by an idempotency
        key (an HMAC, under a registry secret, of the row or of ``BatchRow.key``), so
        running the same rows again issues only what is missing; a key repeated within
        one run is rejected as ``duplicate_row``. A four-eyes policy on issuing the type
        refuses the batch (``approval_required``). Consume the iterator: rows are
        issued as it advances.
        """
        if chunk_size < 1:
            raise InputError("a chunk holds at least one row")
        run = _batch.start(self._ctx, _code_text(type_code), _code_text(agency_code))
        return _batch.issue_batch(run, rows, chunk_size=chunk_size)

    def issue_file(self, type_code: str, agency_code: str, path: str | Path, *,
                   id_column: str | None = None, rejects: str | Path | None = None,
                   encoding: str | None = None,
                   chunk_size: int = _batch.DEFAULT_CHUNK,
                   reason_text: Callable[[str, str], str] | None = None
                   ) -> Iterator[RowOutcome]:
        """:meth:`issue_batch` of the rows of a CSV or JSON Lines file
        (:func:`ecert.batch.open_rows`); refused rows (and unreadable ones) go to the
        ``rejects`` file (mode 0600), with the input's columns plus ``_line``, ``_code``
        and ``_reason``, so that the fixed file runs again as it is. ``reason_text(code,
        reason)`` gives the ``_reason`` written, in the reader's language (the outcomes
        keep the library's English reason)."""
        if chunk_size < 1:
            raise InputError("a chunk holds at least one row")
        run = _batch.start(self._ctx, _code_text(type_code), _code_text(agency_code))
        return _file_outcomes(open_rows(path, id_column=id_column, encoding=encoding),
                              rejects, lambda source, sink: _batch.issue_file(
                                  run, source, sink, chunk_size=chunk_size), reason_text)

    # -- export and import --------------------------------------------------------------------

    def export_certificates(self, path: str | Path, *,
                            progress: Callable[[int], None] | None = None) -> ExportReport:
        """Write every certificate to ``path`` (mode 0600) as JSON Lines, oldest first
        (:func:`ecert.batch.export_record`: the signed token, the members it states and
        the status in effect now), for :meth:`import_certificates` into another registry
        or for a backup. Erased (redacted) certificates are left out and counted.
        ``progress`` is called with the certificates read so far, a page at a time.
        Keys, operators and the log are not exported."""
        return _transfer.export(self._ctx, path, progress)

    def import_certificates(self, rows: Iterable[ExportedRow], verifier: Verifier, *,
                            chunk_size: int = _batch.DEFAULT_CHUNK) -> Iterator[RowOutcome]:
        """Import the lines of an export; the outcome of every line (imported, skipped as
        imported before, or rejected with a :class:`ecert.batch.RejectCode`).

        ``verifier`` holds the exporting registry's trust (``Verifier.from_bundle`` of its
        published directory with its anchor). Each line's token must verify against it
        (``signature``), the line's members must be what the token states
        (``export_mismatch``), and its status may be more final than the exporter's
        published status list says but never less (``status_rollback``). Then each
        certificate is checked as :meth:`issue` checks one, against this registry's type
        (schema, text, the claims naming the holder and the type's holder id scheme), and
        signed again by this registry's agency key under its original id, with a status
        slot of this registry, issued now and valid over the original's period; its log
        entry (``certificate.issue``, ``details.imported``) names the original's issuer,
        key, issue time and token hash, followed by its suspension or revocation where
        the line says so. Role: ``clerk`` (and ``officer`` for revoked lines) of each
        agency and type; a four-eyes policy on those refuses the import
        (``approval_required``). Lines are recognised by their original token, so an
        import stopped at any moment is finished by running it again."""
        return _transfer.import_rows(self._ctx, verifier, rows, chunk_size=chunk_size)

    def import_file(self, path: str | Path, verifier: Verifier, *,
                    rejects: str | Path | None = None,
                    chunk_size: int = _batch.DEFAULT_CHUNK,
                    reason_text: Callable[[str, str], str] | None = None
                    ) -> Iterator[RowOutcome]:
        """:meth:`import_certificates` of an export file; refused (and unreadable) lines
        go to ``rejects`` (mode 0600) as they were, plus ``_line``, ``_code`` and
        ``_reason`` (written by ``reason_text``, as for :meth:`issue_file`)."""
        if chunk_size < 1:
            raise InputError("a chunk holds at least one row")
        return _file_outcomes(open_rows(path, exported=True, encoding="utf-8", kind="jsonl"),
                              rejects, lambda source, sink: _transfer.import_file(
                                  self._ctx, verifier, source, sink, chunk_size=chunk_size),
                              reason_text)

    # -- lookup ------------------------------------------------------------------------------

    def resolve_id(self, id_or_serial: str) -> str:
        """A full certificate id from an id, or from a serial when that is unambiguous."""
        text = normalize_id(id_or_serial)  # full-width digits typed on a Chinese keyboard
        if text.startswith("1.2.156"):
            return str(CertificateId.parse(text))
        if not text.isalnum() or len(text) > 32:
            raise InvalidCertificateId(f"{text!r} is neither a certificate id nor a serial")
        candidates = {text.upper()}
        if text.isdigit():
            candidates.add(text.zfill(8))
        with self._ctx.read() as repo:
            ids = [i for serial in sorted(candidates) for i in repo.ids_with_serial(serial)]
        if not ids:
            raise NotFound(f"no certificate with serial {text}")
        if len(ids) > 1:
            raise InputError(f"serial {text} is ambiguous ({len(ids)} certificates): "
                             "give the full id", code="ambiguous_serial")
        return ids[0]

    def get(self, id_or_serial: str) -> Certificate:
        """A certificate by id (or unambiguous serial)."""
        cert_id = self.resolve_id(id_or_serial)
        with self._ctx.read() as repo:
            cert = repo.get_certificate(cert_id)
        if cert is None:
            raise NotFound(f"no certificate {cert_id}")
        return _lifecycle.effective(cert, self._now())

    def find(self, *, holder_id: str | None = None, type_code: str | None = None,
             status: CertificateStatus | str | None = None, agency_code: str | None = None,
             kid: str | None = None, limit: int = 100, offset: int = 0,
             name: str | None = None) -> list[Certificate]:
        """Certificates matching every given filter, oldest first (see :meth:`find_page`)."""
        return list(self._find(holder_id=holder_id, type_code=type_code, status=status,
                               agency_code=agency_code, kid=kid, name=name, limit=limit,
                               offset=offset, after=None))

    def find_page(self, *, holder_id: str | None = None, type_code: str | None = None,
                  status: CertificateStatus | str | None = None,
                  agency_code: str | None = None, kid: str | None = None,
                  name: str | None = None, limit: int = 100,
                  after: str | None = None) -> Page[Certificate]:
        """One page of certificates matching every filter, oldest first.

        ``name`` matches holder names that start with it (as typed: case and width are
        kept). ``after`` is the ``next`` cursor of the previous page. ``status`` is the
        status in effect now (a scheduled revocation that fell due reads revoked).
        """
        if limit < 1:
            raise InputError("limit must be at least 1")
        key = None if after is None else decode_cursor(after, (int, str))
        rows = self._find(holder_id=holder_id, type_code=type_code, status=status,
                          agency_code=agency_code, kid=kid, name=name, limit=limit + 1,
                          offset=0, after=key)
        return page_of(rows, limit, lambda c: (to_seconds(c.issued_at), c.id))

    def _find(self, *, holder_id: str | None, type_code: str | None,
              status: CertificateStatus | str | None, agency_code: str | None,
              kid: str | None, name: str | None, limit: int, offset: int,
              after: tuple[Any, ...] | None) -> list[Certificate]:
        holder = None if holder_id is None else self.holder_pseudonym(holder_id)
        if status is not None:
            try:
                status = CertificateStatus(status)
            except ValueError as e:
                raise InputError(f"unknown status {status!r}: use valid, suspended or revoked"
                                 ) from e
        if name is not None and not name.strip():
            raise InputError("the name to search for is empty")
        now = self._now()
        with self._ctx.read() as repo:
            found = repo.find_certificates(
                holder=holder, type_code=type_code, status=status, agency_code=agency_code,
                kid=kid, limit=limit, offset=offset,
                name_prefix=None if name is None else name.strip(),
                after=None if after is None else (int(after[0]), str(after[1])), now=now)
        return [_lifecycle.effective(c, now) for c in found]

    def count(self) -> int:
        """How many certificates were issued."""
        with self._ctx.read() as repo:
            return repo.count_certificates()

    def qr_token(self, id_or_serial: str, *, full: bool = False,
                 allow_invalid: bool = False) -> str:
        """The QR token (``typ: ecert-qr+jwt``) of a certificate, signed now by its agency's
        active key — only after the stored token verified against its key and the log
        (an edited row never comes out as a validly signed QR).

        Signing is a change: it needs an operator allowed ``certificate.qr`` for the
        certificate's agency and type (clerk or officer) and is logged. A revoked,
        suspended, expired or not-yet-valid certificate is refused
        (:class:`ecert.CertificateNotValid`) unless ``allow_invalid``; then print it marked
        (:func:`ecert.qr.standing` says how).
        """
        return self.sign_qr(id_or_serial, full=full, allow_invalid=allow_invalid)[0]

    def sign_qr(self, id_or_serial: str, *, full: bool = False,
                allow_invalid: bool = False) -> tuple[str, Standing]:
        """:meth:`qr_token` and the certificate's standing when it was signed."""
        return self._ctx.execute(_printing.SIGN_QR, {
            "id": self.resolve_id(id_or_serial), "full": full, "allow_invalid": allow_invalid})

    # -- status changes ----------------------------------------------------------------------

    def revoke(self, id_or_serial: str, reason: RevocationReason | str) -> Certificate:
        """Revoke for good. ``reason`` is an RFC 5280 CRLReason name."""
        try:
            reason = RevocationReason(reason)
        except ValueError as e:
            names = ", ".join(r.value for r in RevocationReason)
            raise InputError(f"unknown revocation reason {reason!r}: use one of {names}",
                             code="invalid_reason") from e
        return self._ctx.execute(_lifecycle.REVOKE, {"id": self.resolve_id(id_or_serial),
                                                     "reason": reason.value})

    def revoke_batch(self, rows: Iterable[RevocationRow]) -> list[RowOutcome]:
        """Revoke many certificates as one change: one unit of work (or, where a four-eyes
        policy on revoking any of their types applies, one request that a second operator
        approves as a whole: :class:`ecert.PendingApproval`, nothing revoked yet). Returns
        an outcome per row: revoked, skipped (revoked already), or rejected
        (``not_found``, ``invalid_reason``, ``duplicate_row``). A certificate no longer
        revocable when the batch is carried out refuses the whole batch."""
        return self._revocations(rows, None)

    def revoke_file(self, path: str | Path, *, rejects: str | Path | None = None,
                    encoding: str | None = None,
                    reason_text: Callable[[str, str], str] | None = None
                    ) -> list[RowOutcome]:
        """:meth:`revoke_batch` of a CSV or JSON Lines file with columns ``id`` (an id or
        an unambiguous serial) and ``reason`` (an RFC 5280 reason name); refused rows go
        to ``rejects`` (mode 0600) before anything is revoked or requested, their
        ``_reason`` written by ``reason_text`` (as for :meth:`issue_file`)."""
        source = open_rows(path, encoding=encoding, revocations=True)
        try:
            sink = None if rejects is None else RejectsFile(rejects, source,
                                                            reason_text=reason_text)
            try:
                return self._revocations(source.records(), sink)
            finally:
                if sink is not None:
                    sink.close()
        finally:
            source.close()

    def _revocations(self, rows: Iterable[Any], sink: RejectsFile | None) -> list[RowOutcome]:
        outcomes: dict[int, RowOutcome] = {}
        wanted: list[tuple[int, Certificate, RevocationReason]] = []
        first: dict[str, int] = {}

        def refuse(line: int, record: Any, code: RejectCode, reason: str) -> None:
            outcomes[line] = RowOutcome(line, RowStatus.REJECTED, code=code, reason=reason)
            if sink is not None:
                sink.write(record, line, code.value, reason)

        for item in rows:
            row, record = (item.row, item.record) if hasattr(item, "record") else (item, {})
            if row is None:
                refuse(item.line, record, RejectCode.INPUT, item.problem or "unreadable")
                continue
            try:
                reason = RevocationReason(str(row.reason).strip())
            except ValueError:
                refuse(row.line, record, RejectCode.INVALID_REASON,
                       f"unknown revocation reason {str(row.reason)[:40]!r}")
                continue
            try:
                cert = self.get(row.id)
            except (NotFound, InvalidCertificateId, InputError) as e:
                refuse(row.line, record, RejectCode.NOT_FOUND, e.message)
                continue
            if cert.id in first:
                refuse(row.line, record, RejectCode.DUPLICATE_ROW,
                       f"the same certificate as line {first[cert.id]}")
                continue
            first[cert.id] = row.line
            if cert.status is CertificateStatus.REVOKED:
                outcomes[row.line] = RowOutcome(row.line, RowStatus.SKIPPED,
                                                certificate_id=cert.id)
                continue
            wanted.append((row.line, cert, reason))
        if sink is not None:
            sink.flush()
        if wanted:
            key = self._ctx.commitment_key
            self._ctx.execute(_lifecycle.REVOKE_BATCH, {
                "rows": [[c.id, r.value] for _line, c, r in wanted],
                "scope": [[c.agency_code, c.type_code] for _line, c, r in wanted],
                "subject": revocations_digest((commitment(key, c.id), r.value)
                                              for _line, c, r in wanted)})
            for line, cert, _reason in wanted:
                outcomes[line] = RowOutcome(line, RowStatus.REVOKED, certificate_id=cert.id)
        return [outcomes[line] for line in sorted(outcomes)]

    def suspend(self, id_or_serial: str, reason: str | None = None) -> Certificate:
        """Suspend a valid certificate (reversible). ``reason`` is free text, kept with
        the certificate and its log entry (the public log shows only its keyed hash)."""
        return self._ctx.execute(_lifecycle.SUSPEND, {"id": self.resolve_id(id_or_serial),
                                                      "note": _note(reason)})

    def reinstate(self, id_or_serial: str, reason: str | None = None) -> Certificate:
        """Lift a suspension (``reason`` as for :meth:`suspend`)."""
        return self._ctx.execute(_lifecycle.REINSTATE, {"id": self.resolve_id(id_or_serial),
                                                        "note": _note(reason)})

    def renew(self, id_or_serial: str, *, valid_from: datetime | None = None,
              valid_until: datetime | date | None = None,
              claims_patch: Mapping[str, Any] | None = None,
              at_start: bool = False) -> tuple[Certificate, Certificate]:
        """Issue the successor of a certificate from its stored claims (with an RFC 7396
        merge patch applied, if given) and revoke the old one (reason ``superseded``),
        both in one unit of work. Returns ``(successor, predecessor)``.

        The successor has the same type (its latest version), agency, holder and holder
        name; it starts at ``valid_from`` (default now) and ends at ``valid_until`` (default:
        the type's validity from its start). The predecessor is revoked at once, or — with
        ``at_start`` and a successor starting later — from the successor's start on, which
        the next publication after that instant shows with nobody acting. Needs only the
        permission to issue the successor (a clerk of the agency and type).
        """
        return self._replace(id_or_serial, valid_from, valid_until, claims_patch, at_start,
                             keep_end=False)

    def reissue(self, id_or_serial: str, *, claims_patch: Mapping[str, Any],
                valid_from: datetime | None = None,
                at_start: bool = False) -> tuple[Certificate, Certificate]:
        """Like :meth:`renew`, for corrected claims: the successor keeps the predecessor's
        end of validity. Returns ``(successor, predecessor)``."""
        return self._replace(id_or_serial, valid_from, None, claims_patch, at_start,
                             keep_end=True)

    def _replace(self, id_or_serial: str, valid_from: datetime | None,
                 valid_until: datetime | date | None,
                 claims_patch: Mapping[str, Any] | None, at_start: bool, *,
                 keep_end: bool) -> tuple[Certificate, Certificate]:
        old = self.get(id_or_serial)
        if not old.token:
            raise InvalidTransition(f"cannot replace certificate {old.id}: it was redacted")
        claims: Any = dict(old.claims)
        if claims_patch is not None:
            if not isinstance(claims_patch, Mapping):
                raise InputError("a claims patch is a JSON object (RFC 7396 merge patch)")
            claims = merge_patch(claims, _issuance.plain_claims(claims_patch))
        start = None if valid_from is None else to_seconds(valid_from, "valid_from")
        if keep_end:
            end = None if old.valid_until is None else to_seconds(old.valid_until)
        else:
            end = until_seconds(valid_until, self._ctx.region.tz)
        new = self._ctx.execute(_issuance.ISSUE, {
            "type": old.type_code, "agency": old.agency_code, "holder": old.holder,
            "holder_name": old.holder_name, "claims": _issuance.plain_claims(claims),
            "valid_from": start, "valid_until": end,
            "default_validity": end is None and not keep_end,
            "supersedes": None, "replaces": old.id, "at_start": bool(at_start),
        })
        return new, self.get(old.id)

    def redact(self, id_or_serial: str) -> Certificate:
        """Lawful erasure of a revoked certificate's personal data (token, name, claims).

        Its hashes stay in the log and the row, so the erasure is told apart from
        tampering by ``audit verify``.
        """
        return self._ctx.execute(_lifecycle.REDACT, {"id": self.resolve_id(id_or_serial)})

    # -- the log -----------------------------------------------------------------------------

    def events(self, subject: str | None = None, limit: int = 1000) -> list[LogEntry]:
        """The log as the registry sees it (subjects in clear), oldest first."""
        return _audit.entries(self._ctx, subject, limit)

    def events_page(self, subject: str | None = None, *, limit: int = 1000,
                    after: str | None = None) -> Page[LogEntry]:
        """One page of :meth:`events` (``after``: the previous page's ``next`` cursor)."""
        if limit < 1:
            raise InputError("limit must be at least 1")
        start = 0 if after is None else int(decode_cursor(after, (int,))[0]) + 1
        found = _audit.entries(self._ctx, subject, limit + 1, start=start)
        return page_of(found, limit, lambda e: (e.seq,))

    def audit(self, *, bundle: str | Path | None = None) -> AuditReport:
        """Replay the whole log against the database (and a published ``bundle``).

        Needs an authenticated operator with the auditor role (or admin).
        """
        return _audit.verify(self._ctx, None if bundle is None else Path(bundle))

    def history(self, id_or_serial: str) -> History:
        """Who did what to one certificate, when, with inclusion proofs; or (``use:N``)
        the entry of one use record, which proves the copies a fetch served."""
        if id_or_serial.startswith(_sharing.USE_PREFIX):
            return _audit.history(self._ctx, id_or_serial)
        return _audit.history(self._ctx, self.resolve_id(id_or_serial))

    def commitment_opening(self, subject: str) -> tuple[str, bytes]:
        """The log's commitment to ``subject`` and the secret that opens it (for a proof
        to someone entitled to it; it reveals nothing about other subjects)."""
        key = self._ctx.commitment_key
        return commitment(key, subject), commitment_opening(key, subject)

    # -- recognition -------------------------------------------------------------------------

    def suggest_mapping(self, theirs: TrustList) -> dict[str, str]:
        """Their type codes mapped to ours where both carry the same national type code.

        Only a suggestion: :meth:`recognize` stores whatever mapping it is given.
        """
        ours: dict[str, list[str]] = {}
        for value in self.types():
            ours.setdefault(value.national_type_code, []).append(value.code)
        return {t.code: ours[t.national_type_code][0] for t in theirs.types
                if len(ours.get(t.national_type_code, ())) == 1}

    def recognize(self, anchor: TrustAnchor, types: Mapping[str, str], *,
                  valid_from: datetime | None = None,
                  valid_until: datetime | date | None = None,
                  theirs: TrustList | None = None, force: bool = False) -> Agreement:
        """Recognize ``anchor``'s region for the mapped types (their code -> our code).

        Every one of our types must exist in our catalog. With ``theirs`` (their trust
        list, verified against ``anchor``, e.g. by :func:`ecert.trust.fetch_trust_list`)
        every one of their types must exist there too, and a pair whose national type
        codes differ is refused (``national_code_mismatch``) unless ``force``, which the
        log then records. Replaces any agreement with that region. Takes effect at the
        next :meth:`publish`.
        """
        if anchor.region == self.region.code:
            raise InputError("a region does not recognize itself", code="invalid_agreement")
        if not types:
            raise InputError("an agreement maps at least one type (--map THEIRS=OURS)",
                             code="invalid_agreement")
        for their_code, our_code in types.items():
            if not their_code or not our_code:
                raise InputError(f"bad mapping {their_code!r}={our_code!r}",
                                 code="invalid_agreement")
        try:
            check_http_url(anchor.trust_list_url)
        except FormatError as e:
            raise InputError(f"the anchor's trust list URL: {e.message}",
                             code="invalid_url") from e
        start = self._now() if valid_from is None else to_seconds(valid_from, "valid_from")
        end = until_seconds(valid_until, self._ctx.region.tz)
        if end is not None and end <= start:
            raise InputError("the agreement must end after it starts", code="invalid_agreement")
        value = Agreement(anchor.region, anchor.name, dict(anchor.root_jwk),
                          anchor.trust_list_url, start, end, dict(sorted(types.items())))
        params: dict[str, Any] = {"region": anchor.region, "agreement": value.to_json()}
        if theirs is not None:
            if theirs.region != anchor.region:
                raise InputError(f"the trust list given is {theirs.region}'s, not "
                                 f"{anchor.region}'s", code="invalid_agreement")
            listed = {t.code: t.national_type_code for t in theirs.types}
            missing = sorted(set(types) - set(listed))
            if missing:
                raise NotFound(f"{anchor.region}'s trust list has no type "
                               f"{', '.join(missing)} (it lists "
                               f"{', '.join(sorted(listed)) or 'none'})",
                               code="unknown_type")
            params["their_types"] = {code: listed[code] for code in sorted(types)}
            params["force"] = force
        return self._ctx.execute(_recognition.RECOGNIZE, params)

    def withdraw(self, region_code: str) -> None:
        """Withdraw the agreement with ``region_code``; verifiers stop at the next trust list."""
        self._ctx.execute(_recognition.WITHDRAW, {"region": region_code.upper()})

    def agreements(self) -> list[Agreement]:
        """Agreements in force or pending (not withdrawn)."""
        with self._ctx.read() as repo:
            return repo.list_agreements()

    # -- witnessing -------------------------------------------------------------------------

    def witness(self, region_code: str, *, bundle: str | Path | None = None) -> CosignReport:
        """Cosign a recognized region's checkpoint after proving it consistent with the last
        one we cosigned (an operator with the service or trust-admin role)."""
        return _witness.witness(self._ctx, region_code, bundle=bundle)

    def collect_cosignatures(self) -> list[str]:
        """Fetch, verify and keep the cosignatures recognized regions made on our
        checkpoints (publication serves them beside the checkpoint)."""
        return _witness.collect_cosignatures(self._ctx)

    # -- publication -------------------------------------------------------------------------

    def anchor(self) -> TrustAnchor:
        """The trust anchor of this region: root public key and trust list URL."""
        with self._ctx.read() as repo:
            root = repo.active_key(KeyRole.ROOT)
        if root is None:
            raise StorageError("registry has no root key")
        return TrustAnchor(self.region.code, self.region.name, dict(root.public_jwk),
                           _bundle.trust_list_url(self.region.base_url))

    def publish(self, directory: str | Path, *,
                trust_list_validity: timedelta = timedelta(days=7),
                status_list_validity: timedelta = timedelta(days=1),
                status_list_ttl: timedelta = timedelta(hours=1),
                progress: Callable[[int, int], None] | None = None,
                collect: bool = True, verifier_page: bool = True,
                full: bool = False) -> PublishReport:
        """Write the public verification bundle and the log's tiles as static files.

        Only what the log proves is published; anything else is left out and named in
        ``report.alerts``. The trust list gets a new sequence number (taken durably first)
        and is re-verified, with every status list, before any file is written. With
        ``collect`` (the default) the cosignatures recognized regions made on our
        checkpoints are fetched first (over the network; each bounded by its deadline).
        With ``verifier_page`` (the default) the browser verifier page is written to
        ``verify/`` and its digests are signed in the trust list (docs/verifier-page.md).
        Publication is incremental: a status list the directory already holds, signed by
        the active status key, is reused with the changes logged since applied (unchanged
        ones are only signed again), and only the log tiles the directory lacks are
        written; the files are those a full publication would write. With ``full`` every
        status list is built from the database and every tile looked for.
        Raises :class:`ecert.LeaseHeld` while a watcher (:meth:`watch`) holds the
        publication lease: it keeps the bundle published, and two publishers would race.
        """
        # Cosignatures other regions made on our checkpoints are served beside them.
        if collect:
            self.collect_cosignatures()
        with _watch.one_off_lease(self._ctx, directory) as holder:
            return _publication.publish(self._ctx, directory,
                                        trust_list_validity=trust_list_validity,
                                        status_list_validity=status_list_validity,
                                        status_list_ttl=status_list_ttl, progress=progress,
                                        lease=holder, verifier_page=verifier_page,
                                        full=full)


    def watch(self, directory: str | Path, *, every: timedelta = timedelta(minutes=10),
              wait: bool = False, trust_list_validity: timedelta = timedelta(days=7),
              status_list_validity: timedelta = timedelta(days=1),
              status_list_ttl: timedelta = timedelta(hours=1), collect: bool = True,
              sleep: Callable[[float], None] = time.sleep,
              should_stop: Callable[[], bool] = lambda: False,
              on_cycle: Callable[[WatchCycle], None] | None = None) -> None:
        """Keep ``directory`` published until ``should_stop()`` says so.

        Every ``every`` it publishes (as :meth:`publish` does) when the log changed since
        its last publication, and before anything published expires: when less than a
        third of the shortest lifetime is left (status lists by default; the trust list
        lives longer). Its first cycle always publishes. Each cycle is reported to
        ``on_cycle`` (a :class:`WatchCycle`). A failed cycle (database down, disk full)
        is retried with backoff; :class:`ecert.errors.AccessError` ends the watch.

        One watcher per registry: it holds the database's publication lease while it
        runs (renewed every cycle, released on return, expiring if its holder dies).
        If another holds it, :class:`ecert.errors.LeaseHeld` is raised, or with
        ``wait`` the watcher waits for it. Time is the registry's clock; ``sleep`` waits
        (tests pass one that advances a fake clock).
        """
        out = Path(directory)
        self.whoami()  # a wrong operator or passphrase fails now, not in the first cycle
        self._ctx.keystore  # noqa: B018 - so does a wrong registry passphrase

        def publish(holder: str) -> PublishReport:
            if collect:
                self.collect_cosignatures()
            return _publication.publish(self._ctx, out, trust_list_validity=trust_list_validity,
                                        status_list_validity=status_list_validity,
                                        status_list_ttl=status_list_ttl, progress=None,
                                        lease=holder)

        _watch.watch(self._ctx, out, publish=publish, every=every,
                     lifetime=min(trust_list_validity, status_list_validity), wait=wait,
                     sleep=sleep, should_stop=should_stop, on_cycle=on_cycle)

    def published_directory(self) -> Path | None:
        """The directory the newest completed publication was written to, if any (it may
        be on another machine)."""
        with self._ctx.read() as repo:
            latest = repo.latest_publication()
        return None if latest is None else Path(latest[3])

    def publication_lease(self) -> Lease | None:
        """Who holds the publication lease (an ``ecert publish --watch``), if anyone; it may
        have expired (its holder stopped without releasing it)."""
        return _watch.current_lease(self._ctx)


def _file_outcomes(source: BatchFile, rejects: str | Path | None,
                   run: Callable[[BatchFile, RejectsFile | None], Iterator[RowOutcome]],
                   reason_text: Callable[[str, str], str] | None = None
                   ) -> Iterator[RowOutcome]:
    """``run`` over an opened batch file and its rejects file (if any), both closed when
    the outcomes are done (or abandoned)."""
    try:
        sink = None if rejects is None else RejectsFile(rejects, source,
                                                        reason_text=reason_text)
    except BaseException:
        source.close()
        raise

    def outcomes() -> Iterator[RowOutcome]:
        try:
            yield from run(source, sink)
        finally:
            if sink is not None:
                sink.close()
            source.close()

    return outcomes()


def _first_admin(ctx: _Context, admin: OperatorCredential) -> tuple[Operator, Signer]:
    """The first admin (every role) and their signer; the registry passphrase is asked for
    and proven before any key is made under it."""
    ctx.keystore  # noqa: B018
    signer = admin.signer or new_operator_key(ctx.home, admin.name, _resolve(admin.passphrase),
                                              ctx.kdf_rounds)
    return Operator(admin.name, signer.kid, signer.public_jwk, ALL_ROLES, True,
                    from_seconds(ctx.now())), signer


def _checked_list_size(size: int) -> int:
    # One rule for a configured size and a size found in the database (herd privacy
    # below, what a verifier reads above).
    problem = shape_problem(size, LIST_BITS)
    if problem is not None:
        raise InputError(f"status lists cannot hold {problem}")
    return size


def _resolve(passphrase: Passphrase | None) -> bytes | str:
    value = _core._resolve(passphrase)
    if not value:
        raise InputError("the operator needs a passphrase for their key "
                         "(ECERT_OPERATOR_PASSPHRASE)", code="missing_passphrase")
    return value


def _expired(request: ApprovalRequest) -> ApprovalRequest:
    from dataclasses import replace

    return replace(request, status=RequestStatus.EXPIRED)


#: Longest free-text reason kept with a suspension or reinstatement.
MAX_NOTE_CHARS = 500


def _note(reason: str | None) -> str | None:
    """A suspend/reinstate reason: one line of text, or None."""
    if reason is None or not reason.strip():
        return None
    text = " ".join(reason.split())
    if len(text) > MAX_NOTE_CHARS:
        raise InputError(f"the reason is longer than {MAX_NOTE_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\u200d\ufe0f"
           for ch in text):
        raise InputError("the reason holds control or formatting characters")
    return text


def _scheme_of(repo: Any, type_code: str) -> str | None:
    """The holder id scheme of ``type_code``; None without one (an unknown type is
    refused by the issuance itself, after authorization)."""
    cert_type = repo.get_type(type_code)
    return None if cert_type is None else cert_type.holder_id_scheme
