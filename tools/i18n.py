"""Extract, merge and compile the CLI's message catalogs (a development tool: needs Babel).

    python tools/i18n.py update   # extract → ecert_cli/locale/ecert.pot, merge into the
                                  # Chinese .po (new messages untranslated), compile the .mo
    python tools/i18n.py check    # exit 1 and list what is untranslated or stale

Messages come from three places:

* calls in ``ecert_cli/`` of ``_``, ``N_``, ``ngettext``, ``pgettext`` and of the helpers
  that translate their first argument (``fmt``, ``say``, ``input_error``, ``Msg``);
* every command's help and every option's help and shown default, read from the click
  command tree itself (so a new command written with plain English help is found);
* click's own messages ("Usage:", "Missing option …"), from the installed click.

After ``update``, translate the empty ``msgstr`` entries in
``ecert_cli/locale/zh_CN/LC_MESSAGES/ecert.po`` (any PO editor, or by hand), remove
``#, fuzzy`` marks, and run ``update`` again to compile. docs/i18n.md says more.
"""

from __future__ import annotations

import inspect
import io
import sys
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_from_file
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ecert_cli"
LOCALE = PACKAGE / "locale"
POT = LOCALE / "ecert.pot"
LOCALES = ("zh_CN",)

KEYWORDS = {
    "_": None, "N_": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
    "fmt": None, "say": None, "input_error": None, "Msg": None,
}
#: click messages it translates through a variable (``_(extra["required"])``).
CLICK_EXTRA = ("required",)
CLICK_MODULES = ("core", "exceptions", "parser", "types", "decorators", "formatting",
                 "termui", "shell_completion", "utils")


def po_path(locale: str) -> Path:
    return LOCALE / locale / "LC_MESSAGES" / "ecert.po"


def mo_path(locale: str) -> Path:
    return LOCALE / locale / "LC_MESSAGES" / "ecert.mo"


def _help_texts() -> Iterator[tuple[str, str]]:
    """(where, text) of every help text of the command tree."""
    import click

    sys.path.insert(0, str(ROOT))
    from ecert_cli import cli

    def walk(command: click.Command, path: str) -> Iterator[tuple[str, str]]:
        for text in (command.help, command.short_help):
            if text:
                yield path, inspect.cleandoc(text).partition("\f")[0]
        for param in command.params:
            if isinstance(param, click.Option):
                if param.help:
                    yield f"{path} {param.opts[0]}", inspect.cleandoc(param.help)
                if isinstance(param.show_default, str):
                    yield f"{path} {param.opts[0]}", param.show_default
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                yield from walk(sub, f"{path} {name}")

    yield from walk(cli, "ecert")


def extract() -> Catalog:
    """The template: every message id the CLI can show."""
    import click

    template = Catalog(project="ecert", domain="ecert", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
            str(PACKAGE), method_map=[("**.py", "python")], keywords=KEYWORDS,
            comment_tags=("Translators:",)):
        template.add(message, locations=[(f"ecert_cli/{filename}", lineno)],
                     auto_comments=comments, context=context)
    for where, text in _help_texts():
        template.add(text, locations=[(where, 0)], auto_comments=["help text"])
    click_dir = Path(click.__file__).parent
    for name in CLICK_MODULES:
        path = click_dir / f"{name}.py"
        if not path.exists():
            continue
        for lineno, message, comments, context in extract_from_file(
                "python", str(path), keywords={"_": None, "ngettext": (1, 2)}):
            template.add(message, locations=[(f"click/{name}.py", lineno)],
                         auto_comments=comments, context=context)
    for message in CLICK_EXTRA:
        template.add(message, locations=[("click/core.py", 0)])
    return template


def _write(catalog: Catalog, path: Path) -> None:
    buffer = io.BytesIO()
    write_po(buffer, catalog, width=100, sort_output=True, ignore_obsolete=True,
             omit_header=False, include_lineno=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())


def read_catalog(locale: str) -> Catalog:
    path = po_path(locale)
    if not path.exists():
        return Catalog(locale=locale, domain="ecert", charset="utf-8")
    with path.open("rb") as f:
        return read_po(f, locale=locale, domain="ecert")


def compile_mo(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    return buffer.getvalue()


def update() -> None:
    """Extract, merge into every locale's .po, compile every .mo."""
    template = extract()
    _write(template, POT)
    for locale in LOCALES:
        catalog = read_catalog(locale)
        catalog.update(template, no_fuzzy_matching=True, update_header_comment=False)
        _write(catalog, po_path(locale))
        mo_path(locale).write_bytes(compile_mo(read_catalog(locale)))


def _key(message: object) -> object:
    msgid = message.id  # type: ignore[attr-defined]
    msgid = msgid if isinstance(msgid, str) else tuple(msgid)
    return (message.context, msgid) if message.context else msgid  # type: ignore[attr-defined]


def _value(message: object) -> object:
    string = message.string  # type: ignore[attr-defined]
    return string if isinstance(string, str) else tuple(string)


def problems() -> list[str]:
    """What is missing or stale, one line each (empty when all is well)."""
    template = extract()
    found: list[str] = []
    for locale in LOCALES:
        po = po_path(locale)
        catalog = read_catalog(locale)
        for message in template:
            if not message.id:
                continue
            have = catalog.get(message.id, message.context)
            where = ", ".join(f"{f}:{n}" if n else f for f, n in message.locations[:2])
            text = message.id if isinstance(message.id, str) else message.id[0]
            if have is None:
                found.append(f"{po}: not extracted yet (run python tools/i18n.py update): "
                             f"{text!r} ({where})")
            elif have.fuzzy or not (all(have.string) if isinstance(have.string, tuple)
                                    else have.string):
                found.append(f"{po}: no {locale} translation: {text!r} ({where})")
        mo = mo_path(locale)
        if not mo.exists():
            found.append(f"{mo}: missing (run python tools/i18n.py update)")
            continue
        with mo.open("rb") as f:
            compiled = {_key(m): _value(m) for m in read_mo(f) if m.id}
        wanted = {_key(m): _value(m) for m in catalog
                  if m.id and not m.fuzzy and (all(m.string) if isinstance(m.string, tuple)
                                               else m.string)}
        if compiled != wanted:
            found.append(f"{mo}: stale, not compiled from {po.name} (run python tools/i18n.py "
                         "update)")
    return found


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "update"
    if command == "update":
        update()
        missing = problems()
        print(f"{POT.relative_to(ROOT)} and {len(LOCALES)} catalog(s) updated; "
              f"{len(missing)} message(s) to translate")
        return 0
    if command == "check":
        missing = problems()
        for line in missing:
            print(line)
        return 1 if missing else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
