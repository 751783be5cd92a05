"""Notifications (issue 13 §5): the prescriber's urgent count, the therapist's decisions since the
last visit, and the e-mail to prescribers, received by a real SMTP server (aiosmtpd) started here.

The e-mail tests create the urgent item directly and call ``urgent_item_created``, as
``suggestions`` does inside its transaction; ``test_integration_bp_190_115_dose_emails_the_prescriber_once``
goes through the real path (a dose with BP 190/115 → engine hold → urgent queue item → e-mail).
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
from datetime import datetime, time, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event
from sqlmodel import Session, col, select

from kapnotes import admin, notify
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied
from kapnotes.models import AuditEvent, DoseAdjustment, Patient, TreatmentPlan, User
from kapnotes.timeutil import utcnow

PATIENT_MARKERS = ("Alice", "Able", "A-001", "Aaron", "Ames", "A-002", "Bea", "Brook", "B-001")


# --- a real SMTP server --------------------------------------------------------------------------


class Sink:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def texts(self) -> list[str]:
        """Each message as received, headers and body."""
        return [e.content.decode("utf-8", "replace") for e in self.envelopes]

    def bodies(self) -> list[str]:
        return [email.message_from_bytes(e.content, policy=email.policy.default).get_content().replace("\r\n", "\n")
                for e in self.envelopes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(monkeypatch):
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("KAPNOTES_SMTP_URL", f"smtp://127.0.0.1:{port}")
    monkeypatch.setenv("KAPNOTES_SMTP_FROM", "kapnotes@clinic.example")
    yield sink
    assert notify.wait_for_outbox(30)
    controller.stop()


@pytest.fixture
def emails(engine, clinic):
    """Paul (team A) and Pia (team B) have e-mail addresses; nobody else does."""
    with session_scope(engine) as s:
        admin.set_email(s, clinic.ada, clinic.paul.id, "paul@clinic.example")
        admin.set_email(s, clinic.ada, clinic.pia.id, "pia@clinic.example")
    return clinic


def add_urgent(s: Session, patient_id: int, urgent: bool = True) -> DoseAdjustment:
    """What the loop does: a pending (in the queue) urgent item, then ``urgent_item_created``."""
    row = DoseAdjustment(patient_id=patient_id, kind="suggestion", status="pending", action="hold", urgent=urgent,
                         sent_at=utcnow())
    s.add(row)
    s.flush()
    if urgent:
        notify.urgent_item_created(s, patient_id)
    return row


def settle() -> None:
    assert notify.wait_for_outbox(30), "the notice thread did not finish"


# --- e-mail ---------------------------------------------------------------------------------------


def test_one_message_after_commit_to_the_team_prescriber_without_patient_data(engine, emails, smtp):
    with Session(engine, expire_on_commit=False) as s:
        add_urgent(s, emails.a1)
        add_urgent(s, emails.a2)  # two urgent items, one transaction: one message
        s.flush()
        settle()
        assert smtp.envelopes == []  # nothing before the commit
        s.commit()
    settle()
    assert len(smtp.envelopes) == 1
    (env,) = smtp.envelopes
    assert env.rcpt_tos == ["paul@clinic.example"]
    assert env.mail_from == "kapnotes@clinic.example"
    text = smtp.texts()[0]
    assert "Subject: KAPNotes: urgent items waiting" in text
    assert smtp.bodies() == ["2 urgent items are waiting in KAPNotes. Sign in to review them.\n"]  # all of it
    for marker in PATIENT_MARKERS + ("hold", " mg", "Paul Park"):
        assert marker.lower() not in text.lower(), marker


def test_the_count_is_all_of_the_prescribers_urgent_items(engine, emails, smtp):
    with session_scope(engine) as s:
        add_urgent(s, emails.a1)
    settle()
    with session_scope(engine) as s:
        add_urgent(s, emails.a2, urgent=False)  # routine: not counted, no message of its own
        add_urgent(s, emails.a2)
    settle()
    assert [e.rcpt_tos for e in smtp.envelopes] == [["paul@clinic.example"]] * 2
    assert "1 urgent item is waiting in KAPNotes." in smtp.texts()[0]
    assert "2 urgent items are waiting in KAPNotes." in smtp.texts()[1]


def test_nothing_is_sent_when_the_transaction_rolls_back(engine, emails, smtp):
    with Session(engine, expire_on_commit=False) as s:
        add_urgent(s, emails.a1)
        s.rollback()
        # the same session commits something else afterwards: still nothing about the lost item
        user = s.get(User, emails.tina.id)
        user.credentials = "LMFT, MA"
        s.add(user)
        s.commit()
    with pytest.raises(RuntimeError):
        with session_scope(engine) as s:
            add_urgent(s, emails.a1)
            raise RuntimeError("the service failed after making the item")
    settle()
    assert smtp.envelopes == []


def test_nothing_is_sent_for_an_item_in_a_savepoint_that_rolled_back(engine, emails, smtp):
    with Session(engine, expire_on_commit=False) as s:
        nested = s.begin_nested()
        add_urgent(s, emails.a1)
        nested.rollback()
        s.commit()
    settle()
    assert smtp.envelopes == []


def test_a_released_savepoint_waits_for_the_outer_commit(engine, emails, smtp):
    with Session(engine, expire_on_commit=False) as s:
        with s.begin_nested():
            add_urgent(s, emails.a1)
        settle()
        assert smtp.envelopes == []  # the SAVEPOINT is released, but the transaction is still open
        s.rollback()
    settle()
    assert smtp.envelopes == []
    with Session(engine, expire_on_commit=False) as s:
        with s.begin_nested():
            add_urgent(s, emails.a1)
        s.commit()
    settle()
    assert len(smtp.envelopes) == 1


def test_nothing_is_sent_or_attempted_when_smtp_is_unset(engine, emails, smtp, monkeypatch):
    monkeypatch.delenv("KAPNOTES_SMTP_URL")
    assert get_settings().smtp is None
    with Session(engine, expire_on_commit=False) as s:
        add_urgent(s, emails.a1)
        assert s.info == {}  # nothing remembered, no hook registered
        s.commit()
    settle()
    assert smtp.envelopes == []


def test_only_the_patients_care_team_prescribers_are_written_to(engine, emails, smtp):
    with session_scope(engine) as s:
        add_urgent(s, emails.b1)
    settle()
    assert [e.rcpt_tos for e in smtp.envelopes] == [["pia@clinic.example"]]
    assert all("paul" not in t.lower() for t in smtp.texts())


def test_no_message_to_an_inactive_prescriber_or_one_without_an_address(engine, emails, smtp):
    with session_scope(engine) as s:
        admin.set_active(s, emails.ada, emails.pia.id, False)
        admin.set_email(s, emails.ada, emails.paul.id, "")
        add_urgent(s, emails.a1)
        add_urgent(s, emails.b1)
    settle()
    assert smtp.envelopes == []


def test_a_second_prescriber_on_the_team_gets_their_own_message(engine, emails, smtp):
    from kapnotes import auth
    from tests.factories import PASSWORD

    with session_scope(engine) as s:
        team_a = s.get(Patient, emails.a1).care_team_id
        quinn = auth.create_user(s, emails.ada, "quinn", "prescriber", "Quinn Quill", PASSWORD, "MD")
        admin.set_email(s, emails.ada, quinn.id, "quinn@clinic.example")
        admin.add_member(s, emails.ada, team_a, quinn.id)
    with session_scope(engine) as s:
        add_urgent(s, emails.a1)
    settle()
    assert sorted(e.rcpt_tos[0] for e in smtp.envelopes) == ["paul@clinic.example", "quinn@clinic.example"]
    assert all(len(e.rcpt_tos) == 1 for e in smtp.envelopes)  # nobody sees another's address


def test_a_send_failure_is_logged_without_patient_data_and_the_commit_stands(engine, emails, monkeypatch, caplog):
    monkeypatch.setenv("KAPNOTES_SMTP_URL", f"smtp://127.0.0.1:{free_port()}")  # nobody listens there
    caplog.set_level(logging.WARNING, logger="kapnotes.notify")
    with session_scope(engine) as s:
        item_id = add_urgent(s, emails.a1).id
    settle()
    with Session(engine) as s:
        assert s.get(DoseAdjustment, item_id) is not None  # the item is saved all the same
    assert "not sent" in caplog.text
    for marker in PATIENT_MARKERS + ("paul@clinic.example",):
        assert marker.lower() not in caplog.text.lower(), marker


def test_message_text_counts():
    assert notify.message_text(1) == "1 urgent item is waiting in KAPNotes. Sign in to review it.\n"
    assert notify.message_text(3) == "3 urgent items are waiting in KAPNotes. Sign in to review them.\n"


def test_integration_bp_190_115_dose_emails_the_prescriber_once(engine, emails, smtp):
    """The real path: a dose with BP 190/115 for a patient with an active plan → engine hold →
    urgent queue item (no forwarding) → one message to the team's prescriber, no patient data.
    Needs the safety loop (suggestions calling ``urgent_item_created``)."""
    from kapnotes.doses import DoseInput, add_dose

    tz = get_settings().tz
    taken = datetime.combine(utcnow().astimezone(tz).date() - timedelta(days=1), time(20), tz)
    with session_scope(engine) as s:
        add_dose(s, emails.tina, emails.a1, DoseInput(taken_at=taken, dose_mg=150, formulation="odt",
                                                      bp_systolic_pre=190, bp_diastolic_pre=115))
    settle()
    with Session(engine) as s:
        urgent = s.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == emails.a1,
                                                     DoseAdjustment.status == "pending",
                                                     col(DoseAdjustment.urgent))).all()
        assert len(urgent) == 1
    assert len(smtp.envelopes) == 1
    assert smtp.envelopes[0].rcpt_tos == ["paul@clinic.example"]
    text = smtp.texts()[0]
    assert "1 urgent item is waiting in KAPNotes." in text
    for marker in PATIENT_MARKERS + ("hold", " mg", "blood"):
        assert marker.lower() not in text.lower(), marker
    (body,) = smtp.bodies()  # (the Message-ID and Date headers are digits that may contain anything)
    assert body == "1 urgent item is waiting in KAPNotes. Sign in to review it.\n"


# --- the prescriber's count -----------------------------------------------------------------------


class Statements:
    def __init__(self, engine) -> None:
        self.engine, self.seen = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._hook)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith(("BEGIN", "SAVEPOINT", "RELEASE", "COMMIT", "ROLLBACK")):
            self.seen.append(statement)


def test_urgent_counts_are_scoped_to_the_prescribers_patients(engine, clinic):
    with session_scope(engine) as s:
        assert notify.urgent_counts(s, clinic.paul) == notify.QueueCounts(0, 0)
        add_urgent(s, clinic.a1)
        add_urgent(s, clinic.a2)
        add_urgent(s, clinic.a2, urgent=False)
        add_urgent(s, clinic.b1)
        decided = add_urgent(s, clinic.a1)
        decided.status = "rejected"  # decided items no longer wait
        s.add(decided)
    with Session(engine) as s:
        with Statements(engine) as st:
            counts = notify.urgent_counts(s, clinic.paul)
        assert counts == notify.QueueCounts(urgent=2, waiting=3)
        assert len(st.seen) == 1  # one COUNT query, cheap enough for every rerun
        assert notify.urgent_counts(s, clinic.pia) == notify.QueueCounts(urgent=1, waiting=1)
        for other in (clinic.tina, clinic.ada):
            with pytest.raises(PermissionDenied):
                notify.urgent_counts(s, other)


# --- the therapist's decisions since the last visit ----------------------------------------------


def decided(s: Session, clinic, patient_id: int, status: str, days_ago: float, *, sent_by=None, created_by=None,
            by=None, dose: float | None = 200, rationale: str = "Tolerating well.") -> DoseAdjustment:
    plan = s.exec(select(TreatmentPlan).where(TreatmentPlan.patient_id == patient_id)
                  .order_by(col(TreatmentPlan.version_number).desc())).first()
    row = DoseAdjustment(
        patient_id=patient_id, kind="proposal" if created_by else "suggestion", status=status, action="increase",
        plan_id=plan.id, proposed_dose_mg=200, proposed_interval_days=7,
        created_by_id=created_by.id if created_by else None, sent_by_id=(sent_by or created_by).id,
        sent_at=utcnow() - timedelta(days=days_ago + 1), decided_by_id=(by or clinic.paul).id,
        decided_at=utcnow() - timedelta(days=days_ago), decision_rationale=rationale,
        decided_dose_mg=dose if status != "rejected" else None,
        decided_interval_days=7 if status != "rejected" else None,
    )
    s.add(row)
    s.flush()
    return row


def test_decisions_on_the_therapists_items_since_the_last_visit(engine, clinic):
    with session_scope(engine) as s:
        sent = decided(s, clinic, clinic.a1, "approved", 1, sent_by=clinic.tina)
        proposed = decided(s, clinic, clinic.a2, "rejected", 2, created_by=clinic.tina,
                           rationale="Not while BP is high.")
        modified = decided(s, clinic, clinic.a1, "modified", 3, sent_by=clinic.tina, dose=175)
        decided(s, clinic, clinic.a1, "approved", 20, sent_by=clinic.tina)  # before the first-visit window
        decided(s, clinic, clinic.b1, "approved", 1, sent_by=clinic.theo, by=clinic.pia)  # theo's
        pending = decided(s, clinic, clinic.a1, "approved", 1, sent_by=clinic.tina)
        pending.status, pending.decided_at = "pending", None
        s.add(pending)
    with Session(engine) as s:
        assert notify.decisions_count(s, clinic.tina) == 3
        rows = notify.decisions_since_last_visit(s, clinic.tina)
        assert [d.adjustment_id for d in rows] == [sent.id, proposed.id, modified.id]  # newest first
        first = rows[0]
        assert (first.patient_name, first.mrn, first.status, first.decided_by) == ("Alice Able", "A-001", "approved",
                                                                                   "Paul Park, MD")
        assert (first.plan_dose_mg, first.decided_dose_mg, first.plan_interval_days) == (150, 200, 7)
        assert rows[1].rationale == "Not while BP is high."
        assert rows[2].decided_dose_mg == 175
        assert notify.decisions_count(s, clinic.theo) == 1
        assert [d.patient_name for d in notify.decisions_since_last_visit(s, clinic.theo)] == ["Bea Brook"]
        s.commit()
        for other in (clinic.paul, clinic.ada):
            with pytest.raises(PermissionDenied):
                notify.decisions_count(s, other)
            with pytest.raises(PermissionDenied):
                notify.decisions_since_last_visit(s, other)
            with pytest.raises(PermissionDenied):
                notify.mark_decisions_seen(s, other)


def test_decisions_are_scoped_by_care_team(engine, clinic):
    """An item tina sent for a patient who is no longer on her team (moved to team B) is not shown."""
    with session_scope(engine) as s:
        decided(s, clinic, clinic.b1, "approved", 1, sent_by=clinic.tina, by=clinic.pia)
    with Session(engine) as s:
        assert notify.decisions_count(s, clinic.tina) == 0
        assert notify.decisions_since_last_visit(s, clinic.tina) == []


def test_mark_as_seen_hides_what_was_shown_and_keeps_what_came_later(engine, clinic):
    with session_scope(engine) as s:
        old = decided(s, clinic, clinic.a1, "approved", 2, sent_by=clinic.tina)
    with session_scope(engine) as s:
        shown = notify.decisions_since_last_visit(s, clinic.tina)
        assert [d.adjustment_id for d in shown] == [old.id]
        newer = decided(s, clinic, clinic.a2, "rejected", 1, created_by=clinic.tina)  # arrives while the list is open
        notify.mark_decisions_seen(s, clinic.tina, max(d.decided_at for d in shown))
    with Session(engine) as s:
        assert [d.adjustment_id for d in notify.decisions_since_last_visit(s, clinic.tina)] == [newer.id]
        seen_at = s.get(User, clinic.tina.id).decisions_seen_at
        assert abs(seen_at - old.decided_at) < timedelta(milliseconds=1)
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "decisions.seen")).one()
        assert (ev.actor_id, ev.record_type, ev.record_id, ev.patient_id) == (clinic.tina.id, "user",
                                                                              str(clinic.tina.id), None)
        assert "Alice" not in ev.detail and "A-001" not in ev.detail
    with session_scope(engine) as s:
        notify.mark_decisions_seen(s, clinic.tina)  # now
        notify.mark_decisions_seen(s, clinic.tina, utcnow() - timedelta(days=30))  # never backwards
    with Session(engine) as s:
        assert notify.decisions_count(s, clinic.tina) == 0
        assert s.get(User, clinic.tina.id).decisions_seen_at > newer.decided_at
