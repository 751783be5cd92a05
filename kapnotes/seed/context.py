"""What a replay shares: the summary it fills, explicit ids, the pending rows, the replay clock,
and the ``Ctx``/``Story`` every step of a patient's history receives.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import Any

from sqlalchemy import func, select

from kapnotes import timeutil
from kapnotes.actor import Actor
from kapnotes.models import Addendum, Assessment, CareTeam, DoseEntry, Patient, SessionNote, TreatmentPlan, User
from kapnotes.seed.demo import DEMO_PASSWORD, HEAVIEST_MRN


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


def clinic_time(ctx, day: date, hour: int) -> datetime:
    """A moment of the clinic's day (the engine and the services count days in the clinic's zone)."""
    return datetime.combine(day, time(hour), ctx.tz).astimezone(timezone.utc)


def utc_at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), timezone.utc)


class Ids:
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
class People:
    by_username: dict[str, int]
    actors: dict[int, Actor]
    teams: list[tuple[int, int, int]]  # per patient index: (team_id, therapist_id, prescriber_id)


@dataclass
class Batch:
    dosing_notes: list[dict] = field(default_factory=list)
    doses: list[dict] = field(default_factory=list)
    integration_notes: list[dict] = field(default_factory=list)
    addenda: list[dict] = field(default_factory=list)
    assessments: list[dict] = field(default_factory=list)


# (at, actor_id, actor_username, action, record_type, record_id, patient_id, detail)
AuditRow = tuple[datetime, int | None, str, str, str, str | None, int | None, str]


class Clock:
    """The services stamp rows with ``utcnow()``; while a history is replayed, "now" is the
    historical moment being replayed. Installed for the length of ``seed_demo`` only."""

    def __init__(self) -> None:
        self.now = utc_at(date(2000, 1, 1), 12)
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

    def at(self, moment: datetime) -> "Clock":
        self.now = moment
        return self

    def __enter__(self) -> "Clock":  # ``with clock.at(moment): service(...)`` reads as it runs
        return self

    def __exit__(self, *exc) -> None:
        return None


@dataclass
class Ctx:
    """What every patient's history shares: the transaction, ids, people, clock and audit rows."""

    session: Any
    ids: Ids
    people: People
    seed: int
    today: date
    days: int
    clock: Clock
    audit_rows: list[AuditRow]
    summary: SeedSummary
    tz: Any = None


@dataclass
class Story:
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
    batch: Batch = field(default_factory=Batch)
    plan: TreatmentPlan | None = None
    session_number: int = 0
    last_session_day: date | None = None
    doses_taken: int = 0
    held_until: date | None = None


class HashView:
    """The attributes ``notehash.content_hash`` reads, from a row dict."""

    def __init__(self, row: dict) -> None:
        self.__dict__.update(row)
