"""The verifier's network and disk hardening, against hostile servers and planted files.

* one wall-clock deadline over each whole download (connect, TLS, headers, body);
* redirects only within the same origin, a bounded number of times;
* answers that are not HTTP end as ``OSError``, never as an internal error;
* the HTTP cache keeps only documents the caller verified;
* mirrors and caches never write through symlinks and never map outside themselves;
* one URL check where URLs are parsed, signed and fetched;
* the trust state fails closed, belongs to one anchor, and is private.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ecert
from ecert._formats.bundle import decode_anchor, encode_anchor
from ecert._formats.url import check_http_url
from ecert._sources import HttpSource, MirrorSource, mirror_path
from ecert._state import TrustState
from ecert.keys import LocalSigner, generate_private_key
from ecert.trust import TrustAnchor, fetch_and_verify
from tests import _netservers as net
from tests._netservers import answer, counting_server, raw_server, read_request, respond

#: The deadline of the tests: short, so that a test of it is quick.
DEADLINE = 1.0
#: What "returned promptly" means for that deadline: generous, never tight.
PROMPTLY = 5.0


def anchor_at(url: str, region: str = "GD") -> TrustAnchor:
    root = LocalSigner(generate_private_key())
    return TrustAnchor(region, "广东省", root.public_jwk, url)


def timed_fetch(source: HttpSource, uri: str) -> tuple[BaseException | bytes, float]:
    started = time.monotonic()
    try:
        outcome: BaseException | bytes = source.fetch(uri, max_bytes=1 << 20)
    except Exception as e:  # what it raised is the result under test
        outcome = e
    return outcome, time.monotonic() - started


# -- 6: one deadline over the whole download ---------------------------------------------------


@pytest.mark.parametrize("behaviour", [net.drip_headers, net.drip_body, net.silent],
                         ids=["drip-headers", "drip-body", "silent"])
def test_a_dripping_server_is_cut_off_at_the_deadline(behaviour: net.Behaviour) -> None:
    with raw_server(behaviour) as server:
        outcome, took = timed_fetch(HttpSource(timeout=DEADLINE), server.url())
    assert isinstance(outcome, OSError), outcome
    assert "cannot reach" in str(outcome)
    assert took < PROMPTLY, took


def test_a_dripping_tls_handshake_is_cut_off_at_the_deadline() -> None:
    with raw_server(net.drip_tls_handshake) as server:
        outcome, took = timed_fetch(HttpSource(timeout=DEADLINE), server.url(scheme="https"))
    assert isinstance(outcome, OSError), outcome
    assert took < PROMPTLY, took


def test_https_works_and_a_slow_body_over_tls_is_cut_off(tmp_path: Path) -> None:
    with net.tls_server(tmp_path, respond(200, {"ETag": '"v1"'}, b"over tls")) as (server,
                                                                                context):
        source = HttpSource(timeout=DEADLINE, ssl_context=context)
        assert source.fetch(server.url(scheme="https"), max_bytes=100) == b"over tls"
        with pytest.raises(OSError):  # the system CAs do not know this certificate
            HttpSource(timeout=DEADLINE).fetch(server.url(scheme="https"), max_bytes=100)
    with net.tls_server(tmp_path, net.drip_body) as (server, context):
        outcome, took = timed_fetch(HttpSource(timeout=DEADLINE, ssl_context=context),
                                    server.url(scheme="https"))
    assert isinstance(outcome, OSError), outcome
    assert took < PROMPTLY, took


def test_verifier_construction_is_bounded_by_the_deadline() -> None:
    """What the review saw: a verifier blocked for minutes by a dripping trust list."""
    with raw_server(net.drip_body) as server:
        started = time.monotonic()
        with pytest.raises(ecert.TrustListError) as caught:
            ecert.Verifier.from_anchor(anchor_at(server.url("gd/trustlist.jwt")),
                                       source=HttpSource(timeout=DEADLINE))
        took = time.monotonic() - started
    assert caught.value.code == "trust_list_unavailable"
    assert took < PROMPTLY, took


def test_a_resolver_that_never_answers_is_cut_off_at_the_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo has no timeout of its own: a broken or hostile DNS server could hold a
    download for the system's whole retry schedule."""
    release = threading.Event()
    real = socket.getaddrinfo

    def hanging(*args: object, **kwargs: object) -> object:
        release.wait(60)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        outcome, took = timed_fetch(HttpSource(timeout=DEADLINE),
                                    "https://ecert.gd.example/trustlist.jwt")
    finally:
        release.set()
    assert isinstance(outcome, OSError) and "longer than" in str(outcome), outcome
    assert DEADLINE * 0.9 < took < PROMPTLY, took


