"""The summary's safety section: a handful of rows, whatever the length of the record.

Active flags today (the ones every page shows, plus those of the engine's live suggestions),
engine holds and held plan versions in the period, safety overrides in the period, and urgent
items still waiting for the prescriber. Reads the adjustments it needs in one query, never the
dose log.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from kapnotes.exports.rows import dose_interval, reason_text, user_names
from kapnotes.models import AdjustmentStatus, DoseAdjustment
from kapnotes.patients import safety_flags
from kapnotes.pdf.model import ACTIVE_SAFETY_CODES, SafetyData, SafetyItem, safety_words
from kapnotes.timeutil import fmt_local, to_local, utcnow

URGENT_ACTIONS = ("hold", "decrease", "review")
ACTION_WORDS = {"hold": "Hold", "decrease": "Decrease", "review": "Review", "increase": "Increase",
                "space_out": "Space out", "continue": "Continue", "insufficient_data": "Insufficient data",
                "change": "Change", "shorten_interval": "Shorter interval"}


def _status_words(a: DoseAdjustment, names: dict[int, str], tz) -> str:
    who = names.get(a.decided_by_id, "") if a.decided_by_id else ""
    when = fmt_local(a.decided_at, tz, with_time=False) if a.decided_at else ""
    if a.status in (AdjustmentStatus.approved, AdjustmentStatus.modified, AdjustmentStatus.rejected):
        text = f"{a.status} by {who}, {when}"
        return text + (f": {a.decision_rationale}" if a.decision_rationale else "")
    return {"pending": "waiting for the prescriber", "open": "not yet sent to the prescriber",
            "superseded": "replaced by a newer evaluation", "withdrawn": "withdrawn"}.get(a.status, str(a.status))


def _reasons(a: DoseAdjustment) -> str:
    return " ".join(t for t in (reason_text(r) for r in (a.reasons or [])) if t)


def _runs(rows: list[DoseAdjustment]) -> list[list[DoseAdjustment]]:
    """Re-evaluations that superseded one another with the same flags, grouped into runs."""
    groups: list[list[DoseAdjustment]] = []
    for a in rows:
        if groups and list(groups[-1][-1].flags or []) == list(a.flags or []) \
                and groups[-1][-1].status == AdjustmentStatus.superseded:
            groups[-1].append(a)
        else:
            groups.append([a])
    return groups


def _engine_holds(rows: list[DoseAdjustment], names, tz) -> list[SafetyItem]:
    """Engine holds in the period; a run of re-evaluations with the same flags is one line."""
    out = []
    for g in _runs(rows):
        first, last = g[0], g[-1]
        when = fmt_local(first.created_at, tz, with_time=False)
        if len(g) > 1:
            when += f" to {fmt_local(last.created_at, tz, with_time=False)}"
        hold_codes = [f for f in (last.flags or []) if f in ACTIVE_SAFETY_CODES] or list(last.flags or [])
        out.append(SafetyItem(when, "Engine hold: " + "; ".join(safety_words(f) for f in hold_codes),
                              _reasons(last), _status_words(last, names, tz)))
    return out


def _held_plan_versions(plans, start: datetime, end: datetime, names, tz) -> list[SafetyItem]:
    out = []
    for i, p in enumerate(plans):
        nxt = plans[i + 1].effective_from if i + 1 < len(plans) else None
        in_period = p.effective_from < end and (nxt is None or nxt > start)
        if p.status == "held" and in_period:
            out.append(SafetyItem(fmt_local(p.effective_from, tz, with_time=False),
                                  f"Plan version {p.version_number} held", p.rationale or "",
                                  names.get(p.approved_by_id, "")))
    return out


def _override_item(a: DoseAdjustment, names, tz) -> SafetyItem:
    rules = "; ".join(safety_words(r) for r in (a.override_rules or [])) or "a safety rule"
    change = dose_interval(a.decided_dose_mg, a.decided_interval_days)
    what = f"{ACTION_WORDS.get(a.action, a.action)} to {change}, overriding: {rules}"
    return SafetyItem(fmt_local(a.decided_at, tz), what, f"Override rationale: {a.override_rationale}",
                      names.get(a.decided_by_id, "—"))


def _waiting_item(a: DoseAdjustment, tz) -> SafetyItem:
    return SafetyItem(fmt_local(a.created_at, tz, with_time=False),
                      f"{ACTION_WORDS.get(a.action, a.action)}: "
                      f"{dose_interval(a.proposed_dose_mg, a.proposed_interval_days)}",
                      _reasons(a), "waiting for the prescriber")


def _active_flags(session: Session, patient_id: int, live: list[DoseAdjustment]) -> list[str]:
    """The flags the app shows on every page, plus those of the engine's live suggestions
    (overuse, dose above plan), each with the engine's own sentence when it has one."""
    codes = list(safety_flags(session, [patient_id]).get(patient_id, []))
    texts: dict[str, str] = {}
    for a in live:  # newest first
        codes += [f for f in (a.flags or []) if f in ACTIVE_SAFETY_CODES]
        for r in a.reasons or []:
            if isinstance(r, dict) and r.get("code"):
                texts.setdefault(r["code"], str(r.get("text") or ""))
    ordered = [c for c in ACTIVE_SAFETY_CODES if c in codes]
    return [safety_words(c) + (f": {texts[c]}" if texts.get(c) else "") for c in ordered]


