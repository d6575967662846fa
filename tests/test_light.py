"""A verifier-only install (``pip install ecert``, no extras) verifies, and stays light.

``import ecert`` and the verifier's modules load no registry machinery (SQLAlchemy,
Alembic, jsonschema), no drawing or image libraries, no click, and no ``fcntl`` (absent on
Windows); ``ecert verify`` works without any extra's module, and a command that needs an
extra says which one in one line, exit code 2. Each case runs in a fresh interpreter
(tests/support/extras.py). CI also builds a real verifier-only venv (.ci/run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import ecert
from tests.support import EPOCH, Golden
from tests.support.extras import EXTRA_MODULES, ecert_without_extras, run_without_extras

#: What the library's verifier must not load: the extras' modules, the CLI's, and fcntl.
HEAVY = (*EXTRA_MODULES, "click", "platformdirs", "fcntl")


def _loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m.partition(".")[0] in names]


def test_verifier_import_loads_nothing_heavy(tmp_path: Path) -> None:
    run = run_without_extras("import ecert.verify, ecert.trust, ecert.qr, ecert, ecert.mirror",
                             tmp_path=tmp_path, blocked=())
    assert run.returncode == 0, run.stderr
    assert "ecert.verify" in run.modules
    assert _loaded(run.modules, HEAVY) == []
    assert [m for m in run.modules if m.startswith("ecert.registry")] == []


def test_registry_names_are_imported_on_first_use(tmp_path: Path) -> None:
    code = ("import ecert, sys\n"
            "before = 'Registry' in vars(ecert) or 'sqlalchemy' in sys.modules\n"
            "assert not before, 'imported too early'\n"
            "assert 'Registry' in dir(ecert)\n"
            "from ecert import Registry\n"
            "assert Registry is ecert.Registry and 'sqlalchemy' in sys.modules\n")
    run = run_without_extras(code, tmp_path=tmp_path, blocked=())
    assert run.returncode == 0, run.stderr


def test_a_registry_name_without_the_extra_says_which_extra(tmp_path: Path) -> None:
    code = ("import ecert\n"
            "try:\n"
            "    ecert.Registry\n"
            "except ImportError as e:\n"
            "    assert isinstance(e, ecert.ExtraMissing) and isinstance(e, ecert.EcertError)\n"
            "    print(e.code, e.extra, e.name)\n"
            "try:\n"
            "    ecert.Nonexistent\n"
            "except AttributeError:\n"
            "    print('no such name')\n")
    run = run_without_extras(code, tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["extra_missing registry sqlalchemy", "no such name"]


def test_unknown_names_stay_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="Nonexistent"):
        ecert.Nonexistent  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(ecert, "Nonexistent")


@pytest.mark.parametrize("token_of", ["token", "qr"])
def test_ecert_verify_needs_no_extra(golden: Golden, tmp_path: Path, token_of: str) -> None:
    token = golden.cert.token if token_of == "token" else ecert.qr.qr_text(golden.qr_tokens[0])
    run = ecert_without_extras("verify", token, "--bundle", str(golden.bundle), "--json",
                               tmp_path=tmp_path, now=EPOCH)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["valid"] is True and result["status"] == "valid"
    assert golden.cert.id in run.stdout
    assert run.tried == []  # not even attempted
    # (fcntl may be loaded now: the verifier locks its trust state file to record what it saw.)
    assert _loaded(run.modules, EXTRA_MODULES) == []


def test_ecert_verify_of_a_forgery_says_not_valid(golden: Golden, tmp_path: Path) -> None:
    forged = golden.cert.token[:-8] + ("A" * 8 if not golden.cert.token.endswith("A" * 8)
                                       else "B" * 8)
    run = ecert_without_extras("verify", forged, "--bundle", str(golden.bundle),
                               tmp_path=tmp_path, now=EPOCH)
    assert run.returncode == 1, run.stderr
    assert run.stdout.startswith("NOT VALID")


def test_doctor_checks_a_bundle_without_the_registry_extra(golden: Golden,
                                                          tmp_path: Path) -> None:
    # A verifier's machine runs no registry: that is no problem, the bundle is checked.
    # (doctor judges expiry on the real clock: the golden bundle's lists have expired.)
    run = ecert_without_extras("doctor", "--bundle", str(golden.bundle), "--json",
                               tmp_path=tmp_path, now=EPOCH)
    findings = {f["code"]: f for f in json.loads(run.stdout)["findings"]}
    assert run.stderr == ""
    problems = {code for code, f in findings.items() if f["severity"] != "info"}
    assert problems <= {"status_list_expired", "trust_list_expired"}, findings
    assert run.returncode == (1 if problems else 0)
    assert findings["registry_unavailable"]["severity"] == "info"
    assert "'registry' extra is not installed" in findings["registry_unavailable"]["message"]


@pytest.mark.parametrize(("args", "extra"), [
    (["demo"], "registry"),
    (["init", "--region", "GD", "--name", "广东省", "--base-url", "https://ecert.gd.example",
      "--admin", "li.ming"], "registry"),
    (["list"], "registry"),
    (["trust", "export-anchor", "-o", "anchor.json"], "registry"),
    (["verify", "--image", __file__, "--bundle", "."], "image"),
])
def test_a_command_needing_an_extra_says_which_in_one_line(
        tmp_path: Path, args: list[str], extra: str) -> None:
    run = ecert_without_extras(*args, tmp_path=tmp_path, now=EPOCH, lang="zh_CN")
    assert run.returncode == 2
    assert run.stdout == ""
    assert run.stderr == (f"ecert: 错误：此命令需要 ecert 的可选组件 {extra}，尚未安装："
                          f"请运行 pip install 'ecert[{extra}]'\n")


def test_a_postgresql_registry_without_psycopg_names_the_postgres_extra(
        tmp_path: Path) -> None:
    run = ecert_without_extras(
        "--database-url", "postgresql+psycopg://ecert@127.0.0.1:9/none", "list",
        tmp_path=tmp_path, now=EPOCH, blocked=("psycopg",))
    assert run.returncode == 2
    assert run.stderr == ("ecert: error: this command needs the 'postgres' extra of ecert: "
                          "pip install 'ecert[postgres]'\n")
    assert run.tried and all(m.startswith("psycopg") for m in run.tried)


def test_the_json_error_names_the_extra(tmp_path: Path) -> None:
    run = ecert_without_extras("demo", "--json", tmp_path=tmp_path, now=EPOCH, lang="zh_CN")
    assert run.returncode == 2
    assert json.loads(run.stdout) == {"error": {
        "code": "extra_missing",
        "message": "this command needs the 'registry' extra of ecert: "
                   "pip install 'ecert[registry]'"}}
    assert len(run.stderr.splitlines()) == 1 and "Traceback" not in run.stderr
