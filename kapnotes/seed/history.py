"""One patient's history, replayed day by day as a clinic would live it: doses, scores and
notes are written as they happen; review days hand over to ``reviews``. Each patient draws
from its own random generator seeded with (seed, patient number), so patient N is the same
whatever the clinic size.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import insert

from kapnotes.dosing import plans, suggestions
from kapnotes.models import Assessment, DoseEntry, Patient, TreatmentPlan
from kapnotes.scales import score
from kapnotes.seed.context import Ctx, Story, clinic_time, utc_at
from kapnotes.seed.demo import DEMO_PATIENTS, FIRST_NAMES, LAST_NAMES
from kapnotes.seed.reviews import resume_if_due, review
from kapnotes.seed.signed_notes import session_notes
from kapnotes.seed.writing import flush


def patient_history(ctx: Ctx, index: int) -> None:
    """Replay one patient's treatment from intake to today (or discharge)."""
    p = _new_patient(ctx, index)
    p.plan = _initial_plan(ctx, p)
    for day_no in range((p.end - p.start).days):
        day = p.start + timedelta(days=day_no)
        if day_no == 1 or (day_no and day_no % 14 == 0):  # intake scores, then fortnightly
            _scores_of_day(ctx, p, day)
        _story_scores(ctx, p, day)
        _dose_of_day(ctx, p, day)
        resume_if_due(ctx, p, day)
        if _is_review_day(p, day_no):
            review(ctx, p, day)
    if p.status == "discharged":
        flush(ctx, p)
        with ctx.clock.at(clinic_time(ctx, p.end, 12)):
            suggestions.set_plan_status(ctx.session, p.prescriber, p.pid, "ended", "Treatment completed; discharged.")
    else:
        review(ctx, p, p.end, last=True)
    flush(ctx, p)
    ctx.session.expunge_all()


def _is_review_day(p: Story, day_no: int) -> bool:
    """The demo clinic reviews weekly. The synthetic (benchmark) clinic reviews monthly while
    titrating (the first six months), then quarterly: the same services, fewer runs, so
    thousands of patients still build in minutes."""
    if day_no == 0:
        return False
    if p.demo:
        return day_no % 7 == 0
    return day_no % (28 if day_no <= 182 else 91) == 0


def _new_patient(ctx: Ctx, index: int) -> Story:
    """The patient row, their care team and their response profile."""
    rng = random.Random(f"kapnotes-demo:{ctx.seed}:{index}")
    team_id, therapist_id, prescriber_id = ctx.people.teams[index]
    heavy, demo = index == 0, index < len(DEMO_PATIENTS)
    span = ctx.days if demo else rng.randint(min(ctx.days, 56), ctx.days)  # the clinic grew over the years
    start, end, status = ctx.today - timedelta(days=span), ctx.today, "active"
    if not demo and span > 240 and rng.random() < 0.12:
        end = start + timedelta(days=rng.randint(150, span - 60))
        status = "discharged"
    elif not demo and rng.random() < 0.04:
        status = "paused"
    pid = ctx.ids.take(Patient)
    if demo:
        name, dob = DEMO_PATIENTS[index]
    else:
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        dob = date(1950 + rng.randint(0, 52), rng.randint(1, 12), rng.randint(1, 28))
    registered = utc_at(start - timedelta(days=7), 15)
    diagnosis = "F41.1" if demo else rng.choice(("F41.1", "F41.1", "F33.1", "F43.10", "F41.9"))
    ctx.session.execute(insert(Patient.__table__), [dict(
        id=pid, mrn=f"KAP-{1001 + index}", full_name=name, date_of_birth=dob, diagnosis=diagnosis,
        status=status, care_team_id=team_id, created_at=registered, version=1)])
    ctx.audit_rows.append((registered, None, "system", "patient.create", "patient", str(pid), pid, ""))
    ctx.summary.patients += 1
    adherence = 0.99 if heavy else (0.6 if index % 9 == 5 else rng.uniform(0.82, 0.97))
    formulation = "sublingual" if heavy else ("odt" if index % 2 == 0 else rng.choice(("sublingual", "troche", "odt")))
    return Story(index=index, pid=pid, rng=rng, therapist=ctx.people.actors[therapist_id],
                  prescriber=ctx.people.actors[prescriber_id], start=start, end=end, status=status,
                  responder=index % 4 != 3,  # one in four does not respond
                  adherence=adherence, formulation=formulation, baseline=rng.randint(13, 19), heavy=heavy, demo=demo)


