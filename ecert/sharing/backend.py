"""The sharing service over a registry: the backend, nonce store and requester keys that
:func:`ecert.sharing.app.create_app` needs, for a :class:`~ecert.Registry` opened as the
``service`` operator (the ``registry`` extra; :func:`registry_app` also the ``server`` one).

- :class:`RegistryBackend` answers fetches with :meth:`ecert.Registry.share_fetch` and
  checks (核验) with :meth:`ecert.Registry.share_check`, and records what the HTTP layer
  refused with :meth:`ecert.Registry.share_refused`. Refusals are limited per requester
  (``None`` for the unauthenticated) and problem code (:class:`RefusalLimiter`): the
  first ``burst`` of each window are use records one by one, the rest of that window one
  summary record, so an anonymous flood cannot grow the log without bound.
- :class:`RegistryNonceStore` keeps nonces in the registry's database, so stateless
  workers and hosts sharing it refuse a replay whichever of them saw the first request.
- :class:`RefreshingRequesterKeys` resolves requester keys in the home trust list (and the
  recognized regions' lists), re-read when older than ``max_age`` seconds or when a keyid
  is not found (at most every ``retry_after_miss`` seconds), so a long-running service
  follows what the registry publishes.

Each worker builds its own (``registry_app``): nothing is shared between workers but the
database.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from ecert._formats.sharing import CaseContext, CheckRequest, Problem, ShareRequest
from ecert.errors import EcertError, InputError, Replayed
from ecert.sharing._keys import DEFAULT_LEEWAY, TrustListRequesterKeys
from ecert.sharing._service import (
    AuthenticatedRequest,
    CheckResult,
    FetchResult,
    RequesterKeys,
    ResolvedKey,
)
from ecert.verify import Verifier

if TYPE_CHECKING:
    from ecert.registry import Registry
    from ecert.sharing.app import ASGIApp, Limits
    from ecert.sharing.holder import HolderChannel

log = logging.getLogger("ecert.sharing")

__all__ = ["RefreshingRequesterKeys", "RefusalLimiter", "RegistryBackend",
           "RegistryNonceStore", "registry_app"]

_T = TypeVar("_T")

#: Monotonic seconds (injectable for tests).
Monotonic = Callable[[], float]

#: What the HTTP layer's problem codes are recorded as (``share_refused`` knows these).
_RECORDED_AS = {"not_authenticated": "not_authenticated",
                "region_not_recognized": "region_not_recognized", "replay": "replay",
                "too_many_requests": "too_many_requests", "malformed_request": "bad_request"}
#: Input errors of ``share_fetch`` that are the request's fault (recorded as bad_request);
#: any other error is the service's and answers 500.
_REQUEST_FAULTS = frozenset({"invalid_request", "invalid_requester", "holder_id_empty"})
#: ``service_item`` of a summary record (see :class:`RefusalLimiter`).
SUMMARY_ITEM = "summary"


@dataclass
class _Window:
    start: float
    recorded: int = 0
    suppressed: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    started_at: int = 0  #: wall clock, POSIX seconds


@dataclass(frozen=True, slots=True)
class Summary:
    """The refusals of one window that were not recorded one by one."""

    requester: str | None
    code: str
    count: int
    started_at: int  #: POSIX seconds
    seconds: int
    #: SHA-256 (hex) over the request hashes left out, in order, each ``hash\\n``.
    request_hash: str

    @property
    def case(self) -> str:
        """What the summary record says in its ``case`` field."""
        start = datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"{self.count} more {self.code} from {start} for {self.seconds}s"


class RefusalLimiter:
    """Per (requester or ``None``, problem code): the first ``burst`` refusals of each
    ``window`` seconds are recorded one by one, the rest counted into one :class:`Summary`
    given out once the window has ended. Thread-safe; one per worker process, so a
    deployment records at most ``workers × burst`` individual refusals, plus one summary,
    per key and window."""

    def __init__(self, *, burst: int = 30, window: float = 60.0,
                 monotonic: Monotonic = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        if burst < 0 or window <= 0:
            raise ValueError("burst >= 0 and window > 0")
        self.burst, self.window = burst, window
        self._monotonic, self._wall = monotonic, wall
        self._lock = threading.Lock()
        self._windows: dict[tuple[str | None, str], _Window] = {}

    def admit(self, requester: str | None, code: str, request_hash: str
              ) -> tuple[bool, list[Summary]]:
        """Whether to record this refusal by itself, and the summaries now due."""
        now = self._monotonic()
        with self._lock:
            due = self._ended(now)
            key = (requester, code)
            current = self._windows.get(key)
            if current is None:
                current = self._windows[key] = _Window(now, started_at=int(self._wall()))
            if current.recorded < self.burst:
                current.recorded += 1
                return True, due
            current.suppressed += 1
            current.digest.update(request_hash.encode("ascii", "replace") + b"\n")
            return False, due

    def flush(self, *, everything: bool = False) -> list[Summary]:
        """The summaries due (``everything``: also of windows still open, at shutdown)."""
        with self._lock:
            return self._ended(float("inf") if everything else self._monotonic())

    def _ended(self, now: float) -> list[Summary]:
        out: list[Summary] = []
        for key, w in list(self._windows.items()):
            if now - w.start < self.window:
                continue
            del self._windows[key]
            if w.suppressed:
                out.append(Summary(key[0], key[1], w.suppressed, w.started_at,
                                   int(self.window), w.digest.hexdigest()))
        return out


class RegistryBackend:
    """:class:`~ecert.sharing.SharingBackend` over a registry opened as the ``service``
    operator. ``copy_ttl``: how long the copies live (default 24 h, at most 7 days).

    It remembers each request's nonce in the transaction that decides the request
    (``remembers_nonces``; the app is then made without a nonce store): one transaction
    per request instead of two. ``remember_nonces=False`` leaves them to the app's store.
    """

    def __init__(self, registry: Registry, *, copy_ttl: timedelta = timedelta(hours=24),
                 limiter: RefusalLimiter | None = None, remember_nonces: bool = True,
                 forget_every: float = 60.0, monotonic: Monotonic = time.monotonic) -> None:
        self.registry = registry
        self.copy_ttl = copy_ttl
        self.limiter = limiter or RefusalLimiter()
        self.remembers_nonces = remember_nonces
        self._nonces = RegistryNonceStore(registry, forget_every=forget_every,
                                          monotonic=monotonic)

    def _nonce(self, request: AuthenticatedRequest) -> tuple[str, int] | None:
        if not self.remembers_nonces:
            return None
        self._nonces.forget_when_due()
        return request.nonce, request.nonce_expires_at

    def fetch(self, request: AuthenticatedRequest, body: ShareRequest
              ) -> FetchResult | Problem:
        """Copies of the holder's certificates, or the registry's problem (recorded)."""
        context = body.context
        result = self._decide(request, context, body.holder_id, body.types,
                              lambda: self.registry.share_fetch(
            request.requester, body.holder_id, body.types, purpose=context.purpose,
            case=context.case, service_item=context.service_item,
            staff_id=context.staff_id, staff_role=context.staff_role,
            request_hash=request.request_hash, consent=context.consent,
            copy_ttl=self.copy_ttl, nonce=self._nonce(request)))
        if isinstance(result, Problem):
            return result
        if not result.granted:
            return Problem.of(result.problem or "not_entitled")
        return FetchResult(tuple(c.token for c in result.copies))

    def check(self, request: AuthenticatedRequest, body: CheckRequest
              ) -> CheckResult | Problem:
        """Whether the values match a valid certificate (:meth:`ecert.Registry.share_check`),
        or the registry's problem; each call a use record of kind ``check``."""
        context = body.context
        outcome = self._decide(request, context, body.values.get("holder_id"), [body.type],
                               lambda: self.registry.share_check(
            request.requester, body.type, body.values, purpose=context.purpose,
            case=context.case, service_item=context.service_item,
            staff_id=context.staff_id, staff_role=context.staff_role,
            request_hash=request.request_hash, consent=context.consent,
            nonce=self._nonce(request)))
        if isinstance(outcome, Problem):
            return outcome
        answer: CheckResult | Problem = outcome.answer()
        return answer

    def _decide(self, request: AuthenticatedRequest, context: CaseContext,
                holder_id: str | None, types: Sequence[str], call: Callable[[], _T]
                ) -> _T | Problem:
        """The registry's ``call``; a body it finds malformed is recorded as
        ``bad_request`` (with what the request claimed) and answered ``malformed_request``."""
        self._write(self.limiter.flush())
        try:
            return call()
        except Replayed as e:  # recorded as the shell records its own refusals
            problem = Problem.of("replay", e.message)
            self.refused(request.requester, problem, request.request_hash)
            return problem
        except InputError as e:
            if e.code not in _REQUEST_FAULTS:
                raise
            self.registry.share_refused(
                "bad_request", requester=request.requester, holder_id=holder_id,
                types=types, purpose=context.purpose, case=context.case,
                service_item=context.service_item, staff_id=context.staff_id,
                staff_role=context.staff_role, request_hash=request.request_hash)
            return Problem.of("malformed_request", e.message)

    def refused(self, requester: str | None, problem: Problem, request_hash: str) -> None:
        """Record a refusal of the HTTP layer, within the limiter's bounds."""
        code = _RECORDED_AS.get(problem.code, "bad_request")
        admitted, due = self.limiter.admit(requester, code, request_hash)
        self._write(due)
        if admitted:
            self.registry.share_refused(code, requester=requester, holder_id=None,
                                        request_hash=request_hash)

    def close(self) -> None:
        """Write the summaries of the windows still open (at shutdown)."""
        self._write(self.limiter.flush(everything=True))

    def _write(self, summaries: list[Summary]) -> None:
        for s in summaries:
            try:
                self.registry.share_refused(
                    s.code, requester=s.requester, holder_id=None,
                    service_item=SUMMARY_ITEM, case=s.case, request_hash=s.request_hash)
            except EcertError as e:  # never lose the request at hand over a summary
                log.error("could not record a summary of %d refusals: %s", s.count, e)


