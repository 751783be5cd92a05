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
every 15 days (≈1,100 dose entries, ≈150 signed notes and 80 assessments over 3 years).

Everything is written in bulk (Core ``executemany``) in ONE transaction with explicit ids:
2,000 patients × 3 years take about a minute on SQLite. One Argon2id hash of the demo
password is reused for every account. The audit events of the history (who created which
dose, assessment, note, plan version, decision) are back-dated to when it happened and
hash-chained onto the existing chain exactly as ``kapnotes.audit`` does, so
``python -m kapnotes verify-audit`` passes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.engine import Engine

from kapnotes import audit, auth
from kapnotes.db import lock_for_append, session_scope
from kapnotes.errors import ValidationError
from kapnotes.models import (
    Addendum,
    AuditEvent,
    Assessment,
    CareTeam,
    CareTeamMember,
    DoseAdjustment,
    DoseEntry,
    Patient,
    SessionNote,
    TreatmentPlan,
    User,
)
from kapnotes.notehash import content_hash, text_hash
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
CHUNK = 100  # patients generated and inserted per batch (bounds memory)

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


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), timezone.utc)


class _Ids:
    """Explicit primary keys, so rows can point at each other before they are inserted."""

    def __init__(self, session) -> None:
        self._next: dict[str, int] = {}
        for model in (User, CareTeam, Patient, TreatmentPlan, DoseEntry, Assessment, SessionNote, Addendum,
                      DoseAdjustment):
            top = session.execute(select(func.max(model.__table__.c.id))).scalar()
            self._next[model.__tablename__] = (top or 0) + 1

    def take(self, model) -> int:
        name = model.__tablename__
        value = self._next[name]
        self._next[name] = value + 1
        return value


@dataclass
class _People:
    by_username: dict[str, int]
    teams: list[tuple[int, int, int]]  # per patient index: (team_id, therapist_id, prescriber_id)


@dataclass
class _Batch:
    patients: list[dict] = field(default_factory=list)
    adjustments: list[dict] = field(default_factory=list)
    plans: list[dict] = field(default_factory=list)
    dosing_notes: list[dict] = field(default_factory=list)
    doses: list[dict] = field(default_factory=list)
    integration_notes: list[dict] = field(default_factory=list)
    addenda: list[dict] = field(default_factory=list)
    assessments: list[dict] = field(default_factory=list)
    adjustment_links: list[dict] = field(default_factory=list)


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
        for first in range(0, patients, CHUNK):
            batch = _Batch()
            for i in range(first, min(patients, first + CHUNK)):
                _patient_history(batch, ids, people, seed, i, today, days, audit_rows, summary)
            _insert_batch(session, batch)
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

    def add_user(username: str, role: str, name: str, cred: str) -> int:
        uid = ids.take(User)
        users.append(dict(id=uid, username=username, full_name=name, credentials=cred, role=role,
                          password_hash=password_hash, is_active=True, failed_logins=0, locked_until=None,
                          last_login_at=None, created_at=created))
        by_username[username] = uid
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
    return _People(by_username, team_of)


# --- one patient's history ----------------------------------------------------------


