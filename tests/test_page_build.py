"""The verifier page as ``ecert publish`` builds it, and the trust list member that signs it.

No browser here (tests/test_page.py drives the page): the files, their digests in the
trust list (``verifier_page``, format 1.3, absent = byte for byte as before), the budget
(under 100 KB without the QR decoder), the Content-Security-Policy and integrity hashes,
the vendored decoder's provenance, the minifier, and ``ecert doctor`` on a changed page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ecert
from ecert import _page
from ecert._formats.jose import b64url_encode, canonical_json, parse_compact
from ecert._formats.trustlist import TrustList, VerifierPage
from ecert.doctor import check_bundle
from ecert.errors import FormatError
from tests.support import EPOCH, Published

VENDOR = Path(_page.__file__).parent / "_data" / "verify" / "vendor"


def _payload(bundle: Path) -> dict[str, Any]:
    return parse_compact((bundle / "trustlist.jwt").read_text(), max_bytes=1 << 22).payload


def test_published_page_is_what_the_trust_list_signed(shared_published: Published) -> None:
    _registry, _cert, bundle = shared_published
    page = TrustList.from_payload(_payload(bundle)).verifier_page
    assert page is not None
    assert set(page.files) == {"index.html", "core.js", "app.js", "style.css", "sw.js",
                               "jsqr.js", "jsqr-LICENSE.txt", "ecert-verify.html"}
    assert _page.check_page(bundle / "verify", page) == []
    anchor = ecert.TrustAnchor.load(bundle / "anchor.json")
    assert _page.page_digests(_page.build_page(anchor)) == page  # deterministic


def test_trust_list_without_a_page_is_byte_for_byte_as_before(
        shared_published: Published) -> None:
    payload = _payload(shared_published[2])
    before = {k: v for k, v in payload.items() if k != "verifier_page"}
    parsed = TrustList.from_payload(before)
    assert parsed.verifier_page is None
    assert canonical_json(parsed.to_payload()) == canonical_json(before)
    assert canonical_json(TrustList.from_payload(payload).to_payload()) == canonical_json(payload)


_DIGEST = b64url_encode(bytes(32))


@pytest.mark.parametrize("value", [
    [], {"files": {}}, {"files": {"a": _DIGEST}, "x": 1}, {"files": []},
    {"files": {"../a": _DIGEST}}, {"files": {"a/b": _DIGEST}}, {"files": {"": _DIGEST}},
    {"files": {".a": _DIGEST}}, {"files": {"a": _DIGEST[:-1]}}, {"files": {"a": 1}},
    {"files": {"a": b64url_encode(bytes(31))}},
    {"files": {f"f{i}": _DIGEST for i in range(33)}},
])
def test_verifier_page_member_is_strict(value: Any) -> None:
    with pytest.raises(FormatError) as e:
        VerifierPage.from_json(value)
    assert e.value.code == "malformed"


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=70),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c,
                                                                        max_size=3),
                    max_leaves=8)
       | st.dictionaries(st.just("files"), st.dictionaries(
           st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,6}", fullmatch=True),
           st.sampled_from([_DIGEST, "x", b64url_encode(bytes(33))]), max_size=3)))
def test_verifier_page_decoder_is_canonical_or_refuses(value: Any) -> None:
    try:
        page = VerifierPage.from_json(value)
    except FormatError as e:
        assert e.code == "malformed"
        return
    assert page.to_json() == value and VerifierPage.from_json(page.to_json()) == page


def test_page_budget_and_files(shared_published: Published) -> None:
    bundle = shared_published[2]
    files = {p.name: p.read_bytes() for p in (bundle / "verify").iterdir()}
    # The target: HTML, JS and CSS without the QR decoder under 100 KB.
    assert _page.page_size(files) < 100_000
    html = files["index.html"].decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp is not None
    policy = csp.group(1)
    assert "default-src 'none'" in policy and "'unsafe" not in policy
    assert "connect-src 'self' https://ecert.gd.example;" in policy
    for name in ("core.js", "app.js", "style.css"):
        sri = "sha384-" + base64.b64encode(hashlib.sha384(files[name]).digest()).decode()
        assert f'href="{name}" integrity="{sri}"' in html or \
            f'src="{name}" integrity="{sri}"' in html
    jsqr_sri = "sha384-" + base64.b64encode(hashlib.sha384(files["jsqr.js"]).digest()).decode()
    assert f'name="ecert-jsqr-integrity" content="{jsqr_sri}"' in html


def test_single_file_page_pins_its_inline_code(shared_published: Published) -> None:
    single = (shared_published[2] / "verify" / "ecert-verify.html").read_text()
    policy = re.search(r'content="(default-src[^"]+)"', single)
    assert policy is not None and "'self'" not in policy.group(1)
    scripts = re.findall(r"<script>(.*?)</script>", single, flags=re.DOTALL)
    styles = re.findall(r"<style>(.*?)</style>", single, flags=re.DOTALL)
    assert len(scripts) == 3 and len(styles) == 1
    for text in scripts + styles:
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy.group(1)
    assert 'name="ecert-mode" content="single"' in single


def test_connect_src_names_the_recognized_regions() -> None:
    jwk = json.loads((Path(__file__).parent.parent / "docs" / "examples" / "gd-bundle" /
                      "anchor.json").read_text())["root_key"]
    anchor = ecert.TrustAnchor("GD", "广东省<b>", jwk, "https://ecert.gd.example/trustlist.jwt")
    files = _page.build_page(anchor, recognized=["https://ecert.zj.example/trustlist.jwt",
                                                 "http://127.0.0.1:8702/zj/trustlist.jwt"])
    html = files["index.html"].decode()
    assert ("connect-src 'self' http://127.0.0.1:8702 https://ecert.gd.example "
            "https://ecert.zj.example;") in html
    assert "广东省&lt;b&gt;" in html and "<b>" not in html  # names are escaped


def test_vendored_decoder_is_the_npm_release() -> None:
    readme = (VENDOR / "README.md").read_text()
    digest = hashlib.sha256((VENDOR / "jsQR.js").read_bytes()).hexdigest()
    assert f"SHA-256 of `jsQR.js`: `{digest}`" in readme
    assert "Apache License" in (VENDOR / "jsQR-LICENSE.txt").read_text()


def test_doctor_finds_a_page_that_is_not_the_signed_one(published_copy: Published) -> None:
    _registry, _cert, bundle = published_copy
    now = int(EPOCH.timestamp())
    assert not [f for f in check_bundle(bundle, now=now) if f.code == "verifier_page_mismatch"]
    app = bundle / "verify" / "app.js"
    app.write_bytes(app.read_bytes().replace(b"textContent", b"innerHTML"))
    (bundle / "verify" / "sw.js").unlink()
    found = [f for f in check_bundle(bundle, now=now) if f.code == "verifier_page_mismatch"]
    assert sorted(f.message.split(":")[0] for f in found) == ["app.js", "sw.js"]
    assert all(f.severity == "error" for f in found)


# -- the minifier ----------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "expected"), [
    ("a = b / c / d;", "a=b/c/d;"),
    ("x = y.replace(/\\/+$/, ''); // tail", "x=y.replace(/\\/+$/,'');"),
    ("return /a[/]b/g.test(s);", "return/a[/]b/g.test(s);"),
    ("i++ + 1; a - -b; a + +b; c = d - 1;", "i++ +1;a- -b;a+ +b;c=d-1;"),
    ("const s = '/* not a comment */ // nor this';", "let s='/* not a comment */ // nor this';"),
    ("t = `a ${ {b: '}'}.b } /c/ ${x}`;", "t=`a ${ {b: '}'}.b } /c/ ${x}`;"),
    ("let a = 1\n/* multi\nline */\nlet b = 2", "let a=1\nlet b=2"),
    ("if (a) {\n  f();\n}\nelse {\n  g();\n}", "if(a){f()}else{g()}"),
    ("a\n++b", "a\n++b"),
    ("typeof x === 'number'", "typeof x==='number'"),
    # ";" before "}" goes, but not as the (empty) body of an if, loop, else or do.
    ("function f() { g(); return 1; }", "function f(){g();return 1}"),
    ("{ if (a) b(); }", "{if(a)b()}"),
    ("{ if (a(1)); } { for (;;); } { while (f(x)); }", "{if(a(1));}{for(;;);}{while(f(x));}"),
    ("{ if (a) b(); else; } { do; while (x) }", "{if(a)b();else;}{do;while(x)}"),
    ("x = '};';", "x='};';"),
    # const declares with let; a property or key named const stays.
    ("const a = 1, [b] = c; for (const k of o.const) { const {x} = k; }",
     "let a=1,[b]=c;for(let k of o.const){let{x}=k}"),
    ("x = {const: 1}; const\ny = 2;", "x={const:1};let\ny=2;"),
    # Consecutive let statements of one block join; not across blocks, brackets or loops.
    ("let a = 1;\nconst [b] = c; let f = () => { let x = 1; return x; };",
     "let a=1,[b]=c,f=()=>{let x=1;return x};"),
    ("let a = 1; { let b = 2; } let c = 3; f(); let d;",
     "let a=1;{let b=2}let c=3;f();let d;"),
    ("for (let i = 0; i < 1; i++) { const a = i; let b = a; }\nlet q = [x => { let y; }];",
     "for(let i=0;i<1;i++){let a=i,b=a}let q=[x=>{let y}];"),
    ("(function () { let a = 1; let b = f(a, () => { let c; let d; }); })();",
     "(function(){let a=1,b=f(a,()=>{let c,d})})();"),
    ("a.map((x) => x + 1); f(async (y) => y); g((a, b) => a); h(() => 1); k = (z) => z;",
     "a.map(x=>x+1);f(async(y)=>y);g((a,b)=>a);h(()=>1);k=z=>z;"),
])
def test_minify_js(source: str, expected: str) -> None:
    assert _page.minify_js(source) == expected + "\n"


def test_minify_css() -> None:
    assert _page.minify_css("/* c */ a , b {\n  color: red ;\n}\n.x .y { margin: 0 }") == \
        "a,b{color:red}.x .y{margin:0}\n"
    assert _page.minify_css("a { margin: 0.5rem 10.25rem 0 }") == "a{margin:.5rem 10.25rem 0}\n"
