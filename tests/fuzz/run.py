"""Run the fuzz harnesses under atheris (coverage-guided libFuzzer), one process each.

::

    python -m tests.fuzz.run                      # every harness, 5 s each (CI)
    python -m tests.fuzz.run --seconds 3600 --only verify_token --work /tmp/ecert-fuzz
    python -m tests.fuzz.run --list

Each harness runs in its own process (``--jobs`` at a time) for ``--seconds`` (or
``--runs`` executions). An input that makes a harness raise, hang (``--timeout``) or
exceed ``--rss-limit-mb`` is saved as ``tests/fuzz/corpus/<name>/crash-…`` (or
``timeout-…``, ``oom-…``) and the run exits 1: commit that file and
``tests/test_fuzz_corpus.py`` replays it as a regression test from then on. The inputs
that reached new coverage go to ``--work`` (a temporary directory unless given, so a
long run can be resumed). Without atheris the run exits 2: it never skips silently.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Nothing from ecert (or tests.fuzz.harnesses) is imported at module level: in a child
# process atheris must see ecert's modules being imported to instrument them.

CORPUS = Path(__file__).resolve().parent / "corpus"
_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")


@dataclass(frozen=True)
class Outcome:
    name: str
    returncode: int
    executions: int
    seconds: float
    artifacts: tuple[Path, ...]
    log: Path


def _names() -> list[str]:
    """Harness names, read in a throw-away interpreter so the parent never imports ecert."""
    out = subprocess.run(
        [sys.executable, "-c",
         "from tests.fuzz.harnesses import HARNESSES; print('\\n'.join(HARNESSES))"],
        check=True, capture_output=True, text=True, cwd=_ROOT)
    return out.stdout.split()


_ROOT = Path(__file__).resolve().parents[2]
#: Modules no harness decodes through (atheris matches these names exactly).
_NOT_INSTRUMENTED = ["ecert.registry", "ecert._storage", "ecert._storage.database",
                     "ecert._storage.repository", "ecert._storage.schema", "ecert.card",
                     "ecert._samples", "ecert.mirror"]


def _child(args: argparse.Namespace) -> int:
    """Fuzz one harness in this process (``--child NAME``)."""
    import atheris  # type: ignore[import-untyped]  # no stubs published

    # Instrument ecert only: coverage of the decoders, not of cryptography or SQLAlchemy;
    # nor of the issuing side, which only builds the world (saves ~0.5 s per process).
    with atheris.instrument_imports(include=["ecert"], exclude=_NOT_INSTRUMENTED):
        from tests.fuzz.harnesses import HARNESSES
        from tests.fuzz.world import world

    harness = HARNESSES[args.child]
    work = Path(args.work) / harness.name
    seeds, corpus = work / "seeds", work / "corpus"
    crashes = CORPUS / harness.name
    for directory in (seeds, corpus, crashes):
        directory.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(harness.seeds(world())):
        (seeds / f"seed-{i}").write_bytes(seed)
    libfuzzer = [
        sys.argv[0],
        f"-max_total_time={args.seconds}",
        f"-timeout={args.timeout}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-max_len={harness.max_len}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        str(corpus),  # first directory: new interesting inputs are written here
        str(seeds),
    ]
    if args.runs:
        libfuzzer.insert(1, f"-runs={args.runs}")
    atheris.Setup(libfuzzer, harness.target)
    atheris.Fuzz()
    return 0  # pragma: no cover - atheris.Fuzz() exits the process


def _run_one(name: str, args: argparse.Namespace, work: Path) -> Outcome:
    log = work / f"{name}.log"
    command = [sys.executable, "-m", "tests.fuzz.run", "--child", name,
               "--seconds", str(args.seconds), "--runs", str(args.runs),
               "--timeout", str(args.timeout), "--rss-limit-mb", str(args.rss_limit_mb),
               "--work", str(work)]
    started = time.monotonic()
    with log.open("w") as out:
        try:
            # Generous wall-clock bound: start-up, world building and the final merge.
            returncode = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                        cwd=_ROOT, timeout=args.seconds + 120).returncode
        except subprocess.TimeoutExpired:
            returncode = -1
    elapsed = time.monotonic() - started
    text = log.read_text("utf-8", "replace")
    executed = _EXECUTED.findall(text)
    artifacts = tuple(Path(p) for p in _ARTIFACT.findall(text))
    return Outcome(name, returncode, int(executed[-1]) if executed else 0, elapsed,
                   artifacts, log)


def _report(outcome: Outcome) -> None:
    print(f"FAIL {outcome.name}: exit {outcome.returncode}; log {outcome.log}", file=sys.stderr)
    tail = outcome.log.read_text("utf-8", "replace").splitlines()[-40:]
    print("\n".join("    " + line for line in tail), file=sys.stderr)
    for artifact in outcome.artifacts:
        # Printed too, so a CI log alone is enough to recover the input.
        data = artifact.read_bytes() if artifact.exists() else b""
        print(f"  saved {artifact} ({len(data)} bytes), base64:\n    "
              f"{base64.b64encode(data).decode()}", file=sys.stderr)
    print(f"  replay: .venv/bin/python -m pytest -q tests/test_fuzz_corpus.py -k {outcome.name}",
          file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="per harness (default 5)")
    parser.add_argument("--runs", type=int, default=0, help="stop after N executions too")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="run only this harness (repeatable)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="harnesses fuzzed at once (default: 2, or 1 on one core)")
    parser.add_argument("--timeout", type=int, default=10,
                        help="seconds one input may take before it counts as a hang")
    parser.add_argument("--rss-limit-mb", type=int, default=1024,
                        help="memory bound of a fuzzing process")
    parser.add_argument("--work", help="keep the growing corpora here (default: temporary)")
    parser.add_argument("--list", action="store_true", help="list the harnesses and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    try:
        import atheris  # noqa: F401
    except ImportError:
        print("FAIL: atheris is not installed (pip install -e '.[fuzz]'); nothing was fuzzed",
              file=sys.stderr)
        return 2
    names = _names()
    if args.list:
        print("\n".join(names))
        return 0
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        print(f"unknown harness(es): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    chosen = [n for n in names if not args.only or n in args.only]
    with tempfile.TemporaryDirectory(prefix="ecert-fuzz-") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            outcomes = list(pool.map(lambda n: _run_one(n, args, work), chosen))
        print(f"{'harness':28} {'executions':>11} {'seconds':>8} {'exec/s':>8}  result")
        for o in outcomes:
            rate = o.executions / o.seconds if o.seconds else 0.0
            print(f"{o.name:28} {o.executions:11d} {o.seconds:8.1f} {rate:8.0f}  "
                  f"{'ok' if o.returncode == 0 else 'FAIL'}")
        failed = [o for o in outcomes if o.returncode != 0]
        for o in failed:
            _report(o)  # before tmp (and the logs in it) goes away
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
