"""``audit verify`` over a large log: how long the whole replay takes, and its memory.

Run: python bench/bench_audit.py [--entries N ...] [--database-url URL] [--workers W]

Builds a registry (SQLite by default), issues one certificate the ordinary way, then
fills the log with N ``certificate.issue`` units fast: issuance is bypassed, but every
row is what it produces — a certificates row whose token is a genuinely signed ES256
token of the agency key, a log row whose leaf is the canonical entry with the
operator's real Ed25519 unit signature and the commitment under the registry's
commitment key, status-list slots taken through the ``status_lists`` table and the
permuted index. Signing runs in worker processes; rows are bulk-inserted. Then it
publishes once (so checkpoints exist) and times ``Registry.audit()`` in a fresh process
(so its peak RSS is the audit's own), asserting the registry is intact.

Target (issue): ``audit verify`` over 10^6 log entries in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_core import _scratch_schema  # the scripts of bench/ run from that folder
from sqlalchemy import insert, select, update

import ecert
from ecert import _samples
from ecert import keys as ecert_keys

OPERATOR = "bench"
OPERATOR_PASSPHRASE = "bench operator"
PASSPHRASE = "bench"
AGENCY = "gd-amr"
TYPE = "cn.business-licence"
CHUNK = 2_000

# -- worker processes: signing ---------------------------------------------------------------

_W: dict[str, Any] = {}


def _worker_init(setup: dict[str, Any]) -> None:
    from ecert.keys import FileKeyStore
    from ecert.registry._core import operator_keys

    ecert_keys.DEFAULT_KDF_ROUNDS = 10_000
    home = Path(setup["home"])
    _W.update(setup)
    _W["agency_signer"] = FileKeyStore(home / "keys", PASSPHRASE).signer(setup["agency_kid"])
    _W["operator_signer"] = operator_keys(home, OPERATOR, OPERATOR_PASSPHRASE,
                                          None).signer(setup["operator_kid"])


def _sign_chunk(specs: Sequence[tuple[int, int, int, bytes, int, int]]
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Certificates and log rows for ``(seq, serial, list_id, key, counter, size)``s,
    exactly as ``ecert.registry._issuance._issue`` and ``Unit.seal`` write them."""
    from ecert._allocation import permuted_index
    from ecert._formats import bundle
    from ecert._formats.certificate import CertificateClaims
    from ecert._formats.log import Entry, commitment, sign_unit, token_hash
    from ecert.identifiers import CertificateId
    from ecert.registry._issuance import holder_pseudonym, plain_claims

    w = _W
    certs: list[dict[str, Any]] = []
    logs: list[dict[str, Any]] = []
    now = int(time.time())
    end = None if w["validity_days"] is None else now + w["validity_days"] * 86_400
    for seq, number, list_id, perm_key, counter, size in specs:
        index = permuted_index(perm_key, counter, size)
        serial = f"{number:08d}"
        cert_id = str(CertificateId(w["national_type_code"], w["uscc"], serial))
        holder = holder_pseudonym(w["pseudonym_key"], f"91440300MA{number:08d}")
        holder_name = f"{w['claims']['name']}{number}"
        claims = plain_claims({**w["claims"], "name": holder_name})
        status_uri = bundle.status_list_uri(w["base_url"], list_id)
        token = CertificateClaims(
            iss=f"{w['base_url']}/agencies/{AGENCY}", sub=holder, jti=cert_id, iat=now,
            nbf=now, exp=end, vct=TYPE, vct_version=w["type_version"], region=w["region"],
            holder_name=holder_name, claims=claims, status_list_uri=status_uri,
            status_index=index, supersedes=None,
        ).sign(w["agency_signer"])
        hashed = token_hash(token)
        certs.append({
            "id": cert_id, "serial": serial, "agency_code": AGENCY, "type_code": TYPE,
            "type_version": w["type_version"], "holder": holder, "holder_name": holder_name,
            "claims": claims, "issued_at": now, "valid_from": now, "valid_until": end,
            "status": "valid", "revocation_reason": None, "status_list_id": list_id,
            "status_index": index, "kid": w["agency_kid"], "supersedes": None,
            "token": token, "token_hash": hashed, "redacted_at": None})
        public = commitment(w["commitment_key"], cert_id)
        [entry] = sign_unit([Entry(now, "certificate.issue", public, w["operator_kid"],
                                   {"agency": AGENCY, "type": TYPE, "kid": w["agency_kid"],
                                    "list": list_id, "idx": index, "token": hashed})],
                            w["operator_signer"])
        logs.append({"seq": seq, "leaf": entry.encode(), "action": "certificate.issue",
                     "subject": public, "plain_subject": cert_id, "operator": OPERATOR,
                     "unit": seq, "at": now})
    return certs, logs


# -- the main process: allocation and bulk inserts -------------------------------------------


