"""``ecert share fetch … --card FILE`` end to end: ZJ's agency fetches from GD's sharing
service on a real uvicorn over loopback (tests/support/sharing_world.py), the card is
drawn, its QR code read back from the picture and verified with ``ecert verify
--image`` for the requester and purpose — and refused for any other."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecert import _samples
from ecert import qr as ecert_qr
from ecert._formats.jose import parse_compact
from ecert._formats.statuslist import INVALID
from tests.support.cli import Cli
from tests.support.constants import PASSPHRASE
from tests.support.issuing import uscc
from tests.support.regions import BL
from tests.support.sharing import write_status
from tests.support.sharing_world import SharingWorld, running_world, sample_request

GRANTED = sample_request("granted with consent")
PURPOSE = GRANTED["purpose"]
OTHER_PURPOSE = "食品经营许可核发"  # also ZJ/zj-amr's, in GD's entitlement
REQUESTER = "ZJ/zj-amr"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharingWorld]:
    yield from running_world(tmp_path_factory.mktemp("copy-cards"))


def zj(world: SharingWorld, lang: str = "en") -> Cli:
    """ZJ's registry home, where the requesting agency runs ``share fetch``."""
    return Cli(world["ZJ"].home, world.database_urls["ZJ"],
               env={"ECERT_PASSPHRASE": PASSPHRASE, "ECERT_LANG": lang}, clock=world.clock)


def fetch_args(world: SharingWorld, case: str, holder_id: str | None = None) -> list[str]:
    assert world.service is not None
    return ["share", "fetch", world.service.base_url, "--agency", "zj-amr", "--holder-id",
            holder_id or world.holder_id, "--type", BL, "--purpose", PURPOSE, "--case", case,
            "--staff-id", "zj-0042"]


def verify_image(world: SharingWorld, tmp: Path, image: Path, *args: str) -> tuple[int, Any]:
    """``ecert verify --image`` with ZJ's bundle (which recognizes GD), as a third
    party would: no registry, only the verifier's cache."""
    run = Cli(tmp / "verifier", None, env={"ECERT_LANG": "en"}, clock=world.clock)
    result = run("verify", "--image", str(image), "--bundle", str(world.static.root / "zj"),
                 *args, "--json")
    return result.exit_code, json.loads(result.stdout)


def test_a_fetched_copy_is_drawn_and_its_card_verifies_for_its_use_only(
        world: SharingWorld, tmp_path: Path) -> None:
    consent = world.consent(REQUESTER, PURPOSE)
    card = tmp_path / "copy.png"
    found = zj(world).json(*fetch_args(world, "ZJ-CARD-1"), "--consent", consent.code,
                           "--card", str(card))
    (copy,) = found["copies"]
    assert copy["card"]["file"] == str(card) and card.is_file()
    assert copy["card"]["size"] == "a5" and copy["card"]["qr_version"] <= 25
    assert copy["card"]["qr_error"] == "Q"
    for part in (PURPOSE, "ZJ-CARD-1", REQUESTER, "valid until"):
        assert part in copy["card"]["watermark"]
    # The card's QR code is the copy: read from the picture, it verifies offline.
    assert ecert_qr.decode_qr_image(card).startswith("EC1:")
    code, accepted = verify_image(world, tmp_path, card, "--audience", REQUESTER,
                                  "--purpose", PURPOSE)
    assert code == 0 and accepted["valid"] is True, accepted
    assert (accepted["kind"], accepted["copy"]["copy_of"], accepted["copy"]["case"]) == (
        "copy", world.licence.id, "ZJ-CARD-1")
    assert accepted["copy"]["id"] == parse_compact(copy["token"], max_bytes=1 << 20).payload[
        "jti"]  # the very copy fetched
    # Shown for another requester, another purpose, or without saying for whom: refused.
    for args, error in ((["--audience", "ZJ/zj-psb-traffic", "--purpose", PURPOSE],
                         "wrong_audience"),
                        (["--audience", REQUESTER, "--purpose", OTHER_PURPOSE], "wrong_purpose"),
                        ([], "audience_required")):
        code, refused = verify_image(world, tmp_path, card, *args)
        assert code == 1 and refused["errors"] == [error], refused


