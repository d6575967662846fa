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
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ecert._authority import ALL_ROLES
from ecert._clock import DEFAULT_TZ, Clock, from_seconds, to_seconds, zone
from ecert._formats import bundle as _bundle
from ecert._formats.log import commitment, commitment_opening
from ecert._formats.statuslist import MIN_LIST_SIZE
from ecert._formats.trustlist import Agreement, TrustList
from ecert._formats.url import check_http_url
from ecert._storage.database import make_engine, migrate, schema_is_current, sqlite_url
from ecert._storage.repository import Repository
from ecert.errors import (
    AlreadyExists,
    FormatError,
    InputError,
    InvalidCertificateId,
    NotFound,
    StorageError,
)
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
    LogEntry,
    Operator,
    Region,
    RequestStatus,
    RevocationReason,
)
from ecert.registry import (
    _agencies,
    _audit,
    _catalog,
    _core,
    _issuance,
    _lifecycle,
    _operators,
    _publication,
    _recognition,
    _witness,  # also registers the witness.cosign operation
)
from ecert.registry._audit import AuditReport, History
from ecert.registry._core import (
    OperatorCredential,
    Passphrase,
    Unit,
    _Context,
    new_operator_key,
    operator_keys,
)
from ecert.registry._publication import PublishReport, log_origin
from ecert.registry._rules import until_seconds
from ecert.registry._witness import CosignReport
from ecert.trust import TrustAnchor

__all__ = ["AuditReport", "CosignReport", "History", "OperatorCredential", "PublishReport",
           "Registry"]

_DB_FILE = "registry.db"


