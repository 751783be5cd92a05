"""Care-team scoping in the service layer: the rule every page relies on.

Runs on SQLite and PostgreSQL (``session``/``clinic`` are parametrized).
"""

from __future__ import annotations

import pytest

from kapnotes import access, admin, patients
from kapnotes.errors import PermissionDenied

GENERIC = "You do not have access to this record."


def _mrns(session, actor, search=""):
    return sorted(r.mrn for r in patients.list_patients(session, actor, search))


def test_each_clinician_lists_only_own_team(session, clinic):
    assert _mrns(session, clinic.tina) == ["A-001", "A-002"]
    assert _mrns(session, clinic.paul) == ["A-001", "A-002"]
    assert _mrns(session, clinic.theo) == ["B-001"]
    assert _mrns(session, clinic.pia) == ["B-001"]


def test_prescriber_on_two_teams_sees_both_without_duplicates(session, clinic):
    team_b = next(t for t in admin.list_teams(session, clinic.ada) if any(u == "theo" for _, u, _ in t.members))
    admin.add_member(session, clinic.ada, team_b.id, clinic.paul.id)
    session.flush()
    rows = patients.list_patients(session, clinic.paul)
    assert sorted(r.mrn for r in rows) == ["A-001", "A-002", "B-001"]
    assert len({r.id for r in rows}) == len(rows)


def test_require_patient_own_team_returns_patient(session, clinic):
    assert access.require_patient(session, clinic.tina, clinic.a1).mrn == "A-001"
    assert access.require_patient(session, clinic.paul, clinic.a2).mrn == "A-002"
    assert access.require_patient(session, clinic.theo, clinic.b1).mrn == "B-001"


@pytest.mark.parametrize("who", ["tina", "paul"])
def test_other_team_patient_refused_like_a_missing_one(session, clinic, who):
    actor = getattr(clinic, who)
    with pytest.raises(PermissionDenied) as other:
        access.require_patient(session, actor, clinic.b1)
    with pytest.raises(PermissionDenied) as missing:
        access.require_patient(session, actor, 987654)
    assert str(other.value) == str(missing.value) == GENERIC
    assert "Bea" not in str(other.value) and "B-001" not in str(other.value)


def test_admin_gets_no_clinical_reads(session, clinic):
    with pytest.raises(PermissionDenied):
        access.require_patient(session, clinic.ada, clinic.a1)
    with pytest.raises(PermissionDenied):
        patients.list_patients(session, clinic.ada)
    with pytest.raises(PermissionDenied):
        patients.overview(session, clinic.ada, clinic.a1)
    with pytest.raises(PermissionDenied):
        patients.header(session, clinic.ada, clinic.a1)
    with pytest.raises(PermissionDenied):
        patients.open_record(session, clinic.ada, clinic.a1)
    # even an admin who was (wrongly) put on a team in the database sees nothing clinical
    from kapnotes.models import CareTeamMember, Patient

    team_id = session.get(Patient, clinic.a1).care_team_id
    session.add(CareTeamMember(team_id=team_id, user_id=clinic.ada.id))
    session.flush()
    assert session.exec(access.visible_patient_ids(clinic.ada)).all() == []
    with pytest.raises(PermissionDenied):
        access.require_patient(session, clinic.ada, clinic.a1)


def test_signed_out_actor_refused(session, clinic):
    with pytest.raises(PermissionDenied, match="sign in"):
        access.require_patient(session, None, clinic.a1)
    with pytest.raises(PermissionDenied):
        access.require_role(None, "therapist")


def test_require_patient_role_restriction(session, clinic):
    assert access.require_patient(session, clinic.paul, clinic.a1, "prescriber").id == clinic.a1
    with pytest.raises(PermissionDenied, match="role"):
        access.require_patient(session, clinic.tina, clinic.a1, "prescriber")


def test_can_see_patient(session, clinic):
    assert access.can_see_patient(session, clinic.tina, clinic.a1)
    assert not access.can_see_patient(session, clinic.tina, clinic.b1)
    assert not access.can_see_patient(session, clinic.ada, clinic.a1)
    assert not access.can_see_patient(session, None, clinic.a1)


def test_visible_patient_ids_subquery(session, clinic):
    assert sorted(session.exec(access.visible_patient_ids(clinic.tina)).all()) == sorted([clinic.a1, clinic.a2])
    assert session.exec(access.visible_patient_ids(clinic.pia)).all() == [clinic.b1]


def test_moving_a_patient_moves_access(session, clinic):
    from kapnotes.models import Patient

    team_b = session.get(Patient, clinic.b1).care_team_id
    admin.assign_team(session, clinic.ada, clinic.a1, team_b)
    session.flush()
    assert _mrns(session, clinic.tina) == ["A-002"]
    assert _mrns(session, clinic.theo) == ["A-001", "B-001"]
    with pytest.raises(PermissionDenied):
        access.require_patient(session, clinic.tina, clinic.a1)


def test_require_record_follows_its_patients_care_team(session, clinic):

    from kapnotes import assessments
    from kapnotes.models import Assessment

    row = assessments.record_assessment(session, clinic.tina, clinic.a1, "GAD-7", assessments._today(), total=5)
    found = access.require_record(session, clinic.paul, Assessment, row.id)
    assert found.id == row.id
    for outsider in (clinic.pia, clinic.ada, None):
        with pytest.raises(PermissionDenied):
            access.require_record(session, outsider, Assessment, row.id)
    with pytest.raises(PermissionDenied, match="role"):
        access.require_record(session, clinic.tina, Assessment, row.id, "prescriber")
    # a missing id and another team's record: the same words, so an outsider learns nothing
    with pytest.raises(PermissionDenied) as missing:
        access.require_record(session, clinic.tina, Assessment, 987654)
    with pytest.raises(PermissionDenied) as others:
        access.require_record(session, clinic.pia, Assessment, row.id)
    assert str(missing.value) == str(others.value) == "You do not have access to this record."
