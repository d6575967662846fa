"""The one path every change of a registry takes: the unit of work.

``_Context.execute(operation, params)``:

1. **authenticate** the acting operator (their personal key signs a fresh challenge
   that their registered public key verifies; failures are counted, not logged);
2. open one write transaction and **authorize** the action on its resource with the
   shared rules of :mod:`ecert._authority` (a refusal is itself logged, signed by the
   refused operator); a four-eyes policy turns the change into a pending request;
3. **apply** it through a :class:`WriteRepository`, which only a unit hands out;
4. **log** it: the unit's entries are signed once by the operator (before the log's
   counter row is locked) and appended to the Merkle log in the same transaction;
5. commit, then run after-commit steps (destroying retired keys, writing files).

Services (catalog, agencies, issuance, …) only describe operations; none of them opens a
write transaction of its own.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from ecert._authority import (
    ADMIN_CHANGES,
    Action,
    Resource,
    approvals_needed,
    minimum_approvals,
    permits,
)
from ecert._clock import Clock, from_seconds, now_seconds, system_clock
from ecert._formats.jose import (
    ED25519,
    b64url_encode,
    canonical_json,
    key_from_jwk,
    verify_signature,
)
from ecert._formats.log import Entry, commitment, sealed_leaves
from ecert._storage.database import WRITE
from ecert._storage.repository import Repository, WriteRepository
from ecert.errors import (
    Conflict,
    EcertError,
    InputError,
    KeyStoreError,
    NotAuthenticated,
    PendingApproval,
    PermissionDenied,
    StorageError,
)
from ecert.keys import FileKeyStore, KeyProvider, Signer
from ecert.models import ApprovalRequest, KeyInfo, KeyRole, Operator, Region, Role
from ecert.registry._tree import integrate

log = logging.getLogger("ecert.registry")

T = TypeVar("T")
Passphrase = bytes | str | Callable[[], bytes | str]

KEYS_DIR = "keys"
OPERATORS_DIR = "operators"
PSEUDONYM_SECRET = "holder-pseudonym"  # noqa: S105 - a key file name, not a secret
COMMITMENT_SECRET = "log-commitment"  # noqa: S105 - a key file name, not a secret
CONSENT_SECRET = "consent-code"  # noqa: S105 - a key file name, not a secret
BATCH_SECRET = "batch-key"  # noqa: S105 - a key file name, not a secret
#: How long a four-eyes request waits for approval.
REQUEST_TTL_SECONDS = 72 * 3600


class Retry(Exception):
    """Raised by an operation's apply when a race was lost; the unit runs again."""


#: Every operation by action, so an approved request can be carried out later.
OPERATIONS: dict[Action, Operation[Any]] = {}


def logged_entries(repo: Repository, subject: str, actions: list[Action]
                   ) -> list[Entry | None]:
    """The log's entries about ``subject`` with one of ``actions``, oldest first, each
    decoded (None for one that does not decode): for checking a row of the database
    against what the log says of it, where the log is the authority."""
    return [decoded(row) for row in repo.log_rows(plain_subject=subject,
                                                   actions=[a.value for a in actions])]


def decoded(row: Any) -> Entry | None:
    """A log row's entry, decoded from its leaf (None for one that does not decode)."""
    try:
        return Entry.decode(bytes(row.leaf))
    except EcertError:
        return None


def decoded_leaves(leaves: Sequence[bytes]) -> list[Entry | None]:
    """Log leaves as entries, None for one that does not decode."""
    found: list[Entry | None] = []
    for leaf in leaves:
        try:
            found.append(Entry.decode(leaf))
        except EcertError:
            found.append(None)
    return found


def register(operation: Operation[T]) -> Operation[T]:
    """Make ``operation`` known by its action (for four-eyes requests).

    One operation per action: an approved request is carried out by the operation its
    action names, so a second registration would silently change what approvals do.
    """
    if operation.action in OPERATIONS and OPERATIONS[operation.action] is not operation:
        raise RuntimeError(f"internal: a second operation for {operation.action.value}")
    OPERATIONS[operation.action] = operation
    return operation


