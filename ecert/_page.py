"""The verifier page ``ecert publish`` writes to ``DIR/verify/`` (docs/verifier-page.md).

A static page — HTML, CSS and JavaScript, no build step for whoever serves it — that
verifies certificates, QR codes and purpose-bound copies in a phone's browser exactly as
:class:`ecert.Verifier` does. Its sources are package data (``ecert/_data/verify/``):

* ``core.js``: the checks (a port of ``ecert/_formats``, ``ecert/trust.py``,
  ``ecert/_verification`` and the verifier's edge), ``app.js``: input and display,
  ``style.css``, ``sw.js``: the service worker that keeps verified documents offline,
  ``index.html``: the template, ``vendor/jsQR.js``: the QR decoder for browsers without
  ``BarcodeDetector`` (Apache-2.0, with its licence).

:func:`build_page` turns them into the files of one region's page: the home anchor is
embedded (so the page trusts what the anchor pins, not what the host says), scripts and
styles are minified conservatively (comments and indentation only: the page stays under
100 KB) and bound by subresource integrity, and a Content-Security-Policy limits requests
to the home bundle and those of the regions it recognizes. ``ecert-verify.html`` is the
same page as one self-contained file to keep and open locally. The digests of every file
go into the signed trust list (``verifier_page``, format 1.3), so a copy served by a
tampered host, or kept by a user, can be checked against what the region signed
(:func:`check_page`, ``ecert doctor --bundle``).

Pure: no registry, no network. Deterministic: the same anchor, agreements and ecert
version give the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

from ecert._formats.jose import b64url_encode
from ecert._formats.trustlist import VerifierPage
from ecert.errors import FormatError
from ecert.trust import TrustAnchor

__all__ = [
    "PAGE_DIR",
    "SINGLE_FILE",
    "build_page",
    "check_page",
    "minify_css",
    "minify_js",
    "page_digests",
    "page_mismatches",
    "page_size",
]

#: Where the page lives in a bundle: ``{base_url}/verify/``.
PAGE_DIR = "verify"
#: The page as one file, to keep and open locally.
SINGLE_FILE = "ecert-verify.html"
_QR_DECODER = "jsqr.js"
#: The page proper (what the 100 KB budget counts): everything but the QR decoder, its
#: licence and the single-file copy.
_PAGE_FILES = ("index.html", "core.js", "app.js", "style.css", "sw.js")


@cache
def _asset(name: str) -> str:
    return resources.files("ecert").joinpath("_data", "verify", name).read_text("utf-8")


# -- conservative minification -------------------------------------------------------------

_WORD = re.compile(r"[A-Za-z0-9_$]")
#: After these a ``/`` starts a regular expression, not a division.
_REGEX_AFTER_WORDS = frozenset({"return", "typeof", "instanceof", "in", "of", "new", "delete",
                                "void", "throw", "case", "do", "else", "yield", "await"})


def _skip_string(text: str, i: int) -> int:
    quote = text[i]
    i += 1
    while text[i] != quote:
        if text[i] == "\\":
            i += 1
        elif text[i] == "\n":
            raise ValueError("unterminated string literal")
        i += 1
    return i + 1


def _skip_template(text: str, i: int) -> int:
    i += 1
    while text[i] != "`":
        if text[i] == "\\":
            i += 2
        elif text.startswith("${", i):
            i = _skip_expression(text, i + 2)
        else:
            i += 1
    return i + 1


def _skip_expression(text: str, i: int) -> int:
    """Past the ``}`` closing a template literal's ``${``."""
    depth = 0
    while True:
        c = text[i]
        if c in "'\"":
            i = _skip_string(text, i)
        elif c == "`":
            i = _skip_template(text, i)
        elif c == "{":
            depth, i = depth + 1, i + 1
        elif c == "}":
            if depth == 0:
                return i + 1
            depth, i = depth - 1, i + 1
        else:
            i += 1


