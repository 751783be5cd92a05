"""The operator's command line: in this process (``tests/helpers/cli.kap``), and as a real subprocess
(`python -m kapnotes ...`) where the process itself is the point (the entry point, getpass without a terminal).

``db_url`` is a migrated, empty database on SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from kapnotes import auth
from kapnotes.db import current_revision, make_engine
from kapnotes.models import AuditEvent, CareTeam, DoseEntry, Patient, User
from kapnotes.seed import DEMO_PASSWORD, DEMO_USERS
from tests.helpers.backends import SQLITE_ONLY
from tests.helpers.cli import kap, kap_process

ROOT = Path(__file__).resolve().parents[2]
GOOD_PASSWORD = "a-good-long-password"



@pytest.fixture
def run_cli():
    """The command in this process, as (status, stdout, stderr)."""

    def run(db_url: str, *args: str, stdin: str | None = None):
        done = kap(db_url, *args, stdin=stdin)
        return done.returncode, done.stdout, done.stderr

    return run


def counts(engine) -> dict[str, int]:
    with Session(engine) as s:
        return {m.__name__: s.exec(select(func.count()).select_from(m)).one()
                for m in (User, Patient, CareTeam, AuditEvent)}


def add_staff(engine) -> None:
    """Accounts made in-process (fast); the create-user command has its own tests."""
    from kapnotes.db import session_scope

    with session_scope(engine) as s:
        for username, role in (("tara", "therapist"), ("pete", "prescriber"), ("adam", "admin")):
            auth.create_user(s, None, username, role, username.title(), GOOD_PASSWORD)


@pytest.mark.slow
def test_init_db_creates_file_and_is_safe_twice(tmp_path):
    url = f"sqlite:///{tmp_path / 'nested' / 'dir' / 'kap.db'}"
    for _ in range(2):
        r = kap_process(url, "init-db")
        assert r.returncode == 0, r.stderr
        assert "database ready" in r.stdout
    assert (tmp_path / "nested" / "dir" / "kap.db").exists()
    engine = make_engine(url)
    assert current_revision(engine) is not None
    engine.dispose()


@pytest.mark.slow
def test_init_db_twice_on_migrated_database(db_url, engine):
    before = current_revision(engine)
    assert kap(db_url, "init-db").returncode == 0
    assert current_revision(engine) == before


@pytest.mark.slow
def test_create_user_password_stdin(db_url, engine):
    r = kap(db_url, "create-user", "Nora", "--role", "therapist", "--full-name", "Nora North",
            "--credentials", "LCSW", "--password-stdin", stdin=GOOD_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "created therapist nora" in r.stdout
    with Session(engine) as s:
        user = s.exec(select(User).where(User.username == "nora")).one()
        assert (user.full_name, user.credentials, user.role) == ("Nora North", "LCSW", "therapist")
        assert user.password_hash.startswith("$argon2id$")
        assert auth.authenticate(s, "nora", GOOD_PASSWORD).ok
        s.rollback()


@pytest.mark.parametrize(
    "args, stdin, expect",
    [
        (["--role", "therapist", "--full-name", "Short Pw"], "short-pw\n", "at least 12 characters"),
        (["--role", "therapist", "--full-name", "   "], GOOD_PASSWORD + "\n", "full name"),
        (["--role", "therapist", "--full-name", "Empty Pw"], "", "at least 12 characters"),
    ],
)
def test_create_user_refusals(db_url, engine, run_cli, args, stdin, expect):
    status, out, err = run_cli(db_url, "create-user", "someone", *args, "--password-stdin", stdin=stdin)
    assert status == 1
    assert expect in err and out == ""
    assert counts(engine)["User"] == 0


@pytest.mark.slow
@SQLITE_ONLY
def test_short_password_as_a_real_process(db_url, engine):
    r = kap_process(db_url, "create-user", "someone", "--role", "admin", "--full-name", "Some One", "--password-stdin",
            stdin="too-short\n")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: password: Passwords need at least 12 characters."
    assert counts(engine)["User"] == 0


def test_create_user_bad_role_and_duplicate(db_url, engine, run_cli):
    status, _, err = run_cli(db_url, "create-user", "x1", "--role", "doctor", "--full-name", "X",
                             "--password-stdin", stdin=GOOD_PASSWORD + "\n")
    assert status == 2 and "invalid choice: 'doctor'" in err
    add_staff(engine)
    status, _, err = run_cli(db_url, "create-user", "TARA", "--role", "therapist", "--full-name", "Tara Two",
                             "--password-stdin", stdin=GOOD_PASSWORD + "\n")
    assert status == 1
    assert "already taken" in err
    assert counts(engine)["User"] == 3


def test_create_user_with_email(db_url, engine, run_cli):
    status, out, err = run_cli(db_url, "create-user", "pete", "--role", "prescriber", "--full-name", "Pete Price",
                               "--email", "pete@clinic.example", "--password-stdin", stdin=GOOD_PASSWORD + "\n")
    assert status == 0, err
    with Session(engine) as s:
        assert s.exec(select(User.email).where(User.username == "pete")).one() == "pete@clinic.example"
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "user.email")).one()
        assert (ev.actor_username, ev.detail) == ("system", "set")


def test_create_user_with_a_bad_email_writes_nothing(db_url, engine, run_cli):
    status, out, err = run_cli(db_url, "create-user", "pete", "--role", "prescriber", "--full-name", "Pete Price",
                               "--email", "pete at clinic", "--password-stdin", stdin=GOOD_PASSWORD + "\n")
    assert status == 1 and out == ""
    assert "not an e-mail address" in err
    assert counts(engine)["User"] == 0


@pytest.mark.slow
@SQLITE_ONLY
def test_create_user_interactive_passwords_must_match(db_url, engine):
    # without a terminal getpass falls back to reading standard input
    r = kap_process(db_url, "create-user", "mia", "--role", "therapist", "--full-name", "Mia",
            stdin=GOOD_PASSWORD + "\n" + GOOD_PASSWORD + "-typo\n")
    assert r.returncode != 0
    assert "differ" in r.stderr
    assert counts(engine)["User"] == 0


@pytest.mark.slow
def test_add_patient_success(db_url, engine):
    add_staff(engine)
    r = kap(db_url, "add-patient", "--mrn", "KAP-9001", "--name", "Robin Reyes", "--dob", "1984-02-03",
            "--therapist", "tara", "--prescriber", "pete")
    assert r.returncode == 0, r.stderr
    assert "KAP-9001" in r.stdout
    with Session(engine) as s:
        p = s.exec(select(Patient)).one()
        assert (p.mrn, p.full_name, p.date_of_birth.isoformat(), p.diagnosis) == (
            "KAP-9001", "Robin Reyes", "1984-02-03", "F41.1")
        tara = auth.load_actor(s, s.exec(select(User.id).where(User.username == "tara")).one())
        from kapnotes import patients

        assert [r.mrn for r in patients.list_patients(s, tara)] == ["KAP-9001"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"--mrn": "KAP-9001"}, "already exists"),
        ({"--therapist": "ghost"}, "No user named 'ghost'"),
        ({"--prescriber": "ghost"}, "No user named 'ghost'"),
        ({"--therapist": "pete"}, "is a prescriber, not a therapist"),
        ({"--prescriber": "adam"}, "is a admin, not a prescriber"),
        ({"--dob": "1984-13-40"}, "not a valid date; use YYYY-MM-DD"),
        ({"--dob": "03/02/1984"}, "not a valid date; use YYYY-MM-DD"),
        ({"--dob": "2999-01-01"}, "in the future"),
    ],
)
def test_add_patient_refusals_write_nothing(db_url, engine, run_cli, overrides, message):
    add_staff(engine)
    base = {"--mrn": "KAP-9001", "--name": "Robin Reyes", "--dob": "1984-02-03", "--therapist": "tara",
            "--prescriber": "pete"}
    if overrides.get("--mrn") == "KAP-9001":
        assert run_cli(db_url, "add-patient", *[x for kv in base.items() for x in kv])[0] == 0
    before = counts(engine)
    args = {**base, **overrides}
    status, out, err = run_cli(db_url, "add-patient", *[x for kv in args.items() for x in kv])
    assert status == 1
    assert err.startswith("error: ")
    assert message in err
    assert out == ""
    assert counts(engine) == before


@pytest.mark.slow
@SQLITE_ONLY
def test_add_patient_refusal_as_a_real_process(db_url, engine):
    add_staff(engine)
    r = kap_process(db_url, "add-patient", "--mrn", "KAP-9002", "--name", "Robin Reyes", "--dob", "1984-02-30",
            "--therapist", "tara", "--prescriber", "pete")
    assert r.returncode == 1
    assert r.stderr.strip() == "error: dob: '1984-02-30' is not a valid date; use YYYY-MM-DD."
    assert counts(engine)["Patient"] == 0


@pytest.mark.slow
def test_commands_on_an_uninitialised_database_say_what_to_do(tmp_path, run_cli):
    url = f"sqlite:///{tmp_path / 'blank.db'}"
    for args, stdin in ((["create-user", "x1", "--role", "admin", "--full-name", "X", "--password-stdin"],
                         GOOD_PASSWORD + "\n"),
                        (["add-patient", "--mrn", "M", "--name", "N", "--dob", "1980-01-01", "--therapist", "t",
                          "--prescriber", "p"], None),
                        (["verify-audit"], None),
                        (["seed-demo"], None)):
        status, _, err = run_cli(url, *args, stdin=stdin)
        assert status == 1, args
        assert "init-db" in err, err
    r = kap(url, "verify-audit")
    assert r.returncode == 1 and "init-db" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
@SQLITE_ONLY
def test_seed_demo_prints_sign_ins_and_if_empty_is_idempotent(db_url, engine):
    r = kap(db_url, "seed-demo", "--if-empty")
    assert r.returncode == 0, r.stderr
    for username, role, _, _ in DEMO_USERS:
        assert username in r.stdout and role in r.stdout
    assert DEMO_PASSWORD in r.stdout
    first = counts(engine)
    assert first["Patient"] == 8 and first["User"] == 4
    with Session(engine) as s:
        doses = s.exec(select(func.count()).select_from(DoseEntry)).one()
        assert doses > 50

    again = kap(db_url, "seed-demo", "--if-empty")
    assert again.returncode == 0
    assert "not seeded" in again.stdout
    assert counts(engine) == first

    r = kap(db_url, "verify-audit")
    assert r.returncode == 0 and f"{first['AuditEvent']} events" in r.stdout

    with Session(engine) as s:  # the printed sign-ins work
        for username, *_ in DEMO_USERS:
            assert auth.authenticate(s, username, DEMO_PASSWORD).ok
        s.rollback()


@pytest.mark.slow
def test_seed_demo_without_if_empty_refuses_a_used_database(db_url, engine):
    add_staff(engine)
    assert kap(db_url, "seed-demo", "--if-empty").returncode == 0  # has users: skipped
    assert counts(engine)["Patient"] == 0


# --- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "var, value, message",
    [
        ("KAPNOTES_IDLE_MINUTES", "fifteen", "KAPNOTES_IDLE_MINUTES must be a whole number, got 'fifteen'"),
        ("KAPNOTES_IDLE_MINUTES", "0", "KAPNOTES_IDLE_MINUTES must be at least 1, got 0"),
        ("KAPNOTES_MAX_FAILED_LOGINS", "-1", "KAPNOTES_MAX_FAILED_LOGINS must be at least 1"),
        ("KAPNOTES_LOCKOUT_MINUTES", "1.5", "KAPNOTES_LOCKOUT_MINUTES must be a whole number"),
        ("KAPNOTES_MIN_PASSWORD_LENGTH", "8", "KAPNOTES_MIN_PASSWORD_LENGTH must be at least 12, got 8"),
        ("KAPNOTES_TIMEZONE", "Mars/Olympus", "KAPNOTES_TIMEZONE must be a time zone name"),
        ("KAPNOTES_SMTP_URL", "mail.clinic.example", "KAPNOTES_SMTP_URL must look like smtp://"),
        ("KAPNOTES_SMTP_URL", "http://mail.clinic.example", "KAPNOTES_SMTP_URL must look like smtp://"),
        ("KAPNOTES_SMTP_URL", "smtp://mail.clinic.example:port", "KAPNOTES_SMTP_URL must look like smtp://"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(monkeypatch, run_cli, tmp_path, var, value, message):
    from kapnotes.config import ConfigError, get_settings

    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        get_settings()
    status, _, err = run_cli(f"sqlite:///{tmp_path / 'cfg.db'}", "init-db")
    assert status == 1 and message in err


def test_settings_defaults_and_overrides(monkeypatch):
    from kapnotes.config import DEFAULT_DATABASE_URL, get_settings

    for var in ("KAPNOTES_DATABASE_URL", "KAPNOTES_CLINIC_NAME", "KAPNOTES_TIMEZONE", "KAPNOTES_IDLE_MINUTES",
                "KAPNOTES_MAX_FAILED_LOGINS", "KAPNOTES_LOCKOUT_MINUTES", "KAPNOTES_MIN_PASSWORD_LENGTH",
                "KAPNOTES_PROTOCOL"):
        monkeypatch.delenv(var, raising=False)
    s = get_settings()
    assert (s.database_url, s.timezone, s.idle_timeout_minutes, s.max_failed_logins, s.lockout_minutes,
            s.min_password_length, s.protocol_path) == (
        DEFAULT_DATABASE_URL, "America/New_York", 15, 5, 15, 12, None)
    assert DEFAULT_DATABASE_URL == "sqlite:///data/kapnotes.db"
    monkeypatch.setenv("KAPNOTES_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("KAPNOTES_IDLE_MINUTES", " 30 ")
    monkeypatch.setenv("KAPNOTES_CLINIC_NAME", "Harbor KAP")
    s = get_settings()
    assert (str(s.tz), s.idle_timeout_minutes, s.clinic_name) == ("Europe/Berlin", 30, "Harbor KAP")


def test_smtp_settings(monkeypatch):
    from kapnotes.config import ConfigError, get_settings

    monkeypatch.delenv("KAPNOTES_SMTP_URL", raising=False)
    monkeypatch.delenv("KAPNOTES_SMTP_FROM", raising=False)
    assert get_settings().smtp is None  # unset: e-mail is off
    monkeypatch.setenv("KAPNOTES_SMTP_URL", "  ")
    assert get_settings().smtp is None
    monkeypatch.setenv("KAPNOTES_SMTP_URL", "smtp://mail.clinic.example:2525")
    s = get_settings().smtp
    assert (s.host, s.port, s.tls, s.username, s.password, s.sender) == (
        "mail.clinic.example", 2525, False, None, None, "kapnotes@localhost")
    monkeypatch.setenv("KAPNOTES_SMTP_URL", "smtps://kap%40clinic.example:p%3Ass@mail.clinic.example")
    monkeypatch.setenv("KAPNOTES_SMTP_FROM", "kapnotes@clinic.example")
    s = get_settings().smtp
    assert (s.host, s.port, s.tls, s.username, s.password, s.sender) == (
        "mail.clinic.example", 465, True, "kap@clinic.example", "p:ss", "kapnotes@clinic.example")
    assert "p:ss" not in repr(get_settings())  # the password never reaches a log line or traceback
    monkeypatch.setenv("KAPNOTES_SMTP_FROM", "KAPNotes <kapnotes@clinic.example>")
    with pytest.raises(ConfigError, match="KAPNOTES_SMTP_FROM must be one e-mail address"):
        get_settings()


def test_unreachable_database_is_a_plain_error(run_cli):
    url = "postgresql+psycopg://kapuser:s3cret@127.0.0.1:1/nowhere"
    for args in (["init-db"], ["verify-audit"]):
        status, out, err = run_cli(url, *args)
        assert status == 1, args
        assert err.startswith("error: Cannot ") and "127.0.0.1" in err
        assert "s3cret" not in err  # the password in the URL is never printed
