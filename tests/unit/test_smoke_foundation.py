"""The foundation's first checks: schema, clinic fixture and scoping on both backends."""

from kapnotes import audit, patients


def test_therapist_sees_only_own_team(session, clinic):
    names = [r.mrn for r in patients.list_patients(session, clinic.tina)]
    assert names == ["A-002", "A-001"] or sorted(names) == ["A-001", "A-002"]
    assert [r.mrn for r in patients.list_patients(session, clinic.theo)] == ["B-001"]


def test_audit_chain_verifies(session, clinic):
    report = audit.verify_chain(session)
    assert report.ok and report.count > 0
