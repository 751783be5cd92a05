"""Treatment plans: append-only versions; only a prescriber's decision makes one.

Every plan version names the prescriber who approved it, when, why and (when it came
from the review queue) the adjustment it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, func, select

from kapnotes import audit
from kapnotes.access import require_patient
from kapnotes.actor import Actor
from kapnotes.db import lock_for_append
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import HARD_MAX_DOSE_MG, Administration, Formulation, PlanStatus, Role, TreatmentPlan
from kapnotes.timeutil import utcnow

# no plan, approval, modification or override may exceed it (the database checks it too)
MAX_DOSE_MG = HARD_MAX_DOSE_MG
_PLAN_LOCK_BASE = 0x4B41_6000


@dataclass(frozen=True)
class PlanInput:
    formulation: str
    dose_mg: float
    interval_days: int
    minutes_in_mouth: int = 10
    administration: str = Administration.spit.value
    fasting_instructions: str = "No food for 3 hours and no drink for 1 hour before dosing."
    instructions: str | None = None

    def validate(self) -> None:
        errors: dict[str, str] = {}
        if self.formulation not in {f.value for f in Formulation}:
            errors["formulation"] = f"Unknown formulation {self.formulation!r}."
        if not (0 < float(self.dose_mg) <= MAX_DOSE_MG):
            errors["dose_mg"] = (f"Dose must be above 0 and at most {MAX_DOSE_MG} mg (the hard maximum), "
                                 f"got {float(self.dose_mg):g} mg.")
        if not (1 <= int(self.interval_days) <= 90):
            errors["interval_days"] = f"Interval must be 1–90 days, got {self.interval_days}."
        if not (1 <= int(self.minutes_in_mouth) <= 30):
            errors["minutes_in_mouth"] = f"Minutes in mouth must be 1–30, got {self.minutes_in_mouth}."
        if self.administration not in {a.value for a in Administration}:
            errors["administration"] = f"Administration must be spit or swallow, got {self.administration!r}."
        if errors:
            raise ValidationError(errors)


def current_plan(session: Session, patient_id: int) -> TreatmentPlan | None:
    """The newest version of the patient's plan (whatever its status)."""
    return session.exec(
        select(TreatmentPlan)
        .where(TreatmentPlan.patient_id == patient_id)
        .order_by(col(TreatmentPlan.version_number).desc())
        .limit(1)
    ).first()


def active_plan(session: Session, patient_id: int) -> TreatmentPlan | None:
    plan = current_plan(session, patient_id)
    return plan if plan is not None and plan.status == PlanStatus.active else None


def plan_history(session: Session, actor: Actor, patient_id: int) -> list[TreatmentPlan]:
    require_patient(session, actor, patient_id)
    return list(
        session.exec(
            select(TreatmentPlan)
            .where(TreatmentPlan.patient_id == patient_id)
            .order_by(col(TreatmentPlan.version_number).desc())
        ).all()
    )


def new_plan_version(
    session: Session,
    actor: Actor | None,
    patient_id: int,
    plan: PlanInput,
    rationale: str,
    status: str = PlanStatus.active.value,
    effective_from: datetime | None = None,
    adjustment_id: int | None = None,
    approved_by_id: int | None = None,
) -> TreatmentPlan:
    """Append a plan version. Only a prescriber on the care team may (``actor``).

    ``actor`` None is the operator's CLI or the demo seeder, which must name the
    approving prescriber in ``approved_by_id``.
    """
    if actor is not None:
        if actor.role != Role.prescriber:
            raise PermissionDenied("Only a prescriber can change a treatment plan.")
        require_patient(session, actor, patient_id, Role.prescriber.value)
        approved_by_id = actor.id
    if approved_by_id is None:
        raise ValidationError({"approved_by": "A plan version must name the prescriber who approved it."})
    if not (rationale or "").strip():
        raise ValidationError({"rationale": "Give the reason for this plan version."})
    if status not in {s.value for s in PlanStatus}:
        raise ValidationError({"status": f"Unknown plan status {status!r}."})
    plan.validate()
    lock_for_append(session, _PLAN_LOCK_BASE + patient_id)
    latest = session.exec(
        select(func.max(TreatmentPlan.version_number)).where(TreatmentPlan.patient_id == patient_id)
    ).one()
    row = TreatmentPlan(
        patient_id=patient_id,
        version_number=(latest or 0) + 1,
        formulation=plan.formulation,
        dose_mg=float(plan.dose_mg),
        interval_days=int(plan.interval_days),
        minutes_in_mouth=int(plan.minutes_in_mouth),
        administration=plan.administration,
        fasting_instructions=plan.fasting_instructions,
        instructions=plan.instructions,
        status=status,
        effective_from=effective_from or utcnow(),
        approved_by_id=approved_by_id,
        rationale=rationale.strip(),
        adjustment_id=adjustment_id,
    )
    session.add(row)
    session.flush()
    audit.record(session, actor, "plan.version", "treatment_plan", row.id, patient_id,
                 detail=f"v{row.version_number} status={status}")
    return row
