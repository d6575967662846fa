"""The sharing service's request bodies, problem documents and the in-memory nonce store."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecert._formats.sharing import (
    FRESHNESS_WINDOW,
    PROBLEM_CODES,
    PROBLEMS,
    CaseContext,
    CheckRequest,
    MemoryNonceStore,
    Problem,
    ShareRequest,
)
from ecert.errors import FormatError
from tests.support.clock import FakeClock
from tests.support.mutation import mutated, only_format_errors

CONTEXT = CaseContext(purpose="跨省迁移登记", case="ZJ2026120100001",
                      service_item="330000-SX-0001", staff_id="zj-0042", staff_role="受理员")
REQUEST = ShareRequest("91440300MA5F3K2L8G", ("cn.business-licence",), CONTEXT)
CHECK = CheckRequest("cn.business-licence",
                     {"holder_id": "91440300MA5F3K2L8G", "name": "示例公司"}, CONTEXT)


def test_requests_round_trip() -> None:
    assert ShareRequest.from_json(REQUEST.to_json()) == REQUEST
    with_consent = replace(REQUEST, context=replace(CONTEXT, consent="ABCD-EFGH-JKMN"))
    assert ShareRequest.from_json(with_consent.to_json()) == with_consent
    assert CheckRequest.from_json(CHECK.to_json()) == CHECK
    body = json.loads(REQUEST.to_json())
    assert set(body) == {"holder_id", "types", "purpose", "case", "service_item", "staff_id",
                         "staff_role"}


def _body(**changes: object) -> bytes:
    body = json.loads(REQUEST.to_json())
    body.update(changes)
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


@pytest.mark.parametrize("data", [
    b"", b"[]", b"null", b'{"holder_id": "x"', b"\xff",
    _body(purpose=...), _body(purpose=""), _body(purpose="  "), _body(purpose="x" * 201),
    _body(purpose="a\u202eb"), _body(case=...), _body(service_item=...), _body(staff_id=...),
    _body(staff_role=...), _body(holder_id=...), _body(holder_id=1), _body(types=[]),
    _body(types="cn.business-licence"), _body(types=["Cn.X"]), _body(types=["a", "a"]),
    _body(types=[f"t{i}" for i in range(17)]), _body(consent=""), _body(consent="a b c d"),
    _body(consent=1234), _body(requester="ZJ/zj-amr"),  # the requester comes from the key
    b'{"holder_id": "a", "holder_id": "b"}',
    b" " * 20_000,
])
def test_share_request_refuses(data: bytes) -> None:
    with pytest.raises(FormatError) as e:
        ShareRequest.from_json(data)
    assert e.value.code in {"malformed", "too_large"}


@pytest.mark.parametrize("values", [
    {}, {"name": "x"}, {"holder_id": 1}, {"holder_id": "x", "Bad Name": "y"},
    {f"k{i}": "v" for i in range(17)} | {"holder_id": "x"}, [],
])
def test_check_request_refuses(values: object) -> None:
    body = json.loads(CHECK.to_json())
    body["values"] = values
    with pytest.raises(FormatError):
        CheckRequest.from_json(json.dumps(body).encode())


def test_problem_codes_and_documents() -> None:
    assert PROBLEM_CODES == ("not_authenticated", "region_not_recognized", "not_entitled",
                             "purpose_not_permitted", "consent_required", "consent_invalid",
                             "replay", "too_many_requests")
    for code in PROBLEMS:
        problem = Problem.of(code, "detail")
        body = json.loads(problem.to_json())
        assert body == {"type": f"/problems/{code}", "title": PROBLEMS[code][1],
                        "status": PROBLEMS[code][0], "code": code, "detail": "detail"}
        assert Problem.from_json(problem.to_json()) == problem
    # A newer service's code is kept; unknown members are ignored (RFC 9457 §3.2).
    newer = b'{"type":"/problems/new_thing","title":"t","status":403,"code":"new_thing","x":1}'
    assert Problem.from_json(newer) == Problem("new_thing", 403, "t")


@pytest.mark.parametrize("data", [
    b"{}", b'{"code":"x","status":200,"title":"t","type":"/problems/x"}',
    b'{"code":"x","status":"403","title":"t","type":"/problems/x"}',
    b'{"code":"X","status":403,"title":"t","type":"/problems/X"}',
    b'{"code":"x","status":403,"title":"t","type":"/problems/y"}',
    b'{"code":"x","status":403,"title":"a\\u0007","type":"/problems/x"}',
    b'{"code":"x","status":403,"title":"t","detail":5,"type":"/problems/x"}',
])
def test_problem_refuses(data: bytes) -> None:
    with pytest.raises(FormatError):
        Problem.from_json(data)


def test_memory_nonce_store() -> None:
    clock = FakeClock()
    store = MemoryNonceStore(clock, sweep_above=2)
    now = int(clock().timestamp())
    assert store.remember("ZJ/zj-amr", "n1", now + FRESHNESS_WINDOW)
    assert not store.remember("ZJ/zj-amr", "n1", now + FRESHNESS_WINDOW)
    assert store.remember("GD/gd-hrss", "n1", now + FRESHNESS_WINDOW)  # per requester
    assert store.remember("ZJ/zj-amr", "n2", now + 10)
    clock.advance(seconds=11)
    assert store.remember("ZJ/zj-amr", "n3", now + 100)  # sweeps n2
    assert len(store) == 3
    assert not store.remember("ZJ/zj-amr", "n1", now + FRESHNESS_WINDOW)
    clock.advance(seconds=FRESHNESS_WINDOW)
    assert store.remember("ZJ/zj-amr", "n1", now + 2 * FRESHNESS_WINDOW)


def test_memory_nonce_store_is_atomic() -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = MemoryNonceStore(FakeClock())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: store.remember("r", "same", 2**40), range(64)))
    assert results.count(True) == 1


def _decoders(data: bytes) -> None:
    only_format_errors(*(lambda d=decode: d(data) for decode in
                         (ShareRequest.from_json, CheckRequest.from_json, Problem.from_json)))


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_random_bodies_only_raise_format_error(data: bytes) -> None:
    _decoders(data)


@settings(max_examples=200, deadline=None)
@given(mutated([REQUEST.to_json(), CHECK.to_json(), Problem.of("not_entitled", "x").to_json()]))
def test_mutated_bodies_only_raise_format_error(data: bytes) -> None:
    _decoders(data)
