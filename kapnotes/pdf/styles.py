"""Fonts, paragraph styles and the one escape helper every user string goes through.

ReportLab's ``Paragraph`` parses a small markup language: unescaped note text could
change fonts, add live links or embed a local file (``<img src=...>``). ``esc`` turns any
user string into inert text: ``html.escape`` first, then newlines become ``<br/>``, and
runs of characters the main font cannot draw (CJK) are put in the fallback font with
markup *we* write around already-escaped text.
"""

from __future__ import annotations

import html
import re
import threading
import unicodedata
from pathlib import Path

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.styles import ParagraphStyle
from reportlab.pdfbase import pdfmetrics, ttfonts
from reportlab.pdfbase.ttfonts import TTFont

from kapnotes.textsafe import strip_bidi

try:  # right-to-left scripts: visual order (python-bidi) and Arabic joining forms (arabic-reshaper)
    import arabic_reshaper
    from bidi import get_display
except ImportError:  # pragma: no cover - both are pinned in requirements.txt
    arabic_reshaper = None
    get_display = None

FONT_DIR = Path(__file__).resolve().parent.parent / "fonts"
FONT = "KapSans"
FONT_BOLD = "KapSans-Bold"
FONT_CJK = "KapCJK"

INK = colors.HexColor("#1f2933")
MUTED = colors.HexColor("#52606d")
ACCENT = colors.HexColor("#1d4e89")
RULE = colors.HexColor("#c9d2dc")
BAND = colors.HexColor("#eef2f7")
WARN = colors.HexColor("#b42318")

_fonts_lock = threading.Lock()
_registered = False
_main_cmap: frozenset[int] = frozenset()
_cjk_cmap: frozenset[int] = frozenset()

# C0/C1 control characters (other than tab and newline) have no glyph and no meaning in print.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def register_fonts() -> None:
    """Register the shipped TTFs once per process (embedded and subset in every PDF)."""
    global _registered, _main_cmap, _cjk_cmap
    if _registered:
        return
    with _fonts_lock:
        if _registered:
            return
        regular = TTFont(FONT, str(FONT_DIR / "DejaVuSans.ttf"))
        bold = TTFont(FONT_BOLD, str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        pdfmetrics.registerFont(regular)
        pdfmetrics.registerFont(bold)
        pdfmetrics.registerFontFamily(FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD)
        main = set(regular.face.charToGlyph) & set(bold.face.charToGlyph)
        cjk_path = FONT_DIR / "DroidSansFallback.ttf"
        cjk: set[int] = set()
        if cjk_path.exists():
            fallback = TTFont(FONT_CJK, str(cjk_path))
            pdfmetrics.registerFont(fallback)
            pdfmetrics.registerFontFamily(FONT_CJK, normal=FONT_CJK, bold=FONT_CJK, italic=FONT_CJK,
                                          boldItalic=FONT_CJK)
            cjk = set(fallback.face.charToGlyph)
        _main_cmap = frozenset(main)
        _cjk_cmap = frozenset(cjk)
        _registered = True


def _to_unicode_cmap(fontname, subset):
    """ReportLab's ToUnicode CMap, fixed for characters beyond U+FFFF (emoji).

    ReportLab writes ``<1F600>``, an odd-length hex string that text extractors reject;
    the CMap format wants UTF-16BE, i.e. a surrogate pair ``<D83DDE00>``.
    """
    def utf16(v: int) -> str:
        return chr(v).encode("utf-16-be", "surrogatepass").hex().upper()

    cmap = [
        "/CIDInit /ProcSet findresource begin", "12 dict begin", "begincmap", "/CIDSystemInfo",
        f"<< /Registry ({fontname})", f"/Ordering ({fontname})", "/Supplement 0", ">> def",
        f"/CMapName /{fontname} def", "/CMapType 2 def", "1 begincodespacerange",
        f"<00> <{len(subset) - 1:02X}>", "endcodespacerange", f"{len(subset)} beginbfchar",
    ] + [f"<{i:02X}> <{utf16(v)}>" for i, v in enumerate(subset)] + [
        "endbfchar", "endcmap", "CMapName currentdict /CMap defineresource pop", "end", "end",
    ]
    return "\n".join(cmap)


ttfonts.makeToUnicodeCMap = _to_unicode_cmap

_RTL_CLASSES = frozenset({"R", "AL"})


def _has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in _RTL_CLASSES for ch in text)


def visual_order(line: str) -> str:
    """One line of text in the order its glyphs are drawn (left to right).

    PDF text is drawn left to right; Hebrew and Arabic runs must be reversed (Unicode
    bidi algorithm, base direction left-to-right) and Arabic letters given their joining
    forms, or they print backwards and unjoined. Text extractors read RTL runs back in
    logical order. Limit: a long RTL run that wraps onto several lines keeps its words in
    one line's order.
    """
    if get_display is None or not _has_rtl(line):
        return line
    if any(unicodedata.bidirectional(ch) == "AL" for ch in line):
        line = arabic_reshaper.reshape(line)
    return get_display(line, base_dir="L")


def _needs_fallback(ch: str) -> bool:
    cp = ord(ch)
    return cp not in _main_cmap and cp in _cjk_cmap


def drawable_in_main_font(text: str) -> bool:
    """True when the main font has every character and none is right-to-left: safe to draw as is."""
    register_fonts()
    if text.isascii():
        return _CONTROL.search(text) is None
    return all((ch == "\n" or ord(ch) in _main_cmap) and unicodedata.bidirectional(ch) not in _RTL_CLASSES
               for ch in text)