@dataclass(frozen=True)
class OperatorCredential:
    """Who acts, and how they prove it.

    ``name`` is the operator's account. Their personal key is either the encrypted key
    file in the registry home (unlocked with ``passphrase``, asked on first need when a
    callable) or, for smart cards, HSMs or keys bound to an OIDC login, any
    :class:`ecert.keys.Signer` given as ``signer``.
    """

    name: str
    passphrase: Passphrase | None = field(default=None, repr=False)
    signer: Signer | None = None


def operator_keys(home: Path, name: str, passphrase: bytes | str,
                  kdf_rounds: int | None) -> FileKeyStore:
    """The encrypted key files of one operator (``home/operators/<name>/<kid>.p12``)."""
    return FileKeyStore(home / OPERATORS_DIR / name, passphrase, kdf_rounds=kdf_rounds)


def _resolve(passphrase: Passphrase | None) -> bytes | str | None:
    return passphrase() if callable(passphrase) else passphrase


@dataclass(frozen=True, slots=True)
class Target:
    """What an operation touches: its resource (for authorization) and its subject."""

    resource: Resource
    subject: str  #: in clear, as the registry names it (a certificate id, a code…)


@dataclass(frozen=True)
class Operation(Generic[T]):
    """A kind of change: how to find what it touches, and how to apply it."""

    action: Action
    target: Callable[[Repository, Mapping[str, Any]], Target]
    apply: Callable[[Unit, Mapping[str, Any]], T]
    #: Whether a four-eyes policy may hold it for approval.
    guarded: bool = True
    #: Whether ``apply`` authorizes by itself (approvals, an operator's own key).
    self_authorizing: bool = False
    #: Whether its subject is published only as a commitment (certificates, operators).
    private: bool = False
    #: The other (action, type) pairs it logs, whose four-eyes policies hold it too (a
    #: catalog import logs ``type.add``/``type.update`` entries).
    covers: Callable[[Mapping[str, Any]], list[tuple[Action, str | None]]] | None = None
    #: The result once the unit's entries have their places in the log (given ``apply``'s
    #: result and the log index of each entry, in logging order): for results that name
    #: their entry, which has no index until the unit is sealed.
    placed: Callable[[T, list[int]], T] | None = None
    #: Whether the unit brings the log's stored tree up to its own entries before it
    #: commits: units that append many entries (chunks of a batch), so that a registry
    #: built in bulk leaves no backlog of millions for its first publication.
    integrate: bool = False


@dataclass
class _Pending:
    action: Action
    subject: str
    public: str
    details: dict[str, Any]
    note: str | None = None
    ref: str | None = None


