"""The public log seen from outside: ``audit monitor``, witnessing, cosignature
collection and ``verify --require-inclusion``, over real loopback HTTP.

Three sample regions (GD, ZJ, SH of ``ecert/_data/regions.json``) each run a registry of
their own, created by their first admin, whose base URL is
``http://127.0.0.1:<port>/<gd|zj|sh>``; a :class:`http.server.ThreadingHTTPServer` serves
the directories they publish into. Agreements are the ``recognitions`` of regions.json
(GD recognizes ZJ; ZJ recognizes GD and SH).
"""

from __future__ import annotations

import ast
import gc
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ecert
from ecert import _samples
from ecert import keys as ecert_keys
from ecert._formats import merkle, tiles
from ecert._formats.jose import b64url_encode, parse_compact
from ecert._formats.log import Entry
from ecert._formats.note import Checkpoint, NoteSigner, sign_note
from ecert._formats.statuslist import (
    StatusList,
    make_status_list_token,
    read_status_list_payload,
)
from ecert._sources import HttpSource
from ecert.inclusion import InclusionPolicy, check_inclusion
from ecert.monitor import LogUnreachable, Monitor, WitnessPolicy
from ecert.registry import _witness
from ecert.registry._witness import WitnessRefused, collect_cosignatures, witness
from ecert_cli import cli
from ecert_cli._app import Runtime
from tests.support import (
    FAST_KDF_ROUNDS,
    PASSPHRASE,
    PG_URL,
    FakeClock,
    LocalServer,
    as_operator,
    create_registry,
    database_url_of,
    distinct_holder,
    open_registry,
    pg_schema_url,
    plant_operator,
)
from tests.support.http import ServerHost
from tests.support.worlds import copy_template

REGIONS = ("GD", "ZJ", "SH")
ADMIN_PASSPHRASE = "the admin's own passphrase"


@dataclass
class Site:
    code: str
    registry: ecert.Registry
    www: Path
    home: Path

    def publish(self) -> ecert.PublishReport:
        return self.registry.publish(self.www)

    def issue(self, type_code: str | None = None, holder: str = "") -> ecert.Certificate:
        sample = _samples.region(self.code)
        agency = sample["agencies"][0]
        type_code = type_code or agency["types"][0]
        entry = next(e for e in _samples.catalog() if e["code"] == type_code)
        claims = _samples.claims(_sample_claims(type_code))
        del entry
        if holder:  # another holder: the type binds the holder id to a claim
            claims = distinct_holder(claims, holder)
        id_field, name_field = _holder_fields(claims)
        return self.registry.issue(type_code, agency["code"],
                                   holder_id=str(claims[id_field]),
                                   holder_name=str(claims[name_field]), claims=claims)


def _sample_claims(type_code: str) -> str:
    return {"cn.business-licence": "business-licence-gd",
            "cn.driving-licence": "driving-licence-zj",
            "cn.food-business-licence": "food-business-licence-sh",
            "zj.spjyxkz": "food-business-licence-sh",
            "cn.professional-qualification": "professional-qualification-gd"}[type_code]


def _holder_fields(claims: dict[str, Any]) -> tuple[str, str]:
    for id_field in ("uscc", "licence_number", "id_number"):
        if id_field in claims:
            return id_field, "name" if "name" in claims else "operator_name"
    raise AssertionError(claims)


@dataclass
class World:
    server: LocalServer
    clock: FakeClock
    tmp: Path
    sites: dict[str, Site] = field(default_factory=dict)
    anchors: dict[str, ecert.TrustAnchor] = field(default_factory=dict)

    def __getitem__(self, code: str) -> Site:
        return self.sites[code]

    def anchor_file(self, code: str) -> Path:
        path = self.tmp / f"anchor-{code}.json"
        path.write_bytes(self.anchors[code].to_bytes())
        return path

    def monitor(self, code: str = "GD", state: str = "state", **kwargs: Any) -> Monitor:
        return Monitor.from_anchor(self.anchors[code], state_dir=self.tmp / state / code,
                                   clock=self.clock, **kwargs)

    def verifier(self, home: str = "GD") -> ecert.Verifier:
        return ecert.Verifier.from_anchor(self.anchors[home], clock=self.clock)


def _add_type(registry: ecert.Registry, code: str) -> None:
    entry = next(e for e in _samples.catalog() if e["code"] == code)
    registry.add_type(code, name=entry["name"], national_type_code=entry["national_type_code"],
                      schema=entry["schema"], validity_days=entry["validity_days"],
                      qr_claims=entry["qr_claims"])


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    yield
    gc.collect()


