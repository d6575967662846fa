"""The sharing service (step 6): other agencies' systems fetch certificates over HTTP.

This package's import needs no web framework: the protocols the service is built from and
the requesting side (:mod:`ecert.sharing.client`, stdlib only) are here. The ASGI
application is :func:`ecert.sharing.app.create_app` and the uvicorn wiring
:mod:`ecert.sharing.server`, both in the ``server`` extra (``pip install 'ecert[server]'``).
"""

from __future__ import annotations

from ecert._formats.sharing import (
    FRESHNESS_WINDOW,
    PROBLEM_CODES,
    CaseContext,
    CheckRequest,
    MemoryNonceStore,
    NonceStore,
    Problem,
    ShareRequest,
    UseKind,
    requester_keyid,
)
from ecert.sharing._keys import TrustListRequesterKeys
from ecert.sharing._service import (
    AuthenticatedRequest,
    CheckResult,
    FetchResult,
    RequesterKeys,
    ResolvedKey,
    SharingBackend,
)

__all__ = [
    "FRESHNESS_WINDOW",
    "PROBLEM_CODES",
    "AuthenticatedRequest",
    "CaseContext",
    "CheckRequest",
    "CheckResult",
    "FetchResult",
    "MemoryNonceStore",
    "NonceStore",
    "Problem",
    "RequesterKeys",
    "ResolvedKey",
    "ShareRequest",
    "SharingBackend",
    "TrustListRequesterKeys",
    "UseKind",
    "requester_keyid",
]
