"""Who may see which patient: the care-team rule, enforced in the service layer.

A therapist or prescriber sees the patients of the care teams they belong to.
An administrator manages teams but reads no clinical content (least privilege).
Every refusal uses the same words whether or not the record exists.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import Select
from sqlmodel import Session, select

from kapnotes.actor import Actor
from kapnotes.errors import PermissionDenied
from kapnotes.models import CareTeamMember, Patient, Role

CLINICAL_ROLES = frozenset({Role.therapist.value, Role.prescriber.value})
R = TypeVar("R")


def require_role(actor: Actor | None, *roles: str) -> Actor:
    if actor is None:
        raise PermissionDenied("Please sign in.")
    if actor.role not in roles:
        raise PermissionDenied("Your role does not allow this.")
    return actor


def visible_patient_ids(actor: Actor) -> Select:
    """A subquery of the patient ids this actor may read clinically (empty for admins)."""
    q = (
        select(Patient.id)
        .join(CareTeamMember, CareTeamMember.team_id == Patient.care_team_id)
        .where(CareTeamMember.user_id == actor.id)
    )
    if actor.role not in CLINICAL_ROLES:
        q = q.where(False)  # noqa: FBT003 - admins: no clinical rows
    return q


def require_patient(session: Session, actor: Actor | None, patient_id: int, *roles: str) -> Patient:
    """Return the patient if the actor is on its care team (and in ``roles`` if given)."""
    require_role(actor, *(roles or tuple(CLINICAL_ROLES)))
    patient = session.exec(
        select(Patient)
        .join(CareTeamMember, CareTeamMember.team_id == Patient.care_team_id)
        .where(Patient.id == patient_id, CareTeamMember.user_id == actor.id)
    ).first()
    if patient is None:
        raise PermissionDenied()
    return patient


def require_record(session: Session, actor: Actor | None, model: type[R], record_id: int, *roles: str) -> R:
    """One of a patient's records (a dose, an assessment, a suggestion…) by id, under the care-team
    rule of ``require_patient`` on its ``patient_id``. A missing id and another team's record get the
    same refusal, so the answer never tells an outsider that a record exists."""
    require_role(actor, *(roles or tuple(CLINICAL_ROLES)))
    row = session.get(model, record_id)
    if row is None:
        raise PermissionDenied()
    require_patient(session, actor, row.patient_id, *roles)
    return row


def can_see_patient(session: Session, actor: Actor | None, patient_id: int) -> bool:
    try:
        require_patient(session, actor, patient_id)
    except PermissionDenied:
        return False
    return True