def build_world(built: World, schemas: list[Iterator[str]]) -> None:
    """Create, populate, link, issue and publish the three regions into ``built`` (filled as
    it goes, so the caller can close what was created even if this fails half-way)."""
    server, tmp, clock = built.server, built.tmp, built.clock
    recognitions = _samples.regions()["recognitions"]
    for code in REGIONS:
        url: str | None = None
        if PG_URL:
            gen = pg_schema_url()
            url = next(gen)
            schemas.append(gen)
        home = tmp / f"home-{code.lower()}"
        registry = create_registry(
            home, region=code, base_url=server.url(code.lower()), database_url=url,
            clock=clock, operator=f"admin-{code.lower()}",
            operator_passphrase=ADMIN_PASSPHRASE, kdf_rounds=FAST_KDF_ROUNDS,
            populate=True)
        built.sites[code] = Site(code, registry, server.root / code.lower(), home)
        have = {t.code for t in registry.types()}
        for entry in recognitions:
            if entry["verifier_region"] == code:
                for ours in entry["types"].values():
                    if ours not in have:
                        _add_type(registry, ours)
                        have.add(ours)
    built.anchors = {code: site.registry.anchor() for code, site in built.sites.items()}
    for entry in recognitions:
        built[entry["verifier_region"]].registry.recognize(
            built.anchors[entry["recognizes"]], entry["types"])
    for site in built.sites.values():
        site.issue()
        site.publish()


def _close(built: World) -> None:
    for site in built.sites.values():
        site.registry.close()


@pytest.fixture(scope="module")
def template(server_host: ServerHost, tmp_path_factory: pytest.TempPathFactory
             ) -> World | None:
    """SQLite: the ``world`` of every test, built once and closed; tests get copies.
    PostgreSQL: ``None`` (each test builds its own)."""
    if PG_URL:
        return None
    root = tmp_path_factory.mktemp("template")
    server = server_host.serve(root / "www")
    assert server is not None  # the host's first server has not been stopped
    built = World(server, FakeClock(), root)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(ecert_keys, "DEFAULT_KDF_ROUNDS", FAST_KDF_ROUNDS)
            build_world(built, [])
    finally:
        _close(built)
    return built


@pytest.fixture
def world(server_host: ServerHost, template: World | None, tmp_path: Path, clock: FakeClock
          ) -> Iterator[World]:
    """GD, ZJ and SH, each with a certificate issued and published, served. Each test gets
    its own: a copy of the template (SQLite), else built afresh."""
    served = server_host.serve(tmp_path / "www")
    own = None
    if served is None:  # the port was lost after a test stopped the server
        own = served = LocalServer(tmp_path / "www")
    built = World(served, clock, tmp_path)
    schemas: list[Iterator[str]] = []
    try:
        if template is not None and own is None:
            copy_template(template.tmp, tmp_path)
            built.anchors = dict(template.anchors)
            for code, site in template.sites.items():
                registry = open_registry(tmp_path / site.home.name,
                                         database_url=None, clock=clock,
                                         operator=f"admin-{code.lower()}",
                                         operator_passphrase=ADMIN_PASSPHRASE,
                                         kdf_rounds=FAST_KDF_ROUNDS)
                built.sites[code] = Site(code, registry, served.root / code.lower(),
                                         tmp_path / site.home.name)
        else:
            build_world(built, schemas)
        yield built
    finally:
        _close(built)
        if own is not None:
            own.stop()
        for gen in schemas:
            next(gen, None)


def run_cli(world: World, *args: str, home: Path | None = None,
            env: dict[str, str] | None = None) -> tuple[int, Any]:
    argv = [*(["--home", str(home)] if home else []), *args]
    result = CliRunner().invoke(cli, argv, catch_exceptions=False, env=env,
                                obj=Runtime(world.clock))
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        return result.exit_code, result.output


def kinds(report: Any) -> set[str]:
    return {f.kind for f in report.findings}


# -- the monitor ---------------------------------------------------------------------------


def test_the_monitor_module_imports_no_database_code() -> None:
    import ecert.inclusion
    import ecert.monitor

    for module in (ecert.monitor, ecert.inclusion):
        tree = ast.parse(Path(str(module.__file__)).read_text("utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {n for n in names if n.split(".")[0] in ("sqlalchemy", "alembic",
                                                             "jsonschema")}
        assert not {n for n in names if n.startswith("ecert.registry")
                    or n.startswith("ecert._storage")}


