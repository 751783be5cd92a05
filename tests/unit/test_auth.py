"""Accounts: Argon2id hashes, password rules, generic sign-in failures, growing delays, idle time-out.

Service tests run on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial

import pytest
from sqlmodel import Session, col, select

from kapnotes import admin, auth
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import AuditEvent, User
from tests.factories import PASSWORD
from tests.helpers.threads import together

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def _user(session, username) -> User:
    session.expire_all()
    return session.exec(select(User).where(User.username == username)).one()


def _events(session, action):
    return session.exec(select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))).all()


# --- creating accounts --------------------------------------------------------------


def test_password_is_hashed_with_argon2id(session, clinic):
    user = _user(session, "tina")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert auth.hasher().verify(user.password_hash, PASSWORD)


def test_production_hasher_is_argon2id_with_real_cost(monkeypatch):
    monkeypatch.setenv("KAPNOTES_FAST_HASH", "0")
    h = auth.hash_password("a-long-enough-password")
    assert h.startswith("$argon2id$")
    params = auth.hasher()
    assert params.memory_cost >= 19 * 1024 and params.time_cost >= 2  # OWASP minimums for Argon2id


@pytest.mark.parametrize("password", ["", "short", "elevenchars"])
def test_short_password_refused(session, password):
    with pytest.raises(ValidationError) as exc:
        auth.create_user(session, None, "newbie", "therapist", "New Bie", password)
    assert "12 characters" in exc.value.errors["password"]
    assert session.exec(select(User)).all() == []


def test_twelve_characters_is_enough(session):
    assert auth.create_user(session, None, "newbie", "therapist", "New Bie", "plum-river-7").id


def test_min_password_length_is_configurable(session, monkeypatch):
    monkeypatch.setenv("KAPNOTES_MIN_PASSWORD_LENGTH", "16")
    with pytest.raises(ValidationError, match="16 characters"):
        auth.create_user(session, None, "newbie", "therapist", "New Bie", "fifteen-chars-x")


def test_password_with_surrounding_spaces_refused(session):
    with pytest.raises(ValidationError):
        auth.create_user(session, None, "newbie", "therapist", "New Bie", " padded-password ")


def test_duplicate_username_refused_case_insensitively(session, clinic):
    with pytest.raises(ValidationError) as exc:
        auth.create_user(session, None, "Tina", "therapist", "Another Tina", PASSWORD)
    assert "already taken" in exc.value.errors["username"]
    assert len(session.exec(select(User).where(User.username == "tina")).all()) == 1


@pytest.mark.parametrize("role", ["doctor", "", "Admin ", "superuser"])
def test_bad_role_refused(session, role):
    with pytest.raises(ValidationError) as exc:
        auth.create_user(session, None, "newbie", role, "New Bie", PASSWORD)
    assert "role" in exc.value.errors
    assert session.exec(select(User)).all() == []


@pytest.mark.parametrize("username", ["a", "has space", "-dash-first", "x" * 65, "semi;colon"])
def test_bad_username_refused(session, username):
    with pytest.raises(ValidationError) as exc:
        auth.create_user(session, None, username, "therapist", "New Bie", PASSWORD)
    assert "username" in exc.value.errors


def test_overlong_name_or_credentials_refused_on_every_backend(session):
    with pytest.raises(ValidationError) as exc:
        auth.create_user(session, None, "newbie", "therapist", "N" * 201, PASSWORD, "C" * 65)
    assert set(exc.value.errors) == {"full_name", "credentials"}


def test_only_admin_creates_accounts(session, clinic):
    with pytest.raises(PermissionDenied):
        auth.create_user(session, clinic.tina, "newbie", "therapist", "New Bie", PASSWORD)
    user = auth.create_user(session, clinic.ada, "newbie", "therapist", "New Bie", PASSWORD)
    ev = _events(session, "user.create")[-1]
    assert (ev.actor_id, ev.record_id, ev.detail) == (clinic.ada.id, str(user.id), "role=therapist")


def test_set_password_own_or_admin(session, clinic):
    with pytest.raises(PermissionDenied):
        auth.set_password(session, clinic.tina, clinic.theo.id, "another-long-password")
    with pytest.raises(ValidationError):
        auth.set_password(session, clinic.tina, clinic.tina.id, "short")
    auth.set_password(session, clinic.tina, clinic.tina.id, "another-long-password")
    assert auth.authenticate(session, "tina", "another-long-password").ok
    assert not auth.authenticate(session, "tina", PASSWORD).ok


# --- signing in ---------------------------------------------------------------------------


def test_correct_password_signs_in_and_is_audited(session, clinic):
    result = auth.authenticate(session, "  TINA ", PASSWORD, now=T0)
    assert result.ok and result.actor.id == clinic.tina.id and result.message == ""
    assert _user(session, "tina").last_login_at == T0
    ev = _events(session, "auth.sign_in")[-1]
    assert (ev.actor_id, ev.actor_username, ev.record_id) == (clinic.tina.id, "tina", str(clinic.tina.id))
    assert PASSWORD not in ev.detail


def test_every_failure_has_the_same_generic_message(session, clinic):
    admin.set_active(session, clinic.ada, clinic.theo.id, False)
    for _ in range(5):
        auth.authenticate(session, "pia", "wrong-password-123", now=T0)
    failures = {
        "unknown user": auth.authenticate(session, "nobody", PASSWORD, now=T0),
        "wrong password": auth.authenticate(session, "tina", "wrong-password-123", now=T0),
        "locked": auth.authenticate(session, "pia", PASSWORD, now=T0),
        "deactivated": auth.authenticate(session, "theo", PASSWORD, now=T0),
        "blank": auth.authenticate(session, "", "", now=T0),
    }
    for why, result in failures.items():
        assert not result.ok, why
        assert result.message == auth.GENERIC_FAILURE, why
    assert "username" in auth.GENERIC_FAILURE.lower()
    assert "exist" not in auth.GENERIC_FAILURE.lower() and "locked" not in auth.GENERIC_FAILURE.lower()


def test_failures_are_audited_without_the_password(session, clinic):
    auth.authenticate(session, "tina", "wrong-password-123", now=T0)
    auth.authenticate(session, "nobody", "wrong-password-456", now=T0)
    evs = _events(session, "auth.sign_in_failed")
    assert [(e.actor_id, e.actor_username) for e in evs] == [(None, "tina"), (None, "nobody")]
    assert evs[0].record_id == str(clinic.tina.id)
    for e in evs:
        assert "wrong-password" not in e.detail


def test_five_failures_start_a_short_wait_not_a_lock(session, clinic):
    for i in range(4):
        assert not auth.authenticate(session, "tina", f"wrong-password-{i}", now=T0).ok
        assert _user(session, "tina").locked_until is None
    r = auth.authenticate(session, "tina", "wrong-password-5", now=T0)
    assert not r.ok and r.wait_seconds == 1 and r.message == auth.GENERIC_FAILURE
    assert _user(session, "tina").locked_until == T0 + timedelta(seconds=1)
    assert "next attempt in 1 s" in _events(session, "auth.sign_in_failed")[-1].detail
    # during the wait even the right password is refused, unchecked and uncounted
    r = auth.authenticate(session, "tina", PASSWORD, now=T0 + timedelta(milliseconds=500))
    assert not r.ok and r.wait_seconds == 1
    assert _user(session, "tina").failed_logins == 5
    # ... and a second later the colleague's guesses are forgotten: the owner signs in
    r = auth.authenticate(session, "tina", PASSWORD, now=T0 + timedelta(seconds=1, milliseconds=1))
    assert r.ok
    user = _user(session, "tina")
    assert user.locked_until is None and user.failed_logins == 0


def test_each_further_failure_doubles_the_wait_up_to_fifteen_minutes(session, clinic):
    now = T0
    waits = []
    for i in range(16):
        r = auth.authenticate(session, "tina", f"wrong-password-{i}", now=now)
        waits.append(r.wait_seconds)
        now += timedelta(seconds=r.wait_seconds or 0, milliseconds=1)  # try again right after each wait
    assert waits == [0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    assert "15 minutes" in auth.wait_message(900) and "1 second " in auth.wait_message(1)
    assert auth.authenticate(session, "tina", PASSWORD, now=now).ok  # still no lock after the wait


def test_unknown_usernames_wait_the_same_way(session, clinic):
    results = [auth.authenticate(session, "nobody", f"wrong-password-{i}", now=T0) for i in range(6)]
    assert [r.wait_seconds for r in results[:5]] == [0, 0, 0, 0, 0]
    assert results[5].wait_seconds == 1  # the fifth failure started a 1-s wait, as for a real account


def test_success_resets_the_failure_counter(session, clinic):
    for i in range(4):
        auth.authenticate(session, "tina", f"wrong-password-{i}", now=T0)
    assert _user(session, "tina").failed_logins == 4
    assert auth.authenticate(session, "tina", PASSWORD, now=T0).ok
    assert _user(session, "tina").failed_logins == 0
    for i in range(4):  # four more failures after a success start no wait
        auth.authenticate(session, "tina", f"wrong-password-{i}", now=T0)
    assert _user(session, "tina").locked_until is None
    assert auth.authenticate(session, "tina", PASSWORD, now=T0).ok


def test_waits_are_per_account(session, clinic):
    for i in range(8):
        auth.authenticate(session, "tina", f"wrong-password-{i}", now=T0)
    assert auth.authenticate(session, "theo", PASSWORD, now=T0).ok


def test_wait_thresholds_are_configurable(session, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_MAX_FAILED_LOGINS", "3")
    monkeypatch.setenv("KAPNOTES_LOCKOUT_MINUTES", "2")
    now = T0
    for i in range(12):
        r = auth.authenticate(session, "tina", f"wrong-password-{i}", now=now)
        now += timedelta(seconds=r.wait_seconds, milliseconds=1)
    assert r.wait_seconds == 120  # capped at 2 minutes
    assert "After 3 failed sign-ins" in auth.repeated_failure_notice()
    assert "up to 2 minutes" in auth.repeated_failure_notice()


def test_admin_unlock(session, clinic):
    for i in range(5):
        auth.authenticate(session, "tina", f"wrong-password-{i}", now=T0)
    assert not auth.authenticate(session, "tina", PASSWORD, now=T0).ok
    with pytest.raises(PermissionDenied):
        admin.unlock(session, clinic.paul, clinic.tina.id)
    admin.unlock(session, clinic.ada, clinic.tina.id)
    assert auth.authenticate(session, "tina", PASSWORD, now=T0).ok


def test_concurrent_wrong_passwords_all_count(engine, clinic):
    """Parallel guesses must not overwrite each other's failure count (lost update)."""
    def guess(i):
        with session_scope(engine) as s:
            auth.authenticate(s, "tina", f"wrong-password-{i}", now=T0)

    errors = together(*(partial(guess, i) for i in range(6)))
    assert not errors
    with Session(engine) as s:
        user = s.exec(select(User).where(User.username == "tina")).one()
        # 6 failures: the 5th starts a 1-s wait; the 6th is refused during it (counted in the audit)
        assert user.locked_until == T0 + timedelta(seconds=1)
        fails = s.exec(select(AuditEvent).where(AuditEvent.action == "auth.sign_in_failed")).all()
        assert len(fails) == 6


