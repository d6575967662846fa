"""ecert: issue, sign, verify, suspend and revoke electronic licences and certificates.

Issuing side (every change is made by an authenticated operator and logged)::

    me = ecert.OperatorCredential("li.ming", passphrase=...)
    registry = ecert.Registry.open(home, operator=me, passphrase=...)
    cert = registry.issue("cn.business-licence", "gd-amr", holder_id=..., holder_name=...,
                          claims={...})
    registry.publish("public/")

Verifying side (no database)::

    verifier = ecert.Verifier.from_bundle("public/")
    result = verifier.verify(cert.token)
    if result: ...

Importing ecert loads only what verifying needs: the registry's names (``Registry``,
``OperatorCredential`` …) are imported on first use (PEP 562), and need the ``registry``
extra (``pip install 'ecert[registry]'``); without it they raise
:class:`ExtraMissing`.
"""

import typing as _typing

from ecert._clock import Clock
from ecert._pagination import Page
from ecert.batch import BatchRow, ExportedRow, RejectCode, RowOutcome, RowStatus
from ecert.errors import (
    AccessError,
    AlreadyExists,
    CertificateNotValid,
    ClaimsInvalid,
    Conflict,
    EcertError,
    ExtraMissing,
    FormatError,
    HolderIdInvalid,
    InputError,
    InvalidCertificateId,
    InvalidTransition,
    KeyStoreError,
    LeaseHeld,
    NotAuthenticated,
    NotAuthorized,
    NotFound,
    PendingApproval,
    PermissionDenied,
    PublishError,
    RecordTampered,
    Replayed,
    StorageError,
    TextInvalid,
    TrustListError,
    VerificationFailed,
)
from ecert.identifiers import CertificateId
from ecert.keys import FileKeyStore, KeyProvider, LocalSigner, Signer
from ecert.models import (
    Agency,
    ApprovalRequest,
    Certificate,
    CertificateStatus,
    CertificateType,
    KeyInfo,
    KeyRole,
    KeyStatus,
    Lease,
    LogEntry,
    Operator,
    OperatorGrant,
    Region,
    RequestStatus,
    RevocationReason,
    Role,
    TypeWindow,
)
from ecert.qr import QrTooLarge
from ecert.trust import Agreement, TrustAnchor
from ecert.verify import (
    CopyInfo,
    ErrorCode,
    Issuer,
    TokenKind,
    VerificationLimits,
    VerificationResult,
    VerificationStatus,
    Verifier,
)

__version__ = "0.1.0"

__all__ = [
    "AccessError",
    "Agency",
    "Agreement",
    "AlreadyExists",
    "ApprovalRequest",
    "AuditReport",
    "BatchRow",
    "CatalogImport",
    "Certificate",
    "CertificateId",
    "CertificateNotValid",
    "CertificateStatus",
    "CertificateType",
    "ClaimsInvalid",
    "Clock",
    "Conflict",
    "CopyInfo",
    "EcertError",
    "ErrorCode",
    "ExportReport",
    "ExportedRow",
    "ExtraMissing",
    "FileKeyStore",
    "FormatError",
    "History",
    "HolderIdInvalid",
    "InputError",
    "InvalidCertificateId",
    "InvalidTransition",
    "Issuer",
    "KeyInfo",
    "KeyProvider",
    "KeyRole",
    "KeyStatus",
    "KeyStoreError",
    "Lease",
    "LeaseHeld",
    "LocalSigner",
    "LogEntry",
    "NotAuthenticated",
    "NotAuthorized",
    "NotFound",
    "Operator",
    "OperatorCredential",
    "OperatorGrant",
    "Page",
    "PendingApproval",
    "PermissionDenied",
    "PublishError",
    "PublishReport",
    "QrTooLarge",
    "RecordTampered",
    "Region",
    "Registry",
    "RejectCode",
    "Replayed",
    "RequestStatus",
    "RevocationReason",
    "Role",
    "RowOutcome",
    "RowStatus",
    "Signer",
    "StorageError",
    "TextInvalid",
    "TokenKind",
    "TrustAnchor",
    "TrustListError",
    "TypeWindow",
    "VerificationFailed",
    "VerificationLimits",
    "VerificationResult",
    "VerificationStatus",
    "Verifier",
    "WatchCycle",
    "WatchOutcome",
    "__version__",
]


#: Names imported on first use, with their module: the registry needs SQLAlchemy, Alembic
#: and jsonschema (the "registry" extra), which a verifier-only install has not, and which
#: verifying need not load.
_LAZY = {
    name: "ecert.registry"
    for name in ("AuditReport", "CatalogImport", "ExportReport", "History", "OperatorCredential",
                 "PublishReport", "Registry", "WatchCycle", "WatchOutcome")
}

if _typing.TYPE_CHECKING:  # type checkers and IDEs see ordinary imports
    from ecert.registry import (
        AuditReport,
        CatalogImport,
        ExportReport,
        History,
        OperatorCredential,
        PublishReport,
        Registry,
        WatchCycle,
        WatchOutcome,
    )
else:  # hidden from type checkers, which would let any ecert.<typo> through it
    def __getattr__(name: str) -> object:
        """Import a registry name on first use (PEP 562); ExtraMissing without the extra."""
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module 'ecert' has no attribute {name!r}")
        import importlib

        from ecert._extras import needs

        with needs("registry"):
            value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # from now on an ordinary attribute
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_LAZY})