def _allocate(conn: Any, n: int, list_size: int, now: int
              ) -> tuple[list[tuple[int, int, int, bytes, int, int]], dict[int, int]]:
    """Take ``n`` slots through the status_lists table, opening lists as issuance does."""
    from ecert._storage.schema import counters, status_lists

    rows = conn.execute(select(status_lists.c.id, status_lists.c.size, status_lists.c.allocated,
                               status_lists.c.permutation_key)
                        .order_by(status_lists.c.id)).all()
    lists = [[int(r.id), int(r.size), int(r.allocated), bytes(r.permutation_key)] for r in rows]
    slots: list[tuple[int, bytes, int, int]] = []
    for current in lists:
        while len(slots) < n and current[2] < current[1]:
            slots.append((current[0], current[3], current[2], current[1]))
            current[2] += 1
    while len(slots) < n:
        list_id = int(conn.execute(update(counters).where(counters.c.name == "status_list_id")
                                   .values(value=counters.c.value + 1)
                                   .returning(counters.c.value)).scalar_one())
        key = secrets.token_bytes(32)
        conn.execute(insert(status_lists).values(id=list_id, size=list_size, bits=2,
                                                 permutation_key=key, allocated=0,
                                                 created_at=now))
        current = [list_id, list_size, 0, key]
        lists.append(current)
        while len(slots) < n and current[2] < current[1]:
            slots.append((current[0], current[3], current[2], current[1]))
            current[2] += 1
    for list_id, _size, allocated, _key in lists:
        conn.execute(update(status_lists).where(status_lists.c.id == list_id)
                     .values(allocated=allocated))
    serial = int(conn.execute(select(counters.c.value)
                              .where(counters.c.name == f"serial:{AGENCY}")).scalar_one())
    seq = int(conn.execute(select(counters.c.value)
                           .where(counters.c.name == "log_size")).scalar_one())
    specs = [(seq + i, serial + 1 + i, list_id, key, counter, size)
             for i, (list_id, key, counter, size) in enumerate(slots)]
    ends = {"serial": serial + n, "log_size": seq + n}
    return specs, ends


def generate(registry: ecert.Registry, n: int, workers: int) -> None:
    """Append ``n`` certificate.issue units (and their certificates) to ``registry``."""
    from ecert._storage.schema import certificates, counters, log_entries
    from ecert.models import KeyRole

    ctx = registry._ctx
    operator, _signer = ctx.authenticate()
    with ctx.read() as repo:
        key = repo.active_key(KeyRole.AGENCY, AGENCY)
        cert_type = repo.get_type(TYPE)
        agency = repo.get_agency(AGENCY)
    assert key is not None and cert_type is not None and agency is not None
    setup = {"home": str(ctx.home), "agency_kid": key.kid, "operator_kid": operator.kid,
             "commitment_key": ctx.commitment_key, "pseudonym_key": ctx.pseudonym_key,
             "base_url": ctx.region.base_url, "region": ctx.region.code,
             "national_type_code": cert_type.national_type_code, "uscc": agency.uscc,
             "type_version": cert_type.version, "validity_days": cert_type.validity_days,
             "claims": _samples.claims("business-licence-gd")}
    with registry.engine.begin() as conn:
        specs, ends = _allocate(conn, n, ctx.status_list_size, ctx.now())
        chunks = [specs[i:i + CHUNK] for i in range(0, n, CHUNK)]
        with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                 initargs=(setup,)) as pool:
            for cert_rows, log_rows in pool.map(_sign_chunk, chunks):
                conn.execute(insert(certificates), cert_rows)
                conn.execute(insert(log_entries), log_rows)
        conn.execute(update(counters).where(counters.c.name == f"serial:{AGENCY}")
                     .values(value=ends["serial"]))
        conn.execute(update(counters).where(counters.c.name == "log_size")
                     .values(value=ends["log_size"]))


def _same_shape(registry: ecert.Registry, real_id: str) -> None:
    """The fast path writes the same columns and entry members as issuance."""
    from sqlalchemy import text

    with registry.engine.connect() as conn:
        fast_id = conn.execute(text("SELECT id FROM certificates WHERE serial = '00000002'")
                               ).scalar_one()
        rows = {r["id"]: r for r in conn.execute(text(
            "SELECT * FROM certificates WHERE id IN (:a, :b)"), {"a": real_id, "b": fast_id})
            .mappings()}
        logs = {r["plain_subject"]: r for r in conn.execute(text(
            "SELECT * FROM log_entries WHERE plain_subject IN (:a, :b)"),
            {"a": real_id, "b": fast_id}).mappings()}
    real, fast = rows[real_id], rows[fast_id]
    assert [k for k in real if real[k] is None] == [k for k in fast if fast[k] is None]
    real_leaf = json.loads(logs[real_id]["leaf"])
    fast_leaf = json.loads(logs[fast_id]["leaf"])
    assert set(real_leaf) == set(fast_leaf) and set(real_leaf["d"]) == set(fast_leaf["d"])
    assert {k: v for k, v in logs[real_id].items() if k not in ("seq", "unit", "at", "leaf",
                                                                "subject", "plain_subject")} \
        == {k: v for k, v in logs[fast_id].items() if k not in ("seq", "unit", "at", "leaf",
                                                                "subject", "plain_subject")}


