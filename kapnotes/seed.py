"""The demo clinic and the synthetic clinic: believable, deterministic histories.

``seed_demo(engine)`` builds the 8-patient demo clinic (users tsato, rbennett = therapists,
mokafor = prescriber, admin; patients KAP-1001..1008; tsato has KAP-1001..1004).
``seed_demo(engine, patients=2000, years=3)`` builds a clinic-scale one for benchmarks:
the first 8 patients are always the demo patients on the demo care teams, every further
patient belongs to a synthetic care team (about 25 patients per therapist, 4 therapists
per prescriber), so a demo clinician's caseload is the same in a clinic of 20 and of 2,000.

Same ``seed`` (and ``today``) → same clinic: each patient draws from its own random
generator seeded with (seed, patient number), so patient N is the same whatever the
clinic size. KAP-1001 is the heaviest patient: daily home doses plus an in-session dose
every 15 days (≈1,100 dose entries, ≈150 signed notes and ≈120 assessments over 3 years).

The records tell the truth: each history is replayed day by day, and on review days
(weekly in the demo; monthly, then quarterly, for synthetic patients) the real engine runs
on the record up to that day (``suggestions.run_for_patient``); the care team acts through
the real services (send, propose, decide, hold, resume), so every stored suggestion is what
the engine says about the data before it, and every plan version follows from a decision.
The demo's stories come from the data: KAP-1003 answers PHQ-9 item 9 (a hold waiting for
the prescriber), KAP-1005's last doses read 182/112 (a hold), non-responders (KAP-1004,
KAP-1008) are titrated up on approved increases, responders reach remission and are spaced
out; KAP-1002 and KAP-1007's therapist proposes a longer interval and is declined.

Doses, scores, notes and addenda are written in bulk (Core ``executemany``) with explicit
ids, all in ONE transaction with the services' rows; while replaying, the services' clock
reads the historical moment (``_Clock``). 2,000 patients × 3 years take a few minutes on
SQLite; the 8-patient demo about a second. One Argon2id hash of the demo password is reused
for every account. The audit events of the bulk rows are back-dated to when they happened
and hash-chained onto the chain (after the services' own events) exactly as
``kapnotes.audit`` does, so ``python -m kapnotes verify-audit`` passes.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.engine import Engine

from kapnotes import audit, auth, timeutil
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.db import lock_for_append, session_scope
from kapnotes.dosing import plans, suggestions
from kapnotes.errors import ValidationError
from kapnotes.models import (
    Addendum,
    Assessment,
    AuditEvent,
    CareTeam,
    CareTeamMember,
    DoseAdjustment,
    DoseEntry,
    Patient,
    SessionNote,
    TreatmentPlan,
    User,
)
from kapnotes.notes.hashing import content_hash, text_hash
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

HEAVIEST_MRN = "KAP-1001"  # daily doses: the benchmark's heaviest patient
PATIENTS_PER_THERAPIST = 25
THERAPISTS_PER_PRESCRIBER = 4
STEPS_MG = (50, 100, 150, 200, 250, 300)
INTERVALS = (3, 7, 14, 28)

_FIRST = ("Avery", "Blake", "Camila", "Dmitri", "Elena", "Farah", "Gabriel", "Hana", "Idris", "Julia",
          "Kenji", "Lena", "Mateo", "Nadia", "Oscar", "Paula", "Quinn", "Rosa", "Samir", "Tess",
          "Uma", "Victor", "Wren", "Ximena", "Yusuf", "Zara", "Amara", "Björn", "Chloé", "Diego",
          "Esme", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Keiko", "Luis", "Mei", "Nils")
_LAST = ("Adams", "Brennan", "Castillo", "Dubois", "Eriksen", "Fujita", "García", "Haddad", "Ivanova", "Jensen",
         "Kowalski", "Larsen", "Moreau", "Nakamura", "O'Neill", "Petrov", "Quintero", "Rossi", "Schmidt", "Tanaka",
         "Umarov", "Vargas", "Walsh", "Xu", "Yilmaz", "Zimmermann", "Achebe", "Bauer", "Chen", "Diallo",
         "Evans", "Fischer", "Gómez", "Hughes", "Iqbal", "Johansson", "Kim", "López", "Müller", "Novak")
_CREDENTIALS_T = ("LMFT", "PsyD", "LCSW", "PhD", "LPC")
_CREDENTIALS_P = ("MD", "NP", "DO", "PMHNP")
_ADDENDA = (
    "Correction: post-dose blood pressure was taken at the end of the session, not at peak.",
    "Client called the next day: slept well, no lingering dissociation.",
    "Addendum: partner confirmed safe ride home; discharge criteria were met.",
    "Clarification: homework agreed verbally; client will email the journal entry.",
)
_FREE_TEXT = (
    "Client arrived on time, settled quickly; experience unfolded gently.",
    "Client was initially tense; breathing practice helped before dosing.",
    "Steady session; client spoke little during the peak and journaled afterwards.",
    "Client described vivid imagery; processed it calmly with support.",
)


@dataclass
class SeedSummary:
    users: list[tuple[str, str]] = field(default_factory=list)  # the demo sign-ins (username, role)
    patients: int = 0
    doses: int = 0
    assessments: int = 0
    notes: int = 0
    addenda: int = 0
    adjustments: int = 0
    plan_versions: int = 0
    audit_events: int = 0
    synthetic_users: int = 0
    heaviest_mrn: str = HEAVIEST_MRN

    def describe(self) -> str:
        lines = [
            f"demo clinic seeded: {self.patients} patients, {self.doses} doses, "
            f"{self.assessments} assessments, {self.notes} signed notes",
            "demo sign-ins (all share one password):",
        ]
        lines += [f"  {role:<10} {username:<10} password: {DEMO_PASSWORD}" for username, role in self.users]
        if self.synthetic_users:
            lines.append(f"  (+ {self.synthetic_users} synthetic clinicians, same password; "
                         f"heaviest patient {self.heaviest_mrn})")
        return "\n".join(lines)


def _local(ctx, day: date, hour: int) -> datetime:
    """A moment of the clinic's day (the engine and the services count days in the clinic's zone)."""
    return datetime.combine(day, time(hour), ctx.tz).astimezone(timezone.utc)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), timezone.utc)


class _Ids:
    """Explicit primary keys, so rows can point at each other before they are inserted."""

    def __init__(self, session) -> None:
        self._next: dict[str, int] = {}
        for model in (User, CareTeam, Patient, DoseEntry, Assessment, SessionNote, Addendum):
            top = session.execute(select(func.max(model.__table__.c.id))).scalar()
            self._next[model.__tablename__] = (top or 0) + 1

    def peek(self, model) -> int:
        return self._next[model.__tablename__]

    def take(self, model) -> int:
        name = model.__tablename__
        value = self._next[name]
        self._next[name] = value + 1
        return value


@dataclass
class _People:
    by_username: dict[str, int]
    actors: dict[int, Actor]
    teams: list[tuple[int, int, int]]  # per patient index: (team_id, therapist_id, prescriber_id)


@dataclass
class _Batch:
    dosing_notes: list[dict] = field(default_factory=list)
    doses: list[dict] = field(default_factory=list)
    integration_notes: list[dict] = field(default_factory=list)
    addenda: list[dict] = field(default_factory=list)
    assessments: list[dict] = field(default_factory=list)


# (at, actor_id, actor_username, action, record_type, record_id, patient_id, detail)
_AuditRow = tuple[datetime, int | None, str, str, str, str | None, int | None, str]


def seed_demo(engine: Engine, patients: int = 8, years: float = 0.35, seed: int = 7,
              today: date | None = None) -> SeedSummary:
    """Seed a clinic of ``patients`` with ``years`` of history (see the module docstring)."""
    if patients < 1:
        raise ValidationError({"patients": "Seed at least one patient."})
    if not (0 < years <= 10):
        raise ValidationError({"years": "Years of history must be above 0 and at most 10."})
    today = today or utcnow().date()
    days = max(42, int(round(365 * years)))
    clinic_start = today - timedelta(days=days + 14)
    summary = SeedSummary()
    audit_rows: list[_AuditRow] = []
    password_hash = auth.hash_password(DEMO_PASSWORD)  # one Argon2id hash for every seeded account

    with session_scope(engine) as session:
        taken = session.execute(select(User.username).where(User.username.in_([u[0] for u in DEMO_USERS]))).all()
        if taken:
            raise ValidationError({"username": f"The database already has the demo user {taken[0][0]!r}; "
                                               "seed an empty database."})
        if session.execute(select(Patient.id).where(Patient.mrn == "KAP-1001")).first():
            raise ValidationError({"mrn": "The database already has patient KAP-1001; seed an empty database."})
        ids = _Ids(session)
        people = _people(session, ids, patients, password_hash, clinic_start, audit_rows, summary)
        first_pid = ids.peek(Patient)
        ctx = _Ctx(session, ids, people, seed, today, days, _Clock(), audit_rows, summary, get_settings().tz)
        ctx.clock.install()
        try:
            for i in range(patients):
                _patient_history(ctx, i)
        finally:
            ctx.clock.uninstall()
        _stamp_service_rows(session, first_pid, summary)
        audit_rows.append((utcnow().replace(microsecond=0), None, "system", "demo.seed", "", None, None,
                           f"patients={patients} years={years:g} seed={seed}"))
        summary.audit_events = _append_audit_chain(session, audit_rows)
        _fix_sequences(session)
    return summary


# --- people ---------------------------------------------------------------------


def _people(session, ids: _Ids, patients: int, password_hash: str, start: date,
            audit_rows: list[_AuditRow], summary: SeedSummary) -> _People:
    created = _at(start, 8)
    users: list[dict] = []
    by_username: dict[str, int] = {}
    actors: dict[int, Actor] = {}

    def add_user(username: str, role: str, name: str, cred: str) -> int:
        uid = ids.take(User)
        users.append(dict(id=uid, username=username, full_name=name, credentials=cred, role=role,
                          password_hash=password_hash, is_active=True, failed_logins=0, locked_until=None,
                          last_login_at=None, created_at=created))
        by_username[username] = uid
        actors[uid] = Actor(uid, username, name, role, cred)
        audit_rows.append((created, None, "system", "user.create", "user", str(uid), None, f"role={role}"))
        return uid

    for username, role, name, cred in DEMO_USERS:
        add_user(username, role, name, cred)
        summary.users.append((username, role))
    extra = max(0, patients - len(DEMO_PATIENTS))
    n_therapists = -(-extra // PATIENTS_PER_THERAPIST)
    n_prescribers = -(-n_therapists // THERAPISTS_PER_PRESCRIBER)
    prescriber_ids = []
    for k in range(n_prescribers):
        name = f"{_FIRST[(7 * k + 3) % len(_FIRST)]} {_LAST[(11 * k + 5) % len(_LAST)]}"
        prescriber_ids.append(add_user(f"prescriber{k + 1:03d}", "prescriber", name,
                                       _CREDENTIALS_P[k % len(_CREDENTIALS_P)]))
    therapist_ids = []
    for k in range(n_therapists):
        name = f"{_FIRST[(13 * k + 1) % len(_FIRST)]} {_LAST[(17 * k + 2) % len(_LAST)]}"
        therapist_ids.append(add_user(f"therapist{k + 1:03d}", "therapist", name,
                                      _CREDENTIALS_T[k % len(_CREDENTIALS_T)]))
    summary.synthetic_users = n_prescribers + n_therapists
    session.execute(insert(User.__table__), users)

    names = {u["id"]: u["full_name"] for u in users}
    teams: list[dict] = []
    members: list[dict] = []
    existing = set(session.execute(select(CareTeam.name)).scalars())

    def add_team(therapist_id: int, prescriber_id: int) -> int:
        tid = ids.take(CareTeam)
        name = f"{names[therapist_id]} / {names[prescriber_id]}"
        if name in existing:
            name = f"{name} ({tid})"
        existing.add(name)
        teams.append(dict(id=tid, name=name, created_at=created))
        members.extend([dict(team_id=tid, user_id=therapist_id, added_at=created),
                        dict(team_id=tid, user_id=prescriber_id, added_at=created)])
        audit_rows.append((created, None, "system", "team.create", "care_team", str(tid), None, "members=2"))
        return tid

    mok = by_username["mokafor"]
    demo_teams = [(add_team(by_username["tsato"], mok), by_username["tsato"], mok),
                  (add_team(by_username["rbennett"], mok), by_username["rbennett"], mok)]
    synthetic = [(add_team(t, prescriber_ids[k // THERAPISTS_PER_PRESCRIBER]), t,
                  prescriber_ids[k // THERAPISTS_PER_PRESCRIBER]) for k, t in enumerate(therapist_ids)]
    session.execute(insert(CareTeam.__table__), teams)
    session.execute(insert(CareTeamMember.__table__), members)

    team_of: list[tuple[int, int, int]] = []
    for i in range(patients):
        if i < len(DEMO_PATIENTS):
            team_of.append(demo_teams[0 if i % 8 < 4 else 1])
        else:
            team_of.append(synthetic[(i - len(DEMO_PATIENTS)) // PATIENTS_PER_THERAPIST])
    return _People(by_username, actors, team_of)


# --- one patient's history ----------------------------------------------------------
#
# A history is replayed day by day, as a clinic would live it: doses, scores and notes are
# written as they happen; on review days the real engine runs on the record up to that day
# (``suggestions.run_for_patient``) and the care team acts on what it said through the real
# services (send, propose, decide, hold, resume), so every stored suggestion is what the
# engine says about the data before it, and every plan version follows from a decision.


class _Clock:
    """The services stamp rows with ``utcnow()``; while a history is replayed, "now" is the
    historical moment being replayed. Installed for the length of ``seed_demo`` only."""

    def __init__(self) -> None:
        self.now = _at(date(2000, 1, 1), 12)
        self._patched: list = []

    def install(self) -> None:
        for name, module in list(sys.modules.items()):
            if (name == "kapnotes" or name.startswith("kapnotes.")) and name != "kapnotes.timeutil" \
                    and getattr(module, "utcnow", None) is timeutil.utcnow:
                module.utcnow = self.read
                self._patched.append(module)

    def uninstall(self) -> None:
        for module in self._patched:
            module.utcnow = timeutil.utcnow
        self._patched.clear()

    def read(self) -> datetime:
        return self.now

    def at(self, moment: datetime) -> "_Clock":
        self.now = moment
        return self

    def __enter__(self) -> "_Clock":  # ``with clock.at(moment): service(...)`` reads as it runs
        return self

    def __exit__(self, *exc) -> None:
        return None


@dataclass
class _Ctx:
    """What every patient's history shares: the transaction, ids, people, clock and audit rows."""

    session: Any
    ids: _Ids
    people: _People
    seed: int
    today: date
    days: int
    clock: _Clock
    audit_rows: list[_AuditRow]
    summary: SeedSummary
    tz: Any = None


