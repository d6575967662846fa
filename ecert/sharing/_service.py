"""What the sharing service's HTTP shell needs from the rest of ecert, as protocols.

The shell (:mod:`ecert.sharing.app`) authenticates requests and enforces the transport's
limits; everything the registry decides (entitlements, consent, use records, making the
copies) is behind :class:`SharingBackend`. Where requester keys come from is
:class:`RequesterKeys` (:class:`TrustListRequesterKeys` in production).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ecert._formats.jose import PublicKey
from ecert._formats.sharing import CheckRequest, Problem, ShareRequest
from ecert._formats.trustlist import TrustedKey


@dataclass(frozen=True, slots=True)
class ResolvedKey:
    """A requester key found in a trust list the service trusts."""

    requester: str  #: ``REGION/agency-code``
    key: PublicKey
    trusted: TrustedKey  #: its entry (validity window, status)


class RequesterKeys(Protocol):
    """Finds the requester key a ``keyid`` names, valid at ``signed_at``.

    Returns the key, or the problem to answer: ``region_not_recognized`` when the keyid
    names a region the service does not recognize, ``not_authenticated`` otherwise (no
    such agency or key, a key not valid then).
    """

    def resolve(self, keyid: str, signed_at: int) -> ResolvedKey | Problem:
        """The key ``keyid`` names, or why not."""
        ...


@dataclass(frozen=True, slots=True)
class AuthenticatedRequest:
    """A request whose signature verified, fresh, with a nonce not seen before."""

    requester: str  #: ``REGION/agency-code``, from the key's trust list entry
    keyid: str
    created: int  #: the signature's ``created``
    received_at: int  #: the service's clock when the request was authenticated
    nonce: str
    #: SHA-256 (hex) of the Signature-Input and Signature fields and the body, each line
    #: as received (``input \n signature \n body``): names this request in a use record.
    request_hash: str
    #: When the nonce may be forgotten (epoch seconds): the request is stale by then.
    nonce_expires_at: int = 0


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a granted fetch returns: compact ``ecert-copy+jwt`` tokens, possibly none
    (a holder with no matching certificate gets an empty list, not an error)."""

    copies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What a check (核验) answers: whether the values match a valid certificate."""

    match: bool


class SharingBackend(Protocol):
    """The registry side of the service (entitlements, consent, use records, copies).

    Each call decides one authenticated request and returns its answer or the problem to
    answer with (``region_not_recognized`` … ``too_many_requests``, checked in the order of
    :data:`ecert._formats.sharing.PROBLEM_CODES`), and records the use, granted or not.

    A backend whose ``remembers_nonces`` attribute is True keeps each request's nonce
    itself (in the same transaction as its decision) and answers ``replay`` for one seen
    before; the shell is then made without a nonce store. Otherwise the shell's nonce
    store has kept the nonce before the backend is called.
    """

    def fetch(self, request: AuthenticatedRequest, body: ShareRequest
              ) -> FetchResult | Problem:
        """Answer a fetch request."""
        ...

    def check(self, request: AuthenticatedRequest, body: CheckRequest
              ) -> CheckResult | Problem:
        """Answer a check (核验) request."""
        ...

    def refused(self, requester: str | None, problem: Problem, request_hash: str) -> None:
        """Record a request refused before it reached :meth:`fetch` or :meth:`check`
        (not authenticated, replayed, malformed); ``requester`` when its key was found."""
        ...


#: A clock in POSIX seconds (the service reads it once a request).
SecondsClock = Callable[[], int]
