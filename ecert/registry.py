"""The registry: where a region's agencies issue, suspend, reinstate and revoke certificates.

A registry lives in a *home* directory (encrypted private keys, and the embedded
SQLite database unless ``database_url`` points elsewhere, e.g. PostgreSQL). Every state
change is one transaction that also appends to the event table (what, who, when).
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
from jsonschema.exceptions import SchemaError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from ecert._allocation import permuted_index
from ecert._formats import bundle as _bundle
from ecert._formats.certificate import CertificateClaims
from ecert._formats.jose import b64url_encode, canonical_json
from ecert._formats.statuslist import (
    INVALID,
    MIN_LIST_SIZE,
    SUSPENDED,
    StatusList,
    make_status_list_token,
)
from ecert._formats.trustlist import (
    Agreement,
    TrustedAgency,
    TrustedKey,
    TrustList,
    TypeEntry,
    sign_root_rotation,
)
from ecert._formats.url import check_http_url
from ecert._sources import MemorySource
from ecert._storage.database import WRITE, make_engine, migrate, schema_is_current, sqlite_url
from ecert._storage.repository import Repository
from ecert.errors import (
    AlreadyExists,
    ClaimsInvalid,
    FormatError,
    InputError,
    InvalidCertificateId,
    InvalidTransition,
    KeyStoreError,
    NotAuthorized,
    NotFound,
    PublishError,
    StorageError,
)
from ecert.identifiers import CertificateId, validate_national_type_code, validate_uscc
from ecert.keys import FileKeyStore, KeyProvider, Signer
from ecert.models import (
    Agency,
    Certificate,
    CertificateStatus,
    CertificateType,
    KeyInfo,
    KeyRole,
    Region,
    RevocationReason,
)
from ecert.trust import TrustAnchor, load_trust_list
from ecert.verify import Verifier

__all__ = ["Event", "PublishReport", "Registry"]

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Passphrase = bytes | str | Callable[[], bytes | str]

_DB_FILE = "registry.db"
_KEYS_DIR = "keys"
_PSEUDONYM_SECRET = "holder-pseudonym"  # noqa: S105 - a key file name, not a secret
_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


def _system_clock() -> datetime:
    return datetime.now(UTC)


# Stands in for a type when computing an agreement's end the way certificate ends are.
_NO_EXPIRY = CertificateType("", "", "", {}, validity_days=None)


def _check_code(kind: str, code: str) -> str:
    if not code or len(code) > 100 or not _CODE_CHARS.issuperset(code) or code[0] in "-._":
        raise InputError(f"{kind} code {code!r} must be lower-case letters, digits, '-', '.', '_'",
                         code="invalid_code")
    return code


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the append-only event record."""

    id: int
    at: datetime
    operator: str
    action: str
    subject: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PublishReport:
    """What :meth:`Registry.publish` wrote."""

    directory: Path
    sequence: int
    issued_at: datetime
    next_update: datetime
    files: tuple[str, ...]
    status_lists: int
    certificates: int