@dataclass
class _Story:
    """One patient: who they are, who treats them, and how they respond."""

    index: int
    pid: int
    rng: random.Random
    therapist: Actor
    prescriber: Actor
    start: date
    end: date
    status: str
    responder: bool
    adherence: float
    formulation: str
    baseline: int
    heavy: bool
    demo: bool
    batch: _Batch = field(default_factory=_Batch)
    plan: TreatmentPlan | None = None
    session_number: int = 0
    last_session_day: date | None = None
    doses_taken: int = 0
    held_until: date | None = None


def _patient_history(ctx: _Ctx, index: int) -> None:
    """Replay one patient's treatment from intake to today (or discharge)."""
    p = _new_patient(ctx, index)
    p.plan = _initial_plan(ctx, p)
    for day_no in range((p.end - p.start).days):
        day = p.start + timedelta(days=day_no)
        if day_no == 1 or (day_no and day_no % 14 == 0):  # intake scores, then fortnightly
            _scores_of_day(ctx, p, day)
        _story_scores(ctx, p, day)
        _dose_of_day(ctx, p, day)
        _resume_if_due(ctx, p, day)
        if _is_review_day(p, day_no):
            _review(ctx, p, day)
    if p.status == "discharged":
        _flush(ctx, p)
        with ctx.clock.at(_local(ctx, p.end, 12)):
            suggestions.set_plan_status(ctx.session, p.prescriber, p.pid, "ended", "Treatment completed; discharged.")
    else:
        _review(ctx, p, p.end, last=True)
    _flush(ctx, p)
    ctx.session.expunge_all()