def _initial_plan(ctx: Ctx, p: Story) -> TreatmentPlan:
    dose, interval = (50.0, 1) if p.heavy else (100.0, 7 if p.index % 3 else 3)
    with ctx.clock.at(clinic_time(ctx, p.start, 9)):
        return plans.new_plan_version(ctx.session, p.prescriber, p.pid, _plan_input(p, dose, interval),
                                      "Initial plan after intake assessment.")


def _plan_input(p: Story, dose: float, interval: int) -> plans.PlanInput:
    return plans.PlanInput(formulation=p.formulation, dose_mg=dose, interval_days=interval,
                           minutes_in_mouth=15 if p.formulation == "troche" else 10)


def _gad_target(p: Story, day: date) -> float:
    """The GAD-7 the patient's course predicts: responders improve over ~2 months (and reach
    remission); a non-responder barely, and a little more above 150 mg."""
    progress = min(1.0, (day - p.start).days / 60)
    dose_now = p.plan.dose_mg if p.plan is not None else 100.0
    if p.heavy:  # a partial responder: stays on daily dosing (the benchmark's heaviest record)
        gain = 0.4
    else:
        gain = 0.75 if p.responder else (0.12 + 0.1 * max(0.0, (dose_now - 150) / 50))
    return p.baseline * (1 - min(0.8, gain) * progress)


def _scores_of_day(ctx: Ctx, p: Story, day: date) -> None:
    """GAD-7 every two weeks, PHQ-9 every four (what the engine needs to judge efficacy)."""
    target = _gad_target(p, day) + p.rng.uniform(-1.2, 1.2)
    total = max(0, min(21, round(target)))
    _assessment(ctx, p, "GAD-7", _spread(p.rng, total, 7), day)
    if (day - p.start).days % 28 in (0, 1):
        p_total = max(0, min(18, round(target * 0.9 + p.rng.uniform(-1, 2))))
        _assessment(ctx, p, "PHQ-9", _spread(p.rng, p_total, 9, last_zero=True), day)


def _story_scores(ctx: Ctx, p: Story, day: date) -> None:
    """KAP-1003's story: a PHQ-9 with item 9 answered 1 four days ago (the suicidality hold)."""
    if p.index == 2 and day == ctx.today - timedelta(days=4):
        items = _spread(p.rng, 11, 9, last_zero=True)
        items[8] = 1
        _assessment(ctx, p, "PHQ-9", items, day)


def _dose_due(ctx: Ctx, p: Story, day: date) -> tuple[bool, bool]:
    """(a dose is taken today, it is an in-session dose)."""
    plan = p.plan
    if plan is None or plan.status != "active":
        return False, False
    eff = plan.effective_from.astimezone(ctx.tz).date()
    if day <= eff or (day - eff).days % plan.interval_days:
        return False, False
    if p.heavy:
        in_session = p.last_session_day is None or (day - p.last_session_day).days >= 15
    else:
        every = max(1, round(35 / plan.interval_days))
        in_session = p.doses_taken < (6 if plan.interval_days >= 7 else 3) or p.doses_taken % every == 0
    return in_session or p.rng.random() < p.adherence, in_session


def _dose_of_day(ctx: Ctx, p: Story, day: date) -> None:
    taken_today, in_session = _dose_due(ctx, p, day)
    if not taken_today:
        return
    row = _dose_row(ctx, p, day, in_session)
    p.batch.doses.append(row)
    t = p.therapist
    ctx.audit_rows.append((row["created_at"], t.id, t.username, "dose.add", "dose_entry", str(row["id"]), p.pid,
                           f"source={row['source']}"))
    if row["voided_at"] is not None:
        ctx.audit_rows.append((row["voided_at"], t.id, t.username, "dose.void", "dose_entry", str(row["id"]),
                               p.pid, ""))
    ctx.summary.doses += 1
    p.doses_taken += 1
    if in_session:
        p.session_number += 1
        p.last_session_day = day
        session_notes(ctx, p, row)