def _skip_regex(text: str, i: int) -> int:
    i += 1
    in_class = False
    while True:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "\n":
            raise ValueError("unterminated regular expression")
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            i += 1
            break
        i += 1
    while i < len(text) and text[i].isalpha():
        i += 1
    return i


_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")
#: After ``const``: what it declares (a name, or a pattern to destructure).
_DECLARED = re.compile(r"\s+[A-Za-z_$\[{]")
#: A line break after these tokens (or before the next) never ends a statement.
_OPEN_ENDED = frozenset({";", "{", "}", ",", "(", "[", ":", "=", "?", "&&", "||"})
_CLOSING = frozenset({")", "]", "}", ",", ";", ":", ".", "?"})


def minify_js(text: str) -> str:
    """``text`` without comments and without whitespace that separates nothing.

    A small tokenizer (strings, template literals, regular expressions, comments) keeps
    every token as written; a line break between two tokens stays a line break, so
    automatic semicolon insertion sees the same statements; a ``;`` just before ``}`` goes
    unless it is an empty statement of its own; ``const`` declares with ``let`` (the same
    binding: the page's code never assigns to a constant), and a ``let`` statement that
    follows another in the same block, outside brackets, joins it (``let a=1,b=2``: the
    same bindings, initialized in the same order); ``(x) =>`` loses its parentheses.
    Nothing is renamed.
    """
    out: list[str] = []
    last = ""  # the last token written
    before = ""  # the token written before it
    gap = ""  # "", " " or "\n": the whitespace seen since it
    heads: list[bool] = []  # for each open "(": whether it opens an if/for/while head
    closed_head = False  # whether the last ")" closed such a head
    depth = nested = 0  # braces; parentheses and brackets within the innermost brace
    outer: list[int] = []  # ``nested`` of each enclosing brace
    declaring: int | None = None  # the brace depth of the let statement being written
    joinable = False  # a ";" just ended that let statement: a let next joins it
    i, n = 0, len(text)

    def emit(piece: str) -> None:
        nonlocal last, before, gap, closed_head, depth, nested, declaring, joinable
        if joinable:
            joinable, declaring = False, None
        if piece == ";" and declaring == depth and not nested:
            joinable = True
        elif piece in ("(", "["):
            nested += 1
        elif piece in (")", "]"):
            nested -= 1
        elif piece == "{":
            outer.append(nested)
            depth, nested = depth + 1, 0
        elif piece == "}":
            depth, nested = depth - 1, outer.pop() if outer else 0
            if declaring is not None and depth < declaring:
                declaring = None
        if piece == "}" and last == ";" and before not in ("else", "do") and not (
                before == ")" and closed_head):
            # A ";" before "}" ends a statement the brace ends anyway; one that is a whole
            # (empty) statement, the body of an if/for/while/else/do, stays.
            out.pop()
            last = before
        if piece == "(":
            heads.append(last in ("if", "for", "while", "with"))
        elif piece == ")":
            closed_head = heads.pop() if heads else False
        if last:
            joined = last[-1] + piece[0]
            if gap == "\n" and (last in _OPEN_ENDED or piece in _CLOSING):
                gap = " "  # no statement ends here: the line break separates nothing
            # Tokens written apart stay apart where joining them would make another
            # piece (a word, "++", "--", a comment); punctuation written together stays so.
            if gap == "\n":
                out.append("\n")
            elif gap and ((_WORD.match(last[-1]) and _WORD.match(piece[0])) or joined in (
                    "++", "--", "+-", "-+", "//", "/*")):
                out.append(" ")
        if (piece == ">" and last == "=" and not gap and out[-4:-3] == ["("]
                and out[-2] == ")" and _NAME.fullmatch(out[-3])
                and not (len(out) > 4 and _WORD.match(out[-5][-1]))):
            del out[-4], out[-2]  # (x)=> is x=>: one parameter needs no parentheses
        out.append(piece)
        before, last, gap = last, piece, ""

    while i < n:
        c = text[i]
        if c in " \t\r\n":
            if c == "\n":
                gap = "\n"
            elif not gap:
                gap = " "
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.index("*/", i + 2)
            if "\n" in text[i:end]:
                gap = "\n"
            elif not gap:
                gap = " "
            i = end + 2
        elif c in "'\"":
            end = _skip_string(text, i)
            emit(text[i:end])
            i = end
        elif c == "`":
            end = _skip_template(text, i)
            emit(text[i:end])
            i = end
        elif c == "/" and (not last or (not _WORD.match(last[-1]) and last[-1] not in ")]}")
                           or last in _REGEX_AFTER_WORDS):
            end = _skip_regex(text, i)
            emit(text[i:end])
            i = end
        elif _WORD.match(c):
            j = i + 1
            while j < n and _WORD.match(text[j]):
                j += 1
            word = text[i:j]
            i = j
            if word in ("const", "let") and last != "." and _DECLARED.match(text, j):
                word = "let"  # the same binding, unless assigned to (a TypeError): never here
                if joinable and declaring == depth and not nested:
                    out[-1] = last = ","  # the ";" that ended the last let statement
                    joinable = False
                    continue
                if last in ("", ";", "{", "}") and not nested:
                    joinable, declaring = False, depth
            emit(word)
        else:
            emit(c)
            i += 1
    return "".join(out) + "\n"


