"""Browser, phone-sized (390×844): a clinician makes a check-in link and its handout, the patient
opens the QR code's address, reports a dose and a PHQ-9 with item 9 = 1 and sees the crisis
resources; the therapist's dashboard shows the patient-reported dose and the prescriber's queue
the urgent hold. Expired and revoked links are refused; a double tap stores one entry; axe-core
finds no WCAG 2.1 AA violation on the patient's pages.

The test runs its own server (its own database), so the hold it raises touches no other test.
"""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.helpers.axe import violations
from tests.helpers.browser import ROOT, sign_in, start_server, stop_server, wait_idle
from tests.helpers.cli import kap

MRN = "KAP-1002"  # tsato's patient, prescriber mokafor
PHONE = {"width": 390, "height": 844}
REFUSAL = "This check-in link does not work."
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser_type_launch_args):
    db_path = tmp_path_factory.mktemp("checkin") / "checkin.db"
    proc, base = start_server(db_path)
    yield {"url": base, "db_url": f"sqlite:///{db_path}", "dir": db_path.parent}
    stop_server(proc)


def _cli(server, *args) -> str:
    done = kap(server["db_url"], "checkin-link", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _qr_url(pdf_path) -> str:
    png_root = pdf_path.with_suffix("")
    subprocess.run(["pdftoppm", "-png", "-r", "200", "-f", "1", "-l", "1", str(pdf_path), str(png_root)], check=True)
    png = next(pdf_path.parent.glob(png_root.name + "*.png"))
    return subprocess.run(["zbarimg", "-q", "--raw", str(png)], capture_output=True, text=True,
                          check=True).stdout.strip()


def _db(server):
    from kapnotes.db import make_engine

    return make_engine(server["db_url"])


def _patient_doses(server) -> list:
    from sqlmodel import select

    from kapnotes.db import session_scope
    from kapnotes.models import DoseEntry, Patient

    engine = _db(server)
    try:
        with session_scope(engine) as s:
            pid = s.exec(select(Patient.id).where(Patient.mrn == MRN)).one()
            return list(s.exec(select(DoseEntry.id).where(DoseEntry.patient_id == pid,
                                                          DoseEntry.source == "patient")).all())
    finally:
        engine.dispose()


def _pending_hold(server) -> int:
    from sqlmodel import col, select

    from kapnotes.db import session_scope
    from kapnotes.models import DoseAdjustment, Patient

    engine = _db(server)
    try:
        with session_scope(engine) as s:
            pid = s.exec(select(Patient.id).where(Patient.mrn == MRN)).one()
            row = s.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == pid,
                                                      DoseAdjustment.status == "pending",
                                                      DoseAdjustment.action == "hold")
                         .order_by(col(DoseAdjustment.id).desc())).first()
            assert row is not None and row.urgent and "suicidality" in row.flags
            return row.id
    finally:
        engine.dispose()


def _pick(page, label: str, option: str) -> None:
    page.get_by_role("radiogroup", name=label).get_by_text(option, exact=True).click()