def _patient_history(b: _Batch, ids: _Ids, people: _People, seed: int, index: int, today: date, days: int,
                     audit_rows: list[_AuditRow], summary: SeedSummary) -> None:
    rng = random.Random(f"kapnotes-demo:{seed}:{index}")
    team_id, therapist_id, prescriber_id = people.teams[index]
    t_name = _username(people, therapist_id)
    p_name = _username(people, prescriber_id)
    heavy = index == 0
    demo = index < len(DEMO_PATIENTS)

    # When this patient's treatment started and (for a few) ended.
    if demo:
        span = days
    else:
        span = rng.randint(min(days, 56), days)  # the clinic grew over the years
    start = today - timedelta(days=span)
    end = today
    status = "active"
    if not demo and span > 240 and rng.random() < 0.12:
        end = start + timedelta(days=rng.randint(150, span - 60))
        status = "discharged"
    elif not demo and rng.random() < 0.04:
        status = "paused"

    pid = ids.take(Patient)
    if demo:
        name, dob = DEMO_PATIENTS[index]
    else:
        name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
        dob = date(1950 + rng.randint(0, 52), rng.randint(1, 12), rng.randint(1, 28))
    mrn = f"KAP-{1001 + index}"
    registered = _at(start - timedelta(days=7), 15)
    b.patients.append(dict(id=pid, mrn=mrn, full_name=name, date_of_birth=dob,
                           diagnosis=rng.choice(("F41.1", "F41.1", "F33.1", "F43.10", "F41.9")) if not demo else "F41.1",
                           status=status, care_team_id=team_id, created_at=registered, version=1))
    audit_rows.append((registered, None, "system", "patient.create", "patient", str(pid), pid, ""))
    summary.patients += 1

    responder = index % 4 != 3  # one in four does not respond
    adherence = 0.99 if heavy else (0.6 if index % 9 == 5 else rng.uniform(0.82, 0.97))
    formulation = "sublingual" if heavy else ("odt" if index % 2 == 0 else rng.choice(("sublingual", "troche", "odt")))
    interval = 1 if heavy else (7 if index % 3 else 3)
    dose = 50.0 if heavy else 100.0
    baseline = rng.randint(13, 19)

    # --- plan versions and the adjustments that produced them -----------------------
    plan_spans: list[tuple[datetime, dict]] = []  # (effective_from, plan row)

    def new_plan(effective: datetime, dose_mg: float, interval_days: int, rationale: str,
                 adjustment_id: int | None = None, plan_status: str = "active") -> dict:
        row = dict(id=ids.take(TreatmentPlan), patient_id=pid, version_number=len(plan_spans) + 1,
                   formulation=formulation, dose_mg=float(dose_mg), interval_days=interval_days,
                   minutes_in_mouth=10 if formulation != "troche" else 15, administration="spit",
                   fasting_instructions="No food for 3 hours and no drink for 1 hour before dosing.",
                   instructions=None, status=plan_status, effective_from=effective, created_at=effective,
                   approved_by_id=prescriber_id, rationale=rationale, adjustment_id=adjustment_id)
        b.plans.append(row)
        plan_spans.append((effective, row))
        audit_rows.append((effective, prescriber_id, p_name, "plan.version", "treatment_plan", str(row["id"]), pid,
                           f"v{row['version_number']} status={plan_status}"))
        summary.plan_versions += 1
        return row

    def gad_at(day_no: int, dose_now: float) -> float:
        progress = min(1.0, day_no / 120)
        gain = 0.65 if responder else (0.15 + 0.1 * max(0, (dose_now - 150) / 50))
        return baseline * (1 - min(0.8, gain) * progress)

    plan = new_plan(_at(start, 9), dose, interval, "Initial plan after intake assessment.")
    review_every = 42
    day_no = review_every
    adjust_points: list[tuple[int, dict]] = []
    while day_no < (end - start).days:
        when = _at(start + timedelta(days=day_no), 16, rng.randint(0, 59))
        gad = gad_at(day_no, plan["dose_mg"])
        improvement = (baseline - gad) / baseline
        adj_id = ids.take(DoseAdjustment)
        kind = "proposal" if rng.random() < 0.25 else "suggestion"
        creator = therapist_id if kind == "proposal" else None
        base = dict(id=adj_id, patient_id=pid, kind=kind, plan_id=None, proposed_dose_mg=None,
                    proposed_interval_days=None, protocol_name="default" if kind == "suggestion" else None,
                    protocol_hash=None, as_of=when, created_by_id=creator, created_at=when,
                    therapist_note=None, source_note_id=None, sent_by_id=therapist_id, sent_at=when,
                    decided_by_id=None, decided_at=None, decision_rationale=None, decided_dose_mg=None,
                    decided_interval_days=None, resulting_plan_id=None, version=1,
                    facts={"gad7_baseline": baseline, "gad7_current": round(gad), "dose_mg": plan["dose_mg"],
                           "interval_days": plan["interval_days"]})
        last_point = day_no + review_every >= (end - start).days
        higher = [s for s in STEPS_MG if s > plan["dose_mg"]]
        longer = [v for v in INTERVALS if v > plan["interval_days"]]
        if improvement < 0.25 and higher:
            action, new_dose, new_interval = "increase", float(higher[0]), plan["interval_days"]
            flags = ["non_response"]
            reason = (f"GAD-7 {baseline} → {round(gad)} ({-improvement * 100:.0f} %) over {day_no // 7} weeks at "
                      f"{plan['dose_mg']:g} mg, below the 25 % threshold")
        elif round(gad) < 5 and longer and plan["interval_days"] > 1:
            action, new_dose, new_interval = "space_out", plan["dose_mg"], longer[0]
            flags = ["remission"]
            reason = f"GAD-7 {round(gad)}, below 5 on two readings at least 14 days apart"
        else:
            action, new_dose, new_interval = "continue", None, None
            flags = ["response" if improvement >= 0.5 else "partial_response"]
            reason = (f"GAD-7 {baseline} → {round(gad)} ({-improvement * 100:.0f} %) at {plan['dose_mg']:g} mg")
        if action == "continue":  # therapists propose changes; "continue" comes from the engine
            kind, creator = "suggestion", None
            base.update(kind=kind, created_by_id=None, protocol_name="default")
        base.update(action=action, proposed_dose_mg=new_dose, proposed_interval_days=new_interval, flags=flags,
                    reasons=[{"code": flags[0], "text": reason}])
        if kind == "proposal":
            base["therapist_note"] = "Client and I discussed the trend; proposing per protocol."
        audit_rows.append((when, creator, t_name if creator else "system", "adjustment.create", "dose_adjustment",
                           str(adj_id), pid, f"kind={kind} action={action}"))
        decided = when + timedelta(days=rng.randint(1, 4), hours=rng.randint(0, 5))
        decide = not (last_point and index % 5 in (2, 3)) and decided.date() < today  # some stay in the queue
        if action == "continue":  # the engine's "continue": replaced by the next run, never sent
            base.update(status="superseded", sent_by_id=None, sent_at=None)
            if last_point and not decide:
                base.update(status="pending", sent_by_id=therapist_id, sent_at=when)
            b.adjustments.append(base)
            adjust_points.append((day_no, base))
            summary.adjustments += 1
            day_no += review_every
            continue
        if not decide:
            base["status"] = "pending"
            b.adjustments.append(base)
            summary.adjustments += 1
            break
        verdict = rng.random()
        if verdict < 0.12:
            base.update(status="rejected", decided_by_id=prescriber_id, decided_at=decided,
                        decision_rationale="Blood pressure trend needs another two weeks before a change.")
            audit_rows.append((decided, prescriber_id, p_name, "adjustment.decide", "dose_adjustment", str(adj_id),
                               pid, "status=rejected"))
        else:
            modified = verdict < 0.25 and action == "increase" and new_dose - plan["dose_mg"] > 25
            final_dose = plan["dose_mg"] + 25 if modified else new_dose
            base.update(status="modified" if modified else "approved", decided_by_id=prescriber_id,
                        decided_at=decided, decided_dose_mg=final_dose, decided_interval_days=new_interval,
                        decision_rationale=("Smaller step: tolerability." if modified else "Agree with the suggestion."))
            audit_rows.append((decided, prescriber_id, p_name, "adjustment.decide", "dose_adjustment", str(adj_id),
                               pid, f"status={base['status']}"))
            previous = plan
            plan = new_plan(decided, final_dose, new_interval, reason + ".", adjustment_id=adj_id)
            b.adjustment_links.append(dict(b_id=adj_id, b_plan=previous["id"], b_result=plan["id"]))
        b.adjustments.append(base)
        adjust_points.append((day_no, base))
        summary.adjustments += 1
        day_no += review_every
    if status == "discharged":
        new_plan(_at(end, 12), plan["dose_mg"], plan["interval_days"], "Treatment completed; discharged.",
                 plan_status="ended")
    for _day, adj in adjust_points:  # the plan in force when each item was raised
        if adj["id"] not in {link["b_id"] for link in b.adjustment_links}:
            b.adjustment_links.append(dict(b_id=adj["id"], b_plan=_plan_at(plan_spans, adj["as_of"])["id"],
                                           b_result=None))
    for adj in b.adjustments:
        if adj["status"] == "pending" and not any(link["b_id"] == adj["id"] for link in b.adjustment_links):
            b.adjustment_links.append(dict(b_id=adj["id"], b_plan=_plan_at(plan_spans, adj["as_of"])["id"],
                                           b_result=None))

    # --- doses ---------------------------------------------------------------------------
    session_every = 15 if heavy else None
    day = start + timedelta(days=1)
    n_dose = 0
    in_session_count = 0
    session_number = 0
    last_session_day: date | None = None
    while day < end:
        current = _plan_at(plan_spans, _at(day, 23))
        if current["status"] != "active":
            break
        step = current["interval_days"]
        if heavy:
            in_session = last_session_day is None or (day - last_session_day).days >= session_every
        else:
            k = max(1, round(35 / step))
            in_session = n_dose < 6 if step >= 7 else n_dose < 3
            in_session = in_session or (n_dose % k == 0)
        if rng.random() < adherence or in_session:
            did = ids.take(DoseEntry)
            progress = min(1.0, (day - start).days / 120)
            high_bp = index == 4 and day > today - timedelta(days=10)
            sys_pre = rng.randint(110, 138)
            mg = current["dose_mg"]
            taken = _at(day, 17 if in_session else 19, rng.randint(0, 59))
            context = "in_session" if in_session else rng.choice(("home", "home", "home_with_sitter"))
            nausea = rng.choice((0, 0, 0, 1, 1, 2)) if rng.random() > 0.03 else 3
            events = []
            if rng.random() < 0.08:
                events.append(rng.choice(("dizziness", "headache", "nausea", "blurred_vision")))
            if in_session and rng.random() < 0.004 and not demo:
                events.append("fainting")
            voided = rng.random() < 0.004 and not in_session
            row = dict(
                id=did, patient_id=pid, plan_id=current["id"], taken_at=taken, dose_mg=mg,
                formulation=current["formulation"], administration="spit", context=context,
                anxiety_before=rng.randint(4, 8), anxiety_after=max(0, rng.randint(1, 4) - round(progress)),
                dissociation=min(10, max(0, round(mg / 40) + rng.randint(-1, 3))), nausea=nausea,
                vomited=nausea == 3 and rng.random() < 0.3,
                bp_systolic_pre=sys_pre, bp_diastolic_pre=rng.randint(70, 88),
                bp_systolic_post=182 if high_bp else sys_pre + rng.randint(4, 18),
                bp_diastolic_post=112 if high_bp else rng.randint(76, 94),
                heart_rate=rng.randint(62, 92), adverse_events=";".join(events),
                notes=None if rng.random() < 0.8 else rng.choice(("Felt calm afterwards.", "Slept well.",
                                                                  "Mild headache in the evening.")),
                source="session" if in_session else "manual", import_batch_id=None, session_note_id=None,
                entered_by_id=therapist_id, created_at=taken + timedelta(hours=2),
                voided_at=taken + timedelta(days=1) if voided else None,
                voided_by_id=therapist_id if voided else None,
                void_reason="Entered twice by mistake." if voided else None, version=2 if voided else 1,
            )
            b.doses.append(row)
            audit_rows.append((row["created_at"], therapist_id, t_name, "dose.add", "dose_entry", str(did), pid,
                               f"source={row['source']}"))
            if voided:
                audit_rows.append((row["voided_at"], therapist_id, t_name, "dose.void", "dose_entry", str(did), pid, ""))
            summary.doses += 1
            if in_session:
                session_number += 1
                in_session_count += 1
                last_session_day = day
                _session_notes(b, ids, rng, row, session_number, pid, therapist_id, t_name, today, audit_rows,
                               summary)
            n_dose += 1
        day += timedelta(days=step)

    # --- assessments: GAD-7 every 2–4 weeks, PHQ-9 at every other visit -------------------
    d = 0
    k = 0
    span_days = (end - start).days
    while d < span_days:
        when = start + timedelta(days=d)
        dose_now = _plan_at(plan_spans, _at(when, 12))["dose_mg"]
        target = gad_at(d, dose_now) + rng.uniform(-1.2, 1.2)
        total = max(0, min(21, round(target)))
        _assessment(b, ids, rng, pid, therapist_id, t_name, "GAD-7", _spread(rng, total, 7), when, audit_rows, summary)
        if heavy or k % 2 == 0:
            p_total = max(0, min(27, round(target * 0.9 + rng.uniform(-1, 2))))
            p_items = _spread(rng, p_total, 9, last_zero=True)
            if index == 2 and d + 28 >= span_days:  # a recent positive item 9: the safety flag
                p_items[8] = 1
            _assessment(b, ids, rng, pid, therapist_id, t_name, "PHQ-9", p_items, when, audit_rows, summary)
        k += 1
        d += 27 if heavy else rng.randint(14, 28)