def test_monitor_is_consistent_then_checks_only_new_entries(world: World) -> None:
    gd = world["GD"]
    first = world.monitor().run()
    assert first.consistent, first.findings
    assert first.new_entries == first.log_size > 10
    # Nothing new: nothing to fetch but the checkpoint and the documents.
    world.server.log.clear()
    again = world.monitor().run()
    assert again.consistent and again.new_entries == 0
    assert not [p for p, _code in world.server.log if "/tile/" in p]
    cert = gd.issue(holder="-2")
    gd.registry.suspend(cert.id)
    report = gd.publish()
    world.server.log.clear()
    second = world.monitor().run()
    assert second.consistent, second.findings
    assert second.log_size == report.log_size
    assert second.new_entries == report.log_size - first.log_size == 3
    # Cost grows with the new entries only: one entry bundle, the tiles they changed.
    bundles = [p for p, _code in world.server.log if "/tile/entries/" in p]
    assert len(bundles) == 1
    assert json.loads((world.tmp / "state" / "GD" / "state.json").read_text())["size"] == (
        report.log_size)


def test_monitor_follows_a_scheduled_supersession_across_runs(world: World) -> None:
    """A renewal's at-start revocation: lists published before the successor's start say
    valid, the first one after says revoked, and the monitor — resuming from its saved
    state in between — agrees with both."""
    gd = world["GD"]
    cert = gd.issue(holder="-renew")
    gd.registry.renew(cert.id, at_start=True,
                      valid_from=world.clock() + timedelta(days=2))
    gd.publish()
    before = world.monitor().run()
    assert before.consistent, before.findings
    world.clock.advance(days=3)
    gd.publish()
    after = world.monitor().run()
    assert after.consistent, after.findings
    assert gd.registry.get(cert.id).status is ecert.CertificateStatus.REVOKED


def test_monitor_cli_json_and_exit_codes(world: World) -> None:
    anchor = world.anchor_file("GD")
    state = world.tmp / "cli-state"
    code, out = run_cli(world, "audit", "monitor", "--anchor", str(anchor), "--state", str(state),
                        "--json", home=world.tmp / "verifier-home")
    assert code == 0, out
    assert out["consistent"] is True and out["findings"] == []
    assert out["log_size"] == out["new_entries"] > 0
    code, out = run_cli(world, "audit", "monitor", "--bundle", str(world["GD"].www), "--state",
                        str(state), "--json", home=world.tmp / "verifier-home")
    assert (code, out["new_entries"]) == (0, 0)
    world.server.down.add("/gd/")
    code, out = run_cli(world, "audit", "monitor", "--anchor", str(anchor), "--state", str(state),
                        "--json", home=world.tmp / "verifier-home")
    assert code == 3
    assert out["error"]["code"] == "log_unreachable"


def test_unreachable_log_raises(world: World) -> None:
    (world["GD"].www / "log" / "checkpoint").unlink()
    with pytest.raises(LogUnreachable):
        world.monitor().run()
    world.server.stop()
    with pytest.raises(LogUnreachable):
        world.monitor("ZJ").run()


def _rewrite_leaf(www: Path, index: int, change: Any) -> None:
    """Rewrite entry ``index`` of its published entry bundle."""
    start = index - index % merkle.TILE_WIDTH
    paths = sorted((www / "log" / "tile" / "entries").rglob("*"),
                   key=lambda p: (len(str(p)), str(p)))
    for path in paths:
        if not path.is_file():
            continue
        relative = str(path.relative_to(www / "log"))
        parsed = tiles.parse_tile_path(relative)
        if parsed.index * merkle.TILE_WIDTH != start:
            continue
        leaves = tiles.decode_entry_bundle(path.read_bytes(), parsed.width)
        if index - start < len(leaves):
            leaves[index - start] = change(leaves[index - start])
            path.write_bytes(tiles.encode_entry_bundle(leaves))


def test_monitor_detects_a_rewritten_entry_bundle(world: World) -> None:
    def forge(leaf: bytes) -> bytes:
        value = json.loads(leaf)
        value["t"] += 1
        return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()

    _rewrite_leaf(world["GD"].www, 3, forge)
    report = world.monitor().run()
    assert not report.consistent
    assert "checkpoint_mismatch" in kinds(report)
    assert not (world.tmp / "state" / "GD" / "state.json").exists()  # not advanced


def test_monitor_detects_a_rewritten_hash_tile(world: World) -> None:
    size = world["GD"].registry.events()[-1].seq  # the publish entry is not in the tree
    path = world["GD"].www / "log" / tiles.tile_path(0, 0, size)
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    report = world.monitor().run()
    assert kinds(report) == {"tile_mismatch"}
    assert report.findings[0].subject == f"log/{tiles.tile_path(0, 0, size)}"


