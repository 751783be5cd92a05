"""The note PDF and the treatment summary speak in words: no snake_case codes, no raw stored
codes, no "every 1 days", no "modifyed", no record ids (issue 16, item 5).

``code_words`` is the scanner the AppTest of every page (tests/app/test_words.py) uses too.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from kapnotes import exports
from kapnotes.db import session_scope
from kapnotes.models import DoseEntry
from tests.unit.pdf_data import add_safety_story, build_world
from tests.unit.test_pdf_note import FIXED, flat, pdf_text

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


def test_the_scanner_catches_what_it_must():
    for bad in ("chest_pain", "home_with_sitter", "150 mg odt", "spit", "every 1 days", "modifyed", "entry #12",
                "id 12", "patient_id", "kap dosing"):
        assert code_words(bad), bad
    for fine in ("chest pain", "At home with a sitter", "150 mg ODT", "every day", "every 7 days", "Modified",
                 "tina_t@example.org", "doses-A-001.csv", "KAP dosing session", "Spit"):
        assert not code_words(fine), fine


@pytest.fixture
def world(engine, clinic):
    w = build_world(engine, clinic, days=60)
    add_safety_story(engine, clinic, w)
    today = datetime.now(UTC)
    with session_scope(engine) as s:  # every context and a swallowed dose with serious tags
        for days_ago, context, tags in ((5, "home_with_sitter", "chest_pain;fall"), (8, "in_session", "")):
            s.add(DoseEntry(patient_id=clinic.a1, taken_at=today - timedelta(days=days_ago), dose_mg=200,
                            formulation="sublingual", administration="swallow", context=context,
                            adverse_events=tags, entered_by_id=clinic.tina.id))
    return w


def test_note_pdf_has_no_codes(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED)
    text = flat("\n".join(pdf_text(pdf)[1]))
    assert "KAP dosing session" in text
    assert code_words(text) == []


def test_summary_pdf_has_no_codes(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED)
    text = flat("\n".join(pdf_text(pdf)[1]))
    assert "chest pain" in text
    assert code_words(text) == []

