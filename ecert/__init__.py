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
"""

from ecert._clock import Clock
from ecert.errors import (
    AccessError,
    AlreadyExists,
    ClaimsInvalid,
    Conflict,
    EcertError,
    FormatError,
    HolderIdInvalid,
    InputError,
    InvalidCertificateId,
    InvalidTransition,
    KeyStoreError,
    NotAuthenticated,
    NotAuthorized,
    NotFound,
    PendingApproval,
    PermissionDenied,
    PublishError,
    RecordTampered,
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
    LogEntry,
    Operator,
    OperatorGrant,
    Region,
    RequestStatus,
    RevocationReason,
    Role,
)
from ecert.qr import QrTooLarge
from ecert.registry import (
    AuditReport,
    History,
    OperatorCredential,
    PublishReport,
    Registry,
)
from ecert.trust import Agreement, TrustAnchor
from ecert.verify import (
    ErrorCode,
    Issuer,
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
    "Certificate",
    "CertificateId",
    "CertificateStatus",
    "CertificateType",
    "ClaimsInvalid",
    "Clock",
    "Conflict",
    "EcertError",
    "ErrorCode",
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
    "LocalSigner",
    "LogEntry",
    "NotAuthenticated",
    "NotAuthorized",
    "NotFound",
    "Operator",
    "OperatorCredential",
    "OperatorGrant",
    "PendingApproval",
    "PermissionDenied",
    "PublishError",
    "PublishReport",
    "QrTooLarge",
    "RecordTampered",
    "Region",
    "Registry",
    "RequestStatus",
    "RevocationReason",
    "Role",
    "Signer",
    "StorageError",
    "TextInvalid",
    "TrustAnchor",
    "TrustListError",
    "VerificationFailed",
    "VerificationLimits",
    "VerificationResult",
    "VerificationStatus",
    "Verifier",
    "__version__",
]