class Registry:
    """A region's certificate registry. Open with :meth:`init` or :meth:`open`.

    ``operator`` is who acts (:class:`OperatorCredential`). Reading needs no operator;
    every change does, and is refused (:class:`ecert.errors.AccessError`) for an unknown,
    disabled or unauthenticated operator, or one whose roles do not permit it.
    """

    def __init__(self, ctx: _Context) -> None:
        self._ctx = ctx

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
        now = self._now()
        with self._ctx.read() as repo:
            found = repo.list_requests(
                status=RequestStatus.PENDING if pending else None, limit=limit)
        return [r if r.status is not RequestStatus.PENDING
                or now < int(r.expires_at.timestamp()) else _expired(r)
                for r in found if not pending or now < int(r.expires_at.timestamp())]

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
                 qr_claims: Iterable[str] = (), version: int = 1) -> CertificateType:
        """Add a certificate type to the catalog; its JSON Schema is checked first."""
        _catalog.check_type(code, name, national_type_code, schema, validity_days)
        return self._ctx.execute(_catalog.ADD_TYPE, {
            "code": code, "name": name, "national_type_code": national_type_code,
            "schema": dict(schema), "version": version, "validity_days": validity_days,
            "qr_claims": list(qr_claims)})

    def get_type(self, code: str) -> CertificateType:
        """The catalog entry of ``code``."""
        with self._ctx.read() as repo:
            value = repo.get_type(code)
        if value is None:
            raise NotFound(f"no certificate type {code!r}")
        return value

    def types(self) -> list[CertificateType]:
        """All catalog types."""
        with self._ctx.read() as repo:
            return repo.list_types()

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

    def keys(self, agency_code: str | None = None) -> list[KeyInfo]:
        """Signing keys, optionally of one agency."""
        with self._ctx.read() as repo:
            return repo.list_keys(agency_code=agency_code)

    def rotate_agency_key(self, code: str, *, alg: str = "ES256") -> KeyInfo:
        """Give an agency a new signing key; the old one stops signing but keeps verifying.

        The old private key is destroyed once the change is committed.
        """
        return self._ctx.execute(_agencies.ROTATE_AGENCY_KEY, {"agency": code, "alg": alg})

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
        """Issue and sign a certificate. All of it happens in one transaction, or none."""
        if not holder_name.strip():
            raise InputError("holder name is empty")
        start = None if valid_from is None else to_seconds(valid_from, "valid_from")
        end = until_seconds(valid_until, self._ctx.region.tz)
        return self._ctx.execute(_issuance.ISSUE, {
            "type": type_code, "agency": agency_code,
            "holder": self.holder_pseudonym(holder_id), "holder_name": holder_name.strip(),
            "claims": _issuance.plain_claims(claims), "valid_from": start, "valid_until": end,
            "default_validity": valid_until is None,
            "supersedes": None if supersedes is None else str(CertificateId.parse(supersedes)),
        })

    # -- lookup ------------------------------------------------------------------------------

    def resolve_id(self, id_or_serial: str) -> str:
        """A full certificate id from an id, or from a serial when that is unambiguous."""
        text = id_or_serial.strip()
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
        return cert

    def find(self, *, holder_id: str | None = None, type_code: str | None = None,
             status: CertificateStatus | str | None = None, agency_code: str | None = None,
             kid: str | None = None, limit: int = 100, offset: int = 0) -> list[Certificate]:
        """Certificates matching every given filter, oldest first."""
        holder = None if holder_id is None else self.holder_pseudonym(holder_id)
        if status is not None:
            try:
                status = CertificateStatus(status)
            except ValueError as e:
                raise InputError(f"unknown status {status!r}: use valid, suspended or revoked"
                                 ) from e
        with self._ctx.read() as repo:
            return repo.find_certificates(holder=holder, type_code=type_code, status=status,
                                          agency_code=agency_code, kid=kid, limit=limit,
                                          offset=offset)

    def count(self) -> int:
        """How many certificates were issued."""
        with self._ctx.read() as repo:
            return repo.count_certificates()

    def qr_token(self, id_or_serial: str, *, full: bool = False) -> str:
        """The QR token (``typ: ecert-qr+jwt``) of a certificate, signed now by its agency's
        active key — only after the stored token verified against its key and the log
        (an edited row never comes out as a validly signed QR)."""
        from ecert._formats import qr as _qr

        cert = self.get(id_or_serial)
        cert_type = self.get_type(cert.type_code)
        with self._ctx.read() as repo:
            key = repo.active_key(KeyRole.AGENCY, cert.agency_code)
            _audit.check_stored_token(self._ctx, repo, cert)
        if key is None:
            raise InputError(f"agency {cert.agency_code} has no active signing key",
                             code="not_authorized")
        payload = _qr.qr_payload(_qr.parse_token_payload(cert.token), cert.token,
                                 cert_type.qr_claims, self.region.base_url, self._now(),
                                 full=full)
        return _qr.sign_qr_token(payload, self._ctx.keystore.signer(key.kid))

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

    def suspend(self, id_or_serial: str) -> Certificate:
        """Suspend a valid certificate (reversible)."""
        return self._ctx.execute(_lifecycle.SUSPEND, {"id": self.resolve_id(id_or_serial)})

    def reinstate(self, id_or_serial: str) -> Certificate:
        """Lift a suspension."""
        return self._ctx.execute(_lifecycle.REINSTATE, {"id": self.resolve_id(id_or_serial)})

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

    def audit(self, *, bundle: str | Path | None = None) -> AuditReport:
        """Replay the whole log against the database (and a published ``bundle``).

        Needs an authenticated operator with the auditor role (or admin).
        """
        return _audit.verify(self._ctx, None if bundle is None else Path(bundle))

    def history(self, id_or_serial: str) -> History:
        """Who did what to one certificate, when, with inclusion proofs."""
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
                  valid_until: datetime | date | None = None) -> Agreement:
        """Recognize ``anchor``'s region for the mapped types (their code -> our code).

        Replaces any agreement with that region. Takes effect at the next :meth:`publish`.
        """
        if anchor.region == self.region.code:
            raise InputError("a region does not recognize itself", code="invalid_agreement")
        if not types:
            raise InputError("an agreement maps at least one type (--map THEIRS=OURS)",
                             code="invalid_agreement")
        for theirs, ours in types.items():
            if not theirs or not ours:
                raise InputError(f"bad mapping {theirs!r}={ours!r}", code="invalid_agreement")
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
        return self._ctx.execute(_recognition.RECOGNIZE,
                                 {"region": anchor.region, "agreement": value.to_json()})

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
                collect: bool = True) -> PublishReport:
        """Write the public verification bundle and the log's tiles as static files.

        Only what the log proves is published; anything else is left out and named in
        ``report.alerts``. The trust list gets a new sequence number (taken durably first)
        and is re-verified, with every status list, before any file is written. With
        ``collect`` (the default) the cosignatures recognized regions made on our
        checkpoints are fetched first (over the network; each bounded by its deadline).
        """
        # Cosignatures other regions made on our checkpoints are served beside them.
        if collect:
            self.collect_cosignatures()
        return _publication.publish(self._ctx, directory,
                                    trust_list_validity=trust_list_validity,
                                    status_list_validity=status_list_validity,
                                    status_list_ttl=status_list_ttl, progress=progress)


def _first_admin(ctx: _Context, admin: OperatorCredential) -> tuple[Operator, Signer]:
    """The first admin (every role) and their signer; the registry passphrase is asked for
    and proven before any key is made under it."""
    ctx.keystore  # noqa: B018
    signer = admin.signer or new_operator_key(ctx.home, admin.name, _resolve(admin.passphrase),
                                              ctx.kdf_rounds)
    return Operator(admin.name, signer.kid, signer.public_jwk, ALL_ROLES, True,
                    from_seconds(ctx.now())), signer


def _checked_list_size(size: int) -> int:
    if size < MIN_LIST_SIZE or size & (size - 1):
        raise InputError(f"status lists hold a power of two of at least {MIN_LIST_SIZE} "
                         "entries (herd privacy)")
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
