"""The repository: every SQL statement of the registry, over one connection/transaction."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    Connection,
    Integer,
    Row,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError

from ecert._authority import grants_from_json
from ecert._formats.log import token_hash
from ecert._formats.trustlist import Agreement, Entitlement
from ecert._storage.schema import (
    agencies,
    agency_type_windows,
    agency_types,
    agreements,
    cert_type_versions,
    cert_types,
    certificates,
    checkpoints,
    consent_failures,
    consents,
    cosignatures,
    counters,
    entitlements,
    events,
    issue_keys,
    keys,
    leases,
    log_entries,
    log_tiles,
    nonces,
    operators,
    policies,
    publications,
    region,
    request_counts,
    requests,
    root_rotations,
    settings,
    status_lists,
    uses,
)
from ecert.models import (
    Agency,
    ApprovalRequest,
    Certificate,
    CertificateStatus,
    CertificateType,
    KeyInfo,
    KeyRole,
    Lease,
    Operator,
    Region,
    RequestStatus,
    RevocationReason,
    TypeWindow,
)


def _dt(seconds: int | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _dt_required(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def input_rules(value: CertificateType) -> dict[str, Any] | None:
    """The ``input_rules`` column of a type: its holder id scheme and holder claims."""
    rules: dict[str, Any] = {}
    if value.holder_id_scheme is not None:
        rules["holder_id_scheme"] = value.holder_id_scheme
    if value.holder_claims:
        rules["holder_claims"] = dict(value.holder_claims)
    return rules or None


# Statements of the sharing service's hot path (every fetch and check runs them), built
# once: SQLAlchemy then reuses their cache keys and compiled forms, where a statement
# built per call costs more in construction than the database takes to answer it.
_OPERATOR = select(operators).where(operators.c.name == bindparam("name"))
_KEY = select(keys).where(keys.c.kid == bindparam("kid"))
_ADD_TO_COUNTER = (update(counters).where(counters.c.name == bindparam("counter"))
                   .values(value=counters.c.value + bindparam("amount"))
                   .returning(counters.c.value))
_ADD_USE = insert(uses).returning(uses.c.id)
# Statements every single issue runs, built once: building one and its cache key cost
# about as much as the round trip to the database.
_TYPE = select(cert_types).where(cert_types.c.code == bindparam("code"))
_AGENCY = select(agencies).where(agencies.c.code == bindparam("code"))
_AGENCY_TYPES = union_all(
    select(literal(0).label("kind"), agency_types.c.type_code.label("type_code"),
           null().label("id"), null().label("valid_from"), null().label("valid_until"))
    .where(agency_types.c.agency_code == bindparam("code")),
    select(literal(1), agency_type_windows.c.type_code, agency_type_windows.c.id,
           agency_type_windows.c.valid_from, agency_type_windows.c.valid_until)
    .where(agency_type_windows.c.agency_code == bindparam("code")),
).order_by("kind", "type_code", "id")
_ACTIVE_KEY = (select(keys).where(keys.c.role == bindparam("role"),
                                  keys.c.agency_code == bindparam("agency"),
                                  keys.c.retired_at.is_(None), keys.c.compromised_since.is_(None))
               .order_by(keys.c.created_at.desc()).limit(1))
_ADD_CERTIFICATE = insert(certificates)
_ALLOCATE_SLOT = (
    update(status_lists)
    .where(status_lists.c.id == select(status_lists.c.id)
           .where(status_lists.c.allocated < status_lists.c.size)
           .order_by(status_lists.c.id).limit(1).scalar_subquery(),
           status_lists.c.allocated < status_lists.c.size)
    .values(allocated=status_lists.c.allocated + 1)
    .returning(status_lists.c.id, status_lists.c.permutation_key, status_lists.c.allocated,
               status_lists.c.size))
_POLICIES = select(policies)


def _append_one_entry() -> Any:
    """PostgreSQL: take the next number of a counter and append one log entry under it,
    in one statement (``WITH taken AS (UPDATE counters … RETURNING value) INSERT INTO
    log_entries … SELECT … FROM taken RETURNING seq``)."""
    taken = (update(counters).where(counters.c.name == bindparam("counter"))
             .values(value=counters.c.value + 1).returning(counters.c.value).cte("taken"))
    e = log_entries.c
    number = taken.c.value - 1
    return (insert(log_entries).from_select(
        [e.seq, e.unit, e.leaf, e.action, e.subject, e.plain_subject, e.operator, e.at,
         e.note, e.ref],
        select(number, number, *(bindparam(c.name, type_=c.type) for c in (
            e.leaf, e.action, e.subject, e.plain_subject, e.operator, e.at, e.note,
            e.ref))))
        .returning(e.seq))


_APPEND_ONE_ENTRY = _append_one_entry()


@cache
def _insert_into(table: Table) -> Any:
    """A table's ``INSERT``, built once (executed with each call's rows)."""
    return insert(table)


@cache
def _log_about(actions: tuple[str, ...]) -> Any:
    """The log's entries about one plain subject with one of ``actions``, oldest first."""
    return (select(log_entries)
            .where(log_entries.c.plain_subject == bindparam("subject"),
                   log_entries.c.action.in_([bindparam(f"action_{i}", a)
                                             for i, a in enumerate(actions)]))
            .order_by(log_entries.c.seq))


#: Entitlements in force for a requester (by name or region), each with the leaves of its
#: log entries of the given actions (one row per leaf).
_ENTITLEMENTS_WITH_LOG = (
    select(entitlements, log_entries.c.leaf.label("log_leaf"))
    .outerjoin(log_entries, and_(
        log_entries.c.plain_subject == entitlements.c.id,
        log_entries.c.action.in_([bindparam("allow_action"), bindparam("revoke_action")])))
    .where(entitlements.c.requester.in_([bindparam("requester"), bindparam("region")]),
           or_(entitlements.c.valid_until.is_(None),
               entitlements.c.valid_until > bindparam("at")))
    .order_by(entitlements.c.id, log_entries.c.seq))


@cache
def _nonce_upsert(dialect: str) -> Any:
    """Insert a nonce, or take over an expired row of it; returns a row only if it did."""
    from sqlalchemy.dialects import postgresql, sqlite

    upsert: Any = (postgresql if dialect == "postgresql" else sqlite).insert(nonces)
    return upsert.on_conflict_do_update(
        index_elements=[nonces.c.requester, nonces.c.nonce],
        set_={"expires_at": upsert.excluded.expires_at},
        where=nonces.c.expires_at <= bindparam("now")).returning(nonces.c.requester)


@cache
def _with_issue_and_key(status: CertificateStatus, limit: int) -> Any:
    """A holder's certificates of one type with the effective ``status`` at ``now`` and,
    in the same answer, the key each row names, the leaves of its ``issue_action``
    entries (one row per leaf) and the active sharing key."""
    c, k, issue = certificates.c, keys.c, log_entries.c
    sharing = keys.alias("sharing")
    sharing_kid = (select(sharing.c.kid)
                   .where(sharing.c.role == KeyRole.SHARING.value,
                          sharing.c.retired_at.is_(None),
                          sharing.c.compromised_since.is_(None))
                   .order_by(sharing.c.created_at.desc()).limit(1).scalar_subquery())
    return (select(certificates, region.c.code.label("region_code"), region.c.base_url,
                   *(col.label(f"key_{col.name}") for col in keys.c),
                   issue.leaf.label("issue_leaf"), sharing_kid.label("sharing_kid"))
            # The region join as Repository._cert_query makes it, then the key and the
            # issue entries (explicit FROM: three tables could join certificates).
            .select_from(certificates.join(region, region.c.id == 1)
                         .outerjoin(keys, k.kid == c.kid)
                         .outerjoin(log_entries, and_(
                             issue.plain_subject == c.id,
                             issue.action == bindparam("issue_action"))))
            .where(c.holder == bindparam("holder"), c.type_code == bindparam("type_code"),
                   _status_condition(status, bindparam("now", type_=Integer)))
            .order_by(c.issued_at, c.id, issue.seq).limit(limit))


