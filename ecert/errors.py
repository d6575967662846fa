"""The ecert exception tree.

Every error the library raises derives from :class:`EcertError` and carries a
stable machine-readable ``code``; third-party errors are wrapped (``raise … from e``)
so callers never need to catch SQLAlchemy, cryptography or jsonschema exceptions.

Verification itself does not raise: :meth:`ecert.Verifier.verify` returns a
:class:`ecert.VerificationResult`. :meth:`ecert.Verifier.verify_or_raise` is the
raising variant and raises :class:`VerificationFailed`.

::

    EcertError
    ├── InputError                  bad input from the caller (CLI exit code 2)
    │   ├── InvalidCertificateId    malformed id or wrong check character
    │   ├── ClaimsInvalid           claims violate the type's JSON Schema (names the field)
    │   ├── HolderIdInvalid         a holder id or code claim breaks its scheme (says why)
    │   ├── TextInvalid             a name or claim string could fake output, or is too long
    │   ├── NotFound                unknown type, agency or certificate
    │   ├── AlreadyExists           duplicate type, agency or registry
    │   ├── NotAuthorized           agency not authorized for that certificate type
    │   └── InvalidTransition       e.g. reinstating a revoked certificate
    ├── AccessError                 the acting operator may not do this (CLI exit code 4)
    │   ├── NotAuthenticated        unknown or disabled operator, wrong passphrase or key
    │   ├── PermissionDenied        authenticated, but no role permits this action here
    │   ├── LeaseHeld               another ``publish --watch`` holds the registry's lease
    │   └── Replayed                a sharing request's nonce was seen before
    ├── PendingApproval             not an error: the change awaits a second operator
    ├── KeyStoreError               missing key file or wrong passphrase
    ├── StorageError                database unreachable or registry not initialised
    │   └── Conflict                a concurrent change won; try again
    ├── FormatError                 a signed document or encoded value is malformed
    ├── RecordTampered              a stored record does not verify (CLI exit code 1)
    ├── CertificateNotValid         a QR or card of a revoked, suspended, expired or
    │                               not-yet-valid certificate was refused (CLI exit code 1)
    ├── TrustListError              a trust list or anchor cannot be accepted (``code`` says why)
    ├── PublishError                the bundle could not be written
    ├── VerificationFailed          raised by ``verify_or_raise``; carries the result
    └── ExtraMissing                an optional extra is not installed (also an ImportError),
                                    e.g. ``ecert.Registry`` in a verifier-only install
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ecert.verify import VerificationResult

__all__ = [
    "AccessError",
    "AlreadyExists",
    "CertificateNotValid",
    "ClaimsInvalid",
    "Conflict",
    "EcertError",
    "ExtraMissing",
    "FormatError",
    "HolderIdInvalid",
    "InputError",
    "InvalidCertificateId",
    "InvalidTransition",
    "KeyStoreError",
    "LeaseHeld",
    "NotAuthenticated",
    "NotAuthorized",
    "NotFound",
    "PendingApproval",
    "PermissionDenied",
    "PublishError",
    "RecordTampered",
    "Replayed",
    "StorageError",
    "TextInvalid",
    "TrustListError",
    "VerificationFailed",
]


class EcertError(Exception):
    """Base class of every error raised by ecert."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InputError(EcertError):
    """The caller supplied input that cannot be used."""

    code = "input_error"


class InvalidCertificateId(InputError):
    """A certificate identifier is malformed or its check character is wrong."""

    code = "invalid_certificate_id"


class ClaimsInvalid(InputError):
    """Claims do not satisfy the certificate type's JSON Schema."""

    code = "claims_invalid"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        #: JSON path of the offending field, e.g. ``$.claims.uscc``.
        self.field = field


class HolderIdInvalid(InputError):
    """A holder id (or a claim holding such a code) breaks its declared scheme.

    ``code`` says why: ``holder_id_empty``, ``holder_id_length``, ``holder_id_characters``,
    ``holder_id_region``, ``holder_id_birth_date``, ``holder_id_check`` or
    ``holder_id_pattern`` (see :mod:`ecert.holder_ids`).
    """

    code = "holder_id_invalid"


