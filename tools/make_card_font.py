"""Reproduce ecert's packaged card font (``ecert/_data/fonts/``) from Debian's Noto Sans CJK.

The PNG card needs a font with Chinese glyphs; a user without a system CJK font still
gets a card from this subset (see docs/qr.md, "Cards"). It is Noto Sans CJK SC Regular
(SIL Open Font License 1.1) cut down with fontTools to:

* every character of GB 2312 (6,763 hanzi, plus its punctuation, symbols, Greek,
  Cyrillic, kana and full-width forms), found by decoding every GB 2312 code with
  Python's codec, so the set is reproducible without a downloaded list;
* the whole CJK Unified Ideographs block U+4E00–U+9FFF that the font covers (this holds
  every hanzi of GBK and all 8,105 of the 通用规范汉字表, names' less common characters
  such as 喆 堃 玥 included) when ``--set urob`` is given (the default);
* ASCII, Latin-1, general and CJK punctuation, full-width/half-width forms, the
  placeholder box U+25A1 and the ellipsis U+2026.

The result is renamed ("ecert Card Sans SC"): the OFL lets anyone modify and
redistribute the font, and a modified version must not use a Reserved Font Name; Noto
CJK's upstream licence reserves "Source", which the new names avoid. The licence file is
shipped beside the font.

Dev tool only (fontTools is not a dependency of ecert)::

    apt-get install fonts-noto-cjk            # the source font
    pip install fonttools brotli              # the subsetter, and WOFF2's compressor
    python tools/make_card_font.py            # writes ecert/_data/fonts/*.woff2

It prints the output's size and character count. The output is WOFF2 (Brotli-compressed
CFF, which Pillow's FreeType reads): 3.4 MiB against 4.8 MiB as a plain .otf (``-o x.otf``);
GB 2312 alone (``--set gb2312``) would be 1.1 MiB but lacks common name characters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SOURCE = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
SC_INDEX = 2  # NotoSansCJK-Regular.ttc: JP, KR, SC, TC, HK
ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "ecert" / "_data" / "fonts" / "EcertCardSansSC-Regular.woff2"
FAMILY = "ecert Card Sans SC"
POSTSCRIPT = "EcertCardSansSC-Regular"


def gb2312_characters() -> set[int]:
    """Every character GB 2312 encodes (rows 1-87 of its 94×94 table)."""
    found = set()
    for row in range(0xA1, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                text = bytes((row, cell)).decode("gb2312")
            except UnicodeDecodeError:
                continue
            found.add(ord(text))
    return found


def wanted(char_set: str) -> set[int]:
    chars = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100))
    chars |= set(range(0x2000, 0x2070))  # general punctuation (— ‘ ’ “ ” … ‰)
    chars |= set(range(0x3000, 0x3040))  # CJK symbols and punctuation (、。〈〉《》「」【】)
    chars |= set(range(0xFF00, 0xFFF0))  # full-width and half-width forms
    chars |= {0x25A1, 0x2026, 0x00B7, 0x30FB}  # □ placeholder, …, middle dots in names
    chars |= gb2312_characters()
    if char_set == "urob":
        chars |= set(range(0x4E00, 0xA000))
    return chars


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=SOURCE)
    parser.add_argument("--index", type=int, default=SC_INDEX)
    parser.add_argument("--set", choices=("gb2312", "urob"), default="urob",
                        help="gb2312: GB 2312 only; urob: also U+4E00-U+9FFF (default)")
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)

    from fontTools import subset
    from fontTools.ttLib import TTFont

    font = TTFont(args.source, fontNumber=args.index, lazy=False)
    cmap = font.getBestCmap()
    chars = sorted(c for c in wanted(args.set) if c in cmap)
    options = subset.Options()
    options.layout_features = []  # horizontal Chinese text needs no OpenType features
    options.name_IDs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14]
    options.notdef_outline = True
    options.hinting = False  # printed at 300 dpi: hints change nothing visible
    options.drop_tables += ["VORG", "vhea", "vmtx", "BASE", "DSIG"]
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=chars)
    subsetter.subset(font)

    name = font["name"]
    for record in list(name.names):
        if record.nameID in (1, 16):
            name.setName(FAMILY, record.nameID, record.platformID, record.platEncID,
                         record.langID)
        elif record.nameID == 4:
            name.setName(f"{FAMILY} Regular", 4, record.platformID, record.platEncID,
                         record.langID)
        elif record.nameID == 6:
            name.setName(POSTSCRIPT, 6, record.platformID, record.platEncID, record.langID)
        elif record.nameID == 3:
            name.setName(f"{POSTSCRIPT};subset of Noto Sans CJK SC", 3, record.platformID,
                         record.platEncID, record.langID)
    name.names = [r for r in name.names if r.nameID not in (17, 18)]
    cff = font["CFF "].cff
    cff.fontNames = [POSTSCRIPT]
    top = cff.topDictIndex[0]
    top.FullName = f"{FAMILY} Regular"
    top.FamilyName = FAMILY
    if hasattr(top, "CIDFontName"):
        top.CIDFontName = POSTSCRIPT

    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.output.suffix.lower() == ".woff2":
        font.flavor = "woff2"
    font.save(args.output)
    hanzi = sum(1 for c in chars if 0x4E00 <= c <= 0x9FFF)
    size = args.output.stat().st_size
    print(f"{args.output}: {size} bytes ({size / 2**20:.2f} MiB), {len(chars)} characters, "
          f"{hanzi} hanzi, {len(font.getGlyphOrder())} glyphs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