class StoredCertificate(NamedTuple):
    """A certificate row with what proves it (:meth:`Repository.certificates_with_proof`)."""

    certificate: Certificate
    key: KeyInfo | None  #: the key row the certificate row names (its ``kid``)
    issue_leaves: list[bytes]  #: the leaves of its issue entries, oldest first
    #: The registry's active sharing key (as :meth:`Repository.active_key` finds it), read
    #: in the same query: the key a copy of it is signed with.
    sharing_kid: str | None = None


def _unit_chunks(units: Iterable[int], end: int | None
                 ) -> Iterator[tuple[list[int], int, int]]:
    """``units`` a hundred at a time, each chunk with the range of the log its rows lie
    in: from its first unit (a unit's key is its first entry) to the next chunk's first
    unit (or ``end``). Read range by range, rows come in log order whatever the
    ``unit`` column was made to say: a row whose unit lies outside its own range (an
    insider's) is not read, and the unit it was taken from is reported truncated."""
    ordered = sorted(set(units))
    limit = (1 << 63) - 1 if end is None else int(end)
    for start in range(0, len(ordered), 100):
        chunk = ordered[start:start + 100]
        high = ordered[start + 100] if start + 100 < len(ordered) else limit
        yield chunk, chunk[0], min(high, limit)


def certificate_row(cert: Certificate, serial: str, status_list_id: int,
                    digest: str | None = None) -> dict[str, Any]:
    """The ``certificates`` row of a newly issued certificate (``digest``: its token's
    :func:`~ecert._formats.log.token_hash` where the caller has it already)."""
    return {
        "id": cert.id, "serial": serial, "agency_code": cert.agency_code,
        "type_code": cert.type_code, "type_version": cert.type_version, "holder": cert.holder,
        "holder_name": cert.holder_name, "claims": dict(cert.claims),
        "issued_at": int(cert.issued_at.timestamp()),
        "valid_from": int(cert.valid_from.timestamp()),
        "valid_until": None if cert.valid_until is None else int(cert.valid_until.timestamp()),
        "status": cert.status.value, "revocation_reason": None,
        "status_list_id": status_list_id, "status_index": cert.status_index, "kid": cert.kid,
        "supersedes": cert.supersedes, "token": cert.token,
        "token_hash": token_hash(cert.token) if digest is None else digest,
    }


