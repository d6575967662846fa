"""Issuing the reference sample certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ecert
from ecert import _samples


def issue_business_licence(registry: ecert.Registry, **overrides: Any) -> ecert.Certificate:
    """Issue the reference GD business licence."""
    claims = _samples.claims("business-licence-gd")
    args: dict[str, Any] = {
        "holder_id": claims["uscc"], "holder_name": claims["name"], "claims": claims,
    }
    args.update(overrides)
    return registry.issue("cn.business-licence", "gd-amr", **args)


def write_card_of(registry: ecert.Registry, cert: ecert.Certificate, path: Path,
                  **options: Any) -> Any:
    """``ecert.card.write_card`` for a registry's certificate, as ``ecert card`` does."""
    from ecert import card

    allow_invalid = bool(options.get("allow_invalid"))
    token, state = registry.sign_qr(cert.id, allow_invalid=allow_invalid)
    options.setdefault("verify_url", registry.region.base_url + "/verify/")
    return card.write_card(cert, registry.get_type(cert.type_code),
                           registry.get_agency(cert.agency_code), token, path, state=state,
                           **options)