def minify_css(text: str) -> str:
    """``text`` without comments and optional whitespace (the page's own, simple CSS)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*([{};,])\s*", r"\1", text)
    text = re.sub(r"(?<![0-9.])0\.([0-9])", r".\1", text)  # 0.5rem is .5rem
    return re.sub(r":\s+", ":", text).replace(";}", "}").strip() + "\n"


# -- the page --------------------------------------------------------------------------------


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode(
        "ascii") + "'"


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


@lru_cache(maxsize=8)
def _minified_js(text: str) -> str:
    # Every publication builds the page; its scripts change only with the package (about
    # 80 ms of tokenizing each time otherwise), and a changed text is a new key.
    return minify_js(text)


@lru_cache(maxsize=4)
def _minified_css(text: str) -> str:
    return minify_css(text)


def _inline(text: str) -> str:
    """Script or style text safe inside its HTML element (``</script`` cannot end it)."""
    return re.sub(r"</(script|style)", r"<\\/\1", text, flags=re.IGNORECASE).replace(
        "<!--", "<\\!--")


def _fill(template: str, values: Mapping[str, str]) -> str:
    return re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values[m.group(1)], template)


def build_page(anchor: TrustAnchor, *, recognized: Iterable[str] = ()) -> dict[str, bytes]:
    """The files of the verifier page for ``anchor``'s region, by name under ``verify/``.

    ``recognized`` are the trust list URLs of the regions the home region recognizes (its
    agreements): the page may fetch from their origins and its own, nothing else.
    """
    base_url = anchor.trust_list_url.rsplit("/", 1)[0]
    origins = " ".join(sorted({_origin(base_url), *(_origin(u) for u in recognized)}))
    core, app = _minified_js(_asset("core.js")), _minified_js(_asset("app.js"))
    css = _minified_css(_asset("style.css"))
    jsqr = _asset("vendor/jsQR.js")
    version = b64url_encode(hashlib.sha256("\0".join(
        (core, app, css, jsqr, _asset("index.html"), _asset("sw.js"))).encode()).digest())[:16]
    common = {
        "ANCHOR": b64url_encode(anchor.to_bytes()),
        "JSQR_SRI": _sri(jsqr.encode("utf-8")),
        "VERSION": version,
        "REGION_NAME": html.escape(anchor.name),
        "ADDRESS": html.escape(base_url + "/" + PAGE_DIR + "/"),
    }
    # No request leaves the region's own bundle and those it recognizes; no inline code,
    # no eval, DOM sinks locked by Trusted Types (the page only ever sets textContent).
    policy = ("default-src 'none'; {scripts}; {styles}; img-src data:; media-src blob: "
              "mediastream:; connect-src {connect}; worker-src {workers}; manifest-src "
              "'none'; base-uri 'none'; form-action 'none'; require-trusted-types-for "
              "'script'; trusted-types ecert")
    hosted = _fill(_asset("index.html"), {
        **common, "MODE": "hosted",
        "CSP": policy.format(scripts="script-src 'self'", styles="style-src 'self'",
                             connect=f"'self' {origins}", workers="'self'"),
        "STYLE": f'<link rel="stylesheet" href="style.css" integrity="{_sri(css.encode())}">',
        "SCRIPTS": "\n".join(f'<script src="{name}" integrity="{_sri(text.encode())}" '
                             'defer></script>' for name, text in (("core.js", core),
                                                                  ("app.js", app))),
    })
    inline_css = _inline(css)
    inline_scripts = [_inline(jsqr), _inline(core), _inline(app)]
    single = _fill(_asset("index.html"), {
        **common, "MODE": "single",
        "CSP": policy.format(
            scripts="script-src " + " ".join(_csp_hash(s) for s in inline_scripts),
            styles="style-src " + _csp_hash(inline_css), connect=origins, workers="'none'"),
        "STYLE": f"<style>{inline_css}</style>",
        "SCRIPTS": "\n".join(f"<script>{s}</script>" for s in inline_scripts),
    })
    shell = ["", "index.html", "core.js", "app.js", "style.css", _QR_DECODER]
    worker = _fill(_asset("sw.js"), {"VERSION": version, "SHELL": json.dumps(shell)})
    return {
        "index.html": hosted.encode("utf-8"),
        "core.js": core.encode("utf-8"),
        "app.js": app.encode("utf-8"),
        "style.css": css.encode("utf-8"),
        "sw.js": minify_js(worker).encode("utf-8"),
        _QR_DECODER: jsqr.encode("utf-8"),
        "jsqr-LICENSE.txt": _asset("vendor/jsQR-LICENSE.txt").encode("utf-8"),
        SINGLE_FILE: single.encode("utf-8"),
    }


def page_digests(files: Mapping[str, bytes]) -> VerifierPage:
    """The trust list's ``verifier_page``: the SHA-256 of every file of the page."""
    return VerifierPage({name: b64url_encode(hashlib.sha256(data).digest())
                         for name, data in sorted(files.items())})


