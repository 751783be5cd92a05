"""The clinicians and care teams: the demo sign-ins, and for a clinic-scale seed about 25
patients per synthetic therapist and 4 therapists per prescriber (so a demo clinician's
caseload is the same in a clinic of 20 and of 2,000).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import insert, select

from kapnotes.actor import Actor
from kapnotes.models import CareTeam, CareTeamMember, User
from kapnotes.seed.context import AuditRow, Ids, People, SeedSummary, utc_at
from kapnotes.seed.demo import (
    DEMO_PATIENTS,
    DEMO_USERS,
    FIRST_NAMES,
    LAST_NAMES,
    PATIENTS_PER_THERAPIST,
    PRESCRIBER_CREDENTIALS,
    THERAPIST_CREDENTIALS,
    THERAPISTS_PER_PRESCRIBER,
)


def build_people(session, ids: Ids, patients: int, password_hash: str, start: date,
            audit_rows: list[AuditRow], summary: SeedSummary) -> People:
    created = utc_at(start, 8)
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
        name = f"{FIRST_NAMES[(7 * k + 3) % len(FIRST_NAMES)]} {LAST_NAMES[(11 * k + 5) % len(LAST_NAMES)]}"
        prescriber_ids.append(add_user(f"prescriber{k + 1:03d}", "prescriber", name,
                                       PRESCRIBER_CREDENTIALS[k % len(PRESCRIBER_CREDENTIALS)]))
    therapist_ids = []
    for k in range(n_therapists):
        name = f"{FIRST_NAMES[(13 * k + 1) % len(FIRST_NAMES)]} {LAST_NAMES[(17 * k + 2) % len(LAST_NAMES)]}"
        therapist_ids.append(add_user(f"therapist{k + 1:03d}", "therapist", name,
                                      THERAPIST_CREDENTIALS[k % len(THERAPIST_CREDENTIALS)]))
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
    return People(by_username, actors, team_of)