def _is_review_day(p: _Story, day_no: int) -> bool:
    """The demo clinic reviews weekly. The synthetic (benchmark) clinic reviews monthly while
    titrating (the first six months), then quarterly: the same services, fewer runs, so
    thousands of patients still build in minutes."""
    if day_no == 0:
        return False
    if p.demo:
        return day_no % 7 == 0
    return day_no % (28 if day_no <= 182 else 91) == 0


def _new_patient(ctx: _Ctx, index: int) -> _Story:
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
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        dob = date(1950 + rng.randint(0, 52), rng.randint(1, 12), rng.randint(1, 28))
    registered = _at(start - timedelta(days=7), 15)
    diagnosis = "F41.1" if demo else rng.choice(("F41.1", "F41.1", "F33.1", "F43.10", "F41.9"))
    ctx.session.execute(insert(Patient.__table__), [dict(
        id=pid, mrn=f"KAP-{1001 + index}", full_name=name, date_of_birth=dob, diagnosis=diagnosis,
        status=status, care_team_id=team_id, created_at=registered, version=1)])
    ctx.audit_rows.append((registered, None, "system", "patient.create", "patient", str(pid), pid, ""))
    ctx.summary.patients += 1
    adherence = 0.99 if heavy else (0.6 if index % 9 == 5 else rng.uniform(0.82, 0.97))
    formulation = "sublingual" if heavy else ("odt" if index % 2 == 0 else rng.choice(("sublingual", "troche", "odt")))
    return _Story(index=index, pid=pid, rng=rng, therapist=ctx.people.actors[therapist_id],
                  prescriber=ctx.people.actors[prescriber_id], start=start, end=end, status=status,
                  responder=index % 4 != 3,  # one in four does not respond
                  adherence=adherence, formulation=formulation, baseline=rng.randint(13, 19), heavy=heavy, demo=demo)


