"""``ecert renew``, ``reissue``, ``suspend --reason``, ``list --name`` and ``show`` through
the CLI (issue 9, "Upkeep")."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Cli
from tests.support.clock import FakeClock
from tests.support.issuing import uscc
from tests.test_cli import gd, gd_home, issue_bl, run, write_json  # noqa: F401 - fixtures

__all__ = ["gd", "run"]


def test_renew_and_reissue(gd: Cli, tmp_path: Path, clock: FakeClock) -> None:
    first = issue_bl(gd, tmp_path)
    renewed = gd.json("renew", first["id"], "--valid-until", "2031-12-31")
    new, old = renewed["certificate"], renewed["replaced"]
    assert old["id"] == first["id"] and old["status"] == "revoked"
    assert old["revocation_reason"] == "superseded"
    assert new["supersedes"] == first["id"] and new["claims"] == first["claims"]
    # Dates are days in the registry's time zone (Asia/Shanghai): through the end of 12-31.
    assert new["valid_until"] == "2031-12-31T16:00:00Z"

    patch = write_json(tmp_path / "patch.json", {"address": "广州市天河区1号"})
    human = gd.ok("reissue", new["id"], "--claims-patch", patch, "--valid-from", "2026-03-01",
                  "--at-start").stdout
    assert f"{new['id']} stays valid until 2026-03-01 00:00," in human  # local time
    third = gd.items("list", "--status", "valid")
    assert next(c["id"] for c in third) == new["id"] and len(third) == 2
    assert third[1]["claims"]["address"] == "广州市天河区1号"
    assert third[1]["valid_until"] == new["valid_until"]
    assert gd.json("show", new["id"])["revoke_at"] == "2026-02-28T16:00:00Z"
    assert "scheduled at 2026-03-01" in gd.ok("show", new["id"]).stdout
    bad = write_json(tmp_path / "bad.json", ["not", "an", "object"])
    assert "merge patch" in gd.fails("reissue", third[1]["id"], "--claims-patch", bad)
    gd.fails("reissue", third[1]["id"])  # --claims-patch is required
    report = gd.json("audit", "verify")
    assert report["intact"] is True, report


def test_suspend_reason_shows_in_show_and_history(gd: Cli, tmp_path: Path) -> None:
    cert = issue_bl(gd, tmp_path)
    gd.ok("suspend", cert["id"], "--reason", "材料待核实")
    assert "reason:      材料待核实" in gd.ok("show", cert["id"]).stdout
    assert gd.json("show", cert["id"])["status_note"] == "材料待核实"
    assert "(材料待核实)" in gd.ok("audit", "history", cert["id"]).stdout
    events = gd.items("events", cert["id"])
    assert events[-1]["note"] == "材料待核实"


def test_list_by_name_and_pages_in_human_output(gd: Cli, tmp_path: Path) -> None:
    a = issue_bl(gd, tmp_path)
    b = issue_bl(gd, tmp_path, uscc=uscc(4242, "91110108MA"), name="深圳市前海另一家公司")
    assert [c["id"] for c in gd.items("list", "--name", "深圳市前海")] == [a["id"], b["id"]]
    assert [c["id"] for c in gd.items("list", "--name", "深圳市前海另")] == [b["id"]]
    out = gd.ok("list", "--name", "深圳", "--limit", "1").stdout
    assert "1 shown, more: use --after " in out
    cursor = out.rsplit("--after ", 1)[1].strip()
    assert [c["id"] for c in gd.items("list", "--name", "深圳", "--after", cursor)] == [b["id"]]
    for listing in (("type", "list"), ("agency", "list"), ("operator", "list"),
                    ("policy", "list"), ("requests",), ("events",)):
        page = gd.json(*listing, "--limit", "1")
        assert set(page) == {"items", "more", "next"}
        assert len(page["items"]) <= 1
        if page["more"]:
            following = gd.json(*listing, "--limit", "1", "--after", page["next"])
            assert following["items"] and following["items"] != page["items"]