class RegistryNonceStore:
    """:class:`~ecert._formats.sharing.NonceStore` in the registry's database (shared by
    every worker and host); forgets the expired nonces every ``forget_every`` seconds."""

    def __init__(self, registry: Registry, *, forget_every: float = 60.0,
                 monotonic: Monotonic = time.monotonic) -> None:
        self.registry = registry
        self._every = forget_every
        self._monotonic = monotonic
        self._last = monotonic()
        self._lock = threading.Lock()

    def remember(self, requester: str, nonce: str, expires_at: int) -> bool:
        """Keep ``nonce``; False if ``requester`` used it before."""
        self.forget_when_due()
        return self.registry.remember_nonce(requester, nonce, expires_at)

    def forget_when_due(self) -> None:
        """Forget the expired nonces if the last time is ``forget_every`` seconds ago (in
        one thread; the others go on)."""
        now = self._monotonic()
        if now - self._last >= self._every and self._lock.acquire(blocking=False):
            try:
                self._last = now
                self.registry.forget_nonces()
            finally:
                self._lock.release()


class RefreshingRequesterKeys:
    """:class:`~ecert.sharing.RequesterKeys` over a verifier that is made afresh
    (``make_verifier``) when older than ``max_age`` seconds, or when a keyid is not found
    and the last refresh is ``retry_after_miss`` seconds old (a requester key published
    a moment ago). A failed refresh, or one that would go back to an older trust list
    (a rollback), keeps the current verifier. Thread-safe."""

    def __init__(self, make_verifier: Callable[[], Verifier], *, max_age: float = 60.0,
                 retry_after_miss: float = 5.0, leeway: int = DEFAULT_LEEWAY,
                 monotonic: Monotonic = time.monotonic) -> None:
        self._make = make_verifier
        self.max_age, self.retry_after_miss = max_age, retry_after_miss
        self._leeway = leeway
        self._monotonic = monotonic
        self._lock = threading.Lock()  # the verifier's caches are not thread-safe
        self._refreshing = threading.Lock()
        self._verifier = make_verifier()
        self._keys = TrustListRequesterKeys(self._verifier, leeway=leeway)
        self._loaded_at = monotonic()

    @property
    def sequence(self) -> int:
        """The sequence number of the home trust list in use."""
        return self._verifier.trust_list.sequence

    def refresh(self, *, wait: bool = True) -> bool:
        """Make a new verifier now; whether it replaced the current one. ``wait=False``:
        if another thread is refreshing already, return False at once (requests then go
        on with the current lists instead of queueing behind one download)."""
        if not self._refreshing.acquire(blocking=wait):
            return False
        try:
            self._loaded_at = self._monotonic()  # also after a failure: no retry storm
            try:
                fresh = self._make()
            except EcertError as e:
                log.warning("keeping trust list #%d: %s", self.sequence, e)
                return False
            if fresh.trust_list.sequence < self.sequence:
                log.warning("refusing trust list #%d older than #%d",
                            fresh.trust_list.sequence, self.sequence)
                return False
            with self._lock:
                self._verifier = fresh
                self._keys = TrustListRequesterKeys(fresh, leeway=self._leeway)
            return True
        finally:
            self._refreshing.release()

    def resolve(self, keyid: str, signed_at: int) -> ResolvedKey | Problem:
        """The key ``keyid`` names, valid at ``signed_at``, or the problem."""
        if self._monotonic() - self._loaded_at >= self.max_age:
            self.refresh(wait=False)
        with self._lock:
            answer = self._keys.resolve(keyid, signed_at)
        if (isinstance(answer, Problem) and answer.code == "not_authenticated"
                and self._monotonic() - self._loaded_at >= self.retry_after_miss
                and self.refresh(wait=False)):
            with self._lock:
                answer = self._keys.resolve(keyid, signed_at)
        return answer


