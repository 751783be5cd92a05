"""Administration: accounts and care teams. No clinical content passes through here."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlmodel import Session, col, func, select

from kapnotes import audit, auth
from kapnotes.access import require_role
from kapnotes.actor import Actor
from kapnotes.errors import ValidationError
from kapnotes.models import CareTeam, CareTeamMember, Patient, Role, User
from kapnotes.timeutil import utcnow


@dataclass(frozen=True)
class UserRow:
    id: int
    username: str
    full_name: str
    credentials: str
    role: str
    is_active: bool
    locked: bool
    last_login_at: object
    email: str | None = None
    mfa: bool = False  # a second factor is on
    must_change_password: bool = False


PAGE_SIZE = 50  # rows an admin list shows at once; a search narrows it (keeps the pages flat in size)


def _name_filter(q, term: str, *columns):
    term = term.strip().lower()
    if not term:
        return q
    cond = None
    for c in columns:
        c_cond = func.lower(c).contains(term, autoescape=True)
        cond = c_cond if cond is None else cond | c_cond
    return q.where(cond)


def list_users(session: Session, actor: Actor, search: str = "", limit: int | None = None) -> list[UserRow]:
    """Accounts by role and username; ``search`` matches username or name."""
    require_role(actor, Role.admin)
    now = utcnow()
    q = _name_filter(select(User), search, User.username, User.full_name).order_by(User.role, User.username)
    users = session.exec(q.limit(limit) if limit else q).all()
    return [
        UserRow(u.id, u.username, u.full_name, u.credentials, u.role, u.is_active,
                bool(u.locked_until and u.locked_until > now), u.last_login_at, u.email,
                u.totp_enabled_at is not None, u.must_change_password)
        for u in users
    ]


def count_users(session: Session, actor: Actor, search: str = "") -> int:
    require_role(actor, Role.admin)
    return session.exec(_name_filter(select(func.count()).select_from(User), search, User.username,
                                     User.full_name)).one()


def _is_last_active_admin(session: Session, user: User) -> bool:
    if user.role != Role.admin or not user.is_active:
        return False
    others = session.exec(select(func.count()).select_from(User).where(
        User.role == Role.admin, col(User.is_active).is_(True), User.id != user.id)).one()
    return others == 0


def set_active(session: Session, actor: Actor, user_id: int, active: bool) -> None:
    require_role(actor, Role.admin)
    if user_id == actor.id and not active:
        raise ValidationError({"user": "You cannot deactivate your own account."})
    user = session.get(User, user_id)
    if user is None:
        raise ValidationError({"user": "No such user."})
    if not active and _is_last_active_admin(session, user):
        raise ValidationError({"user": "This is the last active administrator; "
                                       "make someone else an administrator first."})
    user.is_active = active
    session.add(user)
    if not active:
        auth.revoke_sessions(session, user_id, "deactivated")
    audit.record(session, actor, "user.activate" if active else "user.deactivate", "user", user_id)


# one address: something@domain.tld, no spaces, commas or angle brackets (a shape check, not delivery)
EMAIL_RE = re.compile(r"^[^@\s<>,;\"()\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


def validate_email(address: str | None) -> str | None:
    """An optional e-mail address: blank means none; otherwise one plausible address."""
    address = (address or "").strip()
    if not address:
        return None
    if len(address) > 254 or not EMAIL_RE.match(address):
        raise ValidationError({"email": f"{address!r} is not an e-mail address such as name@clinic.example."})
    return address


def set_email(session: Session, actor: Actor | None, user_id: int, address: str | None) -> str | None:
    """Set or clear where a user's urgent-item notices go. ``actor`` None: the operator's CLI.

    The audit records that it changed (set or cleared), not the address.
    """
    if actor is not None:
        require_role(actor, Role.admin)
    address = validate_email(address)
    user = session.get(User, user_id)
    if user is None:
        raise ValidationError({"user": "No such user."})
    if user.email == address:
        return address
    user.email = address
    session.add(user)
    audit.record(session, actor, "user.email", "user", user_id, detail="set" if address else "cleared")
    return address


def unlock(session: Session, actor: Actor, user_id: int) -> None:
    require_role(actor, Role.admin)
    user = session.get(User, user_id)
    if user is None:
        raise ValidationError({"user": "No such user."})
    user.locked_until = None
    user.failed_logins = 0
    session.add(user)
    audit.record(session, actor, "user.unlock", "user", user_id)


def reset_password(session: Session, actor: Actor, user_id: int) -> str:
    """A one-time temporary password, returned to show the admin once: the user must choose a
    new one at their next sign-in, and every session they have ends now."""
    require_role(actor, Role.admin)
    user = session.get(User, user_id)
    if user is None:
        raise ValidationError({"user": "No such user."})
    temporary = auth.temporary_password()
    user.password_hash = auth.hash_password(temporary)
    user.must_change_password = True
    user.failed_logins = 0
    user.locked_until = None
    session.add(user)
    auth.revoke_sessions(session, user_id, "password_reset")
    audit.record(session, actor, "user.password_reset", "user", user_id)
    return temporary


def update_user(session: Session, actor: Actor, user_id: int, full_name: str, credentials: str, role: str) -> None:
    """Edit a user's name, credentials and role. A role change is audited (from/to); the last
    active administrator keeps the role, and a care-team member cannot become an administrator."""
    require_role(actor, Role.admin)
    user = session.get(User, user_id)
    if user is None:
        raise ValidationError({"user": "No such user."})
    full_name, credentials = full_name.strip(), credentials.strip()
    _check_user_fields(full_name, credentials, role)
    old_role = user.role
    if role != old_role:
        _check_role_change(session, user, role)
    changed = [what for what, old, new in (("name", user.full_name, full_name),
                                           ("credentials", user.credentials, credentials)) if old != new]
    user.full_name, user.credentials, user.role = full_name, credentials, role
    session.add(user)
    session.flush()
    if changed:
        audit.record(session, actor, "user.edit", "user", user_id, detail=",".join(changed))
    if role != old_role:
        audit.record(session, actor, "user.role_change", "user", user_id, detail=f"from={old_role} to={role}")
        auth.revoke_sessions(session, user_id, "role_change")  # pages and menus follow the new role at once


def _check_user_fields(full_name: str, credentials: str, role: str) -> None:
    errors: dict[str, str] = {}
    if role not in {r.value for r in Role}:
        errors["role"] = "Choose therapist, prescriber or admin."
    if not full_name:
        errors["full_name"] = "Enter the person's full name."
    elif len(full_name) > 200:
        errors["full_name"] = "A full name can be at most 200 characters."
    if len(credentials) > 64:
        errors["credentials"] = "Credentials can be at most 64 characters (e.g. LMFT, MD)."
    if errors:
        raise ValidationError(errors)


def _check_role_change(session: Session, user: User, role: str) -> None:
    """A new role must leave an active administrator, and every team with patients its clinicians."""
    old_role = user.role
    if old_role == Role.admin and _is_last_active_admin(session, user):
        raise ValidationError({"role": "This is the last active administrator; "
                                       "make someone else an administrator first."})
    teams = session.exec(select(CareTeamMember.team_id).where(CareTeamMember.user_id == user.id)).all()
    if teams and role == Role.admin:
        raise ValidationError({"role": "Administrators cannot be on care teams: "
                                       "remove this person from their teams first."})
    for team_id in teams:
        has_patients = session.exec(select(Patient.id).where(Patient.care_team_id == team_id).limit(1)).first()
        if has_patients and _team_roles(session, team_id).count(old_role) <= 1:
            team = session.get(CareTeam, team_id)
            raise ValidationError({"role": f"{team.name} has patients and needs at least one {old_role}."})


def user_sessions(session: Session, actor: Actor, user_id: int) -> list[auth.SessionRow]:
    """A user's active sessions: created, last seen, IP, browser (no cookie, no hash)."""
    require_role(actor, Role.admin)
    return auth.active_sessions(session, user_id)