# -- measuring -------------------------------------------------------------------------------


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _children_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def audit_only(home: str, database_url: str | None) -> None:
    """In a fresh process: time ``Registry.audit()``; print JSON."""
    ecert_keys.DEFAULT_KDF_ROUNDS = 10_000
    registry = ecert.Registry.open(home, passphrase=PASSPHRASE, database_url=database_url,
                                   operator=ecert.OperatorCredential(
                                       OPERATOR, passphrase=OPERATOR_PASSPHRASE))
    registry._ctx.authenticate()  # the operator's key file is not what we measure
    start, cpu = time.perf_counter(), time.process_time()
    report = registry.audit()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    registry.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"intact": report.intact, "log_size": report.log_size,
                      "findings": [f.to_json() for f in report.findings[:5]],
                      "signature_backend": report.signature_backend,
                      "seconds": elapsed, "cpu": cpu,
                      "workers_cpu": children.ru_utime + children.ru_stime,
                      "rss_mib": _peak_rss_mib(), "workers_rss_mib": _children_peak_rss_mib()}))


def _bench(n: int, args: argparse.Namespace, database_url: str | None) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        if args.keep:
            tmp = str(Path(args.keep) / str(n))
            Path(tmp).mkdir(parents=True)
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=args.tmp))
        sample = _samples.region("GD")
        home = Path(tmp) / "home"
        registry = ecert.Registry.init(
            home, region="GD", name=sample["name"], base_url=sample["base_url"],
            passphrase=PASSPHRASE, database_url=database_url,
            admin=ecert.OperatorCredential(OPERATOR, passphrase=OPERATOR_PASSPHRASE))
        _samples.populate(registry)
        claims = _samples.claims("business-licence-gd")
        real = registry.issue(TYPE, AGENCY, holder_id=claims["uscc"], holder_name=claims["name"],
                              claims=claims)
        start = time.perf_counter()
        generate(registry, n, args.workers)
        generation = time.perf_counter() - start
        _same_shape(registry, real.id)
        start = time.perf_counter()
        published = registry.publish(Path(tmp) / "bundle")
        publish = time.perf_counter() - start
        assert published.ok, published.alerts
        registry.close()
        command = [sys.executable, __file__, "--audit-only", str(home)]
        if database_url:
            command += ["--database-url", database_url]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        assert result["intact"], result["findings"]
        result.update(entries=n, generation=generation, publish=publish)
        return result




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, nargs="+", default=[10_000])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="signing processes for the generation")
    parser.add_argument("--tmp", default=None, help="where the registries are built")
    parser.add_argument("--keep", metavar="DIR",
                        help="build the registries in DIR/<entries>/home and keep them "
                             "(audit one again with --audit-only DIR/<entries>/home)")
    parser.add_argument("--audit-only", metavar="HOME",
                        help="only time the audit of a registry kept with --keep")
    args = parser.parse_args()
    if args.audit_only:
        audit_only(args.audit_only, args.database_url)
        return
    ecert_keys.DEFAULT_KDF_ROUNDS = 10_000  # key-file encryption is not what we measure
    results = []
    for n in args.entries:
        if args.database_url:
            with _scratch_schema(args.database_url) as url:
                results.append(_bench(n, args, url))
        else:
            results.append(_bench(n, args, None))
        r = results[-1]
        print(f"... {n}: audit {r['seconds']:.1f} s", file=sys.stderr, flush=True)
    backend = "PostgreSQL" if args.database_url else "SQLite"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    signatures = results[-1]["signature_backend"] if results else "?"
    print(f"ecert audit verify benchmark, {backend}, {os.cpu_count()} CPUs, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load}, "
          f"Ed25519 through {signatures}")
    print(f"{'entries':>9} {'log size':>9} {'generate s':>10} {'publish s':>9} {'audit s':>8} "
          f"{'entries/s':>9} {'audit CPU s':>11} {'workers CPU s':>13} {'peak RSS MiB':>12} "
          f"{'worker RSS MiB':>14}")
    for r in results:
        print(f"{r['entries']:>9} {r['log_size']:>9} {r['generation']:>10.1f} "
              f"{r['publish']:>9.1f} {r['seconds']:>8.1f} {r['log_size'] / r['seconds']:>9.0f} "
              f"{r['cpu']:>11.1f} {r['workers_cpu']:>13.1f} {r['rss_mib']:>12.0f} "
              f"{r['workers_rss_mib']:>14.0f}")
    big = [r for r in results if r["log_size"] >= 1_000_000]
    for r in big:
        print(f"target < 60 s at {r['log_size']} entries: "
              f"{'met' if r['seconds'] < 60 else 'NOT met'} ({r['seconds']:.1f} s)")


if __name__ == "__main__":
    main()
