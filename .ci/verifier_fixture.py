"""Write what the verifier-only check of .ci/run verifies: run by the full venv.

A throw-away GD sample registry on the real clock issues two business licences, revokes
one and publishes its bundle to OUT/bundle, to be served at BASE_URL (the anchor,
OUT/bundle/anchor.json, says the trust list is there); OUT/valid.token, OUT/valid.qr (the
QR text of the valid one) and OUT/revoked.token are what a verifier is handed.

    python .ci/verifier_fixture.py OUT BASE_URL
"""

from __future__ import annotations

import sys
from pathlib import Path

import ecert
from ecert import _samples
from ecert import qr as ecert_qr

_PASSPHRASE = "ci only: throw-away registry"  # noqa: S105 - deleted with the CI run


def main(out: Path, base_url: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sample = _samples.region("GD")
    admin = ecert.OperatorCredential("ci-admin", passphrase=_PASSPHRASE)
    with ecert.Registry.init(out / "home", region="GD", name=sample["name"],
                             base_url=base_url, admin=admin,
                             passphrase=_PASSPHRASE) as registry:
        _samples.populate(registry)
        claims = _samples.claims("business-licence-gd")
        valid = registry.issue("cn.business-licence", "gd-amr", holder_id=claims["uscc"],
                               holder_name=claims["name"], claims=claims)
        revoked = registry.issue("cn.business-licence", "gd-amr", holder_id=claims["uscc"],
                                 holder_name=claims["name"], claims=claims)
        registry.revoke(revoked.id, ecert.RevocationReason.PRIVILEGE_WITHDRAWN)
        qr = ecert_qr.qr_text(registry.qr_token(valid.id))
        registry.publish(out / "bundle")
    (out / "valid.token").write_text(valid.token + "\n", "utf-8")
    (out / "valid.qr").write_text(qr + "\n", "utf-8")
    (out / "revoked.token").write_text(revoked.token + "\n", "utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
