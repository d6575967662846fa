"""Policies: small named checks over a :class:`~ecert._verification.decoders.Checked` token.

Each is an object with ``check(token, now)`` that raises a
:class:`~ecert._verification.vocabulary.Failure` or returns; a :class:`PolicySet` says
which apply to which kind of token, in order. :class:`CopyUse` (audience and purpose) is
given per call; the others are fixed by the verifier's limits. :class:`Lifecycle` is the
last step: it collects every lifecycle finding instead of stopping at the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ecert._formats.statuslist import INVALID, SUSPENDED, VALID
from ecert._verification.decoders import Checked
from ecert._verification.vocabulary import (
    ErrorCode,
    TokenKind,
    VerificationStatus,
    invalid,
    untrusted,
)


class Policy(Protocol):
    """One named check of a decoded, signature-checked token."""

    def check(self, token: Checked, now: int) -> None:
        """Return if the token passes; raise a failure if not."""
        ...


@dataclass(frozen=True, slots=True)
class TypeRecognition:
    """A certificate of a recognized region counts only as a type the agreement maps
    (format step 8f). Copies are not judged by it: what a region releases, and to whom,
    is its entitlements' decision; the mapping only names their local type."""

    home: str  #: the home region's code, for the message

    def check(self, token: Checked, now: int) -> None:
        """Refuse a foreign certificate whose type the agreement does not map."""
        agreement = token.agreement
        if agreement is not None and token.type_code not in agreement.types:
            raise untrusted(ErrorCode.TYPE_NOT_RECOGNIZED,
                            f"{self.home} does not recognize {token.type_code} of "
                            f"{agreement.region}")


@dataclass(frozen=True, slots=True)
class KeyValidity:
    """The signing key was valid when it signed, and not compromised then (steps 9a-9b)."""

    leeway: int

    def check(self, token: Checked, now: int) -> None:
        """Judge the key at the token's signing time."""
        refused = token.key.refuses(token.signed_at, self.leeway)
        if refused == "compromised":
            raise untrusted(ErrorCode.KEY_COMPROMISED,
                            "signed with a key compromised at or before its issue time")
        if refused is not None:
            raise untrusted(ErrorCode.KEY_NOT_VALID_AT_IAT,
                            "the key was not valid when the token says it was issued")


@dataclass(frozen=True, slots=True)
class NotIssuedInFuture:
    """Neither issued nor signed later than now, beyond the leeway (step 10)."""

    leeway: int

    def check(self, token: Checked, now: int) -> None:
        """Refuse a token from the future."""
        if max(token.issued_at, token.signed_at) > now + self.leeway:
            raise invalid(ErrorCode.ISSUED_IN_FUTURE, "issued in the future")


@dataclass(frozen=True, slots=True)
class CopyUse:
    """The use a copy is verified for (step C11): its requester, always, and its purpose
    when the caller states one. A copy is refused to anyone else; certificates and QR
    codes, bearer documents, are not judged by it."""

    audience: str | None = None
    purpose: str | None = None

    def check(self, token: Checked, now: int) -> None:
        """Refuse a copy without an audience, or made for another requester or purpose."""
        copy = token.copy
        if copy is None:
            return
        if self.audience is None:
            raise untrusted(ErrorCode.AUDIENCE_REQUIRED,
                            "a copy is verified only for the requester it was made for: "
                            "give the audience")
        if copy.aud != self.audience:
            raise untrusted(ErrorCode.WRONG_AUDIENCE,
                            f"the copy was made for {copy.aud}, not {self.audience}")
        if self.purpose is not None and copy.purpose != self.purpose:
            raise untrusted(ErrorCode.WRONG_PURPOSE,
                            f"the copy was made for the purpose {copy.purpose!r}, "
                            f"not {self.purpose!r}")


#: Gravest first: the status of a token with several lifecycle findings.
LIFECYCLE_PRIORITY = (
    (ErrorCode.REVOKED, VerificationStatus.REVOKED),
    (ErrorCode.SUSPENDED, VerificationStatus.SUSPENDED),
    (ErrorCode.EXPIRED, VerificationStatus.EXPIRED),
    (ErrorCode.COPY_EXPIRED, VerificationStatus.EXPIRED),
    (ErrorCode.NOT_YET_VALID, VerificationStatus.NOT_YET_VALID),
)


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Status value and times (step 12, C13): every finding collected, the gravest wins."""

    leeway: int

    def judge(self, token: Checked, status_value: int, now: int
              ) -> tuple[VerificationStatus, tuple[ErrorCode, ...], tuple[str, ...]]:
        """The verdict, the lifecycle error codes and their messages."""
        leeway = self.leeway
        whose = "the original is " if token.kind is TokenKind.COPY else ""
        errors: list[ErrorCode] = []
        messages: list[str] = []
        if status_value == INVALID:
            errors.append(ErrorCode.REVOKED)
            messages.append(f"{whose}revoked by its issuer")
        elif status_value == SUSPENDED:
            errors.append(ErrorCode.SUSPENDED)
            messages.append(f"{whose}suspended by its issuer")
        elif status_value != VALID:
            raise invalid(ErrorCode.STATUS_UNKNOWN_VALUE, f"unknown status value {status_value}")
        if token.valid_until is not None and now >= token.valid_until + leeway:
            errors.append(ErrorCode.EXPIRED)
            messages.append(f"{whose}expired")
        if token.expires_at is not None and now >= token.expires_at + leeway:
            errors.append(ErrorCode.COPY_EXPIRED)
            messages.append("the copy has expired")
        if token.valid_from > now + leeway:
            errors.append(ErrorCode.NOT_YET_VALID)
            messages.append(f"{whose}not yet valid")
        if not errors:
            return VerificationStatus.VALID, (), ()
        status = VerificationStatus.VALID
        for code, verdict in LIFECYCLE_PRIORITY:
            if code in errors:
                status = verdict
                break
        return status, tuple(errors), tuple(messages)


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The fixed policies of a verifier, by kind of token, in the order applied."""

    certificate: tuple[Policy, ...]
    copy: tuple[Policy, ...]
    lifecycle: Lifecycle

    @classmethod
    def standard(cls, home: str, leeway: int) -> PolicySet:
        """ecert's rules (format sections 10.2 and 16.2) for a verifier of region
        ``home`` with a clock leeway."""
        keys, future = KeyValidity(leeway), NotIssuedInFuture(leeway)
        return cls((TypeRecognition(home), keys, future), (keys, future), Lifecycle(leeway))