def test_every_address_tried_shares_the_one_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """socket.create_connection gives each address the whole timeout again: three
    unanswering addresses would take three deadlines."""
    black_hole = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.0.2.1", 443))] * 3
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_a, **_k: black_hole)
    connects: list[float] = []
    real_connect = socket.socket.connect

    def slow_connect(self: socket.socket, address: object) -> None:
        connects.append(time.monotonic())
        time.sleep(min(self.gettimeout() or DEADLINE, DEADLINE))
        raise TimeoutError("timed out")

    monkeypatch.setattr(socket.socket, "connect", slow_connect)
    outcome, took = timed_fetch(HttpSource(timeout=DEADLINE),
                                "https://ecert.gd.example/trustlist.jwt")
    monkeypatch.setattr(socket.socket, "connect", real_connect)
    assert isinstance(outcome, OSError) and "longer than" in str(outcome), outcome
    assert len(connects) == 1 and took < DEADLINE * 1.9, (connects, took)


def test_the_deadline_leaves_a_verified_cached_copy_usable(tmp_path: Path) -> None:
    dripping = threading.Event()
    good = respond(200, {}, b"good")

    def behaviour(sock: socket.socket, stopping: threading.Event) -> None:
        (net.drip_body if dripping.is_set() else good)(sock, stopping)

    with raw_server(behaviour) as server:
        uri = server.url("gd/status/1.jwt")
        source = HttpSource(timeout=DEADLINE, cache_dir=tmp_path)
        assert source.fetch(uri, max_bytes=100) == b"good"
        source.verified(uri, b"good")
        dripping.set()  # the same origin now drips: the verified copy is used, in time
        outcome, took = timed_fetch(HttpSource(timeout=DEADLINE, cache_dir=tmp_path), uri)
    assert outcome == b"good"
    assert took < PROMPTLY, took


# -- 7: redirects stay within the origin -------------------------------------------------------


def redirecting(location: str, status: int = 302) -> net.Behaviour:
    return respond(status, {"Location": location})


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_to_another_host_or_port_are_not_followed(status: int) -> None:
    with counting_server() as elsewhere:
        targets = [
            elsewhere.url("x"),  # another port of the same host
            f"http://localhost:{elsewhere.port}/x",  # another host name
            f"https://127.0.0.1:{elsewhere.port}/x",  # another scheme
            "ftp://127.0.0.1/etc/passwd",
            "file:///etc/passwd",
            "http://169.254.169.254/latest/meta-data/",
        ]
        for target in targets:
            with raw_server(redirecting(target, status)) as server, \
                    pytest.raises(ecert.FormatError) as caught:
                HttpSource(timeout=DEADLINE).fetch(server.url(), max_bytes=100)
            assert caught.value.code == "redirect_refused", target
        assert elsewhere.hits == 0


def test_a_redirect_within_the_origin_is_followed_a_bounded_number_of_times() -> None:
    hops: list[str] = []

    def behaviour(sock: socket.socket, stopping: threading.Event) -> None:
        path = read_request(sock).split(b" ", 2)[1].decode()
        hops.append(path)
        if path == "/final.jwt":
            answer(sock, 200, {}, b"arrived")
        elif path.startswith("/loop"):
            answer(sock, 302, {"Location": f"/loop{len(hops)}.jwt"})
        else:
            answer(sock, 301, {"Location": "/final.jwt"})

    with raw_server(behaviour) as server:
        source = HttpSource(timeout=DEADLINE)
        assert source.fetch(server.url("start.jwt"), max_bytes=100) == b"arrived"
        assert hops == ["/start.jwt", "/final.jwt"]
        hops.clear()
        with pytest.raises(ecert.FormatError) as caught:
            source.fetch(server.url("loop.jwt"), max_bytes=100)
    assert caught.value.code == "redirect_refused"
    assert len(hops) == 4  # the request and three redirects, then no more


def test_a_refused_redirect_is_one_regions_failure_in_a_verifier(tmp_path: Path) -> None:
    with counting_server() as elsewhere, \
            raw_server(redirecting(f"http://localhost:{elsewhere.port}/x")) as server:
        with pytest.raises(ecert.TrustListError) as caught:
            ecert.Verifier.from_anchor(anchor_at(server.url("gd/trustlist.jwt")),
                                       source=HttpSource(timeout=DEADLINE))
        assert elsewhere.hits == 0
    assert caught.value.code == "trust_list_unavailable"
    assert "another origin" in caught.value.message