def test_monitor_detects_a_verifier_page_changed_on_the_host(world: World) -> None:
    """The page comes from the bundle's host, which nobody has to trust: a monitor checks
    what is served against the digests the trust list signed."""
    page = world["GD"].www / "verify"
    assert world.monitor().run().consistent  # as published: nothing to find
    script = page / "app.js"
    script.write_bytes(script.read_bytes() + b"\n// sends what it reads elsewhere\n")
    (page / "core.js").unlink()
    report = world.monitor(state="again").run()
    assert kinds(report) == {"verifier_page_mismatch"}
    assert sorted(f.subject for f in report.findings) == ["verify/app.js", "verify/core.js"]
    assert "cannot be fetched" in next(f.detail for f in report.findings
                                       if f.subject == "verify/core.js")


def test_monitor_detects_a_status_list_that_differs_from_the_log(world: World) -> None:
    gd = world["GD"]
    path = gd.www / "status" / "1.jwt"
    payload = parse_compact(path.read_text("ascii").strip(), max_bytes=1 << 24).payload
    token = read_status_list_payload(payload)
    lst = token.status_list
    cert = gd.registry.find()[0]
    assert lst[cert.status_index] == 0
    lst[cert.status_index] = 2  # suspended, without any logged suspension
    registry_keys = gd.registry.keys()
    status_key = next(k for k in registry_keys if k.role.value == "status")
    path.write_text(make_status_list_token(
        token.uri, lst, gd.registry.keystore.signer(status_key.kid),
        issued_at=token.issued_at, expires_at=token.expires_at, ttl=token.ttl,
        log=payload["log"]))
    report = world.monitor().run()
    assert kinds(report) == {"published_status_mismatch"}
    assert report.findings[0].subject.endswith(f"/status/1.jwt#{cert.status_index}")
    assert "published 2, the log says 0" in report.findings[0].detail
    # The state still advanced (the tree is fine); the next run says it again.
    assert kinds(world.monitor().run()) == {"published_status_mismatch"}


def test_a_list_wrong_everywhere_is_ten_findings_and_a_count(world: World) -> None:
    # A hostile publisher's list, every entry suspended (and another one far larger
    # than the log's): the monitor names the first ten indices and counts the rest,
    # without a Python step or a list entry per differing index.
    gd = world["GD"]
    path = gd.www / "status" / "1.jwt"
    payload = parse_compact(path.read_text("ascii").strip(), max_bytes=1 << 24).payload
    token = read_status_list_payload(payload)
    registry_keys = gd.registry.keys()
    status_key = next(k for k in registry_keys if k.role.value == "status")
    signer = gd.registry.keystore.signer(status_key.kid)
    size = token.status_list.size
    path.write_text(make_status_list_token(
        token.uri, StatusList.filled(size, 2, 2), signer, issued_at=token.issued_at,
        expires_at=token.expires_at, ttl=token.ttl, log=payload["log"]))
    findings = [f for f in world.monitor().run().findings
                if f.kind == "published_status_mismatch"]
    assert len(findings) == 11
    assert [f.subject.rsplit("#", 1)[1] for f in findings[:10]] == [str(i) for i in range(10)]
    assert findings[10].detail == f"and {size - 10} more indices differ"
    huge = 1 << 24  # a 4 MiB list of 2-bit entries: 128 times the registry's
    path.write_text(make_status_list_token(
        token.uri, StatusList.filled(huge, 2, 2), signer, issued_at=token.issued_at,
        expires_at=token.expires_at, ttl=token.ttl, log=payload["log"]))
    findings = [f for f in world.monitor().run().findings
                if f.kind == "published_status_mismatch"]
    assert findings[-1].detail == f"and {huge - 10} more indices differ"


def test_monitor_detects_a_count_of_taken_slots_that_differs_from_the_log(
        world: World) -> None:
    # What the next publication starts from (format 15.8): a list that says more slots
    # were taken than the log took would let those slots be judged "taken before".
    gd = world["GD"]
    path = gd.www / "status" / "1.jwt"
    payload = parse_compact(path.read_text("ascii").strip(), max_bytes=1 << 24).payload
    token = read_status_list_payload(payload)
    taken = payload["log"]["allocated"]
    registry_keys = gd.registry.keys()  # the registry's keys (ruff takes it for a dict)
    status_key = next(k for k in registry_keys if k.role.value == "status")
    path.write_text(make_status_list_token(
        token.uri, token.status_list, gd.registry.keystore.signer(status_key.kid),
        issued_at=token.issued_at, expires_at=token.expires_at, ttl=token.ttl,
        log={**payload["log"], "allocated": taken + 5}))
    report = world.monitor().run()
    assert kinds(report) == {"published_status_mismatch"}
    assert report.findings[0].subject.endswith("/status/1.jwt")
    assert f"says {taken + 5} slots were taken, the log took {taken}" in \
        report.findings[0].detail


