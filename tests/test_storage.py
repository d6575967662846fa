"""Storage: migrations, the append-only event record, atomic issuance, concurrency, rollover.

Every test runs on the backend the environment selects (SQLite, or PostgreSQL when
``ECERT_TEST_DATABASE_URL`` is set).
"""

from __future__ import annotations

import base64
import contextlib
import json
import multiprocessing
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, Integer, MetaData, text
from sqlalchemy.exc import DBAPIError

import ecert
import ecert.registry._core as core_module
import ecert.registry._issuance as issuance_module
from ecert import _samples
from ecert._formats.jose import CompactSigner
from ecert._formats.statuslist import StatusList
from ecert._storage.database import make_engine, migrate, schema_is_current, sqlite_url
from ecert._storage.repository import WriteRepository
from ecert._storage.schema import metadata
from ecert.identifiers import CertificateId
from ecert.keys import FileKeyStore
from tests.support import (
    EPOCH,
    PG_URL,
    FakeClock,
    create_registry,
    database_url_of,
    issue_business_licence,
    open_registry,
    uscc,
)

STATUS_LIST_SIZE = 131_072

RACE_HOLDER = uscc(7)


def _url(registry: ecert.Registry) -> str | None:
    """The database URL to re-open ``registry`` with (None: the SQLite file in its home)."""
    return database_url_of(registry)


def _payload(token: str) -> dict[str, Any]:
    """The decoded payload of a compact JWS."""
    part = token.split(".")[1]
    value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    assert isinstance(value, dict)
    return value


def _scalar(registry: ecert.Registry, sql: str, **params: Any) -> Any:
    with registry.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def _serial(cert_id: str) -> int:
    return int(CertificateId.parse(cert_id).serial)


def _slot(cert: ecert.Certificate) -> tuple[str, int]:
    return cert.status_list_uri, cert.status_index


def _check_issued(registry: ecert.Registry, ids: list[str], expected: int) -> None:
    """``expected`` distinct certificates, distinct slots, serials exactly 1..expected."""
    assert len(ids) == expected
    assert len(set(ids)) == expected
    stored = registry.find(limit=expected + 10)
    assert sorted(c.id for c in stored) == sorted(ids)
    assert len({_slot(c) for c in stored}) == expected
    assert sorted(_serial(i) for i in ids) == list(range(1, expected + 1))
    assert _scalar(registry, "SELECT value FROM counters WHERE name = 'serial:gd-amr'") == expected
    allocated = _scalar(registry, "SELECT SUM(allocated) FROM status_lists")
    assert allocated == expected
    issue_events = [e for e in registry.events(limit=10_000) if e.action == "certificate.issue"]
    assert sorted(e.subject for e in issue_events) == sorted(ids)


# -- migrations ----------------------------------------------------------------------------------


@pytest.fixture
def migrated(tmp_path: Path, database_url: str | None) -> Iterator[Engine]:
    engine = make_engine(database_url or sqlite_url(tmp_path / "migrated.db"))
    migrate(engine)
    yield engine
    engine.dispose()


def test_migrations_produce_the_metadata(migrated: Engine) -> None:
    assert schema_is_current(migrated)
    with migrated.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_metadata_comparison_sees_differences(migrated: Engine) -> None:
    """The comparison above is not vacuous: a model change shows up in the diff."""
    changed = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["events"].append_column(Column("tampered", Integer, nullable=True))
    with migrated.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), changed)
    assert [(d[0], d[2], d[3].name) for d in diff if d[0] == "add_column"] == [
        ("add_column", "events", "tampered")]


def test_migrate_twice_is_a_no_op(migrated: Engine) -> None:
    migrate(migrated)
    assert schema_is_current(migrated)
    with migrated.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


# -- the event record ----------------------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    "UPDATE log_entries SET operator = 'mallory'",
    "UPDATE log_entries SET leaf = leaf WHERE seq = (SELECT MIN(seq) FROM log_entries)",
    "DELETE FROM log_entries",
    "DELETE FROM log_entries WHERE seq = (SELECT MAX(seq) FROM log_entries)",
    "UPDATE checkpoints SET size = size + 1",
    "DELETE FROM checkpoints",
])
def test_the_log_is_append_only(registry: ecert.Registry, statement: str,
                                tmp_path: Path) -> None:
    issue_business_licence(registry)
    registry.publish(tmp_path / "bundle")  # a checkpoint too
    before = registry.events()
    assert len(before) >= 5
    with pytest.raises(DBAPIError, match="append-only"), registry.engine.begin() as conn:
        conn.execute(text(statement))
    assert registry.events() == before
    # Appending still works.
    registry.suspend("1")
    after = registry.events()
    assert after[:-1] == before and after[-1].action == "certificate.suspend"


