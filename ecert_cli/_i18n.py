"""The CLI's language: English, or Simplified Chinese from a gettext catalog.

The language is decided on every call (not once at import), so one process can run
commands in both languages (tests do): ``ECERT_LANG`` first, then the POSIX locale
variables ``LC_ALL``, ``LC_MESSAGES``, ``LANG`` (the first one set wins, as in POSIX).
Any value starting with ``zh`` — ``zh``, ``zh_CN.UTF-8``, ``zh_SG``, ``zh_TW``, ``zh_HK``,
``zh-Hant`` — gives Simplified Chinese: it is the only Chinese catalog, and a reader of
Traditional Chinese reads it far more easily than English. Anything else gives English.

Messages are marked with :func:`_` (translate now), :func:`ngettext` (plural) or
:func:`N_` (mark only; translated where it is shown, e.g. help texts). The catalog is
compiled to ``ecert_cli/locale/zh_CN/LC_MESSAGES/ecert.mo`` and read with the standard
library's :mod:`gettext` (Babel is a development tool only: ``python tools/i18n.py``).
This module imports nothing heavy: it runs while the program starts.
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

__all__ = ["LOCALE_DIR", "N_", "_", "is_chinese", "language", "ngettext", "pgettext"]

DOMAIN = "ecert"
LOCALE_DIR = Path(__file__).parent / "locale"
_CHINESE = "zh_CN"


_forced: list[str] = []


@contextmanager
def in_english() -> Iterator[None]:
    """Messages in English within the block (for the ``message`` of a JSON error, which
    is the same whatever the reader's language)."""
    _forced.append("en")
    try:
        yield
    finally:
        _forced.pop()


def language() -> str:
    """``"zh"`` or ``"en"``, from ``ECERT_LANG``, ``LC_ALL``, ``LC_MESSAGES``, ``LANG``."""
    if _forced:
        return _forced[-1]
    for name in ("ECERT_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "").strip()
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def is_chinese() -> bool:
    """Whether messages are shown in Chinese now."""
    return language() == "zh"


@cache
def _catalog(lang: str) -> gettext.NullTranslations:
    if lang != "zh":
        return gettext.NullTranslations()
    # fallback: a missing .mo (a broken install) shows English rather than failing.
    return gettext.translation(DOMAIN, LOCALE_DIR, languages=[_CHINESE], fallback=True)


def _(message: str) -> str:
    """``message`` in the current language."""
    return _catalog(language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the current language."""
    return _catalog(language()).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    """``message`` in the current language, as meant in ``context`` (one English word
    may need two Chinese ones, e.g. the label "valid" and the status "valid")."""
    return _catalog(language()).pgettext(context, message)


def N_(message: str) -> str:
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


def translate_click() -> None:
    """Make click's own messages (usage errors, "Usage:", "Show this message and exit.")
    come from our catalog: click calls ``gettext``/``ngettext`` through module globals."""
    import importlib

    for name in ("core", "exceptions", "parser", "types", "decorators", "formatting",
                 "termui", "_termui_impl", "shell_completion", "utils"):
        try:
            module = importlib.import_module(f"click.{name}")
        except ImportError:  # pragma: no cover - another click version
            continue
        if hasattr(module, "_"):
            module._ = _  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = ngettext  # type: ignore[attr-defined]