class TextInvalid(InputError):
    """A text field holds a character that could fake output, or is too long.

    ``code``: ``text_control`` (control, line or paragraph separator),
    ``text_bidi`` (bidirectional override or isolate), ``text_format`` (another invisible
    format character), ``text_noncharacter`` (surrogate or noncharacter),
    ``text_too_long``, ``text_empty``, ``text_invalid`` (not text), ``claims_too_deep``.
    """

    code = "text_invalid"


class NotFound(InputError):
    """A type, agency, key or certificate does not exist."""

    code = "not_found"


class AlreadyExists(InputError):
    """The object to create exists already."""

    code = "already_exists"


class NotAuthorized(InputError):
    """The agency is not authorized to issue this certificate type."""

    code = "not_authorized"


class InvalidTransition(InputError):
    """The requested status change is not allowed from the current status."""

    code = "invalid_transition"


class AccessError(EcertError):
    """The acting operator may not make this change (CLI exit code 4)."""

    code = "access_denied"


class NotAuthenticated(AccessError):
    """No operator, an unknown or disabled one, or one who could not prove who they are."""

    code = "not_authenticated"


class PermissionDenied(AccessError):
    """The operator is who they say, but no role of theirs permits this action here."""

    code = "permission_denied"


class LeaseHeld(AccessError):
    """Another instance holds the registry's publication lease (``ecert publish --watch``).

    ``lease`` is the :class:`ecert.models.Lease` found (who holds it, where, until when).
    """

    code = "lease_held"

    def __init__(self, message: str, *, lease: Any = None) -> None:
        super().__init__(message)
        #: The :class:`ecert.models.Lease` held by the other instance.
        self.lease = lease


class Replayed(AccessError):
    """A signed request's nonce was seen before: the request is refused (the sharing
    service answers ``replay`` and records it as it records its other refusals)."""

    code = "replay"


class PendingApproval(EcertError):
    """Nothing failed: the change was recorded as a request that another operator must
    approve (four-eyes). ``request`` describes it; nothing else changed yet."""

    code = "pending_approval"

    def __init__(self, message: str, *, request: Any) -> None:
        super().__init__(message)
        #: The :class:`ecert.models.ApprovalRequest` now waiting.
        self.request = request


class KeyStoreError(EcertError):
    """A private key could not be created, found or decrypted."""

    code = "keystore_error"


class StorageError(EcertError):
    """The registry database could not be used."""

    code = "storage_error"


class Conflict(StorageError):
    """A concurrent change got there first; nothing was changed: try again."""

    code = "conflict"


class FormatError(EcertError):
    """A signed document or encoded value does not follow the ecert wire format."""

    code = "format_error"


class RecordTampered(EcertError):
    """A record in the registry's storage does not verify (changed out of band)."""

    code = "record_tampered"


class CertificateNotValid(EcertError):
    """A QR code or card was refused: the certificate is not valid now.

    ``standing`` says why (``revoked``, ``suspended``, ``expired`` or ``not_yet_valid``);
    pass ``allow_invalid=True`` to produce it marked as such instead.
    """

    code = "certificate_not_valid"

    def __init__(self, message: str, standing: str) -> None:
        super().__init__(message)
        self.standing = standing


class TrustListError(EcertError):
    """A trust list or trust anchor could not be accepted; ``code`` says why."""

    code = "trust_list_invalid"


class PublishError(EcertError):
    """The verification bundle could not be written."""

    code = "publish_failed"


class VerificationFailed(EcertError):
    """A token did not verify (raised only by :meth:`ecert.Verifier.verify_or_raise`)."""

    code = "verification_failed"

    def __init__(self, result: VerificationResult) -> None:
        codes = ", ".join(result.errors) or result.status
        super().__init__(f"certificate is {result.status}: {codes}")
        self.result = result


class ExtraMissing(EcertError, ImportError):
    """What was asked for needs an optional extra of ecert that is not installed.

    A verifier-only install (``pip install ecert``) verifies tokens and QR text; the
    registry (``ecert.Registry``, issuing, QR codes and cards) needs ``ecert[registry]``
    and reading QR codes from images needs ``ecert[image]``. ``extra`` names the extra
    to install, ``name`` the module found missing. Also an :class:`ImportError`, so code
    that treats a missing optional dependency as such keeps working.
    """

    code = "extra_missing"

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(f"this needs the {extra!r} extra of ecert (module {module!r} is not "
                         f"installed): pip install 'ecert[{extra}]'")
        #: The extra to install: ``registry`` or ``image``.
        self.extra = extra
        self.name = module