def revoke_user_sessions(session: Session, actor: Actor, user_id: int, session_id: int | None = None) -> int:
    """End one session of a user (``session_id``) or all of them; audited."""
    require_role(actor, Role.admin)
    if session_id is not None:
        ended = int(auth.revoke_session_row(session, user_id, session_id, "admin"))
    else:
        ended = auth.revoke_sessions(session, user_id, "admin")
    if ended:
        audit.record(session, actor, "user.sessions_revoke", "user", user_id, detail=f"count={ended}")
    return ended


@dataclass(frozen=True)
class TeamRow:
    id: int
    name: str
    members: tuple[tuple[int, str, str], ...]  # (user id, username, role)
    patient_count: int


def list_teams(session: Session, actor: Actor, search: str = "", limit: int | None = None) -> list[TeamRow]:
    """Teams by name with members and patient counts; counts only the teams listed."""
    require_role(actor, Role.admin)
    q = _name_filter(select(CareTeam), search, CareTeam.name).order_by(CareTeam.name)
    teams = session.exec(q.limit(limit) if limit else q).all()
    ids = [t.id for t in teams]
    if not ids:
        return []
    members: dict[int, list[tuple[int, str, str]]] = {}
    for team_id, uid, uname, role in session.exec(
        select(CareTeamMember.team_id, User.id, User.username, User.role)
        .join(User, User.id == CareTeamMember.user_id)
        .where(col(CareTeamMember.team_id).in_(ids))
        .order_by(User.role, User.username)
    ).all():
        members.setdefault(team_id, []).append((uid, uname, role))
    counts = dict(session.exec(select(Patient.care_team_id, func.count()).where(col(Patient.care_team_id).in_(ids))
                               .group_by(Patient.care_team_id)).all())
    return [TeamRow(t.id, t.name, tuple(members.get(t.id, ())), counts.get(t.id, 0)) for t in teams]


