"""Browser: a second factor set up on My account, then sign-in with a TOTP code and with a
recovery code (which works once). Codes are computed with pyotp from the secret in the database."""

import re
import time

import pyotp
import pytest
from playwright.sync_api import expect
from sqlmodel import Session, delete, select

from kapnotes.db import make_engine
from kapnotes.models import RecoveryCode, User
from tests.helpers.browser import sign_in, wait_app, wait_idle


@pytest.fixture(autouse=True)
def _second_factor_removed_afterwards(app_server):
    """The demo server is shared by every browser test: leave rbennett as the others expect him
    (signing in with a password alone)."""
    yield
    engine = make_engine(app_server["db_url"])
    with Session(engine) as s:
        user = s.exec(select(User).where(User.username == "rbennett")).one()
        s.exec(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        user.totp_secret = user.totp_enabled_at = user.totp_last_step = None
        s.add(user)
        s.commit()
    engine.dispose()


def _user(db_url: str, username: str) -> User:
    engine = make_engine(db_url)
    with Session(engine) as s:
        user = s.exec(select(User).where(User.username == username)).one()
        s.expunge(user)
    engine.dispose()
    return user


def _fresh_code(db_url: str, username: str) -> str:
    """A code for a 30-s step after the last one accepted (a code is never accepted twice)."""
    user = _user(db_url, username)
    totp = pyotp.TOTP(user.totp_secret)
    step = max(totp.timecode(time.time()), (user.totp_last_step or 0) + 1)
    return totp.generate_otp(step)


def _sign_out(page) -> None:
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.get_by_text("You have signed out.")).to_be_visible(timeout=20000)


def _second_step(page, code: str) -> None:
    expect(page.get_by_role("heading", name="Second step: your code")).to_be_visible(timeout=20000)
    page.get_by_label("Code").fill(code)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()


def test_enrol_then_sign_in_with_a_code_and_with_a_recovery_code(page, app_server):
    base, db_url = app_server["url"], app_server["db_url"]
    sign_in(page, base, "rbennett", path="account")
    expect(page.get_by_role("heading", name="My account")).to_be_visible(timeout=20000)
    page.get_by_role("button", name="Set up a second factor").click()
    wait_idle(page)
    expect(page.get_by_text("QR code for your authenticator app")).to_be_visible(timeout=20000)
    expect(page.locator("[data-testid='stImage'] img")).to_be_visible()
    secret = _user(db_url, "rbennett").totp_secret
    assert secret and page.get_by_text(secret).count() >= 1
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    wait_idle(page)
    expect(page.get_by_text("Your second factor is on.")).to_be_visible(timeout=20000)
    codes = re.findall(r"\b[a-z0-9]{5}-[a-z0-9]{5}\b", page.locator("[data-testid='stMain']").inner_text())
    assert len(codes) == 10
    assert _user(db_url, "rbennett").totp_enabled_at is not None

    # sign in again: the password alone is not enough
    _sign_out(page)
    sign_in(page, base, "rbennett", path="account")
    assert "/auth/sign-in" in page.url
    _second_step(page, _fresh_code(db_url, "rbennett"))
    wait_app(page)
    expect(page.get_by_role("heading", name="My account")).to_be_visible(timeout=20000)

    # with a recovery code, once
    _sign_out(page)
    sign_in(page, base, "rbennett")
    _second_step(page, codes[0])
    wait_app(page)
    expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible(timeout=20000)
    _sign_out(page)
    sign_in(page, base, "rbennett")
    _second_step(page, codes[0])
    expect(page.get_by_text(re.compile("That code did not work"))).to_be_visible(timeout=20000)
    assert "/auth/sign-in" in page.url
