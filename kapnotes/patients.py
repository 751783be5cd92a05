"""Patients: registration, the care-team-scoped list, and the overview a clinician opens."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from kapnotes import audit
from kapnotes.access import require_patient, visible_patient_ids
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.dosing.facts import today_in
from kapnotes.dosing.plans import current_plan
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import (
    Assessment,
    CareTeam,
    CareTeamMember,
    Instrument,
    Patient,
    PatientStatus,
    Role,
    TreatmentPlan,
    User,
)
from kapnotes.query import not_voided
from kapnotes.safety import safety_flags  # re-exported: callers read a patient's flags here
from kapnotes.timeutil import utcnow

ICD10_PREFIX_OK = ("F",)  # mental, behavioural and neurodevelopmental disorders


def _validate_patient_fields(mrn: str, full_name: str, dob: date, diagnosis: str) -> None:
    errors: dict[str, str] = {}
    if not mrn.strip() or len(mrn.strip()) > 64:
        errors["mrn"] = "Enter the clinic's record number (MRN), up to 64 characters."
    if not full_name.strip():
        errors["name"] = "Enter the patient's name."
    elif len(full_name.strip()) > 200:
        errors["name"] = "The patient's name can be at most 200 characters."
    if dob > today_in(get_settings().tz):  # the clinic's today, not the machine's
        errors["dob"] = f"Date of birth {dob.isoformat()} is in the future."
    elif dob.year < 1900:
        errors["dob"] = f"Date of birth {dob.isoformat()} is before 1900."
    if not diagnosis.strip() or len(diagnosis) > 16:
        errors["diagnosis"] = "Enter an ICD-10 code such as F41.1."
    if errors:
        raise ValidationError(errors)


def find_or_create_team(session: Session, therapist: User, prescriber: User) -> CareTeam:
    """The team whose members are exactly this therapist and prescriber, made if missing."""
    member_sets: dict[int, set[int]] = {}
    for team_id, user_id in session.exec(select(CareTeamMember.team_id, CareTeamMember.user_id)).all():
        member_sets.setdefault(team_id, set()).add(user_id)
    wanted = {therapist.id, prescriber.id}
    for team_id, members in sorted(member_sets.items()):
        if members == wanted:
            return session.get(CareTeam, team_id)
    team = CareTeam(name=f"{therapist.full_name} / {prescriber.full_name}")
    if session.exec(select(CareTeam).where(CareTeam.name == team.name)).first():
        team.name = f"{team.name} ({utcnow():%Y%m%d%H%M%S})"
    session.add(team)
    session.flush()
    session.add(CareTeamMember(team_id=team.id, user_id=therapist.id))
    session.add(CareTeamMember(team_id=team.id, user_id=prescriber.id))
    session.flush()
    return team


def _user_with_role(session: Session, username: str, role: str, field_name: str) -> User:
    user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise ValidationError({field_name: f"No user named {username!r}."})
    if user.role != role:
        raise ValidationError({field_name: f"{username!r} is a {user.role}, not a {role}."})
    if not user.is_active:
        raise ValidationError({field_name: f"{username!r} is deactivated."})
    return user


def add_patient(
    session: Session,
    actor: Actor | None,
    mrn: str,
    full_name: str,
    dob: date,
    therapist: str,
    prescriber: str,
    diagnosis: str = "F41.1",
) -> Patient:
    """Register a patient with a care team of (at least) this therapist and prescriber.

    ``actor`` is an administrator, or None for the operator's CLI.
    """
    if actor is not None and actor.role != Role.admin:
        raise PermissionDenied("Only an administrator can register patients.")
    _validate_patient_fields(mrn, full_name, dob, diagnosis)
    mrn = mrn.strip()
    if session.exec(select(Patient.id).where(Patient.mrn == mrn)).first() is not None:
        raise ValidationError({"mrn": f"A patient with MRN {mrn!r} already exists."})
    t = _user_with_role(session, therapist, Role.therapist, "therapist")
    p = _user_with_role(session, prescriber, Role.prescriber, "prescriber")
    team = find_or_create_team(session, t, p)
    patient = Patient(mrn=mrn, full_name=full_name.strip(), date_of_birth=dob,
                      diagnosis=diagnosis.strip().upper(), care_team_id=team.id)
    session.add(patient)
    session.flush()
    audit.record(session, actor, "patient.create", "patient", patient.id, patient.id)
    return patient


@dataclass(frozen=True)
class PatientRow:
    id: int
    mrn: str
    full_name: str
    date_of_birth: date
    status: str
    diagnosis: str
    flags: tuple[str, ...] = ()


def list_patients(session: Session, actor: Actor, search: str = "", include_discharged: bool = True,
                  limit: int = 200) -> list[PatientRow]:
    """The actor's own patients (care teams only), optionally filtered by name or MRN."""
    if actor.role not in (Role.therapist, Role.prescriber):
        raise PermissionDenied("Administrators do not see clinical patient lists.")
    ids = visible_patient_ids(actor)
    q = select(Patient).where(col(Patient.id).in_(ids))
    term = search.strip().lower()
    if term:
        # contains(..., autoescape=True): a typed % or _ is a character, not a wildcard
        q = q.where(or_(func.lower(Patient.full_name).contains(term, autoescape=True),
                        func.lower(Patient.mrn).contains(term, autoescape=True)))
    if not include_discharged:
        q = q.where(Patient.status != PatientStatus.discharged)
    patients = session.exec(q.order_by(Patient.full_name).limit(limit)).all()
    flags = safety_flags(session, [p.id for p in patients]) if patients else {}
    return [
        PatientRow(p.id, p.mrn, p.full_name, p.date_of_birth, p.status, p.diagnosis, tuple(flags.get(p.id, ())))
        for p in patients
    ]


