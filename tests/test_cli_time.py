"""Times as clerks live them: a date typed means that day in the registry's time zone
(Asia/Shanghai unless ``init --tz``), human output shows local times and dates, JSON
keeps UTC ISO 8601."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import ecert
from ecert._clock import end_of_day, start_of_day
from ecert.verify import VerificationLimits
from tests.support.cli import Cli, agency_args, type_args
from tests.support.clock import FakeClock

DATA = Path(ecert.__file__).parent / "_data"
BL = "cn.business-licence"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_end_of_day_is_local_midnight() -> None:
    day = date(2030, 12, 31)
    assert end_of_day(day, SHANGHAI) == int(datetime(2030, 12, 31, 16, tzinfo=UTC).timestamp())
    assert start_of_day(day, SHANGHAI) == int(datetime(2030, 12, 30, 16, tzinfo=UTC).timestamp())
    assert end_of_day(day) == int(datetime(2031, 1, 1, tzinfo=UTC).timestamp())  # UTC default
    # A day with a daylight-saving change is 23 hours long; the end is still midnight.
    new_york = ZoneInfo("America/New_York")
    spring = date(2030, 3, 10)
    assert end_of_day(spring, new_york) - start_of_day(spring, new_york) == 23 * 3600
    assert end_of_day(date.max, SHANGHAI) - start_of_day(date.max, SHANGHAI) == 86_400


@pytest.fixture
def clock() -> FakeClock:
    # 2030-12-30 08:00 in Beijing.
    return FakeClock(datetime(2030, 12, 30, 0, 0, tzinfo=UTC))


def _cli(tmp_path: Path, database_url: str | None, clock: FakeClock, *tz: str) -> Cli:
    run = Cli(tmp_path / "home", database_url, env={
        "ECERT_PASSPHRASE": "registry pass", "ECERT_OPERATOR": "admin",
        "ECERT_OPERATOR_PASSPHRASE": "admin pass", "ECERT_HOME": None,
        "ECERT_DATABASE_URL": None}, clock=clock)
    run.ok("init", "--region", "GD", "--name", "广东省", "--base-url",
           "https://ecert.gd.example", *tz)
    run.ok(*type_args(BL))
    for code in ("cn.food-business-licence", "cn.professional-qualification"):
        run.ok(*type_args(code))
    run.ok(*agency_args("gd-amr"))
    return run


def _issue(run: Cli, *extra: str) -> dict[str, Any]:
    claims = DATA / "claims" / "business-licence-gd.json"
    data = json.loads(claims.read_text("utf-8"))
    return dict(run.json("issue", "--type", BL, "--agency", "gd-amr", "--holder-id",
                         data["uscc"], "--holder-name", data["name"], "--claims", str(claims),
                         *extra))


def test_a_licence_ending_on_12_31_ends_at_midnight_in_beijing(
        tmp_path: Path, database_url: str | None, clock: FakeClock) -> None:
    run = _cli(tmp_path, database_url, clock)
    cert = _issue(run, "--valid-until", "2030-12-31")
    assert cert["valid_until"] == "2030-12-31T16:00:00Z"  # JSON: UTC
    shown = run.ok("show", cert["id"]).stdout
    assert "2030-12-30 to 2030-12-31" in shown
    bundle = tmp_path / "bundle"
    run.ok("publish", str(bundle), "--status-list-hours", "72", "--no-collect")
    clock.now = datetime(2030, 12, 31, 15, 59, 59, tzinfo=UTC)  # 23:59:59 on 12-31 local
    ok = run("verify", "--bundle", str(bundle), cert["token"])
    assert ok.exit_code == 0, ok.output
    assert "valid:  2030-12-30 to 2030-12-31" in ok.stdout
    # 00:00 on 01-01 local, plus the verifier's leeway for clock skew (60 s).
    clock.now = datetime(2030, 12, 31, 16, 0, 0, tzinfo=UTC) + timedelta(
        seconds=VerificationLimits().leeway_seconds)
    gone = run("verify", "--bundle", str(bundle), cert["token"])
    assert gone.exit_code == 1, gone.output
    assert "NOT VALID (expired)" in gone.stdout


def test_times_and_dates_are_local_in_human_output(
        tmp_path: Path, database_url: str | None, clock: FakeClock) -> None:
    run = _cli(tmp_path, database_url, clock)
    clock.now = datetime(2030, 12, 30, 16, 30, tzinfo=UTC)  # 00:30 on 12-31 in Beijing
    cert = _issue(run, "--valid-until", "2031-06-30")
    assert cert["issued_at"] == "2030-12-30T16:30:00Z"
    listed = run.ok("list").stdout
    assert "2030-12-31" in listed and "2030-12-30" not in listed
    events = run.ok("events", cert["id"]).stdout
    assert "2030-12-31 00:30" in events
    # ECERT_TZ overrides the registry's zone for display.
    utc = run.ok("list", env={"ECERT_TZ": "UTC"}).stdout
    assert "2030-12-30" in utc
    assert "2030-12-30 16:30" in run.ok("events", cert["id"], env={"ECERT_TZ": "UTC"}).stdout
    # Chinese dates as clerks write them.
    zh = run.ok("show", cert["id"], env={"ECERT_LANG": "zh"}).stdout
    assert "2030年12月31日 至 2031年6月30日" in zh
    # JSON is the same whatever the zone or language.
    assert run.json("show", cert["id"], env={"ECERT_TZ": "UTC", "ECERT_LANG": "zh"}) == \
        run.json("show", cert["id"])


def test_init_tz_sets_the_zone_of_typed_dates(
        tmp_path: Path, database_url: str | None, clock: FakeClock) -> None:
    run = _cli(tmp_path, database_url, clock, "--tz", "Europe/Berlin")
    cert = _issue(run, "--valid-until", "2030-12-31")
    assert cert["valid_until"] == "2030-12-31T23:00:00Z"  # CET is UTC+1 in winter
    assert "to 2030-12-31" in run.ok("show", cert["id"]).stdout
    with ecert.Registry.open(tmp_path / "home", database_url=database_url,
                             passphrase="registry pass") as registry:
        assert registry.region.tz == "Europe/Berlin"


def test_an_unknown_zone_is_refused(tmp_path: Path, database_url: str | None,
                                    clock: FakeClock) -> None:
    run = Cli(tmp_path / "home", database_url, env={
        "ECERT_PASSPHRASE": "p", "ECERT_OPERATOR": "admin",
        "ECERT_OPERATOR_PASSPHRASE": "a", "ECERT_HOME": None,
        "ECERT_DATABASE_URL": None}, clock=clock)
    message = run.fails("init", "--region", "GD", "--name", "x", "--base-url",
                        "https://ecert.gd.example", "--tz", "Mars/Olympus")
    assert "Mars/Olympus" in message
    assert not (tmp_path / "home" / "registry.db").exists()
    with pytest.raises(ecert.InputError):
        ecert.Registry.init(tmp_path / "lib", region="GD", name="x",
                            base_url="https://ecert.gd.example",
                            admin=ecert.OperatorCredential("admin", passphrase="a"),
                            passphrase="p", tz="Not/AZone")


def test_newer_commands_read_and_show_days_in_the_registry_zone(
        tmp_path: Path, database_url: str | None, clock: FakeClock) -> None:
    """renew/reissue, agency update --from, the card and the watcher's lines all use the
    registry's zone (Europe/Berlin here), not UTC nor the machine's."""
    run = _cli(tmp_path, database_url, clock, "--tz", "Europe/Berlin")
    cert = _issue(run)
    renewed = run.json("renew", cert["id"], "--valid-from", "2031-01-10", "--valid-until",
                       "2031-06-30", "--at-start")["certificate"]
    assert renewed["valid_from"] == "2031-01-09T23:00:00Z"  # midnight in Berlin (CET)
    assert renewed["valid_until"] == "2031-06-30T22:00:00Z"  # end of 06-30 in CEST
    assert run.json("show", cert["id"])["revoke_at"] == "2031-01-09T23:00:00Z"
    agency = run.json("agency", "update", "gd-amr", "--deny-type",
                      BL, "--from", "2031-02-01")
    assert agency["type_windows"][0]["until"] == "2031-01-31T23:00:00Z"
    listed = run.ok("agency", "list").stdout
    assert "until 2031-02-01 00:00" in listed  # shown in the registry's zone


def test_card_dates_are_days_in_the_given_zone() -> None:
    from ecert.card import _date

    end = datetime(2030, 12, 31, 16, tzinfo=UTC)  # the end of 12-31 in Beijing
    assert _date(end, SHANGHAI, end=True) == "2030-12-31"
    assert _date(datetime(2030, 12, 30, 16, tzinfo=UTC), SHANGHAI) == "2030-12-31"
    assert _date(datetime(2030, 12, 30, 16, tzinfo=UTC), UTC) == "2030-12-30"
    assert _date(None, SHANGHAI) == "长期"


def test_watch_lines_use_the_registry_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from ecert_cli._registry import _local

    monkeypatch.setenv("ECERT_TZ", "Asia/Shanghai")
    monkeypatch.setenv("TZ", "America/New_York")  # the machine's zone does not count
    with click.Context(click.Command("x")):
        assert _local(datetime(2030, 12, 30, 16, 30, tzinfo=UTC)) == \
            "2030-12-31 00:30:00+08:00"
