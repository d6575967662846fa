"""The pipeline: read a token, decode it by its format, apply the policies, judge it.

:func:`run` is pure given a :class:`~ecert._verification.view.TrustView` and ``now``:
every document it needs it asks the view for. It raises
:class:`~ecert._verification.vocabulary.Failure` for the first check that refuses the
token (with ``kind`` set once the format is known) and returns an :class:`Outcome`
otherwise, valid or with lifecycle findings.
"""

from __future__ import annotations

from typing import NamedTuple

from ecert._formats import qr as _qr
from ecert._formats.copy import COPY_TYP
from ecert._formats.jose import check_header, parse_compact
from ecert._verification import decoders
from ecert._verification.decoders import CertificateDecoder, Checked, CopyDecoder
from ecert._verification.policies import CopyUse, PolicySet
from ecert._verification.view import TrustView
from ecert._verification.vocabulary import (
    ErrorCode,
    Failure,
    VerificationLimits,
    VerificationStatus,
    invalid,
)
from ecert.errors import FormatError

_FORMAT_CODES = {c.value: c for c in ErrorCode}


class Outcome(NamedTuple):
    """A token that passed every check but the lifecycle, and its lifecycle verdict."""

    token: Checked
    status: VerificationStatus
    errors: tuple[ErrorCode, ...]
    messages: tuple[str, ...]
    status_value: int  #: the (original) certificate's entry in its status list
    #: The type the token counts as here: its own at home, the agreement's mapping of it
    #: for a recognized region (None for a copy of a type the agreement does not map).
    local_type: str | None
    #: Whether the token came as QR text (``EC1:``): a QR token, or a copy's QR form.
    from_qr: bool = False


def run(token: str | bytes, view: TrustView, limits: VerificationLimits, now: int,
        policies: PolicySet, use: CopyUse) -> Outcome:
    """Verify ``token`` against ``view`` at ``now``; raises a failure if refused."""
    if isinstance(token, bytes | bytearray):
        if len(token) > limits.max_token_bytes:
            raise invalid(ErrorCode.TOO_LARGE, "token too large")
        token = bytes(token).decode("ascii", "replace")
    # 1-3. size, structure and header policy (QR text: unwrapped to its exact JWS first)
    decoder: CertificateDecoder | CopyDecoder = decoders.CERTIFICATE
    from_qr = False
    try:
        if token[:1].isspace() or token[-1:].isspace():
            token = token.strip()
        if _qr.is_qr_text(token):
            token, decoder, from_qr = decoders.QR.unwrap(token, view, now), decoders.QR, True
        parsed = parse_compact(token, max_bytes=limits.max_token_bytes)
        if parsed.header.get("typ") == COPY_TYP:
            # A copy, as its token or in its QR form: its own typ, its own keys, its own
            # checks, the same whichever way it came.
            decoder = decoders.COPY
        kid = check_header(parsed.header, decoder.typ)
    except FormatError as e:
        raise invalid(_FORMAT_CODES.get(e.code, ErrorCode.MALFORMED), e.message) from e
    try:
        # 4-8. key, signature, claims bound to the issuer: the format's decoder
        checked = decoder.decode(parsed, kid, token, view, now)
        # 8f-10 (C8g-C11). the policies, in order; the use is the caller's, per call
        if checked.copy is None:
            for policy in policies.certificate:
                policy.check(checked, now)
        else:
            for policy in policies.copy:
                policy.check(checked, now)
            use.check(checked, now)
        # 11-12. the (original) certificate's status, then the lifecycle
        status_list = view.status_list(checked.region.code, checked.status_list_uri, now)
        if checked.status_index >= status_list.status_list.size:
            raise invalid(ErrorCode.STATUS_INDEX_OUT_OF_RANGE,
                          "status index is outside the status list")
        status_value = status_list.status_list[checked.status_index]
        status, errors, messages = policies.lifecycle.judge(checked, status_value, now)
    except Failure as f:
        f.kind = decoder.kind
        raise
    agreement = checked.agreement
    local_type = checked.type_code if agreement is None else agreement.types.get(
        checked.type_code)
    return Outcome(checked, status, errors, messages, status_value, local_type, from_qr)
