"""Holder id schemes (GB 11643 resident ids, GB 32100 credit codes, patterns) and the text
rules of certificates: pure checks, with property tests."""

from __future__ import annotations

import csv
import unicodedata
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ecert._formats.text import (
    MAX_NAME,
    TextInvalid,
    bad_character,
    check_claims_text,
    check_text,
)
from ecert.errors import EcertError, InputError
from ecert.holder_ids import (
    HolderIdInvalid,
    check_holder_claims,
    check_resident_id,
    check_uscc,
    code_claims,
    normalize_claims,
    normalize_id,
    parse_scheme,
)
from tests.support import uscc

HOLDERS = list(csv.DictReader((Path(__file__).parent / "data" / "holders.csv")
                              .read_text("utf-8").splitlines()))
RESIDENT_IDS = [h["holder_id"] for h in HOLDERS if len(h["holder_id"]) == 18
                and h["holder_id"][:17].isdigit()]
USCCS = [h["holder_id"] for h in HOLDERS if h["holder_id"] not in RESIDENT_IDS]
TODAY = date(2026, 1, 1)
WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def resident_id(body17: str) -> str:
    """A resident id with its MOD 11-2 check character, computed apart from the library."""
    total = sum(int(c) * w for c, w in zip(body17, WEIGHTS, strict=True))
    return body17 + "10X98765432"[total % 11]


def to_full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def test_the_sample_holders_are_valid() -> None:
    assert len(RESIDENT_IDS) == 2 and len(USCCS) == 2
    for value in RESIDENT_IDS:
        assert check_resident_id(value, today=TODAY) == value
        assert parse_scheme("resident-id").check(value) == value
    for value in USCCS:
        assert check_uscc(value) == value
        assert parse_scheme("uscc").check(value) == value


def test_full_width_and_lower_case_ids_are_normalised() -> None:
    assert normalize_id(" ９１４４０３００ｍａ５ｆ３ｋ２Ｌ８ｇ ") == "91440300MA5F3K2L8G"
    assert check_uscc("91440300ma5f3k2l8g") == "91440300MA5F3K2L8G"
    x_id = resident_id("11010519491231002")
    assert x_id.endswith("X")
    assert check_resident_id(to_full_width(x_id.lower()), today=TODAY) == x_id
    assert check_resident_id(x_id[:6] + " " + x_id[6:14] + "\u3000" + x_id[14:]) == x_id


@pytest.mark.parametrize(("value", "code"), [
    ("", "holder_id_empty"),
    ("   ", "holder_id_empty"),
    ("33010619851122342", "holder_id_length"),
    ("3301061985112234221", "holder_id_length"),
    ("33010619851122342Y", "holder_id_characters"),
    ("3301061985112234X2", "holder_id_characters"),
    ("٣٣0106198511223422", "holder_id_characters"),  # Arabic-Indic digits are not digits here
    (resident_id("00010619851122342"), "holder_id_region"),
    (resident_id("33010619851322342"), "holder_id_birth_date"),  # month 13
    (resident_id("33010618851122342"), "holder_id_birth_date"),  # born 1885
    (resident_id("33010620300101342"), "holder_id_birth_date"),  # born in 2030
    (resident_id("33010619850229342"), "holder_id_birth_date"),  # no 29 Feb in 1985
    ("330106198511223421", "holder_id_check"),
])
def test_resident_id_refusals_say_why(value: str, code: str) -> None:
    with pytest.raises(HolderIdInvalid) as info:
        check_resident_id(value, today=TODAY)
    assert info.value.code == code
    assert isinstance(info.value, InputError)


def test_a_wrong_check_character_is_not_given_away() -> None:
    with pytest.raises(HolderIdInvalid) as info:
        check_uscc("91440300MA5F3K2L8X")
    assert info.value.code == "holder_id_check"
    assert "should" not in info.value.message and "expected" not in info.value.message
    # The right one (G) is not named.
    assert "G" not in info.value.message.replace("GB 32100", "")


@pytest.mark.parametrize(("value", "code"), [
    ("9144030MA5F3K2L8G", "holder_id_length"),
    ("91440300MA5F3K2L8GG", "holder_id_length"),
    ("91440300MA5F3K2I8G", "holder_id_characters"),  # I
    ("91440300MA5F3K2O8G", "holder_id_characters"),  # O
    ("91440300MA5F3K2Z8G", "holder_id_characters"),  # Z
    ("91440300MA5F3K2S8G", "holder_id_characters"),  # S
    ("91440300MA5F3K2V8G", "holder_id_characters"),  # V
    ("9144A300MA5F3K2L8G", "holder_id_region"),
    ("91440300MA5F3K2L8X", "holder_id_check"),
])
def test_uscc_refusals_say_why(value: str, code: str) -> None:
    with pytest.raises(HolderIdInvalid) as info:
        check_uscc(value)
    assert info.value.code == code


