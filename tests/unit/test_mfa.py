"""Second factor: TOTP enrolment, codes, single-use recovery codes, required roles (both backends)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyotp
import pytest
from sqlmodel import col, select

from kapnotes import auth, mfa
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import AuditEvent, RecoveryCode, User
from tests.factories import PASSWORD

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def _code(secret: str, when: datetime) -> str:
    return pyotp.TOTP(secret).at(when)


def _enrol(session, user_id, when=T0) -> tuple[str, list[str]]:
    secret, uri = mfa.begin_enrolment(session, user_id)
    return secret, mfa.confirm_enrolment(session, user_id, _code(secret, when), now=when)


def test_enrolment_needs_a_first_code_and_gives_ten_hashed_recovery_codes(session, clinic):
    secret, uri = mfa.begin_enrolment(session, clinic.paul.id)
    assert uri.startswith("otpauth://totp/") and secret in uri and "paul" in uri
    assert mfa.qr_png(uri).startswith(b"\x89PNG") and mfa.qr_svg_data_uri(uri).startswith("data:image/svg+xml")
    user = session.get(User, clinic.paul.id)
    assert not mfa.enabled(user)  # nothing changes for sign-in until a code confirms it
    with pytest.raises(ValidationError):
        mfa.confirm_enrolment(session, clinic.paul.id, "000000", now=T0)
    codes = mfa.confirm_enrolment(session, clinic.paul.id, _code(secret, T0), now=T0)
    assert len(codes) == 10 and len(set(codes)) == 10
    rows = session.exec(select(RecoveryCode).where(RecoveryCode.user_id == clinic.paul.id)).all()
    assert len(rows) == 10
    for code in codes:
        assert all(code.replace("-", "") not in r.code_hash for r in rows)
    assert mfa.enabled(session.get(User, clinic.paul.id))
    events = session.exec(select(AuditEvent).where(AuditEvent.action == "user.mfa_enable")).all()
    assert len(events) == 1 and secret not in (events[0].detail or "")


def test_sign_in_asks_for_the_code_after_the_password(session, clinic):
    secret, _ = _enrol(session, clinic.paul.id)
    r = auth.authenticate(session, "paul", PASSWORD, now=T0)
    assert r.ok and r.steps == ("code",) and not r.complete
    assert mfa.verify(session, clinic.paul.id, "123456", now=T0 + timedelta(minutes=1)) is None
    later = T0 + timedelta(minutes=2)
    assert mfa.verify(session, clinic.paul.id, _code(secret, later), now=later) == "totp"
    # the same code is not accepted twice (seen over a shoulder)
    assert mfa.verify(session, clinic.paul.id, _code(secret, later), now=later) is None


def test_a_recovery_code_works_once(session, clinic):
    _, codes = _enrol(session, clinic.paul.id)
    assert mfa.verify(session, clinic.paul.id, codes[3].upper(), now=T0) == "recovery"
    assert mfa.verify(session, clinic.paul.id, codes[3], now=T0) is None
    assert mfa.recovery_codes_left(session, clinic.paul.id) == 9
    assert mfa.verify(session, clinic.paul.id, codes[4].replace("-", " "), now=T0) == "recovery"


def test_wrong_codes_count_toward_the_wait(session, clinic):
    _enrol(session, clinic.paul.id)
    user = session.get(User, clinic.paul.id)
    waits = [auth.record_failure(session, user, "bad second-factor code", now=T0) for _ in range(6)]
    assert waits == [0, 0, 0, 0, 1, 2]
    # a right password does not clear them while a code is still owed
    r = auth.authenticate(session, "paul", PASSWORD, now=T0 + timedelta(seconds=3))
    assert r.steps == ("code",)
    assert session.get(User, clinic.paul.id).failed_logins == 6
    auth.finish_sign_in(session, clinic.paul.id, now=T0 + timedelta(seconds=4))
    assert session.get(User, clinic.paul.id).failed_logins == 0


def test_required_for_prescribers_and_admins_when_configured(session, clinic, monkeypatch):
    assert auth.authenticate(session, "paul", PASSWORD, now=T0).complete
    monkeypatch.setenv("KAPNOTES_REQUIRE_MFA", "1")
    assert auth.authenticate(session, "paul", PASSWORD, now=T0).steps == ("enrol",)
    assert auth.authenticate(session, "ada", PASSWORD, now=T0).steps == ("enrol",)
    assert auth.authenticate(session, "tina", PASSWORD, now=T0).complete  # therapists may choose
    _enrol(session, clinic.paul.id)
    assert auth.authenticate(session, "paul", PASSWORD, now=T0).steps == ("code",)
    with pytest.raises(PermissionDenied):
        mfa.disable(session, clinic.paul, "000000")


def test_disable_needs_a_code(session, clinic):
    secret, _ = _enrol(session, clinic.tina.id)
    with pytest.raises(ValidationError):
        mfa.disable(session, clinic.tina, "000000")
    later = T0 + timedelta(minutes=1)
    mfa.disable(session, clinic.tina, _code(secret, later), now=later)
    user = session.get(User, clinic.tina.id)
    assert user.totp_secret is None and not mfa.enabled(user)
    assert session.exec(select(RecoveryCode).where(RecoveryCode.user_id == clinic.tina.id)).all() == []
    assert auth.authenticate(session, "tina", PASSWORD, now=T0).complete


def test_admin_resets_a_lost_second_factor(session, clinic):
    _enrol(session, clinic.tina.id)
    with pytest.raises(PermissionDenied):
        mfa.admin_reset(session, clinic.paul, clinic.tina.id)
    mfa.admin_reset(session, clinic.ada, clinic.tina.id)
    assert not mfa.enabled(session.get(User, clinic.tina.id))
    ev = session.exec(select(AuditEvent).where(AuditEvent.action == "user.mfa_reset")
                      .order_by(col(AuditEvent.id))).all()
    assert ev[-1].actor_id == clinic.ada.id
