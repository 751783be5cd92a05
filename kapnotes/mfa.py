"""Second factor: TOTP (RFC 6238, 6 digits, 30 s) with single-use recovery codes.

The TOTP secret lives in ``users.totp_secret``. It is shown once, as a QR code and as text,
while the person enrols, and never again: no page, export or audit event carries it. It is not
encrypted at rest (a key would have to live beside the database to be usable by the app), so a
database backup must be guarded like the password hashes it sits next to. Recovery codes are
stored as ``salt$sha256(salt + code)`` and each works once. A code's 30-second step is remembered,
so a code seen over someone's shoulder cannot be replayed in the same window.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import secrets
from datetime import datetime

import pyotp
import segno
from sqlmodel import Session, select

from kapnotes import audit
from kapnotes.actor import Actor
from kapnotes.config import get_settings, require_mfa
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import RecoveryCode, Role, User
from kapnotes.timeutil import utcnow

RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
VALID_WINDOW = 1  # accept the previous and next 30-s step too (clock drift)


def required_for(role: str) -> bool:
    return require_mfa() and role in (Role.prescriber, Role.admin)


def enabled(user: User) -> bool:
    return user.totp_enabled_at is not None and bool(user.totp_secret)


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=get_settings().clinic_name or "KAPNotes")


def qr_png(uri: str) -> bytes:
    """The QR code as PNG bytes, made here (segno writes PNG itself): nothing leaves the machine."""
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="png", scale=6, border=4)
    return buf.getvalue()


def qr_svg_data_uri(uri: str) -> str:
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=4)


def begin_enrolment(session: Session, user_id: int) -> tuple[str, str]:
    """A fresh secret for an account not yet enrolled; returns (secret, otpauth URI). The secret
    does nothing until ``confirm_enrolment`` sees a code made from it."""
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        raise ValidationError({"user": "No such user."})
    if enabled(user):
        raise ValidationError({"code": "A second factor is already set up. Turn it off first to set up a new one."})
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.add(user)
    session.flush()
    return user.totp_secret, provisioning_uri(user.totp_secret, user.username)


def pending_secret(session: Session, user_id: int) -> str | None:
    user = session.get(User, user_id)
    return user.totp_secret if user is not None and not enabled(user) else None


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]+", "", (code or "")).lower()


def _totp_step(user: User, code: str, now: datetime) -> int | None:
    """The step this 6-digit code belongs to, if it is valid now and newer than the last accepted."""
    code = _normalise(code)
    if not user.totp_secret or not re.fullmatch(r"\d{6}", code):
        return None
    totp = pyotp.TOTP(user.totp_secret)
    current = totp.timecode(now)
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return None  # already used
            return step
    return None


def _hash_code(code: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(16)
    return f"{salt}${hashlib.sha256((salt + _normalise(code)).encode()).hexdigest()}"


def _new_recovery_codes(session: Session, user_id: int) -> list[str]:
    for old in session.exec(select(RecoveryCode).where(RecoveryCode.user_id == user_id)).all():
        session.delete(old)
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
        session.add(RecoveryCode(user_id=user_id, code_hash=_hash_code(raw)))
    session.flush()
    return codes


def confirm_enrolment(session: Session, user_id: int, code: str, now: datetime | None = None) -> list[str]:
    """The first code proves the phone has the secret: the factor is on. Returns the recovery
    codes, in clear this once (only their hashes are kept)."""
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None or not user.totp_secret or enabled(user):
        raise ValidationError({"code": "Start the set-up again."})
    step = _totp_step(user, code, now)
    if step is None:
        raise ValidationError({"code": "That code did not match. Enter the 6 digits your app shows now."})
    user.totp_enabled_at = now
    user.totp_last_step = step
    session.add(user)
    codes = _new_recovery_codes(session, user_id)
    audit.record(session, None, "user.mfa_enable", "user", user_id, actor_username=user.username)
    return codes


def verify(session: Session, user_id: int, code: str, now: datetime | None = None) -> str | None:
    """A sign-in's second factor: a current TOTP code or an unused recovery code (used up here).
    Returns "totp" or "recovery", or None. The caller counts a None as a failed sign-in."""
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None or not enabled(user):
        return None
    step = _totp_step(user, code, now)
    if step is not None:
        user.totp_last_step = step
        session.add(user)
        return "totp"
    wanted = _normalise(code)
    if not re.fullmatch(r"[a-z0-9]{10}", wanted):
        return None
    for row in session.exec(select(RecoveryCode).where(RecoveryCode.user_id == user_id,
                                                       RecoveryCode.used_at.is_(None))).all():  # type: ignore[union-attr]
        salt = row.code_hash.split("$", 1)[0]
        if hmac.compare_digest(_hash_code(wanted, salt), row.code_hash):
            row.used_at = now
            session.add(row)
            audit.record(session, None, "user.recovery_code_used", "user", user_id, actor_username=user.username)
            return "recovery"
    return None


def recovery_codes_left(session: Session, user_id: int) -> int:
    return len(session.exec(select(RecoveryCode.id).where(RecoveryCode.user_id == user_id,
                                                          RecoveryCode.used_at.is_(None))).all())  # type: ignore[union-attr]


def disable(session: Session, actor: Actor, code: str, now: datetime | None = None) -> None:
    """Turn my second factor off: a current code (or a recovery code) is required, and not when
    the clinic requires one for my role."""
    if required_for(actor.role):
        raise PermissionDenied("Your clinic requires a second factor for your role; it cannot be turned off.")
    if verify(session, actor.id, code, now) is None:
        audit.record(session, actor, "user.mfa_disable_failed", "user", actor.id)
        raise ValidationError({"code": "That code did not match."})
    _clear(session, actor.id)
    audit.record(session, actor, "user.mfa_disable", "user", actor.id)


def new_recovery_codes(session: Session, actor: Actor, code: str, now: datetime | None = None) -> list[str]:
    """Replace my recovery codes (the old ones stop working); a current code is required."""
    if verify(session, actor.id, code, now) is None:
        raise ValidationError({"code": "That code did not match."})
    codes = _new_recovery_codes(session, actor.id)
    audit.record(session, actor, "user.recovery_codes_new", "user", actor.id)
    return codes


def _clear(session: Session, user_id: int) -> None:
    user = session.get(User, user_id)
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.add(user)
    for row in session.exec(select(RecoveryCode).where(RecoveryCode.user_id == user_id)).all():
        session.delete(row)
    session.flush()


def admin_reset(session: Session, actor: Actor, user_id: int) -> None:
    """An admin turns off a user's second factor (a lost phone and codes); they enrol again."""
    if actor.role != Role.admin:
        raise PermissionDenied("Only an administrator can reset a second factor.")
    _clear(session, user_id)
    audit.record(session, actor, "user.mfa_reset", "user", user_id)
