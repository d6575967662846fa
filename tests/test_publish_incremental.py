"""Incremental publication (issue 11): a directory's status lists are updated with what the
log changed since, and the files are those a full publication would write; on SQLite and
PostgreSQL. A list an insider planted in the directory is not signed again."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, text

import ecert
from ecert._formats.bundle import STATUS_DIR
from ecert._formats.jose import parse_compact, raw_signature, sign_compact
from ecert._formats.statuslist import INVALID, STATUS_LIST_TYP, SUSPENDED, VALID, StatusList
from ecert._storage.schema import log_entries
from ecert.batch import BatchRow
from ecert.keys import generate_private_key
from ecert.registry import _publication, _tree
from tests.support import FakeClock, issue_business_licence
from tests.support.batch import AGENCY, BL, licence_rows
from tests.support.tamper import sql


def lists(bundle: Path) -> dict[str, dict[str, Any]]:
    """Each status list token's payload, but for the log tree it names (a publication
    logs itself, so the next one names a larger log)."""
    found = {}
    for path in sorted((bundle / STATUS_DIR).glob("*.jwt")):
        payload = parse_compact(path.read_text("ascii"), max_bytes=10**7).payload
        logged = payload.pop("log")
        assert set(logged) == {"size", "root", "allocated", "holes", "permutation"}
        # Which slots were taken, under which permutation: the same either way.
        payload["slots"] = (logged["allocated"], logged["holes"], logged["permutation"])
        found[path.name] = payload
    return found


def status_of(bundle: Path, cert: ecert.Certificate) -> int:
    payload = lists(bundle)[cert.status_list_uri.rsplit("/", 1)[1]]
    return StatusList.decode(payload["status_list"])[cert.status_index]


class Forger:
    """A signer of the insider's own, under another key's kid."""

    def __init__(self, alg: str, kid: str) -> None:
        self.alg, self.kid, self._key = alg, kid, generate_private_key(alg)

    def sign(self, message: bytes) -> bytes:
        return raw_signature(self.alg, self._key, message)


def published_list(registry: ecert.Registry, www: Path, cert: ecert.Certificate) -> Path:
    """Publish into ``www``; the file of ``cert``'s status list."""
    registry.publish(www)
    return www / STATUS_DIR / cert.status_list_uri.rsplit("/", 1)[1]


def fill_open_list(registry: ecert.Registry) -> None:
    """The open list's counter at its end, so the next issue opens a new list (131,072
    issues, short of the time)."""
    sql(registry, "UPDATE status_lists SET allocated = size")


def test_incremental_publication_writes_what_a_full_one_would(
        registry: ecert.Registry, clock: FakeClock, tmp_path: Path) -> None:
    www = tmp_path / "www"
    a, b, c = (issue_business_licence(registry) for _ in range(3))
    fill_open_list(registry)
    assert registry.publish(www).status_lists_encoded == 1  # nothing to start from
    d, e = issue_business_licence(registry), issue_business_licence(registry)
    assert d.status_list_uri != a.status_list_uri
    report = registry.publish(www)
    assert (report.status_lists, report.status_lists_encoded) == (2, 1)  # the new list

    registry.revoke(a.id, "unspecified")
    registry.suspend(d.id)
    start = clock() + timedelta(days=1)
    renewed, _old = registry.renew(c.id, valid_from=start, at_start=True)
    assert registry.publish(www).status_lists_encoded == 2
    assert [status_of(www, x) for x in (a, b, c, d, e, renewed)] == \
        [INVALID, VALID, VALID, SUSPENDED, VALID, VALID]
    assert registry.publish(www).status_lists_encoded == 0  # only signed again

    clock.advance(days=2)  # c's scheduled revocation falls due; nobody logs anything
    registry.reinstate(d.id)
    assert registry.publish(www).status_lists_encoded == 2
    assert [status_of(www, x) for x in (a, b, c, d, e)] == \
        [INVALID, VALID, INVALID, VALID, VALID]
    full = registry.publish(tmp_path / "full", full=True)
    assert full.status_lists_encoded == 2
    assert lists(www) == lists(tmp_path / "full")
    again = registry.publish(www, full=True)  # the same directory rebuilt: the same lists
    assert again.status_lists_encoded == 2 and lists(www) == lists(tmp_path / "full")
    # The audit's only findings are the shortcut that filled list 1 without issuing,
    # the valid slots it made publication sign (nobody issued them), and the count of
    # taken slots the list says (the log took 3).
    assert {(f.kind, f.subject) for f in registry.audit(bundle=www).findings} == \
        {("record_modified", "status list 1"), ("published_status_mismatch", "1.jwt#0"),
         ("published_status_mismatch", "1.jwt")}


