"""The prescriber's review queue: pending items across their patients, most urgent first.

Urgent first (the engine's holds, decreases and reviews, and any patient with a hold flag),
then decreases, then the rest, oldest first; each item carries what the page shows beside it
(the patient's safety flags, the current plan, whether it is stale) at a fixed number of
queries however long the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import aliased
from sqlmodel import Session, col, func, select

from kapnotes import audit, safety, vocab
from kapnotes.access import require_patient, require_role, visible_patient_ids
from kapnotes.actor import Actor
from kapnotes.dosing.facts import current_plans, facts_keys
from kapnotes.dosing.rules import DECREASE, HOLD, HOLD_FLAGS
from kapnotes.dosing.staleness import is_stale
from kapnotes.errors import PermissionDenied
from kapnotes.models import (
    AdjustmentKind,
    AdjustmentStatus,
    Assessment,
    DoseAdjustment,
    DoseEntry,
    Patient,
    Role,
    TreatmentPlan,
    User,
)
from kapnotes.query import not_voided


@dataclass
class QueueItem:
    adjustment: DoseAdjustment
    patient_id: int
    mrn: str
    patient_name: str
    hold_flags: list[str]
    safety_flags: list[str]
    urgency: int  # 0 hold, 1 decrease, 2 the rest
    waiting_since: datetime
    sent_by: str = ""
    plan: TreatmentPlan | None = None
    stale: bool = False  # the plan or the record changed since the item was made

    @property
    def urgent(self) -> bool:
        """Marked urgent by the engine (hold, decrease, review), or the patient has a hold flag."""
        return bool(self.adjustment.urgent) or self.urgency == 0

    @property
    def urgency_label(self) -> str:
        return vocab.urgency_label(self.urgent, self.urgency)

    @property
    def sent_by_text(self) -> str:
        return self.sent_by or (vocab.AUTO_SENT if self.adjustment.kind == AdjustmentKind.suggestion.value else "")


def _urgency(row: DoseAdjustment, plan: TreatmentPlan | None, patient_flags: list[str]) -> tuple[int, list[str]]:
    holds = [f for f in list(row.flags or []) + patient_flags if f in HOLD_FLAGS]
    holds = list(dict.fromkeys(holds))
    if holds or row.action == HOLD:
        return 0, holds
    lower = plan is not None and row.proposed_dose_mg is not None and row.proposed_dose_mg < plan.dose_mg - 1e-6
    if row.action == DECREASE or lower:
        return 1, holds
    return 2, holds


def review_queue(session: Session, actor: Actor) -> list[QueueItem]:
    """Pending items across the prescriber's patients: urgent first, then decreases, then the rest; oldest first."""
    require_role(actor, Role.prescriber.value)
    sender = aliased(User)
    rows = session.exec(  # the sender's name joined in: auto-sent items have none, and no extra query either way
        select(DoseAdjustment, Patient, sender.full_name, sender.credentials)
        .join(Patient, Patient.id == DoseAdjustment.patient_id)
        .outerjoin(sender, sender.id == DoseAdjustment.sent_by_id)
        .where(DoseAdjustment.status == AdjustmentStatus.pending.value,
               col(DoseAdjustment.patient_id).in_(visible_patient_ids(actor)))
    ).all()
    pids = sorted({p.id for _, p, _, _ in rows})
    flags = safety.safety_flags(session, pids) if pids else {}
    plans_by_patient = current_plans(session, pids)
    keys = facts_keys(session, pids, plans_by_patient)
    items = []
    for adj, patient, sender_name, sender_credentials in rows:
        plan = plans_by_patient.get(patient.id)
        urgency, holds = _urgency(adj, plan, flags.get(patient.id, []))
        sent_by = (f"{sender_name}, {sender_credentials}" if sender_credentials else sender_name) if sender_name else ""
        items.append(QueueItem(adj, patient.id, patient.mrn, patient.full_name, holds, flags.get(patient.id, []),
                               urgency, adj.sent_at or adj.created_at, sent_by, plan,
                               is_stale(adj, plan, keys.get(patient.id))))
    # urgent first (engine holds, decreases and reviews, and any hold flag), then by kind, oldest first
    items.sort(key=lambda i: (not i.urgent, i.urgency, i.waiting_since, i.adjustment.id))
    audit.record(session, actor, "review_queue.read", "dose_adjustment", None, None, detail=f"items={len(items)}",
                 coalesce=audit.READ_COALESCE)
    return items


def pending_count(session: Session, actor: Actor) -> int:
    require_role(actor, Role.prescriber.value)
    return session.exec(
        select(func.count()).select_from(DoseAdjustment)
        .where(DoseAdjustment.status == AdjustmentStatus.pending.value,
               col(DoseAdjustment.patient_id).in_(visible_patient_ids(actor)))
    ).one()


@dataclass(frozen=True)
class ScorePoint:
    """One point of a GAD-7/PHQ-9 series, without the item answers."""

    instrument: str
    administered_on: date
    total: int


def queue_data(session: Session, actor: Actor, patient_ids, doses: int = 5):
    """For the review queue, for all its patients at once (one query per kind): the last doses
    and the GAD-7/PHQ-9 series of each. Returns {patient_id: (last doses, series)}."""
    require_role(actor, Role.prescriber.value)
    ids = sorted(set(patient_ids))
    if not ids:
        return {}
    allowed = set(session.exec(select(Patient.id).where(col(Patient.id).in_(ids),
                                                         col(Patient.id).in_(visible_patient_ids(actor)))).all())
    if allowed != set(ids):
        raise PermissionDenied()
    ranked = (
        select(DoseEntry.id, func.row_number().over(
            partition_by=DoseEntry.patient_id,
            order_by=(col(DoseEntry.taken_at).desc(), col(DoseEntry.id).desc())).label("rn"))
        .where(col(DoseEntry.patient_id).in_(ids), not_voided(DoseEntry))
        .subquery()
    )
    out: dict[int, tuple[list, list]] = {pid: ([], []) for pid in ids}
    for d in session.exec(select(DoseEntry).join(ranked, ranked.c.id == DoseEntry.id).where(ranked.c.rn <= doses)
                          .order_by(col(DoseEntry.patient_id), col(DoseEntry.taken_at).desc())).all():
        out[d.patient_id][0].append(d)
    # the series as (instrument, date, total) rows: the item answers are not shown here
    for a in session.exec(select(Assessment.patient_id, Assessment.instrument, Assessment.administered_on,
                                 Assessment.total)
                          .where(col(Assessment.patient_id).in_(ids), not_voided(Assessment))
                          .order_by(col(Assessment.patient_id), col(Assessment.administered_on),
                                    col(Assessment.id))).all():
        out[a.patient_id][1].append(ScorePoint(a.instrument, a.administered_on, a.total))
    return out


def recent_data(session: Session, actor: Actor, patient_id: int, doses: int = 5):
    """What the reviewer sees beside an item: the last doses and the GAD-7/PHQ-9 series."""
    require_patient(session, actor, patient_id)
    last = list(session.exec(
        select(DoseEntry).where(DoseEntry.patient_id == patient_id, not_voided(DoseEntry))
        .order_by(col(DoseEntry.taken_at).desc()).limit(doses)
    ).all())
    series = list(session.exec(
        select(Assessment).where(Assessment.patient_id == patient_id, not_voided(Assessment))
        .order_by(col(Assessment.administered_on), col(Assessment.id))
    ).all())
    return last, series