# -- answers that are not HTTP -----------------------------------------------------------------


@pytest.mark.parametrize("behaviour", [
    net.babble,
    lambda sock, stopping: (read_request(sock), sock.sendall(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")),
    respond(200, {f"X-{i}": "y" for i in range(150)}),
], ids=["not-http", "bad-chunk", "too-many-headers"])
def test_a_server_babbling_is_an_os_error(behaviour: net.Behaviour) -> None:
    with raw_server(behaviour) as server:
        outcome, _ = timed_fetch(HttpSource(timeout=DEADLINE), server.url())
    assert isinstance(outcome, OSError), repr(outcome)


# -- 8: the cache keeps only what verified -----------------------------------------------------


def test_the_cache_keeps_only_what_the_caller_verified(tmp_path: Path) -> None:
    with counting_server(b"first") as server:
        uri = server.url("gd/trustlist.jwt")
        source = HttpSource(timeout=DEADLINE, cache_dir=tmp_path)
        assert source.fetch(uri, max_bytes=100) == b"first"
        # Not verified (yet): nothing on disk.
        assert not mirror_path(tmp_path, uri).exists()
        source.verified(uri, b"something else")  # not what was fetched: ignored
        assert not mirror_path(tmp_path, uri).exists()
        source.verified(uri, b"first")
        assert mirror_path(tmp_path, uri).read_bytes() == b"first"
        assert not mirror_path(tmp_path, uri + ".etag").exists()  # the server sent none
    with counting_server(b"evil") as other:
        evil_uri = other.url("gd/trustlist.jwt")
        mirror_path(tmp_path, evil_uri).parent.mkdir(parents=True, exist_ok=True)
        mirror_path(tmp_path, evil_uri).write_bytes(b"good")
        source = HttpSource(timeout=DEADLINE, cache_dir=tmp_path)
        assert source.fetch(evil_uri, max_bytes=100) == b"evil"  # fetched, fails to verify
        assert mirror_path(tmp_path, evil_uri).read_bytes() == b"good"


def test_fetch_and_verify_does_not_cache_a_list_that_fails(tmp_path: Path) -> None:
    with counting_server(b"not a trust list") as server:
        anchor = anchor_at(server.url("gd/trustlist.jwt"))
        source = HttpSource(timeout=DEADLINE, cache_dir=tmp_path)
        with pytest.raises(ecert.TrustListError):
            fetch_and_verify(anchor, source, now=0, grace=0)
    assert not mirror_path(tmp_path, anchor.trust_list_url).exists()


# -- 9: no symlinks followed, nothing outside the mirror ---------------------------------------


URI = "https://ecert.gd.example/trustlist.jwt"


def test_a_planted_symlink_at_the_old_temporary_name_is_not_followed(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    host = mirror / "ecert.gd.example"
    host.mkdir(parents=True)
    (host / ".trustlist.jwt.tmp").symlink_to(victim)
    MirrorSource(mirror).store(URI, b"document")
    assert victim.read_bytes() == b"precious"
    assert (host / "trustlist.jwt").read_bytes() == b"document"
    assert (host / ".trustlist.jwt.tmp").is_symlink()


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    host = mirror / "ecert.gd.example"
    host.mkdir(parents=True)
    (host / "trustlist.jwt").symlink_to(victim)
    with pytest.raises(ecert.FormatError) as caught:
        MirrorSource(mirror).fetch(URI, max_bytes=100)  # not read through it either
    assert caught.value.code == "unsafe_path"
    MirrorSource(mirror).store(URI, b"document")
    assert victim.read_bytes() == b"precious"
    assert not (host / "trustlist.jwt").is_symlink()


def test_a_symlinked_directory_in_the_mirror_is_refused(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mirror.mkdir()
    (mirror / "ecert.gd.example").symlink_to(elsewhere, target_is_directory=True)
    for attempt in (lambda: MirrorSource(mirror).store(URI, b"document"),
                    lambda: MirrorSource(mirror).fetch(URI, max_bytes=100)):
        with pytest.raises(ecert.FormatError) as caught:
            attempt()
        assert caught.value.code == "unsafe_path"
    assert list(elsewhere.iterdir()) == []


def test_a_fifo_in_the_mirror_does_not_hang_the_reader(tmp_path: Path) -> None:
    host = tmp_path / "ecert.gd.example"
    host.mkdir()
    os.mkfifo(host / "trustlist.jwt")
    with pytest.raises(ecert.FormatError) as caught:
        MirrorSource(tmp_path).fetch(URI, max_bytes=100)
    assert caught.value.code == "unsafe_path"


@pytest.mark.parametrize("uri", [
    "http://../trustlist.jwt", "http://./x.jwt", "http://a..b/x.jwt", "http://%2e%2e/x.jwt",
    "http://" + "a" * 64 + ".example/x.jwt", "http://x.example/../x.jwt",
    "http://x.example/a/%2F/b.jwt?q=1", "ftp://x.example/x.jwt",
])
def test_mirror_paths_stay_inside_the_mirror(tmp_path: Path, uri: str) -> None:
    with pytest.raises(ecert.FormatError) as caught:
        MirrorSource(tmp_path / "mirror").store(uri, b"x")
    assert caught.value.code == "foreign_uri"
    assert list(tmp_path.iterdir()) in ([], [tmp_path / "mirror"])
    with pytest.raises(ecert.FormatError):
        mirror_path(tmp_path, uri)


def test_mirror_files_and_temporaries(tmp_path: Path) -> None:
    source = MirrorSource(tmp_path)
    source.store(URI, b"one")
    source.store(URI, b"two")
    assert source.fetch(URI, max_bytes=100) == b"two"
    host = tmp_path / "ecert.gd.example"
    assert [p.name for p in host.iterdir()] == ["trustlist.jwt"]  # no temporaries left
    ipv6 = mirror_path(tmp_path, "http://[::1]:8080/a/b.jwt")
    assert ipv6 == tmp_path / "::1_8080" / "a" / "b.jwt"


# -- 10: URL checks ----------------------------------------------------------------------------


GOOD_URLS = ["https://ecert.gd.example", "http://127.0.0.1:8080/gd", "http://[::1]/x",
             "https://xn--fiqs8s.example/a/b-c_d.e~f", "https://A.Example/x"]
BAD_URLS = ["http://../x", "https://" + "a" * 64 + ".example", "ftp://x.example/y",
            "file:///etc/passwd", "http://x.example/../y", "http://u:p@x.example/y",
            "http://x.example:0/y", "http://x.example:65536/y", "http://x.example/y?q",
            "http://x.example/y#f", "http://例え.jp/x", "http://x.example/a b",
            "http://x.example/a\\b", "HTTP://x.example/y", "http:/x.example/y",
            "http://-x.example/y", "http://1.2.3.256/y", "http://[zz]/y", "", "http://",
            "http://x.example:/y", "http://" + "a." * 130 + "example/y",
            "http://x.example/" + "a" * 2100]


@pytest.mark.parametrize("url", GOOD_URLS)
def test_good_urls(url: str) -> None:
    assert check_http_url(url, base=True) == url


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_urls_are_format_errors(url: str) -> None:
    for base in (False, True):
        with pytest.raises(ecert.FormatError) as caught:
            check_http_url(url, base=base)
        assert caught.value.code == "invalid_url"


@pytest.mark.parametrize("url", ["http://../trustlist.jwt",
                                 "https://" + "a" * 64 + ".example/trustlist.jwt"])
def test_bad_urls_never_escape_as_unicode_errors(tmp_path: Path, url: str) -> None:
    with pytest.raises(ecert.FormatError):
        HttpSource(timeout=DEADLINE).fetch(url, max_bytes=100)
    with pytest.raises(ecert.TrustListError) as caught:
        ecert.Verifier.from_anchor(anchor_at(url), cache_dir=tmp_path)
    assert caught.value.code == "trust_list_unavailable"
    root = LocalSigner(generate_private_key()).public_jwk
    document = json.dumps({"region": "GD", "name": "x", "root_key": root, "trust_list": url,
                           "version": 1}).encode()
    with pytest.raises(ecert.FormatError) as format_error:
        decode_anchor(document)
    assert format_error.value.code == "invalid_url"
    with pytest.raises(ecert.TrustListError) as caught:
        TrustAnchor.from_bytes(document)
    assert caught.value.code == "anchor_malformed"
    with pytest.raises(ecert.FormatError):
        encode_anchor("GD", "x", root, url.rsplit("/", 1)[0])


# -- 11: the trust state -----------------------------------------------------------------------


@pytest.fixture
def anchor() -> TrustAnchor:
    return anchor_at("https://ecert.gd.example/trustlist.jwt")


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "trust-state.json"


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_state_files_are_private_even_under_umask_000(
        anchor: TrustAnchor, state_path: Path, open_umask: None) -> None:
    TrustState(state_path, anchor).record(anchor, anchor, 3)
    assert state_path.stat().st_mode & 0o777 == 0o600
    assert state_path.with_suffix(".lock").stat().st_mode & 0o777 == 0o600
    assert state_path.parent.stat().st_mode & 0o077 == 0
    doc = json.loads(state_path.read_text("utf-8"))
    assert doc["anchor"] == {"region": "GD", "root_kid": anchor.kid}
    assert doc["regions"]["GD"]["sequence"] == 3
    assert sorted(p.name for p in state_path.parent.iterdir()) == [
        "trust-state.json", "trust-state.lock"]  # no temporaries left


def test_a_planted_symlink_does_not_receive_the_state(
        anchor: TrustAnchor, state_path: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious", "utf-8")
    state_path.parent.mkdir()
    (state_path.parent / f"trust-state.{os.getpid()}.tmp").symlink_to(victim)
    state_path.with_suffix(".lock").symlink_to(tmp_path / "lock-victim")
    with pytest.raises(ecert.TrustListError) as caught:
        TrustState(state_path, anchor).record(anchor, anchor, 3)
    assert caught.value.code == "trust_state_unwritable"
    assert not (tmp_path / "lock-victim").exists()
    state_path.with_suffix(".lock").unlink()
    TrustState(state_path, anchor).record(anchor, anchor, 3)
    assert victim.read_text("utf-8") == "precious"
    state_path.unlink()
    state_path.symlink_to(victim)  # a symlinked state file is not read through
    with pytest.raises(ecert.TrustListError) as caught:
        TrustState(state_path, anchor)
    assert caught.value.code == "trust_state_corrupt"


@pytest.mark.parametrize("content", [
    b"", b"{", b"[]", b'{"regions": []}', b'{"regions": {"GD": {"sequence": "5"}}}',
    b'{"regions": {"GD": {"pinned_kid": "k", "sequence": 5, "root_key": "k"}}}',
    b'{"version": 2, "regions": {}}', b'{"version": 9, "regions": {}}',
    b'{"regions": {}, "regions": {}}', b"\xff\xfe",
])
def test_a_corrupt_state_fails_closed(anchor: TrustAnchor, state_path: Path,
                                      content: bytes) -> None:
    state_path.parent.mkdir()
    state_path.write_bytes(content)
    with pytest.raises(ecert.TrustListError) as caught:
        TrustState(state_path, anchor)
    assert caught.value.code == "trust_state_corrupt"
    assert "ecert trust reset-state --anchor" in caught.value.message
    assert TrustState.reset(state_path, anchor) in (None, 0)  # nothing usable forgotten
    assert TrustState(state_path, anchor).pinned(anchor) == (anchor, None)


def test_a_state_of_another_anchor_is_refused(anchor: TrustAnchor, state_path: Path) -> None:
    TrustState(state_path, anchor).record(anchor, anchor, 7)
    other = anchor_at(anchor.trust_list_url)  # same region, another root
    for stranger in (other, anchor_at(anchor.trust_list_url, region="ZJ")):
        with pytest.raises(ecert.TrustListError) as caught:
            TrustState(state_path, stranger)
        assert caught.value.code == "trust_state_wrong_anchor"
    # A root the state itself followed by rotation is the same anchor, moved on.
    TrustState(state_path, anchor).record(anchor, other, 8)
    assert TrustState(state_path, other).pinned(other) == (other, 8)
    assert json.loads(state_path.read_text("utf-8"))["anchor"]["root_kid"] == anchor.kid
    assert TrustState.reset(state_path, other) == 1
    assert json.loads(state_path.read_text("utf-8"))["anchor"]["root_kid"] == other.kid
    with pytest.raises(ecert.TrustListError):
        TrustState(state_path, anchor_at(anchor.trust_list_url))


def test_a_state_written_before_files_named_their_anchor_is_adopted(
        anchor: TrustAnchor, state_path: Path) -> None:
    state_path.parent.mkdir()
    state_path.write_text(json.dumps({"regions": {"GD": {
        "pinned_kid": anchor.kid, "sequence": 4, "root_key": dict(anchor.root_jwk)}}}), "utf-8")
    state = TrustState(state_path, anchor)
    assert state.pinned(anchor) == (anchor, 4)
    state.record(anchor, anchor, 5)
    assert json.loads(state_path.read_text("utf-8"))["anchor"]["root_kid"] == anchor.kid