def clean(value: object) -> str:
    """A user value as plain text: str(), control characters removed, never None."""
    if value is None:
        return ""
    return _CONTROL.sub(" ", strip_bidi(value))  # bidi controls removed: text reads as typed


def plain_text(value: object) -> str:
    """``clean`` with every line ending as a newline: what a cell or paragraph prints."""
    return clean(value).replace("\r\n", "\n").replace("\r", "\n")


def esc(value: object) -> str:
    """Escape a user string for ``Paragraph``: inert text, newlines kept, CJK in the fallback font."""
    register_fonts()
    text = plain_text(value)
    if text.isascii():  # fast path: every ASCII character is in the main font, none is RTL
        return html.escape(text, quote=True).replace("\n", "<br/>")
    if _has_rtl(text):
        text = "\n".join(visual_order(line) for line in text.split("\n"))
    out: list[str] = []
    run: list[str] = []
    run_fallback = False

    def flush() -> None:
        if not run:
            return
        piece = html.escape("".join(run), quote=True).replace("\n", "<br/>")
        out.append(f'<font face="{FONT_CJK}">{piece}</font>' if run_fallback else piece)
        run.clear()

    for ch in text:
        fb = ch != "\n" and _needs_fallback(ch)
        if run and fb != run_fallback:
            flush()
        run_fallback = fb
        run.append(ch)
    flush()
    return "".join(out)


def make_styles() -> dict[str, ParagraphStyle]:
    register_fonts()
    base = ParagraphStyle("base", fontName=FONT, fontSize=9.5, leading=12.5, textColor=INK, alignment=TA_LEFT)
    return {
        "base": base,
        "small": ParagraphStyle("small", parent=base, fontSize=8, leading=10),
        "cell": ParagraphStyle("cell", parent=base, fontSize=7.5, leading=9.2),
        "cell_bold": ParagraphStyle("cell_bold", parent=base, fontName=FONT_BOLD, fontSize=7.5, leading=9.2),
        "head_cell": ParagraphStyle("head_cell", parent=base, fontName=FONT_BOLD, fontSize=7.5, leading=9.2,
                                    textColor=colors.white),
        "muted": ParagraphStyle("muted", parent=base, fontSize=8.5, leading=11, textColor=MUTED),
        "label": ParagraphStyle("label", parent=base, fontName=FONT_BOLD, fontSize=8.5, leading=11,
                                textColor=MUTED),
        "value": ParagraphStyle("value", parent=base, fontSize=9.5, leading=12.5),
        "title": ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=17, leading=21,
                                textColor=ACCENT, spaceAfter=2),
        "clinic": ParagraphStyle("clinic", parent=base, fontName=FONT_BOLD, fontSize=9, leading=11,
                                 textColor=MUTED),
        "h2": ParagraphStyle("h2", parent=base, fontName=FONT_BOLD, fontSize=12.5, leading=16, textColor=ACCENT,
                             spaceBefore=12, spaceAfter=5),
        "h3": ParagraphStyle("h3", parent=base, fontName=FONT_BOLD, fontSize=10.5, leading=13.5, textColor=INK,
                             spaceBefore=8, spaceAfter=3),
        "right": ParagraphStyle("right", parent=base, fontSize=8, leading=10, alignment=TA_RIGHT, textColor=MUTED),
        "warn": ParagraphStyle("warn", parent=base, fontName=FONT_BOLD, textColor=WARN),
        "mono": ParagraphStyle("mono", parent=base, fontSize=7.5, leading=9.5, textColor=MUTED),
    }


def text_blocks(value: object, style, lines_per_block: int = 12) -> list:
    """A long user text as several small ``Paragraph``s of a few lines each, in the same style.

    One ``Paragraph`` holding a whole 100,000-character note is re-wrapped from the top at every
    page break (time quadratic in its length: 16 s for 1,300 lines); blocks of a few lines split
    cheaply, so printing time grows linearly with the note. Line breaks are kept as they were typed;
    a single line of more than ``LONG_LINE`` characters is cut at a space into pieces (each starts
    on a new printed line: the words and their order are unchanged).
    """
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph

    lines = [piece for line in plain_text(value).split("\n") for piece in _pieces(line)]
    blocks, current, size = [], [], 0
    for line in lines:  # a few lines, and a few thousand characters, a block
        if current and (len(current) >= lines_per_block or size + len(line) > LONG_LINE):
            blocks.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    blocks.append("\n".join(current))
    if len(blocks) == 1:
        return [Paragraph(esc(blocks[0]), style)]
    first = ParagraphStyle(f"{style.name}-first", parent=style, spaceAfter=0)
    middle = ParagraphStyle(f"{style.name}-middle", parent=style, spaceBefore=0, spaceAfter=0)
    last = ParagraphStyle(f"{style.name}-last", parent=style, spaceBefore=0)
    kinds = [first] + [middle] * (len(blocks) - 2) + [last]
    return [Paragraph(esc(block), kind) for block, kind in zip(blocks, kinds)]


LONG_LINE = 2000


def _pieces(line: str) -> list[str]:
    """``line`` cut at spaces into pieces of at most about ``LONG_LINE`` characters."""
    out = []
    while len(line) > LONG_LINE:
        cut = line.rfind(" ", 0, LONG_LINE)
        cut = cut if cut > 0 else LONG_LINE
        out.append(line[:cut])
        line = line[cut:].lstrip(" ")
    out.append(line)
    return out

