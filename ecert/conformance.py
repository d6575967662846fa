"""Conformance vectors: a published set of cases every ecert verifier must answer alike.

``ecert vectors DIR`` (:func:`write_vectors`) writes, deterministically, ``DIR/index.json``
— for each case the input (a token, QR text, or a QR code image with the text it holds),
the anchor and the bundles served, any prior verifier state, the clock, the verifier
options and the expected status and error codes — beside the bundles themselves and
``index.schema.json``. The same seed gives the same bytes: keys are derived from it,
ES256 signs with RFC 6979 nonces, every time is fixed. docs/conformance.md describes the
index for other implementations.

:func:`check_vectors` runs the Python verifier over every case of a set and reports any
case whose result differs from what the index expects::

    from ecert.conformance import check_vectors
    failed = [c for c in check_vectors("tests/vectors") if not c.ok]
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ecert._formats.jose import strict_json_loads
from ecert._vectors import runner
from ecert._vectors.cases import INDEX_FORMAT, INDEX_VERSION, SEED, build
from ecert.errors import FormatError, InputError

__all__ = [
    "DEFAULT_SEED",
    "INDEX_FILE",
    "INDEX_FORMAT",
    "INDEX_VERSION",
    "SCHEMA_FILE",
    "CaseOutcome",
    "VectorsReport",
    "check_vectors",
    "generate",
    "index_schema",
    "load_index",
    "run_case",
    "write_vectors",
]

#: The seed of the published set (``tests/vectors``). Its keys are public: vectors only.
DEFAULT_SEED = SEED
INDEX_FILE = "index.json"
SCHEMA_FILE = "index.schema.json"
#: The directories a set owns besides its two files: rewritten as a whole.
_OWNED = ("bundles", "images")


def index_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``index.json``."""
    text = resources.files("ecert").joinpath("_data", "conformance.schema.json").read_text(
        "utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def generate(seed: bytes = DEFAULT_SEED) -> dict[str, bytes]:
    """Every file of the set, by its path relative to the set's directory.

    QR code images are drawn with segno (the ``registry`` extra). Pure otherwise: no
    clock, no randomness, no files.
    """
    from ecert.qr import make_qr

    catalogue = build(seed)
    files = catalogue.documents()
    for path, text in catalogue.images.items():
        buffer = io.BytesIO()
        make_qr(text).symbol.save(buffer, kind="png", scale=4, border=4)
        files[path] = buffer.getvalue()
    files[INDEX_FILE] = _json(catalogue.index())
    files[SCHEMA_FILE] = _json(index_schema())
    return dict(sorted(files.items()))


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class VectorsReport:
    """What :func:`write_vectors` wrote."""

    directory: Path
    cases: int
    files: int
    bytes: int
    #: Files of an earlier set that are no longer part of it, removed.
    removed: int


def write_vectors(directory: str | Path, *, seed: bytes = DEFAULT_SEED) -> VectorsReport:
    """Write the set into ``directory``: empty, new, or holding an earlier set.

    Files of an earlier set that the new one does not have are removed; a directory
    holding anything else is refused (:class:`ecert.errors.InputError`), so that a
    mistyped path never loses files.
    """
    root = Path(directory)
    files = generate(seed)
    stale = _earlier_set(root, files)
    for path in stale:
        path.unlink()
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink():
            target.unlink()  # written in place of the link, never through it
        target.write_bytes(data)
    index = strict_json_loads(files[INDEX_FILE])
    return VectorsReport(root, len(index["cases"]), len(files),
                         sum(len(d) for d in files.values()), len(stale))


def _earlier_set(root: Path, files: Mapping[str, bytes]) -> list[Path]:
    """The files of the set in ``root`` that are not in ``files``; refuse a directory
    that holds something other than a set."""
    if not root.exists():
        return []
    if not root.is_dir():
        raise InputError(f"{root} is not a directory", code="output_in_use")
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        return []
    try:
        load_index(root)
    except (OSError, FormatError) as e:
        raise InputError(f"{root} is neither empty nor a set of conformance vectors: "
                         "choose an empty directory", code="output_in_use") from e
    foreign = [n for n in entries if n not in (INDEX_FILE, SCHEMA_FILE, *_OWNED)]
    if foreign:
        raise InputError(f"{root} holds {foreign[0]!r}, which is not part of a set of "
                         "conformance vectors: choose an empty directory",
                         code="output_in_use")
    stale: list[Path] = []
    for owned in _OWNED:
        for top, _dirs, names in os.walk(root / owned):  # symlinks are not followed
            for name in names:
                path = Path(top) / name
                if path.relative_to(root).as_posix() not in files:
                    stale.append(path)
    return stale


def load_index(directory: str | Path) -> dict[str, Any]:
    """``index.json`` of a set, strictly parsed; raises :class:`ecert.errors.FormatError`
    if it is not an index of a version this library reads."""
    data = (Path(directory) / INDEX_FILE).read_bytes()
    index = strict_json_loads(data)
    if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
        raise FormatError("not an index of conformance vectors", code="malformed")
    if index.get("version") != INDEX_VERSION:
        raise FormatError(f"conformance vectors version {index.get('version')!r} "
                          f"(this library reads {INDEX_VERSION})", code="malformed")
    return index


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    """One case as the Python verifier answered it."""

    case_id: str
    expected: Mapping[str, Any]
    actual: Mapping[str, Any]
    #: What differs, one line each (also an image that does not decode to its text).
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether the verifier answered exactly as expected."""
        return not self.problems


def run_case(directory: str | Path, case: Mapping[str, Any], *,
             index: Mapping[str, Any] | None = None) -> CaseOutcome:
    """Verify one case of the set in ``directory`` with the Python verifier.

    An ``image`` input is decoded first (the ``image`` extra) and what it holds is
    verified; it must be the case's ``text``.
    """
    root = Path(directory)
    index = index if index is not None else load_index(root)
    problems: list[str] = []
    text = case["input"]["text"]
    if case["input"]["form"] == "image":
        from ecert.qr import decode_qr_image

        decoded = decode_qr_image(root / case["input"]["image"])
        if decoded != text:
            problems.append("the image does not decode to the case's text")
        text = decoded
    actual = runner.verify(root, index, case, text)
    expected = case["expected"]
    problems += [f"{name}: expected {expected.get(name)!r}, got {actual.get(name)!r}"
                 for name in actual if expected.get(name) != actual[name]]
    return CaseOutcome(case["id"], expected, actual, tuple(problems))


def check_vectors(directory: str | Path) -> tuple[CaseOutcome, ...]:
    """Run every case of the set in ``directory``; see :attr:`CaseOutcome.ok`."""
    index = load_index(directory)
    return tuple(run_case(directory, case, index=index) for case in index["cases"])
