"""AppTest of the Exports page and the download buttons: PDFs are built on click only,
access is checked, every export audited."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlmodel import select

from kapnotes.db import session_scope
from kapnotes.models import AuditEvent
from tests.helpers.apptest import run_page
from tests.helpers.uitext import rendered_text
from tests.unit.pdf_data import build_world

PAGE = "exports"


@pytest.fixture(autouse=True)
def world(engine, clinic):
    """A month of records for patient A1 (tests/unit/pdf_data.py): notes, doses, scores, a draft."""
    return build_world(engine, clinic, days=30)


def exports_audited(engine) -> list[AuditEvent]:
    with session_scope(engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action.like("export.%"))).all())


def button(at, key):
    return next(b for b in at.button if b.key == key)


def downloads(at) -> list:
    return [el for el in at.get("download_button")]


def test_signed_out_shows_sign_in_only(clinic):
    at = run_page(PAGE)
    text = rendered_text(at)
    assert "Sign in" in text and "Alice Able" not in text and "Treatment summary" not in text


def test_admin_is_refused(clinic):
    at = run_page(PAGE, "ada", "A-001")
    assert "not available for your role" in rendered_text(at)
    assert "Alice Able" not in rendered_text(at)


def test_other_team_cannot_see_the_patient(engine, clinic):
    at = run_page(PAGE, "theo", "A-001")
    assert "Alice Able" not in rendered_text(at)
    assert not [b for b in at.button if b.key and b.key.endswith("_prepare")]
    assert exports_audited(engine) == []


def test_nothing_is_built_until_prepare_is_clicked(engine, clinic):
    at = run_page(PAGE, "tina", "A-001")
    assert not at.exception
    text = rendered_text(at)
    assert "Alice Able" in text and "Treatment summary" in text and "Single note" in text
    assert downloads(at) == []
    assert exports_audited(engine) == []  # rendering the page exports nothing
    # the note list offers signed notes only (the draft only when drafts are asked for)
    note_box = next(s for s in at.selectbox if s.key == "export_note_id")
    assert len(note_box.options) == 2 and not any("DRAFT" in o for o in note_box.options)
    assert any("KAP dosing session" in o for o in note_box.options)
    button(at, "exports_summary_prepare").click().run()
    assert not at.exception
    [dl] = downloads(at)
    assert "Download summary-A-001_" in dl.proto.label
    [ev] = exports_audited(engine)
    assert ev.action == "export.summary_pdf" and ev.actor_id == clinic.tina.id
    # an unrelated rerun does not build again
    at.run()
    assert downloads(at) == [] and len(exports_audited(engine)) == 1


def test_full_notes_and_full_dose_log_checkboxes_reach_the_summary(engine, clinic, monkeypatch):
    """Unticked, the summary is short (notes in brief, doses by week); each box asks for its full form."""
    from kapnotes import exports

    calls, built = [], []
    real_prepare, real_render = exports.prepare_summary, exports.render_summary

    def prepare(*args, **kwargs):
        calls.append({k: kwargs.get(k) for k in ("full_notes", "full_dose_log")})
        return real_prepare(*args, **kwargs)

    def render(data, *args, **kwargs):
        pdf = real_render(data, *args, **kwargs)
        built.append(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))
        return pdf

    monkeypatch.setattr(exports, "prepare_summary", prepare)
    monkeypatch.setattr(exports, "render_summary", render)
    at = run_page(PAGE, "tina", "A-001")
    assert not at.checkbox(key="export_full_notes").value and not at.checkbox(key="export_full_dose_log").value
    assert "Full session notes" in at.checkbox(key="export_full_notes").label
    button(at, "exports_summary_prepare").click().run()
    assert not at.exception
    at.checkbox(key="export_full_notes").check().run()
    button(at, "exports_summary_prepare").click().run()
    at.checkbox(key="export_full_dose_log").check().run()
    button(at, "exports_summary_prepare").click().run()
    assert not at.exception
    assert calls == [{"full_notes": False, "full_dose_log": False}, {"full_notes": True, "full_dose_log": False},
                     {"full_notes": True, "full_dose_log": True}]
    assert "Session notes in brief" in built[0] and "Home doses by week" in built[0]
    assert "Session notes in brief" not in built[1] and "KAP dosing session note" in built[1]
    assert "Home doses by week" in built[1]
    assert "Every dose is listed" in built[2] and "KAP dosing session note" in built[2]
    assert len(exports_audited(engine)) == 3


def test_note_pdf_button(engine, clinic):
    at = run_page(PAGE, "paul", "A-001")
    button(at, "exports_note_prepare").click().run()
    assert not at.exception
    [dl] = downloads(at)
    assert dl.proto.label.startswith("Download note-A-001_")
    [ev] = exports_audited(engine)
    assert ev.action == "export.note_pdf" and ev.actor_id == clinic.paul.id


def test_include_drafts_offers_only_my_drafts(clinic):
    at = run_page(PAGE, "tina", "A-001")
    at.checkbox(key="export_drafts").check().run()
    options = next(s for s in at.selectbox if s.key == "export_note_id").options
    assert any("DRAFT" in o for o in options)
    assert len(options) == 3  # two signed notes + tina's draft, never paul's


def test_bad_range_shows_a_message_and_no_button(clinic):
    at = run_page(PAGE, "tina", "A-001")
    at.date_input(key="export_from").set_value(at.date_input(key="export_to").value).run()
    import datetime as dt

    at.date_input(key="export_to").set_value(at.date_input(key="export_from").value - dt.timedelta(days=1)).run()
    assert "start date is after the end date" in rendered_text(at)
    assert not [b for b in at.button if b.key == "exports_summary_prepare"]


def test_builders_return_the_pdf_bytes(engine, clinic, world):
    """Download buttons only expose a mock URL in AppTest: test the bytes-producing functions."""
    from kapnotes.ui.export_buttons import build_note, build_summary

    name, pdf = build_summary(clinic.tina, clinic.a1)
    assert name.startswith("summary-A-001_") and name.endswith(".pdf")
    assert "Treatment summary" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    name, pdf = build_note(clinic.tina, world.draft_note_id)
    assert name.endswith("_check_in-DRAFT.pdf")
    assert "DRAFT" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert [e.action for e in exports_audited(engine)] == ["export.summary_pdf", "export.note_pdf"]


def test_note_viewer_offers_the_pdf(engine, clinic, world):
    """The notes page's viewer carries the note's PDF button (hooked into its note actions)."""
    at = run_page("notes", "tina", "A-001", view_note_id=world.dosing_note_id)
    assert not at.exception
    assert downloads(at) == []
    button(at, f"note_pdf_{world.dosing_note_id}_prepare").click().run()
    assert not at.exception
    [dl] = downloads(at)
    assert dl.proto.label.startswith("Download note-A-001_")
    assert [e.action for e in exports_audited(engine)] == ["export.note_pdf"]


def test_dashboard_offers_the_summary_pdf(engine, clinic):
    at = run_page("dashboard", "paul", "A-001")
    assert not at.exception, at.exception
    button(at, "dashboard_summary_pdf_prepare").click().run()
    [dl] = downloads(at)
    assert dl.proto.label.startswith("Download summary-A-001_")
    assert [e.action for e in exports_audited(engine)] == ["export.summary_pdf"]


# --- dose log CSV, FHIR and the records-request packet ---------------------------------------------


def test_page_offers_the_new_downloads_and_the_packet_form(engine, clinic):
    at = run_page(PAGE, "tina", "A-001")
    assert not at.exception
    text = rendered_text(at)
    assert "Dose log (CSV)" in text and "FHIR R4 export" in text and "Records-request packet" in text
    keys = {b.key for b in at.button}
    assert {"exports_dose_csv_prepare", "exports_fhir_prepare"} <= keys
    assert at.text_area(key="packet_recipient") is not None and at.text_input(key="packet_purpose") is not None
    assert {c.key for c in at.checkbox} >= {f"packet_{k}" for k in ("summary", "scores", "doses", "plans", "notes")}
    assert exports_audited(engine) == []  # nothing is built by showing the page


def test_dose_csv_and_fhir_buttons_deliver_and_audit(engine, clinic):
    at = run_page(PAGE, "tina", "A-001")
    button(at, "exports_dose_csv_prepare").click().run()
    assert not at.exception
    [dl] = downloads(at)
    assert dl.proto.label == "Download doses-A-001.csv"
    button(at, "exports_fhir_prepare").click().run()
    assert not at.exception
    [dl] = downloads(at)
    assert dl.proto.label == "Download fhir-A-001.json"
    assert [e.action for e in exports_audited(engine)] == ["export.dose_csv", "export.fhir"]


def test_packet_form(engine, clinic):
    at = run_page(PAGE, "paul", "A-001")
    # the form refuses a packet without recipient and purpose, and exports nothing
    next(b for b in at.button if "Prepare records packet" in b.label).click().run()
    assert not at.exception
    assert "Name the recipient" in rendered_text(at) and downloads(at) == []
    assert exports_audited(engine) == []
    at.text_area(key="packet_recipient").input("Dr. Rosa Reyes\nBayview Psychiatry")
    at.text_input(key="packet_purpose").input("Continuity of care")
    at.checkbox(key="packet_notes").uncheck()
    next(b for b in at.button if "Prepare records packet" in b.label).click().run()
    assert not at.exception
    [dl] = downloads(at)
    assert dl.proto.label.startswith("Download records-A-001_")
    [ev] = exports_audited(engine)
    assert ev.action == "export.packet_pdf" and ev.actor_id == clinic.paul.id
    assert ev.detail.startswith("sections=summary,scores,doses,plans;")


def test_packet_bytes_from_the_page_builder(clinic, monkeypatch):
    """Download buttons expose only a label in AppTest: the bytes come from the same builder."""
    from kapnotes.packet import PacketRequest
    from kapnotes.ui import export_buttons

    name, pdf = export_buttons.build_packet(clinic.tina, clinic.a1, PacketRequest("Dr R", "Referral",
                                                                                  sections=("doses",)))
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "Notice prohibiting redisclosure" in text and "doses in the period" in text
    assert "Line one of the free text" not in text  # notes switched off
    _, csv_bytes = export_buttons.build_dose_csv(clinic.tina, clinic.a1)
    assert csv_bytes.startswith(b"taken_at,dose_mg,formulation,")