def test_pattern_schemes() -> None:
    scheme = parse_scheme("pattern:HK[0-9]{6}")
    assert str(scheme) == "pattern:HK[0-9]{6}"
    assert scheme.check("hk１２３４５６") == "HK123456"
    with pytest.raises(HolderIdInvalid) as info:
        scheme.check("HK12345")
    assert info.value.code == "holder_id_pattern"
    with pytest.raises(HolderIdInvalid) as info:
        scheme.check("HK" + "1" * 100)
    assert info.value.code == "holder_id_length"
    for bad in ("pattern:", "pattern:([", "passport", "pattern:" + "a" * 600):
        with pytest.raises(InputError) as refused:
            parse_scheme(bad)
        assert refused.value.code == "invalid_holder_id_scheme"


@given(st.from_regex(r"[1-6][0-9]{5}(19[0-9]{2}|200[0-9])(0[1-9]|1[0-2])(0[1-9]|1[0-9]|2[0-8])"
                     r"[0-9]{3}", fullmatch=True),
       st.integers(0, 16), st.integers(0, 9))
def test_every_single_digit_typo_of_a_resident_id_is_caught(body: str, at: int,
                                                             digit: int) -> None:
    value = resident_id(body)
    if value[:2] not in {"11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33",
                         "34", "35", "36", "37", "41", "42", "43", "44", "45", "46", "50",
                         "51", "52", "53", "54", "61", "62", "63", "64", "65"}:
        return
    assert check_resident_id(value, today=TODAY) == value
    typo = value[:at] + str(digit) + value[at + 1:]
    if typo != value:
        with pytest.raises(HolderIdInvalid):
            check_resident_id(typo, today=TODAY)


@given(st.integers(0, 9_999_999), st.integers(0, 16),
       st.sampled_from("0123456789ABCDEFGHJKLMNPQRTUWXY"))
def test_every_single_character_typo_of_a_uscc_is_caught(number: int, at: int,
                                                        char: str) -> None:
    value = uscc(number)
    assert check_uscc(value) == value
    typo = value[:at] + char + value[at + 1:]
    if typo != value:
        with pytest.raises(HolderIdInvalid):
            check_uscc(typo)


@given(st.text(max_size=40), st.sampled_from(["resident-id", "uscc", "pattern:[0-9A-Z]+"]))
def test_arbitrary_text_is_an_id_or_a_holder_id_error(text: str, scheme: str) -> None:
    try:
        value = parse_scheme(scheme).check(text, today=TODAY)
    except HolderIdInvalid as e:
        assert e.code.startswith("holder_id_")
        assert "\n" not in e.message
    else:
        assert value == normalize_id(value) and value.isascii() and value.isalnum()


# -- claims holding codes, holder claims --------------------------------------------------------

SCHEMA = {"type": "object", "properties": {
    "uscc": {"type": "string", "format": "uscc"},
    "id": {"type": "string", "format": "cn-resident-id"},
    "name": {"type": "string"}}}


def test_code_claims_are_normalised_names_are_not() -> None:
    assert code_claims(SCHEMA) == {"uscc": "uscc", "id": "resident-id"}
    claims = {"uscc": "９１４４０３００ｍａ５ｆ３ｋ２ｌ８ｇ", "id": "x", "name": "ＡＢＣ 王"}
    assert normalize_claims(SCHEMA, claims) == {
        "uscc": "91440300MA5F3K2L8G", "id": "X", "name": "ＡＢＣ 王"}


def test_holder_claims_must_name_claims_of_the_schema() -> None:
    assert check_holder_claims({"holder_id": "uscc", "holder_name": "name"}, SCHEMA) == {
        "holder_id": "uscc", "holder_name": "name"}
    for bad in ({"holder_id": "nope"}, {"holder": "uscc"}, {"holder_id": 3}, ["uscc"]):
        with pytest.raises(InputError) as info:
            check_holder_claims(bad, SCHEMA)  # type: ignore[arg-type]
        assert info.value.code == "invalid_holder_claims"


# -- text ---------------------------------------------------------------------------------------