def _initial_plan(ctx: _Ctx, p: _Story) -> TreatmentPlan:
    dose, interval = (50.0, 1) if p.heavy else (100.0, 7 if p.index % 3 else 3)
    with ctx.clock.at(_local(ctx, p.start, 9)):
        return plans.new_plan_version(ctx.session, p.prescriber, p.pid, _plan_input(p, dose, interval),
                                      "Initial plan after intake assessment.")


def _plan_input(p: _Story, dose: float, interval: int) -> plans.PlanInput:
    return plans.PlanInput(formulation=p.formulation, dose_mg=dose, interval_days=interval,
                           minutes_in_mouth=15 if p.formulation == "troche" else 10)


def _gad_target(p: _Story, day: date) -> float:
    """The GAD-7 the patient's course predicts: responders improve over ~2 months (and reach
    remission); a non-responder barely, and a little more above 150 mg."""
    progress = min(1.0, (day - p.start).days / 60)
    dose_now = p.plan.dose_mg if p.plan is not None else 100.0
    if p.heavy:  # a partial responder: stays on daily dosing (the benchmark's heaviest record)
        gain = 0.4
    else:
        gain = 0.75 if p.responder else (0.12 + 0.1 * max(0.0, (dose_now - 150) / 50))
    return p.baseline * (1 - min(0.8, gain) * progress)


