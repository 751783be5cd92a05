"""Patient check-in services: links (hash-only, expiry, revoke, audit), submissions, the CLI."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import col, select

from kapnotes import checkin
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import (
    Assessment,
    AuditEvent,
    CheckinLink,
    CheckinSubmission,
    DoseAdjustment,
    DoseEntry,
)
from kapnotes.timeutil import utcnow

PHQ9_ITEM9 = [0, 1, 1, 0, 0, 0, 0, 0, 1]
GAD7 = [1, 1, 2, 0, 0, 1, 0]


def make_link(engine, actor, patient_id, **kw):
    with session_scope(engine) as s:
        link, token = checkin.create_link(s, actor, patient_id, **kw)
        return link.id, token


def good(**kw) -> checkin.CheckinInput:
    values = dict(taken_at=utcnow() - timedelta(hours=2), minutes_held=10, administration="spit", anxiety_before=6,
                  anxiety_after=3, dissociation=5, nausea=1, side_effects=["Dizzy or unsteady"], note="ok <b>x</b>")
    values.update(kw)
    return checkin.CheckinInput(**values)


def test_token_is_stored_only_as_its_hash(engine, clinic):
    link_id, token = make_link(engine, clinic.tina, clinic.a1)
    assert len(token) >= 43  # 32 random bytes, base64url: 256 bits
    with session_scope(engine) as s:
        row = s.get(CheckinLink, link_id)
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        stored = " ".join(str(v) for v in row.model_dump().values())
        assert token not in stored
        assert checkin.resolve(s, token).id == link_id
        assert checkin.resolve(s, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert checkin.resolve(s, None) is None
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "checkin.link_create")).all()
        assert len(events) == 1 and events[0].record_id == str(link_id) and token not in events[0].detail


def test_link_expires(engine, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_CHECKIN_DAYS", "3")
    link_id, token = make_link(engine, clinic.tina, clinic.a1)
    with session_scope(engine) as s:
        row = s.get(CheckinLink, link_id)
        assert timedelta(days=3) - timedelta(minutes=1) < row.expires_at - row.created_at <= timedelta(days=3)
        row.expires_at = utcnow() - timedelta(seconds=1)
        s.add(row)
    with session_scope(engine) as s:
        assert checkin.resolve(s, token) is None
        assert checkin.live_link(s, link_id) is None
        with pytest.raises(PermissionDenied):
            checkin.submit(s, link_id, "n-exp", good())
    with session_scope(engine) as s:
        assert s.exec(select(DoseEntry)).all() == []


def test_revoke_ends_link_and_is_audited(engine, clinic):
    link_id, token = make_link(engine, clinic.tina, clinic.a1)
    other_id, other = make_link(engine, clinic.paul, clinic.a1)
    with session_scope(engine) as s:
        with pytest.raises(PermissionDenied):  # another team's clinician
            checkin.revoke_link(s, clinic.theo, link_id)
    with session_scope(engine) as s:
        checkin.revoke_link(s, clinic.tina, link_id)
    with session_scope(engine) as s:
        assert checkin.resolve(s, token) is None
        assert checkin.resolve(s, other) is not None
        assert checkin.revoke_all(s, clinic.tina, clinic.a1) == 1
    with session_scope(engine) as s:
        assert checkin.resolve(s, other) is None
        actions = [e.action for e in s.exec(select(AuditEvent).order_by(col(AuditEvent.id)))]
        assert actions.count("checkin.link_revoke") == 2
        assert [checkin.link_status(x) for x in checkin.list_links(s, clinic.tina, clinic.a1)] == ["revoked"] * 2


def test_only_the_care_team_makes_links(engine, clinic):
    with session_scope(engine) as s:
        with pytest.raises(PermissionDenied):
            checkin.create_link(s, clinic.theo, clinic.a1)
        with pytest.raises(PermissionDenied):
            checkin.create_link(s, clinic.ada, clinic.a1)
        with pytest.raises(ValidationError):
            checkin.create_link(s, clinic.tina, clinic.a1, days=0)


def test_submission_makes_one_patient_dose_and_assessments(engine, clinic):
    link_id, _ = make_link(engine, clinic.tina, clinic.a1)
    with session_scope(engine) as s:
        result = checkin.submit(s, link_id, "nonce-1", good(gad7=GAD7, phq9=[0] * 9))
    assert not result.crisis and len(result.assessment_ids) == 2
    with session_scope(engine) as s:
        (entry,) = s.exec(select(DoseEntry)).all()
        assert entry.source == "patient" and entry.patient_id == clinic.a1
        assert entry.entered_by_id == clinic.tina.id  # the clinician who made the link
        assert entry.dose_mg == 150 and entry.formulation == "odt" and entry.adverse_events == "dizziness"
        assert entry.notes.startswith("Held in the mouth 10 minutes.")
        scores = s.exec(select(Assessment)).all()
        assert sorted(a.instrument for a in scores) == ["GAD-7", "PHQ-9"]
        link = s.get(CheckinLink, link_id)
        assert link.use_count == 1 and link.last_used_at is not None
        submit_events = s.exec(select(AuditEvent).where(AuditEvent.action == "checkin.submit")).all()
        assert len(submit_events) == 1 and submit_events[0].actor_username == checkin.PATIENT_USERNAME
        # the scales are no longer due
        assert checkin.patient_view(s, link).ask_phq9 is False


def test_double_submit_stores_one(engine, clinic):
    link_id, _ = make_link(engine, clinic.tina, clinic.a1)
    with session_scope(engine) as s:
        first = checkin.submit(s, link_id, "same-nonce", good(phq9=[0] * 9))
    with session_scope(engine) as s:
        again = checkin.submit(s, link_id, "same-nonce", good(phq9=[0] * 9))
    assert again.repeated and again.dose_entry_id == first.dose_entry_id
    with session_scope(engine) as s:
        assert len(s.exec(select(DoseEntry)).all()) == 1
        assert len(s.exec(select(Assessment)).all()) == 1
        assert len(s.exec(select(CheckinSubmission)).all()) == 1


def test_item9_above_zero_makes_urgent_hold_pending(engine, clinic):
    link_id, _ = make_link(engine, clinic.tina, clinic.a1)
    with session_scope(engine) as s:
        result = checkin.submit(s, link_id, "n-crisis", good(phq9=PHQ9_ITEM9))
    assert result.crisis
    with session_scope(engine) as s:
        holds = s.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == clinic.a1,
                                                    DoseAdjustment.status == "pending",
                                                    DoseAdjustment.action == "hold")).all()
        assert len(holds) == 1 and holds[0].urgent and "suicidality" in holds[0].flags


@pytest.mark.parametrize("change, field", [
    ({"taken_at": utcnow() + timedelta(hours=3)}, "taken_at"),
    ({"anxiety_before": 11}, "anxiety_before"),
    ({"dissociation": -1}, "dissociation"),
    ({"bp_systolic": 300, "bp_diastolic": 80}, "bp_systolic"),
    ({"bp_systolic": 120}, "bp"),
    ({"bp_systolic": 80, "bp_diastolic": 90}, "bp"),
    ({"heart_rate": 10}, "heart_rate"),
    ({"dose_mg": 300.0}, "dose_mg"),  # not the plan's dose, not confirmed
    ({"minutes_held": 500}, "minutes_held"),
    ({"phq9": [1, 1, None, 0, 0, 0, 0, 0, 0]}, "phq9"),
    ({"side_effects": ["<script>"]}, "side_effects"),
])
def test_impossible_values_refused_and_nothing_written(engine, clinic, change, field):
    link_id, _ = make_link(engine, clinic.tina, clinic.a1)
    with session_scope(engine) as s:
        with pytest.raises(ValidationError) as info:
            checkin.submit(s, link_id, "n-bad", good(**change))
    assert field in info.value.errors
    assert "_" not in info.value.errors[field]  # plain words, no codes
    with session_scope(engine) as s:
        assert s.exec(select(DoseEntry)).all() == []
        assert s.exec(select(CheckinSubmission)).all() == []


def test_other_dose_recorded_when_confirmed(engine, clinic):
    link_id, _ = make_link(engine, clinic.tina, clinic.a1)
    with session_scope(engine) as s:
        checkin.submit(s, link_id, "n-other", good(dose_mg=200.0, dose_confirmed=True))
    with session_scope(engine) as s:
        (entry,) = s.exec(select(DoseEntry)).all()
        assert entry.dose_mg == 200 and entry.source == "patient"


def test_link_of_a_clinician_who_left_the_team_stops_working(engine, clinic):
    from kapnotes.models import CareTeamMember, Patient

    link_id, token = make_link(engine, clinic.tina, clinic.a1)
    with session_scope(engine) as s:
        team = s.get(Patient, clinic.a1).care_team_id
        s.delete(s.get(CareTeamMember, (team, clinic.tina.id)))
    with session_scope(engine) as s:
        assert checkin.resolve(s, token) is None


def test_wrong_tokens_are_counted_per_address_in_the_database(engine):
    """The page and the /checkin route count in one table, so every app process sees the count."""
    from kapnotes import checkin_routes

    assert checkin_routes.FAILURES is checkin.LIMITER.events
    window, t0 = checkin.LIMITER.events, datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)
    with session_scope(engine) as s:
        for i in range(checkin.LIMITER.limit):
            assert window.count(s, "1.2.3.4", t0) == i
            window.add(s, "1.2.3.4", t0)
    with session_scope(engine) as s:  # a second unit of work (another process) sees the same count
        assert window.count(s, "1.2.3.4", t0) == checkin.LIMITER.limit
        assert window.count(s, "5.6.7.8", t0) == 0
        assert window.count(s, "1.2.3.4", t0 + window.window + timedelta(seconds=1)) == 0


def test_client_key():
    # nginx appends the address it saw: earlier entries are whatever the client sent (spoofable)
    headers = {"X-Forwarded-For": "6.6.6.6, 9.9.9.9"}
    assert checkin.client_key(headers, "127.0.0.1", trust_proxy=False) == "127.0.0.1"
    assert checkin.client_key(headers, "127.0.0.1", trust_proxy=True) == "9.9.9.9"


def test_cli_makes_link_with_handout_and_revokes(engine, clinic, db_url, monkeypatch, tmp_path, capsys):
    from kapnotes.cli import main

    monkeypatch.setenv("KAPNOTES_DATABASE_URL", db_url)
    out_pdf = tmp_path / "handout.pdf"
    assert main(["checkin-link", "--patient", "A-001", "--days", "5", "--handout", str(out_pdf),
                 "--base-url", "https://clinic.example"]) == 0
    url = capsys.readouterr().out.splitlines()[0]
    assert url.startswith("https://clinic.example/checkin?t=")
    assert out_pdf.read_bytes().startswith(b"%PDF")
    token = url.split("t=", 1)[1]
    with session_scope(engine) as s:
        link = checkin.resolve(s, token)
        assert link is not None and link.created_by_id == clinic.tina.id
    assert main(["checkin-link", "--patient", "A-001", "--revoke"]) == 0
    assert "ended 1 check-in link" in capsys.readouterr().out
    with session_scope(engine) as s:
        assert checkin.resolve(s, token) is None
    assert main(["checkin-link", "--patient", "NOPE"]) == 1
    assert main(["checkin-link", "--patient", "A-001", "--user", "theo"]) == 1  # not on the team
