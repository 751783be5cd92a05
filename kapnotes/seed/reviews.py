"""Review days: the real engine runs on the record up to that day, and the care team acts on
what it said through the real services (send, propose, decide, hold, resume), so every stored
suggestion is what the engine says about the data before it, and every plan version follows
from a decision.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from kapnotes.dosing import plans, suggestions
from kapnotes.models import DoseAdjustment
from kapnotes.seed.context import Ctx, Story, clinic_time
from kapnotes.seed.demo import INTERVALS, STEPS_MG
from kapnotes.seed.writing import flush

_RATIONALES = {
    "increase": ("Non-response confirmed on GAD-7 and tolerability is good; agree with one step up.",
                 "Agree: no response at this dose, vitals and tolerability fine."),
    "space_out": ("Sustained remission on GAD-7; agree with spacing out.",
                  "Agree: two readings below 5; fewer doses is the safer course."),
    "decrease": ("Agree: step down for tolerability.",),
    "review": ("Reviewed with the patient and therapist: no change to the plan for now.",),
    "hold": ("Agree: hold dosing until the event has been assessed.",),
}


_REJECTIONS = {
    "increase": "Blood pressure trend needs another two weeks before a change.",
    "space_out": "Keep the interval through the next assessment; the client prefers the current rhythm.",
}


def review(ctx: Ctx, p: Story, day: date, last: bool = False) -> None:
    """A review day: the engine runs on the record up to ``day``; the team acts on its result."""
    flush(ctx, p)
    if p.plan.status != "active":
        return
    with ctx.clock.at(clinic_time(ctx, day, 12)):
        row = suggestions.run_for_patient(ctx.session, None, p.pid, as_of=day, check_access=False)
    if row is None or row.status not in ("open", "pending"):
        return
    if p.index in (1, 6) and not last and (day - p.start).days == 8 * 7:
        _therapist_proposal(ctx, p, day)
        return
    if row.action in ("hold", "decrease", "review"):
        _urgent(ctx, p, row, day, last)
    elif row.action in ("increase", "space_out"):
        _send_and_decide(ctx, p, row, day, last)


def _waits_in_queue(p: Story, last: bool) -> bool:
    """Some items are still waiting today: the demo's safety stories and a few others."""
    return last and (p.index in (2, 4) or p.index % 5 in (2, 3))


def _send(ctx: Ctx, p: Story, row: DoseAdjustment, moment: datetime) -> None:
    if row.status == "open":  # hold/decrease/review may already be in the queue by themselves
        with ctx.clock.at(moment):
            suggestions.send_to_prescriber(ctx.session, p.therapist, row.id,
                                           note="Discussed with the client; sending per protocol.")


def _urgent(ctx: Ctx, p: Story, row: DoseAdjustment, day: date, last: bool) -> None:
    _send(ctx, p, row, clinic_time(ctx, day, 13))
    if _waits_in_queue(p, last) or p.index in (2, 4):
        return
    _decide(ctx, p, row, clinic_time(ctx, day, 16), "approve", p.rng.choice(_RATIONALES[row.action]))
    if row.action == "hold":
        plan = p.plan
        p.held_until = day + timedelta(days=max(14, 2 * plan.interval_days) + 1)


def _send_and_decide(ctx: Ctx, p: Story, row: DoseAdjustment, day: date, last: bool) -> None:
    """The therapist forwards the engine's change (the engine itself waits two weeks on a plan); the
    prescriber decides."""
    _send(ctx, p, row, clinic_time(ctx, day, 13))
    if _waits_in_queue(p, last):
        return
    verdict = p.rng.random()
    if p.demo and p.index == 4 and row.action == "space_out":
        # KAP-1005 stays weekly: her story is the high blood pressure of the last ten days
        _decide(ctx, p, row, clinic_time(ctx, day, 16), "reject", _REJECTIONS[row.action])
    elif verdict < 0.12:
        _decide(ctx, p, row, clinic_time(ctx, day, 16), "reject", _REJECTIONS[row.action])
    elif verdict < 0.22 and row.action == "space_out" and p.plan.dose_mg > STEPS_MG[0]:
        lower = max(s for s in STEPS_MG if s < p.plan.dose_mg)
        _decide(ctx, p, row, clinic_time(ctx, day, 16), "modify",
                "Remission; the client asks to taper, so a step down as well as spacing out.",
                dose_mg=lower, interval_days=row.proposed_interval_days)
    else:
        _decide(ctx, p, row, clinic_time(ctx, day, 16), "approve", p.rng.choice(_RATIONALES[row.action]))


def _therapist_proposal(ctx: Ctx, p: Story, day: date) -> None:
    """KAP-1002 and KAP-1007: the therapist proposes a longer interval; the prescriber declines."""
    longer = [v for v in INTERVALS if v > p.plan.interval_days]
    if not longer:
        return
    with ctx.clock.at(clinic_time(ctx, day, 13)):
        row = suggestions.propose(ctx.session, p.therapist, p.pid, p.plan.dose_mg, longer[0],
                                  "The client asks for fewer dosing days because of work travel.")
    _decide(ctx, p, row, clinic_time(ctx, day + timedelta(days=1), 10), "reject",
            "GAD-7 is not yet in remission; keep the interval and revisit in four weeks.")


def _decide(ctx: Ctx, p: Story, row: DoseAdjustment, moment: datetime, decision: str, rationale: str,
            **values) -> None:
    with ctx.clock.at(moment):
        suggestions.decide(ctx.session, p.prescriber, row.id, decision, rationale, **values)
    p.plan = plans.current_plan(ctx.session, p.pid)


def resume_if_due(ctx: Ctx, p: Story, day: date) -> None:
    """A held plan is resumed once the event has left the engine's safety window."""
    if p.held_until is None or day < p.held_until or p.plan.status != "held":
        return
    flush(ctx, p)
    with ctx.clock.at(clinic_time(ctx, day, 11)):
        suggestions.set_plan_status(ctx.session, p.prescriber, p.pid, "active",
                                    "Event assessed, vitals normal since; resuming at the same dose.")
    p.plan = plans.current_plan(ctx.session, p.pid)
    p.held_until = None