class Repository:
    """Typed reads of the registry tables. The caller owns the transaction."""

    def __init__(self, connection: Connection) -> None:
        self.conn = connection

    def get_region(self) -> Region | None:
        row = self.conn.execute(select(region).where(region.c.id == 1)).first()
        return None if row is None else Region(row.code, row.name, row.base_url, row.tz)

    def get_type(self, code: str) -> CertificateType | None:
        row = self.conn.execute(_TYPE, {"code": code}).first()
        return None if row is None else self._type(row)

    def list_types(self) -> list[CertificateType]:
        rows = self.conn.execute(select(cert_types).order_by(cert_types.c.code))
        return [self._type(row) for row in rows]

    def get_type_version(self, code: str, version: int) -> CertificateType | None:
        """One version of a type (the one a certificate was issued under)."""
        row = self.conn.execute(select(cert_type_versions).where(
            cert_type_versions.c.code == code, cert_type_versions.c.version == version)).first()
        return None if row is None else self._type(row)

    def list_type_versions(self, code: str) -> list[CertificateType]:
        """Every stored version of a type, oldest first."""
        rows = self.conn.execute(select(cert_type_versions).where(
            cert_type_versions.c.code == code).order_by(cert_type_versions.c.version))
        return [self._type(row) for row in rows]

    @staticmethod
    def _type(row: Row[Any]) -> CertificateType:
        return CertificateType(
            code=row.code, name=row.name, national_type_code=row.national_type_code,
            schema=row.schema, version=row.version, validity_days=row.validity_days,
            qr_claims=tuple(row.qr_claims), extra=dict(row.extra or {}),
            holder_id_scheme=(row.input_rules or {}).get("holder_id_scheme"),
            holder_claims=dict((row.input_rules or {}).get("holder_claims") or {}),
        )

    def get_agency(self, code: str) -> Agency | None:
        row = self.conn.execute(_AGENCY, {"code": code}).first()
        return None if row is None else self._agency(row)

    def agency_with_uscc(self, uscc: str) -> Agency | None:
        row = self.conn.execute(select(agencies).where(agencies.c.uscc == uscc)).first()
        return None if row is None else self._agency(row)

    def list_agencies(self) -> list[Agency]:
        rows = self.conn.execute(select(agencies).order_by(agencies.c.code)).all()
        return [self._agency(row) for row in rows]

    def _agency(self, row: Row[Any]) -> Agency:
        # Its types and their windows in one query (every issue reads its agency).
        rows = self.conn.execute(_AGENCY_TYPES, {"code": row.code}).all()
        return Agency(row.code, row.name, row.uscc,
                      tuple(r.type_code for r in rows if r.kind == 0),
                      tuple(TypeWindow(r.type_code, _dt(r.valid_from), _dt(r.valid_until))
                            for r in rows if r.kind == 1))

    def get_key(self, kid: str) -> KeyInfo | None:
        row = self.conn.execute(_KEY, {"kid": kid}).first()
        return None if row is None else self._key(row)

    def count_signed_since(self, kid: str, since: int) -> int:
        return int(self.conn.execute(
            select(func.count()).select_from(certificates)
            .where(certificates.c.kid == kid, certificates.c.issued_at >= since)
        ).scalar_one())

    def active_key(self, role: KeyRole, agency_code: str | None = None) -> KeyInfo | None:
        if agency_code is not None:  # every issue: the statement built once
            found = self.conn.execute(_ACTIVE_KEY, {"role": role.value,
                                                    "agency": agency_code}).first()
            return None if found is None else self._key(found)
        query = select(keys).where(keys.c.role == role.value, keys.c.retired_at.is_(None),
                                   keys.c.compromised_since.is_(None))
        row = self.conn.execute(query.order_by(keys.c.created_at.desc()).limit(1)).first()
        return None if row is None else self._key(row)

    def list_keys(self, role: KeyRole | None = None, agency_code: str | None = None
                  ) -> list[KeyInfo]:
        query = select(keys)
        if role is not None:
            query = query.where(keys.c.role == role.value)
        if agency_code is not None:
            query = query.where(keys.c.agency_code == agency_code)
        rows = self.conn.execute(
            query.order_by(keys.c.created_at, keys.c.retired_at.is_(None), keys.c.kid))
        return [self._key(row) for row in rows]

    @staticmethod
    def _key(row: Row[Any], prefix: str = "") -> KeyInfo:
        """A ``keys`` row (its columns named ``prefix`` + the column's name)."""
        def get(name: str) -> Any:
            return getattr(row, prefix + name)

        return KeyInfo(
            kid=get("kid"), alg=get("alg"), role=KeyRole(get("role")),
            public_jwk=get("public_jwk"), created_at=_dt_required(get("created_at")),
            agency_code=get("agency_code"), retired_at=_dt(get("retired_at")),
            compromised_since=_dt(get("compromised_since")),
        )

    def list_status_lists(self) -> list[tuple[int, int, int, int]]:
        """``(id, size, bits, allocated)`` of every list."""
        rows = self.conn.execute(
            select(status_lists.c.id, status_lists.c.size, status_lists.c.bits,
                   status_lists.c.allocated).order_by(status_lists.c.id))
        return [(r.id, r.size, r.bits, r.allocated) for r in rows]

    def get_certificate(self, cert_id: str, *, for_update: bool = False) -> Certificate | None:
        query = self._cert_query().where(certificates.c.id == cert_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else self._certificate(row)

    def ids_with_serial(self, serial: str) -> list[str]:
        return list(self.conn.execute(
            select(certificates.c.id).where(certificates.c.serial == serial).limit(10)
        ).scalars())

    def find_certificates(
        self, *, holder: str | None, type_code: str | None, status: CertificateStatus | None,
        agency_code: str | None, kid: str | None = None, limit: int, offset: int = 0,
        name_prefix: str | None = None, after: tuple[int, str] | None = None,
        now: int | None = None,
    ) -> list[Certificate]:
        """Certificates in ``(issued_at, id)`` order, after the keyset cursor ``after``.

        ``status`` is the effective status at ``now``: a scheduled revocation that fell
        due reads revoked.
        """
        c = certificates.c
        conditions: list[Any] = []
        if holder is not None:
            conditions.append(c.holder == holder)
        if type_code is not None:
            conditions.append(c.type_code == type_code)
        if status is not None:
            conditions.append(_status_condition(status, now))
        if agency_code is not None:
            conditions.append(c.agency_code == agency_code)
        if kid is not None:
            conditions.append(c.kid == kid)
        if name_prefix is not None:
            conditions.extend(_prefix_conditions(self.conn.dialect.name, name_prefix))
        if after is not None:
            # A row-value comparison: one range scan of ix_certificates_issued on both
            # databases (the equivalent OR form makes PostgreSQL filter instead).
            conditions.append(tuple_(c.issued_at, c.id) > tuple_(after[0], after[1]))
        query = self._cert_query()
        if conditions:
            query = query.where(and_(*conditions))
        query = query.order_by(c.issued_at, c.id).limit(limit)
        if offset:
            query = query.offset(offset)
        return [self._certificate(row) for row in self.conn.execute(query)]

    def certificates_with_proof(self, *, holder: str, type_code: str,
                                status: CertificateStatus, now: int, limit: int,
                                issue_action: str) -> list[StoredCertificate]:
        """A holder's certificates of one type with the effective ``status`` at ``now``,
        each with the key its row names and the leaves of its ``issue_action`` entries:
        what checking a stored token against its key and the log needs, in one round
        trip (the sharing service asks this for every copy it makes), and the sharing
        key to sign its copy with."""
        found: dict[str, StoredCertificate] = {}
        for row in self.conn.execute(_with_issue_and_key(status, limit), {
                "holder": holder, "type_code": type_code, "now": now,
                "issue_action": issue_action}):
            known = found.get(row.id)
            if known is None:
                key = None if row.key_kid is None else self._key(row, "key_")
                known = found[row.id] = StoredCertificate(self._certificate(row), key, [],
                                                          row.sharing_kid)
            if row.issue_leaf is not None:
                known.issue_leaves.append(bytes(row.issue_leaf))
        return list(found.values())

    def count_certificates(self) -> int:
        return int(self.conn.execute(select(func.count()).select_from(certificates)).scalar_one())

    @staticmethod
    def _cert_query() -> Any:
        return select(certificates, region.c.code.label("region_code"), region.c.base_url).join(
            region, region.c.id == 1
        )

    @staticmethod
    def _certificate(row: Row[Any]) -> Certificate:
        from ecert._formats.bundle import status_list_uri

        return Certificate(
            id=row.id, type_code=row.type_code, agency_code=row.agency_code,
            region=row.region_code, holder=row.holder, holder_name=row.holder_name,
            claims=row.claims, issued_at=_dt_required(row.issued_at),
            valid_from=_dt_required(row.valid_from), valid_until=_dt(row.valid_until),
            status=CertificateStatus(row.status),
            status_list_uri=status_list_uri(row.base_url, row.status_list_id),
            status_index=row.status_index, kid=row.kid, token=row.token,
            type_version=row.type_version,
            revocation_reason=(None if row.revocation_reason is None
                               else RevocationReason(row.revocation_reason)),
            supersedes=row.supersedes, revoke_at=_dt(row.revoke_at),
            status_note=row.status_note,
        )

    def get_agreement(self, region_code: str) -> Agreement | None:
        row = self.conn.execute(select(agreements).where(
            agreements.c.region == region_code, agreements.c.withdrawn_at.is_(None))).first()
        return None if row is None else self._agreement(row)

    def list_agreements(self) -> list[Agreement]:
        rows = self.conn.execute(select(agreements).where(agreements.c.withdrawn_at.is_(None))
                                 .order_by(agreements.c.region))
        return [self._agreement(row) for row in rows]

    @staticmethod
    def _agreement(row: Row[Any]) -> Agreement:
        return Agreement(row.region, row.name, row.root_jwk, row.trust_list_url,
                         row.valid_from, row.valid_until, row.types)

    def list_root_rotations(self) -> list[str]:
        return list(self.conn.execute(
            select(root_rotations.c.statement).order_by(root_rotations.c.id)).scalars())

    def list_events(self, subject: str | None = None, limit: int = 1000) -> Sequence[Row[Any]]:
        query = select(events)
        if subject is not None:
            query = query.where(events.c.subject == subject)
        return self.conn.execute(query.order_by(events.c.id).limit(limit)).all()

    # -- counters, operators, policies, requests ----------------------------------------

    def counter(self, name: str) -> int:
        value = self.conn.execute(
            select(counters.c.value).where(counters.c.name == name)).scalar_one_or_none()
        return 0 if value is None else int(value)

    def get_operator(self, name: str) -> Operator | None:
        row = self.conn.execute(_OPERATOR, {"name": name}).first()
        return None if row is None else self._operator(row)

    def operator_by_kid(self, kid: str) -> Operator | None:
        row = self.conn.execute(select(operators).where(operators.c.kid == kid)).first()
        return None if row is None else self._operator(row)

    def stream_tuples(self, statement: Any, chunk: int, *, literal: bool = False,
                      binary: bool = False) -> Iterator[list[tuple[Any, ...]]]:
        """The rows of a parameterless ``statement``, ``chunk`` plain tuples at a time.

        Through the driver's own cursor on this connection (so inside its transaction and
        snapshot; a server-side cursor on PostgreSQL, so memory stays flat): for passes
        over millions of rows, where building a SQLAlchemy ``Row`` for each costs as much
        as reading it. Values are the driver's (PostgreSQL's driver parses JSON columns,
        SQLite's gives their text); columns must be of plain types. With ``literal`` the
        statement's parameters are written into it (numbers and the registry's own
        constants only, never input). With ``binary`` PostgreSQL sends the values in its
        binary format: byte strings as they are, not twice as long in hex (log leaves).
        """
        sql = str(statement.compile(dialect=self.conn.dialect,
                                    compile_kwargs={"literal_binds": literal}))
        cursor = self._driver_cursor(binary=binary, name="ecert_stream")
        try:
            cursor.execute(sql)
            while True:
                rows = cursor.fetchmany(chunk)
                if not rows:
                    return
                yield [tuple(row) for row in rows]
        finally:
            cursor.close()

    def list_operators(self) -> list[Operator]:
        rows = self.conn.execute(select(operators).order_by(operators.c.name))
        return [self._operator(row) for row in rows]

    @staticmethod
    def _operator(row: Row[Any]) -> Operator:
        return Operator(row.name, row.kid, row.public_jwk, grants_from_json(row.grants),
                        bool(row.active), _dt_required(row.created_at))

    def list_policies(self) -> dict[tuple[str, str], int]:
        rows = self.conn.execute(_POLICIES)
        return {(r.action, r.type_code): int(r.approvals) for r in rows}

    def get_request(self, request_id: int, *, for_update: bool = False
                    ) -> tuple[ApprovalRequest, dict[str, Any], str | None, str | None] | None:
        """A request with its parameters, agency and type."""
        query = select(requests).where(requests.c.id == request_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            return None
        return self._request(row), dict(row.params), row.agency_code, row.type_code

    def list_requests(self, *, status: RequestStatus | None = None, limit: int = 100,
                      before_id: int | None = None, unexpired_at: int | None = None
                      ) -> list[ApprovalRequest]:
        """Requests, newest first, below ``before_id`` (the keyset cursor)."""
        query = select(requests)
        if status is not None:
            query = query.where(requests.c.status == status.value)
        if before_id is not None:
            query = query.where(requests.c.id < before_id)
        if unexpired_at is not None:
            query = query.where(requests.c.expires_at > unexpired_at)
        rows = self.conn.execute(query.order_by(requests.c.id.desc()).limit(limit))
        return [self._request(r) for r in rows]

    @staticmethod
    def _request(row: Row[Any]) -> ApprovalRequest:
        return ApprovalRequest(row.id, row.action, row.subject, row.requested_by,
                               _dt_required(row.created_at), _dt_required(row.expires_at),
                               RequestStatus(row.status), int(row.approvals_needed),
                               tuple(row.approved_by), row.decided_by, row.reason)

    # -- the log -------------------------------------------------------------------------

    def log_rows(self, start: int = 0, end: int | None = None, *,
                 plain_subject: str | None = None, actions: Sequence[str] | None = None,
                 limit: int | None = None) -> Sequence[Row[Any]]:
        if (start, end, limit) == (0, None, None) and plain_subject is not None \
                and actions is not None:
            return self.conn.execute(_log_about(tuple(actions)),
                                     {"subject": plain_subject}).all()
        query = select(log_entries).where(log_entries.c.seq >= start)
        if end is not None:
            query = query.where(log_entries.c.seq < end)
        if plain_subject is not None:
            query = query.where(log_entries.c.plain_subject == plain_subject)
        if actions is not None:
            query = query.where(log_entries.c.action.in_(list(actions)))
        query = query.order_by(log_entries.c.seq)
        if limit is not None:
            query = query.limit(limit)
        return self.conn.execute(query).all()

    def log_leaves(self, start: int, end: int) -> list[bytes]:
        """The leaves of the entries from ``start`` to ``end`` (excluded), in log order,
        in one query: integration and publication read millions. A range of ``end -
        start`` entries gives that many leaves unless the log has gaps."""
        return [bytes(leaf) for (leaf,) in self._fetch_all(
            select(log_entries.c.leaf)
            .where(log_entries.c.seq >= int(start), log_entries.c.seq < int(end))
            .order_by(log_entries.c.seq))]

    def _fetch_all(self, statement: Any) -> list[tuple[Any, ...]]:
        """The rows of ``statement`` (its parameters numbers only: they are written into
        it) as the driver's plain tuples, PostgreSQL's in its binary format (byte strings
        as they are, not twice as long in hex): for bulk reads of bytes, where building
        a SQLAlchemy ``Row`` for each costs more than reading it."""
        sql = str(statement.compile(dialect=self.conn.dialect,
                                    compile_kwargs={"literal_binds": True}))
        cursor = self._driver_cursor(binary=True)
        try:
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _driver_cursor(self, *, binary: bool, name: str | None = None) -> Any:
        """A cursor of the driver on this connection (inside its transaction): on
        PostgreSQL server-side if ``name`` is given, in the binary format with
        ``binary``."""
        dbapi = self.conn.connection.dbapi_connection
        if dbapi is None:  # pragma: no cover - an invalidated connection
            raise RuntimeError("the connection is closed")
        if self.conn.dialect.name == "postgresql":
            return dbapi.cursor(name=name, binary=binary) if name else dbapi.cursor(
                binary=binary)
        return dbapi.cursor()

    def units_with_actions(self, actions: Sequence[str], end: int, start: int = 0
                           ) -> list[int]:
        """The units (below ``end``) holding an entry of one of ``actions`` at ``start``
        or later: ranges of the action index, so a log of millions of certificate entries
        is not scanned."""
        query = (select(log_entries.c.unit).distinct()
                 .where(log_entries.c.action.in_(list(actions))))
        if start:
            query = query.where(log_entries.c.seq >= int(start))
        units = self.conn.execute(query).scalars()
        return sorted(u for u in map(int, units) if u < end)  # a unit's key is its first seq

    def subjects_of_actions(self, actions: Sequence[str], start: int, end: int
                            ) -> list[str]:
        """The subjects, in clear, of the entries of ``actions`` from ``start`` to
        ``end`` (excluded): through the action index."""
        return sorted({str(s) for s in self.conn.execute(
            select(log_entries.c.plain_subject).distinct()
            .where(log_entries.c.action.in_(list(actions)),
                   log_entries.c.seq >= int(start), log_entries.c.seq < int(end))).scalars()})

    def units_about(self, subjects: Sequence[str], end: int) -> set[int]:
        """The units (below ``end``) holding an entry about one of ``subjects`` (in
        clear): through the subject index, a few hundred subjects a statement."""
        units: set[int] = set()
        ordered = sorted(set(subjects))
        for start in range(0, len(ordered), 500):
            units.update(int(u) for u in self.conn.execute(
                select(log_entries.c.unit).distinct()
                .where(log_entries.c.plain_subject.in_(ordered[start:start + 500]),
                       log_entries.c.seq < int(end))).scalars())
        return units

    def leaves_of_units(self, units: Iterable[int], end: int) -> Iterator[tuple[int, bytes]]:
        """``(seq, leaf)`` of the entries of ``units`` below ``end``, in log order,
        streamed a hundred units a query through the driver (see :meth:`_fetch_all`)."""
        for chunk, low, high in _unit_chunks(units, end):
            for seq, leaf in self._fetch_all(
                    select(log_entries.c.seq, log_entries.c.leaf)
                    .where(log_entries.c.unit.in_(chunk), log_entries.c.seq >= low,
                           log_entries.c.seq < high)
                    .order_by(log_entries.c.seq)):
                yield int(seq), bytes(leaf)

    def log_rows_of_units(self, units: Iterable[int]) -> Iterator[Row[Any]]:
        """The rows of ``units`` in log order, streamed: a hundred units a query (a
        statement's parameters are bounded, 32,766 on SQLite, and a batch's unit holds a
        thousand entries)."""
        for chunk, low, high in _unit_chunks(units, None):
            yield from self.conn.execute(
                select(log_entries).where(log_entries.c.unit.in_(chunk),
                                          log_entries.c.seq >= low, log_entries.c.seq < high)
                .order_by(log_entries.c.seq)).all()

    def read_tile(self, level: int, index: int) -> tuple[int, bytes] | None:
        row = self.conn.execute(select(log_tiles.c.width, log_tiles.c.hashes).where(
            log_tiles.c.level == level, log_tiles.c.idx == index)).first()
        return None if row is None else (int(row.width), bytes(row.hashes))

    def read_tiles(self, level: int, start: int, end: int) -> dict[int, tuple[int, bytes]]:
        """``index: (width, hashes)`` of the stored tiles of ``level`` from ``start`` to
        ``end`` (excluded), in one query."""
        return {int(i): (int(w), bytes(h)) for i, w, h in self._fetch_all(
            select(log_tiles.c.idx, log_tiles.c.width, log_tiles.c.hashes)
            .where(log_tiles.c.level == int(level), log_tiles.c.idx >= int(start),
                   log_tiles.c.idx < int(end)))}

    def latest_checkpoint(self) -> tuple[int, bytes, str] | None:
        row = self.conn.execute(select(checkpoints).order_by(checkpoints.c.size.desc())
                                .limit(1)).first()
        return None if row is None else (int(row.size), bytes(row.root), row.note)

    def list_checkpoints(self) -> list[tuple[int, bytes, str]]:
        rows = self.conn.execute(select(checkpoints).order_by(checkpoints.c.size))
        return [(int(r.size), bytes(r.root), r.note) for r in rows]

    def cosignatures_for(self, *, origin: str | None = None, witness: str | None = None
                         ) -> list[tuple[str, str, int, bytes, str, int]]:
        """``(origin, witness, size, root, note, created_at)``, newest first."""
        query = select(cosignatures)
        if origin is not None:
            query = query.where(cosignatures.c.origin == origin)
        if witness is not None:
            query = query.where(cosignatures.c.witness == witness)
        rows = self.conn.execute(query.order_by(cosignatures.c.id.desc()))
        return [(r.origin, r.witness, int(r.size), bytes(r.root), r.note, int(r.created_at))
                for r in rows]

    def status_list_key(self, list_id: int) -> bytes | None:
        """The key of a list's slot permutation."""
        key = self.conn.execute(select(status_lists.c.permutation_key)
                                .where(status_lists.c.id == int(list_id))).scalar_one_or_none()
        return None if key is None else bytes(key)

    def revocations_due(self, after: int | None, now: int) -> list[str]:
        """The ids of the certificates whose scheduled revocation fell due after ``after``
        (ever, with None) and by ``now``, as their rows say."""
        due = certificates.c.revoke_at <= now
        if after is not None:
            due = and_(due, certificates.c.revoke_at > after)
        return [str(r[0]) for r in self.conn.execute(select(certificates.c.id).where(due))]

    def get_lease(self, name: str) -> Lease | None:
        """The lease ``name`` if someone holds it (expired or not); None if nobody does."""
        row = self.conn.execute(select(leases).where(leases.c.name == name)).one_or_none()
        if row is None or row.holder is None:
            return None
        return Lease(name, row.holder, row.host or "", int(row.pid or 0), row.directory or "",
                     _dt_required(row.acquired_at or 0), _dt_required(row.renewed_at or 0),
                     _dt_required(row.expires_at))

    def checkpoint_sizes(self) -> list[int]:
        """The size of every checkpoint on record (without their notes)."""
        return [int(v) for v in self.conn.execute(select(checkpoints.c.size)).scalars()]

    def publication_sizes(self) -> list[int]:
        """The log size of every publication on record, started or written."""
        return [int(v) for v in self.conn.execute(
            select(publications.c.log_size).distinct()).scalars()]

    def latest_publication(self) -> tuple[int, int, int, str] | None:
        """``(sequence, started_at, log_size, directory)`` of the newest written publication."""
        row = self.conn.execute(
            select(publications.c.sequence, publications.c.started_at,
                   publications.c.log_size, publications.c.directory)
            .where(publications.c.status == "written")
            .order_by(publications.c.sequence.desc()).limit(1)).one_or_none()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]), str(row[3]))

    def logged_since(self, seq: int, *, except_action: str) -> bool:
        """Whether the log has an entry at or after ``seq`` of another action."""
        return self.conn.execute(
            select(log_entries.c.seq)
            .where(log_entries.c.seq >= seq, log_entries.c.action != except_action)
            .limit(1)).first() is not None

    def issue_keys_of(self, values: Sequence[str]) -> dict[str, tuple[str, str, int]]:
        """``key -> (certificate id, run, line)`` of the batch idempotency keys in ``values``
        that exist."""
        if not values:
            return {}
        rows = self.conn.execute(select(issue_keys).where(issue_keys.c.key.in_(list(values))))
        return {r.key: (r.certificate_id, r.run, int(r.line)) for r in rows}

    def all_issue_keys(self) -> Iterator[list[tuple[Any, ...]]]:
        """``(key, certificate id)`` of every batch idempotency key, in chunks."""
        return self.stream_tuples(
            select(issue_keys.c.key, issue_keys.c.certificate_id).order_by(issue_keys.c.key),
            4096)

    def certificate_facts(self) -> Iterator[Row[Any]]:
        """Every certificate row, with the columns an audit compares against the log."""
        yield from self.conn.execute(select(certificates).order_by(certificates.c.id))


    # -- sharing -----------------------------------------------------------------------------

    def get_entitlement(self, ident: str) -> Entitlement | None:
        row = self.conn.execute(select(entitlements).where(entitlements.c.id == ident)).first()
        return None if row is None else self._entitlement(row)

    def list_entitlements(self, *, in_force_at: int | None = None, after: str | None = None,
                          limit: int | None = None) -> list[Entitlement]:
        """Entitlements by id; ``in_force_at``: only those not ended by then."""
        query = select(entitlements).order_by(entitlements.c.id)
        if in_force_at is not None:
            query = query.where(or_(entitlements.c.valid_until.is_(None),
                                    entitlements.c.valid_until > in_force_at))
        if after is not None:
            query = query.where(entitlements.c.id > after)
        if limit is not None:
            query = query.limit(limit)
        return [self._entitlement(row) for row in self.conn.execute(query)]

    def entitlements_with_log(self, requester: str, *, in_force_at: int, allow_action: str,
                              revoke_action: str) -> list[tuple[Entitlement, list[bytes]]]:
        """The entitlements not ended by ``in_force_at`` that name ``requester`` (by name
        or its region), each with the leaves of its allow and revoke entries, oldest
        first: what checking them against the log needs, in one round trip."""
        found: dict[str, tuple[Entitlement, list[bytes]]] = {}
        for row in self.conn.execute(_ENTITLEMENTS_WITH_LOG, {
                "requester": requester, "region": requester.split("/", 1)[0],
                "at": in_force_at, "allow_action": allow_action,
                "revoke_action": revoke_action}):
            known = found.get(row.id)
            if known is None:
                known = found[row.id] = (self._entitlement(row), [])
            if row.log_leaf is not None:
                known[1].append(bytes(row.log_leaf))
        return list(found.values())

    @staticmethod
    def _entitlement(row: Row[Any]) -> Entitlement:
        return Entitlement(row.id, row.requester, tuple(row.types), tuple(row.purposes),
                           None if row.claims is None else tuple(row.claims),
                           bool(row.without_consent), int(row.valid_from),
                           None if row.valid_until is None else int(row.valid_until))

    def get_consent(self, ident: str) -> Row[Any] | None:
        return self.conn.execute(select(consents).where(consents.c.id == ident)).first()

    def consent_by_hash(self, code_hash: str, *, for_update: bool = False) -> Row[Any] | None:
        query = select(consents).where(consents.c.code_hash == code_hash)
        if for_update:
            query = query.with_for_update()
        return self.conn.execute(query).first()

    def consent_log_rows(self, consent_id: str, actions: Sequence[str]) -> Sequence[Row[Any]]:
        """In one round trip, the log rows about consent ``consent_id`` with one of
        ``actions`` (its grant and revocations, by subject) and those that say they spent it
        (by ``ref``): two indexed look-ups, not a scan of the log; oldest first."""
        return self.conn.execute(
            select(log_entries)
            .where(or_(and_(log_entries.c.plain_subject == consent_id,
                            log_entries.c.action.in_(list(actions))),
                       log_entries.c.ref == consent_id))
            .order_by(log_entries.c.seq)).all()

    def consents_of(self, holder: str) -> Sequence[Row[Any]]:
        return self.conn.execute(select(consents).where(consents.c.holder == holder)
                                 .order_by(consents.c.created_at.desc(), consents.c.id)).all()

    def list_consents(self) -> Sequence[Row[Any]]:
        return self.conn.execute(select(consents).order_by(consents.c.id)).all()

    def failures(self, scopes: Sequence[str], window: int) -> int:
        """The most failed consent codes of any of ``scopes`` in ``window``."""
        value = self.conn.execute(select(func.max(consent_failures.c.count)).where(
            consent_failures.c.scope.in_(list(scopes)),
            consent_failures.c.window == window)).scalar_one_or_none()
        return 0 if value is None else int(value)

    def list_uses(self, holder: str, *, before: int | None, limit: int) -> Sequence[Row[Any]]:
        """A holder's use records, newest first."""
        query = select(uses).where(uses.c.holder == holder)
        if before is not None:
            query = query.where(uses.c.id < before)
        return self.conn.execute(query.order_by(uses.c.id.desc()).limit(limit)).all()

    def list_all_uses(self) -> Sequence[Row[Any]]:
        return self.conn.execute(select(uses).order_by(uses.c.id)).all()

    def setting(self, name: str) -> Any:
        """The value of setting ``name`` (JSON), or None if it was never set."""
        return self.conn.execute(select(settings.c.value).where(settings.c.name == name)
                                 ).scalar_one_or_none()