def test_a_list_planted_in_the_directory_is_built_again(
        registry: ecert.Registry, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    www = tmp_path / "www"
    cert = issue_business_licence(registry)
    registry.revoke(cert.id, "unspecified")
    path = published_list(registry, www, cert)
    # The insider rewrites the list with the certificate valid, under the status key's kid
    # but signed with a key of their own.
    jws = parse_compact(path.read_text("ascii"), max_bytes=10**7)
    status_list = StatusList.decode(jws.payload["status_list"])
    status_list[cert.status_index] = VALID
    forged = sign_compact({**jws.payload, "status_list": status_list.encode()},
                          Forger(jws.header["alg"], jws.header["kid"]), STATUS_LIST_TYP)
    path.write_text(forged, "ascii")
    assert status_of(www, cert) == VALID
    with caplog.at_level(logging.WARNING, "ecert.registry"):
        assert registry.publish(www).status_lists_encoded == 1
    assert "does not verify with the status key" in caplog.text
    assert status_of(www, cert) == INVALID
    assert registry.audit(bundle=www).intact


def test_an_older_list_put_back_is_brought_up_to_date(
        registry: ecert.Registry, tmp_path: Path) -> None:
    www = tmp_path / "www"
    cert = issue_business_licence(registry)
    path = published_list(registry, www, cert)
    before = path.read_bytes()  # genuinely signed, from before the revocation
    registry.revoke(cert.id, "unspecified")
    registry.publish(www)
    path.write_bytes(before)
    assert status_of(www, cert) == VALID
    # Signed by the status key: a sound base, with every change logged since its log size.
    assert registry.publish(www).status_lists_encoded == 1
    assert status_of(www, cert) == INVALID
    assert registry.audit(bundle=www).intact


def test_a_file_that_is_no_token_is_built_again(
        registry: ecert.Registry, tmp_path: Path) -> None:
    www = tmp_path / "www"
    cert = issue_business_licence(registry)
    path = published_list(registry, www, cert)
    path.write_text("not a token", "ascii")
    assert registry.publish(www).status_lists_encoded == 1
    assert status_of(www, cert) == VALID


def test_a_batch_leaves_nothing_to_integrate(registry: ecert.Registry, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    issue_business_licence(registry)  # one by one: integrated by the batch's first chunk
    rows = [BatchRow(i + 2, r["holder_id"], r["holder_name"], r["claims"])
            for i, r in enumerate(licence_rows(7))]
    assert len(list(registry.issue_batch(BL, AGENCY, rows, chunk_size=3))) == 7
    with registry.engine.connect() as conn:
        counters = dict(conn.execute(text("SELECT name, value FROM counters")).all())
    assert counters["log_integrated"] == counters["log_size"]
    # The publication hashes nothing: every tile it needs is in the database already.
    hashed: list[int] = []
    real = _tree.merkle.integrate
    monkeypatch.setattr(_tree.merkle, "integrate",
                        lambda size, hashes, *a, **k: hashed.append(len(hashes))
                        or real(size, hashes, *a, **k))
    report = registry.publish(tmp_path / "www")
    assert hashed == [] and report.log_size == counters["log_size"]
    assert registry.audit(bundle=tmp_path / "www").intact


def test_a_full_disk_while_writing_the_log_leaves_no_temporary(
        registry: ecert.Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    for _ in range(3):
        issue_business_licence(registry)
    real_write = os.write
    written = 0

    def write(fd: int, data: Any) -> int:
        nonlocal written
        written += 1
        if written > 1:  # the second log file finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(_publication.os, "write", write)
    www = tmp_path / "www"
    with pytest.raises(ecert.PublishError, match="No space left"):
        registry.publish(www)
    monkeypatch.undo()
    assert not [p for p in www.rglob("*") if p.name.endswith(".tmp")]
    assert not (www / "trustlist.jwt").exists()  # nothing names the missing files
    registry.publish(www)  # the space is back: the next publication completes
    assert registry.audit(bundle=www).intact


def test_a_long_log_is_integrated_and_written_a_chunk_at_a_time(
        registry: ecert.Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tree, "INTEGRATE_CHUNK", 3)  # a few entries at a time
    www = tmp_path / "www"
    for _ in range(4):
        issue_business_licence(registry)
    report = registry.publish(www)
    assert report.log_size > 3 * 3
    # The checkpoint and tiles are those of the whole log: the audit recomputes the tree
    # from the entries, and checks the bundle's tiles against it.
    assert registry.audit(bundle=www).intact
    for _ in range(2):
        issue_business_licence(registry)
    registry.publish(www)
    assert registry.audit(bundle=www).intact
    assert len(list((www / "log" / "tile" / "entries").rglob("*"))) >= 1


def _entry_bundles(www: Path) -> dict[str, bytes]:
    return {str(p.relative_to(www)): p.read_bytes()
            for p in (www / "log" / "tile" / "entries").rglob("*") if p.is_file()}


def test_the_entry_bundles_are_the_logs_leaves_and_a_gap_or_an_oversized_leaf_stops_them(
        registry: ecert.Registry, tmp_path: Path) -> None:
    """A full bundle and a partial one: each is the leaves of its range, in log order,
    length-prefixed; an entry missing from the range, or one too long for its two-byte
    prefix, stops a fresh publication before the trust list names any file."""
    from ecert._formats import tiles
    from ecert._storage.repository import Repository
    from tests.support.tamper import drop_triggers

    rows = [BatchRow(i + 2, r["holder_id"], r["holder_name"], r["claims"])
            for i, r in enumerate(licence_rows(300))]
    assert len(list(registry.issue_batch(BL, AGENCY, rows, chunk_size=150))) == 300
    report = registry.publish(tmp_path / "www")
    bundles = _entry_bundles(tmp_path / "www")
    with registry.engine.connect() as conn:
        leaves = Repository(conn).log_leaves(0, report.log_size)
    assert report.log_size > tiles.TILE_WIDTH and len(leaves) == report.log_size
    full, partial = f"log/{tiles.entries_path(0, 256)}", \
        f"log/{tiles.entries_path(1, report.log_size - 256)}"
    assert sorted(bundles) == sorted([full, partial])
    assert tiles.decode_entry_bundle(bundles[full], 256) == leaves[:256]
    assert tiles.decode_entry_bundle(bundles[partial]) == leaves[256:]

    drop_triggers(registry)
    with registry.engine.connect() as conn:
        deleted = dict(conn.execute(select(log_entries).where(log_entries.c.seq == 17))
                       .mappings().one())
    # An entry deleted from the middle of the first bundle: a fresh publication stops.
    sql(registry, "DELETE FROM log_entries WHERE seq = 17")
    with pytest.raises(ecert.StorageError) as gap:
        registry.publish(tmp_path / "gap")
    assert gap.value.code == "log_gap"
    assert not (tmp_path / "gap" / "trustlist.jwt").exists()
    with registry.engine.begin() as conn:
        conn.execute(insert(log_entries).values(**deleted))
    # An entry longer than its two-byte length prefix can say: refused, never written
    # with a prefix that would misalign every entry after it.
    sql(registry, "UPDATE log_entries SET leaf = :leaf WHERE seq = 18",
        leaf=leaves[18] + b" " * 70_000)
    with pytest.raises(tiles.TilesError):
        registry.publish(tmp_path / "long")
    assert not (tmp_path / "long" / "trustlist.jwt").exists()
