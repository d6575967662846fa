"""One case through the Python verifier, reported in the shape of the case's ``expected``.

The verifier is built as ``ecert verify`` builds one, from the case's anchor, over the
bundles the case serves (any other URL is unavailable, as a 404 would be), with the
case's clock, and a fresh cache directory whose trust state holds the case's prior
state. A home trust list that cannot be accepted is reported as ``ecert verify --json``
reports it: status ``untrusted`` and the trust list code.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ecert._sources import BundleDirectory, DocumentSource, RoutedSource
from ecert._state import STATE_FILE, TrustState
from ecert.errors import TrustListError
from ecert.trust import TrustAnchor
from ecert.verify import VerificationLimits, VerificationResult, Verifier


class _Unavailable:
    """Every document not in a served bundle: not found."""

    def fetch(self, uri: str, *, max_bytes: int) -> bytes:
        raise FileNotFoundError(f"{uri} is in no bundle this case serves")

    def verified(self, uri: str, data: bytes) -> None:
        """Nothing is kept."""


def source(directory: Path, index: Mapping[str, Any], case: Mapping[str, Any]
           ) -> DocumentSource:
    """The documents a case serves: each listed bundle standing in for its base URL."""
    routes: list[tuple[str, DocumentSource]] = []
    for bundle_id in case["bundles"]:
        bundle = index["bundles"][bundle_id]
        routes.append((bundle["base_url"],
                       BundleDirectory(directory / bundle["path"], bundle["base_url"])))
    return RoutedSource(routes, _Unavailable())


def verify(directory: Path, index: Mapping[str, Any], case: Mapping[str, Any], text: str
           ) -> dict[str, Any]:
    """Verify ``text`` (the case's input, or what its image decoded to) as the case says;
    return the outcome in the shape of ``expected``."""
    now = case["now"]

    def clock() -> datetime:
        return datetime.fromtimestamp(now, UTC)

    limits = VerificationLimits(**index["limits"])
    anchor = TrustAnchor.load(directory / case["anchor"])
    documents = source(directory, index, case)
    seen: Mapping[str, int] = case["prior_state"]["trust_list_sequences"]
    options = case["options"]
    with tempfile.TemporaryDirectory(prefix="ecert-vectors-") as cache:
        state = TrustState(Path(cache) / STATE_FILE, anchor)
        if anchor.region in seen:
            state.record(anchor, anchor, seen[anchor.region])
        try:
            verifier = Verifier.from_anchor(anchor, source=documents, cache_dir=cache,
                                            clock=clock, limits=limits)
        except TrustListError as e:
            return _refused_trust(e.code)
        for region, sequence in seen.items():
            agreement = verifier.trust_list.agreement_with(region)
            if region != anchor.region and agreement is not None:
                # Remembered under the pin of our agreement, as a verifier that had
                # accepted that region's list before would have it.
                pinned = TrustAnchor(region, agreement.name, dict(agreement.root_jwk),
                                     agreement.trust_list_url)
                state.record(pinned, pinned, sequence)
        result = verifier.verify(text, audience=options["audience"],
                                 purpose=options["purpose"])
        inclusion = None
        if options["require_inclusion"]:
            from ecert.inclusion import check_inclusion

            found = check_inclusion(verifier, text, leaf_index=options["leaf_index"],
                                    result=result)
            inclusion = {"included": found.included, "errors": list(found.errors)}
    return outcome(result, case["input"].get("full_token"), inclusion)


def _refused_trust(code: str) -> dict[str, Any]:
    return {"valid": False, "status": "untrusted", "errors": [code], "kind": None,
            "issuer": None, "certificate_id": None, "local_type": None, "agreement": None,
            "qr": None, "copy": None, "inclusion": None}


def outcome(result: VerificationResult, full_token: str | None,
            inclusion: Mapping[str, Any] | None) -> dict[str, Any]:
    """A verification result in the shape of a case's ``expected``."""
    issuer = result.issuer
    certificate, copy = result.certificate, result.copy
    qr = None
    if result.qr and issuer is not None:
        qr = {"claims_present": list(result.claims_present),
              "digest_bound": result.digest_bound,
              "matches_full_token": None if full_token is None
              else result.qr_matches(full_token)}
    return {
        "valid": result.valid and (inclusion is None or bool(inclusion["included"])),
        "status": result.status.value,
        "errors": [e.value for e in result.errors],
        "kind": None if result.kind is None else result.kind.value,
        "issuer": None if issuer is None else {"region": issuer.region,
                                               "agency": issuer.agency_code,
                                               "kid": issuer.kid},
        "certificate_id": certificate.id if certificate is not None
        else copy.copy_of if copy is not None else None,
        "local_type": result.local_type,
        "agreement": None if result.agreement is None else result.agreement.region,
        "qr": qr,
        "copy": None if copy is None else {"audience": copy.audience,
                                           "purpose": copy.purpose, "case": copy.case},
        "inclusion": None if inclusion is None else dict(inclusion),
    }
