"""The records-request packet: qpdf-clean, cover letter with clinic details and recipient,
attestation, redisclosure notice, course of treatment, every section switch honoured,
user text escaped, every packet audited with its sections."""

from __future__ import annotations

import io
import subprocess

import pytest
from pypdf import PdfReader
from sqlmodel import select

from kapnotes import packet
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import AuditEvent
from tests.unit.pdf_data import build_world

MARKERS = {  # text only that section prints
    "summary": "Suggestions and decisions",
    "scores": "Date Scale Total Band",
    "doses": "doses in the period. Times in the clinic",
    "plans": "Ver. Effective Dose Formulation",
    "notes": "Line one of the free text",
}


@pytest.fixture
def world(engine, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_CLINIC_NAME", "Harbor KAP Clinic")
    monkeypatch.setenv("KAPNOTES_CLINIC_ADDRESS", "12 Harbor Way, Suite 3, Portland, ME 04101")
    monkeypatch.setenv("KAPNOTES_CLINIC_PHONE", "(207) 555-0134")
    monkeypatch.setenv("KAPNOTES_CLINIC_NPI", "1234567893")
    return build_world(engine, clinic, days=30)


def make(engine, actor, pid, sections=packet.SECTIONS, recipient="Dr. Rosa Reyes, Bayview Psychiatry",
         purpose="Continuity of care") -> bytes:
    with session_scope(engine) as s:
        data = packet.prepare_packet(s, actor, pid, packet.PacketRequest(recipient, purpose, sections=sections))
    return packet.render_packet(data)


def text_of(pdf: bytes) -> str:
    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages)


def qpdf_check(pdf: bytes, tmp_path) -> None:
    path = tmp_path / "packet.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_cover_letter_attestation_notice_and_course(engine, clinic, world, tmp_path):
    pdf = make(engine, clinic.tina, clinic.a1)
    qpdf_check(pdf, tmp_path)
    text = text_of(pdf)
    for expected in ("Harbor KAP Clinic", "12 Harbor Way, Suite 3, Portland, ME 04101", "(207) 555-0134",
                     "NPI: 1234567893", "Dr. Rosa Reyes, Bayview Psychiatry",
                     "Purpose of the disclosure: Continuity of care",
                     "Period of the records:", "Sections included:", "Clinician's attestation",
                     "I, Tina Torres, LMFT, attest", "Signature: ____", "Notice prohibiting redisclosure",
                     "may not be re-disclosed without the patient's authorization", "42 CFR Part 2",
                     "Course of treatment", "Plan now", "200 mg every 7 days", "Dose history", "Safety events",
                     "PHQ-9 item 9 (thoughts of self-harm) answered 1", "vomited after 150 mg"):
        assert expected in text, expected
    for marker in MARKERS.values():
        assert marker in text
    assert world.process_text not in text and world.draft_text not in text and world.other_draft_text not in text
    # the course of treatment is one page, right after the cover letter
    pages = [" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(pdf)).pages]
    course = [i for i, p in enumerate(pages) if "Course of treatment Alice Able" in p]
    assert len(course) == 1 and "Treatment summary Patient" in pages[course[0] + 1]


@pytest.mark.parametrize("off", packet.SECTIONS)
@pytest.mark.slow
def test_every_section_switch_is_honoured(engine, clinic, world, tmp_path, off):
    on = tuple(s for s in packet.SECTIONS if s != off)
    pdf = make(engine, clinic.tina, clinic.a1, sections=on)
    qpdf_check(pdf, tmp_path)
    text = text_of(pdf)
    assert MARKERS[off] not in text
    for k in on:
        assert MARKERS[k] in text
    assert f"Not included: {packet.SECTION_LABELS[off]}" in text
    with session_scope(engine) as s:
        [ev] = s.exec(select(AuditEvent).where(AuditEvent.action == "export.packet_pdf")).all()
    assert ev.detail.startswith(f"sections={','.join(on)};") and ev.actor_id == clinic.tina.id
    assert "recipient=Dr. Rosa Reyes" in ev.detail


def test_no_sections_still_sends_the_letter_and_course(engine, clinic, world, tmp_path):
    pdf = make(engine, clinic.tina, clinic.a1, sections=())
    qpdf_check(pdf, tmp_path)
    text = text_of(pdf)
    assert "Course of treatment" in text and "Notice prohibiting redisclosure" in text
    assert not any(m in text for m in ("Suggestions and decisions", "Signed session notes Dosing"))
    assert "Line one of the free text" not in text  # no note body


def test_user_text_is_escaped(engine, clinic, world, tmp_path):
    pdf = make(engine, clinic.tina, clinic.a1, recipient='<b>Dr X</b> <img src="/etc/passwd"/> AT&T a<b',
               purpose='<a href="https://evil.example">x</a>')
    qpdf_check(pdf, tmp_path)
    text = text_of(pdf)
    assert '<b>Dr X</b> <img src="/etc/passwd"/> AT&T a<b' in text
    assert '<a href="https://evil.example">x</a>' in text
    reader = PdfReader(io.BytesIO(pdf))
    assert not any("/Annots" in p for p in reader.pages)  # no live link


@pytest.mark.parametrize(("recipient", "purpose", "sections", "field"), [
    ("", "Continuity of care", packet.SECTIONS, "recipient"),
    ("Dr R", "  ", packet.SECTIONS, "purpose"),
    ("Dr R", "Care", ("summary", "psychotherapy_notes"), "sections"),
])
def test_bad_requests_are_refused(engine, clinic, world, recipient, purpose, sections, field):
    with pytest.raises(ValidationError) as exc:
        make(engine, clinic.tina, clinic.a1, sections=sections, recipient=recipient, purpose=purpose)
    assert field in exc.value.errors
    with session_scope(engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "export.packet_pdf")).all() == []


def test_access_is_checked(engine, clinic, world):
    for actor in (clinic.theo, clinic.ada, None):
        with pytest.raises(PermissionDenied):
            make(engine, actor, clinic.a1)


def test_npi_setting_must_be_ten_digits(monkeypatch):
    from kapnotes.config import ConfigError, get_settings

    monkeypatch.setenv("KAPNOTES_CLINIC_NPI", "12345")
    with pytest.raises(ConfigError, match="KAPNOTES_CLINIC_NPI"):
        get_settings()
    monkeypatch.setenv("KAPNOTES_CLINIC_NPI", "")
    assert get_settings().clinic_npi == ""
