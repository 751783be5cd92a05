"""The protocol file: DESIGN.md §3 defaults, validation naming the bad key, name + hash, the clinic's choice."""

from __future__ import annotations

import hashlib
from fractions import Fraction

import pytest
from sqlmodel import select

from kapnotes import protocol
from kapnotes.errors import PermissionDenied
from kapnotes.models import AuditEvent, ClinicSetting

DEFAULT_TEXT = protocol.DEFAULT_PATH.read_text(encoding="utf-8")


def test_default_protocol_holds_the_design_defaults():
    p = protocol.load_default()
    assert p.steps_mg == (50, 100, 150, 200, 250, 300)
    assert p.ceiling_mg == 300 and p.intervals_days == (3, 7, 14, 28)
    assert (p.hold_window_days, p.hold_systolic, p.hold_diastolic) == (14, 180, 110)
    assert set(p.serious_adverse_events) == {"fainting", "chest_pain", "breathing_difficulty", "seizure",
                                             "psychotic_symptoms", "self_harm", "emergency_visit"}
    assert (p.decrease_last_doses, p.decrease_min_count, p.severe_nausea) == (3, 2, 3)
    assert (p.decrease_systolic, p.decrease_diastolic) == (160, 100)
    assert (p.min_doses_at_current_dose, p.gad7_max_age_days) == (2, 14)
    assert (p.adherence_window_days, p.adherence_min_planned, p.adherence_min_fraction) == (28, 2, Fraction(7, 10))
    assert (p.remission_below, p.remission_confirm_days, p.low_baseline_below) == (5, 14, 5)
    assert (p.response_improvement, p.partial_improvement) == (Fraction(1, 2), Fraction(1, 4))
    assert p.sha256 == hashlib.sha256(protocol.DEFAULT_PATH.read_bytes()).hexdigest()
    assert p.name and p.source == "default"


@pytest.mark.parametrize(
    "old, new, key, words",
    [
        ("ceiling_mg = 300 ", "ceiling_mg = 3000 ", "doses.ceiling_mg", "at most 1000"),
        ("steps_mg = [50, 100, 150, 200, 250, 300]", "steps_mg = [50, 150, 100]", "doses.steps_mg", "ascending"),
        ("intervals_days = [3, 7, 14, 28]", "intervals_days = [3, 'x']", "doses.intervals_days", "item 2"),
        ("window_days = 14\n", "window_days = -1\n", "hold.window_days", "whole number"),
        ("min_taken_fraction = 0.70", "min_taken_fraction = 70", "adherence.min_taken_fraction", "between 0 and 1"),
        ("partial_improvement = 0.25", "partial_improvement = 0.60", "efficacy.partial_improvement", "below"),
        ("severe_nausea = 3", "severe_nausae = 3", "decrease.severe_nausae", "not a protocol key"),
        ("severe_nausea = 3", "", "decrease.severe_nausea", "missing"),
        ('name = "KAPNotes default protocol 2026-11"', "", "name", "missing"),
        ("[data]", "[dataa]", "dataa", "not a protocol key"),
        ("ceiling_mg = 300 ", "ceiling_mg = 40 ", "doses.ceiling_mg", "lowest step"),
    ],
)
def test_invalid_protocol_names_the_bad_key(tmp_path, old, new, key, words):
    assert old in DEFAULT_TEXT
    path = tmp_path / "clinic.toml"
    path.write_text(DEFAULT_TEXT.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.load(path)
    assert key in exc.value.errors, exc.value.errors
    assert words in exc.value.errors[key]


def test_not_toml_and_missing_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n", encoding="utf-8")
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.load(path)
    assert "not valid TOML" in exc.value.errors["file"]
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.load(tmp_path / "missing.toml")
    assert "cannot read" in exc.value.errors["file"]


def test_clinic_file_hash_changes_with_content(tmp_path):
    path = tmp_path / "clinic.toml"
    path.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 250 "), encoding="utf-8")
    p = protocol.load(path)
    assert p.ceiling_mg == 250 and p.source == str(path)
    assert p.sha256 != protocol.load_default().sha256
    path.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 200 "), encoding="utf-8")
    assert protocol.load(path).ceiling_mg == 200  # reloaded, not served stale from the cache


def test_environment_and_clinic_setting_choose_the_protocol(session, clinic, tmp_path, monkeypatch):
    env_file = tmp_path / "env.toml"
    env_file.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 250 "), encoding="utf-8")
    admin_file = tmp_path / "admin.toml"
    admin_file.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 200 "), encoding="utf-8")
    monkeypatch.delenv(protocol.ENV_VAR, raising=False)
    assert protocol.in_force(session).source == "default"
    monkeypatch.setenv(protocol.ENV_VAR, str(env_file))
    assert protocol.in_force(session).ceiling_mg == 250
    p = protocol.set_clinic_protocol(session, clinic.ada, str(admin_file))
    assert p.ceiling_mg == 200 and protocol.in_force(session).ceiling_mg == 200
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "protocol.set")).one()
    assert ev.actor_id == clinic.ada.id and p.sha256[:16] in ev.detail
    protocol.set_clinic_protocol(session, clinic.ada, "")
    assert protocol.in_force(session).ceiling_mg == 250  # back to the deployment's choice


def test_setting_an_invalid_file_writes_nothing_and_only_admins_may(session, clinic, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_TEXT.replace("ceiling_mg = 300 ", "ceiling_mg = 'lots' "), encoding="utf-8")
    with pytest.raises(protocol.ProtocolError) as exc:
        protocol.set_clinic_protocol(session, clinic.ada, str(bad))
    assert "doses.ceiling_mg" in exc.value.errors
    assert session.get(ClinicSetting, protocol.SETTING_KEY) is None
    with pytest.raises(protocol.ProtocolError):
        protocol.set_clinic_protocol(session, clinic.ada, "relative/path.toml")
    with pytest.raises(PermissionDenied):
        protocol.set_clinic_protocol(session, clinic.paul, str(protocol.DEFAULT_PATH))