def _safety_adjustments(session: Session, patient_id: int, start: datetime, end: datetime) -> list[DoseAdjustment]:
    """Engine holds and overrides in the period, and urgent items waiting: one query."""
    return list(session.exec(
        select(DoseAdjustment).where(
            DoseAdjustment.patient_id == patient_id,
            ((DoseAdjustment.kind == "suggestion") & (DoseAdjustment.action == "hold")
             & (DoseAdjustment.created_at >= start) & (DoseAdjustment.created_at < end))
            | (col(DoseAdjustment.override_rationale).is_not(None) & (DoseAdjustment.decided_at >= start)
               & (DoseAdjustment.decided_at < end))
            | ((DoseAdjustment.status == AdjustmentStatus.pending)
               & (col(DoseAdjustment.urgent).is_(True) | col(DoseAdjustment.action).in_(URGENT_ACTIONS))))
        .order_by(DoseAdjustment.id)
    ).all())


def _live_suggestions(session: Session, patient_id: int) -> list[DoseAdjustment]:
    return list(session.exec(
        select(DoseAdjustment).where(DoseAdjustment.patient_id == patient_id, DoseAdjustment.kind == "suggestion",
                                     col(DoseAdjustment.status).in_((AdjustmentStatus.open, AdjustmentStatus.pending)))
        .order_by(col(DoseAdjustment.id).desc()).limit(5)
    ).all())


def gather_safety(session: Session, patient_id: int, plans, start: datetime, end: datetime, tz) -> SafetyData:
    """Active flags today, holds and safety overrides in the period, urgent items still waiting.

    Reads a handful of rows (one query for the adjustments it needs), never the dose log."""
    adj = _safety_adjustments(session, patient_id, start, end)
    live = _live_suggestions(session, patient_id)
    names = user_names(session, {a.decided_by_id for a in adj} | {p.approved_by_id for p in plans})
    in_period = lambda t: t is not None and start <= t < end  # noqa: E731
    holds = _engine_holds([a for a in adj if a.kind == "suggestion" and a.action == "hold"
                           and in_period(a.created_at)], names, tz)
    holds += _held_plan_versions(list(plans), start, end, names, tz)
    overrides = [_override_item(a, names, tz) for a in adj
                 if a.override_rationale and in_period(a.decided_at)]
    waiting = [_waiting_item(a, tz) for a in adj
               if a.status == AdjustmentStatus.pending and (a.urgent or a.action in URGENT_ACTIONS)]
    today = to_local(utcnow(), tz).date()
    return SafetyData(as_of=today.isoformat(), active=_active_flags(session, patient_id, live),
                      holds=sorted(holds, key=lambda h: h.when), overrides=overrides, waiting=waiting)


def plan_overrides(session: Session, plans) -> dict[int, str]:
    """{adjustment id: the override in words} for the decisions that produced plan versions."""
    ids = [p.adjustment_id for p in plans if p.adjustment_id]
    if not ids:
        return {}
    rows = session.exec(select(DoseAdjustment.id, DoseAdjustment.override_rules, DoseAdjustment.override_rationale)
                        .where(col(DoseAdjustment.id).in_(ids), col(DoseAdjustment.override_rationale).is_not(None))
                        ).all()
    return {i: ("Safety override (" + "; ".join(safety_words(r) for r in (rules or [])) + f"): {why}")
            for i, rules, why in rows}
