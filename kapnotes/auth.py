"""Accounts: Argon2id password hashes, generic sign-in failures, growing delays, server-side sessions.

A failed sign-in never says whether the user exists. After ``max_failed_logins`` failures in a
row, each further failure makes the account wait before the next attempt is even checked: 1 s,
then doubling up to ``lockout_minutes`` (NIST SP 800-63B §5.2.2 throttling). A colleague's wrong
guesses therefore cost them a short wait, never a lock that only an administrator can lift.
The same growing delay applies per source address and to unknown usernames (kept in the database,
so every app process behind a balancer sees them: kapnotes.throttle),
so the wait itself says nothing about which accounts exist.

A signed-in browser holds a random 256-bit session id in an HttpOnly cookie; the database
keeps only its SHA-256 (``UserSession``), so the row, not the browser, decides who is
signed in, and revoking it (sign-out, deactivation, timeouts) ends the session everywhere.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session, select

from kapnotes import audit, passwords
from kapnotes.actor import Actor, actor_of
from kapnotes.config import get_settings, require_mfa
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import Role, User, UserSession
from kapnotes.throttle import DelayTracker, SlidingWindow, delay_for
from kapnotes.timeutil import utcnow

GENERIC_FAILURE = "Sign-in failed. Check your username and password, or ask your administrator."
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@lru_cache(maxsize=2)
def _hasher(fast: bool) -> PasswordHasher:
    if fast:  # tests only: same algorithm (Argon2id), tiny cost
        return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return PasswordHasher()  # argon2-cffi defaults: Argon2id, RFC 9106 low-memory profile


def hasher() -> PasswordHasher:
    return _hasher(get_settings().fast_password_hashing)


@lru_cache(maxsize=2)
def _dummy_hash(fast: bool) -> str:
    return _hasher(fast).hash("not-a-real-password-used-for-timing")


def hash_password(password: str) -> str:
    return hasher().hash(password)


def validate_password(password: str, username: str = "", full_name: str = "") -> None:
    """Length, the common/breached list, the person's and clinic's names, variety (kapnotes.passwords)."""
    passwords.check(password, username, full_name)


def validate_username(username: str) -> str:
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise ValidationError(
            {"username": "Use 2–64 lower-case letters, digits, dots, dashes or underscores, "
                         "starting with a letter or digit."}
        )
    return username


def create_user(
    session: Session,
    actor: Actor | None,
    username: str,
    role: str,
    full_name: str,
    password: str,
    credentials: str = "",
) -> User:
    """Create an account. ``actor`` is the admin doing it, or None for the operator's CLI."""
    if actor is not None and actor.role != Role.admin:
        raise PermissionDenied("Only an administrator can create accounts.")
    username = validate_username(username)
    errors: dict[str, str] = {}
    if role not in {r.value for r in Role}:
        errors["role"] = f"Unknown role {role!r}; choose therapist, prescriber, admin or auditor."
    if not full_name.strip():
        errors["full_name"] = "Enter the person's full name."
    elif len(full_name.strip()) > 200:
        errors["full_name"] = "A full name can be at most 200 characters."
    if len(credentials.strip()) > 64:
        errors["credentials"] = "Credentials can be at most 64 characters (e.g. LMFT, MD)."
    if errors:
        raise ValidationError(errors)
    validate_password(password, username, full_name)
    if session.exec(select(User).where(User.username == username)).first():
        raise ValidationError({"username": f"The username {username!r} is already taken."})
    user = User(
        username=username,
        full_name=full_name.strip(),
        role=role,
        credentials=credentials.strip(),
        password_hash=hash_password(password),
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "user.create", "user", user.id, detail=f"role={role}")
    return user


def set_password(session: Session, actor: Actor | None, user_id: int, password: str) -> None:
    if actor is not None and actor.role != Role.admin and actor.id != user_id:
        raise PermissionDenied("You can only change your own password.")
    user = session.get(User, user_id)
    if user is None:
        raise ValidationError({"user": "No such user."})
    validate_password(password, user.username, user.full_name)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.must_change_password = False
    session.add(user)
    if actor is None or actor.id != user_id:  # a reset by someone else ends every sign-in with the old one
        revoke_sessions(session, user_id, "password_reset")
    audit.record(session, actor, "user.password_set", "user", user_id)


