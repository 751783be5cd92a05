"""The patient handout: a valid PDF, the QR code decodes to the link, no diagnosis and no score."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from kapnotes import assessments, checkin
from kapnotes.db import session_scope
from kapnotes.pdf.handout_pdf import HandoutData, build_handout_pdf

TOOLS = ("qpdf", "pdftoppm", "zbarimg", "pdftotext")


@pytest.fixture
def tools():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def decode_qr(pdf_path, tmp_path) -> str:
    subprocess.run(["pdftoppm", "-png", "-r", "200", "-f", "1", "-l", "1", str(pdf_path), str(tmp_path / "page")],
                   check=True)
    (png,) = tmp_path.glob("page*.png")
    out = subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_handout_is_valid_and_its_qr_is_the_link(engine, clinic, tmp_path, tools, monkeypatch):
    # a token of letters only: a random one printed under the QR code held "17" or "-K12-" now and then
    monkeypatch.setattr(checkin.secrets, "token_urlsafe", lambda n=32: "TokenOfLettersOnlyForTheHandoutTest")
    with session_scope(engine) as s:
        assessments.record_assessment(s, clinic.tina, clinic.a1, "PHQ-9", assessments._today(),
                                      items=[3, 3, 3, 2, 2, 2, 1, 1, 0])  # total 17: must not appear
        link, token = checkin.create_link(s, clinic.tina, clinic.a1)
        url = checkin.link_url("https://clinic.example", token)
        pdf = checkin.handout_pdf(s, clinic.tina, link, url)
    path = tmp_path / "handout.pdf"
    path.write_bytes(pdf)
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    assert decode_qr(path, tmp_path) == url
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert "150 mg" in text and "10 minutes" in text and "spit it out" in text and "988" in text
    assert "Alice" in text and "Able" not in text and "A-001" not in text  # first name only, no MRN
    assert not re.search(r"\b[A-TV-Z]\d{2}(\.\d+)?\b", text), "an ICD-10 code is on the handout"
    assert "F41" not in text and "GAD-7" not in text and "PHQ-9" not in text and "17" not in text
    assert not re.search(r"\b(score|total|anxiety disorder|diagnos)", text, re.I)


def test_handout_escapes_typed_text_and_uses_the_crisis_setting(monkeypatch, tmp_path, tools):
    plan = checkin.PlanWords(120, "troche", checkin.FORMULATION_WORDS["troche"], 15, "swallow", 3,
                             "Nothing to eat for 2 hours.",
                             'Take with <font size="40">care</font> & rest <img src="/etc/passwd"/>')
    pdf = build_handout_pdf(HandoutData("Clinic <b>One</b>", "Ann", plan, "https://x.example/?t=abc", "2030-01-01",
                                        "Call 555-0100 (local line)"))
    path = tmp_path / "h.pdf"
    path.write_bytes(pdf)
    subprocess.run(["qpdf", "--check", str(path)], check=True, capture_output=True)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert '<font size="40">care</font>' in text.replace("\n", " ")
    assert "Clinic <b>One</b>" in text and "Call 555-0100 (local line)" in text
    assert "every 3 days" in text and "swallow" in text
    assert decode_qr(path, tmp_path) == "https://x.example/?t=abc"


def test_crisis_line_setting(monkeypatch):
    from kapnotes.config import get_settings

    assert "988" in get_settings().crisis_line
    monkeypatch.setenv("KAPNOTES_CRISIS_LINE", "Samaritans 116 123")
    assert get_settings().crisis_line == "Samaritans 116 123"
