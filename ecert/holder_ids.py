"""Holder id schemes: resident identity numbers, unified social credit codes, patterns.

A certificate type may declare the scheme its holders' ids follow (``holder_id_scheme``);
issuance then refuses an id that breaks it, with the reason and a stable error code, so a
mistyped id is caught at the counter instead of producing a certificate nobody can find
again by the right id.

* ``resident-id`` — 公民身份号码, GB 11643-1999: 17 digits (6-digit region code, birth date
  ``YYYYMMDD``, 3-digit sequence) and an ISO/IEC 7064 MOD 11-2 check character (``0``–``9``
  or ``X``).
* ``uscc`` — 统一社会信用代码, GB 32100-2015: 18 characters from ``0-9A-Z`` without
  ``I O Z S V``, the 6-digit region code at positions 3–8, and a MOD 31 check character.
* ``pattern:<regex>`` — any other scheme, declared as a regular expression that the whole
  (normalised) id must match.

Ids are normalised first (:func:`normalize_id`): NFKC (full-width ``９１４４…`` typed on a
Chinese keyboard becomes ``9144…``), white space removed, upper case (the ``x`` of a
resident id, a lower-case USCC). A wrong check character is reported without the expected
one: a clerk told "the last character should be 7" may change it and turn a typo elsewhere
into a valid-looking id of somebody else; the id has to be compared with the document.

Everything here is pure (no clock: callers pass ``today``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from ecert.errors import HolderIdInvalid, InputError
from ecert.identifiers import _USCC_INDEX, is_valid_uscc

__all__ = [
    "CLAIM_FORMATS",
    "HOLDER_CLAIM_KEYS",
    "RESIDENT_ID",
    "SCHEMES",
    "USCC",
    "HolderIdInvalid",
    "HolderIdScheme",
    "check_holder_claims",
    "check_resident_id",
    "check_uscc",
    "code_claims",
    "mask_claims",
    "mask_id",
    "normalize_claims",
    "normalize_id",
    "parse_scheme",
]

RESIDENT_ID = "resident-id"
USCC = "uscc"
#: Built-in scheme names (``pattern:<regex>`` declares any other).
SCHEMES = (RESIDENT_ID, USCC)
PATTERN_PREFIX = "pattern:"
#: Longest id any scheme accepts: bounds the work of a declared pattern.
MAX_ID_LENGTH = 64
_MAX_PATTERN = 500

_RESIDENT_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_RESIDENT_CHECK = "10X98765432"
# Province-level codes of GB/T 2260 (11–65), 71 Taiwan, 81/82 Hong Kong and Macao, 83 the
# residence permits of Taiwan residents; ids of foreign permanent residents (2023) start
# with 9.
_PROVINCES = frozenset(
    ["11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
     "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
     "65", "71", "81", "82", "83"])
_EARLIEST_BIRTH = date(1900, 1, 1)



def normalize_id(value: str) -> str:
    """An id as the registry keeps and compares it: NFKC, no white space, upper case.

    Also used for codes whose standard is upper case (USCC, national type codes, serials).
    """
    if not isinstance(value, str):
        raise InputError("an id or code must be text", code="invalid_text")
    if value.isascii() and value.isalnum():
        return value.upper()  # the common case: NFKC and white space change nothing
    return "".join(unicodedata.normalize("NFKC", value).split()).upper()


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def mask_id(value: str) -> str:
    """A holder id as displays show it: ``4403**********2116`` — the first and last 4
    characters of an id of 17 or more, fewer of a shorter one (most of it masked:
    none of an id of 4 or fewer), every other character ``*``; the length kept."""
    text = str(value)
    n = len(text)
    keep = 4 if n >= 17 else max(0, (n - 1) // 4)
    if keep == 0:
        return "*" * n
    return text[:keep] + "*" * (n - 2 * keep) + text[-keep:]


def _what(label: str, value: str) -> str:
    # Never echo a huge or hostile value back into a one-line message, nor a holder's
    # number: the message may reach a screen, a log or a support ticket.
    shown = value if len(value) <= 40 and value.isprintable() else value[:40].encode(
        "unicode_escape").decode("ascii") + ("…" if len(value) > 40 else "")
    return f"{label} {mask_id(shown)!r}"


class _Shown:
    """``_what(label, value)``, formatted only if a message needs it (most ids are fine,
    and a batch checks millions)."""

    __slots__ = ("label", "value")

    def __init__(self, label: str, value: str) -> None:
        self.label, self.value = label, value

    def __str__(self) -> str:
        return _what(self.label, self.value)


def check_resident_id(value: str, *, today: date | None = None, label: str = "resident id"
                      ) -> str:
    """The normalised resident identity number, or :class:`HolderIdInvalid` saying why."""
    text = normalize_id(value)
    what = _Shown(label, text)
    if not text:
        raise HolderIdInvalid(f"{label} is empty", code="holder_id_empty")
    if len(text) != 18:
        raise HolderIdInvalid(f"{what} has {len(text)} characters; a resident identity "
                              "number (GB 11643) has 18", code="holder_id_length")
    if not _ascii_digits(text[:17]) or not (_ascii_digits(text[17]) or text[17] == "X"):
        raise HolderIdInvalid(f"{what} must be 17 digits and a last digit or X",
                              code="holder_id_characters")
    if text[:2] not in _PROVINCES and text[0] != "9":
        raise HolderIdInvalid(f"{what} does not start with a region code (GB/T 2260)",
                              code="holder_id_region")
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        born = None
    if born is None or born < _EARLIEST_BIRTH or (today is not None and born > today):
        raise HolderIdInvalid(f"{what} has no plausible birth date at positions 7-14",
                              code="holder_id_birth_date")
    total = sum(int(c) * w for c, w in zip(text[:17], _RESIDENT_WEIGHTS, strict=True))
    if _RESIDENT_CHECK[total % 11] != text[17]:
        raise HolderIdInvalid(f"{what}: the check character does not match (GB 11643); a "
                              "character is mistyped: compare it with the document",
                              code="holder_id_check")
    return text


def check_uscc(value: str, *, label: str = "unified social credit code") -> str:
    """The normalised unified social credit code, or :class:`HolderIdInvalid` saying why."""
    if type(value) is str and value in _valid_uscc:  # a batch checks a code 3 times a row
        return _valid_uscc[value]
    text = _checked_uscc(value, label)
    if len(_valid_uscc) >= 4096:
        _valid_uscc.clear()
    _valid_uscc[value] = text
    return text


#: Codes found valid lately, as given: their normalised form (a refusal is not kept).
_valid_uscc: dict[str, str] = {}


def _checked_uscc(value: str, label: str) -> str:
    text = normalize_id(value)
    what = _Shown(label, text)
    if not text:
        raise HolderIdInvalid(f"{label} is empty", code="holder_id_empty")
    if len(text) != 18:
        raise HolderIdInvalid(f"{what} has {len(text)} characters; a unified social credit "
                              "code (GB 32100) has 18", code="holder_id_length")
    bad = sorted({c for c in text if c not in _USCC_INDEX})
    if bad:
        shown = "".join(bad) if all(c.isascii() and c.isprintable() for c in bad) \
            else ascii("".join(bad))
        raise HolderIdInvalid(f"{what} contains {shown}; GB 32100 uses digits and capital "
                              "letters without I, O, Z, S, V", code="holder_id_characters")
    if not _ascii_digits(text[2:8]):
        raise HolderIdInvalid(f"{what} must have the 6-digit region code at positions 3-8",
                              code="holder_id_region")
    if not is_valid_uscc(text):  # the one GB 32100 check, shared with certificate ids
        raise HolderIdInvalid(f"{what}: the check character does not match (GB 32100); a "
                              "character is mistyped: compare it with the document",
                              code="holder_id_check")
    return text


@dataclass(frozen=True, slots=True)
class HolderIdScheme:
    """A declared holder id scheme: ``resident-id``, ``uscc`` or ``pattern:<regex>``."""

    name: str
    pattern: str | None = None

    def __str__(self) -> str:
        return f"{PATTERN_PREFIX}{self.pattern}" if self.pattern is not None else self.name

    def check(self, value: str, *, today: date | None = None, label: str = "holder id"
              ) -> str:
        """The normalised id if it follows the scheme; else :class:`HolderIdInvalid`."""
        if self.name == RESIDENT_ID:
            return check_resident_id(value, today=today, label=label)
        if self.name == USCC:
            return check_uscc(value, label=label)
        text = normalize_id(value)
        if not text:
            raise HolderIdInvalid(f"{label} is empty", code="holder_id_empty")
        if len(text) > MAX_ID_LENGTH:
            raise HolderIdInvalid(f"{label} has {len(text)} characters; at most "
                                  f"{MAX_ID_LENGTH}", code="holder_id_length")
        if re.fullmatch(self.pattern or "", text) is None:
            raise HolderIdInvalid(f"{_what(label, text)} does not match the type's pattern "
                                  f"{self.pattern}", code="holder_id_pattern")
        return text


def parse_scheme(text: str) -> HolderIdScheme:
    """A scheme from its declaration; :class:`InputError` (``invalid_holder_id_scheme``)."""
    if isinstance(text, str):
        return _parse_scheme(text)  # cached: a batch asks for its type's scheme per row
    raise InputError("a holder id scheme is a string", code="invalid_holder_id_scheme")


@functools.lru_cache(maxsize=64)
def _parse_scheme(text: str) -> HolderIdScheme:
    name = text.strip()
    if name in SCHEMES:
        return HolderIdScheme(name)
    if name.startswith(PATTERN_PREFIX):
        pattern = name[len(PATTERN_PREFIX):]
        if not pattern or len(pattern) > _MAX_PATTERN:
            raise InputError(f"a holder id pattern has 1 to {_MAX_PATTERN} characters",
                             code="invalid_holder_id_scheme")
        try:
            re.compile(pattern)
        except (re.error, RecursionError, OverflowError) as e:
            raise InputError(f"holder id pattern {pattern[:80]!r} is not a regular "
                             f"expression: {e}", code="invalid_holder_id_scheme") from e
        return HolderIdScheme("pattern", pattern)
    raise InputError(f"unknown holder id scheme {name[:80]!r}: use resident-id, uscc or "
                     "pattern:<regex>", code="invalid_holder_id_scheme")


# -- claims holding codes, and the claims naming the holder ---------------------------------

#: JSON Schema ``format`` values ecert checks (and normalises) in claims.
CLAIM_FORMATS = {"uscc": USCC, "cn-resident-id": RESIDENT_ID}
#: Keys of a type's ``holder_claims``.
HOLDER_CLAIM_KEYS = ("holder_id", "holder_name")


def code_claims(schema: Mapping[str, Any]) -> dict[str, str]:
    """Top-level claims whose schema declares a code format: ``{claim: scheme name}``."""
    found = _code_claims.get(id(schema))
    if found is not None and found[0] is schema:  # one type's schema, row after row
        return found[1]
    result = _code_claims_of(schema)
    if len(_code_claims) > 256:
        _code_claims.clear()
    _code_claims[id(schema)] = (schema, result)
    return result


#: ``id(schema): (schema, its code claims)``: the schema is kept, so its id is not reused.
_code_claims: dict[int, tuple[Mapping[str, Any], dict[str, str]]] = {}


def _code_claims_of(schema: Mapping[str, Any]) -> dict[str, str]:
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    return {name: CLAIM_FORMATS[spec["format"]] for name, spec in properties.items()
            if isinstance(spec, Mapping) and spec.get("format") in CLAIM_FORMATS}


def mask_claims(claims: Mapping[str, Any], schema: Mapping[str, Any],
                holder_claims: Mapping[str, str]) -> dict[str, Any]:
    """``claims`` as a display shows them: the claim that names the holder's id (the
    type's ``holder_claims["holder_id"]``) and every resident identity number claim
    masked (:func:`mask_id`), the others as they are."""
    personal = {name for name, scheme in code_claims(schema).items() if scheme == RESIDENT_ID}
    id_claim = holder_claims.get("holder_id")
    if id_claim is not None:
        personal.add(id_claim)
    return {name: mask_id(value) if name in personal and isinstance(value, str) else value
            for name, value in claims.items()}


def normalize_claims(schema: Mapping[str, Any], claims: Mapping[str, Any]) -> dict[str, Any]:
    """``claims`` with every code-format claim normalised (:func:`normalize_id`)."""
    formats = code_claims(schema)
    return {name: normalize_id(value) if name in formats and isinstance(value, str) else value
            for name, value in claims.items()}


def check_holder_claims(holder_claims: Mapping[str, Any], schema: Mapping[str, Any]
                        ) -> dict[str, str]:
    """A type's ``holder_claims`` if each names a string claim of ``schema``."""
    if not isinstance(holder_claims, Mapping):
        raise InputError("holder_claims is an object: {\"holder_id\": claim, "
                         "\"holder_name\": claim}", code="invalid_holder_claims")
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    result: dict[str, str] = {}
    for key, claim in holder_claims.items():
        if key not in HOLDER_CLAIM_KEYS:
            raise InputError(f"holder_claims key {str(key)[:40]!r} is not holder_id or "
                             "holder_name", code="invalid_holder_claims")
        if not isinstance(claim, str) or claim not in properties:
            raise InputError(f"holder_claims.{key} names {str(claim)[:60]!r}, which is not a "
                             "claim of the schema", code="invalid_holder_claims")
        result[key] = claim
    return result