class Registry:
    """A region's certificate registry. Open with :meth:`init` or :meth:`open`."""

    def __init__(
        self,
        home: Path,
        engine: Engine,
        region: Region,
        *,
        passphrase: Passphrase | None,
        clock: Clock | None = None,
        operator: str | None = None,
        status_list_size: int = MIN_LIST_SIZE,
        kdf_rounds: int | None = None,
        key_provider: KeyProvider | None = None,
    ) -> None:
        self.home = home
        self._engine = engine
        self.region = region
        self._passphrase = passphrase
        self._clock = clock or _system_clock
        self.operator = operator or _default_operator()
        if status_list_size < MIN_LIST_SIZE or status_list_size & (status_list_size - 1):
            raise InputError(f"status lists hold a power of two of at least {MIN_LIST_SIZE} "
                             "entries (herd privacy)")
        self._status_list_size = status_list_size
        self._kdf_rounds = kdf_rounds
        self._keystore: KeyProvider | None = key_provider
        self._validators: dict[tuple[str, int], jsonschema.protocols.Validator] = {}
        self._pseudonym_key: bytes | None = None

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        home: str | Path,
        *,
        region: str,
        name: str,
        base_url: str,
        passphrase: Passphrase | None = None,
        database_url: str | None = None,
        clock: Clock | None = None,
        operator: str | None = None,
        kdf_rounds: int | None = None,
        status_list_size: int = MIN_LIST_SIZE,
        key_provider: KeyProvider | None = None,
    ) -> Registry:
        """Create a registry for ``region``: database schema, root and status-list keys."""
        if not region.isascii() or not region.isalnum() or len(region) > 16:
            raise InputError(f"region code {region!r} must be 1 to 16 letters or digits",
                             code="invalid_code")
        base_url = base_url.rstrip("/")
        try:
            check_http_url(base_url, base=True)
        except FormatError as e:
            raise InputError(f"base URL: {e.message}", code="invalid_url") from e
        home_path = Path(home)
        home_path.mkdir(mode=0o700, parents=True, exist_ok=True)
        home_path.chmod(0o700)  # keys and the database live here
        if database_url is None:
            # Create the database file private before SQLite opens it with the umask.
            db_file = home_path / _DB_FILE
            os.close(os.open(db_file, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = make_engine(database_url or sqlite_url(home_path / _DB_FILE))
        try:
            return cls._create(engine, home_path, database_url, region, name, base_url,
                               passphrase=passphrase, clock=clock, operator=operator,
                               kdf_rounds=kdf_rounds, status_list_size=status_list_size,
                               key_provider=key_provider)
        except BaseException:
            engine.dispose()  # a failed init must not leave connections behind
            raise

    @classmethod
    def _create(cls, engine: Engine, home_path: Path, database_url: str | None, region: str,
                name: str, base_url: str, **kwargs: Any) -> Registry:
        migrate(engine)
        value = Region(region.upper(), name, base_url)
        registry = cls(home_path, engine, value, **kwargs)
        now = registry._now()
        with registry._write() as repo:
            if repo.get_region() is not None:
                where = _describe(home_path, database_url)
                raise AlreadyExists(f"a registry exists already in {where}")
            repo.create_region(value, now)
            repo.create_counter("trust_list_sequence")
            repo.create_counter("status_list_id")
            for role in (KeyRole.ROOT, KeyRole.STATUS):
                registry._new_key(repo, role, None, now)
            registry.keystore.secret(_PSEUDONYM_SECRET)
            registry._record(repo, now, "registry.init", value.code,
                             {"name": name, "base_url": base_url})
        return registry

    @classmethod
    def open(
        cls,
        home: str | Path,
        *,
        passphrase: Passphrase | None = None,
        database_url: str | None = None,
        clock: Clock | None = None,
        operator: str | None = None,
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
                raise StorageError(f"no registry in {_describe(home_path, database_url)}: "
                                   "run 'ecert init' first", code="not_initialized")
            return cls(home_path, engine, region, passphrase=passphrase, clock=clock,
                       operator=operator, kdf_rounds=kdf_rounds,
                       status_list_size=status_list_size, key_provider=key_provider)
        except SQLAlchemyError as e:
            engine.dispose()
            raise StorageError(f"cannot open registry database: {e}") from e
        except BaseException:
            engine.dispose()  # a failed open must not leave connections behind
            raise

    def close(self) -> None:
        """Release database connections."""
        self._engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _now(self) -> int:
        now = self._clock()
        if now.tzinfo is None:
            raise InputError("the clock must return timezone-aware datetimes")
        return int(now.timestamp())

    def _write(self) -> _Transaction:
        return _Transaction(self._engine, write=True)

    def _read(self) -> _Transaction:
        return _Transaction(self._engine, write=False)

    @property
    def keystore(self) -> KeyProvider:
        """The private keys: the encrypted file store unless a provider was given.

        The file store asks for the passphrase on first use.
        """
        if self._keystore is None:
            passphrase = self._passphrase() if callable(self._passphrase) else self._passphrase
            if not passphrase:
                raise KeyStoreError("a passphrase is needed to use the registry's private keys "
                                    "(set ECERT_PASSPHRASE)")
            keystore = FileKeyStore(self.home / _KEYS_DIR, passphrase,
                                    kdf_rounds=self._kdf_rounds)
            # Prove the passphrase on an existing secret before anything new is encrypted
            # under it: a mistyped passphrase must not create keys nobody can open.
            if keystore.exists(_PSEUDONYM_SECRET):
                keystore.load(_PSEUDONYM_SECRET)
            self._keystore = keystore
        return self._keystore

    def _record(self, repo: Repository, now: int, action: str, subject: str,
                details: dict[str, Any]) -> None:
        repo.record(now, self.operator, action, subject, details)

    def _new_key(self, repo: Repository, role: KeyRole, agency_code: str | None, now: int,
                 alg: str = "ES256") -> KeyInfo:
        # Keys are named by kid; a failed transaction leaves only an unused key.
        signer = self.keystore.create(alg)
        info = KeyInfo(kid=signer.kid, alg=signer.alg, role=role, public_jwk=signer.public_jwk,
                       created_at=datetime.fromtimestamp(now, UTC), agency_code=agency_code)
        repo.add_key(info)
        return info

    def _destroy(self, kid: str) -> None:
        """Destroy a key after its retirement was committed; failing here loses nothing."""
        try:
            self.keystore.destroy(kid)
        except KeyStoreError as e:
            log.warning("key %s is retired but its private key could not be destroyed: %s",
                        kid, e.message)

    def signed_count(self, kid: str, *, since: datetime | None = None) -> int:
        """How many certificates ``kid`` signed (at or after ``since``)."""
        start = 0 if since is None else int(since.timestamp())
        with self._read() as repo:
            return repo.count_signed_since(kid, start)

    def _signer(self, info: KeyInfo) -> Signer:
        return self.keystore.signer(info.kid)

    # -- catalog -----------------------------------------------------------------------------

    def add_type(
        self,
        code: str,
        *,
        name: str,
        national_type_code: str,
        schema: Mapping[str, Any],
        validity_days: int | None = None,
        qr_claims: Iterable[str] = (),
        version: int = 1,
    ) -> CertificateType:
        """Add a certificate type to the catalog; its JSON Schema is checked first."""
        _check_code("type", code)
        validate_national_type_code(national_type_code)
        if validity_days is not None and validity_days <= 0:
            raise InputError("validity days must be positive")
        try:
            jsonschema.validators.validator_for(schema).check_schema(dict(schema))
        except SchemaError as e:
            raise InputError(f"schema of {code} is not a valid JSON Schema: {e.message}",
                             code="invalid_schema") from e
        if schema.get("type") != "object":
            raise InputError("a claims schema must describe an object", code="invalid_schema")
        value = CertificateType(code, name, national_type_code, dict(schema), version,
                                validity_days, tuple(qr_claims))
        now = self._now()
        with self._write() as repo:
            if repo.get_type(code) is not None:
                raise AlreadyExists(f"type {code} exists already")
            repo.add_type(value, now)
            self._record(repo, now, "type.add", code,
                         {"national_type_code": national_type_code, "version": version})
        return value

    def get_type(self, code: str) -> CertificateType:
        """The catalog entry of ``code``."""
        with self._read() as repo:
            value = repo.get_type(code)
        if value is None:
            raise NotFound(f"no certificate type {code!r}")
        return value

    def types(self) -> list[CertificateType]:
        """All catalog types."""
        with self._read() as repo:
            return repo.list_types()

    # -- agencies ----------------------------------------------------------------------------

    def add_agency(self, code: str, *, name: str, uscc: str, types: Iterable[str],
                   alg: str = "ES256") -> Agency:
        """Register an agency with the types it may issue, and give it a signing key."""
        _check_code("agency", code)
        validate_uscc(uscc)
        type_codes = tuple(sorted(set(types)))
        now = self._now()
        with self._write() as repo:
            if repo.get_agency(code) is not None:
                raise AlreadyExists(f"agency {code} exists already")
            if repo.agency_with_uscc(uscc) is not None:
                raise AlreadyExists(f"an agency with USCC {uscc} exists already")
            for type_code in type_codes:
                if repo.get_type(type_code) is None:
                    raise NotFound(f"no certificate type {type_code!r}")
            value = Agency(code, name, uscc, type_codes)
            repo.add_agency(value, now)
            repo.create_counter(f"serial:{code}")
            key = self._new_key(repo, KeyRole.AGENCY, code, now, alg)
            self._record(repo, now, "agency.add", code,
                         {"name": name, "uscc": uscc, "types": list(type_codes), "kid": key.kid})
        return value

    def get_agency(self, code: str) -> Agency:
        """The agency ``code``."""
        with self._read() as repo:
            value = repo.get_agency(code)
        if value is None:
            raise NotFound(f"no agency {code!r}")
        return value

    def agencies(self) -> list[Agency]:
        """All agencies."""
        with self._read() as repo:
            return repo.list_agencies()

    def keys(self, agency_code: str | None = None) -> list[KeyInfo]:
        """Signing keys, optionally of one agency."""
        with self._read() as repo:
            return repo.list_keys(agency_code=agency_code)

    def rotate_agency_key(self, code: str, *, alg: str = "ES256") -> KeyInfo:
        """Give an agency a new signing key; the old one stops signing but keeps verifying.

        The old private key is destroyed once the change is committed.
        """
        now = self._now()
        with self._write() as repo:
            if repo.get_agency(code) is None:
                raise NotFound(f"no agency {code!r}")
            old = repo.active_key(KeyRole.AGENCY, code)
            if old is not None:
                repo.retire_key(old.kid, now)
            new = self._new_key(repo, KeyRole.AGENCY, code, now, alg)
            self._record(repo, now, "agency.rotate_key", code,
                         {"retired": old.kid if old else None, "kid": new.kid})
        if old is not None:
            self._destroy(old.kid)
        return new

    def mark_key_compromised(self, kid: str, *, since: datetime | None = None) -> KeyInfo:
        """Declare an agency key compromised from ``since`` (default: now).

        Verifiers refuse certificates it signed at or after ``since`` once the next
        trust list is published. If it was the agency's active key, the agency gets a new
        one. The private key is destroyed. Certificates it signed after ``since`` should
        be reissued: :meth:`find` with ``kid`` lists them.
        """
        now = self._now()
        if since is not None and since.tzinfo is None:
            raise InputError("since must be timezone-aware")
        when = int(since.timestamp()) if since is not None else now
        if when > now:
            raise InputError("a key cannot be compromised in the future")
        with self._write() as repo:
            key = repo.get_key(kid)
            if key is None or key.role is not KeyRole.AGENCY or key.agency_code is None:
                raise NotFound(f"no agency key {kid!r}")
            if key.compromised_since is not None:
                raise InvalidTransition(f"key {kid} is already marked compromised")
            was_active = key.retired_at is None
            repo.mark_compromised(kid, when, now)
            replacement = (self._new_key(repo, KeyRole.AGENCY, key.agency_code, now, key.alg)
                           if was_active else None)
            affected = repo.count_signed_since(kid, when)
            self._record(repo, now, "key.compromised", key.agency_code,
                         {"kid": kid, "since": when, "affected_certificates": affected,
                          "replacement": replacement.kid if replacement else None})
            updated = repo.get_key(kid)
        self._destroy(kid)
        if updated is None:  # pragma: no cover - the row was just written
            raise NotFound(f"no agency key {kid!r}")
        return updated

    # -- issuing -----------------------------------------------------------------------------

    def holder_pseudonym(self, holder_id: str) -> str:
        """The keyed pseudonym of a holder id: stable per registry, unlinkable across regions."""
        normalized = "".join(holder_id.split()).upper()
        if not normalized:
            raise InputError("holder id is empty")
        if self._pseudonym_key is None:
            self._pseudonym_key = hashlib.sha256(
                b"ecert holder pseudonym v1\x00" + self.keystore.secret(_PSEUDONYM_SECRET)
            ).digest()
        mac = hmac.new(self._pseudonym_key, normalized.encode(), hashlib.sha256).digest()
        return b64url_encode(mac[:16])

    def _validator(self, cert_type: CertificateType) -> jsonschema.protocols.Validator:
        cache_key = (cert_type.code, cert_type.version)
        validator = self._validators.get(cache_key)
        if validator is None:
            cls = jsonschema.validators.validator_for(cert_type.schema)
            validator = cls(cert_type.schema, format_checker=cls.FORMAT_CHECKER)
            self._validators[cache_key] = validator
        return validator

    def validate_claims(self, type_code: str, claims: Mapping[str, Any]) -> None:
        """Raise :class:`ClaimsInvalid`, naming the field, unless ``claims`` fit the type."""
        self._validate(self.get_type(type_code), claims)

    def _validate(self, cert_type: CertificateType, claims: Mapping[str, Any]) -> None:
        error = jsonschema.exceptions.best_match(self._validator(cert_type).iter_errors(claims))
        if error is not None:
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.path)
            # Name the field itself for missing and unexpected members.
            instance = error.instance if isinstance(error.instance, dict) else {}
            if error.validator == "required":
                missing = [n for n in error.validator_value if n not in instance]
                path += f".{missing[0]}" if missing else ""
            elif error.validator == "additionalProperties":
                known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
                extra = sorted(n for n in instance if n not in known)
                path += f".{extra[0]}" if extra else ""
            field = f"$.claims{path}"
            raise ClaimsInvalid(f"claims of {cert_type.code} invalid at {field}: {error.message}",
                                field=field)

    def issue(
        self,
        type_code: str,
        agency_code: str,
        *,
        holder_id: str,
        holder_name: str,
        claims: Mapping[str, Any],
        valid_from: datetime | None = None,
        valid_until: datetime | date | None = None,
        supersedes: str | None = None,
    ) -> Certificate:
        """Issue and sign a certificate. All of it happens in one transaction, or none."""
        now = self._now()
        with self._read() as repo:
            cert_type = repo.get_type(type_code)
            agency = repo.get_agency(agency_code)
        if cert_type is None:
            raise NotFound(f"no certificate type {type_code!r}")
        if agency is None:
            raise NotFound(f"no agency {agency_code!r}")
        if type_code not in agency.types:
            raise NotAuthorized(f"agency {agency_code} may not issue {type_code} "
                                f"(it issues: {', '.join(agency.types) or 'nothing'})")
        if not holder_name.strip():
            raise InputError("holder name is empty")
        # Plain JSON values, detached from the caller's objects.
        plain_claims: dict[str, Any] = json.loads(canonical_json(claims))
        self._validate(cert_type, plain_claims)
        if valid_from is not None and valid_from.tzinfo is None:
            raise InputError("valid_from must be timezone-aware")
        start = int(valid_from.timestamp()) if valid_from else now
        end = self._valid_until(cert_type, start, valid_until)
        holder = self.holder_pseudonym(holder_id)
        if supersedes is not None:
            supersedes = str(CertificateId.parse(supersedes))
        for _attempt in range(3):
            try:
                return self._issue_once(cert_type, agency, holder, holder_name.strip(),
                                        plain_claims,
                                        now, start, end, supersedes)
            except _Retry:
                continue
        raise StorageError("could not allocate a status list slot; try again")

    def _valid_until(self, cert_type: CertificateType, start: int,
                     valid_until: datetime | date | None) -> int | None:
        if isinstance(valid_until, datetime):
            if valid_until.tzinfo is None:
                raise InputError("valid_until must be timezone-aware")
            end: int | None = int(valid_until.timestamp())
        elif isinstance(valid_until, date):
            # A date means through the end of that day (UTC).
            end = int(datetime(valid_until.year, valid_until.month, valid_until.day,
                               tzinfo=UTC).timestamp()) + 86_400
        elif cert_type.validity_days is not None:
            end = start + cert_type.validity_days * 86_400
        else:
            end = None
        if end is not None and end <= start:
            raise InputError("valid-until must be after valid-from")
        return end

    def _issue_once(self, cert_type: CertificateType, agency: Agency, holder: str,
                    holder_name: str, claims: dict[str, Any], now: int, start: int,
                    end: int | None, supersedes: str | None) -> Certificate:
        with self._write() as repo:
            key = repo.active_key(KeyRole.AGENCY, agency.code)
            if key is None:
                raise NotAuthorized(f"agency {agency.code} has no active signing key")
            signer = self._signer(key)
            if supersedes is not None:
                previous = repo.get_certificate(supersedes)
                if previous is None:
                    raise NotFound(f"no certificate {supersedes} to supersede")
            serial = f"{repo.next_value(f'serial:{agency.code}'):08d}"
            slot = repo.allocate_slot()
            if slot is None:
                # The counter's row lock serializes list creation; whoever waited on it
                # looks again, so concurrent issuers do not each open a new list.
                list_id = repo.next_value("status_list_id")
                slot = repo.allocate_slot()
                if slot is None:
                    repo.add_status_list(list_id, self._status_list_size, 2,
                                         secrets.token_bytes(32), now)
                    slot = repo.allocate_slot()
                if slot is None:
                    raise _Retry
            list_id, perm_key, counter, size = slot
            index = permuted_index(perm_key, counter, size)
            cert_id = str(CertificateId(cert_type.national_type_code, agency.uscc, serial))
            status_uri = _bundle.status_list_uri(self.region.base_url, list_id)
            token_claims = CertificateClaims(
                iss=self.region.agency_uri(agency.code), sub=holder, jti=cert_id, iat=now,
                nbf=start, exp=end, vct=cert_type.code, vct_version=cert_type.version,
                region=self.region.code, holder_name=holder_name, claims=claims,
                status_list_uri=status_uri, status_index=index, supersedes=supersedes,
            )
            token = token_claims.sign(signer)
            cert = Certificate(
                id=cert_id, type_code=cert_type.code, agency_code=agency.code,
                region=self.region.code, holder=holder, holder_name=holder_name, claims=claims,
                issued_at=_utc(now), valid_from=_utc(start),
                valid_until=None if end is None else _utc(end),
                status=CertificateStatus.VALID, status_list_uri=status_uri, status_index=index,
                kid=key.kid, token=token, type_version=cert_type.version, supersedes=supersedes,
            )
            repo.add_certificate(cert, serial, list_id)
            self._record(repo, now, "certificate.issue", cert_id,
                         {"type": cert_type.code, "agency": agency.code, "kid": key.kid,
                          "status_list": list_id, "status_index": index,
                          "supersedes": supersedes})
        return cert

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
        with self._read() as repo:
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
        with self._read() as repo:
            cert = repo.get_certificate(cert_id)
        if cert is None:
            raise NotFound(f"no certificate {cert_id}")
        return cert

    def qr_token(self, id_or_serial: str, *, full: bool = False) -> str:
        """The QR token (``typ: ecert-qr+jwt``) of a certificate, signed now by the
        agency's active key: the type's ``qr_claims`` and a digest of the full token,
        or every claim with ``full``. :func:`ecert.qr.qr_text` wraps it for a QR code."""
        from ecert._formats import qr as _qr

        cert = self.get(id_or_serial)
        cert_type = self.get_type(cert.type_code)
        with self._read() as repo:
            key = repo.active_key(KeyRole.AGENCY, cert.agency_code)
        if key is None:
            raise NotAuthorized(f"agency {cert.agency_code} has no active signing key")
        payload = _qr.qr_payload(_qr.parse_token_payload(cert.token), cert.token,
                                 cert_type.qr_claims, self.region.base_url, self._now(),
                                 full=full)
        return _qr.sign_qr_token(payload, self._signer(key))

    def find(
        self,
        *,
        holder_id: str | None = None,
        type_code: str | None = None,
        status: CertificateStatus | str | None = None,
        agency_code: str | None = None,
        kid: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Certificate]:
        """Certificates matching every given filter, oldest first."""
        holder = None if holder_id is None else self.holder_pseudonym(holder_id)
        if status is not None:
            try:
                status = CertificateStatus(status)
            except ValueError as e:
                raise InputError(f"unknown status {status!r}: use valid, suspended or revoked"
                                 ) from e
        with self._read() as repo:
            return repo.find_certificates(holder=holder, type_code=type_code, status=status,
                                          agency_code=agency_code, kid=kid, limit=limit,
                                          offset=offset)

    def count(self) -> int:
        """How many certificates were issued."""
        with self._read() as repo:
            return repo.count_certificates()

    # -- status changes ----------------------------------------------------------------------

    def revoke(self, id_or_serial: str, reason: RevocationReason | str) -> Certificate:
        """Revoke for good. ``reason`` is an RFC 5280 CRLReason name."""
        try:
            reason = RevocationReason(reason)
        except ValueError as e:
            names = ", ".join(r.value for r in RevocationReason)
            raise InputError(f"unknown revocation reason {reason!r}: use one of {names}",
                             code="invalid_reason") from e
        return self._transition(id_or_serial, "revoke", CertificateStatus.REVOKED, reason)

    def suspend(self, id_or_serial: str) -> Certificate:
        """Suspend a valid certificate (reversible)."""
        return self._transition(id_or_serial, "suspend", CertificateStatus.SUSPENDED, None)

    def reinstate(self, id_or_serial: str) -> Certificate:
        """Lift a suspension."""
        return self._transition(id_or_serial, "reinstate", CertificateStatus.VALID, None)

    _ALLOWED: ClassVar[dict[str, set[CertificateStatus]]] = {
        "revoke": {CertificateStatus.VALID, CertificateStatus.SUSPENDED},
        "suspend": {CertificateStatus.VALID},
        "reinstate": {CertificateStatus.SUSPENDED},
    }

    def _transition(self, id_or_serial: str, action: str, target: CertificateStatus,
                    reason: RevocationReason | None) -> Certificate:
        cert_id = self.resolve_id(id_or_serial)
        now = self._now()
        with self._write() as repo:
            cert = repo.get_certificate(cert_id, for_update=True)
            if cert is None:
                raise NotFound(f"no certificate {cert_id}")
            if cert.status not in self._ALLOWED[action]:
                raise InvalidTransition(f"cannot {action} certificate {cert_id}: "
                                        f"it is {cert.status.value}")
            repo.set_status(cert_id, target, reason)
            self._record(repo, now, f"certificate.{action}", cert_id,
                         {"from": cert.status.value, "to": target.value,
                          "reason": None if reason is None else reason.value})
            updated = repo.get_certificate(cert_id)
        if updated is None:  # pragma: no cover - the row was locked above
            raise NotFound(f"no certificate {cert_id}")
        return updated

    # -- events ------------------------------------------------------------------------------

    def events(self, subject: str | None = None, limit: int = 1000) -> list[Event]:
        """The event record, oldest first."""
        with self._read() as repo:
            rows = repo.list_events(subject, limit)
        return [Event(r.id, _utc(r.at), r.operator, r.action, r.subject, r.details)
                for r in rows]

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

    def recognize(
        self,
        anchor: TrustAnchor,
        types: Mapping[str, str],
        *,
        valid_from: datetime | None = None,
        valid_until: datetime | date | None = None,
    ) -> Agreement:
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
        now = self._now()
        if valid_from is not None and valid_from.tzinfo is None:
            raise InputError("valid_from must be timezone-aware")
        start = int(valid_from.timestamp()) if valid_from else now
        try:
            end = (None if valid_until is None
                   else self._valid_until(_NO_EXPIRY, start, valid_until))
        except InputError as e:
            raise InputError("the agreement must end after it starts",
                             code="invalid_agreement") from e
        value = Agreement(anchor.region, anchor.name, dict(anchor.root_jwk),
                          anchor.trust_list_url, start, end, dict(sorted(types.items())))
        with self._write() as repo:
            known = {t.code for t in repo.list_types()}
            unknown = sorted(set(types.values()) - known)
            if unknown:
                raise NotFound(f"our catalog has no type {', '.join(unknown)}")
            previous = repo.get_agreement(anchor.region)
            repo.put_agreement(value, now)
            self._record(repo, now, "agreement.update" if previous else "agreement.add",
                         anchor.region, {"root_kid": anchor.kid, "types": dict(value.types),
                                         "valid_from": start, "valid_until": end})
        return value

    def withdraw(self, region_code: str) -> None:
        """Withdraw the agreement with ``region_code``; verifiers stop at the next trust list."""
        now = self._now()
        with self._write() as repo:
            if not repo.withdraw_agreement(region_code.upper(), now):
                raise NotFound(f"no agreement with region {region_code}")
            self._record(repo, now, "agreement.withdraw", region_code.upper(), {})

    def agreements(self) -> list[Agreement]:
        """Agreements in force or pending (not withdrawn)."""
        with self._read() as repo:
            return repo.list_agreements()

    def rotate_root(self, *, alg: str = "ES256") -> KeyInfo:
        """Replace the region root key; the old root signs a hand-over to the new one.

        Verifiers that pinned the old root follow the rotation through the statement
        published in the trust list. The old root's private key is destroyed.
        """
        now = self._now()
        with self._write() as repo:
            old = repo.active_key(KeyRole.ROOT)
            if old is None:
                raise StorageError("registry has no root key")
            new = self._new_key(repo, KeyRole.ROOT, None, now, alg)
            statement = sign_root_rotation(self.region.code, new.public_jwk, now,
                                           self._signer(old))
            repo.retire_key(old.kid, now)
            repo.add_root_rotation(old.kid, new.kid, statement, now)
            self._record(repo, now, "root.rotate", self.region.code,
                         {"old_kid": old.kid, "kid": new.kid})
        self._destroy(old.kid)
        return new

    # -- publication -------------------------------------------------------------------------

    def anchor(self) -> TrustAnchor:
        """The trust anchor of this region: root public key and trust list URL."""
        with self._read() as repo:
            root = repo.active_key(KeyRole.ROOT)
        if root is None:
            raise StorageError("registry has no root key")
        return TrustAnchor(self.region.code, self.region.name, dict(root.public_jwk),
                           _bundle.trust_list_url(self.region.base_url))

    def publish(
        self,
        directory: str | Path,
        *,
        trust_list_validity: timedelta = timedelta(days=7),
        status_list_validity: timedelta = timedelta(days=1),
        status_list_ttl: timedelta = timedelta(hours=1),
        progress: Callable[[int, int], None] | None = None,
    ) -> PublishReport:
        """Write the public verification bundle as static files.

        The trust list gets the next sequence number; the trust list and every status
        list are re-verified, as a verifier would, before any file is replaced.
        """
        now = self._now()
        out = Path(directory)
        with self._write() as repo:
            sequence = repo.next_value("trust_list_sequence")
            all_keys = repo.list_keys()
            agencies = repo.list_agencies()
            types = repo.list_types()
            lists = repo.list_status_lists()
            documents: dict[str, bytes] = {}
            status_signer = repo.active_key(KeyRole.STATUS)
            root = repo.active_key(KeyRole.ROOT)
            if status_signer is None or root is None:
                raise StorageError("registry lacks its root or status-list key")
            for done, (list_id, size, bits, _allocated) in enumerate(lists, 1):
                status_list = StatusList(size, bits)
                for index, status in repo.non_valid_slots(list_id):
                    status_list[index] = INVALID if status == "revoked" else SUSPENDED
                uri = _bundle.status_list_uri(self.region.base_url, list_id)
                documents[_bundle.relative_path(self.region.base_url, uri)] = (
                    make_status_list_token(
                        uri, status_list, self._signer(status_signer), issued_at=now,
                        expires_at=now + int(status_list_validity.total_seconds()),
                        ttl=int(status_list_ttl.total_seconds()),
                    ).encode("ascii")
                )
                if progress is not None:
                    progress(done, len(lists))
            trust_list = TrustList(
                region=self.region.code, name=self.region.name, base_url=self.region.base_url,
                sequence=sequence, issued_at=now,
                next_update=now + int(trust_list_validity.total_seconds()),
                agencies=tuple(
                    TrustedAgency(a.code, a.name, a.uscc, self.region.agency_uri(a.code),
                                  a.types, tuple(_trusted(k) for k in all_keys
                                                 if k.agency_code == a.code))
                    for a in agencies
                ),
                status_keys=tuple(_trusted(k) for k in all_keys if k.role is KeyRole.STATUS),
                types=tuple(TypeEntry(t.code, t.version, t.name, t.national_type_code)
                            for t in types),
                status_lists=tuple(_bundle.status_list_uri(self.region.base_url, list_id)
                                   for list_id, *_ in lists),
                agreements=tuple(a for a in repo.list_agreements()
                                 if a.valid_until is None or a.valid_until > now),
                root_rotations=tuple(repo.list_root_rotations()),
            )
            trust_token = trust_list.sign(self._signer(root))
            anchor = TrustAnchor(self.region.code, self.region.name, dict(root.public_jwk),
                                 _bundle.trust_list_url(self.region.base_url))
            # Re-verify what we are about to publish, as a verifier would.
            checked = load_trust_list(trust_token, anchor, now=now, grace=0)
            verifier = Verifier(checked, MemorySource(self.region.base_url, documents),
                                clock=lambda: _utc(now))
            for uri in checked.status_lists:
                verifier.check_status_list(uri)
            documents[_bundle.TRUST_LIST_PATH] = trust_token.encode("ascii")
            documents[_bundle.ANCHOR_FILE] = anchor.to_bytes()
            documents[_bundle.JWKS_PATH] = json.dumps(
                {"keys": [dict(k.public_jwk) for k in all_keys]}, indent=2, ensure_ascii=False
            ).encode("utf-8") + b"\n"
            count = repo.count_certificates()
            self._record(repo, now, "registry.publish", self.region.code,
                         {"sequence": sequence, "directory": str(out.resolve()),
                          "status_lists": len(lists)})
            # Files go out while the transaction is open: if writing fails, the
            # sequence number is not consumed.
            _write_bundle(out, documents)
        return PublishReport(out, sequence, _utc(now), _utc(trust_list.next_update),
                             tuple(sorted(documents)), len(lists), count)


def _trusted(key: KeyInfo) -> TrustedKey:
    return TrustedKey(
        jwk=dict(key.public_jwk),
        valid_from=int(key.created_at.timestamp()),
        valid_until=None if key.retired_at is None else int(key.retired_at.timestamp()),
        status=key.status.value,
        compromised_since=(None if key.compromised_since is None
                           else int(key.compromised_since.timestamp())),
    )


def _write_bundle(out: Path, documents: Mapping[str, bytes]) -> None:
    """Write each file atomically; the trust list last, so it never names a missing file."""
    order = sorted(documents, key=lambda p: (p == _bundle.TRUST_LIST_PATH, p))
    try:
        for relative in order:
            path = out / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
            temporary.write_bytes(documents[relative])
            os.replace(temporary, path)
    except OSError as e:
        raise PublishError(f"cannot write bundle to {out}: {e.strerror}") from e


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _default_operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # pragma: no cover - no user database
        return "unknown"


def _describe(home: Path, database_url: str | None) -> str:
    return str(home) if database_url is None else "that database"


class _Retry(Exception):
    """Internal: the status list filled up under us; run the issuance again."""


class _Transaction:
    """``with registry._write() as repo``: one transaction, errors mapped to StorageError."""

    def __init__(self, engine: Engine, *, write: bool) -> None:
        self._engine = engine.execution_options(**WRITE) if write else engine
        self._ctx: Any = None

    def __enter__(self) -> Repository:
        try:
            self._ctx = self._engine.begin()
            connection: Connection = self._ctx.__enter__()
        except OperationalError as e:
            raise StorageError(f"database unavailable: {e.orig}") from e
        return Repository(connection)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        try:
            self._ctx.__exit__(exc_type, exc, tb)
        except IntegrityError as e:
            raise StorageError(f"conflicting concurrent change: {e.orig}",
                               code="conflict") from e
        except SQLAlchemyError as e:
            raise StorageError(f"database error: {e}") from e
        if isinstance(exc, IntegrityError):
            raise StorageError(f"conflicting change: {exc.orig}", code="conflict") from exc
        if isinstance(exc, SQLAlchemyError):
            raise StorageError(f"database error: {exc}") from exc