def page_size(files: Mapping[str, bytes]) -> int:
    """Bytes of the page proper: HTML, JavaScript and CSS without the QR decoder."""
    return sum(len(files[name]) for name in _PAGE_FILES)


def page_mismatches(page: VerifierPage, read: Callable[[str], bytes]
                    ) -> list[tuple[str, Exception | None]]:
    """The files of the page whose bytes are not the ones the trust list signed:
    ``(name, why it could not be read)``, None where it was read and differs. ``read``
    gives a file's bytes by name (from a directory, or from the region's host) and raises
    :class:`OSError` or :class:`~ecert.errors.FormatError` where it cannot."""
    found: list[tuple[str, Exception | None]] = []
    for name, digest in sorted(page.files.items()):
        try:
            data = read(name)
        except (OSError, FormatError) as e:
            found.append((name, e))
            continue
        if page_digests({name: data}).files[name] != digest:
            found.append((name, None))
    return found


def check_page(directory: str | Path, page: VerifierPage) -> list[str]:
    """What differs between the page files in ``directory`` (a bundle's ``verify/``) and
    the digests the trust list signed: one line per missing or changed file."""
    root = Path(directory)
    return [f"{name}: differs from the digest in the trust list" if error is None else
            f"{name}: cannot be read ({getattr(error, 'strerror', None) or error})"
            for name, error in page_mismatches(page, lambda name: (root / name).read_bytes())]
