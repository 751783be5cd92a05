"""The loop around the rules (DESIGN §3): re-run the engine whenever a patient's facts change.

A dose added, edited, voided or imported, a score added or voided, a signed note, every new
plan version: the engine runs again. A different result supersedes the patient's open and
pending engine suggestions (kept, marked superseded); the same result keeps the row in force.
A new ``hold``, ``decrease`` or ``review`` goes to the prescriber's queue at once, urgent, sent
by nobody; ``increase`` and ``space_out`` stay open until someone sends them; ``continue`` and
``insufficient_data`` only inform.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from kapnotes import audit, notify
from kapnotes.access import require_patient
from kapnotes.actor import Actor
from kapnotes.db import lock_for_append
from kapnotes.dosing.adjustments import OPEN_STATES, URGENT_ACTIONS, flush
from kapnotes.dosing.facts import evaluate, facts_key
from kapnotes.dosing.proposals import proposal_from_note
from kapnotes.dosing.protocol import Protocol, ProtocolError
from kapnotes.dosing.rules import Suggestion, same_dose
from kapnotes.models import AdjustmentKind, AdjustmentStatus, DoseAdjustment, TreatmentPlan
from kapnotes.timeutil import utcnow

log = logging.getLogger(__name__)


def _open_engine_rows(session: Session, patient_id: int) -> list[DoseAdjustment]:
    """The patient's engine suggestions still in play (open or pending), newest first."""
    return list(session.exec(
        select(DoseAdjustment)
        .where(DoseAdjustment.patient_id == patient_id, DoseAdjustment.kind == AdjustmentKind.suggestion.value,
               col(DoseAdjustment.status).in_(OPEN_STATES))
        .order_by(col(DoseAdjustment.id).desc())
    ).all())


def _same_result(row: DoseAdjustment, plan: TreatmentPlan, s: Suggestion) -> bool:
    return (
        row.plan_id == plan.id
        and row.action == s.action
        and row.proposed_dose_mg is not None and same_dose(row.proposed_dose_mg, s.dose_mg)
        and row.proposed_interval_days == s.interval_days
        and list(row.flags) == list(s.flags)
        and list(row.reasons) == [r.as_dict() for r in s.reasons]
        and row.protocol_hash == s.protocol_hash
    )


def _supersede(session: Session, actor: Actor | None, rows, patient_id: int, by: int | None, why: str) -> None:
    for old in rows:
        was = old.status
        old.status = AdjustmentStatus.superseded.value
        session.add(old)
        flush(session)
        audit.record(session, actor, "suggestion.supersede", "dose_adjustment", old.id, patient_id,
                     detail=f"was={was} action={old.action}" + (f" by={by}" if by else f" {why}"))


def run_for_patient(session: Session, actor: Actor | None, patient_id: int, as_of: date | None = None,
                    proto: Protocol | None = None, check_access: bool = True) -> DoseAdjustment | None:
    """Re-run the engine for a patient whose facts changed (DESIGN §3, the loop around the rules).

    The same result keeps the suggestion in force (its facts key and checks brought up to date);
    a different one supersedes every open or pending engine suggestion of the patient (kept,
    marked superseded, so it leaves the queue). A new hold, decrease or review goes to the
    prescriber's queue at once, urgent, sent by nobody. Returns the suggestion in force, or
    None when the patient has no active plan (older suggestions are then superseded).
    """
    if actor is not None and check_access:
        require_patient(session, actor, patient_id)
    # One writer at a time decides "same result or new suggestion". Take the audit chain's lock
    # (every write transaction takes it anyway, at its first audit event), not a lock of our own:
    # a second lock taken in the other order by a producer could deadlock on PostgreSQL.
    lock_for_append(session, audit._AUDIT_LOCK_KEY)
    result = evaluate(session, patient_id, as_of, proto)
    existing = _open_engine_rows(session, patient_id)
    if result is None:
        _supersede(session, actor, existing, patient_id, None, "no_active_plan")
        return None
    plan, s = result
    key = facts_key(session, patient_id, plan)
    checks = [c.as_dict() for c in s.checks]
    if existing and _same_result(existing[0], plan, s):
        keep = existing[0]
        if keep.facts_key != key or list(keep.checks or []) != checks:
            # same action, values, flags and reasons: the item stays, re-dated to this evaluation so that
            # its checks, facts and as_of describe the record as it is now (and it is not stale)
            keep.facts_key, keep.checks, keep.facts, keep.as_of = key, checks, s.facts, utcnow()
            session.add(keep)
            flush(session)
        _supersede(session, actor, existing[1:], patient_id, keep.id, "")
        return keep
    now = utcnow()
    urgent = s.action in URGENT_ACTIONS
    row = DoseAdjustment(
        patient_id=patient_id, kind=AdjustmentKind.suggestion.value,
        status=(AdjustmentStatus.pending if urgent else AdjustmentStatus.open).value,
        plan_id=plan.id, action=s.action, proposed_dose_mg=float(s.dose_mg), proposed_interval_days=s.interval_days,
        flags=list(s.flags), reasons=[r.as_dict() for r in s.reasons], facts=s.facts, checks=checks,
        protocol_name=s.protocol_name[:120], protocol_hash=s.protocol_hash, as_of=now,
        created_by_id=actor.id if actor else None, created_at=now, facts_key=key,
        urgent=urgent, sent_at=now if urgent else None, sent_by_id=None,
    )
    session.add(row)
    flush(session)
    _supersede(session, actor, existing, patient_id, row.id, "")
    audit.record(session, actor, "suggestion.create", "dose_adjustment", row.id, patient_id,
                 detail=f"action={s.action} flags={len(s.flags)} protocol={s.protocol_hash[:12]}"
                        + (" urgent=1" if urgent else "")
                        + (f" supersedes={','.join(str(e.id) for e in existing)}" if existing else ""))
    if urgent:
        notify.urgent_item_created(session, patient_id)
    return row


def handle(session: Session, event: str, actor: Actor | None, payload: dict[str, Any]) -> None:
    """Listener for ``kapnotes.events``: re-run the engine when its inputs change."""
    if event not in ("dose.changed", "assessment.changed", "note.signed"):
        return
    patient_id = payload.get("patient_id")
    if patient_id is None:
        return
    if event == "note.signed" and payload.get("note_type") == "integration" and payload.get("note_id"):
        proposal_from_note(session, actor, int(payload["note_id"]), int(patient_id))
    try:
        # the producer already checked the actor's access to this patient
        run_for_patient(session, actor, int(patient_id), check_access=False)
    except ProtocolError as exc:  # raised before anything is written
        # A broken clinic protocol file must not block documenting a dose; record it and move on.
        log.warning("suggestion engine skipped for patient %s: %s", patient_id, type(exc).__name__)
        audit.record(session, actor, "suggestion.skipped", "patient", patient_id, patient_id,
                     detail=type(exc).__name__)