def _scores_of_day(ctx: _Ctx, p: _Story, day: date) -> None:
    """GAD-7 every two weeks, PHQ-9 every four (what the engine needs to judge efficacy)."""
    target = _gad_target(p, day) + p.rng.uniform(-1.2, 1.2)
    total = max(0, min(21, round(target)))
    _assessment(ctx, p, "GAD-7", _spread(p.rng, total, 7), day)
    if (day - p.start).days % 28 in (0, 1):
        p_total = max(0, min(18, round(target * 0.9 + p.rng.uniform(-1, 2))))
        _assessment(ctx, p, "PHQ-9", _spread(p.rng, p_total, 9, last_zero=True), day)


def _story_scores(ctx: _Ctx, p: _Story, day: date) -> None:
    """KAP-1003's story: a PHQ-9 with item 9 answered 1 four days ago (the suicidality hold)."""
    if p.index == 2 and day == ctx.today - timedelta(days=4):
        items = _spread(p.rng, 11, 9, last_zero=True)
        items[8] = 1
        _assessment(ctx, p, "PHQ-9", items, day)


def _dose_due(ctx: _Ctx, p: _Story, day: date) -> tuple[bool, bool]:
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


def _dose_of_day(ctx: _Ctx, p: _Story, day: date) -> None:
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
        _session_notes(ctx, p, row)