class Unit:
    """One unit of work: a write transaction, its operator, and the entries it logs."""

    def __init__(self, ctx: _Context, repo: WriteRepository, operator: Operator,
                 now: int) -> None:
        self.ctx = ctx
        self.repo = repo
        self.operator = operator
        self.now = now
        #: True while carrying out a request that other operators approved.
        self.approved = False
        self._entries: list[_Pending] = []
        self._after: list[Callable[[], None]] = []

    @property
    def region(self) -> Region:
        """The registry's region."""
        return self.ctx.region

    def log(self, action: Action, subject: str, details: Mapping[str, Any] | None = None,
            *, private: bool = False, note: str | None = None, ref: str | None = None
            ) -> None:
        """Append an entry; a ``private`` subject is published only as a commitment.

        A free-text ``note`` (a reason typed by a clerk, which may name people) is kept in
        clear beside the entry; the published entry carries only its keyed hash. ``ref``
        is a second lookup key of the entry's row (the consent a use spent), in clear for
        the registry only, like the subject.
        """
        public = commitment(self.ctx.commitment_key, subject) if private else subject
        details = dict(details or {})
        if note is not None:
            details["note"] = commitment(self.ctx.commitment_key, note)
        self._entries.append(_Pending(action, subject, public, details, note, ref))

    def after_commit(self, step: Callable[[], None]) -> None:
        """Run ``step`` once the transaction committed (never if it rolled back)."""
        self._after.append(step)

    def require(self, action: Action, resource: Resource) -> None:
        """Refuse unless the acting operator may ``action`` on ``resource``."""
        if not permits(self.operator.grants, action, resource):
            raise _denied(self.operator, action, resource)

    def new_key(self, role: KeyRole, agency_code: str | None, alg: str = "ES256") -> KeyInfo:
        """Create a registry key and log its creation (the proof publication asks for)."""
        # Keys are named by kid; a failed transaction leaves only an unused key file,
        # which ``ecert doctor`` reports.
        signer = self.ctx.keystore.create(alg)
        info = KeyInfo(kid=signer.kid, alg=signer.alg, role=role, public_jwk=signer.public_jwk,
                       created_at=from_seconds(self.now), agency_code=agency_code)
        self.repo.add_key(info)
        self.log(Action.KEY_CREATE, info.kid,
                 {"role": role.value, "agency": agency_code, "jwk": dict(info.public_jwk)})
        return info

    def seal(self, signer: Signer) -> tuple[int, int]:
        """Sign the unit's entries and append them to the log; the first one's index and
        how many."""
        if not self._entries:
            raise StorageError("internal: a unit of work changed state without logging it")
        leaves = sealed_leaves([Entry(self.now, p.action.value, p.public, self.operator.kid,
                                      p.details) for p in self._entries], signer)
        # Only now is the log's counter row locked: signing happened outside it.
        start = self.repo.append_numbered("log_size", [
            {"leaf": leaf, "action": p.action.value, "subject": p.public,
             "plain_subject": p.subject, "operator": self.operator.name, "at": self.now,
             "note": p.note, "ref": p.ref}
            for leaf, p in zip(leaves, self._entries, strict=True)
        ])
        return start, len(leaves)

    def run_after(self) -> None:
        for step in self._after:
            try:
                step()
            except EcertError as e:  # committed already: report, never undo
                log.warning("after-commit step failed: %s", e.message)