def _username(people: _People, user_id: int) -> str:
    for name, uid in people.by_username.items():
        if uid == user_id:
            return name
    raise KeyError(user_id)


def _plan_at(plan_spans: list[tuple[datetime, dict]], when: datetime) -> dict:
    current = plan_spans[0][1]
    for effective, row in plan_spans:
        if effective <= when:
            current = row
    return current


def _assessment(b: _Batch, ids: _Ids, rng: random.Random, pid: int, therapist_id: int, t_name: str,
                instrument: str, items: list[int], when: date, audit_rows: list[_AuditRow],
                summary: SeedSummary) -> None:
    s = score(instrument, items)
    aid = ids.take(Assessment)
    created = _at(when, 14, rng.randint(0, 59))
    b.assessments.append(dict(id=aid, patient_id=pid, instrument=s.instrument, administered_on=when, items=items,
                              total=s.total, band=s.band, item9=s.item9 if instrument == "PHQ-9" else None,
                              loinc_panel=s.loinc_panel, loinc_total=s.loinc_total, session_note_id=None,
                              entered_by_id=therapist_id, created_at=created, voided_at=None, voided_by_id=None,
                              void_reason=None))
    audit_rows.append((created, therapist_id, t_name, "assessment.add", "assessment", str(aid), pid,
                       f"instrument={instrument}"))
    summary.assessments += 1


