"""The fuzz harnesses as ordinary tests (see docs/fuzzing.md).

* Every file in ``tests/fuzz/corpus/<harness>/`` (inputs the fuzzer found, or hostile
  inputs written by hand) is replayed through its harness: each is a regression test.
* Every harness runs briefly under hypothesis: random bytes and mutations of real
  documents. This needs no atheris, so the plain test run exercises every harness.
* Every harness's seeds pass (a harness that rejects genuine documents is broken).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecert._formats import jose
from ecert._formats import qr as qrf
from ecert.errors import FormatError, TrustListError
from ecert.trust import TrustAnchor
from ecert.verify import ErrorCode
from tests.fuzz.harnesses import HARNESSES
from tests.fuzz.world import World, world
from tests.support.mutation import mutated

CORPUS = Path(__file__).parent / "fuzz" / "corpus"
DOCS = Path(__file__).parents[1] / "docs"

#: Corpus files whose bug is known and not fixed yet: (harness, file name) -> reason.
#: Each is an xfail(strict=True) case, so the fix turns it into a plain regression test.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}

#: One input taking longer than this is a hang (libFuzzer's -timeout in the runner).
REPLAY_SECONDS = 10


@pytest.fixture(scope="module")
def fuzz_world() -> World:
    return world()


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail (rather than hang the suite) when a replayed input takes too long."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError(f"input took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _corpus_cases() -> list[Any]:
    cases = []
    for directory in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        for path in sorted(p for p in directory.iterdir()
                           if p.is_file() and not p.name.startswith(".")):
            reason = KNOWN_FAILURES.get((directory.name, path.name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(directory.name, path, id=f"{directory.name}/{path.name}",
                                      marks=marks))
    return cases


def test_corpus_directories_name_harnesses() -> None:
    # A renamed harness must take its corpus along, or its regressions silently stop.
    stray = [p.name for p in CORPUS.iterdir() if p.is_dir() and p.name not in HARNESSES
             and any(f.is_file() and not f.name.startswith(".") for f in p.iterdir())]
    assert not stray, f"corpus directories without a harness: {stray}"


@pytest.mark.parametrize(("name", "path"), _corpus_cases())
def test_corpus_input(name: str, path: Path, fuzz_world: World) -> None:
    with time_limit(REPLAY_SECONDS):
        HARNESSES[name].target(path.read_bytes())


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_seeds_pass(name: str, fuzz_world: World) -> None:
    harness = HARNESSES[name]
    seeds = list(harness.seeds(fuzz_world))
    assert seeds, "a harness needs at least one seed"
    for seed in seeds:
        assert len(seed) <= harness.max_len  # else libFuzzer would never try it whole
        harness.target(seed)


@cache
def inputs(name: str) -> st.SearchStrategy[bytes]:
    """Random bytes, and real documents with a few bytes overwritten, inserted or cut."""
    seeds = list(HARNESSES[name].seeds(world()))
    return st.binary(max_size=200) | mutated(seeds)


@pytest.mark.parametrize("name", sorted(HARNESSES))
@settings(max_examples=75, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_harness_under_hypothesis(name: str, data: st.DataObject, fuzz_world: World) -> None:
    HARNESSES[name].target(data.draw(inputs(name), label="input"))


# -- findings of the fuzzers, fixed in the library: regression tests ----------------------


@pytest.mark.parametrize("url", ["https://ecert.gd.example/lists/current.jwt",
                                 "ecert.gd.example", ""])
def test_anchor_with_nonconformant_trust_list_url_is_refused_or_round_trips(
        url: str, fuzz_world: World) -> None:
    doc = json.loads(fuzz_world.documents["GD"]["anchor.json"])
    doc["trust_list"] = url
    try:
        anchor = TrustAnchor.from_bytes(jose.canonical_json(doc))
    except TrustListError as e:
        assert e.code == "anchor_malformed"
        return
    assert TrustAnchor.from_bytes(anchor.to_bytes()) == anchor


_LONE_SURROGATE = "\ud800"


def _token_with(header: dict[str, Any], payload: bytes, signature: str) -> str:
    return ".".join((jose.b64url_encode(jose.canonical_json(header)),
                     jose.b64url_encode(payload), signature))


def test_verify_messages_of_a_lone_surrogate_region_are_printable(fuzz_world: World) -> None:
    header = jose.strict_json_loads(jose.b64url_decode(fuzz_world.tokens["GD"].split(".")[0]))
    header["kid"] = "no-such-key"
    token = _token_with(header, b'{"region":"\\ud800"}', "AAAA")
    result = fuzz_world.verifier().verify(token)
    # Today region_not_recognized; once the JSON is refused, malformed. Either way:
    assert not result.valid
    assert all(_LONE_SURROGATE not in m for m in result.messages), ascii(result.messages)
    "; ".join(result.messages).encode("utf-8")


def test_wrap_refuses_a_lone_surrogate_with_format_error(fuzz_world: World) -> None:
    header_b64, payload_b64, signature = fuzz_world.qr_token.split(".")
    header = jose.strict_json_loads(jose.b64url_decode(header_b64))
    payload = jose.b64url_decode(payload_b64).replace(b'"h":"', b'"h":"\\ud800', 1)
    with pytest.raises(FormatError):
        qrf.wrap(_token_with(header, payload, signature))


def test_every_error_code_verify_returns_is_in_the_error_reference() -> None:
    reference = (DOCS / "errors.md").read_text("utf-8")
    missing = [c.value for c in ErrorCode if f"`{c.value}`" not in reference]
    assert not missing
