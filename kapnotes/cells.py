"""Spreadsheet formula injection: text cells made safe on export, restored on import.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage
return. Text cells that do are neutralised with one leading apostrophe (the OWASP advice).
So the round trip stays exact, a text cell that already starts with apostrophes followed by
such a character gets one more apostrophe, and ``restore_cell`` removes exactly one
apostrophe from any cell matching ``'+[=+\\-@\\t\\r]``: ``restore_cell(neutralise_cell(x)) == x``
for every text. Here, apart from both the export and the import, so neither imports the other.
"""

from __future__ import annotations

import re

_RISKY = re.compile(r"^'*[=+\-@\t\r]")
_NEUTRALISED = re.compile(r"^'+[=+\-@\t\r]")


def neutralise_cell(text: str) -> str:
    """One leading apostrophe when a spreadsheet would run the cell (or it already looks escaped)."""
    return "'" + text if _RISKY.match(text) else text


def restore_cell(text: str | None) -> str | None:
    """The inverse of ``neutralise_cell``: drop exactly one leading apostrophe it added."""
    if text and _NEUTRALISED.match(text):
        return text[1:]
    return text
