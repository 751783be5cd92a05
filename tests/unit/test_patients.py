"""Patients service: registration, search, overview, opening a record (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlmodel import func, select

from kapnotes import patients
from kapnotes.dosing import facts
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import Assessment, AuditEvent, CareTeam, Patient


def _mrns(rows):
    return sorted(r.mrn for r in rows)


@pytest.mark.parametrize(
    "term, expected",
    [
        ("alice", ["A-001"]),
        ("ALICE ABLE", ["A-001"]),
        ("a-002", ["A-002"]),
        ("A-00", ["A-001", "A-002"]),
        ("  ames ", ["A-002"]),
        ("bea", []),  # another team's patient is never found by search
        ("B-001", []),
        ("", ["A-001", "A-002"]),
    ],
)
def test_search_by_name_or_mrn_stays_in_scope(session, clinic, term, expected):
    assert _mrns(patients.list_patients(session, clinic.tina, term)) == expected


def test_search_wildcards_are_literal(session, clinic):
    assert patients.list_patients(session, clinic.tina, "%") == []
    assert patients.list_patients(session, clinic.tina, "_") == []
    assert _mrns(patients.list_patients(session, clinic.tina, "A-00_")) == []


def test_list_hides_discharged_when_asked(session, clinic):
    p = session.get(Patient, clinic.a2)
    p.status = "discharged"
    session.add(p)
    session.flush()
    assert _mrns(patients.list_patients(session, clinic.tina)) == ["A-001", "A-002"]
    assert _mrns(patients.list_patients(session, clinic.tina, include_discharged=False)) == ["A-001"]


def test_list_shows_safety_flag(session, clinic):
    session.add(Assessment(patient_id=clinic.a1, instrument="PHQ-9", administered_on=date.today(),
                           items=[1, 1, 1, 1, 1, 1, 1, 1, 2], total=10, band="moderate", item9=2,
                           loinc_panel="44249-1", loinc_total="44261-6", entered_by_id=clinic.tina.id))
    session.flush()
    rows = {r.mrn: r for r in patients.list_patients(session, clinic.tina)}
    assert rows["A-001"].flags == ("suicidality",)
    assert rows["A-002"].flags == ()


def test_add_patient_creates_team_of_therapist_and_prescriber(session, clinic):
    p = patients.add_patient(session, clinic.ada, "C-001", " Cara Cole ", date(2000, 2, 29), "tina", "pia",
                             "f33.1")
    assert (p.full_name, p.diagnosis) == ("Cara Cole", "F33.1")
    assert _mrns(patients.list_patients(session, clinic.pia)) == ["B-001", "C-001"]
    assert "C-001" in _mrns(patients.list_patients(session, clinic.tina))
    assert "C-001" not in _mrns(patients.list_patients(session, clinic.theo))
    # the same pair again reuses that team
    teams_before = session.exec(select(func.count()).select_from(CareTeam)).one()
    patients.add_patient(session, None, "C-002", "Cy Cole", date(2001, 1, 1), "tina", "pia")
    assert session.exec(select(func.count()).select_from(CareTeam)).one() == teams_before
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "patient.create",
                                               AuditEvent.patient_id == p.id)).one()
    assert ev.actor_id == clinic.ada.id and "Cara" not in ev.detail


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(mrn="A-001"), "mrn"),
        (dict(mrn=" "), "mrn"),
        (dict(mrn="M" * 65), "mrn"),
        (dict(full_name=""), "name"),
        (dict(full_name="N" * 201), "name"),
        (dict(dob=date.today() + timedelta(days=1)), "dob"),
        (dict(dob=date(1899, 12, 31)), "dob"),
        (dict(therapist="nobody"), "therapist"),
        (dict(therapist="paul"), "therapist"),
        (dict(prescriber="tina"), "prescriber"),
        (dict(prescriber="ada"), "prescriber"),
        (dict(diagnosis=""), "diagnosis"),
    ],
)
def test_add_patient_refuses_bad_input_and_writes_nothing(session, clinic, kwargs, field):
    args = dict(mrn="N-001", full_name="New Person", dob=date(1980, 1, 1), therapist="tina", prescriber="paul")
    args.update(kwargs)
    before = session.exec(select(func.count()).select_from(Patient)).one()
    with pytest.raises(ValidationError) as exc:
        patients.add_patient(session, None, args["mrn"], args["full_name"], args["dob"], args["therapist"],
                             args["prescriber"], args.get("diagnosis", "F41.1"))
    assert field in exc.value.errors
    assert session.exec(select(func.count()).select_from(Patient)).one() == before


def test_date_of_birth_is_checked_against_the_clinics_today_not_the_machines(session, clinic, monkeypatch):
    """At 02:00 UTC on 2 March it is still 1 March in New York (the clinic's zone): 2 March is a
    date of birth in the future there, 1 March is not."""
    monkeypatch.setenv("KAPNOTES_TIMEZONE", "America/New_York")
    monkeypatch.setattr(facts, "utcnow", lambda: datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc))
    with pytest.raises(ValidationError) as exc:
        patients.add_patient(session, None, "N-001", "New Born", date(2026, 3, 2), "tina", "paul")
    assert "in the future" in exc.value.errors["dob"]
    assert patients.add_patient(session, None, "N-002", "New Born", date(2026, 3, 1), "tina", "paul").id


def test_only_admin_or_operator_registers_patients(session, clinic):
    with pytest.raises(PermissionDenied):
        patients.add_patient(session, clinic.tina, "X-1", "X", date(1980, 1, 1), "tina", "paul")


def test_overview_has_plan_team_and_latest_scores(session, clinic):
    for day, total in ((date.today() - timedelta(days=20), 15), (date.today() - timedelta(days=2), 8)):
        session.add(Assessment(patient_id=clinic.a1, instrument="GAD-7", administered_on=day, total=total,
                               band="x", loinc_panel="69737-5", loinc_total="70274-6",
                               entered_by_id=clinic.tina.id))
    session.flush()
    ov = patients.overview(session, clinic.tina, clinic.a1)
    assert ov.patient.mrn == "A-001"
    assert ov.plan is not None and ov.plan.dose_mg == 150 and ov.plan.interval_days == 7
    assert ov.latest["GAD-7"].total == 8
    assert sorted(role for _, role in ov.team) == ["prescriber", "therapist"]
    with pytest.raises(PermissionDenied):
        patients.overview(session, clinic.theo, clinic.a1)


def test_open_record_is_audited_without_clinical_text(session, clinic):
    patients.open_record(session, clinic.tina, clinic.a1, "dashboard")
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "patient.open")).one()
    assert (ev.actor_id, ev.patient_id, ev.record_type, ev.record_id, ev.detail) == (
        clinic.tina.id, clinic.a1, "patient", str(clinic.a1), "dashboard")
    with pytest.raises(PermissionDenied):
        patients.open_record(session, clinic.theo, clinic.a1)
    assert session.exec(select(func.count()).select_from(AuditEvent)
                        .where(AuditEvent.action == "patient.open")).one() == 1