def count_teams(session: Session, actor: Actor, search: str = "") -> int:
    require_role(actor, Role.admin)
    return session.exec(_name_filter(select(func.count()).select_from(CareTeam), search, CareTeam.name)).one()


def create_team(session: Session, actor: Actor, name: str) -> CareTeam:
    require_role(actor, Role.admin)
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the team a name."})
    if len(name) > 200:
        raise ValidationError({"name": "A team name can be at most 200 characters."})
    if session.exec(select(CareTeam).where(CareTeam.name == name)).first():
        raise ValidationError({"name": f"A team called {name!r} already exists."})
    team = CareTeam(name=name)
    session.add(team)
    session.flush()
    audit.record(session, actor, "team.create", "care_team", team.id)
    return team


def _team_roles(session: Session, team_id: int) -> list[str]:
    return list(session.exec(
        select(User.role).join(CareTeamMember, CareTeamMember.user_id == User.id)
        .where(CareTeamMember.team_id == team_id)
    ).all())


def add_member(session: Session, actor: Actor, team_id: int, user_id: int) -> None:
    require_role(actor, Role.admin)
    user = session.get(User, user_id)
    if session.get(CareTeam, team_id) is None or user is None:
        raise ValidationError({"team": "No such team or user."})
    if user.role == Role.admin:
        raise ValidationError({"user": "Administrators cannot join care teams (they see no clinical content)."})
    if session.get(CareTeamMember, (team_id, user_id)) is not None:
        raise ValidationError({"user": f"{user.username} is already on this team."})
    session.add(CareTeamMember(team_id=team_id, user_id=user_id))
    session.flush()
    audit.record(session, actor, "team.member_add", "care_team", team_id, detail=f"user={user_id}")


def remove_member(session: Session, actor: Actor, team_id: int, user_id: int) -> None:
    """Remove a member, keeping at least one therapist and one prescriber on a team with patients."""
    require_role(actor, Role.admin)
    member = session.get(CareTeamMember, (team_id, user_id))
    if member is None:
        raise ValidationError({"user": "That user is not on this team."})
    user = session.get(User, user_id)
    roles = _team_roles(session, team_id)
    has_patients = session.exec(select(Patient.id).where(Patient.care_team_id == team_id).limit(1)).first()
    if has_patients and roles.count(user.role) <= 1:
        raise ValidationError({"user": f"This team has patients and needs at least one {user.role}."})
    session.delete(member)
    session.flush()
    audit.record(session, actor, "team.member_remove", "care_team", team_id, detail=f"user={user_id}")


@dataclass(frozen=True)
class DirectoryRow:
    """A patient as an administrator may see one: no name, nothing clinical (DESIGN §1, least privilege)."""
    id: int
    mrn: str
    care_team_id: int
    status: str


def patient_directory(session: Session, actor: Actor, search: str = "", limit: int = 500) -> list[DirectoryRow]:
    """Patients by MRN (``search`` matches part of it), to place them on care teams.

    An administrator knows a patient by the MRN on the intake paperwork; a name is neither
    returned nor searched, so the audit log's patient ids cannot be joined to names here."""
    require_role(actor, Role.admin)
    q = select(Patient.id, Patient.mrn, Patient.care_team_id, Patient.status)
    q = _name_filter(q, search, Patient.mrn)
    rows = session.exec(q.order_by(Patient.mrn).limit(limit)).all()
    return [DirectoryRow(*r) for r in rows]


def find_patient_by_mrn(session: Session, actor: Actor, mrn: str) -> DirectoryRow | None:
    """The one patient whose MRN is exactly ``mrn`` (any letter case), or None."""
    mrn = mrn.strip()
    if not mrn:
        return None
    return next((p for p in patient_directory(session, actor, mrn, limit=PAGE_SIZE) if p.mrn.lower() == mrn.lower()),
                None)


def assign_team(session: Session, actor: Actor, patient_id: int, team_id: int) -> None:
    require_role(actor, Role.admin)
    patient = session.get(Patient, patient_id)
    if patient is None or session.get(CareTeam, team_id) is None:
        raise ValidationError({"team": "No such patient or team."})
    roles = _team_roles(session, team_id)
    if Role.therapist.value not in roles or Role.prescriber.value not in roles:
        raise ValidationError({"team": "A patient's care team needs at least one therapist and one prescriber."})
    patient.care_team_id = team_id
    session.add(patient)
    session.flush()
    audit.record(session, actor, "patient.team_assign", "patient", patient_id, patient_id, detail=f"team={team_id}")


def user_options(session: Session, actor: Actor, search: str = "", limit: int | None = None,
                 clinicians_only: bool = False) -> list[tuple[int, str, str]]:
    """Active accounts as (id, username, role), for pickers."""
    require_role(actor, Role.admin)
    q = _name_filter(select(User).where(col(User.is_active).is_(True)), search, User.username, User.full_name)
    if clinicians_only:
        q = q.where(User.role != Role.admin)
    q = q.order_by(User.username)
    return [(u.id, u.username, u.role) for u in session.exec(q.limit(limit) if limit else q).all()]