MINORITY_NAMES = [
    "阿依古丽·买买提",  # Uyghur name in Chinese, middle dot
    "帕尔哈提・吐尔逊",  # the katakana middle dot some keyboards give
    "ئەخمەت",  # Uyghur in Arabic script
    "ᠪᠠᠲᠤ",  # traditional Mongolian
    "ᠨᠠ\u180eᠠ",  # Mongolian vowel separator
    "བཀྲ་ཤིས་",  # Tibetan (combining marks)
    "क्‍ष",  # ZWJ
    "می\u200cخواهم",  # ZWNJ
    "葛\U000e0100",  # an ideographic variation selector (生僻字 glyph variant)
    "\U00030000",  # CJK Extension G
    "\ue000",  # private use (legacy encodings of rare characters)
    "José Müller",
    "e\u0301",  # combining acute
]


@pytest.mark.parametrize("name", MINORITY_NAMES)
def test_names_minority_languages_need_are_kept_as_typed(name: str) -> None:
    assert check_text(name, label="holder name", required=True) == name


@pytest.mark.parametrize(("text", "code"), [
    ("王\n丽华", "text_control"),
    ("王\r丽华", "text_control"),
    ("王\t丽华", "text_control"),
    ("王\x00", "text_control"),
    ("王\x1b[31m", "text_control"),
    ("王\x85", "text_control"),  # NEL (C1)
    ("王\x9b", "text_control"),  # CSI (C1)
    ("王\u2028丽华", "text_control"),
    ("王\u2029丽华", "text_control"),
    ("\u202eabc", "text_bidi"),
    ("\u202aabc", "text_bidi"),
    ("\u202dabc", "text_bidi"),
    ("\u2066abc\u2069", "text_bidi"),
    ("\u2067abc", "text_bidi"),
    ("\u2068abc", "text_bidi"),
    ("王\u200b丽", "text_format"),  # zero-width space
    ("\ufeff王", "text_format"),
    ("王\U000e0041", "text_format"),  # a tag character
    ("王\ufdd0", "text_noncharacter"),
    ("王\uffff", "text_noncharacter"),
    ("王\U0010fffe", "text_noncharacter"),
    ("王\ud800", "text_noncharacter"),
    ("", "text_empty"),
    ("  ", "text_empty"),
    ("王" * (MAX_NAME + 1), "text_too_long"),
])
def test_text_that_could_fake_output_is_refused(text: str, code: str) -> None:
    with pytest.raises(TextInvalid) as info:
        check_text(text, label="holder name", max_length=MAX_NAME, required=True)
    assert info.value.code == code
    assert "\n" not in info.value.message


def test_no_noncharacter_is_printable() -> None:
    # The text checks' fast path (str.isprintable at C speed) relies on it: noncharacters
    # are permanently unassigned (Cn). A Python whose Unicode data said otherwise fails
    # here rather than letting one through.
    nonchars = [*range(0xFDD0, 0xFDF0), *(p << 16 | 0xFFFE for p in range(17)),
                *(p << 16 | 0xFFFF for p in range(17))]
    assert not any(chr(cp).isprintable() for cp in nonchars)
    for cp in nonchars:
        with pytest.raises(TextInvalid):
            check_claims_text({"name": f"王{chr(cp)}"})


def test_claims_text_checks_names_values_and_depth() -> None:
    check_claims_text({"a": ["b", {"c": "d·e"}], "n": 1, "z": None})
    for claims, code in (({"a": ["x\ny"]}, "text_control"), ({"a\u202e": "x"}, "text_bidi"),
                         ({"a": "x" * 10_001}, "text_too_long")):
        with pytest.raises(TextInvalid) as info:
            check_claims_text(claims)
        assert info.value.code == code
    deep: object = "x"
    for _ in range(40):
        deep = [deep]
    with pytest.raises(TextInvalid) as info:
        check_claims_text({"a": deep})
    assert info.value.code == "claims_too_deep"


@given(st.text(max_size=60))
def test_accepted_text_holds_nothing_that_breaks_a_line_or_reorders(text: str) -> None:
    try:
        check_text(text, label="t")
    except EcertError as e:
        assert isinstance(e, TextInvalid)
        assert bad_character(text) is not None or len(text) > 10_000
        return
    for char in text:
        category = unicodedata.category(char)
        assert category not in ("Cc", "Cs", "Zl", "Zp")
        assert not "\u202a" <= char <= "\u202e" and not "\u2066" <= char <= "\u2069"
        assert category != "Cf" or char in "\u200c\u200d\u180e\u200e\u200f\u061c"
    assert len("".join(text).splitlines()) <= 1