class WriteRepository(Repository):
    """Reads and writes; only a unit of work (``ecert.registry._uow``) hands one out."""

    def create_region(self, value: Region, now: int) -> None:
        self.conn.execute(insert(region).values(id=1, code=value.code, name=value.name,
                                                base_url=value.base_url, created_at=now,
                                                tz=value.tz))

    def create_counter(self, name: str, value: int = 0) -> None:
        self.conn.execute(insert(counters).values(name=name, value=value))

    def next_value(self, name: str) -> int:
        """Atomically increment a counter (the row lock serializes concurrent callers)."""
        value = self.conn.execute(_ADD_TO_COUNTER, {"counter": name, "amount": 1}
                                  ).scalar_one_or_none()
        if value is None:
            raise LookupError(name)
        return int(value)

    def add_type(self, value: CertificateType, now: int) -> None:
        row = {"code": value.code, "version": value.version, "name": value.name,
               "national_type_code": value.national_type_code, "schema": dict(value.schema),
               "validity_days": value.validity_days, "qr_claims": list(value.qr_claims),
               "extra": dict(value.extra) or None, "input_rules": input_rules(value),
               "created_at": now}
        self.conn.execute(insert(cert_types).values(**row))
        self.conn.execute(insert(cert_type_versions).values(**row))

    def add_type_version(self, value: CertificateType, now: int) -> None:
        """Store a new version of a type and make it the one new certificates use."""
        row = {"version": value.version, "name": value.name,
               "national_type_code": value.national_type_code, "schema": dict(value.schema),
               "validity_days": value.validity_days, "qr_claims": list(value.qr_claims),
               "extra": dict(value.extra) or None, "input_rules": input_rules(value)}
        self.conn.execute(update(cert_types).where(cert_types.c.code == value.code)
                          .values(**row))
        self.conn.execute(insert(cert_type_versions).values(code=value.code, created_at=now,
                                                            **row))

    def rename_agency(self, code: str, name: str) -> None:
        self.conn.execute(update(agencies).where(agencies.c.code == code).values(name=name))

    def set_agency_type(self, code: str, type_code: str,
                        windows: Sequence[tuple[int | None, int | None]] | None) -> None:
        """Give ``code`` the type, without limit in time (``None``) or in ``windows``."""
        if self.conn.execute(select(agency_types.c.type_code).where(
                agency_types.c.agency_code == code,
                agency_types.c.type_code == type_code)).first() is None:
            self.conn.execute(insert(agency_types).values(agency_code=code,
                                                          type_code=type_code))
        self.conn.execute(delete(agency_type_windows).where(
            agency_type_windows.c.agency_code == code,
            agency_type_windows.c.type_code == type_code))
        if windows:
            self.conn.execute(insert(agency_type_windows), [
                {"agency_code": code, "type_code": type_code, "valid_from": start,
                 "valid_until": end} for start, end in windows])

    def add_agency(self, value: Agency, now: int) -> None:
        self.conn.execute(insert(agencies).values(code=value.code, name=value.name,
                                                  uscc=value.uscc, created_at=now))
        if value.types:
            self.conn.execute(insert(agency_types),
                              [{"agency_code": value.code, "type_code": t} for t in value.types])

    def add_key(self, value: KeyInfo) -> None:
        self.conn.execute(insert(keys).values(
            kid=value.kid, role=value.role.value, agency_code=value.agency_code, alg=value.alg,
            public_jwk=dict(value.public_jwk), created_at=int(value.created_at.timestamp()),
        ))

    def retire_key(self, kid: str, now: int) -> None:
        self.conn.execute(update(keys).where(keys.c.kid == kid, keys.c.retired_at.is_(None))
                          .values(retired_at=now))

    def mark_compromised(self, kid: str, since: int, now: int) -> None:
        self.conn.execute(update(keys).where(keys.c.kid == kid).values(
            compromised_since=since, retired_at=func.coalesce(keys.c.retired_at, now)))

    def allocate_slot(self) -> tuple[int, bytes, int, int] | None:
        """Take the next slot of the open list: ``(list_id, key, counter, size)`` or None.

        One statement (the open list found in it): a single issue's round trips count."""
        row = self.conn.execute(_ALLOCATE_SLOT).first()
        if row is None:  # filled up by a concurrent issuer meanwhile
            return None
        return int(row.id), bytes(row.permutation_key), int(row.allocated) - 1, int(row.size)

    def allocate_slots(self, wanted: int) -> tuple[int, bytes, int, int, int] | None:
        """Take up to ``wanted`` consecutive slots of the open list in one statement:
        ``(list_id, key, first counter, how many, size)``, or None if no list is open."""
        open_list = self.conn.execute(
            select(status_lists.c.id, status_lists.c.size, status_lists.c.allocated)
            .where(status_lists.c.allocated < status_lists.c.size)
            .order_by(status_lists.c.id).limit(1)
        ).first()
        if open_list is None:
            return None
        take = min(wanted, int(open_list.size) - int(open_list.allocated))
        row = self.conn.execute(
            update(status_lists)
            .where(status_lists.c.id == open_list.id,
                   status_lists.c.allocated <= status_lists.c.size - take)
            .values(allocated=status_lists.c.allocated + take)
            .returning(status_lists.c.id, status_lists.c.permutation_key,
                       status_lists.c.allocated, status_lists.c.size)
        ).first()
        if row is None:  # filled by a concurrent issuer meanwhile
            return None
        return (int(row.id), bytes(row.permutation_key), int(row.allocated) - take, take,
                int(row.size))

    def add_certificates(self, rows: Sequence[tuple[Certificate, str, int, str]]) -> None:
        """Insert ``(certificate, serial, status list id, token hash)`` rows in one
        statement."""
        self._insert_many(certificates, [certificate_row(*row) for row in rows])

    def _insert_many(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """``INSERT`` many rows of the same columns. On SQLite through the driver's own
        ``executemany`` (SQLAlchemy's per-row parameter processing costs a third of the
        insert there), JSON columns as JSON text (what SQLAlchemy reads back the same)."""
        if not rows:
            return
        if self.conn.dialect.name != "sqlite":
            self.conn.execute(_insert_into(table), list(rows))
            return
        from sqlalchemy import JSON

        from ecert._formats.jose import json_text

        columns = list(rows[0])
        as_json = [isinstance(table.c[name].type, JSON) for name in columns]
        names = ", ".join(f'"{name}"' for name in columns)
        # Names from the table's own definition, values bound: nothing of the caller's.
        sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" * len(columns))})'  # noqa: S608

        get = itemgetter(*columns)
        encoded = [i for i, encode in enumerate(as_json) if encode]
        values: list[Any] = []
        for row in rows:
            value = get(row) if len(columns) > 1 else (get(row),)
            if encoded:
                value = list(value)
                for i in encoded:
                    if value[i] is not None:
                        value[i] = json_text(value[i])
            values.append(value)
        dbapi = self.conn.connection.dbapi_connection
        if dbapi is None:  # pragma: no cover - an invalidated connection
            raise RuntimeError("the connection is closed")
        cursor = dbapi.cursor()
        try:
            cursor.executemany(sql, values)
        except sqlite3.IntegrityError as e:
            from ecert.errors import Conflict

            raise Conflict(f"conflicting concurrent change: {e}") from e
        except sqlite3.Error as e:
            from ecert.errors import StorageError

            raise StorageError(f"database error: {e}") from e
        finally:
            cursor.close()

    def add_issue_keys(self, rows: Sequence[dict[str, Any]]) -> None:
        """Record batch idempotency keys (``key``, ``certificate_id``, ``run``, ``line``)."""
        self._insert_many(issue_keys, rows)

    def meet_issue_keys(self, met: Sequence[tuple[str, int]], run: str) -> None:
        """Mark keys issued by an earlier run as met by ``run`` at their lines, so that
        a repetition later in the same file is told from a re-run's skip."""
        if met:
            from sqlalchemy import bindparam

            self.conn.execute(
                update(issue_keys).where(issue_keys.c.key == bindparam("k"))
                .values(run=bindparam("r"), line=bindparam("n")),
                [{"k": key, "r": run, "n": line} for key, line in met])

    def add_status_list(self, list_id: int, size: int, bits: int, key: bytes, now: int) -> None:
        self.conn.execute(insert(status_lists).values(
            id=list_id, size=size, bits=bits, permutation_key=key, allocated=0, created_at=now))

    def add_certificate(self, cert: Certificate, serial: str, status_list_id: int) -> None:
        self.conn.execute(_ADD_CERTIFICATE, certificate_row(cert, serial, status_list_id))

    def set_status(self, cert_id: str, status: CertificateStatus,
                   reason: RevocationReason | None = None, note: str | None = None) -> None:
        values: dict[str, Any] = {
            "status": status.value,
            "revocation_reason": None if reason is None else reason.value,
            "status_note": note}
        if status is CertificateStatus.REVOKED:
            values["revoke_at"] = None  # revoked now: nothing left to schedule
        self.conn.execute(update(certificates).where(certificates.c.id == cert_id)
                          .values(**values))

    def schedule_revocation(self, cert_id: str, at: int) -> None:
        """Revoke ``cert_id`` (reason superseded) from ``at`` on, with nobody acting then."""
        self.conn.execute(update(certificates).where(certificates.c.id == cert_id)
                          .values(revoke_at=at))

    def put_agreement(self, value: Agreement, now: int) -> None:
        """Create or replace the agreement with ``value.region``."""
        row = {"name": value.name, "root_jwk": dict(value.root_jwk),
               "trust_list_url": value.trust_list_url, "valid_from": value.valid_from,
               "valid_until": value.valid_until, "types": dict(value.types),
               "created_at": now, "withdrawn_at": None}
        updated = self.conn.execute(
            update(agreements).where(agreements.c.region == value.region).values(**row))
        if updated.rowcount == 0:
            self.conn.execute(insert(agreements).values(region=value.region, **row))

    def withdraw_agreement(self, region_code: str, now: int) -> bool:
        result = self.conn.execute(update(agreements).where(
            agreements.c.region == region_code, agreements.c.withdrawn_at.is_(None),
        ).values(withdrawn_at=now))
        return bool(result.rowcount)

    def add_root_rotation(self, old_kid: str, new_kid: str, statement: str, now: int) -> None:
        self.conn.execute(insert(root_rotations).values(
            old_kid=old_kid, new_kid=new_kid, statement=statement, created_at=now))

    def record(self, now: int, operator: str, action: str, subject: str,
               details: dict[str, Any]) -> None:
        self.conn.execute(insert(events).values(at=now, operator=operator, action=action,
                                                subject=subject, details=details))

    def add_to_counter(self, name: str, amount: int) -> int:
        """Add ``amount`` atomically; return the new value (the row lock serializes)."""
        value = self.conn.execute(_ADD_TO_COUNTER, {"counter": name, "amount": amount}
                                  ).scalar_one_or_none()
        if value is None:
            self.conn.execute(insert(counters).values(name=name, value=amount))
            return amount
        return int(value)

    def put_operator(self, value: Operator, now: int) -> None:
        row = {"kid": value.kid, "public_jwk": dict(value.public_jwk),
               "grants": [g.to_json() for g in value.grants], "active": int(value.active)}
        updated = self.conn.execute(update(operators).where(operators.c.name == value.name)
                                    .values(**row))
        if updated.rowcount == 0:
            self.conn.execute(insert(operators).values(name=value.name, created_at=now, **row))

    def set_policy(self, action: str, type_code: str, approvals: int) -> None:
        self.conn.execute(delete(policies).where(policies.c.action == action,
                                                 policies.c.type_code == type_code))
        if approvals > 1:
            self.conn.execute(insert(policies).values(action=action, type_code=type_code,
                                                      approvals=approvals))

    def add_request(self, *, action: str, subject: str, params: dict[str, Any],
                    agency_code: str | None, type_code: str | None, requested_by: str,
                    now: int, expires_at: int, approvals_needed: int) -> int:
        return int(self.conn.execute(insert(requests).values(
            action=action, subject=subject, params=params, agency_code=agency_code,
            type_code=type_code, requested_by=requested_by, created_at=now,
            expires_at=expires_at, approvals_needed=approvals_needed, approved_by=[],
            status=RequestStatus.PENDING.value,
        ).returning(requests.c.id)).scalar_one())

    def update_request(self, request_id: int, *, status: RequestStatus,
                       approved_by: Sequence[str], decided_by: str | None = None,
                       reason: str | None = None) -> None:
        self.conn.execute(update(requests).where(requests.c.id == request_id).values(
            status=status.value, approved_by=list(approved_by), decided_by=decided_by,
            reason=reason))

    def append_log(self, rows: Sequence[dict[str, Any]]) -> None:
        self._insert_many(log_entries, rows)

    def append_numbered(self, counter: str, rows: Sequence[dict[str, Any]]) -> int:
        """Take ``len(rows)`` numbers from ``counter`` and append ``rows`` as log entries
        numbered from the first of them (each row's ``seq``; ``unit``: the first); the
        first number. The counter's row lock serializes appends until the commit: on
        PostgreSQL a single entry (a use record's, on every request of the sharing
        service) takes its number and is written in one statement, so that lock is held
        a round trip shorter."""
        if len(rows) == 1 and self.conn.dialect.name == "postgresql":
            row = rows[0]
            start = self.conn.execute(_APPEND_ONE_ENTRY, {"counter": counter, **{
                name: row[name] for name in ("leaf", "action", "subject", "plain_subject",
                                             "operator", "at", "note", "ref")}}
                                      ).scalar_one_or_none()
            if start is not None:
                return int(start)
            # No counter row yet: the general way below creates it.
        end = self.add_to_counter(counter, len(rows))
        start = end - len(rows)
        self.append_log([{**row, "seq": start + i, "unit": start}
                         for i, row in enumerate(rows)])
        return start

    def put_tile(self, level: int, index: int, width: int, hashes: bytes) -> None:
        updated = self.conn.execute(update(log_tiles).where(
            log_tiles.c.level == level, log_tiles.c.idx == index).values(
            width=width, hashes=hashes))
        if updated.rowcount == 0:
            self.conn.execute(insert(log_tiles).values(level=level, idx=index, width=width,
                                                       hashes=hashes))

    def add_checkpoint(self, size: int, root: bytes, note: str, now: int) -> None:
        self.conn.execute(insert(checkpoints).values(size=size, root=root, note=note,
                                                     created_at=now))

    def add_publication(self, sequence: int, now: int, log_size: int, log_root: bytes,
                        directory: str) -> None:
        self.conn.execute(insert(publications).values(
            sequence=sequence, started_at=now, log_size=log_size, log_root=log_root,
            directory=directory, status="started"))

    def finish_publication(self, sequence: int, trust_list_hash: str) -> None:
        self.conn.execute(update(publications).where(publications.c.sequence == sequence)
                          .values(trust_list_hash=trust_list_hash, status="written"))

    def add_cosignature(self, origin: str, witness: str, size: int, root: bytes, note: str,
                        now: int) -> None:
        self.conn.execute(insert(cosignatures).values(origin=origin, witness=witness,
                                                      size=size, root=root, note=note,
                                                      created_at=now))

    def take_lease(self, name: str, holder: str, *, host: str, pid: int, directory: str,
                   now: int, expires_at: int) -> bool:
        """Take or renew lease ``name`` for ``holder``: one conditional UPDATE, so two
        instances racing (on any host) cannot both win. True if ``holder`` has it now."""
        taken = self.conn.execute(
            update(leases)
            .where(leases.c.name == name,
                   or_(leases.c.holder.is_(None), leases.c.holder == holder,
                       leases.c.expires_at <= now))
            .values(holder=holder, host=host, pid=pid, directory=directory,
                    acquired_at=case((leases.c.holder == holder, leases.c.acquired_at),
                                     else_=now),
                    renewed_at=now, expires_at=expires_at))
        if taken.rowcount:
            return True
        if self.conn.execute(select(leases.c.name).where(leases.c.name == name)).first():
            return False
        # A lease name the migration did not create: the primary key settles a race.
        self.conn.execute(insert(leases).values(
            name=name, holder=holder, host=host, pid=pid, directory=directory,
            acquired_at=now, renewed_at=now, expires_at=expires_at))
        return True

    def release_lease(self, name: str, holder: str, now: int) -> bool:
        """Give up lease ``name`` if ``holder`` has it (others may take it at once)."""
        return bool(self.conn.execute(
            update(leases).where(leases.c.name == name, leases.c.holder == holder)
            .values(holder=None, host=None, pid=None, directory=None, acquired_at=None,
                    renewed_at=now, expires_at=now)).rowcount)

    def redact_certificate(self, cert_id: str, now: int) -> None:
        self.conn.execute(update(certificates).where(certificates.c.id == cert_id).values(
            holder_name="", claims={}, token="", redacted_at=now))

    # -- sharing -----------------------------------------------------------------------------

    def add_entitlement(self, value: Entitlement) -> None:
        self.conn.execute(insert(entitlements).values(
            id=value.id, requester=value.requester, types=list(value.types),
            purposes=list(value.purposes),
            claims=None if value.claims is None else list(value.claims),
            without_consent=int(value.without_consent), valid_from=value.valid_from,
            valid_until=value.valid_until))

    def end_entitlement(self, ident: str, at: int) -> None:
        self.conn.execute(update(entitlements).where(entitlements.c.id == ident)
                          .values(valid_until=at))

    def add_consent(self, **row: Any) -> None:
        self.conn.execute(insert(consents).values(**row))

    def use_consent(self, ident: str, at: int) -> bool:
        """Mark a consent used; False if another request used or revoked it first."""
        done = self.conn.execute(update(consents).where(
            consents.c.id == ident, consents.c.used_at.is_(None),
            consents.c.revoked_at.is_(None)).values(used_at=at))
        return done.rowcount == 1

    def revoke_consent(self, ident: str, at: int) -> None:
        self.conn.execute(update(consents).where(consents.c.id == ident)
                          .values(revoked_at=at))

    def count_failure(self, scope: str, window: int) -> None:
        """One more failed consent code for ``scope`` in ``window``."""
        self._increment(consent_failures, scope, window)

    def count_request(self, scope: str, window: int, n: int = 1) -> int:
        """``n`` more requests of ``scope`` in ``window``; how many there are now."""
        return self._increment(request_counts, scope, window, n)

    def _increment(self, table: Table, scope: str, window: int, n: int = 1) -> int:
        """Add ``n`` to the ``(scope, window)`` count of ``table``; the new count (the row
        lock serializes concurrent callers, so each sees its own)."""
        def add() -> int | None:
            value = self.conn.execute(update(table).where(
                table.c.scope == scope, table.c.window == window)
                .values(count=table.c.count + n).returning(table.c.count)
            ).scalar_one_or_none()
            return None if value is None else int(value)

        counted = add()
        if counted is not None:
            return counted
        try:  # the first of the window; a concurrent caller may insert it first
            with self.conn.begin_nested():
                self.conn.execute(insert(table).values(scope=scope, window=window, count=n))
            return n
        except IntegrityError:
            return add() or n

    def commit_lazily(self) -> None:
        """Let this transaction's commit return before its WAL record reaches the disk
        (PostgreSQL's ``synchronous_commit = off`` for this transaction only; SQLite has
        no such choice). Only for bookkeeping whose loss in a crash is harmless."""
        if self.conn.dialect.name == "postgresql":
            self.conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")

    def forget_request_counts(self, before: int) -> int:
        """Drop the request counts of windows that started before ``before``; how many."""
        return int(self.conn.execute(delete(request_counts).where(
            request_counts.c.window < before)).rowcount)

    def forget_consent_failures(self, before: int) -> int:
        """Drop the wrong consent codes' counts of windows that started before
        ``before``; how many."""
        return int(self.conn.execute(delete(consent_failures).where(
            consent_failures.c.window < before)).rowcount)

    def set_setting(self, name: str, value: Any) -> None:
        if self.conn.execute(update(settings).where(settings.c.name == name)
                             .values(value=value)).rowcount == 0:
            self.conn.execute(insert(settings).values(name=name, value=value))

    def add_use(self, **row: Any) -> int:
        return int(self.conn.execute(_ADD_USE, row).scalar_one())

    def remember_nonce(self, requester: str, nonce: str, expires_at: int, now: int) -> bool:
        """Keep ``nonce`` of ``requester`` until ``expires_at``; False if it was seen (the
        primary key refuses the second insert, atomically between workers)."""
        dialect = self.conn.dialect.name
        if dialect == "postgresql" or (
                dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 35)):  # RETURNING
            # One statement (a request's round trips are its cost): insert, or take over
            # an expired row; a live one makes the upsert's WHERE false and nothing is
            # returned. On PostgreSQL a concurrent insert of the same key waits for the
            # first to commit and then sees it live.
            return self.conn.execute(_nonce_upsert(dialect), {
                "requester": requester, "nonce": nonce, "expires_at": expires_at,
                "now": now}).first() is not None
        self.conn.execute(delete(nonces).where(nonces.c.requester == requester,
                                               nonces.c.nonce == nonce,
                                               nonces.c.expires_at <= now))
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(nonces).values(requester=requester, nonce=nonce,
                                                        expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    def forget_nonces(self, now: int) -> int:
        """Drop expired nonces; how many."""
        return int(self.conn.execute(delete(nonces).where(nonces.c.expires_at <= now))
                   .rowcount)


def _status_condition(status: CertificateStatus, now: int | BindParameter[int] | None
                      ) -> Any:
    """SQL for "the effective status at ``now`` is ``status``"."""
    c = certificates.c
    if now is None:
        return c.status == status.value
    due = and_(c.revoke_at.is_not(None), c.revoke_at <= now)
    if status is CertificateStatus.REVOKED:
        return or_(c.status == status.value, due)
    return and_(c.status == status.value, or_(c.revoke_at.is_(None), c.revoke_at > now))


def _prefix_conditions(dialect: str, prefix: str) -> list[Any]:
    """Holder names starting with ``prefix`` (case as typed), in a form an index serves.

    PostgreSQL: ``LIKE 'prefix%'`` (escaped), served by the ``varchar_pattern_ops`` index
    whatever the database collation. SQLite: the same range on its binary collation
    (UTF-8 byte order is code point order), which its plain index serves; LIKE there is
    case-insensitive for ASCII, so the range also makes the match exact.
    """
    c = certificates.c
    conditions = [c.holder_name.startswith(prefix, autoescape=True)]
    if dialect == "sqlite":
        conditions += [c.holder_name >= prefix, c.holder_name < prefix + "\U0010ffff"]
    return conditions
