"""Reading the files a clerk hands the CLI: claims, schemas, catalogs.

Files saved by Excel or Notepad on a Chinese Windows are often UTF-8 with a byte order
mark or GB 18030 (GBK); both are read. Detection: UTF-8 (a BOM is dropped) strictly, then
GB 18030 strictly; ``--encoding`` names one instead. GB 18030 decodes almost any bytes, so
UTF-8 is tried first: a UTF-8 file is never misread.
"""

from __future__ import annotations

import codecs
import sys
from pathlib import Path

import ecert

#: Tried in order when no encoding is given.
DETECTED = ("utf-8-sig", "gb18030")
#: Largest file read (claims, schemas and catalogs are small).
MAX_FILE_BYTES = 16 * 1024 * 1024


def decode_text(data: bytes, name: str, encoding: str | None = None) -> str:
    """``data`` as text: in ``encoding``, or UTF-8 (with or without BOM), else GB 18030."""
    if encoding is not None:
        try:
            codec = codecs.lookup(encoding).name
        except LookupError as e:
            raise ecert.InputError(f"unknown encoding {encoding!r}",
                                   code="unknown_encoding") from e
        if codec == "utf-8":
            codec = "utf-8-sig"  # a BOM is never part of the text
        try:
            return data.decode(codec)
        except UnicodeDecodeError as e:
            raise ecert.InputError(
                f"{name} is not {encoding} text (byte {e.start + 1})",
                code="invalid_encoding") from e
    for codec in DETECTED:
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            continue
    raise ecert.InputError(
        f"{name} is neither UTF-8 nor GB 18030 text: give its --encoding",
        code="invalid_encoding")


def read_text_file(path: str, encoding: str | None = None) -> str:
    """A text file (or ``-``, stdin), decoded as :func:`decode_text` says."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with Path(path).open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ecert.InputError(f"cannot read {path}: {e.strerror or type(e).__name__}") from e
    if len(data) > MAX_FILE_BYTES:
        raise ecert.InputError(f"{path} is larger than {MAX_FILE_BYTES} bytes", code="too_large")
    return decode_text(data, path, encoding)
