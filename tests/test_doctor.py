"""``ecert doctor`` and :mod:`ecert.doctor`: health checks that only read.

Regression for the review finding that a killed ``rotate-key`` leaves an orphan
encrypted key file (and stray temporaries) nothing ever reports.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import ecert
from ecert import doctor
from ecert._formats import bundle as _bundle
from ecert_cli import cli
from tests.support import (
    EPOCH,
    PASSPHRASE,
    FakeClock,
    RegistryFactory,
    issue_business_licence,
)

Published = tuple[ecert.Registry, ecert.Certificate, Path]
T0 = int(EPOCH.timestamp())
HOUR = 3600


def codes(findings: list[doctor.Finding]) -> list[str]:
    return [f.code for f in findings]


def problems(findings: list[doctor.Finding]) -> list[tuple[str, str]]:
    """(code, file name) of the findings that make a report unhealthy."""
    return [(f.code, Path(f.subject).name) for f in findings
            if f.severity is not doctor.Severity.INFO]


def key_rows(registry: ecert.Registry) -> dict[str, Any]:
    keys = registry.keys()
    return {"known_kids": {k.kid for k in keys},
            "active_kids": {k.kid for k in keys if k.status is ecert.KeyStatus.ACTIVE}}


def killed_rotation(registry: ecert.Registry, monkeypatch: pytest.MonkeyPatch) -> str:
    """Rotate gd-amr's key, dying after the new key file is written but before the
    transaction commits (as a killed ``rotate-key`` does); return the lost kid."""
    from ecert.registry._core import Unit

    created: list[str] = []
    real_new_key = Unit.new_key

    def new_key(self: Unit, *args: Any, **kwargs: Any) -> ecert.KeyInfo:
        info = real_new_key(self, *args, **kwargs)
        created.append(info.kid)
        raise KeyboardInterrupt  # the process dies here: the transaction rolls back

    monkeypatch.setattr(Unit, "new_key", new_key)
    with pytest.raises(KeyboardInterrupt):
        registry.rotate_agency_key("gd-amr")
    monkeypatch.undo()
    assert created and created[0] not in key_rows(registry)["known_kids"]
    return created[0]


# -- the home and its keys -------------------------------------------------------------------


def test_fresh_registry_is_healthy(registry: ecert.Registry) -> None:
    findings = doctor.check_home(registry.home, **key_rows(registry))
    assert findings == []


def test_killed_rotate_key_leaves_an_orphan_that_is_reported(
        registry: ecert.Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    lost = killed_rotation(registry, monkeypatch)
    keys_dir = registry.home / "keys"
    assert (keys_dir / f"{lost}.p12").exists()  # the defect: nothing cleans it up
    stray = keys_dir / f".{lost}.p12.0123456789abcdef.tmp"  # killed inside store()
    stray.write_bytes(b"partial")
    findings = doctor.check_home(registry.home, **key_rows(registry))
    assert problems(findings) == [("stray_temporary", stray.name),
                                  ("orphan_key_file", f"{lost}.p12")]
    orphan = next(f for f in findings if f.code == "orphan_key_file")
    assert orphan.severity is doctor.Severity.WARNING and lost in orphan.message
    # Doctor reports only: the files are still there.
    assert (keys_dir / f"{lost}.p12").exists() and stray.exists()


def test_without_key_rows_orphans_are_not_guessed(registry: ecert.Registry,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    killed_rotation(registry, monkeypatch)
    findings = doctor.check_home(registry.home)
    assert problems(findings) == []
    assert "key_rows_unavailable" in codes(findings)


def test_retired_key_file_and_missing_active_key(registry: ecert.Registry) -> None:
    keys_dir = registry.home / "keys"
    old = next(k for k in registry.keys("gd-amr") if k.status is ecert.KeyStatus.ACTIVE)
    saved = (keys_dir / f"{old.kid}.p12").read_bytes()
    new = registry.rotate_agency_key("gd-amr")
    (keys_dir / f"{old.kid}.p12").write_bytes(saved)  # as if destroy() had failed
    os.chmod(keys_dir / f"{old.kid}.p12", 0o600)
    (keys_dir / f"{new.kid}.p12").unlink()
    findings = doctor.check_home(registry.home, **key_rows(registry))
    assert problems(findings) == [("retired_key_file", f"{old.kid}.p12"),
                                  ("key_file_missing", f"{new.kid}.p12")]
    assert next(f for f in findings if f.code == "key_file_missing").severity \
        is doctor.Severity.ERROR


def test_key_rows_without_keys(registry: ecert.Registry, tmp_path: Path) -> None:
    rows = key_rows(registry)
    assert codes(doctor.check_home(tmp_path / "wrong-home", **rows)) == ["keys_dir_missing"]
    shutil.rmtree(registry.home / "keys")
    findings = doctor.check_home(registry.home, **rows)
    assert codes(findings) == ["keys_dir_missing"]
    assert findings[0].severity is doctor.Severity.ERROR


def test_modes_too_open(registry: ecert.Registry) -> None:
    home = registry.home
    key_file = next((home / "keys").glob("*.p12"))
    os.chmod(home, 0o755)
    os.chmod(home / "keys", 0o750)
    os.chmod(key_file, 0o644)
    expected = [("mode_too_open", home.name), ("mode_too_open", "keys"),
                ("mode_too_open", key_file.name)]
    if (home / "registry.db").exists():  # SQLite (not when the tests run on PostgreSQL)
        os.chmod(home / "registry.db", 0o640)
        expected.insert(1, ("mode_too_open", "registry.db"))
    findings = doctor.check_home(home, **key_rows(registry))
    assert problems(findings) == expected
    assert all(f.severity is doctor.Severity.ERROR for f in findings if f.code == "mode_too_open")
    assert "chmod 0600" in next(f.message for f in findings if f.subject == str(key_file))


def test_home_of_a_verifier_only_is_not_judged_by_registry_modes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "verifier-cache").mkdir(parents=True, mode=0o755)
    os.chmod(home, 0o755)
    assert problems(doctor.check_home(home)) == []
    assert codes(doctor.check_home(tmp_path / "nowhere")) == ["home_missing"]


# -- the bundle ------------------------------------------------------------------------------


def test_fresh_bundle_is_healthy(published: Published) -> None:
    _, _, bundle = published
    assert doctor.check_bundle(bundle, now=T0) == []
    # Status lists live a day: "soon" is then half a day, not every moment of their life.
    assert doctor.check_bundle(bundle, now=T0 + 11 * HOUR) == []


def test_bundle_near_expiry_and_expired(published: Published) -> None:
    _, _, bundle = published
    # By default "soon" is six hours (publish --watch republishes with eight left).
    assert doctor.check_bundle(bundle, now=T0 + 17 * HOUR) == []
    soon = doctor.check_bundle(bundle, now=T0 + 19 * HOUR)
    assert problems(soon) == [("status_list_expiring", "1.jwt")]
    assert "(in 5.0 h)" in soon[0].message
    # A threshold of one's own, still at most half the lifetime.
    assert problems(doctor.check_bundle(bundle, now=T0 + 13 * HOUR,
                                        warn_within=12 * HOUR)) == [
        ("status_list_expiring", "1.jwt")]
    assert doctor.check_bundle(bundle, now=T0 + 11 * HOUR, warn_within=48 * HOUR) == []
    week = 7 * 24 * HOUR
    both = doctor.check_bundle(bundle, now=T0 + week - 2 * HOUR)
    assert problems(both) == [("trust_list_expiring", "trustlist.jwt"),
                              ("status_list_expired", "1.jwt")]
    expired = doctor.check_bundle(bundle, now=T0 + week + 1)
    assert codes(expired) == ["trust_list_expired", "status_list_expired"]
    assert all(f.severity is doctor.Severity.ERROR for f in expired)


def test_bundle_documents_missing_or_forged(published: Published,
                                            make_registry: RegistryFactory,
                                            tmp_path: Path) -> None:
    registry, _, bundle = published
    other = make_registry("ZJ")
    other_anchor = tmp_path / "zj.anchor.json"
    other_anchor.write_bytes(other.anchor().to_bytes())
    assert codes(doctor.check_bundle(bundle, anchor=other_anchor, now=T0)) == [
        "trust_list_invalid"]
    assert codes(doctor.check_bundle(bundle, anchor=registry.anchor(), now=T0)) == []
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{", "utf-8")
    assert codes(doctor.check_bundle(bundle, anchor=garbage, now=T0)) == ["anchor_invalid"]

    status = bundle / "status" / "1.jwt"
    token = status.read_text("ascii")
    status.write_text(token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"), "ascii")
    assert codes(doctor.check_bundle(bundle, now=T0)) == ["status_list_invalid"]
    status.unlink()
    (bundle / "status" / ".1.jwt.abcd.tmp").write_bytes(b"")  # a killed publish
    assert problems(doctor.check_bundle(bundle, now=T0)) == [
        ("stray_temporary", ".1.jwt.abcd.tmp"), ("status_list_missing", "1.jwt")]
    (bundle / _bundle.TRUST_LIST_PATH).unlink()
    assert "trust_list_missing" in codes(doctor.check_bundle(bundle, now=T0))
    assert codes(doctor.check_bundle(tmp_path / "nowhere", now=T0)) == ["bundle_missing"]


# -- the verifier state ----------------------------------------------------------------------


def test_verifier_state(published: Published, tmp_path: Path, clock: FakeClock) -> None:
    _, _, bundle = published
    home = tmp_path / "verifier-home"
    assert [(f.code, f.severity) for f in doctor.check_verifier_state(home)] == [
        ("verifier_state_missing", doctor.Severity.INFO)]
    cache = home / "verifier-cache"
    ecert.Verifier.from_bundle(bundle, clock=clock, cache_dir=cache)
    state = cache / "trust-state.json"
    assert state.exists()
    assert doctor.check_verifier_state(home) == []

    os.chmod(state, 0o666)
    assert problems(doctor.check_verifier_state(home)) == [("mode_too_open", state.name)]
    os.chmod(state, 0o644)
    for garbage in (b"{not json", b"\xff\xfe", b"[]", b'{"regions": {"GD": {"sequence": "1"}}}'):
        state.write_bytes(garbage)
        assert problems(doctor.check_verifier_state(home)) == [
            ("verifier_state_malformed", state.name)], garbage
    state.unlink()
    state.mkdir()  # unreadable as a file, whoever runs the tests (root reads anything)
    assert problems(doctor.check_verifier_state(home)) == [
        ("verifier_state_unreadable", state.name)]
    state.rmdir()
    missing = doctor.check_verifier_state(home)
    assert [(f.code, f.severity) for f in missing] == [
        ("verifier_state_missing", doctor.Severity.WARNING)]


def test_report_json_shape(registry: ecert.Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    killed_rotation(registry, monkeypatch)
    report = doctor.diagnose(registry.home, **key_rows(registry))
    data = report.to_json()
    assert data["healthy"] is False and not report.healthy
    assert {tuple(sorted(f)) for f in data["findings"]} == {
        ("code", "message", "severity", "subject")}
    assert doctor.diagnose(None).to_json() == {"healthy": True, "findings": []}


# -- the command -----------------------------------------------------------------------------


def _env(registry: ecert.Registry, home: Path | None = None) -> dict[str, str]:
    env = {"ECERT_HOME": str(home or registry.home), "ECERT_PASSPHRASE": PASSPHRASE}
    if registry.engine.url.drivername.startswith("postgresql"):
        env["ECERT_DATABASE_URL"] = registry.engine.url.render_as_string(hide_password=False)
    return env


def test_cli_doctor(published: Published, monkeypatch: pytest.MonkeyPatch,
                    tmp_path: Path) -> None:
    registry, _, bundle = published
    monkeypatch.setattr(doctor, "_now", lambda: T0 + HOUR)
    runner = CliRunner()
    env = _env(registry)
    ok = runner.invoke(cli, ["doctor", "--bundle", str(bundle), "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["healthy"] is True

    lost = killed_rotation(registry, monkeypatch)
    monkeypatch.setattr(doctor, "_now", lambda: T0 + HOUR)
    bad = runner.invoke(cli, ["doctor", "--bundle", str(bundle), "--json"], env=env)
    assert bad.exit_code == 1, bad.output
    data = json.loads(bad.stdout)
    assert data["healthy"] is False
    assert [(f["code"], f["severity"]) for f in data["findings"]
            if f["severity"] != "info"] == [("orphan_key_file", "warning")]
    assert lost in data["findings"][0]["subject"]
    human = runner.invoke(cli, ["doctor"], env=env)
    assert human.exit_code == 1
    assert human.stdout.splitlines()[0].startswith("warning: orphan_key_file: ")
    assert human.stdout.splitlines()[-1] == "1 problem(s) found"

    usage = runner.invoke(cli, ["doctor", "--anchor", str(bundle / "anchor.json")], env=env)
    assert usage.exit_code == 2 and len(usage.stderr.splitlines()) == 1
    missing = runner.invoke(cli, ["doctor", "--bundle", str(tmp_path / "none")], env=env)
    assert missing.exit_code == 2


def test_cli_doctor_without_a_registry_still_checks_the_bundle(
        published: Published, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _, _, bundle = published
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    monkeypatch.setattr(doctor, "_now", lambda: T0 + HOUR)
    env = {"ECERT_HOME": str(tmp_path / "no-home")}
    runner = CliRunner()
    ok = runner.invoke(cli, ["doctor", "--bundle", str(copy), "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    assert "registry_unavailable" in [f["code"] for f in json.loads(ok.stdout)["findings"]]
    (copy / "trustlist.jwt").write_text("garbage", "ascii")
    bad = runner.invoke(cli, ["doctor", "--bundle", str(copy),
                              "--anchor", str(bundle / "anchor.json")], env=env)
    assert bad.exit_code == 1
    assert "error: trust_list_invalid: " in bad.stdout


# -- the publication watcher and the bundle it keeps -------------------------------------------


def _lease(expires_at: int) -> ecert.Lease:
    from datetime import UTC, datetime

    def at(seconds: int) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    return ecert.Lease("publish", "abc", "pub-1.example", 77, "/srv/www", at(T0), at(T0),
                       at(expires_at))


def test_check_lease() -> None:
    assert doctor.check_lease(None, now=T0) == []
    running = doctor.check_lease(_lease(T0 + 1800), now=T0)
    assert [(f.code, f.severity) for f in running] == [("publish_watcher", doctor.Severity.INFO)]
    assert "pub-1.example (pid 77) publishing to /srv/www" in running[0].message
    stopped = doctor.check_lease(_lease(T0 + 1800), now=T0 + 1800)
    assert [(f.code, f.severity, f.subject) for f in stopped] == [
        ("publish_watcher_stopped", doctor.Severity.WARNING, "/srv/www")]
    assert "stopped renewing its lease at 2026-01-01 00:30:00Z" in stopped[0].message


def test_cli_doctor_checks_the_last_published_bundle_and_the_watcher(
        registry: ecert.Registry, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    bundle = tmp_path / "www"
    issue_business_licence(registry)
    registry.publish(bundle, collect=False)
    env = _env(registry)
    runner = CliRunner()

    def run(*args: str) -> tuple[int, list[tuple[str, str]]]:
        result = runner.invoke(cli, ["doctor", *args, "--json"], env=env)
        assert "Traceback" not in result.output
        return result.exit_code, [(f["code"], f["severity"])
                                  for f in json.loads(result.stdout)["findings"]
                                  if f["code"] != "verifier_state_missing"]

    monkeypatch.setattr(doctor, "_now", lambda: T0 + 3 * HOUR)
    assert run() == (0, [])
    monkeypatch.setattr(doctor, "_now", lambda: T0 + 19 * HOUR)
    # No --bundle: the directory the registry last published to.
    assert run() == (1, [("status_list_expiring", "warning")])
    assert run("--warn-before", "4h") == (0, [])
    assert run("--warn-before", "0") == (0, [])
    monkeypatch.setattr(doctor, "_now", lambda: T0 + 25 * HOUR)
    assert run("--warn-before", "4h") == (1, [("status_list_expired", "error")])
    human = runner.invoke(cli, ["doctor", "--warn-before", "soon"], env=env)
    assert human.exit_code == 2 and "--warn-before" in human.stderr
    # A watcher that died without releasing its lease.
    with registry._ctx._write() as repo:
        repo.take_lease("publish", "gone", host="pub-1.example", pid=77, directory=str(bundle),
                        now=T0, expires_at=T0 + 1800)
    monkeypatch.setattr(doctor, "_now", lambda: T0 + HOUR)
    assert run() == (1, [("publish_watcher_stopped", "warning")])
    monkeypatch.setattr(doctor, "_now", lambda: T0 + 600)
    assert run() == (0, [("publish_watcher", "info")])
    # Published elsewhere (another machine): said, not judged.
    shutil.rmtree(bundle)
    assert run() == (0, [("publish_watcher", "info"), ("bundle_elsewhere", "info")])
