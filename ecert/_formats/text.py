"""Which text a certificate may carry: holder names and claim strings.

A holder name with a line break prints as extra lines of ``verify`` output and can fake
an issuer line; a right-to-left override turns ``gro.elpmaxe`` into something else on
screen. Text fields therefore refuse:

* C0 and C1 control characters (``Cc``: tab, line feed, NEL, escape, …);
* U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR;
* bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069);
* other format characters (``Cf``: zero-width space, BOM, soft hyphen, tags, interlinear
  annotations, …) except those names in minority languages need: U+200C ZERO WIDTH
  NON-JOINER, U+200D ZERO WIDTH JOINER, U+180E MONGOLIAN VOWEL SEPARATOR, and the bidi
  *marks* U+200E, U+200F, U+061C (they cannot reorder more than a neutral character);
* surrogates (``Cs``) and noncharacters (U+FDD0–U+FDEF, U+xxFFFE, U+xxFFFF).

Kept as typed: combining marks, variation selectors (``Mn``, used for 生僻字 glyph
variants), private-use characters (legacy encodings of rare characters), unassigned code
points (new CJK extensions that this Python's Unicode tables may not know yet), the
middle dot ``·`` of 少数民族 names and every space but line and paragraph separators.
Names are never normalised.

Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

from ecert.errors import TextInvalid

__all__ = ["MAX_CLAIM_DEPTH", "MAX_CLAIM_TEXT", "MAX_NAME", "TextInvalid", "bad_character",
           "check_claims_text", "check_text"]

#: Longest holder name (characters): the longest registered enterprise names have ~60.
MAX_NAME = 200
#: Longest claim string; long claims (a business scope) ride only in the full form.
MAX_CLAIM_TEXT = 10_000
#: Deepest nesting of claim objects and arrays.
MAX_CLAIM_DEPTH = 16

_ALLOWED_FORMAT = frozenset("\u200c\u200d\u180e\u200e\u200f\u061c")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _is_noncharacter(cp: int) -> bool:
    return 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE


def bad_character(text: str) -> tuple[int, str, str] | None:
    """The first refused character: ``(index, code, what)``, or None if all are fine."""
    if text.isprintable():
        # The common case, at C speed: printable text has no Cc, Cf, Cs, Zl or Zp, and
        # no noncharacter either (they are permanently unassigned, Cn, never printable).
        return None
    for index, char in enumerate(text):
        if char.isprintable() and char not in _ALLOWED_FORMAT:
            # Fast path: printable characters are neither Cc, Cf, Cs, Zl nor Zp.
            cp = ord(char)
            if cp < 0xFDD0 or not _is_noncharacter(cp):
                continue
        if char == " " or char in _ALLOWED_FORMAT:
            continue
        cp = ord(char)
        category = unicodedata.category(char)
        if char in _BIDI_CONTROLS:
            return index, "text_bidi", "a bidirectional override or isolate"
        if category in ("Cc", "Zl", "Zp"):
            return index, "text_control", "a control character or line break"
        if category == "Cs" or _is_noncharacter(cp):
            return index, "text_noncharacter", "a surrogate or noncharacter"
        if category == "Cf":
            return index, "text_format", "an invisible format character"
        # Not printable for Python, but allowed: other spaces (Zs), unassigned (Cn),
        # private use (Co).
    return None


def check_text(value: object, *, label: str, max_length: int = MAX_CLAIM_TEXT,
               required: bool = False) -> str:
    """``value`` if it is text a certificate may carry; else :class:`TextInvalid`."""
    if not isinstance(value, str):
        raise TextInvalid(f"{label} must be text", code="text_invalid")
    if required and not value.strip():
        raise TextInvalid(f"{label} is empty", code="text_empty")
    if len(value) > max_length:
        raise TextInvalid(f"{label} has {len(value)} characters; at most {max_length}",
                          code="text_too_long")
    found = bad_character(value)
    if found is not None:
        index, code, what = found
        raise TextInvalid(f"{label} contains {what} (U+{ord(value[index]):04X}) at "
                          f"character {index + 1}", code=code)
    return value


def _plain_flat(claims: Mapping[str, Any]) -> bool:
    """Whether ``claims`` certainly pass: one level of members whose names and string
    values are all short enough and printable, judged at C speed on their concatenation
    (printable text has no Cc, Cf, Cs, Zl or Zp). False: the full walk decides."""
    texts: list[str] = []
    for key, value in claims.items():
        if not isinstance(key, str) or len(key) > 200:
            return False
        texts.append(key)
        if isinstance(value, str):
            if len(value) > MAX_CLAIM_TEXT:
                return False
            texts.append(value)
        elif not (value is None or isinstance(value, bool | int | float)):
            return False
    # Printable text holds no noncharacter either (see bad_character).
    return "".join(texts).isprintable()


def check_claims_text(claims: Mapping[str, Any], *, label: str = "$.claims") -> None:
    """Every member name and string value of ``claims`` passes :func:`check_text`."""
    if _plain_flat(claims):
        return

    def walk(value: Any, path: str, depth: int) -> None:
        if depth > MAX_CLAIM_DEPTH:
            raise TextInvalid(f"claims nest deeper than {MAX_CLAIM_DEPTH} levels at {path}",
                              code="claims_too_deep")
        if isinstance(value, str):
            check_text(value, label=path)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                check_text(key, label=f"the name of a member of {path}", max_length=200)
                walk(item, f"{path}.{key}", depth + 1)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", depth + 1)

    walk(claims, label, 0)