@dataclass
class Overview:
    patient: Patient
    plan: TreatmentPlan | None
    latest: dict[str, Assessment] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    team: list[tuple[str, str]] = field(default_factory=list)  # (name, role)


def latest_assessments(session: Session, patient_id: int) -> dict[str, Assessment]:
    out: dict[str, Assessment] = {}
    for instrument in (Instrument.gad7.value, Instrument.phq9.value):
        row = session.exec(
            select(Assessment)
            .where(Assessment.patient_id == patient_id, Assessment.instrument == instrument,
                   not_voided(Assessment))
            .order_by(col(Assessment.administered_on).desc(), col(Assessment.id).desc())
            .limit(1)
        ).first()
        if row is not None:
            out[instrument] = row
    return out


def care_team(session: Session, team_id: int) -> list[tuple[str, str]]:
    rows = session.exec(
        select(User.full_name, User.role)
        .join(CareTeamMember, CareTeamMember.user_id == User.id)
        .where(CareTeamMember.team_id == team_id)
        .order_by(User.role, User.full_name)
    ).all()
    return [(name, role) for name, role in rows]


def header(session: Session, actor: Actor, patient_id: int) -> tuple[Patient, list[str]]:
    """What every patient page shows at the top: who, and any safety flag."""
    patient = require_patient(session, actor, patient_id)
    return patient, safety_flags(session, [patient_id]).get(patient_id, [])


def overview(session: Session, actor: Actor, patient_id: int) -> Overview:
    patient, flags = header(session, actor, patient_id)
    return Overview(
        patient=patient,
        plan=current_plan(session, patient_id),
        latest=latest_assessments(session, patient_id),
        flags=flags,
        team=care_team(session, patient.care_team_id),
    )


def open_record(session: Session, actor: Actor, patient_id: int, view: str = "overview") -> Patient:
    """Check access and record that the actor opened this patient's record."""
    patient = require_patient(session, actor, patient_id)
    audit.record(session, actor, "patient.open", "patient", patient_id, patient_id, detail=view)
    return patient