def test_load_actor(session, clinic):
    actor = auth.load_actor(session, clinic.tina.id)
    assert actor == clinic.tina and actor.display_name == "Tina Torres, LMFT"
    assert auth.load_actor(session, None) is None
    assert auth.load_actor(session, 999999) is None
    admin.set_active(session, clinic.ada, clinic.tina.id, False)
    assert auth.load_actor(session, clinic.tina.id) is None


def test_sign_out_is_audited(session, clinic):
    auth.sign_out(session, clinic.tina)
    auth.sign_out(session, clinic.tina, reason="idle")
    assert [e.actor_id for e in _events(session, "auth.sign_out")] == [clinic.tina.id]
    assert [e.actor_id for e in _events(session, "auth.idle_sign_out")] == [clinic.tina.id]


# --- idle time-out --------------------------------------------------------------------


@pytest.mark.parametrize(
    "minutes_env, idle_for, expected",
    [
        (None, timedelta(minutes=14, seconds=59), False),
        (None, timedelta(minutes=15), False),
        (None, timedelta(minutes=15, seconds=1), True),
        ("5", timedelta(minutes=4, seconds=59), False),
        ("5", timedelta(minutes=5, seconds=1), True),
        ("60", timedelta(minutes=59), False),
        ("60", timedelta(minutes=61), True),
    ],
)
def test_is_idle_boundaries(monkeypatch, minutes_env, idle_for, expected):
    if minutes_env is None:
        monkeypatch.delenv("KAPNOTES_IDLE_MINUTES", raising=False)
    else:
        monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", minutes_env)
    assert auth.is_idle(T0, now=T0 + idle_for) is expected


