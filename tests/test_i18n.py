"""The CLI in Simplified Chinese: every message translated, the catalog compiled from the
current sources, the language chosen from the environment, JSON and codes unchanged."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from ecert.verify import ErrorCode
from ecert_cli import cli
from ecert_cli._i18n import LOCALE_DIR, language
from tests.support.cli import Cli, assert_no_traceback
from tests.support.clock import FakeClock

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ecert_i18n_tool", ROOT / "tools" / "i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_message_has_a_chinese_translation_and_the_catalog_is_compiled() -> None:
    """Fails with the list of what to do: messages not yet extracted into the .po, those
    without a translation (or marked fuzzy), a .mo not compiled from the .po. The fix is
    ``python tools/i18n.py update``, translating the empty entries, and ``update`` again."""
    problems = _tool().problems()
    assert not problems, "\n".join(["", *problems])


_PLACEHOLDER = re.compile(r"\{[a-z_]*(?:![rs])?\}|%\([a-z_]+\)s")


def test_translations_keep_the_placeholders() -> None:
    """A translation that loses or invents a ``{name}`` would fail at run time."""
    tool = _tool()
    wrong = []
    for message in tool.read_catalog("zh_CN"):
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        allowed = set().union(*(_PLACEHOLDER.findall(i) for i in ids))
        for string in strings:
            found = set(_PLACEHOLDER.findall(string))
            # A plural's one Chinese form may use either English form's placeholders.
            if not found <= allowed or (isinstance(message.id, str) and found != allowed):
                wrong.append(f"{ids[0]!r}: {sorted(allowed)} != {sorted(found)}")
    assert not wrong, "\n".join(wrong)


#: Half-width punctuation touching Chinese text (、 and the full-width forms are what
#: Chinese text uses; "pattern:REGEX", options and URLs are typed as they are).
_HALF_WIDTH = re.compile(r"[\u4e00-\u9fff][,;()]|[,;()][\u4e00-\u9fff]")


def test_chinese_messages_use_chinese_punctuation() -> None:
    """A clerk reads ，；（） in Chinese sentences, not a mixture with , ; ( )."""
    wrong = []
    for message in _tool().read_catalog("zh_CN"):
        strings = [message.string] if isinstance(message.string, str) else list(
            message.string or ())
        wrong.extend(f"{s!r}" for s in strings if _HALF_WIDTH.search(s))
    assert not wrong, "\n".join(wrong)


def test_the_compiled_catalog_is_in_the_package() -> None:
    assert (LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / "ecert.mo").is_file()


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "en"),
    ({"LANG": "zh_CN.UTF-8"}, "zh"),
    ({"LANG": "zh_TW.UTF-8"}, "zh"),
    ({"LANG": "zh"}, "zh"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LANG": "C.UTF-8"}, "en"),
    ({"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),
    ({"LC_ALL": "C", "LC_MESSAGES": "zh_CN.UTF-8"}, "en"),
    ({"LC_ALL": "zh_HK.UTF-8", "LANG": "en_GB.UTF-8"}, "zh"),
    ({"ECERT_LANG": "en", "LC_ALL": "zh_CN.UTF-8"}, "en"),
    ({"ECERT_LANG": "zh", "LC_ALL": "en_US.UTF-8"}, "zh"),
    ({"ECERT_LANG": "", "LANG": "zh_CN.GB18030"}, "zh"),
])
def test_language_precedence(env: dict[str, str], expected: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ECERT_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert language() == expected


def _run(args: list[str], lang: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, prog_name="ecert", env={"ECERT_LANG": lang})
    assert_no_traceback(result)
    return result.exit_code, result.stdout, result.stderr


def test_help_in_chinese() -> None:
    code, out, _ = _run(["issue", "--help"], "zh")
    assert code == 0
    assert out.startswith("用法: ecert issue")
    assert "签发并签名一份证照" in out
    assert "持证人显示名称" in out  # an option's help
    assert "显示此帮助并退出" in out  # click's own --help
    assert "必填" in out
    code, out, _ = _run(["--help"], "zh")
    assert "签发并签名一份证照" in out  # the short help in the list of commands
    assert "Issue and sign" not in out


def test_help_in_english_is_unchanged() -> None:
    code, out, _ = _run(["issue", "--help"], "en")
    assert code == 0
    assert out.startswith("Usage: ecert issue")
    assert "Issue and sign a certificate." in out
    assert "[required]" in out


def test_usage_error_in_chinese_is_one_line() -> None:
    code, out, err = _run(["issue"], "zh")
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ecert: 错误：缺少选项")
    code, _, err = _run(["lst"], "zh")
    assert code == 2
    assert "没有命令" in err and "list" in err


@pytest.fixture
def run(tmp_path: Path, database_url: str | None, clock: FakeClock) -> Cli:
    return Cli(tmp_path / "home", database_url, env={
        "ECERT_PASSPHRASE": "registry pass", "ECERT_OPERATOR": "admin",
        "ECERT_OPERATOR_PASSPHRASE": "admin pass", "ECERT_HOME": None,
        "ECERT_DATABASE_URL": None}, clock=clock)


def _init(run: Cli) -> None:
    run.ok("init", "--region", "GD", "--name", "广东省", "--base-url",
           "https://ecert.gd.example")


def test_library_errors_get_a_chinese_summary_and_keep_their_code(run: Cli) -> None:
    _init(run)
    en = run("show", "1.2.156.3005.2.nothing", env={"ECERT_LANG": "en"})
    zh = run("show", "1.2.156.3005.2.nothing", env={"ECERT_LANG": "zh"})
    assert en.exit_code == zh.exit_code == 2
    english = en.stderr.strip().removeprefix("ecert: error: ")
    line = zh.stderr.strip()
    assert len(zh.stderr.splitlines()) == 1
    # The summary of the code in Chinese, then the library's detail as it is.
    assert line.startswith("ecert: 错误：")
    assert line.endswith(english)
    json_en = json.loads(run("show", "x", "--json", env={"ECERT_LANG": "en"}).stdout)
    json_zh = json.loads(run("show", "x", "--json", env={"ECERT_LANG": "zh"}).stdout)
    assert json_zh["error"]["code"] == json_en["error"]["code"]


@pytest.mark.parametrize("args", [
    ["show", "1.2.156.3005.2.nothing"],  # a library error
    ["verify", "x", "--image", "y"],  # a usage error (click)
    ["verify", "token"],  # an error the CLI raises
    ["issue", "--type", "t", "--agency", "a", "--holder-id", "1", "--holder-name", "n",
     "--claims", "missing.json"],
    ["nonsense"],
    [],
])
def test_json_errors_do_not_depend_on_the_language(run: Cli, args: list[str]) -> None:
    _init(run)
    en = run(*args, "--json", env={"ECERT_LANG": "en"})
    zh = run(*args, "--json", env={"ECERT_LANG": "zh"})
    assert en.exit_code == zh.exit_code != 0
    assert en.stdout and en.stdout == zh.stdout
    assert en.stderr != zh.stderr  # the line for people is translated


def test_every_library_error_code_has_a_summary() -> None:
    """A new error code in the library needs a line in ecert_cli/_errors.py (or it is
    shown with its class's summary)."""
    from ecert_cli._errors import SUMMARIES

    codes = set()
    for path in (ROOT / "ecert").rglob("*.py"):
        codes |= set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', path.read_text("utf-8")))
    assert codes - set(SUMMARIES) == set()


def test_every_verification_error_code_has_a_summary() -> None:
    """``ecert verify`` puts the summary of each error code first in Chinese."""
    from ecert_cli._errors import SUMMARIES

    assert {c.value for c in ErrorCode} - set(SUMMARIES) == set()


def test_demo_in_both_languages(run: Cli) -> None:
    zh = run("demo", env={"ECERT_LANG": "zh"})
    assert zh.exit_code == 0, zh.output
    assert "第一位管理员建立了登记库" in zh.stdout
    assert "演示结束" in zh.stdout
    en = run("demo", env={"ECERT_LANG": "en"})
    assert en.exit_code == 0, en.output
    assert "registry created by its first admin" in en.stdout
    # JSON is the same in both languages (ids and paths aside).
    as_zh = json.loads(run("demo", "--json", env={"ECERT_LANG": "zh"}).stdout)
    as_en = json.loads(run("demo", "--json", env={"ECERT_LANG": "en"}).stdout)
    assert [s["step"] for s in as_zh["steps"]] == [s["step"] for s in as_en["steps"]]
    assert as_zh["final_status"] == as_en["final_status"] == "revoked"
    assert as_zh["steps"][0]["admin"] == "demo-admin (every role)"


def test_json_does_not_depend_on_the_language(run: Cli) -> None:
    from tests.support.cli import agency_args, type_args

    _init(run)
    env: dict[str, str | None] = {}
    for code in ("cn.business-licence", "cn.food-business-licence",
                 "cn.professional-qualification"):
        run.ok(*type_args(code), env=env)
    run.ok(*agency_args("gd-amr"), env=env)
    for command in (["type", "list"], ["agency", "list"], ["operator", "list"],
                    ["list"], ["events"]):
        en = run(*command, "--json", env={**env, "ECERT_LANG": "en"})
        zh = run(*command, "--json", env={**env, "ECERT_LANG": "zh"})
        assert en.exit_code == zh.exit_code == 0, (command, en.output, zh.output)
        assert json.loads(en.stdout) == json.loads(zh.stdout), command
    human = run("type", "list", env={**env, "ECERT_LANG": "zh"}).stdout
    assert "天" in human or "长期有效" in human


def test_no_module_level_translation_in_the_cli() -> None:
    """Messages are translated when shown: the language may change between commands in
    one process. A ``_()`` at import time would freeze the language of the first import."""
    pattern = re.compile(r"^[A-Za-z_][A-Za-z_0-9]*\s*=\s*_\(", re.MULTILINE)
    offenders = [p.name for p in (ROOT / "ecert_cli").glob("*.py")
                 if pattern.search(p.read_text("utf-8"))]
    assert not offenders


def test_no_translation_inside_f_strings() -> None:
    """Extraction cannot see a ``_("…")`` inside an f-string: its message would never
    reach the catalog (and stay English without any test noticing)."""
    pattern = re.compile(r"""f["'].*\{[^}]*\b(?:_|N_|fmt|say|pgettext|ngettext)\(["']""")
    offenders = [f"{p.name}:{n}" for p in (ROOT / "ecert_cli").glob("*.py")
                 for n, line in enumerate(p.read_text("utf-8").splitlines(), 1)
                 if pattern.search(line)]
    assert not offenders


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
