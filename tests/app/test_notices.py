"""AppTest of the sidebar notices app.py shows on every page (issue 13 §5): the prescriber's urgent
count (a link to the review queue) and the therapist's decisions since the last visit."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select
from streamlit.testing.v1 import AppTest

from kapnotes.db import session_scope
from kapnotes.dosing import suggestions
from kapnotes.models import DoseAdjustment, User
from kapnotes.timeutil import utcnow
from tests.helpers.apptest import run_page
from tests.helpers.uitext import rendered_text


def app_as(username: str) -> AppTest:
    """app.py for a signed-in user: navigation, the sidebar notices, then the role's first page."""
    at = run_page("app", username)
    assert not at.exception, at.exception
    return at


def sidebar_text(at) -> str:
    return rendered_text_of(at.sidebar)


def rendered_text_of(node) -> str:
    class _Wrap:
        _tree = node

    return rendered_text(_Wrap())


def urgent(engine, patient_id: int, is_urgent: bool = True) -> None:
    with session_scope(engine) as s:
        s.add(DoseAdjustment(patient_id=patient_id, kind="suggestion", status="pending", action="hold",
                             urgent=is_urgent, sent_at=utcnow()))



def test_prescriber_sees_the_urgent_count_in_the_sidebar_on_every_page(engine, clinic):
    at = app_as("paul")
    assert at.title[0].value == "Patients"
    assert "urgent" not in sidebar_text(at)  # nothing waiting: nothing shown
    urgent(engine, clinic.a1)
    urgent(engine, clinic.a2)
    urgent(engine, clinic.a2, is_urgent=False)
    urgent(engine, clinic.b1)  # another team's patient: not Paul's to count
    at = app_as("paul")
    text = sidebar_text(at)
    assert "2 urgent items waiting (3 in the queue)" in text
    assert "Alice" not in text and "A-001" not in text
    link = next(el for el in at.sidebar.get("page_link") if "urgent items waiting" in el.proto.label)
    assert link.proto.page == "review_queue"  # the review queue page
    # (AppTest cannot show it on a second page: with ``pages/`` + ``st.navigation``, its
    # switch_page runs the page file without app.py; a browser session always runs app.py.)
    # Pia sees her own team's item only
    assert "1 urgent item waiting" in sidebar_text(app_as("pia"))


def test_therapist_sees_a_decision_on_her_proposal_until_marked_as_seen(engine, clinic):
    hostile = "Mara **Bold** [x](http://evil.example)"
    with session_scope(engine) as s:
        from kapnotes.models import Patient

        s.get(Patient, clinic.a1).full_name = hostile
        s.flush()
        item = suggestions.propose(s, clinic.tina, clinic.a1, 200, 7, "Anxiety still high after 6 weeks.")
    with session_scope(engine) as s:
        suggestions.decide(s, clinic.paul, item.id, "reject", "Not while her BP is <b>high</b>.")
    at = app_as("tina")
    title = "1 decision on your proposals since your last visit"
    (exp,) = [e for e in at.sidebar if e.type == "expander" and title in e.label]
    text = rendered_text_of(exp)
    assert "Rejected" in text
    # escaped, the URL scheme broken by a word joiner (no autolink), with the MRN
    assert (r"Mara \*\*Bold\*\* \[x\](h" + "\u2060" + "ttp://evil.example)") in text and "(A-001)" in text
    assert "Paul Park, MD" in text
    assert "Increase: 200 mg every 7 days — not made; the plan stays 150 mg every 7 days" in text
    assert r"Not while her BP is \<b\>high\</b\>." in text
    assert "America/New_York" not in text and ("EST" in text or "EDT" in text)  # clinic time
    assert "Theo" not in sidebar_text(at)
    # the prescriber has no such line, and another therapist sees nothing of Tina's
    assert title not in sidebar_text(app_as("paul"))
    assert "decision" not in sidebar_text(app_as("theo"))

    next(b for b in at.button if b.label == "Mark as seen").click()
    at.run()
    assert not at.exception, at.exception
    with Session(engine) as s:
        seen = s.exec(select(User.decisions_seen_at).where(User.id == clinic.tina.id)).one()
        decided_at = s.get(DoseAdjustment, item.id).decided_at
        assert abs(seen - decided_at) < timedelta(milliseconds=1)
    at = app_as("tina")  # a later visit: still gone
    assert "decision" not in sidebar_text(at)
