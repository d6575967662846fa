"""ecert: issue, sign, verify, suspend and revoke electronic licences and certificates.

Issuing side::

    registry = ecert.Registry.open(home, passphrase=...)
    cert = registry.issue("cn.business-licence", "gd-amr", holder_id=..., holder_name=...,
                          claims={...})
    registry.publish("public/")

Verifying side (no database)::

    verifier = ecert.Verifier.from_bundle("public/")
    result = verifier.verify(cert.token)
    if result: ...
"""

from ecert.errors import (
    AlreadyExists,
    ClaimsInvalid,
    EcertError,
    FormatError,
    InputError,
    InvalidCertificateId,
    InvalidTransition,
    KeyStoreError,
    NotAuthorized,
    NotFound,
    PublishError,
    StorageError,
    TrustListError,
    VerificationFailed,
)
from ecert.identifiers import CertificateId
from ecert.keys import FileKeyStore, KeyProvider, LocalSigner, Signer
from ecert.models import (
    Agency,
    Certificate,
    CertificateStatus,
    CertificateType,
    KeyInfo,
    KeyRole,
    KeyStatus,
    Region,
    RevocationReason,
)
from ecert.qr import QrTooLarge
from ecert.registry import Event, PublishReport, Registry
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
    "Agency",
    "Agreement",
    "AlreadyExists",
    "Certificate",
    "CertificateId",
    "CertificateStatus",
    "CertificateType",
    "ClaimsInvalid",
    "EcertError",
    "ErrorCode",
    "Event",
    "FileKeyStore",
    "FormatError",
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
    "NotAuthorized",
    "NotFound",
    "PublishError",
    "PublishReport",
    "QrTooLarge",
    "Region",
    "Registry",
    "RevocationReason",
    "Signer",
    "StorageError",
    "TrustAnchor",
    "TrustListError",
    "VerificationFailed",
    "VerificationLimits",
    "VerificationResult",
    "VerificationStatus",
    "Verifier",
    "__version__",
]