def test_monitor_flags_entries_by_an_operator_added_with_raw_sql(world: World) -> None:
    gd = world["GD"]
    plant_operator(gd.registry, "mallory", "mallory's passphrase", ["clerk"])
    mallory = as_operator(gd.registry, "mallory", "mallory's passphrase", world.clock)
    with mallory:
        planted = Site("GD", mallory, gd.www, gd.home).issue(holder="-planted")
    gd.publish()
    report = world.monitor().run()
    assert not report.consistent
    assert "unknown_operator" in kinds(report)
    # Publication judged the issue since its previous lists as the log does: the planted
    # certificate took no valid slot, so the lists agree with the log.
    assert "published_status_mismatch" not in kinds(report)
    assert ecert.Verifier.from_bundle(gd.www, clock=world.clock).verify(
        planted.token).status.value != "valid"
    unknown = next(f for f in report.findings if f.kind == "unknown_operator")
    assert mallory_kid(gd) in unknown.detail
    # Built again from the log's last publication entry (not the counter): the same.
    gd.registry.publish(gd.www, full=True)
    assert "published_status_mismatch" not in kinds(world.monitor().run())
    assert ecert.Verifier.from_bundle(gd.www, clock=world.clock).verify(
        planted.token).status.value != "valid"


# -- witnessing ------------------------------------------------------------------------------


def test_witness_cosigns_and_follows_a_growing_log(world: World) -> None:
    zj, gd = world["ZJ"], world["GD"]
    first = witness(zj.registry._ctx, "GD", bundle=zj.www)
    assert first.previous is None and first.size > 0
    assert (zj.www / "witness" / "GD").read_text() == first.note
    entry = [e for e in zj.registry.events() if e.action == "witness.cosign"][-1]
    assert entry.details == {"origin": first.origin, "size": first.size, "root": first.root}
    gd.issue(holder="-3")
    gd.publish()
    second = witness(zj.registry._ctx, "GD", bundle=zj.www)
    assert (second.previous, second.size > first.size) == (first.size, True)
    # The CLI says the same, one line, exit 0.
    gd.issue(holder="-cli")
    gd.publish()
    code, out = run_cli(world, *(["--database-url", _url(zj)] if PG_URL else []),
                        "--operator", "admin-zj", "audit", "witness", "GD", "--bundle",
                        str(zj.www), "--json", home=zj.home,
                        env={"ECERT_PASSPHRASE": PASSPHRASE,
                             "ECERT_OPERATOR_PASSPHRASE": ADMIN_PASSPHRASE})
    assert code == 0, out
    assert out["previous"] == second.size and out["size"] > second.size
    # A fork is refused on the command line with exit 1 and one line.
    fork_log(gd, out["size"])
    code, out = run_cli(world, *(["--database-url", _url(zj)] if PG_URL else []),
                        "--operator", "admin-zj", "audit", "witness", "GD", "--json",
                        home=zj.home, env={"ECERT_PASSPHRASE": PASSPHRASE,
                                           "ECERT_OPERATOR_PASSPHRASE": ADMIN_PASSPHRASE})
    assert code == 1
    assert out["error"]["code"] == "witness_inconsistent"


def _url(site: Site) -> str:
    url = database_url_of(site.registry)
    assert url is not None
    return url


def mallory_kid(site: Site) -> str:
    return next(o.kid for o in site.registry.operators() if o.name == "mallory")


def test_witness_refuses_a_fork_and_a_rollback(world: World) -> None:
    zj, gd = world["ZJ"], world["GD"]
    old_checkpoint = (gd.www / "log" / "checkpoint").read_bytes()
    witness(zj.registry._ctx, "GD")
    gd.issue(holder="-4")
    gd.publish()
    cosigned = witness(zj.registry._ctx, "GD")
    # A rollback: the older (validly signed) checkpoint is served again.
    (gd.www / "log" / "checkpoint").write_bytes(old_checkpoint)
    with pytest.raises(WitnessRefused) as refused:
        witness(zj.registry._ctx, "GD")
    assert refused.value.code == "witness_smaller"
    assert "fewer than" in refused.value.message
    # A fork: a log of the same size with other content, signed with GD's log key.
    fork_log(gd, cosigned.size)
    with pytest.raises(WitnessRefused) as refused:
        witness(zj.registry._ctx, "GD")
    assert refused.value.code == "witness_inconsistent"
    assert "not consistent" in refused.value.message
    # Nothing was cosigned: the log of ZJ holds two cosignatures of GD.
    assert len([e for e in zj.registry.events() if e.action == "witness.cosign"]) == 2


