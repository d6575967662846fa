"""Issuing the reference sample certificates."""

from __future__ import annotations

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