class _Context:
    """What every service shares: storage, clock, keys and the acting operator."""

    def __init__(self, home: Path, engine: Engine, region: Region, *,
                 passphrase: Passphrase | None, clock: Clock | None,
                 operator: OperatorCredential | None, kdf_rounds: int | None,
                 key_provider: KeyProvider | None, status_list_size: int) -> None:
        self.home = home
        self.engine = engine
        self.region = region
        self.clock: Clock = clock or system_clock
        self.credential = operator
        self.kdf_rounds = kdf_rounds
        self.status_list_size = status_list_size
        self._passphrase = passphrase
        self._keystore = key_provider
        self._authenticated: tuple[Operator, Signer] | None = None
        self._secrets: dict[str, bytes] = {}
        self._signers: dict[str, Signer] = {}

    # -- plumbing ----------------------------------------------------------------------------

    def now(self) -> int:
        return now_seconds(self.clock)

    def read(self) -> _Transaction[Repository]:
        """A read-only transaction (a :class:`Repository` has no write methods)."""
        return _Transaction(self.engine, Repository, write=False)

    def _write(self) -> _Transaction[WriteRepository]:
        """Only :meth:`execute` and bookkeeping that is no change (refusal counts) use it."""
        return _Transaction(self.engine, WriteRepository, write=True)

    @property
    def keystore(self) -> KeyProvider:
        """The registry's private keys; the file store asks for the passphrase once."""
        if self._keystore is None:
            passphrase = _resolve(self._passphrase)
            if not passphrase:
                raise KeyStoreError("a passphrase is needed to use the registry's private keys "
                                    "(set ECERT_PASSPHRASE)")
            keystore = FileKeyStore(self.home / KEYS_DIR, passphrase, kdf_rounds=self.kdf_rounds)
            # Prove the passphrase on an existing secret before anything new is encrypted
            # under it: a mistyped passphrase must not create keys nobody can open.
            if keystore.exists(PSEUDONYM_SECRET):
                keystore.load(PSEUDONYM_SECRET)
            self._keystore = keystore
        return self._keystore

    def signer(self, kid: str) -> Signer:
        """The signer of a registry key, kept for the registry's lifetime."""
        signer = self._signers.get(kid)
        if signer is None:
            signer = self._signers[kid] = self.keystore.signer(kid)
        return signer

    def destroy_key(self, kid: str) -> None:
        """Destroy a retired key's private half (after commit; failing here loses nothing)."""
        self._signers.pop(kid, None)
        try:
            self.keystore.destroy(kid)
        except KeyStoreError as e:
            log.warning("key %s is retired but its private key could not be destroyed: %s",
                        kid, e.message)

    def _secret(self, name: str, context: bytes) -> bytes:
        if name not in self._secrets:
            self._secrets[name] = hashlib.sha256(context + self.keystore.secret(name)).digest()
        return self._secrets[name]

    @property
    def pseudonym_key(self) -> bytes:
        return self._secret(PSEUDONYM_SECRET, b"ecert holder pseudonym v1\x00")

    @property
    def commitment_key(self) -> bytes:
        return self._secret(COMMITMENT_SECRET, b"ecert log commitment v1\x00")

    @property
    def batch_key(self) -> bytes:
        """The key of batch rows' idempotency keys (a secret of the key store, made on
        first use): a plain hash of a row would let anyone holding the log test guesses
        of a holder id against it."""
        return self._secret(BATCH_SECRET, b"ecert batch row v1\x00")

    @property
    def consent_key(self) -> bytes:
        """The key of consent codes' hashes (a secret of the key store, made on first use)."""
        return self._secret(CONSENT_SECRET, b"ecert consent code v1\x00")

    # -- authentication ----------------------------------------------------------------------

    def authenticate(self) -> tuple[Operator, Signer]:
        """The acting operator, proven by a signature with their registered key."""
        credential = self.credential
        if credential is None:
            self._count_refusal()
            raise NotAuthenticated("no operator is acting: set ECERT_OPERATOR and "
                                   "ECERT_OPERATOR_PASSPHRASE")
        if self._authenticated is not None:
            # Proven already; every unit re-reads the operator inside its own transaction,
            # so a disabled operator or a replaced key is refused there all the same.
            return self._authenticated
        with self.read() as repo:
            operator = repo.get_operator(credential.name)
        if operator is None or not operator.active:
            self._count_refusal()
            why = "is not an operator of this registry" if operator is None else "is disabled"
            raise NotAuthenticated(f"{credential.name!r} {why}")
        try:
            signer = credential.signer or self._file_signer(credential, operator)
            challenge = secrets.token_bytes(32)
            alg, key = key_from_jwk(operator.public_jwk)
            proven = (signer.kid == operator.kid and signer.alg == alg and verify_signature(
                alg, key, challenge, signer.sign(challenge)))
        except EcertError as e:
            self._count_refusal()
            raise NotAuthenticated(f"operator {credential.name} could not be authenticated: "
                                   f"{e.message}") from e
        if not proven:
            self._count_refusal()
            raise NotAuthenticated(f"operator {credential.name} could not be authenticated: "
                                   "their key does not match the registered one")
        self._authenticated = (operator, signer)
        return operator, signer

    def _file_signer(self, credential: OperatorCredential, operator: Operator) -> Signer:
        passphrase = _resolve(credential.passphrase)
        if not passphrase:
            raise KeyStoreError(f"a passphrase is needed for operator {credential.name} "
                                "(set ECERT_OPERATOR_PASSPHRASE)")
        return operator_keys(self.home, credential.name, passphrase,
                             self.kdf_rounds).signer(operator.kid)

    def _count_refusal(self) -> None:
        """Refusals of unauthenticated callers are counted, so noise cannot grow the log."""
        try:
            with self._write() as repo:
                repo.add_to_counter("refused_unauthenticated", 1)
        except StorageError:  # pragma: no cover - the refusal itself still stands
            log.warning("could not count a refused unauthenticated change")

    # -- the one path ------------------------------------------------------------------------

    def execute(self, operation: Operation[T], params: Mapping[str, Any]) -> T:
        """Authenticate, authorize, apply and log ``operation`` in one transaction."""
        operator, signer = self.authenticate()
        for attempt in range(3):
            try:
                return self._execute_once(operator, signer, operation, params)
            except Retry:
                if attempt == 2:
                    raise StorageError("lost a race three times (status list full); "
                                       "try again", code="conflict") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def precheck(self, operation: Operation[Any], params: Mapping[str, Any],
                 read: Callable[[Repository], T] | None = None) -> T | None:
        """Refuse, and log the refusal, as :meth:`execute` would, before input checks;
        then ``read(repo)`` in the same read transaction (what those checks need).

        For checks that need what the unit of work may not see (a raw holder id, which
        the unit gets only as a pseudonym): an operator who may not do the operation at
        all is refused, and leaves their ``access.refused`` entry, whatever their input.
        :meth:`execute` authorizes again inside its own transaction.
        """
        operator, signer = self.authenticate()
        if operation.self_authorizing:
            if read is None:
                return None
            with self.read() as repo:
                return read(repo)
        with self.read() as repo:
            current = repo.get_operator(operator.name) or operator
            target = operation.target(repo, params)
            allowed = permits(current.grants, operation.action, target.resource)
            found = None if read is None or not allowed else read(repo)
        if not allowed:
            refusal = _denied(current, operation.action, target.resource)
            self._log_refusal(operator, signer, operation, target.subject, refusal)
            raise refusal
        return found

    def _execute_once(self, operator: Operator, signer: Signer, operation: Operation[T],
                      params: Mapping[str, Any]) -> T:
        now = self.now()
        request: ApprovalRequest | None = None
        subject = operation.action.value
        try:
            with self._write() as repo:
                current = repo.get_operator(operator.name)
                if current is None or not current.active or current.kid != operator.kid:
                    self._authenticated = None
                    raise NotAuthenticated(f"operator {operator.name} is disabled or has "
                                           "another key now")
                unit = Unit(self, repo, current, now)
                target = operation.target(repo, params)
                subject = target.subject
                if not operation.self_authorizing:
                    unit.require(operation.action, target.resource)
                if operation.guarded:
                    request = self._hold_for_approval(unit, operation, target, params)
                result = None if request is not None else operation.apply(unit, params)
                start, count = unit.seal(signer)
                if operation.integrate:
                    integrate(repo)
                if request is None and operation.placed is not None:
                    result = operation.placed(result,  # type: ignore[arg-type]
                                              list(range(start, start + count)))
        except PermissionDenied as refusal:
            self._log_refusal(operator, signer, operation, subject, refusal)
            raise
        if request is not None:
            raise PendingApproval(
                f"{operation.action.value} of {request.subject} needs the approval of "
                f"{request.approvals_needed - 1} more operator(s): request {request.id}",
                request=request)
        unit.run_after()
        return result  # type: ignore[return-value]  # set whenever no request was made

    def _hold_for_approval(self, unit: Unit, operation: Operation[Any], target: Target,
                           params: Mapping[str, Any]) -> ApprovalRequest | None:
        repo = unit.repo
        policies = repo.list_policies()
        admins = 0
        if operation.action in ADMIN_CHANGES:  # only these depend on how many admins
            admins = sum(1 for o in repo.list_operators()
                         if o.active and Role.ADMIN in o.roles)
        needed = approvals_needed(policies, operation.action, target.resource.type, admins)
        for action, type_code in operation.covers(params) if operation.covers else ():
            needed = max(needed, approvals_needed(policies, action, type_code, admins))
        needed = max(needed, minimum_approvals(operation.action, params))
        if needed <= 1:
            return None
        expires = unit.now + REQUEST_TTL_SECONDS
        request_id = repo.add_request(
            action=operation.action.value, subject=target.subject, params=dict(params),
            agency_code=target.resource.agency, type_code=target.resource.type,
            requested_by=unit.operator.name, now=unit.now, expires_at=expires,
            approvals_needed=needed)
        unit.log(Action.REQUEST_CREATE, target.subject,
                 {"request": request_id, "action": operation.action.value,
                  "agency": target.resource.agency, "type": target.resource.type,
                  "params": params_hash(params), "approvals": needed, "expires": expires},
                 private=operation.private)
        found = repo.get_request(request_id)
        return None if found is None else found[0]

    def _log_refusal(self, operator: Operator, signer: Signer, operation: Operation[Any],
                     subject: str, refusal: PermissionDenied) -> None:
        """A refused change leaves a trace, signed by the operator who was refused."""
        try:
            with self._write() as repo:
                unit = Unit(self, repo, operator, self.now())
                unit.log(Action.ACCESS_REFUSED, subject,
                         {"action": operation.action.value, "code": refusal.code},
                         private=operation.private)
                unit.seal(signer)
        except EcertError as e:  # pragma: no cover - the refusal itself still stands
            log.warning("could not log a refusal: %s", e.message)