def _dose_row(ctx: _Ctx, p: _Story, day: date, in_session: bool) -> dict:
    """One dose-log entry: mostly well tolerated; KAP-1005's last ten days carry 182/112."""
    rng, plan = p.rng, p.plan
    mg = plan.dose_mg
    taken = _local(ctx, day, 17 if in_session else 19) + timedelta(minutes=rng.randint(0, 59))
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


def _flush(ctx: _Ctx, p: _Story) -> None:
    """Write what happened since the last review, so the engine sees it."""
    _insert_batch(ctx.session, p.batch)
    p.batch = _Batch()


# --- reviews: the engine runs, the care team acts ------------------------------------

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


def _review(ctx: _Ctx, p: _Story, day: date, last: bool = False) -> None:
    """A review day: the engine runs on the record up to ``day``; the team acts on its result."""
    _flush(ctx, p)
    if p.plan.status != "active":
        return
    with ctx.clock.at(_local(ctx, day, 12)):
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


def _waits_in_queue(p: _Story, last: bool) -> bool:
    """Some items are still waiting today: the demo's safety stories and a few others."""
    return last and (p.index in (2, 4) or p.index % 5 in (2, 3))


def _send(ctx: _Ctx, p: _Story, row: DoseAdjustment, moment: datetime) -> None:
    if row.status == "open":  # hold/decrease/review may already be in the queue by themselves
        with ctx.clock.at(moment):
            suggestions.send_to_prescriber(ctx.session, p.therapist, row.id,
                                           note="Discussed with the client; sending per protocol.")


def _urgent(ctx: _Ctx, p: _Story, row: DoseAdjustment, day: date, last: bool) -> None:
    _send(ctx, p, row, _local(ctx, day, 13))
    if _waits_in_queue(p, last) or p.index in (2, 4):
        return
    _decide(ctx, p, row, _local(ctx, day, 16), "approve", p.rng.choice(_RATIONALES[row.action]))
    if row.action == "hold":
        plan = p.plan
        p.held_until = day + timedelta(days=max(14, 2 * plan.interval_days) + 1)


def _send_and_decide(ctx: _Ctx, p: _Story, row: DoseAdjustment, day: date, last: bool) -> None:
    """The therapist forwards the engine's change (the engine itself waits two weeks on a plan); the
    prescriber decides."""
    _send(ctx, p, row, _local(ctx, day, 13))
    if _waits_in_queue(p, last):
        return
    verdict = p.rng.random()
    if p.demo and p.index == 4 and row.action == "space_out":
        # KAP-1005 stays weekly: her story is the high blood pressure of the last ten days
        _decide(ctx, p, row, _local(ctx, day, 16), "reject", _REJECTIONS[row.action])
    elif verdict < 0.12:
        _decide(ctx, p, row, _local(ctx, day, 16), "reject", _REJECTIONS[row.action])
    elif verdict < 0.22 and row.action == "space_out" and p.plan.dose_mg > STEPS_MG[0]:
        lower = max(s for s in STEPS_MG if s < p.plan.dose_mg)
        _decide(ctx, p, row, _local(ctx, day, 16), "modify",
                "Remission; the client asks to taper, so a step down as well as spacing out.",
                dose_mg=lower, interval_days=row.proposed_interval_days)
    else:
        _decide(ctx, p, row, _local(ctx, day, 16), "approve", p.rng.choice(_RATIONALES[row.action]))


def _therapist_proposal(ctx: _Ctx, p: _Story, day: date) -> None:
    """KAP-1002 and KAP-1007: the therapist proposes a longer interval; the prescriber declines."""
    longer = [v for v in INTERVALS if v > p.plan.interval_days]
    if not longer:
        return
    with ctx.clock.at(_local(ctx, day, 13)):
        row = suggestions.propose(ctx.session, p.therapist, p.pid, p.plan.dose_mg, longer[0],
                                  "The client asks for fewer dosing days because of work travel.")
    _decide(ctx, p, row, _local(ctx, day + timedelta(days=1), 10), "reject",
            "GAD-7 is not yet in remission; keep the interval and revisit in four weeks.")


