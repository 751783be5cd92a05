"""Administration service: users, care teams, team assignment (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlmodel import col, select

from kapnotes import admin, auth, patients
from kapnotes.actor import actor_of
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import AuditEvent, CareTeamMember, Patient
from tests.factories import PASSWORD


def _team_of(session, patient_id) -> int:
    return session.get(Patient, patient_id).care_team_id


def _last(session, action) -> AuditEvent:
    return session.exec(select(AuditEvent).where(AuditEvent.action == action)
                        .order_by(col(AuditEvent.id).desc())).first()


@pytest.mark.parametrize("who", ["tina", "paul"])
def test_clinicians_cannot_administer(session, clinic, who):
    actor = getattr(clinic, who)
    team = _team_of(session, clinic.a1)
    for call in (
        lambda: admin.list_users(session, actor),
        lambda: admin.list_teams(session, actor),
        lambda: admin.create_team(session, actor, "Mine"),
        lambda: admin.add_member(session, actor, team, clinic.theo.id),
        lambda: admin.remove_member(session, actor, team, clinic.paul.id),
        lambda: admin.assign_team(session, actor, clinic.b1, team),
        lambda: admin.set_active(session, actor, clinic.theo.id, False),
        lambda: admin.unlock(session, actor, clinic.theo.id),
        lambda: admin.patient_directory(session, actor),
        lambda: admin.user_options(session, actor),
        lambda: admin.count_users(session, actor),
        lambda: admin.count_teams(session, actor),
        lambda: admin.set_email(session, actor, clinic.theo.id, "theo@clinic.example"),
    ):
        with pytest.raises(PermissionDenied):
            call()


def test_list_users_and_teams(session, clinic):
    users = {u.username: u for u in admin.list_users(session, clinic.ada)}
    assert set(users) == {"tina", "paul", "theo", "pia", "ada"}
    assert users["tina"].is_active and not users["tina"].locked
    assert not hasattr(users["tina"], "password_hash")
    teams = admin.list_teams(session, clinic.ada)
    assert sorted(t.patient_count for t in teams) == [1, 2]
    team_a = next(t for t in teams if t.patient_count == 2)
    assert sorted(u for _, u, _ in team_a.members) == ["paul", "tina"]


def test_admin_lists_search_and_limit(session, clinic):
    ada = clinic.ada
    assert [u.username for u in admin.list_users(session, ada, "TI")] == ["tina"]
    assert [u.username for u in admin.list_users(session, ada, "torres")] == ["tina"]  # full name
    assert admin.list_users(session, ada, "%") == [] and admin.count_users(session, ada, "_") == 0  # literal
    every = admin.list_users(session, ada)
    assert [u.username for u in admin.list_users(session, ada, limit=2)] == [u.username for u in every[:2]]
    assert admin.count_users(session, ada) == len(every) == 5

    teams = admin.list_teams(session, ada)
    first = admin.list_teams(session, ada, limit=1)
    assert first == teams[:1] and admin.count_teams(session, ada) == len(teams) == 2
    # counts and members of a searched team are those of the full list
    name = teams[1].name
    assert admin.list_teams(session, ada, name[-6:].upper()) == [teams[1]]
    assert admin.list_teams(session, ada, "no such team") == []

    clinicians = admin.user_options(session, ada, clinicians_only=True)
    assert clinicians and all(role != "admin" for _, _, role in clinicians)
    assert [u for _, u, _ in admin.user_options(session, ada, "pia")] == ["pia"]
    assert len(admin.user_options(session, ada, limit=1)) == 1
    found = admin.patient_directory(session, ada, "a-00")
    assert sorted(p.mrn for p in found) == ["A-001", "A-002"]  # by MRN, no names
    assert admin.patient_directory(session, ada, "a-00", limit=1) == found[:1]


def test_create_team(session, clinic):
    team = admin.create_team(session, clinic.ada, "  Night clinic ")
    assert team.name == "Night clinic"
    assert _last(session, "team.create").record_id == str(team.id)
    with pytest.raises(ValidationError, match="already exists"):
        admin.create_team(session, clinic.ada, "Night clinic")
    with pytest.raises(ValidationError):
        admin.create_team(session, clinic.ada, "   ")
    with pytest.raises(ValidationError):
        admin.create_team(session, clinic.ada, "T" * 201)


def test_add_and_remove_member(session, clinic):
    team = admin.create_team(session, clinic.ada, "New team")
    admin.add_member(session, clinic.ada, team.id, clinic.tina.id)
    admin.add_member(session, clinic.ada, team.id, clinic.pia.id)
    assert _last(session, "team.member_add").detail == f"user={clinic.pia.id}"
    row = next(t for t in admin.list_teams(session, clinic.ada) if t.id == team.id)
    assert sorted(u for _, u, _ in row.members) == ["pia", "tina"]
    with pytest.raises(ValidationError, match="already on this team"):
        admin.add_member(session, clinic.ada, team.id, clinic.tina.id)
    # a team without patients may lose anyone
    admin.remove_member(session, clinic.ada, team.id, clinic.tina.id)
    assert _last(session, "team.member_remove").detail == f"user={clinic.tina.id}"
    with pytest.raises(ValidationError, match="not on this team"):
        admin.remove_member(session, clinic.ada, team.id, clinic.tina.id)
    with pytest.raises(ValidationError):
        admin.add_member(session, clinic.ada, 987654, clinic.tina.id)


def test_admins_cannot_join_teams(session, clinic):
    with pytest.raises(ValidationError, match="Administrators cannot join"):
        admin.add_member(session, clinic.ada, _team_of(session, clinic.a1), clinic.ada.id)
    assert session.exec(select(CareTeamMember).where(CareTeamMember.user_id == clinic.ada.id)).all() == []


@pytest.mark.parametrize("who", ["tina", "paul"])
def test_cannot_remove_the_last_clinician_of_a_role_from_a_team_with_patients(session, clinic, who):
    team = _team_of(session, clinic.a1)
    with pytest.raises(ValidationError, match="needs at least one"):
        admin.remove_member(session, clinic.ada, team, getattr(clinic, who).id)
    # with a second clinician of that role, removal works and access follows
    other = clinic.theo if who == "tina" else clinic.pia
    admin.add_member(session, clinic.ada, team, other.id)
    admin.remove_member(session, clinic.ada, team, getattr(clinic, who).id)
    session.flush()
    assert patients.list_patients(session, getattr(clinic, who)) == []
    assert "A-001" in [r.mrn for r in patients.list_patients(session, other)]


def test_assign_patient_team(session, clinic):
    team_b = _team_of(session, clinic.b1)
    admin.assign_team(session, clinic.ada, clinic.a2, team_b)
    assert _team_of(session, clinic.a2) == team_b
    ev = _last(session, "patient.team_assign")
    assert (ev.patient_id, ev.detail) == (clinic.a2, f"team={team_b}")
    # a team without both a therapist and a prescriber cannot take patients
    half = admin.create_team(session, clinic.ada, "Half team")
    admin.add_member(session, clinic.ada, half.id, clinic.tina.id)
    with pytest.raises(ValidationError, match="therapist and one prescriber"):
        admin.assign_team(session, clinic.ada, clinic.a1, half.id)
    with pytest.raises(ValidationError):
        admin.assign_team(session, clinic.ada, 987654, team_b)


def test_patient_directory_shows_no_names(session, clinic):
    """Least privilege (DESIGN §1): an administrator finds a patient by MRN; names are neither shown nor searched."""
    rows = admin.patient_directory(session, clinic.ada)
    assert [r.mrn for r in rows] == ["A-001", "A-002", "B-001"]
    assert set(rows[0].__dataclass_fields__) == {"id", "mrn", "care_team_id", "status"}
    name = session.get(Patient, clinic.b1).full_name
    assert admin.patient_directory(session, clinic.ada, name.split()[0]) == []  # a name finds nothing
    assert [r.mrn for r in admin.patient_directory(session, clinic.ada, "b-0")] == ["B-001"]
    assert admin.patient_directory(session, clinic.ada, "%") == []
    assert admin.find_patient_by_mrn(session, clinic.ada, " b-001 ").id == clinic.b1
    assert admin.find_patient_by_mrn(session, clinic.ada, "B-00") is None  # the whole MRN, not a part
    assert admin.find_patient_by_mrn(session, clinic.ada, "  ") is None
    with pytest.raises(PermissionDenied):
        admin.find_patient_by_mrn(session, clinic.tina, "B-001")


def test_deactivate_user(session, clinic):
    admin.set_active(session, clinic.ada, clinic.tina.id, False)
    assert _last(session, "user.deactivate").record_id == str(clinic.tina.id)
    assert auth.load_actor(session, clinic.tina.id) is None
    r = auth.authenticate(session, "tina", PASSWORD)
    assert not r.ok and r.message == auth.GENERIC_FAILURE
    assert "tina" not in [u[1] for u in admin.user_options(session, clinic.ada)]
    admin.set_active(session, clinic.ada, clinic.tina.id, True)
    assert auth.load_actor(session, clinic.tina.id) == clinic.tina
    assert auth.authenticate(session, "tina", PASSWORD).ok


def test_admin_cannot_deactivate_self(session, clinic):
    with pytest.raises(ValidationError, match="your own account"):
        admin.set_active(session, clinic.ada, clinic.ada.id, False)
    with pytest.raises(ValidationError):
        admin.set_active(session, clinic.ada, 987654, False)


def test_unlock_shows_in_user_list(session, clinic):
    for i in range(5):
        auth.authenticate(session, "theo", f"wrong-password-{i}")
    assert next(u for u in admin.list_users(session, clinic.ada) if u.username == "theo").locked
    admin.unlock(session, clinic.ada, clinic.theo.id)
    assert not next(u for u in admin.list_users(session, clinic.ada) if u.username == "theo").locked
    assert _last(session, "user.unlock").actor_id == clinic.ada.id


def test_admin_registers_patient_and_sees_no_clinical_list(session, clinic):
    patients.add_patient(session, clinic.ada, "C-1", "Cole Carter", date(1970, 1, 1), "theo", "pia")
    assert "C-1" in [r.mrn for r in admin.patient_directory(session, clinic.ada)]
    with pytest.raises(PermissionDenied):
        patients.list_patients(session, clinic.ada)


def test_set_email_validates_audits_and_clears(session, clinic):
    from kapnotes.models import User

    assert admin.set_email(session, clinic.ada, clinic.paul.id, "  paul.park+kap@clinic.example ") == \
        "paul.park+kap@clinic.example"
    assert session.get(User, clinic.paul.id).email == "paul.park+kap@clinic.example"
    ev = _last(session, "user.email")
    assert (ev.actor_id, ev.record_id, ev.detail) == (clinic.ada.id, str(clinic.paul.id), "set")
    assert "paul" not in ev.detail  # the audit says that it changed, not the address
    assert ({u.username: u.email for u in admin.list_users(session, clinic.ada)}["paul"]
            == "paul.park+kap@clinic.example")
    for bad in ("paul", "paul@", "paul@clinic", "paul park@clinic.example", "a@b.c, d@e.f", "<p@clinic.example>",
                "p@clinic..example", "x" * 250 + "@clinic.example"):
        with pytest.raises(ValidationError, match="not an e-mail address"):
            admin.set_email(session, clinic.ada, clinic.paul.id, bad)
    assert session.get(User, clinic.paul.id).email == "paul.park+kap@clinic.example"  # unchanged by refusals
    assert admin.set_email(session, clinic.ada, clinic.paul.id, "  ") is None
    assert session.get(User, clinic.paul.id).email is None
    assert _last(session, "user.email").detail == "cleared"
    with pytest.raises(ValidationError, match="No such user"):
        admin.set_email(session, clinic.ada, 987654, "x@clinic.example")


# --- accounts people run themselves (issue 14 item 4) ---------------------------------------------


def test_change_my_password_needs_the_current_one_and_ends_my_other_sessions(session, clinic):
    here = auth.start_session(session, clinic.tina)
    there = auth.start_session(session, clinic.tina)
    with pytest.raises(ValidationError, match="current password"):
        auth.change_own_password(session, clinic.tina, "not-my-password", "granite lantern orbit", keep_token=here)
    with pytest.raises(ValidationError, match="differ"):
        auth.change_own_password(session, clinic.tina, PASSWORD, "granite lantern orbit", "granite lantern",
                                 keep_token=here)
    with pytest.raises(ValidationError, match="common or breached"):
        auth.change_own_password(session, clinic.tina, PASSWORD, "password1234", keep_token=here)
    assert auth.change_own_password(session, clinic.tina, PASSWORD, "granite lantern orbit", keep_token=here) == 1
    assert auth.check_session(session, here).ok and not auth.check_session(session, there).ok
    assert auth.authenticate(session, "tina", "granite lantern orbit").ok
    assert not auth.authenticate(session, "tina", PASSWORD).ok


def test_admin_reset_gives_a_temporary_password_that_must_be_changed(session, clinic):
    token = auth.start_session(session, clinic.tina)
    with pytest.raises(PermissionDenied):
        admin.reset_password(session, clinic.paul, clinic.tina.id)
    temporary = admin.reset_password(session, clinic.ada, clinic.tina.id)
    assert not auth.check_session(session, token).ok  # every session of theirs ended
    assert not auth.authenticate(session, "tina", PASSWORD).ok
    r = auth.authenticate(session, "tina", temporary)
    assert r.ok and r.steps == ("change_password",) and not r.complete
    auth.set_password(session, r.actor, clinic.tina.id, "granite lantern orbit")
    assert auth.authenticate(session, "tina", "granite lantern orbit").complete
    assert _last(session, "user.password_reset").actor_id == clinic.ada.id
    assert temporary not in (_last(session, "user.password_reset").detail or "")


def test_admin_edits_name_credentials_and_role_with_an_audited_role_change(session, clinic):
    admin.update_user(session, clinic.ada, clinic.theo.id, "Theo Thorne", "LCSW", "therapist")
    assert _last(session, "user.edit").detail == "name,credentials"
    assert _last(session, "user.role_change") is None
    token = auth.start_session(session, clinic.tina)
    # tina is team A's only therapist and team A has patients: her role cannot change
    with pytest.raises(ValidationError, match="needs at least one therapist"):
        admin.update_user(session, clinic.ada, clinic.tina.id, "Tina Torres", "LMFT", "prescriber")
    user = auth.create_user(session, clinic.ada, "newdoc", "therapist", "New Doc", "granite lantern orbit")
    admin.update_user(session, clinic.ada, user.id, "New Doc", "MD", "prescriber")
    ev = _last(session, "user.role_change")
    assert ev.actor_id == clinic.ada.id and ev.record_id == str(user.id) and ev.detail == "from=therapist to=prescriber"
    assert auth.check_session(session, token).ok
    with pytest.raises(ValidationError, match="care teams"):
        admin.update_user(session, clinic.ada, clinic.theo.id, "Theo Thorne", "", "admin")


def test_the_last_active_admin_cannot_be_removed_or_deactivated(session, clinic):
    with pytest.raises(ValidationError, match="last active administrator"):
        admin.update_user(session, clinic.ada, clinic.ada.id, "Ada Admin", "", "therapist")
    other = auth.create_user(session, clinic.ada, "adam", "admin", "Adam Second", "granite lantern orbit")
    adam = actor_of(other)
    admin.set_active(session, clinic.ada, other.id, False)  # ada stays: allowed
    with pytest.raises(ValidationError, match="last active administrator"):  # adam is inactive
        admin.update_user(session, clinic.ada, clinic.ada.id, "Ada Admin", "", "therapist")
    with pytest.raises(ValidationError, match="last active administrator"):
        admin.set_active(session, adam, clinic.ada.id, False)
    admin.set_active(session, clinic.ada, other.id, True)
    admin.update_user(session, adam, clinic.ada.id, "Ada Admin", "", "therapist")  # now allowed
    with pytest.raises(ValidationError, match="last active administrator"):
        admin.update_user(session, adam, other.id, "Adam Second", "", "prescriber")


def test_admin_lists_and_revokes_a_users_sessions(session, clinic):
    one = auth.start_session(session, clinic.tina, ip="10.0.0.5", user_agent="Firefox")
    two = auth.start_session(session, clinic.tina, ip="10.0.0.6", user_agent="Chromium")
    rows = admin.user_sessions(session, clinic.ada, clinic.tina.id)
    assert {(r.ip, r.user_agent) for r in rows} == {("10.0.0.5", "Firefox"), ("10.0.0.6", "Chromium")}
    assert all(r.created_at and r.last_seen_at for r in rows)
    with pytest.raises(PermissionDenied):
        admin.user_sessions(session, clinic.paul, clinic.tina.id)
    first = next(r for r in rows if r.ip == "10.0.0.5")
    assert admin.revoke_user_sessions(session, clinic.ada, clinic.tina.id, first.id) == 1
    assert not auth.check_session(session, one).ok and auth.check_session(session, two).ok
    assert admin.revoke_user_sessions(session, clinic.ada, clinic.tina.id) == 1
    assert not auth.check_session(session, two).ok
    assert _last(session, "user.sessions_revoke").detail == "count=1"
    assert admin.user_sessions(session, clinic.ada, clinic.tina.id) == []
