"""Test data: a small clinic with two care teams, so scoping has something to get wrong.

Team A: therapist ``tina`` + prescriber ``paul`` — patients A1, A2.
Team B: therapist ``theo`` + prescriber ``pia``  — patient B1.
Admin ``ada`` is on no team.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlmodel import Session

from kapnotes import auth, patients
from kapnotes.actor import Actor, actor_of
from kapnotes.db import session_scope
from kapnotes.dosing import plans

PASSWORD = "correct-horse-battery"


@dataclass
class Clinic:
    tina: Actor  # therapist, team A
    paul: Actor  # prescriber, team A
    theo: Actor  # therapist, team B
    pia: Actor  # prescriber, team B
    ada: Actor  # admin
    a1: int
    a2: int
    b1: int


def make_clinic(engine, with_plans: bool = True) -> Clinic:
    with session_scope(engine) as s:
        users = {}
        for username, role, name, cred in (
            ("tina", "therapist", "Tina Torres", "LMFT"),
            ("paul", "prescriber", "Paul Park", "MD"),
            ("theo", "therapist", "Theo Tran", "PsyD"),
            ("pia", "prescriber", "Pia Patel", "NP"),
            ("ada", "admin", "Ada Admin", ""),
        ):
            users[username] = actor_of(auth.create_user(s, None, username, role, name, PASSWORD, cred))
        a1 = patients.add_patient(s, None, "A-001", "Alice Able", date(1985, 1, 2), "tina", "paul").id
        a2 = patients.add_patient(s, None, "A-002", "Aaron Ames", date(1990, 5, 6), "tina", "paul").id
        b1 = patients.add_patient(s, None, "B-001", "Bea Brook", date(1977, 7, 8), "theo", "pia").id
        if with_plans:
            start = datetime.now(timezone.utc) - timedelta(days=60)
            for pid, prescriber in ((a1, users["paul"]), (a2, users["paul"]), (b1, users["pia"])):
                plans.new_plan_version(
                    s, prescriber, pid, plans.PlanInput("odt", 150, 7), "Initial plan.", effective_from=start
                )
    return Clinic(users["tina"], users["paul"], users["theo"], users["pia"], users["ada"], a1, a2, b1)


def open_session(engine) -> Session:
    return Session(engine, expire_on_commit=False)