def _dose_row(ctx: Ctx, p: Story, day: date, in_session: bool) -> dict:
    """One dose-log entry: mostly well tolerated; KAP-1005's last ten days carry 182/112."""
    rng, plan = p.rng, p.plan
    mg = plan.dose_mg
    taken = clinic_time(ctx, day, 17 if in_session else 19) + timedelta(minutes=rng.randint(0, 59))
    progress = min(1.0, (day - p.start).days / 120)
    high_bp = p.index == 4 and day > ctx.today - timedelta(days=10)
    sys_pre = rng.randint(108, 132)
    nausea = rng.choice((0, 0, 0, 1, 1, 1)) if rng.random() > 0.06 else (2 if p.demo or rng.random() < 0.8 else 3)
    events = []
    if rng.random() < 0.04:
        events.append(rng.choice(("dizziness", "headache", "nausea", "blurred_vision")))
    if in_session and rng.random() < 0.004 and not p.demo:
        events.append("fainting")
    voided = rng.random() < 0.004 and not in_session
    t_id = p.therapist.id
    return dict(
        id=ctx.ids.take(DoseEntry), patient_id=p.pid, plan_id=plan.id, taken_at=taken, dose_mg=mg,
        formulation=plan.formulation, administration="spit",
        context="in_session" if in_session else rng.choice(("home", "home", "home_with_sitter")),
        anxiety_before=rng.randint(4, 8), anxiety_after=max(0, rng.randint(1, 4) - round(progress)),
        dissociation=min(7, max(0, round(mg / 50) + rng.randint(-1, 2))), nausea=nausea,
        vomited=nausea == 3 and rng.random() < 0.3,
        bp_systolic_pre=sys_pre, bp_diastolic_pre=rng.randint(68, 86),
        bp_systolic_post=182 if high_bp else sys_pre + rng.randint(2, 12),
        bp_diastolic_post=112 if high_bp else rng.randint(72, 90),
        heart_rate=rng.randint(62, 92), adverse_events=";".join(events),
        notes=None if rng.random() < 0.8 else rng.choice(("Felt calm afterwards.", "Slept well.",
                                                          "Mild headache in the evening.")),
        source="session" if in_session else "manual", import_batch_id=None, session_note_id=None,
        entered_by_id=t_id, created_at=taken + timedelta(hours=2),
        voided_at=taken + timedelta(days=1) if voided else None, voided_by_id=t_id if voided else None,
        void_reason="Entered twice by mistake." if voided else None, version=2 if voided else 1,
    )


def _assessment(ctx: Ctx, p: Story, instrument: str, items: list[int], when: date) -> None:
    s = score(instrument, items)
    aid = ctx.ids.take(Assessment)
    created = utc_at(when, 14, p.rng.randint(0, 59))
    t = p.therapist
    p.batch.assessments.append(dict(
        id=aid, patient_id=p.pid, instrument=s.instrument, administered_on=when, items=items, total=s.total,
        band=s.band, item9=s.item9 if instrument == "PHQ-9" else None, loinc_panel=s.loinc_panel,
        loinc_total=s.loinc_total, session_note_id=None, entered_by_id=t.id, created_at=created, voided_at=None,
        voided_by_id=None, void_reason=None))
    ctx.audit_rows.append((created, t.id, t.username, "assessment.add", "assessment", str(aid), p.pid,
                           f"instrument={instrument}"))
    ctx.summary.assessments += 1


def _spread(rng: random.Random, total: int, n: int, last_zero: bool = False) -> list[int]:
    """Item answers (0–3 each) that add up to ``total``."""
    items = [0] * n
    slots = list(range(n - 1 if last_zero else n))
    total = min(total, 3 * len(slots))
    for _ in range(total):
        choices = [i for i in slots if items[i] < 3]
        items[rng.choice(choices)] += 1
    return items