def _decide(ctx: _Ctx, p: _Story, row: DoseAdjustment, moment: datetime, decision: str, rationale: str,
            **values) -> None:
    with ctx.clock.at(moment):
        suggestions.decide(ctx.session, p.prescriber, row.id, decision, rationale, **values)
    p.plan = plans.current_plan(ctx.session, p.pid)


def _resume_if_due(ctx: _Ctx, p: _Story, day: date) -> None:
    """A held plan is resumed once the event has left the engine's safety window."""
    if p.held_until is None or day < p.held_until or p.plan.status != "held":
        return
    _flush(ctx, p)
    with ctx.clock.at(_local(ctx, day, 11)):
        suggestions.set_plan_status(ctx.session, p.prescriber, p.pid, "active",
                                    "Event assessed, vitals normal since; resuming at the same dose.")
    p.plan = plans.current_plan(ctx.session, p.pid)
    p.held_until = None


def _assessment(ctx: _Ctx, p: _Story, instrument: str, items: list[int], when: date) -> None:
    s = score(instrument, items)
    aid = ctx.ids.take(Assessment)
    created = _at(when, 14, p.rng.randint(0, 59))
    t = p.therapist
    p.batch.assessments.append(dict(
        id=aid, patient_id=p.pid, instrument=s.instrument, administered_on=when, items=items, total=s.total,
        band=s.band, item9=s.item9 if instrument == "PHQ-9" else None, loinc_panel=s.loinc_panel,
        loinc_total=s.loinc_total, session_note_id=None, entered_by_id=t.id, created_at=created, voided_at=None,
        voided_by_id=None, void_reason=None))
    ctx.audit_rows.append((created, t.id, t.username, "assessment.add", "assessment", str(aid), p.pid,
                           f"instrument={instrument}"))
    ctx.summary.assessments += 1


class _HashView:
    """The attributes ``notehash.content_hash`` reads, from a row dict."""

    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)


def _session_notes(ctx: _Ctx, p: _Story, dose: dict) -> None:
    """The signed dosing note of an in-session dose and the integration note two days later."""
    rng, ids, t = p.rng, ctx.ids, p.therapist
    ddate = dose["taken_at"].astimezone(ctx.tz).date()
    dose_view = DoseEntry(**{k: v for k, v in dose.items() if k != "version"})
    dosing = _note_row(ids, p.pid, t.id, "dosing", ddate, "16:30", "19:00", "in_person",
                       demo_dosing_fields(rng, p.session_number, dose_view), rng.choice(_FREE_TEXT), None)
    dose["session_note_id"] = dosing["id"]
    idate = min(ctx.today, ddate + timedelta(days=2))
    integration = _note_row(ids, p.pid, t.id, "integration", idate, "10:00", "10:50", "telehealth",
                            demo_integration_fields(rng), "Integration session.", dose["id"])
    p.batch.dosing_notes.append(dosing)
    p.batch.integration_notes.append(integration)
    for note in (dosing, integration):
        ctx.audit_rows.append((note["signed_at"], t.id, t.username, "note.sign", "session_note", str(note["id"]),
                               p.pid, f"type={note['note_type']}"))
        ctx.summary.notes += 1
        if rng.random() < 0.08:
            text_ = rng.choice(_ADDENDA)
            at = note["signed_at"] + timedelta(days=1, hours=rng.randint(0, 6))
            add_id = ids.take(Addendum)
            p.batch.addenda.append(dict(id=add_id, note_id=note["id"], author_id=t.id, text=text_, created_at=at,
                                        signed_at=at, content_hash=addendum_hash(note["id"], t.id, text_, at)))
            ctx.audit_rows.append((at, t.id, t.username, "addendum.create", "addendum", str(add_id), p.pid,
                                   f"note={note['id']}"))
            ctx.summary.addenda += 1


def addendum_hash(note_id: int, author_id: int, text_: str, created_at: datetime) -> str:
    """The addendum content hash, as the notes service defines it (``kapnotes.notes.addendum_hash``)."""
    try:
        from kapnotes.notes import addendum_hash as notes_addendum_hash  # noqa: PLC0415
    except ImportError:  # the notes service not installed: the same formula
        return text_hash(str(note_id), str(author_id), created_at.isoformat(), text_)
    return notes_addendum_hash(note_id=note_id, author_id=author_id, created_at=created_at, text=text_)


