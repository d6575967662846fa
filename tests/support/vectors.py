"""The checked-in conformance vectors (``tests/vectors``) and how to compare sets of them.

QR code images are compared by the text they decode to, not by their bytes: the bytes
depend on the versions of segno and zlib, the text does not.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from ecert.conformance import load_index
from ecert.qr import decode_qr_image

#: The published set, as ``ecert vectors tests/vectors`` writes it.
VECTORS_DIR = Path(__file__).resolve().parent.parent / "vectors"
#: What to run when the set has drifted from the generator.
REGENERATE = "regenerate them: ecert vectors tests/vectors"


def vector_cases() -> list[dict[str, Any]]:
    """The cases of the checked-in set, in order."""
    cases: list[dict[str, Any]] = load_index(VECTORS_DIR)["cases"]
    return cases


def files_of(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` by its ``/``-separated relative path."""
    return {p.relative_to(directory).as_posix(): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def differences(expected: Mapping[str, bytes], actual: Mapping[str, bytes]) -> list[str]:
    """Paths missing, extra, or different (images: by decoded text)."""
    found = [f"missing: {p}" for p in sorted(set(expected) - set(actual))]
    found += [f"not generated: {p}" for p in sorted(set(actual) - set(expected))]
    for path in sorted(set(expected) & set(actual)):
        if expected[path] == actual[path]:
            continue
        if path.endswith(".png") and _decoded(expected[path]) == _decoded(actual[path]):
            continue
        found.append(f"differs: {path}")
    return found


def _decoded(png: bytes) -> str:
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        return decode_qr_image(image)