def _denied(operator: Operator, action: Action, resource: Resource) -> PermissionDenied:
    return PermissionDenied(
        f"operator {operator.name} may not {action.value}"
        + (f" for agency {resource.agency}" if resource.agency else "")
        + (f" and type {resource.type}" if resource.type else "")
        + f" (roles: {', '.join(operator.roles) or 'none'})")


def params_hash(params: Mapping[str, Any]) -> str:
    """What a request's log entry says of its parameters (which may name people)."""
    return b64url_encode(hashlib.sha256(canonical_json(dict(params))).digest())


def new_operator_key(home: Path, name: str, passphrase: bytes | str,
                     kdf_rounds: int | None) -> Signer:
    """Generate an operator's Ed25519 key, encrypted under their own passphrase."""
    if not passphrase:
        raise InputError(f"operator {name} needs a passphrase for their key",
                         code="missing_passphrase")
    return operator_keys(home, name, passphrase, kdf_rounds).create(ED25519)


R = TypeVar("R", bound=Repository)


class _Transaction(Generic[R]):
    """``with ctx.read() as repo``: one transaction, errors mapped to StorageError."""

    def __init__(self, engine: Engine, kind: type[R], *, write: bool) -> None:
        self._engine = engine.execution_options(**WRITE) if write else engine
        self._kind = kind
        self._ctx: Any = None

    def __enter__(self) -> R:
        try:
            self._ctx = self._engine.begin()
            connection: Connection = self._ctx.__enter__()
        except OperationalError as e:
            raise StorageError(f"database unavailable: {e.orig}") from e
        return self._kind(connection)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        try:
            self._ctx.__exit__(exc_type, exc, tb)
        except SQLAlchemyError as e:
            if exc is not None and not isinstance(exc, Exception):
                # Ctrl-C or an exit during the transaction, and the rollback failed too
                # (the interrupt may have cut the connection): nothing was committed,
                # and the interrupt, not the failed clean-up, is what the caller sees.
                return
            if isinstance(e, IntegrityError):
                raise Conflict(f"conflicting concurrent change: {e.orig}") from e
            raise StorageError(f"database error: {e}") from e
        if isinstance(exc, IntegrityError):
            raise Conflict(f"conflicting change: {exc.orig}") from exc
        if isinstance(exc, SQLAlchemyError):
            raise StorageError(f"database error: {exc}") from exc
