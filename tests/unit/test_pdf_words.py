"""The note PDF and the treatment summary speak in words: no snake_case codes, no raw stored
codes, no "every 1 days", no "modifyed", no record ids (issue 16, item 5).

``code_words`` (tests/helpers/words.py) is the scanner the AppTest of every page uses too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kapnotes import exports
from kapnotes.db import session_scope
from kapnotes.models import DoseEntry
from tests.helpers.words import code_words
from tests.unit.pdf_data import FIXED, add_safety_story, build_world, flat, pdf_text


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


@pytest.mark.parametrize(("kind", "seen"), [("note", "KAP dosing session"), ("summary", "chest pain")])
def test_pdf_has_no_codes(engine, clinic, world, kind, seen):
    with session_scope(engine) as s:
        if kind == "note":
            pdf = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED)
        else:
            pdf = exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED)
    text = flat("\n".join(pdf_text(pdf)[1]))
    assert seen in text  # the scan reached the records
    assert code_words(text) == []