def test_is_idle_without_activity_and_with_real_clock(monkeypatch):
    monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", "15")
    assert auth.is_idle(None) is False
    assert auth.is_idle(datetime.now(timezone.utc) - timedelta(minutes=16)) is True
    assert auth.is_idle(datetime.now(timezone.utc) - timedelta(minutes=1)) is False


# --- server-side sessions -------------------------------------------------------------------


def _session_rows(session):
    from kapnotes.models import UserSession

    session.expire_all()
    return session.exec(select(UserSession).order_by(col(UserSession.id))).all()


def test_session_is_found_by_the_hash_of_its_id_only(session, clinic):
    token = auth.start_session(session, clinic.tina, "10.0.0.5", "Firefox", now=T0)
    (row,) = _session_rows(session)
    assert row.token_hash == auth.token_hash(token) != token and token not in row.token_hash
    assert (row.user_id, row.ip, row.user_agent, row.created_at) == (clinic.tina.id, "10.0.0.5", "Firefox", T0)
    assert len(token) >= 43  # 256 random bits
    assert auth.check_session(session, token, now=T0 + timedelta(minutes=1)).actor.id == clinic.tina.id
    assert auth.check_session(session, row.token_hash, now=T0).status == "none"  # the stored hash opens nothing
    assert auth.check_session(session, None).status == "none"
    assert auth.start_session(session, clinic.tina, now=T0) != token


