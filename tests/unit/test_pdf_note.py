"""Note PDF: every field with its label, free text, linked doses and scores, addenda in order,
signature block, page frame, metadata, access rules, audit, byte-identical output."""

from __future__ import annotations

import io
import re

import pytest
from pypdf import PdfReader
from sqlmodel import select

from kapnotes import exports
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied
from kapnotes.models import AuditEvent, SessionNote
from kapnotes.notes.templates import template
from tests.helpers.backends import SQLITE_ONLY
from tests.unit.pdf_data import (
    DOSING_FIELDS,
    FIXED,
    assert_every_page_framed,
    build_world,
    flat,
    long_text,
    pdf_text,
    qpdf_ok,
)


@pytest.fixture
def world(engine, clinic):
    return build_world(engine, clinic, days=40, extra_fields={"legacy_field_xyz": "legacy value 42"})


def test_note_pdf_prints_every_field_label_and_value(engine, clinic, world, tmp_path):
    with session_scope(engine) as s:
        pdf = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED)
    qpdf_ok(pdf, tmp_path)
    _, pages = pdf_text(pdf)
    text = flat("\n".join(pages))
    for spec in template("dosing").fields:
        assert flat(spec.label) in text, f"label {spec.label!r} missing"
    for value in ("Meet the worry with curiosity", "Picked up by partner; no driving until tomorrow",
                  "Therapist and sitter Zoë", "128 mmHg", "74 bpm", "150 mg", "Calm, oriented", "nausea, dizziness"):
        assert value in text, value
    # a stored key the template does not know still prints, by its key name, after the template's fields
    assert "legacy_field_xyz" in text and "legacy value 42" in text
    assert text.index("legacy_field_xyz") > text.index(flat(template("dosing").fields[-1].label))
    # header facts and free text (both lines)
    for fact in ("KAPNotes Demo Clinic", "Alice Able", "A-001", "1985-01-02", "KAP dosing session", "09:30–12:00",
                 "In person", "Tina Torres, LMFT", "Line one of the free text.", "Line two: all calm."):
        assert fact in text, fact


def test_note_pdf_linked_doses_scores_addenda_and_signature(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED)
        note = s.get(SessionNote, world.dosing_note_id)
    _, pages = pdf_text(pdf)
    text = flat("\n".join(pages))
    assert "Linked dose-log entries" in text and "In session" in text and "128/82 → 138/88" in text
    assert "Linked scores" in text and "GAD-7" in text and "moderate" in text
    first, second = (flat(t) for t in world.addenda_texts)
    assert first in text and second in text
    assert text.index("Addendum 1") < text.index(first) < text.index("Addendum 2") < text.index(second)
    assert "Paul Park, MD" in text  # second addendum's author
    assert "Electronically signed by Tina Torres, LMFT" in text
    assert note.content_hash in text.replace(" ", "")
    assert "The hash matches the note's content as printed." in text


def test_every_page_has_the_frame(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED)
    assert_every_page_framed(pdf, "Alice Able · MRN A-001", "Generated 2026-03-01 10:30 EST by Tina Torres, LMFT",
                             min_pages=2)


def test_metadata(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED)
    meta = PdfReader(io.BytesIO(pdf)).metadata
    assert "KAP dosing session note" in meta.title and "A-001" in meta.title
    assert meta.author == "Tina Torres, LMFT"
    assert "Session note" in meta.subject and "KAPNotes Demo Clinic" in meta.subject


def test_invariant_output_is_byte_identical(engine, clinic, world):
    with session_scope(engine) as s:
        a = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED, invariant=True)
        b = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED, invariant=True)
    assert a == b
    assert a.startswith(b"%PDF-")


@pytest.mark.slow
def test_draft_is_watermarked_and_only_for_its_author(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.note_pdf(s, clinic.tina, world.draft_note_id, generated_at=FIXED)
    _, pages = pdf_text(pdf)
    text = flat("\n".join(pages))
    assert "DRAFT — not signed." in text
    # the warning line, the signature block and the diagonal watermark on every page
    assert all(len(re.findall(r"\bDRAFT\b(?!-)", p)) >= (3 if i == 0 else 1) for i, p in enumerate(pages))
    assert "DRAFT-ONLY-free-text" in text
    with session_scope(engine) as s, pytest.raises(PermissionDenied):
        exports.note_pdf(s, clinic.paul, world.draft_note_id)  # same team's prescriber: not tina's draft
    with session_scope(engine) as s:  # but her signed notes, yes, with no DRAFT mark
        signed = exports.note_pdf(s, clinic.paul, world.dosing_note_id)
    assert not any(re.search(r"\bDRAFT\b", p) for p in pdf_text(signed)[1])


@pytest.mark.parametrize("who", ["theo", "pia", "ada", None])
def test_outsiders_cannot_export(engine, clinic, world, who):
    actor = getattr(clinic, who) if who else None
    with session_scope(engine) as s, pytest.raises(PermissionDenied):
        exports.note_pdf(s, actor, world.dosing_note_id)
    with session_scope(engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "export.note_pdf")).first() is None


