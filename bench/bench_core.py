"""Side-by-side rates in one process: verify() vs the bare signature check, issue vs sign.

Run: python bench/bench_core.py [--alg ES256|Ed25519] [--issues N] [--database-url URL]

Targets (issue 2): full ``Verifier.verify()`` >= 0.6 x the bare ``cryptography``
signature check on the same token. Issuance is reported against bare signing.
"""

from __future__ import annotations

import argparse
import contextlib
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.algorithms import OKPAlgorithm

import ecert
from ecert import _samples
from ecert import keys as ecert_keys
from ecert._formats.jose import b64url_decode, key_from_jwk


def _calibrate(func: Callable[[], object], seconds: float) -> int:
    n = 1
    while True:
        start = time.perf_counter()
        for _ in range(n):
            func()
        if time.perf_counter() - start > seconds:
            return n
        n *= 2


def _run(func: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        func()
    return n / (time.perf_counter() - start)


def compare(baseline: Callable[[], object], candidate: Callable[[], object],
            *, rounds: int = 15, seconds: float = 0.1) -> tuple[float, float, float]:
    """Median rates of both and median per-round ratio, measured alternately.

    Alternating short rounds side by side keeps machine noise from favouring either.
    """
    n_base, n_cand = _calibrate(baseline, seconds), _calibrate(candidate, seconds)
    base_rates, cand_rates, ratios = [], [], []
    for _ in range(rounds):
        b = _run(baseline, n_base)
        c = _run(candidate, n_cand)
        base_rates.append(b)
        cand_rates.append(c)
        ratios.append(c / b)
    return statistics.median(base_rates), statistics.median(cand_rates), statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alg", default="ES256", choices=["ES256", "Ed25519"])
    parser.add_argument("--issues", type=int, default=300)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    ecert_keys.DEFAULT_KDF_ROUNDS = 10_000  # key-file encryption is not what we measure
    if args.database_url:
        with _scratch_schema(args.database_url) as url:
            _bench(args, url)
    else:
        _bench(args, None)


@contextlib.contextmanager
def _scratch_schema(url: str) -> Iterator[str]:
    """A throw-away PostgreSQL schema, so the benchmark leaves the database as it was."""
    import sqlalchemy

    schema = f"bench_{secrets.token_hex(4)}"
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def _bench(args: argparse.Namespace, database_url: str | None) -> None:

    with tempfile.TemporaryDirectory() as tmp:
        sample = _samples.region("GD")
        registry = ecert.Registry.init(
            Path(tmp) / "home", region="GD", name=sample["name"], base_url=sample["base_url"],
            passphrase="bench", database_url=database_url,
            admin=ecert.OperatorCredential("bench", passphrase="bench operator"),
        )
        _samples.populate(registry)
        if args.alg != "ES256":
            registry.rotate_agency_key("gd-amr", alg=args.alg)
        claims = _samples.claims("business-licence-gd")

        def issue() -> ecert.Certificate:
            return registry.issue("cn.business-licence", "gd-amr", holder_id=claims["uscc"],
                                  holder_name=claims["name"], claims=claims)

        cert = issue()
        registry.publish(Path(tmp) / "bundle")
        verifier = ecert.Verifier.from_bundle(Path(tmp) / "bundle")
        assert verifier.verify(cert.token).valid

        # The same token, checked by the bare primitive.
        header_b64, payload_b64, sig_b64 = cert.token.split(".")
        signing_input = f"{header_b64}.{payload_b64}".encode()
        signature = b64url_decode(sig_b64)
        jwk = next(k.public_jwk for k in registry.keys("gd-amr") if k.kid == cert.kid)
        alg, key = key_from_jwk(jwk)
        if alg == "ES256":
            assert isinstance(key, ec.EllipticCurvePublicKey)
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                       int.from_bytes(signature[32:], "big"))

            def bare_verify() -> None:
                key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
        else:
            def bare_verify() -> None:
                key.verify(signature, signing_input)  # type: ignore[call-arg]

        decoder = jwt.PyJWT()
        jws = jwt.PyJWS()
        jws.register_algorithm("Ed25519", OKPAlgorithm())
        pyjwt_key = jwt.PyJWK(dict(jwk), algorithm="EdDSA" if alg == "Ed25519" else alg).key

        def pyjwt_decode() -> None:
            if alg == "ES256":
                decoder.decode(cert.token, pyjwt_key, algorithms=["ES256"])
            else:
                jws.decode(cert.token, pyjwt_key, algorithms=["Ed25519"])

        bare, full, full_ratio = compare(bare_verify, lambda: verifier.verify(cert.token))
        _, pyj, pyj_ratio = compare(bare_verify, pyjwt_decode)

        signer = registry.keystore.signer(cert.kid)
        bare_sign = statistics.median(_run(lambda: signer.sign(signing_input), 500)
                                      for _ in range(5))
        n = args.issues
        start = time.perf_counter()
        for _ in range(n):
            issue()
        issue_rate = n / (time.perf_counter() - start)
        # What the accountable log adds to one issue: the same unit of work with its
        # operator signature and log append replaced by nothing, measured alternately.
        from ecert.registry import _core

        logged_seal = _core.Unit.seal

        def issue_unlogged() -> None:
            _core.Unit.seal = lambda self, signer: []  # type: ignore[assignment,method-assign]
            try:
                issue()
            finally:
                _core.Unit.seal = logged_seal  # type: ignore[method-assign]

        unlogged, logged, log_ratio = compare(issue_unlogged, issue, rounds=9, seconds=0.3)
        backend = "PostgreSQL" if database_url else "SQLite"
        registry.close()

    print(f"ecert core benchmark, {args.alg}, {datetime.now(UTC):%Y-%m-%d}")
    print(f"{'operation':<44} {'ops/s':>10} {'ratio':>8}")
    print(f"{'bare cryptography signature check':<44} {bare:>10.0f} {1.0:>8.2f}")
    print(f"{'ecert Verifier.verify() (all checks)':<44} {full:>10.0f} {full_ratio:>8.2f}")
    print(f"{'pyjwt.decode (signature + exp only)':<44} {pyj:>10.0f} {pyj_ratio:>8.2f}")
    print(f"{'bare signing (Signer.sign)':<44} {bare_sign:>10.0f} {1.0:>8.2f}")
    print(f"{'Registry.issue() on ' + backend + ' (1 txn each)':<44} {issue_rate:>10.0f} "
          f"{issue_rate / bare_sign:>8.3f}")
    target = "met" if full_ratio >= 0.6 else "NOT met"
    print(f"verify target >= 0.60 x bare: {target}")
    overhead = 1 / log_ratio - 1
    print(f"{'issue without log and operator signature':<44} {unlogged:>10.0f} {1.0:>8.2f}")
    print(f"{'issue with log and operator signature':<44} {logged:>10.0f} {log_ratio:>8.2f}")
    print(f"logging adds {overhead:.1%} to a single issue (target < 15%): "
          f"{'met' if overhead < 0.15 else 'NOT met'}")


if __name__ == "__main__":
    main()