def test_patient_checks_in_from_the_phone(browser, server):
    if not AXE.exists():
        pytest.skip("axe-core is not installed (make test runs npm install)")
    handout = server["dir"] / "handout.pdf"
    printed = _cli(server, "--patient", MRN, "--ask-scales", "--handout", str(handout), "--base-url", server["url"])
    url = _qr_url(handout)
    assert url == printed.splitlines()[0] and url.startswith(server["url"] + "/checkin?t=")

    # --- the patient, on a phone -------------------------------------------------------------------
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, bypass_csp=True)  # axe is injected
    p = ctx.new_page()
    p.goto(url)
    expect(p.get_by_role("heading", name=re.compile(r"^Hello "))).to_be_visible(timeout=30000)
    wait_idle(p)
    assert "t=" not in p.url  # the token left the address bar
    expect(p.get_by_text("Sign in")).to_have_count(0)
    assert violations(p, str(AXE)) == []
    p.get_by_label("How many minutes did you keep it in your mouth?").fill("10")
    _pick(p, "Then did you spit it out or swallow it?", "Spit it out")
    _pick(p, "Anxiety before the dose (0 = none, 10 = worst)", "6")
    _pick(p, "Anxiety after the dose (0 = none, 10 = worst)", "2")
    _pick(p, "How spaced-out or unreal did you feel? (0 = not at all, 10 = completely)", "5")
    _pick(p, "Nausea (feeling sick to your stomach)", "Mild")
    from kapnotes import scales

    for i, text in enumerate(scales.PHQ9.items, start=1):
        _pick(p, f"{i}. {text}", "Several days" if i in (1, 9) else "Not at all")
    p.get_by_role("button", name="Send my check-in").dblclick()  # a double tap
    wait_idle(p)
    expect(p.get_by_text("Thank you. Your check-in was sent")).to_be_visible(timeout=30000)
    expect(p.get_by_text("988", exact=False).first).to_be_visible()
    assert violations(p, str(AXE)) == []
    assert len(_patient_doses(server)) == 1
    hold = _pending_hold(server)
    # a reload (a new Streamlit session, no token in the URL) keeps the check-in: the HttpOnly cookie
    (cookie,) = [c for c in ctx.cookies() if c["name"] == "kapnotes_checkin"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["expires"] > 0
    p.reload()
    expect(p.get_by_role("button", name="Send my check-in")).to_be_visible(timeout=30000)
    assert "t=" not in p.url
    # revoking ends it: the next reload shows the one generic page
    _cli(server, "--patient", MRN, "--revoke")
    p.reload()
    expect(p.get_by_text(REFUSAL)).to_be_visible(timeout=30000)
    expect(p.get_by_role("button", name="Send my check-in")).to_have_count(0)
    ctx.close()

    # --- the therapist's dashboard -------------------------------------------------------------------
    ctx_t = browser.new_context()
    t = ctx_t.new_page()
    sign_in(t, server["url"], "tsato")
    expect(t.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    row = t.locator("[data-testid='stHorizontalBlock']").filter(has_text=MRN)
    row.get_by_role("button", name="Open").first.click()
    wait_idle(t)
    t.get_by_role("link", name="Patient dashboard").first.click()
    wait_idle(t)
    expect(t.get_by_text("Latest patient-reported dose", exact=False)).to_be_visible(timeout=30000)
    ctx_t.close()

    # --- the prescriber's queue ----------------------------------------------------------------------------
    ctx_p = browser.new_context()
    q = ctx_p.new_page()
    sign_in(q, server["url"], "mokafor")
    expect(q.get_by_role("heading", name="Patients")).to_be_visible(timeout=20000)
    q.get_by_role("link", name="Review queue").first.click()
    wait_idle(q)
    q.get_by_role("combobox", name="Item to review").click()
    # the hold (its id checked in the database above) is the patient's urgent item in the picker
    assert hold
    expect(q.get_by_role("option", name=re.compile(rf"^Urgent · .*\({MRN}\)"))).to_be_visible(timeout=20000)
    ctx_p.close()


def test_expired_and_revoked_links_are_refused(browser, server):
    from sqlmodel import select

    from kapnotes import checkin
    from kapnotes.db import session_scope
    from kapnotes.models import CheckinLink
    from kapnotes.timeutil import utcnow

    expired_url = _cli(server, "--patient", MRN, "--base-url", server["url"]).splitlines()[0]
    engine = _db(server)
    try:
        with session_scope(engine) as s:
            link = s.exec(select(CheckinLink).where(
                CheckinLink.token_hash == checkin.hash_token(expired_url.split("t=", 1)[1]))).one()
            link.expires_at = utcnow() - timedelta(minutes=1)
            s.add(link)
    finally:
        engine.dispose()
    revoked_url = _cli(server, "--patient", MRN, "--base-url", server["url"]).splitlines()[0]
    _cli(server, "--patient", MRN, "--revoke")
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, bypass_csp=True)  # axe is injected
    for url in (expired_url, revoked_url):
        p = ctx.new_page()
        p.goto(url)
        expect(p.get_by_text(REFUSAL)).to_be_visible(timeout=30000)
        expect(p.get_by_role("button", name="Send my check-in")).to_have_count(0)
        if AXE.exists():
            assert violations(p, str(AXE)) == []
        p.close()
    ctx.close()