def fork_log(site: Site, size: int) -> None:
    """Serve a log of ``size`` entries whose last entry differs, under the real log key."""
    root = site.www / "log"
    leaves: list[bytes] = []
    for index in range((size + 255) // 256):
        width = min(256, size - index * 256)
        leaves += tiles.decode_entry_bundle(
            (root / tiles.entries_path(index, width)).read_bytes(), width)
    entry = Entry.decode(leaves[-1])
    leaves[-1] = Entry(entry.time + 1, entry.action, entry.subject, entry.operator,
                       entry.details, entry.sig).encode()
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    store: dict[tuple[int, int], bytes] = {}

    class Reader:
        def read_tile(self, level: int, index: int, width: int) -> bytes:
            return store[(level, index)][:width * 32]

    result = merkle.integrate(0, hashes, Reader())
    for (level, index), data in result.tiles.items():
        path = root / tiles.tile_path(level, index, len(data) // 32)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for index in range((size + 255) // 256):
        chunk = leaves[index * 256:(index + 1) * 256]
        (root / tiles.entries_path(index, len(chunk))).write_bytes(
            tiles.encode_entry_bundle(chunk))
    registry_keys = site.registry.keys()
    log_key = next(k for k in registry_keys if k.role.value == "log" and k.retired_at is None)
    origin = site.registry.region.base_url.split("://")[1] + "/log"
    signer = NoteSigner(origin, site.registry.keystore.signer(log_key.kid))
    (root / "checkpoint").write_bytes(sign_note(Checkpoint(origin, size, result.root).encode(),
                                                [signer]))


def test_witness_refuses_regions_it_does_not_recognize_and_itself(world: World) -> None:
    with pytest.raises(ecert.NotFound):
        witness(world["GD"].registry._ctx, "SH")  # GD does not recognize SH
    with pytest.raises(WitnessRefused):
        witness(world["GD"].registry._ctx, "GD")


def test_witnessing_needs_the_service_or_trust_admin_role(world: World) -> None:
    zj = world["ZJ"]
    zj.registry.add_operator("zj-clerk", roles=["clerk"], passphrase="clerk passphrase")
    clerk = as_operator(zj.registry, "zj-clerk", "clerk passphrase", world.clock)
    with clerk, pytest.raises(ecert.PermissionDenied):
        witness(clerk._ctx, "GD")


def test_collected_cosignatures_are_served_by_the_logged_region(world: World) -> None:
    zj, gd = world["ZJ"], world["GD"]
    assert collect_cosignatures(gd.registry._ctx) == []  # nobody witnessed GD yet
    cosigned = witness(zj.registry._ctx, "GD", bundle=zj.www)
    assert collect_cosignatures(gd.registry._ctx) == ["ZJ"]
    assert collect_cosignatures(gd.registry._ctx) == []  # kept once
    gd.publish()
    served = (gd.www / "log" / "witness" / "ZJ").read_text()
    assert served == cosigned.note
    # A cosignature on a checkpoint GD never signed is not collected.
    forged = cosigned.note.replace(f"\n{cosigned.size}\n", f"\n{cosigned.size + 1}\n")
    (zj.www / "witness" / "GD").write_text(forged)
    assert collect_cosignatures(gd.registry._ctx) == []


def test_monitor_counts_witnesses(world: World) -> None:
    zj = world["ZJ"]
    unwitnessed = world.monitor(witnesses=1).run()
    assert kinds(unwitnessed) == {"witnesses_insufficient"}
    witness(zj.registry._ctx, "GD", bundle=zj.www)
    report = world.monitor(witnesses=1).run()
    assert report.consistent, report.findings
    assert report.witnesses is not None and report.witnesses.covering(0) == ["ZJ"]
    # GD recognizes only ZJ: two witnesses cannot be had.
    assert kinds(world.monitor(witnesses=2).run()) == {"witnesses_insufficient"}
    # A witness outage: warn by default, refuse when configured.
    world.server.down.add("/zj/")
    warned = world.monitor(witnesses=1).run()
    assert warned.consistent and any("witness outage" in w for w in warned.warnings)
    refused = world.monitor(witnesses=WitnessPolicy(1, "refuse")).run()
    assert kinds(refused) == {"witnesses_insufficient"}


# -- verify --require-inclusion --------------------------------------------------------------


def _proof(site: Site, cert: ecert.Certificate) -> dict[str, Any]:
    found = site.registry.history(cert.id)
    _commitment, opening = site.registry.commitment_opening(found.subject)
    return {**found.to_json(), "opening": b64url_encode(opening)}


def test_inclusion_of_a_logged_certificate(world: World) -> None:
    zj = world["ZJ"]
    cert = zj.registry.find()[0]
    proof = _proof(zj, cert)
    verifier = world.verifier("ZJ")
    result = check_inclusion(verifier, cert.token, proof=proof)
    assert result.included, result.messages
    index = next(e["seq"] for e in proof["entries"] if e["action"] == "certificate.issue")
    assert result.leaf_index == index
    # From the tiles alone, given the leaf index; and from GD, which recognizes ZJ.
    assert check_inclusion(verifier, cert.token, leaf_index=index).included
    assert check_inclusion(world.verifier("GD"), cert.token, leaf_index=index).included


def test_inclusion_refuses_a_token_the_log_does_not_hold(world: World) -> None:
    zj = world["ZJ"]
    cert = zj.registry.find()[0]
    other = world["ZJ"].issue(holder="-other")
    zj.publish()
    proof = _proof(zj, cert)
    verifier = world.verifier("ZJ")
    refused = check_inclusion(verifier, other.token, proof=proof)
    assert refused.errors == ("not_logged",)
    index = next(e["seq"] for e in proof["entries"] if e["action"] == "certificate.issue")
    assert check_inclusion(verifier, other.token, leaf_index=index).errors == ("not_logged",)
    assert check_inclusion(verifier, cert.token).errors == ("no_proof",)
    # A proof whose hashes were changed is not taken; the tiles then decide (still in).
    bad = json.loads(json.dumps(proof))
    for e in bad["entries"]:
        if e["inclusion_proof"]:
            e["inclusion_proof"][0] = b64url_encode(bytes(32))
    assert check_inclusion(verifier, cert.token, proof=bad).included
    # A rewritten entry bundle cannot make the leaf included in the signed checkpoint.
    _rewrite_leaf(zj.www, index, lambda leaf: leaf.replace(b'"t":', b'"t": ')[:len(leaf)])
    assert not check_inclusion(verifier, cert.token, leaf_index=index).included


def test_inclusion_with_witnesses(world: World) -> None:
    zj, gd = world["ZJ"], world["GD"]
    cert = zj.registry.find()[0]
    index = next(e["seq"] for e in _proof(zj, cert)["entries"]
                 if e["action"] == "certificate.issue")
    verifier = world.verifier("GD")
    one = InclusionPolicy(WitnessPolicy(1))
    assert check_inclusion(verifier, cert.token, leaf_index=index,
                           policy=one).errors == ("witnesses_insufficient",)
    # GD (the verifier's home) witnesses ZJ; ZJ never counts for its own log.
    witness(gd.registry._ctx, "ZJ", bundle=gd.www)
    result = check_inclusion(verifier, cert.token, leaf_index=index, policy=one)
    assert result.included, result.messages
    assert result.witnesses is not None and result.witnesses.covering(index + 1) == ["GD"]
    two = InclusionPolicy(WitnessPolicy(2))
    assert check_inclusion(verifier, cert.token, leaf_index=index,
                           policy=two).errors == ("witnesses_insufficient",)


def test_verify_cli_require_inclusion(world: World) -> None:
    zj = world["ZJ"]
    cert = zj.registry.find()[0]
    proof_file = world.tmp / "proof.json"
    proof_file.write_text(json.dumps(_proof(zj, cert)))
    anchor = str(world.anchor_file("ZJ"))
    home = world.tmp / "verifier-home"
    code, out = run_cli(world, "verify", cert.token, "--anchor", anchor, "--require-inclusion",
                        "--proof", str(proof_file), "--json", home=home)
    assert code == 0, out
    assert out["valid"] is True and out["inclusion"]["included"] is True
    other = zj.issue(holder="-cli")
    zj.publish()
    code, out = run_cli(world, "verify", other.token, "--anchor", anchor, "--require-inclusion",
                        "--proof", str(proof_file), "--json", home=home)
    assert code == 1
    assert out["valid"] is False and out["inclusion"]["errors"] == ["not_logged"]
    code, out = run_cli(world, "verify", cert.token, "--anchor", anchor, "--require-inclusion",
                        "--proof", str(proof_file), "--witnesses", "1", "--json", home=home)
    assert code == 1 and out["inclusion"]["errors"] == ["witnesses_insufficient"]


def test_http_source_is_what_the_monitor_uses(world: World) -> None:
    monitor = world.monitor()
    assert isinstance(monitor.source, HttpSource)
    assert _witness.witness_name(world["GD"].registry._ctx).endswith("/gd/witness")


@pytest.mark.parametrize("parallel", [False, True])
def test_monitor_checks_every_unit_signature(world: World, parallel: bool,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import ecert.monitor

    if parallel:  # signatures checked ahead in worker processes, as for a large batch
        monkeypatch.setattr(ecert.monitor, "PARALLEL_MIN_UNITS", 1)
    gd = world["GD"]
    good = world.monitor(state=f"good-{parallel}", workers=2).run()
    assert good.consistent, good.findings
    # The log key signs a tree whose last entry was edited after its operator signed it.
    size = good.log_size
    fork_log(gd, size)
    report = world.monitor(state=f"forged-{parallel}", workers=2).run()
    assert "bad_signature" in kinds(report)
    bad = next(f for f in report.findings if f.kind == "bad_signature")
    assert bad.seq == size - 1
    # The documents name the root of the log they were built from, not of this one.
    assert kinds(report) - {"bad_signature"} <= {"published_status_mismatch",
                                                 "trust_list_mismatch"}


def test_publish_serves_the_newest_cosignature_of_each_witness(world: World) -> None:
    zj, gd = world["ZJ"], world["GD"]
    witness(zj.registry._ctx, "GD", bundle=zj.www)
    assert collect_cosignatures(gd.registry._ctx) == ["ZJ"]
    gd.issue(holder="-5")
    gd.publish()
    newer = witness(zj.registry._ctx, "GD", bundle=zj.www)
    assert collect_cosignatures(gd.registry._ctx) == ["ZJ"]
    gd.publish()
    assert (gd.www / "log" / "witness" / "ZJ").read_text() == newer.note


def test_monitor_flags_a_role_widened_with_raw_sql(world: World) -> None:
    from sqlalchemy import update

    from ecert._storage.schema import operators

    gd = world["GD"]
    gd.registry.add_operator("gd-clerk", roles=["clerk"], passphrase="clerk passphrase")
    cert = gd.registry.find()[0]
    # An insider makes the clerk an officer in the database: no admin signed that.
    with gd.registry.engine.begin() as conn:
        conn.execute(update(operators).where(operators.c.name == "gd-clerk").values(
            grants=[{"role": "officer", "agencies": None, "types": None}]))
    clerk = as_operator(gd.registry, "gd-clerk", "clerk passphrase", world.clock)
    with clerk:
        clerk.revoke(cert.id, "privilege-withdrawn")
    published = gd.publish()
    report = world.monitor().run()
    denied = [f for f in report.findings if f.kind == "no_authority"]
    assert len(denied) == 1, report.findings
    assert denied[0].seq is not None
    # Publication refuses the revocation the log does not accept, and says so: the
    # status list reads the certificate valid, as the log has it.
    assert not published.ok
    assert any(f"no_authority at entry {denied[0].seq}" in a for a in published.alerts)
    assert not any(f.kind == "published_status_mismatch" for f in report.findings)
    result = ecert.Verifier.from_bundle(gd.www, clock=world.clock).verify(cert.token)
    assert result.valid, result.messages


def test_saved_replay_state_is_the_replay_of_the_whole_log(world: World) -> None:
    from ecert._replay import Replay
    from ecert.monitor import _replay_json, load_state

    gd = world["GD"]
    assert world.monitor().run().consistent
    cert = gd.issue(holder="-6")
    gd.registry.suspend(cert.id)
    gd.registry.add_operator("gd-officer", roles=["officer"], passphrase="officer passphrase")
    gd.registry.set_policy("certificate.revoke", approvals=2)
    gd.publish()
    report = world.monitor().run()
    assert report.consistent, report.findings
    saved = load_state(world.tmp / "state" / "GD")
    fresh = Replay()
    leaves: list[bytes] = []
    for index in range((report.log_size + 255) // 256):
        width = min(256, report.log_size - index * 256)
        leaves += tiles.decode_entry_bundle(
            (gd.www / "log" / tiles.entries_path(index, width)).read_bytes(), width)
    fresh.apply_leaves(enumerate(leaves))
    assert _replay_json(saved.replay) == _replay_json(fresh)
    assert saved.replay.statuses == fresh.statuses
    # Every field of the replay is saved: a new one must be added to the monitor's state.
    known = {"track_certificates", "size", "region", "origin", "base_url", "region_name", "tz",
             "operators",
             "operator_kids", "policies", "requests", "types", "type_versions", "agencies", "keys",
             "agreements", "root_rotations", "certificates", "statuses", "cosigned",
             "publications", "findings", "_last_time", "_genesis", "scheduled",
             "entitlements", "consents", "uses",
             "_replacing",  # lives within one unit: empty between runs
             "only",  # which certificates are followed (a monitor: all of them)
             "issued_from", "issued",  # publication's judging of recent issues only
             "applied"}
    assert set(vars(Replay())) == known


def test_monitor_follows_catalog_and_agency_upkeep(world: World) -> None:
    gd = world["GD"]
    assert world.monitor().run().consistent  # state saved: the next run starts from it
    registry = gd.registry
    code = registry.types()[0].code
    schema = dict(registry.get_type(code).schema)
    registry.update_type(code, schema={**schema, "title": "v2"})
    agency = registry.agencies()[0]
    registry.update_agency(agency.code, name=agency.name + "(新)",
                           deny_types=[agency.types[0]],
                           deny_from=world.clock() + timedelta(days=30))
    gd.publish()
    report = world.monitor().run()
    assert report.consistent, report.findings
