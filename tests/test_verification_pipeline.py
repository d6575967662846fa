"""The pure verification pipeline (``ecert/_verification``) on its own: the trust view,
decoders and policies, without the verifier's edge (sources, caches, state)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

import ecert
from ecert._formats import jose
from ecert._formats.statuslist import StatusListToken
from ecert._formats.trustlist import Agreement
from ecert._verification import decoders, pipeline
from ecert._verification.policies import CopyUse, KeyValidity, PolicySet
from ecert._verification.region import RegionIndex
from ecert._verification.vocabulary import ErrorCode, Failure, TokenKind, VerificationLimits
from ecert.verify import VerificationResult, VerificationStatus, Verifier
from tests.support import FakeClock, Published
from tests.support.sharing import AUDIENCE, add_sharing_key, copy_of, read_trust_list

ROOT = Path(__file__).resolve().parent.parent


class View:
    """A trust view over one bundle, reading its status lists from the directory."""

    def __init__(self, bundle: Path, limits: VerificationLimits) -> None:
        self.home = RegionIndex(read_trust_list(bundle))
        self.bundle = bundle
        self.limits = limits
        self.asked: list[str] = []

    def recognized(self, region: str, now: int) -> tuple[Agreement, RegionIndex]:
        self.asked.append(region)
        raise Failure(ecert.VerificationStatus.UNTRUSTED, ErrorCode.REGION_NOT_RECOGNIZED,
                      f"no agreement with {region}")

    def status_list(self, region: str, uri: str, now: int) -> StatusListToken:
        assert region == self.home.code
        data = (self.bundle / "status" / uri.rsplit("/", 1)[1]).read_bytes()
        return self.home.check_status_list(data, uri, now, self.limits)


@pytest.fixture
def view(published_copy: Published) -> View:
    return View(published_copy[2], VerificationLimits())


def now_of(clock: FakeClock) -> int:
    return int(clock().timestamp())


def test_the_pipeline_runs_over_a_trust_view_alone(view: View, published_copy: Published,
                                                   clock: FakeClock) -> None:
    _, cert, _ = published_copy
    limits, now = VerificationLimits(), now_of(clock)
    policies = PolicySet.standard(view.home.code, limits.leeway_seconds)
    outcome = pipeline.run(cert.token, view, limits, now, policies, CopyUse())
    assert (outcome.status, outcome.errors, outcome.local_type) == (
        VerificationStatus.VALID, (), cert.type_code)
    assert outcome.token.kind is TokenKind.CERTIFICATE and outcome.token.copy is None
    # A token naming another region asks the view, which refuses: the failure says so.
    payload = {**jose.parse_compact(cert.token, max_bytes=65_536).payload, "region": "SH"}
    other = jose.sign_compact(payload, ecert.LocalSigner(ecert.keys.generate_private_key()),
                              "ecert+jwt")
    with pytest.raises(Failure) as refused:
        pipeline.run(other, view, limits, now, policies, CopyUse())
    assert (refused.value.code, refused.value.kind) == (
        ErrorCode.REGION_NOT_RECOGNIZED, TokenKind.CERTIFICATE)
    assert view.asked == ["SH"]


def test_copy_use_is_a_per_call_policy(published_copy: Published, clock: FakeClock) -> None:
    registry, cert, bundle = published_copy
    now = now_of(clock)
    sharing = add_sharing_key(registry, bundle, valid_from=now - 86_400)
    view = View(bundle, VerificationLimits())
    policies = PolicySet.standard(view.home.code, 60)
    token = copy_of(cert, iat=now).sign(sharing)
    assert pipeline.run(token, view, view.limits, now, policies,
                        CopyUse(AUDIENCE)).token.copy is not None
    for use, code in ((CopyUse(), ErrorCode.AUDIENCE_REQUIRED),
                      (CopyUse("SH/sh-amr"), ErrorCode.WRONG_AUDIENCE),
                      (CopyUse(AUDIENCE, "其他"), ErrorCode.WRONG_PURPOSE)):
        with pytest.raises(Failure) as refused:
            pipeline.run(token, view, view.limits, now, policies, use)
        assert (refused.value.code, refused.value.kind) == (code, TokenKind.COPY)
    # A stricter verifier is the same pipeline with other policies.
    strict = dataclasses.replace(policies, copy=(*policies.copy, KeyValidity(-10**9)))
    with pytest.raises(Failure) as refused:
        pipeline.run(token, view, view.limits, now, strict, CopyUse(AUDIENCE))
    assert refused.value.code is ErrorCode.KEY_NOT_VALID_AT_IAT


def test_the_decoders_know_their_format() -> None:
    assert [(d.kind, d.typ) for d in (decoders.CERTIFICATE, decoders.QR, decoders.COPY)] == [
        (TokenKind.CERTIFICATE, "ecert+jwt"), (TokenKind.QR, "ecert-qr+jwt"),
        (TokenKind.COPY, "ecert-copy+jwt")]


def test_the_fast_certificate_result_is_the_dataclass_one(published_copy: Published,
                                                          clock: FakeClock) -> None:
    _, cert, bundle = published_copy
    fast = Verifier.from_bundle(bundle, clock=clock).verify(cert.token)
    slow = VerificationResult(fast.status, fast.errors, fast.issuer, fast.messages,
                              local_type=fast.local_type, agreement=fast.agreement,
                              _certificate=fast._certificate, kind=fast.kind)
    assert vars(fast) == vars(slow) and fast == slow and fast.valid
    assert fast.to_json() == slow.to_json()
    assert fast.certificate == slow.certificate == cert


def test_the_pipeline_imports_nothing_of_the_registry() -> None:
    """Pure: no SQLAlchemy, Alembic, jsonschema or fcntl (``ecert/__init__`` aside, whose
    weight is another matter: the package is loaded here as a bare namespace)."""
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('ecert'); pkg.__path__ = ['ecert']; sys.modules['ecert'] = pkg\n"
        "import ecert._verification.pipeline\n"
        "heavy = {'sqlalchemy', 'alembic', 'jsonschema', 'fcntl'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"