def registry_app(registry: Registry, *, base_url: str,
                 make_verifier: Callable[[], Verifier] | None = None,
                 keys: RequesterKeys | None = None, limits: Limits | None = None,
                 copy_ttl: timedelta = timedelta(hours=24), trust_max_age: float = 60.0,
                 limiter: RefusalLimiter | None = None,
                 holder: HolderChannel | None = None) -> tuple[ASGIApp, RegistryBackend]:
    """The sharing service of ``registry`` (opened as the ``service`` operator), and its
    backend (call its ``close()`` at shutdown). Requester keys come from ``keys``, else
    from a :class:`RefreshingRequesterKeys` over ``make_verifier`` (default: a verifier
    of the registry's published trust list, fetched from its base URL, on the registry's
    clock), re-read every ``trust_max_age`` seconds."""
    from ecert.sharing.app import create_app

    clock = registry.clock
    if keys is None:
        if make_verifier is None:
            anchor = registry.anchor()

            def make_verifier() -> Verifier:
                return Verifier.from_anchor(anchor, clock=clock)

        keys = RefreshingRequesterKeys(make_verifier, max_age=trust_max_age)
    backend = RegistryBackend(registry, copy_ttl=copy_ttl, limiter=limiter)
    app = create_app(keys=keys, nonces=None, backend=backend,
                     base_url=base_url, clock=clock, limits=limits, holder=holder)
    return app, backend
