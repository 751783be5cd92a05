"""Private process notes: author-only, audited without text, versioned edits."""

from __future__ import annotations

import pytest
from sqlmodel import select

from kapnotes import process_notes
from kapnotes.actor import actor_of
from kapnotes.db import session_scope
from kapnotes.errors import ConflictError, PermissionDenied, ValidationError
from kapnotes.models import AuditEvent, ProcessNote


def test_author_only_and_audit_without_text(engine, clinic):
    with session_scope(engine) as s:
        row = process_notes.add(s, clinic.tina, clinic.a1, "SECRET-PROCESS-TEXT about the session")
        rid = row.id
    with session_scope(engine) as s:
        assert [r.id for r in process_notes.list_mine(s, clinic.tina, clinic.a1)] == [rid]
        assert process_notes.list_mine(s, clinic.tina, clinic.a2) == []
        for who in (clinic.paul, clinic.ada, clinic.theo, clinic.pia):
            with pytest.raises(PermissionDenied):
                process_notes.get(s, who, rid)
            with pytest.raises(PermissionDenied):
                process_notes.list_mine(s, who, clinic.a1)
            with pytest.raises(PermissionDenied):
                process_notes.update(s, who, rid, 1, "overwrite")
        with pytest.raises(PermissionDenied):
            process_notes.add(s, clinic.paul, clinic.a1, "prescribers have no process notes")
        with pytest.raises(PermissionDenied):
            process_notes.add(s, clinic.theo, clinic.a1, "not my team")
    with session_scope(engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action.like("process_note.%"))).all()
        assert {e.action for e in events} == {"process_note.write", "process_note.read"}
        assert all("SECRET" not in (e.detail or "") for e in events)
        assert any(e.record_id == str(rid) for e in events)


def test_another_therapist_on_the_team_cannot_read(engine, clinic):
    from kapnotes import auth
    from kapnotes.models import CareTeamMember, Patient

    with session_scope(engine) as s:
        other = actor_of(auth.create_user(s, None, "tara", "therapist", "Tara Two", "correct-horse-battery"))
        team_id = s.get(Patient, clinic.a1).care_team_id
        s.add(CareTeamMember(team_id=team_id, user_id=other.id))
        rid = process_notes.add(s, clinic.tina, clinic.a1, "tina's thoughts").id
    with session_scope(engine) as s:
        assert process_notes.list_mine(s, other, clinic.a1) == []
        with pytest.raises(PermissionDenied):
            process_notes.get(s, other, rid)


def test_edit_with_version_and_bad_input(engine, clinic):
    with session_scope(engine) as s:
        row = process_notes.add(s, clinic.tina, clinic.a1, "v1")
        rid, v1 = row.id, row.version
    with session_scope(engine) as s:
        v2 = process_notes.update(s, clinic.tina, rid, v1, "v2").version
    with pytest.raises(ConflictError), session_scope(engine) as s:
        process_notes.update(s, clinic.tina, rid, v1, "stale")
    with session_scope(engine) as s:
        assert s.get(ProcessNote, rid).text == "v2" and s.get(ProcessNote, rid).version == v2
        for bad in ("", "   ", "a\x00b"):
            with pytest.raises(ValidationError):
                process_notes.add(s, clinic.tina, clinic.a1, bad)
