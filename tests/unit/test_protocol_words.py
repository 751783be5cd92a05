"""Documents quote the thresholds of the protocol in force, never the defaults: the records packet's
safety events and the patient's check-in handout (the banner: tests/app/test_banner_words.py)."""

from __future__ import annotations

from kapnotes import checkin, packet
from kapnotes.db import session_scope
from kapnotes.dosing import protocol_settings
from kapnotes.dosing.protocol import DEFAULT_PATH
from tests.helpers.records import add_dose
from tests.unit.pdf_data import flat, pdf_text


def _clinic_hold_at_170_100(engine, clinic) -> None:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    for old, new in (("systolic_at_or_above = 180", "systolic_at_or_above = 170"),
                     ("diastolic_at_or_above = 110", "diastolic_at_or_above = 100")):
        assert old in text, old
        text = text.replace(old, new, 1)
    with session_scope(engine) as s:
        protocol_settings.set_clinic_protocol(s, clinic.ada, text)


def _packet_text(engine, clinic) -> str:
    with session_scope(engine) as s:
        data = packet.prepare_packet(s, clinic.tina, clinic.a1,
                                     packet.PacketRequest("Dr. Rosa Reyes", "Continuity of care"))
    return flat(" ".join(pdf_text(packet.render_packet(data))[1]))


def _handout_text(engine, clinic) -> str:
    with session_scope(engine) as s:
        link, token = checkin.create_link(s, clinic.tina, clinic.a1)
        pdf = checkin.handout_pdf(s, clinic.tina, link, checkin.link_url("https://clinic.example", token))
    return flat(" ".join(pdf_text(pdf)[1]))


def test_the_packet_lists_a_blood_pressure_at_the_clinics_hold_threshold(engine, clinic):
    with session_scope(engine) as s:  # above the clinic's 170/100, below the default 180/110
        add_dose(s, clinic, clinic.a1, 2, bp_systolic_pre=172, bp_diastolic_pre=96)
    event = "blood pressure 172/96 mmHg before the dose"
    assert event not in _packet_text(engine, clinic)  # the defaults: not a safety event
    _clinic_hold_at_170_100(engine, clinic)
    assert event in _packet_text(engine, clinic)


def test_the_packet_says_which_threshold_found_nothing(engine, clinic):
    _clinic_hold_at_170_100(engine, clinic)
    text = _packet_text(engine, clinic)
    assert "blood pressure at or above 170/100" in text and "180/110" not in text


def test_the_handout_tells_the_patient_the_clinics_blood_pressure_to_call_at(engine, clinic, monkeypatch):
    tokens = iter(["TokenOfLettersOnlyOne", "TokenOfLettersOnlyTwo"])  # no digits to mistake for a number
    monkeypatch.setattr(checkin.secrets, "token_urlsafe", lambda n=32: next(tokens))
    assert "top number is 180 or more, or the bottom number 110 or more" in _handout_text(engine, clinic)
    _clinic_hold_at_170_100(engine, clinic)
    text = _handout_text(engine, clinic)
    assert "top number is 170 or more, or the bottom number 100 or more" in text and "180" not in text