class _HashView:
    """The attributes ``notehash.content_hash`` reads, from a row dict."""

    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)


def _session_notes(b: _Batch, ids: _Ids, rng: random.Random, dose: dict, number: int, pid: int,
                   therapist_id: int, t_name: str, today: date, audit_rows: list[_AuditRow],
                   summary: SeedSummary) -> None:
    ddate = dose["taken_at"].date()
    dose_view = DoseEntry(**{k: v for k, v in dose.items() if k != "version"})
    dosing = _note_row(ids, pid, therapist_id, "dosing", ddate, "16:30", "19:00", "in_person",
                       demo_dosing_fields(rng, number, dose_view), rng.choice(_FREE_TEXT), None)
    dose["session_note_id"] = dosing["id"]
    idate = min(today, ddate + timedelta(days=2))
    integration = _note_row(ids, pid, therapist_id, "integration", idate, "10:00", "10:50", "telehealth",
                            demo_integration_fields(rng), "Integration session.", dose["id"])
    b.dosing_notes.append(dosing)
    b.integration_notes.append(integration)
    for note in (dosing, integration):
        audit_rows.append((note["signed_at"], therapist_id, t_name, "note.sign", "session_note", str(note["id"]), pid,
                           f"type={note['note_type']}"))
        summary.notes += 1
        if rng.random() < 0.08:
            text_ = rng.choice(_ADDENDA)
            at = note["signed_at"] + timedelta(days=1, hours=rng.randint(0, 6))
            add_id = ids.take(Addendum)
            b.addenda.append(dict(id=add_id, note_id=note["id"], author_id=therapist_id, text=text_, created_at=at,
                                  signed_at=at, content_hash=addendum_hash(note["id"], therapist_id, text_, at)))
            audit_rows.append((at, therapist_id, t_name, "addendum.create", "addendum", str(add_id), pid,
                               f"note={note['id']}"))
            summary.addenda += 1


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
    """Insert one batch in foreign-key order (the two reference cycles are closed by UPDATEs)."""
    for model, rows in (
        (Patient, b.patients),
        (DoseAdjustment, b.adjustments),  # plan_id / resulting_plan_id filled in below
        (TreatmentPlan, b.plans),
        (SessionNote, b.dosing_notes),
        (DoseEntry, b.doses),
        (SessionNote, b.integration_notes),
        (Addendum, b.addenda),
        (Assessment, b.assessments),
    ):
        if rows:
            session.execute(insert(model.__table__), rows)
    if b.adjustment_links:
        t = DoseAdjustment.__table__
        session.execute(
            update(t).where(t.c.id == bindparam("b_id")).values(plan_id=bindparam("b_plan"),
                                                                  resulting_plan_id=bindparam("b_result")),
            b.adjustment_links,
        )


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
    for model in (User, CareTeam, Patient, TreatmentPlan, DoseEntry, Assessment, SessionNote, Addendum,
                  DoseAdjustment, AuditEvent):
        name = model.__tablename__
        session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
        ))
