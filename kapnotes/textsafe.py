"""The one path that makes user- or file-supplied text inert wherever it is shown.

Streamlit renders Markdown (GitHub-flavoured, plus its own ``:red[...]`` directives and
``:material/...:`` icons) in ``st.markdown``, captions, messages and widget labels, and it
turns bare URLs and e-mail addresses into links even when the text is escaped. A name such
as ``[Verify your account](http://evil.example)`` must read literally, never as a link, a
tracking image or coloured text. No Streamlit here: PDFs use ``strip_bidi`` too.

Bidi controls (U+202A–U+202E, U+2066–U+2069, U+200E/U+200F, U+061C) are *removed*: the text
then reads in the order it was typed (``evil\\u202eexe.txt`` shows as ``evilexe.txt``), so a
filename or name cannot pose as something else.
"""

from __future__ import annotations

import re

BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
WORD_JOINER = "\u2060"  # invisible, zero width: breaks Streamlit's autolinks and icon codes

# Everything Markdown, Streamlit's directives and emoji codes (:) or HTML (<) could use.
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#|<>~$])")
# ":" only before a letter (":red[", ":smile:", ":material/"); "-", "+", "=" only at a line start
# (lists, setext headings, rules), so "Date: 1985-01-02" stays as typed in the raw text too.
_COLON = re.compile(r":(?=[A-Za-z])")
_LINE_START = re.compile(r"(?m)^(\s*)([-+=])")
# Autolink triggers (checked in Chromium): a scheme, "www.", and the character after "@".
_SCHEME = re.compile(r"(?i)\b([a-z])([a-z0-9+.\-]*\\?:\s*/)")
_WWW = re.compile(r"(?i)\b(w)(ww\.)")
_AT = re.compile(r"@")
_ICON = re.compile(r"(?i)(material)(\s*/)")
_ORDERED = re.compile(r"(?m)^(\s*\d+)([.)])")  # "1. " at a line start would become a list


def strip_bidi(text: object) -> str:
    """Plain text with every bidirectional control removed (names, filenames, PDFs)."""
    return BIDI_CONTROLS.sub("", "" if text is None else str(text))


def md_escape(text: object) -> str:
    """Make user text literal inside any Streamlit Markdown: no emphasis, link, image, HTML,
    directive, icon or autolinked URL; bidi controls removed; newlines kept as line breaks."""
    out = _MD_SPECIAL.sub(r"\\\1", strip_bidi(text))
    out = _COLON.sub(r"\\:", out)
    out = _LINE_START.sub(r"\1\\\2", out)
    out = _ORDERED.sub(r"\1\\\2", out)
    out = _SCHEME.sub(lambda m: m.group(1) + WORD_JOINER + m.group(2), out)
    out = _WWW.sub(lambda m: m.group(1) + WORD_JOINER + m.group(2), out)
    out = _AT.sub("@" + WORD_JOINER, out)
    out = _ICON.sub(lambda m: m.group(1) + WORD_JOINER + m.group(2), out)
    return out.replace("\r\n", "\n").replace("\n", "  \n")