def test_export_is_audited_with_ids_only(engine, clinic, world):
    with session_scope(engine) as s:
        exports.note_pdf(s, clinic.tina, world.dosing_note_id)
    with session_scope(engine) as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "export.note_pdf")).one()
    assert ev.actor_id == clinic.tina.id
    assert ev.record_type == "session_note" and ev.record_id == str(world.dosing_note_id)
    assert ev.patient_id == clinic.a1
    assert ev.detail == "status=signed;addenda=2"
    for clinical in list(DOSING_FIELDS.values()) + world.addenda_texts + ["Alice"]:
        if isinstance(clinical, str) and len(clinical) > 3:
            assert clinical not in ev.detail


def test_operator_export_is_audited_as_system(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.note_pdf(s, None, world.dosing_note_id, as_operator=True, generated_at=FIXED)
    assert "KAPNotes operator (command line)" in flat("\n".join(pdf_text(pdf)[1]))
    with session_scope(engine) as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "export.note_pdf")).one()
    assert ev.actor_id is None and ev.actor_username == "system"


def test_field_rows_follow_the_template_and_keep_unknown_keys():
    from kapnotes.pdf.note_pdf import field_rows

    rows = field_rows("integration", {"plan": "Continue", "zz_unknown": [1, 2], "homework": "Walk"})
    labels = [label for _, label, _ in rows]
    assert labels[: len(template("integration").fields)] == [f.label for f in template("integration").fields]
    assert rows[-1] == ("Other recorded fields", "zz_unknown", "1, 2")
    assert {label: value for _, label, value in rows}["Plan"] == "Continue"


@pytest.mark.slow
@SQLITE_ONLY
def test_a_field_longer_than_a_page_prints_whole_and_in_order(engine, clinic, world, tmp_path):
    """A structured field, free text or addendum of many pages splits across pages (a table row taller
    than a page used to stop the export with a LayoutError): every sentence, in order."""
    import dataclasses

    with session_scope(engine) as s:
        meta, patient, note = exports.prepare_note(s, clinic.tina, world.dosing_note_id, generated_at=FIXED,
                                                   record=False)
    key = next(iter(note.fields))
    from kapnotes.pdf.model import AddendumRow

    addendum = AddendumRow(id=99, author="Tina Torres, LMFT", signed_at="2026-03-02 10:00",
                           text=long_text("add", 300), content_hash="0" * 64)
    note = dataclasses.replace(note, fields={**note.fields, key: long_text("fld")}, free_text=long_text("ftx"),
                               addenda=[*note.addenda, addendum])
    pdf = exports.render_note(meta, patient, note)
    qpdf_ok(pdf, tmp_path)
    reader, pages = pdf_text(pdf)
    assert len(reader.pages) > 10
    text = flat("\n".join(pages))
    for tag, n in (("fld", 600), ("ftx", 600), ("add", 300)):
        positions = [text.find(f"{tag}-{i:04d} ") for i in range(n)]
        assert all(p >= 0 for p in positions), f"{tag}: missing sentence {positions.index(-1)}"
        assert positions == sorted(positions)


def test_table_cells_wrap_plain_text_and_leave_the_rest_to_paragraphs():
    from reportlab.pdfbase.pdfmetrics import stringWidth
    from reportlab.platypus import Paragraph

    from kapnotes.pdf.note_pdf import table_cell
    from kapnotes.pdf.styles import make_styles

    style = make_styles()["value"]
    text = "Met the worry with curiosity <b>not bold</b> & kept breathing.\n\nSecond paragraph after a blank line."
    cell = table_cell(text, 120, style)
    assert isinstance(cell, str)
    lines = cell.split("\n")
    assert len(lines) > 4 and "" in lines  # wrapped, and the blank line is kept
    assert all(stringWidth(line, style.fontName, style.fontSize) <= 120 - 6 for line in lines)
    assert " ".join(" ".join(lines).split()) == " ".join(text.split())  # same words, same order, literal
    assert isinstance(table_cell("x" * 300, 120, style), Paragraph)  # a word wider than the column
    assert isinstance(table_cell("שלום עולם", 120, style), Paragraph)  # right-to-left: reordered by esc()
    assert isinstance(table_cell("word " * 2000, 120, style), Paragraph)  # too long for a plain cell
