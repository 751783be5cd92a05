"""The scanner for code-like words (snake_case, raw stored codes, record ids) a clinician should
never read: shared by the AppTest of every page (tests/app/test_words.py) and the PDF tests
(tests/unit/test_pdf_words.py), so it lives in no test module."""

from __future__ import annotations

import re

SNAKE = re.compile(r"\b[a-z]+_[a-z0-9_]+\b")
# Stored codes that must never reach a reader as bare lowercase words.
RAW_CODES = re.compile(r"\b(?:odt|spit|swallow|home_with_sitter|in_session|kap dosing)\b")
WRONG = re.compile(r"every 1 days|modifyed|\bpatient_id\b|(?<![\w&])#\d+\b|\bid \d+\b", re.IGNORECASE)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
FILE_NAME = re.compile(r"\b[\w.-]+\.(?:csv|pdf|json|xlsx|txt|tsv)\b")


def code_words(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """Every code-like token in ``text`` a clinician should not read, with a little context.

    E-mail addresses and file names are removed first: they are the user's own strings, where an
    underscore is part of the name. ``allowed`` lists further exact substrings, each justified by
    the caller.
    """
    text = FILE_NAME.sub(" ", EMAIL.sub(" ", text))
    for a in allowed:
        text = text.replace(a, " ")
    found = []
    for rx in (SNAKE, RAW_CODES, WRONG):
        for m in rx.finditer(text):
            found.append(text[max(0, m.start() - 30):m.end() + 30].replace("\n", " "))
    return found
