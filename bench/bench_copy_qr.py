"""QR sizes of purpose-bound copies, and how long a copy card takes to draw.

For each sample certificate, a copy as a sharing service makes it (GD's base URL, a
random ``jti``, 24 hours), once with the sample entitlement's claims where there is one
(``tests/data/sharing.json``: ZJ/zj-amr gets five claims of the business licence) and
once with every claim: the copy token's length and its QR version in byte mode, and the
``EC1:`` container's (format section 17.3) characters and versions, at L/M/Q. Then the
time to draw an A5 card at 300 dpi (PNG and SVG) with the packaged font.

Run: ``python bench/bench_copy_qr.py``.
"""

from __future__ import annotations

import json
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_qr import versions  # the scripts of bench/ run from that folder

from ecert import _samples, copy_card
from ecert._formats import qr as qr_format
from ecert._formats.copy import CopyClaims, OriginalRef
from ecert.card import PACKAGED_FONT
from ecert.keys import LocalSigner, generate_private_key
from ecert.verify import CopyInfo, Issuer, TokenKind, VerificationResult, VerificationStatus

SAMPLES = ("business-licence-gd", "professional-qualification-gd", "food-business-licence-sh",
           "driving-licence-zj")
ENTITLED = ("name", "uscc", "legal_representative", "established_on", "address")
BASE = "https://ecert.gd.example"
COPY_OF = "1.2.156.3005.2.11100000MB0143028R001.11440000MB2C01234R.00000001.001.J"


def copy_token(claims: dict[str, Any], signer: LocalSigner) -> tuple[str, CopyClaims]:
    iat = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    made = CopyClaims(
        iss=BASE, jti=secrets.token_urlsafe(16), iat=iat, exp=iat + 86_400, region="GD",
        aud="ZJ/zj-amr", purpose="跨省迁移登记", case="ZJ2026120100001", copy_of=COPY_OF,
        original=OriginalRef(f"{BASE}/agencies/gd-amr", "cn.business-licence", 1, iat, iat,
                             None),
        claims=claims, status_list_uri=f"{BASE}/status/1.jwt", status_index=12_345)
    return made.sign(signer), made


def result_of(made: CopyClaims) -> VerificationResult:
    """What a verifier says of the copy (made here: drawing is measured, not verifying)."""
    def ts(seconds: int) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    info = CopyInfo(made.jti, made.copy_of, made.aud, made.purpose, made.case,
                    made.original.vct, 1, made.claims, ts(made.iat), ts(made.exp),
                    ts(made.iat), None, ts(made.iat), made.status_list_uri, made.status_index)
    issuer = Issuer("GD", "gd-amr", "广东省市场监督管理局", "11440000MB2C01234R",
                    f"{BASE}/agencies/gd-amr", "kid")
    return VerificationResult(VerificationStatus.VALID, (), issuer, kind=TokenKind.COPY,
                              copy=info)


def main() -> None:
    signer = LocalSigner(generate_private_key())
    print("| sample | claims | copy token | byte mode L | M | Q | EC1 characters | L | M | Q |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in SAMPLES:
        claims = _samples.claims(name)
        chosen = [("entitled", {k: claims[k] for k in ENTITLED})] if name.startswith(
            "business") else []
        for label, given in (*chosen, ("all", claims)):
            token, _ = copy_token(given, signer)
            text = qr_format.wrap(token)
            print(f"| {name} | {label} ({len(given)}) | {len(token)} | "
                  + " | ".join(versions(token, mode="byte")) + f" | {len(text)} | "
                  + " | ".join(versions(text)) + " |")
    token, made = copy_token({k: _samples.claims(SAMPLES[0])[k] for k in ENTITLED}, signer)
    result = result_of(made)
    font = (str(PACKAGED_FONT), 0)
    out = Path(tempfile.mkdtemp())
    copy_card.write_copy_card(token, result, out / "warm.png", font=font)  # opens the font
    for suffix in ("png", "svg"):
        start = time.perf_counter()
        for n in range(5):
            written = copy_card.write_copy_card(token, result, out / f"copy-{n}.{suffix}",
                                                font=font)
        each = (time.perf_counter() - start) / 5
        print(f"\nA5 card at 300 dpi, {suffix.upper()}: {each * 1000:.0f} ms "
              f"({written.width_px}x{written.height_px} px, QR version "
              f"{written.qr_version} at {written.qr_error}, {written.watermark_stamps} "
              f"watermark stamps)")
    print(json.dumps({"file_bytes": (out / "copy-0.png").stat().st_size}))


if __name__ == "__main__":
    main()