def change_own_password(session: Session, actor: Actor, current: str, new: str, repeat: str | None = None,
                        keep_token: str | None = None) -> int:
    """"Change my password": the current one is required; every other signed-in browser of mine
    is signed out (a thief's copy of an old session stops). Returns how many were ended."""
    user = session.get(User, actor.id)
    if user is None or not user.is_active:
        raise PermissionDenied("Your account is not active.")
    if not _verify_quietly(user.password_hash, current):
        audit.record(session, actor, "user.password_change_failed", "user", actor.id, detail="wrong current password")
        raise ValidationError({"current": "Your current password was not right."})
    if repeat is not None and repeat != new:
        raise ValidationError({"repeat": "The two new passwords differ."})
    if new == current:
        raise ValidationError({"password": "Choose a password different from your current one."})
    set_password(session, actor, actor.id, new)
    return revoke_other_sessions(session, actor.id, keep_token, "password_change")


def temporary_password() -> str:
    """A one-time password an admin reads out: 4 groups of 4 from an unambiguous alphabet (~80 bits)."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    while True:
        candidate = "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))
        if not passwords.problems(candidate, clinic_name=""):
            return candidate


@dataclass(frozen=True)
class SignInResult:
    """``steps``: what the sign-in still needs before a session may start (in this order):
    "code" (second factor), "change_password" (after an admin's reset), "enrol" (MFA required)."""

    actor: Actor | None
    message: str = ""
    wait_seconds: int = 0
    steps: tuple[str, ...] = ()
    checked: bool = True  # False: refused during a wait without looking at the password

    @property
    def ok(self) -> bool:
        return self.actor is not None

    @property
    def complete(self) -> bool:
        return self.actor is not None and not self.steps


# --- growing delays instead of a lockout ----------------------------------------------------


def wait_message(seconds: int) -> str:
    """Said while a wait runs; the same for any account or address, so it reveals nothing."""
    if seconds >= 90:
        amount = f"{math.ceil(seconds / 60)} minutes"
    else:
        amount = f"{seconds} second{'' if seconds == 1 else 's'}"
    return (f"Too many failed sign-ins. Wait {amount} before trying again; each further failure "
            "makes the wait longer.")


UNKNOWN_NAMES = DelayTracker("unknown_name")  # unknown usernames wait like real ones: the wait reveals no account
SIGN_IN_FAILURES_BY_IP = SlidingWindow("sign_in_ip")  # failed sign-ins per source address, 15 minutes
SIGN_IN_DELAY_BY_IP = DelayTracker("sign_in_ip")  # growing waits per address (at twice the account threshold)


def account_wait(user: User, now: datetime | None = None) -> int:
    now = now or utcnow()
    if user.locked_until is None or user.locked_until <= now:
        return 0
    return max(1, math.ceil((user.locked_until - now).total_seconds()))


def record_failure(session: Session, user: User, detail: str, now: datetime | None = None) -> int:
    """One more failure in a row for this account (a wrong password or code); returns the wait it starts."""
    now = now or utcnow()
    user.failed_logins += 1
    delay = delay_for(user.failed_logins)
    user.locked_until = now + timedelta(seconds=delay) if delay else None
    session.add(user)
    detail = f"{detail} ({user.failed_logins} in a row)" + (f"; next attempt in {delay} s" if delay else "")
    audit.record(session, None, "auth.sign_in_failed", "user", user.id, detail=detail, actor_username=user.username)
    return delay


def sign_in_steps(user: User) -> tuple[str, ...]:
    steps = []
    if user.totp_enabled_at is not None:
        steps.append("code")
    if user.must_change_password:
        steps.append("change_password")
    if user.totp_enabled_at is None and require_mfa() and user.role in (Role.prescriber, Role.admin):
        steps.append("enrol")
    return tuple(steps)


def finish_sign_in(session: Session, user_id: int, now: datetime | None = None) -> Actor | None:
    """Every step done: the failures in a row end, and the sign-in is audited. The caller then
    starts the session. None if the account was deactivated meanwhile."""
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.add(user)
    actor = actor_of(user)
    audit.record(session, actor, "auth.sign_in", "user", user.id)
    return actor


def authenticate(session: Session, username: str, password: str, now: datetime | None = None) -> SignInResult:
    """Check a sign-in. Records the outcome in the audit log; the caller commits."""
    settings = get_settings()
    now = now or utcnow()
    name = (username or "").strip().lower()[:64]
    user = session.exec(select(User).where(User.username == name)).first() if name else None

    if user is None or not user.is_active:
        _verify_quietly(_dummy_hash(settings.fast_password_hashing), password)  # same cost either way
        wait = UNKNOWN_NAMES.wait(session, name, now)
        if wait:
            return SignInResult(None, GENERIC_FAILURE, wait_seconds=wait, checked=False)
        UNKNOWN_NAMES.fail(session, name, now)
        audit.record(session, None, "auth.sign_in_failed", "user", detail="unknown or inactive account",
                     actor_username=name or "(blank)")
        return SignInResult(None, GENERIC_FAILURE)

    password_ok = _verify_quietly(user.password_hash, password)  # the slow part, outside the lock
    # Re-read the account under the audit-chain lock (every change to an account takes it):
    # two wrong passwords sent at once on PostgreSQL must both count, not overwrite each other.
    audit.lock_chain(session)
    session.refresh(user)
    if not user.is_active:
        audit.record(session, None, "auth.sign_in_failed", "user", user.id, detail="unknown or inactive account",
                     actor_username=user.username)
        return SignInResult(None, GENERIC_FAILURE)

    wait = account_wait(user, now)
    if wait:  # refused unchecked: guesses during the wait neither count nor tell anything
        audit.record(session, None, "auth.sign_in_failed", "user", user.id, detail=f"during a {wait} s wait",
                     actor_username=user.username)
        return SignInResult(None, GENERIC_FAILURE, wait_seconds=wait, checked=False)

    if not password_ok:
        return SignInResult(None, GENERIC_FAILURE, wait_seconds=record_failure(session, user, "bad password", now))

    if hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        session.add(user)
    steps = sign_in_steps(user)
    if steps:  # the failures in a row end only when every step is done (codes count too)
        audit.record(session, None, "auth.password_ok", "user", user.id, detail="next: " + ", ".join(steps),
                     actor_username=user.username)
        return SignInResult(actor_of(user), steps=steps)
    return SignInResult(finish_sign_in(session, user.id, now))


def _verify_quietly(password_hash: str, password: str) -> bool:
    try:
        return hasher().verify(password_hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def load_actor(session: Session, user_id: int | None) -> Actor | None:
    """The signed-in user, re-read on each page run so a disabled account stops at once."""
    if user_id is None:
        return None
    user = session.get(User, user_id)
    if user is None or not user.is_active:
        return None
    return actor_of(user)


def sign_out(session: Session, actor: Actor, reason: str = "user") -> None:
    action = "auth.sign_out" if reason == "user" else "auth.idle_sign_out"
    audit.record(session, actor, action, "user", actor.id)


def is_idle(last_activity: datetime | None, now: datetime | None = None) -> bool:
    if last_activity is None:
        return False
    now = now or utcnow()
    return now - last_activity > timedelta(minutes=get_settings().idle_timeout_minutes)


# --- server-side sessions ----------------------------------------------------------------

SESSION_COOKIE = "kapnotes_session"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def repeated_failure_notice() -> str:
    """Said after repeated failures, to anyone: what they lead to, never which part was wrong."""
    s = get_settings()
    return (f"After {s.max_failed_logins} failed sign-ins in a row, each further failure makes the next "
            f"attempt wait: 1 second, then twice as long each time, up to {s.lockout_minutes} "
            f"minute{'' if s.lockout_minutes == 1 else 's'}. Your administrator can clear the wait.")


def start_session(session: Session, actor: Actor, ip: str = "", user_agent: str = "",
                  now: datetime | None = None) -> str:
    """A new signed-in browser: returns the raw id for the cookie; only its hash is stored."""
    token = secrets.token_urlsafe(32)  # 32 random bytes = 256 bits
    now = now or utcnow()
    session.add(UserSession(token_hash=token_hash(token), user_id=actor.id, created_at=now, last_seen_at=now,
                            ip=(ip or "")[:64], user_agent=(user_agent or "")[:255]))
    session.flush()
    return token


@dataclass(frozen=True)
class SessionCheck:
    """``status``: ok, none (no or unknown id), revoked, idle, expired (absolute lifetime)."""

    actor: Actor | None
    status: str

    @property
    def ok(self) -> bool:
        return self.actor is not None


def _touch_interval() -> timedelta:
    """How stale ``last_seen_at`` may get: at most a minute, and well inside the idle timeout."""
    return min(timedelta(minutes=1), timedelta(minutes=get_settings().idle_timeout_minutes) / 4)


def check_session(session: Session, token: str | None, now: datetime | None = None,
                  touch: bool = True) -> SessionCheck:
    """Who holds this cookie, decided here on every check: idle and absolute limits, revocation,
    a deactivated account. ``touch=False`` for checks that are not the user's activity (the
    idle timer). An expired session is revoked (and audited) the first time it is seen."""
    if not token or len(token) > 200:
        return SessionCheck(None, "none")
    row = session.exec(select(UserSession).where(UserSession.token_hash == token_hash(token))).first()
    if row is None:
        return SessionCheck(None, "none")
    if row.revoked_at is not None:
        return SessionCheck(None, "revoked")
    settings = get_settings()
    now = now or utcnow()
    user = session.get(User, row.user_id)
    if user is None or not user.is_active:
        _revoke(session, row, "deactivated", now)
        return SessionCheck(None, "revoked")
    actor = actor_of(user)
    if now - row.created_at > timedelta(hours=settings.session_hours):
        _revoke(session, row, "expired", now)
        audit.record(session, actor, "auth.session_expired", "user", user.id)
        return SessionCheck(None, "expired")
    if now - row.last_seen_at > timedelta(minutes=settings.idle_timeout_minutes):
        _revoke(session, row, "idle", now)
        sign_out(session, actor, reason="idle")
        return SessionCheck(None, "idle")
    if touch and now - row.last_seen_at >= _touch_interval():
        row.last_seen_at = now
        session.add(row)
    return SessionCheck(actor, "ok")


def _revoke(session: Session, row: UserSession, reason: str, now: datetime) -> None:
    row.revoked_at = now
    row.revoked_reason = reason[:32]
    session.add(row)


def end_session(session: Session, token: str | None, now: datetime | None = None) -> Actor | None:
    """Sign-out: revoke this browser's row (so a copy of the cookie is worthless) and audit it."""
    if not token:
        return None
    row = session.exec(select(UserSession).where(UserSession.token_hash == token_hash(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    _revoke(session, row, "sign_out", now or utcnow())
    user = session.get(User, row.user_id)
    actor = actor_of(user) if user is not None else None
    if actor is not None:
        sign_out(session, actor)
    return actor


def revoke_sessions(session: Session, user_id: int, reason: str, now: datetime | None = None) -> int:
    """End every open session of a user (deactivation, password reset); returns how many."""
    now = now or utcnow()
    rows = session.exec(select(UserSession).where(UserSession.user_id == user_id,
                                                  UserSession.revoked_at.is_(None))).all()  # type: ignore[union-attr]
    for row in rows:
        _revoke(session, row, reason, now)
    return len(rows)


def revoke_other_sessions(session: Session, user_id: int, keep_token: str | None, reason: str,
                          now: datetime | None = None) -> int:
    """"Sign out elsewhere": end every open session of the user except this browser's."""
    now = now or utcnow()
    keep = token_hash(keep_token) if keep_token else None
    rows = session.exec(select(UserSession).where(UserSession.user_id == user_id,
                                                  UserSession.revoked_at.is_(None))).all()  # type: ignore[union-attr]
    ended = 0
    for row in rows:
        if row.token_hash != keep:
            _revoke(session, row, reason, now)
            ended += 1
    return ended


@dataclass(frozen=True)
class SessionRow:
    id: int
    created_at: datetime
    last_seen_at: datetime
    ip: str
    user_agent: str
    current: bool = False


def active_sessions(session: Session, user_id: int, current_token: str | None = None,
                    now: datetime | None = None) -> list[SessionRow]:
    """Open sessions still inside their idle and absolute limits, newest first."""
    settings = get_settings()
    now = now or utcnow()
    current = token_hash(current_token) if current_token else None
    rows = session.exec(select(UserSession).where(UserSession.user_id == user_id,
                                                  UserSession.revoked_at.is_(None))  # type: ignore[union-attr]
                        .order_by(UserSession.last_seen_at.desc())).all()  # type: ignore[attr-defined]
    return [SessionRow(r.id, r.created_at, r.last_seen_at, r.ip, r.user_agent, r.token_hash == current)
            for r in rows
            if now - r.created_at <= timedelta(hours=settings.session_hours)
            and now - r.last_seen_at <= timedelta(minutes=settings.idle_timeout_minutes)]


def revoke_session_row(session: Session, user_id: int, session_id: int, reason: str) -> bool:
    row = session.get(UserSession, session_id)
    if row is None or row.user_id != user_id or row.revoked_at is not None:
        return False
    _revoke(session, row, reason, utcnow())
    return True