def _note_row(ids: _Ids, pid: int, author_id: int, note_type: str, session_date: date, start: str, end: str,
              modality: str, fields: dict, free_text: str, integrates_dose_id: int | None) -> dict:
    signed_at = _at(session_date, 21, 0)
    row = dict(id=ids.take(SessionNote), patient_id=pid, author_id=author_id, note_type=note_type, status="signed",
               session_date=session_date, start_time=start, end_time=end, modality=modality, fields=fields,
               free_text=free_text, carried_over_from_id=None, integrates_dose_id=integrates_dose_id,
               created_at=_at(session_date, 19, 30) if note_type == "dosing" else _at(session_date, 10, 55),
               updated_at=signed_at, updated_by_id=author_id, signed_at=signed_at, signed_by_id=author_id,
               content_hash=None, version=2)
    row["content_hash"] = content_hash(_HashView(row))
    return row


def _spread(rng: random.Random, total: int, n: int, last_zero: bool = False) -> list[int]:
    """Item answers (0–3 each) that add up to ``total``."""
    items = [0] * n
    slots = list(range(n - 1 if last_zero else n))
    total = min(total, 3 * len(slots))
    for _ in range(total):
        choices = [i for i in slots if items[i] < 3]
        items[rng.choice(choices)] += 1
    return items


# --- writing ------------------------------------------------------------------------


def _insert_batch(session, b: _Batch) -> None:
    """Insert what one patient recorded since the last review, in foreign-key order."""
    for model, rows in (
        (SessionNote, b.dosing_notes),
        (DoseEntry, b.doses),
        (SessionNote, b.integration_notes),
        (Addendum, b.addenda),
        (Assessment, b.assessments),
    ):
        if rows:
            session.execute(insert(model.__table__), rows)


def _stamp_service_rows(session, first_pid: int, summary: SeedSummary) -> None:
    """Rows the services wrote take their creation time from the column default (the real
    clock): give them the historical moment they were made at, and count them."""
    adj, plan = DoseAdjustment.__table__, TreatmentPlan.__table__
    session.execute(update(adj).where(adj.c.patient_id >= first_pid).values(created_at=adj.c.as_of))
    session.execute(update(plan).where(plan.c.patient_id >= first_pid).values(created_at=plan.c.effective_from))
    summary.adjustments = session.execute(
        select(func.count()).select_from(adj).where(adj.c.patient_id >= first_pid)).scalar()
    summary.plan_versions = session.execute(
        select(func.count()).select_from(plan).where(plan.c.patient_id >= first_pid)).scalar()


def _append_audit_chain(session, rows: list[_AuditRow]) -> int:
    """Append the history's events in time order, chained exactly as ``audit.record`` does."""
    lock_for_append(session, audit._AUDIT_LOCK_KEY)  # noqa: SLF001 - same chain, same lock
    t = AuditEvent.__table__
    prev = session.execute(select(t.c.hash).order_by(t.c.id.desc()).limit(1)).scalar() or audit.GENESIS_HASH
    next_id = (session.execute(select(func.max(t.c.id))).scalar() or 0) + 1
    ordered = sorted(enumerate(rows), key=lambda r: (r[1][0], r[0]))
    out: list[dict[str, Any]] = []
    for _, (at, actor_id, username, action, record_type, record_id, patient_id, detail) in ordered:
        row = dict(id=next_id, at=at, actor_id=actor_id, actor_username=username[:64], action=action,
                   record_type=record_type, record_id=record_id, patient_id=patient_id, detail=detail[:255],
                   prev_hash=prev, hash="")
        row["hash"] = digest = audit._digest(prev, _HashView(row))  # noqa: SLF001 - the one chain definition
        out.append(row)
        prev = digest
        next_id += 1
        if len(out) >= 20000:
            session.execute(insert(t), out)
            out = []
    if out:
        session.execute(insert(t), out)
    return len(ordered)


def _fix_sequences(session) -> None:
    """PostgreSQL: move each id sequence past the explicit ids written above."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for model in (User, CareTeam, Patient, DoseEntry, Assessment, SessionNote, Addendum, AuditEvent):
        name = model.__tablename__
        session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
        ))
