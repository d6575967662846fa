"""QR sizes and verification time, one table per sample type.

For each sample certificate: token bytes, QR characters and QR version at L/M/Q for
ecert's ``EC1:`` container (qr_claims + digest, and ``--full``), and for the peer
encodings of the same content: the EU DCC way (CBOR/COSE_Sign1, zlib, base45, ``HC1:``),
the SMART Health Cards way (JWS with ``zip: DEF``, ``shc:/`` numeric mode) and the plain
compact JWS (byte mode); then decode+verify time of QR text relative to the bare token.

Run: ``python bench/bench_qr.py`` (needs cbor2 for the DCC column: ``pip install cbor2``).
"""

from __future__ import annotations

import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import segno

import ecert
from ecert import _samples
from ecert._formats import qr as qr_format
from ecert._formats.jose import b64url_encode, canonical_json, sign_compact
from ecert.qr import qr_text

SAMPLES = {
    "cn.business-licence": ("business-licence-gd", "GD", "gd-amr"),
    "cn.professional-qualification": ("professional-qualification-gd", "GD", "gd-hrss"),
    "cn.food-business-licence": ("food-business-licence-sh", "SH", None),
    "cn.driving-licence": ("driving-licence-zj", "ZJ", None),
}


def versions(text: str, **kw: Any) -> list[str]:
    out = []
    for level in "LMQ":
        try:
            out.append(str(segno.make_qr(text, error=level, boost_error=False, **kw).version))
        except segno.DataOverflowError:
            out.append(">40")
    return out


def dcc(payload: dict[str, Any], signer: Any) -> str:
    import cbor2

    protected = cbor2.dumps({1: -7, 4: signer.kid.encode()})
    body = cbor2.dumps(payload)
    to_sign = cbor2.dumps(["Signature1", protected, b"", body])
    sig = signer.sign(to_sign)
    cose = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, body, sig]))
    return "HC1:" + qr_format.b45encode(zlib.compress(cose, 9))


def shc(payload: dict[str, Any], signer: Any) -> str:
    header = b64url_encode(canonical_json({"alg": "ES256", "kid": signer.kid, "zip": "DEF"}))
    body = b64url_encode(qr_format.deflate(canonical_json(payload)))
    sig = b64url_encode(signer.sign(f"{header}.{body}".encode()))
    jws = f"{header}.{body}.{sig}"
    return "shc:/" + "".join(f"{ord(c) - 45:02d}" for c in jws)


def main() -> None:
    home = Path(tempfile.mkdtemp())
    registries: dict[str, ecert.Registry] = {}
    for type_code, (claims_name, region, agency) in SAMPLES.items():
        if region not in registries:
            sample = _samples.region(region)
            reg = ecert.Registry.init(home / region, region=region, name=sample["name"],
                                      base_url=sample["base_url"], passphrase="bench",
                                      kdf_rounds=1000,
                                      admin=ecert.OperatorCredential("bench", passphrase="b"))
            _samples.populate(reg)
            registries[region] = reg
        reg = registries[region]
        agency = agency or next(a.code for a in reg.agencies() if type_code in a.types)
        if type_code not in reg.get_agency(agency).types:
            continue
        claims = _samples.claims(claims_name)
        # The id the type binds to its holder (catalog holder_claims).
        holder_id = claims.get("uscc") or claims.get("id_number") or claims["licence_number"]
        holder_name = claims.get("name") or claims.get("operator_name") or "X"
        cert = reg.issue(type_code, agency, holder_id=holder_id, holder_name=holder_name,
                         claims=claims)
        signer = reg.keystore.signer(cert.kid)
        full_payload = qr_format.parse_token_payload(cert.token)
        qr_claims = reg.get_type(type_code).qr_claims
        short_payload = {**{k: v for k, v in full_payload.items() if k != "claims"},
                         "claims": {k: full_payload["claims"][k] for k in qr_claims
                                    if k in full_payload["claims"]},
                         "digest": qr_format.token_digest(cert.token)}
        print(f"\n## {type_code} (token {len(cert.token)} bytes)\n")
        print("| content | encoding | QR characters | version L | M | Q |")
        print("|---|---|---|---|---|---|")
        for label, payload, full in (("qr_claims + digest", short_payload, False),
                                     ("all claims (--full)", full_payload, True)):
            ours = qr_text(reg, cert.id, full=full)
            rows = [("ecert EC1", ours), ("EU DCC way", dcc(payload, signer)),
                    ("SHC way", shc(payload, signer)),
                    ("plain compact JWS", sign_compact(payload, signer, "ecert+jwt"))]
            for name, text in rows:
                # segno encodes one mode per symbol: measure SHC's numeric segment alone
                # (its 5-character byte segment "shc:/" adds about 60 bits).
                measured = text.removeprefix("shc:/")
                print(f"| {label} | {name} | {len(text)} | "
                      + " | ".join(versions(measured)) + " |")
        reg.publish(home / f"bundle-{region}")
        verifier = ecert.Verifier.from_bundle(home / f"bundle-{region}")
        text = qr_text(reg, cert.id)
        assert verifier.verify(text).valid and verifier.verify(cert.token).valid
        timings = {}
        for name, value in (("token", cert.token), ("qr", text)):
            start = time.perf_counter()
            for _ in range(300):
                verifier.verify(value)
            timings[name] = (time.perf_counter() - start) / 300
        print(f"\ndecode+verify from QR text: {timings['qr'] * 1e6:.0f} µs, "
              f"{timings['qr'] / timings['token']:.2f}x bare token "
              f"({timings['token'] * 1e6:.0f} µs)")
    for reg in registries.values():
        reg.close()


if __name__ == "__main__":
    main()