# -- atomic issuance -----------------------------------------------------------------------------


CLERK_PASS = "clerk passphrase"


class Crash(Exception):
    """A simulated crash inside the issuing transaction."""


def _boom(*_args: Any, **_kwargs: Any) -> Any:
    raise Crash("simulated crash")


#: Places called inside the issuing transaction after the serial and slot are allocated.
CRASH_POINTS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "permutation": lambda mp: mp.setattr(issuance_module, "permuted_index", _boom),
    "signer": lambda mp: mp.setattr(CompactSigner, "sign", _boom),
    "add_certificate": lambda mp: mp.setattr(WriteRepository, "add_certificate", _boom),
    "operator signature": lambda mp: mp.setattr(core_module, "sealed_leaves", _boom),
    "log append": lambda mp: mp.setattr(WriteRepository, "append_numbered", _boom),
}


def _counters(registry: ecert.Registry) -> tuple[int, int, list[tuple[int, int]]]:
    serial = _scalar(registry, "SELECT value FROM counters WHERE name = 'serial:gd-amr'")
    list_id = _scalar(registry, "SELECT value FROM counters WHERE name = 'status_list_id'")
    with registry.engine.connect() as conn:
        lists = [(int(r[0]), int(r[1])) for r in conn.execute(
            text("SELECT id, allocated FROM status_lists ORDER BY id"))]
    return int(serial), int(list_id), lists


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_crash_mid_issue_rolls_everything_back(registry: ecert.Registry, point: str) -> None:
    events_before = registry.events()
    with pytest.MonkeyPatch.context() as mp:
        CRASH_POINTS[point](mp)
        with pytest.raises(Crash):
            issue_business_licence(registry)
    assert registry.count() == 0
    assert registry.find() == []
    assert registry.events() == events_before
    # Neither the serial nor the new status list (with its slot) survived.
    assert _counters(registry) == (0, 0, [])

    first = issue_business_licence(registry)
    assert CertificateId.parse(first.id).serial == "00000001"
    assert _counters(registry) == (1, 1, [(1, 1)])

    # A crash once the list exists gives its slot back, too.
    with pytest.MonkeyPatch.context() as mp:
        CRASH_POINTS[point](mp)
        with pytest.raises(Crash):
            issue_business_licence(registry)
    assert _counters(registry) == (1, 1, [(1, 1)])
    assert registry.count() == 1
    second = issue_business_licence(registry)
    assert CertificateId.parse(second.id).serial == "00000002"
    assert _counters(registry) == (2, 1, [(1, 2)])
    assert [e.subject for e in registry.events() if e.action == "certificate.issue"] == [
        first.id, second.id]


# -- concurrency ---------------------------------------------------------------------------------