def test_idle_timeout_is_enforced_on_the_server(session, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", "15")
    token = auth.start_session(session, clinic.tina, now=T0)
    assert auth.check_session(session, token, now=T0 + timedelta(minutes=14)).ok  # and refreshes last seen
    assert auth.check_session(session, token, now=T0 + timedelta(minutes=28)).ok
    check = auth.check_session(session, token, now=T0 + timedelta(minutes=44))
    assert check.status == "idle"
    assert auth.check_session(session, token, now=T0 + timedelta(minutes=45)).status == "revoked"
    assert _session_rows(session)[0].revoked_reason == "idle"
    assert [e.actor_id for e in _events(session, "auth.idle_sign_out")] == [clinic.tina.id]


def test_timer_checks_do_not_count_as_activity(session, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", "15")
    token = auth.start_session(session, clinic.tina, now=T0)
    assert auth.check_session(session, token, now=T0 + timedelta(minutes=10), touch=False).ok
    assert auth.check_session(session, token, now=T0 + timedelta(minutes=16), touch=False).status == "idle"


def test_absolute_lifetime_ends_an_active_session(session, clinic, monkeypatch):
    monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", "15")
    monkeypatch.setenv("KAPNOTES_SESSION_HOURS", "2")
    token = auth.start_session(session, clinic.tina, now=T0)
    for minutes in range(10, 120, 10):  # busy all along
        assert auth.check_session(session, token, now=T0 + timedelta(minutes=minutes)).ok
    assert auth.check_session(session, token, now=T0 + timedelta(minutes=121)).status == "expired"
    assert _session_rows(session)[0].revoked_reason == "expired"
    assert [e.actor_id for e in _events(session, "auth.session_expired")] == [clinic.tina.id]


def test_session_lifetime_defaults_to_twelve_hours(monkeypatch):
    monkeypatch.delenv("KAPNOTES_SESSION_HOURS", raising=False)
    from kapnotes.config import get_settings

    assert get_settings().session_hours == 12


def test_sign_out_revokes_only_that_session(session, clinic):
    here = auth.start_session(session, clinic.tina, now=T0)
    other = auth.start_session(session, clinic.tina, now=T0)
    assert auth.end_session(session, here, now=T0 + timedelta(minutes=1)).id == clinic.tina.id
    assert auth.check_session(session, here, now=T0 + timedelta(minutes=2)).status == "revoked"
    assert auth.check_session(session, other, now=T0 + timedelta(minutes=2)).ok
    assert auth.end_session(session, here) is None  # twice: nothing more to do
    assert [e.actor_id for e in _events(session, "auth.sign_out")] == [clinic.tina.id]


def test_deactivation_revokes_every_session(session, clinic):
    tokens = [auth.start_session(session, clinic.tina) for _ in range(2)]
    keep = auth.start_session(session, clinic.paul)
    admin.set_active(session, clinic.ada, clinic.tina.id, False)
    assert [auth.check_session(session, t).status for t in tokens] == ["revoked", "revoked"]
    assert {r.revoked_reason for r in _session_rows(session) if r.user_id == clinic.tina.id} == {"deactivated"}
    admin.set_active(session, clinic.ada, clinic.tina.id, True)  # reactivating does not revive them
    assert [auth.check_session(session, t).status for t in tokens] == ["revoked", "revoked"]
    assert auth.check_session(session, keep).ok


def test_password_reset_by_an_admin_revokes_sessions(session, clinic):
    token = auth.start_session(session, clinic.tina)
    auth.set_password(session, clinic.ada, clinic.tina.id, "a-brand-new-password")
    assert auth.check_session(session, token).status == "revoked"
    assert auth.revoke_sessions(session, clinic.tina.id, "test") == 0


def test_sliding_window_counts_within_the_window_only(session):
    window = auth.SlidingWindow("test", timedelta(minutes=15))
    assert [window.add(session, "1.2.3.4", now=T0 + timedelta(minutes=m)) for m in (0, 5, 10)] == [1, 2, 3]
    assert window.count(session, "1.2.3.4", now=T0 + timedelta(minutes=16)) == 2
    assert window.count(session, "5.6.7.8", now=T0) == 0


def test_delays_are_kept_in_the_database_so_another_process_sees_them(engine):
    """Two app processes are two engines on one database: a failure counted by one is a wait on the other."""
    from kapnotes.db import make_engine, session_scope

    other = make_engine(str(engine.url.render_as_string(hide_password=False)))
    tracker = auth.DelayTracker("test_ip")
    try:
        for i in range(10):
            with session_scope(engine if i % 2 else other) as s:
                tracker.fail(s, "9.9.9.9", now=T0, threshold_scale=1)
        with session_scope(other) as s:
            assert tracker.wait(s, "9.9.9.9", now=T0) > 0
        with session_scope(engine) as s:
            tracker.reset(s, "9.9.9.9")
        with session_scope(other) as s:
            assert tracker.wait(s, "9.9.9.9", now=T0) == 0
    finally:
        other.dispose()