def test_the_card_speaks_chinese_by_default_and_english_when_asked(
        world: SharingWorld, tmp_path: Path) -> None:
    shown = {}
    for lang in ("zh_CN", "en"):
        consent = world.consent(REQUESTER, PURPOSE)
        card = tmp_path / f"copy-{lang}.svg"
        run = zj(world, lang).ok(*fetch_args(world, f"ZJ-LANG-{lang}"), "--consent",
                                 consent.code, "--card", str(card))
        assert str(card) in run.stdout
        assert ("加注件的卡片" in run.stdout) is (lang == "zh_CN")  # "card of copy 1: …"
        shown[lang] = "\n".join(re.findall(r"<text[^>]*>([^<]*)</text>",
                                           card.read_text("utf-8")))
    assert "电子证照加注件" in shown["zh_CN"] and f"用证事由：{PURPOSE}" in shown["zh_CN"]
    assert "营业执照" in shown["zh_CN"]  # ZJ's own type: its name and claim labels
    assert "PURPOSE-BOUND COPY" in shown["en"] and f"Purpose: {PURPOSE}" in shown["en"]
    assert "加注件" not in shown["en"]


def test_several_copies_get_a_card_each(world: SharingWorld, tmp_path: Path) -> None:
    gd = world["GD"]
    holder = uscc(7001)
    claims = {**_samples.claims("business-licence-gd"), "uscc": holder}
    issued = {gd.issue(BL, "gd-amr", holder_id=holder, holder_name=claims["name"],
                       claims={**claims, "address": address}).id
              for address in ("广州市天河区一号", "广州市天河区二号")}
    world.publish("GD")
    consent = gd.consent_grant(holder, REQUESTER, (BL,), PURPOSE, 3600)
    card = tmp_path / "copies.png"
    found = zj(world).json(*fetch_args(world, "ZJ-MANY-1", holder), "--consent",
                           consent.code, "--card", str(card))
    assert {c["copy_of"] for c in found["copies"]} == issued
    files = [Path(c["card"]["file"]) for c in found["copies"]]
    assert sorted(f.name for f in files) == ["copies-1.png", "copies-2.png"]
    assert not card.exists()
    read = set()
    for file in files:
        code, accepted = verify_image(world, tmp_path, file, "--audience", REQUESTER)
        assert code == 0, accepted
        read.add(accepted["copy"]["copy_of"])
    assert read == issued


def test_a_bad_card_file_is_refused_before_the_consent_code_is_spent(
        world: SharingWorld, tmp_path: Path) -> None:
    consent = world.consent(REQUESTER, PURPOSE)
    run = zj(world)
    for card, words in ((tmp_path / "copy.pdf", ".png or .svg"),
                        (tmp_path / "no-such-dir" / "copy.png", "does not exist")):
        message = run.fails(*fetch_args(world, "ZJ-BAD-1"), "--consent", consent.code,
                            "--card", str(card))
        assert words in message
    # The code was not used: it still fetches.
    found = run.json(*fetch_args(world, "ZJ-BAD-1"), "--consent", consent.code)
    assert len(found["copies"]) == 1


def test_a_copy_that_does_not_verify_gets_no_card_but_is_printed(
        world: SharingWorld, tmp_path: Path) -> None:
    # GD's published status list says the licence is revoked (the registry does not yet):
    # the copy is served, but our verifier refuses it, so no card is drawn.
    world.publish("GD")
    now = int(world.clock().timestamp())
    write_status(world["GD"], world.static.root / "gd", world.licence, INVALID, now=now)
    try:
        consent = world.consent(REQUESTER, PURPOSE)
        card = tmp_path / "copy.png"
        run = zj(world)(*fetch_args(world, "ZJ-REVOKED-1"), "--consent", consent.code,
                        "--card", str(card), "--json")
        assert run.exit_code == 1, run.output
        (copy,) = json.loads(run.stdout)["copies"]
        assert copy["token"] and copy["card"] is None
        assert copy["card_error"]["code"] == "copy_not_valid"
        assert "revoked" in copy["card_error"]["message"]
        assert run.stderr.startswith("ecert: error: copy 1 does not verify (revoked")
        assert not card.exists()
    finally:
        world.publish("GD")
