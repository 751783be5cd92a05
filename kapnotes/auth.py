"""Accounts: Argon2id password hashes, generic sign-in failures, lockout, server-side sessions.

A failed sign-in never says whether the user exists; after ``max_failed_logins``
failures in a row the account is locked for ``lockout_minutes``.

A signed-in browser holds a random 256-bit session id in an HttpOnly cookie; the database
keeps only its SHA-256 (``UserSession``), so the row, not the browser, decides who is
signed in, and revoking it (sign-out, deactivation, timeouts) ends the session everywhere.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlmodel import Session, select

from kapnotes import audit
from kapnotes.config import get_settings
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import Role, User, UserSession
from kapnotes.timeutil import utcnow

GENERIC_FAILURE = "Sign-in failed. Check your username and password, or ask your administrator."
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@dataclass(frozen=True)
class Actor:
    """Who is asking. Services take this, never a bare user id, and check it themselves."""

    id: int
    username: str
    full_name: str
    role: str
    credentials: str = ""

    @property
    def display_name(self) -> str:
        return f"{self.full_name}, {self.credentials}" if self.credentials else self.full_name


def actor_of(user: User) -> Actor:
    return Actor(user.id, user.username, user.full_name, user.role, user.credentials)


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


def validate_password(password: str) -> None:
    minimum = get_settings().min_password_length
    if len(password) < minimum:
        raise ValidationError({"password": f"Passwords need at least {minimum} characters."})
    if password.strip() != password or not password.strip():
        raise ValidationError({"password": "Passwords cannot start or end with spaces."})


def validate_username(username: str) -> str:
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise ValidationError(
            {"username": "Use 2–64 lower-case letters, digits, dots, dashes or underscores, starting with a letter or digit."}
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
    validate_password(password)
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
    validate_password(password)
    user = session.get(User, user_id)
    if user is None:
        raise ValidationError({"user": "No such user."})
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    session.add(user)
    if actor is None or actor.id != user_id:  # a reset by someone else ends every sign-in with the old one
        revoke_sessions(session, user_id, "password_reset")
    audit.record(session, actor, "user.password_set", "user", user_id)


@dataclass(frozen=True)
class SignInResult:
    actor: Actor | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.actor is not None


def authenticate(session: Session, username: str, password: str, now: datetime | None = None) -> SignInResult:
    """Check a sign-in. Records the outcome in the audit log; the caller commits."""
    settings = get_settings()
    now = now or utcnow()
    name = (username or "").strip().lower()[:64]
    user = session.exec(select(User).where(User.username == name)).first() if name else None

    if user is None or not user.is_active:
        _verify_quietly(_dummy_hash(settings.fast_password_hashing), password)  # same cost either way
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

    if user.locked_until is not None and user.locked_until > now:
        audit.record(session, None, "auth.sign_in_failed", "user", user.id, detail="account locked",
                     actor_username=user.username)
        return SignInResult(None, GENERIC_FAILURE)

    if not password_ok:
        user.failed_logins += 1
        detail = f"bad password ({user.failed_logins} in a row)"
        if user.failed_logins >= settings.max_failed_logins:
            user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            user.failed_logins = 0
            detail += "; account locked"
        session.add(user)
        audit.record(session, None, "auth.sign_in_failed", "user", user.id, detail=detail,
                     actor_username=user.username)
        return SignInResult(None, GENERIC_FAILURE)

    if hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    session.add(user)
    actor = actor_of(user)
    audit.record(session, actor, "auth.sign_in", "user", user.id)
    return SignInResult(actor)


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
    return (f"After {s.max_failed_logins} failed sign-ins in a row an account is locked for "
            f"{s.lockout_minutes} minute{'' if s.lockout_minutes == 1 else 's'}; "
            "your administrator can unlock it sooner.")


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


class SlidingWindow:
    """In-process count of events per key over the last ``window`` (e.g. failed sign-ins per IP).

    One process's memory: enough for this single-server app; a restart forgets it (the
    per-account lockout, kept in the database, does not)."""

    def __init__(self, window: timedelta = timedelta(minutes=15)):
        self.window = window
        self._events: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _prune(self, key: str, now: datetime) -> deque[datetime]:
        q = self._events.setdefault(key, deque())
        while q and now - q[0] > self.window:
            q.popleft()
        if not q:
            del self._events[key]
            return deque()
        return q

    def count(self, key: str, now: datetime | None = None) -> int:
        with self._lock:
            return len(self._prune(key, now or utcnow()))

    def add(self, key: str, now: datetime | None = None) -> int:
        now = now or utcnow()
        with self._lock:
            q = self._prune(key, now)
            q.append(now)
            self._events[key] = q
            return len(q)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()