def test_first_use_of_the_pseudonym_secret_is_race_free(
    registry: ecert.Registry, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two registry objects issue their first certificates at the same moment.

    The holder pseudonym secret is created on first use; here both find it missing
    before either has written it. Both issues must succeed, with one shared secret.
    """
    real_load = FileKeyStore.load
    barrier = threading.Barrier(2)

    def load(self: FileKeyStore, name: str) -> Any:
        try:
            return real_load(self, name)
        except ecert.KeyStoreError:
            if name == "holder-pseudonym":
                # Let the other one miss it too (no wait if the store serializes).
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=2)
            raise

    monkeypatch.setattr(FileKeyStore, "load", load)
    issued: dict[int, ecert.Certificate] = {}
    errors: list[BaseException] = []

    def work(number: int) -> None:
        try:
            with open_registry(registry.home, database_url=_url(registry),
                               clock=clock) as mine:
                issued[number] = issue_business_licence(mine, holder_id=RACE_HOLDER)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert issued[0].holder == issued[1].holder == registry.holder_pseudonym(RACE_HOLDER)
    assert sorted(_serial(c.id) for c in issued.values()) == [1, 2]


def _create_pseudonym_secret(registry: ecert.Registry) -> None:
    # The race for the secret's first creation has a test of its own (above); the
    # concurrency tests below are about the database.
    registry.holder_pseudonym("warm-up")
    assert (registry.home / "keys" / "holder-pseudonym.p12").is_file()


def _clerks(registry: ecert.Registry, prefix: str, count: int) -> None:
    for number in range(count):
        registry.add_operator(f"{prefix}-{number}", roles=["clerk"], passphrase=CLERK_PASS)


def test_concurrent_threads(registry: ecert.Registry, clock: FakeClock) -> None:
    threads_count, per_thread = 4, 25
    _create_pseudonym_secret(registry)
    _clerks(registry, "thread", threads_count)
    barrier = threading.Barrier(threads_count)
    issued: list[ecert.Certificate] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(number: int) -> None:
        try:
            with open_registry(registry.home, database_url=_url(registry), clock=clock,
                               operator=f"thread-{number}",
                               operator_passphrase=CLERK_PASS) as mine:
                barrier.wait(timeout=60)
                for _ in range(per_thread):
                    cert = issue_business_licence(mine)
                    with lock:
                        issued.append(cert)
        except BaseException as e:
            barrier.abort()
            with lock:
                errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert len({_slot(c) for c in issued}) == threads_count * per_thread
    _check_issued(registry, [c.id for c in issued], threads_count * per_thread)


def _issue_in_child(home: str, database_url: str | None, count: int, number: int,
                    barrier: Any, results: Any) -> None:
    """Runs in a spawned process: open the registry and issue ``count`` certificates."""
    try:
        ecert.keys.DEFAULT_KDF_ROUNDS = 1_000
        with open_registry(Path(home), database_url=database_url, clock=FakeClock(EPOCH),
                           operator=f"process-{number}", operator_passphrase=CLERK_PASS) as mine:
            barrier.wait(timeout=60)
            ids = [issue_business_licence(mine).id for _ in range(count)]
        results.put((number, ids, None))
    except BaseException as e:
        barrier.abort()
        results.put((number, [], f"{type(e).__name__}: {e}"))


@pytest.mark.slow
def test_concurrent_processes(registry: ecert.Registry) -> None:
    processes_count, per_process = 3, 20
    _create_pseudonym_secret(registry)
    _clerks(registry, "process", processes_count)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes_count)
    results = context.Queue()
    processes = [
        context.Process(target=_issue_in_child,
                        args=(str(registry.home), _url(registry), per_process, n, barrier,
                              results))
        for n in range(processes_count)
    ]
    for process in processes:
        process.start()
    outcomes = []
    try:
        for _ in processes:
            outcomes.append(results.get(timeout=120))
    except queue.Empty:
        pytest.fail(f"child processes did not report: {outcomes}")
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
                process.join()
    assert sorted(o[0] for o in outcomes) == list(range(processes_count))
    assert [o[2] for o in outcomes] == [None] * processes_count
    assert [p.exitcode for p in processes] == [0] * processes_count
    ids = [i for o in outcomes for i in o[1]]
    _check_issued(registry, ids, processes_count * per_process)


# -- status lists --------------------------------------------------------------------------------


def _init(home: Path, database_url: str | None, clock: FakeClock,
          status_list_size: int = STATUS_LIST_SIZE) -> ecert.Registry:
    return create_registry(home, region="GD", database_url=database_url, clock=clock,
                           status_list_size=status_list_size)


def test_status_list_size_must_be_a_large_power_of_two(
    tmp_path: Path, database_url: str | None, clock: FakeClock, engines: list[Engine]
) -> None:
    home = tmp_path / "home"
    refused = [-1, 0, 1024, 65_536, 131_071, 131_073, 3 * 65_536, 2**17 + 2**16]
    for size in refused:
        with pytest.raises(ecert.InputError, match="power of two"):
            _init(home, database_url, clock, status_list_size=size)
    with _init(home, database_url, clock) as registry:
        assert registry.region.code == "GD"
        for size in refused:
            with pytest.raises(ecert.InputError, match="power of two"):
                open_registry(home, database_url=database_url, clock=None,
                              status_list_size=size)
        open_registry(home, database_url=database_url, clock=None,
                      status_list_size=2**20).close()
        # 2 bits a slot: 2**26 slots are the 16 MiB a verifier reads at most.
        open_registry(home, database_url=database_url, clock=None,
                      status_list_size=2**26).close()
        with pytest.raises(ecert.InputError, match="more than a verifier reads"):
            open_registry(home, database_url=database_url, clock=None,
                          status_list_size=2**27)


def test_status_list_size_larger_power_of_two_is_used(
    tmp_path: Path, database_url: str | None, clock: FakeClock, engines: list[Engine]
) -> None:
    with _init(tmp_path / "home", database_url, clock, status_list_size=262_144) as registry:
        _samples.populate(registry)
        cert = issue_business_licence(registry)
        assert _scalar(registry, "SELECT size FROM status_lists WHERE id = 1") == 262_144
        assert 0 <= cert.status_index < 262_144
        registry.publish(tmp_path / "bundle")
    payload = _payload((tmp_path / "bundle/status/1.jwt").read_text())
    assert len(StatusList.decode(payload["status_list"])) == 262_144


def test_full_status_list_rolls_over(registry: ecert.Registry, tmp_path: Path) -> None:
    first = issue_business_licence(registry)
    assert first.status_list_uri.endswith("/status/1.jwt")
    with registry.engine.begin() as conn:
        conn.execute(text("UPDATE status_lists SET allocated = size - 1 WHERE id = 1"))
    last_on_one = issue_business_licence(registry)
    first_on_two = issue_business_licence(registry)
    assert last_on_one.status_list_uri == "https://ecert.gd.example/status/1.jwt"
    assert first_on_two.status_list_uri == "https://ecert.gd.example/status/2.jwt"
    assert 0 <= first_on_two.status_index < STATUS_LIST_SIZE
    token_status = _payload(first_on_two.token)["status"]["status_list"]
    assert token_status == {"idx": first_on_two.status_index,
                            "uri": "https://ecert.gd.example/status/2.jwt"}
    assert registry.get(first_on_two.id).status_list_uri.endswith("/status/2.jwt")
    with registry.engine.connect() as conn:
        lists = [tuple(r) for r in conn.execute(
            text("SELECT id, size, allocated FROM status_lists ORDER BY id"))]
    assert lists == [(1, STATUS_LIST_SIZE, STATUS_LIST_SIZE), (2, STATUS_LIST_SIZE, 1)]
    third = issue_business_licence(registry)
    assert third.status_list_uri.endswith("/status/2.jwt")
    assert third.status_index != first_on_two.status_index

    registry.revoke(first_on_two.id, "unspecified")
    bundle = tmp_path / "bundle"
    report = registry.publish(bundle)
    assert report.status_lists == 2
    assert {"status/1.jwt", "status/2.jwt"} <= set(report.files)
    for list_id in (1, 2):
        payload = _payload((bundle / f"status/{list_id}.jwt").read_text())
        assert payload["sub"] == f"https://ecert.gd.example/status/{list_id}.jwt"
        status_list = StatusList.decode(payload["status_list"])
        assert len(status_list) == STATUS_LIST_SIZE
        if list_id == 2:
            assert status_list[first_on_two.status_index] == 1
            assert status_list[third.status_index] == 0
        else:
            assert status_list[first.status_index] == 0
            assert status_list[last_on_one.status_index] == 0
    verifier = ecert.Verifier.from_bundle(bundle, clock=lambda: EPOCH)
    assert verifier.verify(third.token).valid
    assert verifier.verify(first_on_two.token).status == ecert.VerificationStatus.REVOKED



@pytest.mark.skipif(not PG_URL, reason="a server-side disconnect needs PostgreSQL "
                    "(set ECERT_TEST_DATABASE_URL)")
def test_a_pooled_connection_that_died_while_idle_is_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Pooled connections are tested before use only after sitting idle (not on every
    checkout, a round trip each): one the server dropped meanwhile is replaced, and the
    caller never sees the failure."""
    from ecert._storage import database

    engine = make_engine(PG_URL)
    pings: list[object] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping",
                        lambda dbapi_connection: pings.append(1) or ping(dbapi_connection))
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with engine.connect() as conn:  # in steady use: the same connection, untested
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() == first
        assert pings == []
        other = make_engine(PG_URL)  # the server drops it, as a restart would
        try:
            with other.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        finally:
            other.dispose()
        monkeypatch.setattr(database, "IDLE_PING_SECONDS", 0.0)  # "idle long enough"
        with engine.connect() as conn:
            again = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert again != first
        assert len(pings) >= 1
    finally:
        engine.dispose()
