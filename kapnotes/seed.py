"""The demo clinic: believable, deterministic histories for trying KAPNotes and for benchmarks.

Same ``seed`` → same clinic. Accounts and patients go through the services (so they
are validated and audited); the histories are written in bulk.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy.engine import Engine

from kapnotes import audit, auth, plans
from kapnotes import patients as patient_service
from kapnotes.db import session_scope
from kapnotes.models import (
    Assessment,
    DoseContext,
    DoseEntry,
    DoseSource,
    NoteStatus,
    NoteType,
    SessionNote,
)
from kapnotes.notehash import content_hash
from kapnotes.scales import score
from kapnotes.seed_notes import demo_dosing_fields, demo_integration_fields
from kapnotes.timeutil import utcnow

DEMO_PASSWORD = "kapnotes-demo-2026"

DEMO_USERS = (
    ("tsato", "therapist", "Tomoko Sato", "LMFT"),
    ("rbennett", "therapist", "Rafael Bennett", "PsyD"),
    ("mokafor", "prescriber", "Michelle Okafor", "MD"),
    ("admin", "admin", "Alex Admin", ""),
)

DEMO_PATIENTS = (
    ("Jordan Ellis", date(1986, 4, 12)),
    ("María José Álvarez", date(1979, 9, 30)),
    ("Sam Whitaker", date(1992, 1, 5)),
    ("Zoë Lindqvist", date(1988, 11, 21)),
    ("Kwame Mensah", date(1975, 6, 2)),
    ("李明 (Li Ming)", date(1990, 3, 17)),
    ("Priya Raman", date(1983, 12, 8)),
    ("Noah Fischer", date(1996, 7, 25)),
)

@dataclass
class SeedSummary:
    users: list[tuple[str, str]] = field(default_factory=list)
    patients: int = 0
    doses: int = 0
    assessments: int = 0
    notes: int = 0

    def describe(self) -> str:
        lines = [
            f"demo clinic seeded: {self.patients} patients, {self.doses} doses, "
            f"{self.assessments} assessments, {self.notes} signed notes",
            "demo sign-ins (all share one password):",
        ]
        lines += [f"  {role:<10} {username:<10} password: {DEMO_PASSWORD}" for username, role in self.users]
        return "\n".join(lines)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), timezone.utc)


def seed_demo(engine: Engine, patients: int = 8, years: float = 0.35, seed: int = 7,
              today: date | None = None) -> SeedSummary:
    rng = random.Random(seed)
    today = today or utcnow().date()
    summary = SeedSummary()
    with session_scope(engine) as session:
        ids: dict[str, int] = {}
        for username, role, name, cred in DEMO_USERS:
            user = auth.create_user(session, None, username, role, name, DEMO_PASSWORD, cred)
            ids[username] = user.id
            summary.users.append((username, role))
        therapists = ["tsato", "rbennett"]
        for i in range(patients):
            name, dob = DEMO_PATIENTS[i] if i < len(DEMO_PATIENTS) else (f"Demo Patient {i + 1:04d}",
                                                                           date(1960 + i % 40, 1 + i % 12, 1 + i % 28))
            therapist = therapists[0 if i % 8 < 4 else 1]
            p = patient_service.add_patient(session, None, f"KAP-{1001 + i}", name, dob, therapist, "mokafor")
            _history(session, rng, p.id, ids[therapist], ids["mokafor"], i, today, years, summary)
            summary.patients += 1
        audit.record(session, None, "demo.seed", detail=f"patients={patients}")
    return summary


def _history(session, rng: random.Random, pid: int, therapist_id: int, prescriber_id: int, index: int,
             today: date, years: float, summary: SeedSummary) -> None:
    days = max(42, int(365 * years))
    start = today - timedelta(days=days)
    responder = index % 4 != 3  # one in four does not respond
    interval = 7 if index % 3 else 3
    plan_v1 = plans.new_plan_version(
        session, None, pid,
        plans.PlanInput(formulation="odt" if index % 2 == 0 else "sublingual", dose_mg=100, interval_days=interval),
        rationale="Initial plan after intake assessment.", effective_from=_at(start, 9),
        approved_by_id=prescriber_id,
    )
    titrate_day = start + timedelta(days=min(42, days // 2))
    plan_v2 = plans.new_plan_version(
        session, None, pid,
        plans.PlanInput(formulation=plan_v1.formulation, dose_mg=150, interval_days=interval),
        rationale="GAD-7 improvement below 25 % at 100 mg; tolerated well.",
        effective_from=_at(titrate_day, 9), approved_by_id=prescriber_id,
    )
    baseline = rng.randint(13, 19)
    dose_rows: list[DoseEntry] = []
    day = start + timedelta(days=1)
    n = 0
    while day < today:
        plan = plan_v1 if day < titrate_day else plan_v2
        if rng.random() < 0.88:  # adherence
            in_session = n % 2 == 0 and plan.interval_days >= 7
            high_bp = index == 4 and day > today - timedelta(days=10)
            sys_pre = rng.randint(112, 138)
            dose_rows.append(DoseEntry(
                patient_id=pid, plan_id=plan.id, taken_at=_at(day, 17 if in_session else 19, rng.randint(0, 59)),
                dose_mg=plan.dose_mg, formulation=plan.formulation, administration="spit",
                context=DoseContext.in_session if in_session else rng.choice([DoseContext.home, DoseContext.home_with_sitter]),
                anxiety_before=rng.randint(4, 8), anxiety_after=rng.randint(1, 4), dissociation=rng.randint(2, 7),
                nausea=rng.choice([0, 0, 0, 1, 1, 2]), vomited=False,
                bp_systolic_pre=sys_pre, bp_diastolic_pre=rng.randint(70, 88),
                bp_systolic_post=182 if high_bp else sys_pre + rng.randint(4, 18),
                bp_diastolic_post=112 if high_bp else rng.randint(76, 94),
                heart_rate=rng.randint(62, 92),
                adverse_events="dizziness" if rng.random() < 0.1 else "",
                source=DoseSource.session if in_session else DoseSource.manual,
                entered_by_id=therapist_id,
            ))
            n += 1
        day += timedelta(days=plan.interval_days)
    session.add_all(dose_rows)
    session.flush()
    summary.doses += len(dose_rows)

    assessments: list[Assessment] = []
    weeks = days // 7
    for k, d in enumerate(range(0, days, 14)):
        when = start + timedelta(days=d)
        progress = k / max(1, weeks / 2)
        target = baseline * (1 - (0.65 if responder else 0.15) * min(1.0, progress)) + rng.uniform(-1, 1)
        total = max(0, min(21, round(target)))
        items = _spread(rng, total, 7)
        s = score("GAD-7", items)
        assessments.append(Assessment(patient_id=pid, instrument=s.instrument, administered_on=when, items=items,
                                      total=s.total, band=s.band, loinc_panel=s.loinc_panel,
                                      loinc_total=s.loinc_total, entered_by_id=therapist_id))
        if k % 2 == 0:
            p_total = max(0, min(27, round(target * 0.9 + rng.uniform(-1, 2))))
            p_items = _spread(rng, p_total, 9, last_zero=True)
            if index == 2 and d + 28 >= days:  # a recent positive item 9: the safety flag
                p_items[8] = 1
            ps = score("PHQ-9", p_items)
            assessments.append(Assessment(patient_id=pid, instrument=ps.instrument, administered_on=when,
                                          items=p_items, total=ps.total, band=ps.band, item9=ps.item9,
                                          loinc_panel=ps.loinc_panel, loinc_total=ps.loinc_total,
                                          entered_by_id=therapist_id))
    session.add_all(assessments)
    summary.assessments += len(assessments)

    for number, dose in enumerate((d for d in dose_rows if d.context == DoseContext.in_session), start=1):
        ddate = dose.taken_at.date()
        dosing = SessionNote(
            patient_id=pid, author_id=therapist_id, note_type=NoteType.dosing, session_date=ddate,
            start_time="16:30", end_time="19:00", modality="in_person",
            fields=demo_dosing_fields(rng, number, dose),
            free_text="Client arrived on time, settled quickly; experience unfolded gently.",
        )
        integration = SessionNote(
            patient_id=pid, author_id=therapist_id, note_type=NoteType.integration,
            session_date=min(today, ddate + timedelta(days=2)), start_time="10:00", end_time="10:50",
            modality="telehealth", fields=demo_integration_fields(rng), free_text="Integration session.",
            integrates_dose_id=dose.id,
        )
        for note in (dosing, integration):
            note.status = NoteStatus.signed
            note.signed_by_id = therapist_id
            note.signed_at = _at(note.session_date, 21)
            note.updated_at = note.signed_at
            note.content_hash = content_hash(note)
        session.add_all([dosing, integration])
        session.flush()
        dose.session_note_id = dosing.id
        summary.notes += 2
    session.flush()


def _spread(rng: random.Random, total: int, n: int, last_zero: bool = False) -> list[int]:
    """Item answers (0–3 each) that add up to ``total``."""
    items = [0] * n
    slots = list(range(n - 1 if last_zero else n))
    total = min(total, 3 * len(slots))
    for _ in range(total):
        choices = [i for i in slots if items[i] < 3]
        items[rng.choice(choices)] += 1
    return items
