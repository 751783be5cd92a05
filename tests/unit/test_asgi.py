"""The server's edges through a real ``uvicorn kapnotes.asgi:app`` on a free port (as ``make run``):
the session cookie's attributes, security headers on real responses, the per-IP limit, sign-out,
``next``. (starlette's TestClient needs httpx, which is not installed; a real server is truer anyway.)"""

from __future__ import annotations

import http.client
import re
import subprocess
from urllib.parse import urlencode, urlsplit

import pytest
from sqlmodel import Session, select

from kapnotes.models import UserSession
from kapnotes.seed import DEMO_PASSWORD as PASSWORD
from tests.helpers.cli import kap

# starts real uvicorn servers: `make test` runs this module, `make check` leaves it out
pytestmark = pytest.mark.slow


class Client:
    """Just enough HTTP: no redirects followed, cookies kept per client, headers per request."""

    def __init__(self, base: str, ip: str | None = None):
        self.netloc = urlsplit(base).netloc
        self.cookies: dict[str, str] = {}
        self.ip = ip

    def request(self, method, path, params=None, data=None, headers=None):
        if params:
            path += "?" + urlencode(params)
        hdrs = {"User-Agent": "kapnotes-test"}
        if self.ip:
            hdrs["X-Forwarded-For"] = self.ip
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if data is not None:
            body = urlencode(data)
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        hdrs.update(headers or {})
        conn = http.client.HTTPConnection(self.netloc, timeout=30)
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        r.text = r.read().decode()
        r.set_cookies = r.headers.get_all("set-cookie") or []
        for c in r.set_cookies:
            name, value = c.split(";")[0].split("=", 1)
            if "max-age=0" in c.lower() or 'expires=thu, 01 jan 1970' in c.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        r.status_code = r.status
        conn.close()
        return r

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)


def _start(tmp_path_factory, name, env):
    from tests.helpers.browser import start_server

    db = tmp_path_factory.mktemp(name) / "asgi.db"
    proc, base = start_server(db, extra_env=env)
    return proc, base, f"sqlite:///{db}"


def _stop(proc):
    from tests.helpers.browser import stop_server

    stop_server(proc)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """Behind our own proxy (trusted): each test gets its own client address, so limits do not mix."""
    proc, base, db_url = _start(tmp_path_factory, "proxied", {"KAPNOTES_TRUST_PROXY": "1",
                                                              "KAPNOTES_SIGNIN_IP_LIMIT": "3"})
    yield base, db_url
    _stop(proc)


@pytest.fixture(scope="module")
def direct(tmp_path_factory):
    proc, base, db_url = _start(tmp_path_factory, "direct", {})
    yield base, db_url
    _stop(proc)


_ips = iter(f"203.0.113.{n}" for n in range(1, 250))


@pytest.fixture
def server(proxied):
    client = Client(proxied[0], ip=next(_ips))
    client.db_url = proxied[1]
    return client


def _csrf(client, next_path="/") -> str:
    page = client.get("/auth/sign-in", params={"next": next_path})
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _sign_in(client, username="tsato", password=PASSWORD, next_path="/", **headers):
    token = _csrf(client, next_path)
    return client.post("/auth/sign-in", data={"username": username, "password": password, "next": next_path,
                                              "csrf": token}, headers=headers)


def test_importing_the_server_with_the_apptest_flag_refuses(monkeypatch):
    import importlib

    monkeypatch.delenv("KAPNOTES_APPTEST_SIGN_IN", raising=False)
    import kapnotes.asgi as asgi

    monkeypatch.setenv("KAPNOTES_APPTEST_SIGN_IN", "1")
    with pytest.raises(RuntimeError, match="AppTest only"):
        importlib.reload(asgi)
    monkeypatch.delenv("KAPNOTES_APPTEST_SIGN_IN")
    importlib.reload(asgi)


def test_sign_in_sets_a_strict_http_only_cookie_and_stores_only_its_hash(server):
    r = _sign_in(server, next_path="/dose_log")
    assert r.status_code == 303 and r.headers["location"] == "/dose_log"
    cookie = [c for c in r.set_cookies if c.startswith("kapnotes_session=")][0]
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs  # plain http here
    raw = cookie.split(";")[0].split("=", 1)[1]
    assert len(raw) >= 43  # 32 random bytes, base64url
    rows = _rows(server.db_url)
    assert all(raw not in row.token_hash for row in rows)
    mine = [row for row in rows if row.ip == server.ip]
    assert len(mine) == 1 and mine[0].user_agent == "kapnotes-test"


def test_cookie_is_secure_and_hsts_sent_under_https(server):
    r = _sign_in(server, **{"X-Forwarded-Proto": "https"})
    cookie = [c for c in r.set_cookies if c.startswith("kapnotes_session=")][0]
    assert "secure" in [a.strip().lower() for a in cookie.split(";")]
    assert r.headers["strict-transport-security"].startswith("max-age=")


def test_forwarded_proto_is_ignored_unless_the_proxy_is_trusted(direct):
    r = _sign_in(Client(direct[0]), **{"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in r.headers
    cookie = [c for c in r.set_cookies if c.startswith("kapnotes_session=")][0]
    assert "secure" not in [a.strip().lower() for a in cookie.split(";")]


@pytest.mark.parametrize("path", ["/_stcore/health", "/auth/sign-in", "/", "/dose_log"])
def test_security_headers_on_real_responses(server, path):
    _sign_in(server)
    r = server.get(path)
    assert r.status_code in (200, 303)
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp and "'unsafe-eval'" not in csp
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in r.headers


def test_signed_out_page_goes_to_the_form_keeping_the_page(server):
    r = server.get("/review_queue")
    assert r.status_code == 303 and r.headers["location"] == "/auth/sign-in?next=/review_queue"
    page = server.get(r.headers["location"])
    assert '<label for="username">Username</label>' in page.text
    assert 'name="next" value="/review_queue"' in page.text


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)",
                                  "evil.example", "/_stcore/health"])
def test_next_never_leaves_the_site(server, evil):
    page = server.get("/auth/sign-in", params={"next": evil})
    assert 'name="next" value="/"' in page.text
    r = _sign_in(server, next_path=evil)
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_sign_in_without_the_form_token_or_from_another_origin_is_refused(server):
    r = server.post("/auth/sign-in", data={"username": "tina", "password": PASSWORD, "csrf": "x"})
    assert r.status_code == 400 and not any(c.startswith("kapnotes_session=") for c in r.set_cookies)
    r = _sign_in(server, Origin="https://evil.example")
    assert r.status_code == 400


def test_failures_are_generic_then_explain_the_delay(server):
    first = _sign_in(server, password="wrong-password-1")
    assert first.status_code == 401 and "Sign-in failed" in first.text and "locked" not in first.text
    second = _sign_in(server, username="nobody", password="wrong-password-2")
    assert second.status_code == 401
    assert "After 5 failed sign-ins in a row, each further failure makes the next attempt wait" in second.text
    assert "up to 15 minutes" in second.text and "locked" not in second.text


def test_sign_in_is_rate_limited_per_ip(server, proxied):
    for i in range(3):  # different accounts, so no account lockout is involved
        assert _sign_in(server, username=f"user{i}", password="wrong-password-x").status_code == 401
    r = _sign_in(server)  # even the right password: this address has to wait
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert not any(c.startswith("kapnotes_session=") for c in r.set_cookies)
    assert _sign_in(Client(proxied[0], ip="198.51.100.7")).status_code == 303  # another address is not held up


def test_sign_out_makes_the_old_cookie_worthless(server):
    r = _sign_in(server)
    raw = [c for c in r.set_cookies if c.startswith("kapnotes_session=")][0].split(";")[0]
    raw = raw.split("=", 1)[1]
    assert server.get("/").status_code == 200
    out = server.post("/auth/sign-out")
    assert out.status_code == 303 and out.headers["location"] == "/auth/sign-in?notice=signed_out"
    server.cookies["kapnotes_session"] = raw  # a copy kept by someone
    again = server.get("/")
    assert again.status_code == 303 and again.headers["location"].startswith("/auth/sign-in")
    from kapnotes.auth import token_hash

    assert [r.revoked_reason for r in _rows(server.db_url) if r.token_hash == token_hash(raw)] == ["sign_out"]


def _rows(db_url):
    from kapnotes.db import make_engine

    engine = make_engine(db_url)
    with Session(engine) as s:
        rows = s.exec(select(UserSession)).all()
    engine.dispose()
    return rows


# --- issue 20: exposure; issue 15: the check-in door --------------------------------------------


def test_media_and_uploads_are_refused_without_a_staff_session(server):
    """Export files handed over by st.download_button live at /media/<hash>: only for the signed in."""
    for method, path in (("GET", "/media/0123456789abcdef0123456789abcdef.pdf"),
                         ("PUT", "/_stcore/upload_file/session/file")):
        r = server.request(method, path)
        assert r.status_code == 403, (path, r.status_code)
    server.cookies["kapnotes_session"] = "forged"
    assert server.get("/media/0123456789abcdef0123456789abcdef.pdf").status_code == 403
    server.cookies.clear()
    assert _sign_in(server).status_code == 303
    r = server.get("/media/0123456789abcdef0123456789abcdef.pdf")
    assert r.status_code == 404  # through to Streamlit, which knows no such file


@pytest.mark.parametrize("path", ["/_stcore/metrics", "/_stcore/host-config"])
def test_metrics_and_host_config_answer_only_the_signed_in(server, path):
    assert server.get(path).status_code == 404
    assert _sign_in(server).status_code == 303
    assert server.get(path).status_code == 200  # the app's own frontend still gets what it needs


def _checkin_cli(db_url, *args) -> str:
    done = kap(db_url, "checkin-link", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""


def test_checkin_link_sets_an_http_only_cookie_and_leaves_the_url(server):
    url = _checkin_cli(server.db_url, "--patient", "KAP-1002", "--base-url", "https://clinic.example")
    assert url.startswith("https://clinic.example/checkin?t=")
    token = url.split("t=", 1)[1]
    r = server.get(f"/checkin?t={token}", headers={"X-Forwarded-Proto": "https"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    (cookie,) = [c for c in r.set_cookies if c.startswith("kapnotes_checkin=")]
    low = cookie.lower()
    assert f"kapnotes_checkin={token}" in cookie and "httponly" in low and "samesite=lax" in low
    assert "secure" in low and 29 * 86400 < int(re.search(r"max-age=(\d+)", low).group(1)) <= 30 * 86400
    # the page loads on the cookie alone (a reload), and its frontend gets host-config
    assert server.get("/").status_code == 200
    assert server.get("/_stcore/host-config").status_code == 200
    assert server.get("/media/0123456789abcdef0123456789abcdef.pdf").status_code == 403  # not staff
    # an older link (/?t=) goes through the door
    server.cookies.clear()
    r = server.get(f"/?t={token}")
    assert r.status_code == 303 and r.headers["location"] == f"/checkin?t={token}"
    assert server.get(f"/checkin?t={token}").status_code == 303
    # revoked: the next page load shows the one generic page, never the staff sign-in form
    _checkin_cli(server.db_url, "--patient", "KAP-1002", "--revoke")
    r = server.get("/")
    assert r.status_code == 404 and "This check-in link does not work." in r.text and "Password" not in r.text
    assert server.get("/_stcore/host-config").status_code == 404


def test_bad_checkin_tokens_get_the_generic_page_and_are_rate_limited(server):
    url = _checkin_cli(server.db_url, "--patient", "KAP-1002", "--base-url", "http://x")
    token = url.split("t=", 1)[1]
    for i in range(10):
        r = server.get("/checkin", params={"t": f"guess{i}"})
        assert r.status_code == 404 and "This check-in link does not work." in r.text
        assert not any(c.startswith("kapnotes_checkin=guess") for c in r.set_cookies)
    r = server.get(f"/checkin?t={token}")  # blocked now, even with the right token
    assert r.status_code == 404 and "kapnotes_checkin" not in server.cookies
    other = Client(f"http://{server.netloc}", ip=next(_ips))
    assert other.get(f"/checkin?t={token}").status_code == 303  # another address is not blocked


# --- second factor, forced password change, growing delays (issue 14 items 3–4, issue 20) ---------


def _db(db_url):
    from kapnotes.db import make_engine, session_scope

    engine = make_engine(db_url)

    class _Scope:
        def __enter__(self):
            self._cm = session_scope(engine)
            return self._cm.__enter__()

        def __exit__(self, *exc):
            out = self._cm.__exit__(*exc)
            engine.dispose()
            return out

    return _Scope()


def _user_row(db_url, username):
    from kapnotes.models import User

    with _db(db_url) as s:
        user = s.exec(select(User).where(User.username == username)).one()
        s.expunge(user)
        return user


def _step(client, page, **fields):
    token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
    step = re.search(r'name="step" value="([^"]+)"', page.text).group(1)
    return client.post("/auth/sign-in/next", data={"form_token": token, "step": step, **fields})


def _enrol_in_db(db_url, username):
    import pyotp

    from kapnotes import mfa
    from kapnotes.models import User

    with _db(db_url) as s:
        user = s.exec(select(User).where(User.username == username)).one()
        secret, _ = mfa.begin_enrolment(s, user.id)
        codes = mfa.confirm_enrolment(s, user.id, pyotp.TOTP(secret).now())
    return secret, codes


def _next_code(db_url, username, secret):
    """A code for a step after the last one used (a code is never accepted twice)."""
    import time

    import pyotp

    totp = pyotp.TOTP(secret)
    last = _user_row(db_url, username).totp_last_step
    step = max(totp.timecode(time.time()), (last or 0) + 1)
    return totp.generate_otp(step)


def test_an_enrolled_user_needs_the_code_before_any_session(tmp_path_factory):
    proc, base, db_url = _start(tmp_path_factory, "mfa", {})
    try:
        secret, codes = _enrol_in_db(db_url, "mokafor")
        client = Client(base)
        first = _sign_in(client, username="mokafor", next_path="/review_queue")
        assert first.status_code == 200 and "Second step" in first.text
        assert not any(c.startswith("kapnotes_session=") for c in first.set_cookies)
        pending = [c for c in first.set_cookies if c.startswith("kapnotes_pending=")][0].lower()
        assert "httponly" in pending and "samesite=strict" in pending and "path=/auth/" in pending
        assert client.get("/review_queue").status_code == 303  # not signed in yet
        assert not [r for r in _rows(db_url)]
        wrong = _step(client, first, code="000000")
        assert wrong.status_code == 401 and "did not work" in wrong.text
        ok = _step(client, wrong, code=_next_code(db_url, "mokafor", secret))
        assert ok.status_code == 303 and ok.headers["location"] == "/review_queue"
        assert client.get("/review_queue").status_code == 200
        # a recovery code works once
        other = Client(base)
        page = _sign_in(other, username="mokafor")
        assert _step(other, page, code=codes[0]).status_code == 303
        third = Client(base)
        page = _sign_in(third, username="mokafor")
        again = _step(third, page, code=codes[0])
        assert again.status_code == 401 and not any(c.startswith("kapnotes_session=") for c in again.set_cookies)
        # a forged or missing pending id gets nothing
        forged = Client(base)
        forged.cookies["kapnotes_pending"] = "x" * 43
        r = forged.post("/auth/sign-in/next", data={"form_token": "y", "step": "code", "code": codes[1]})
        assert r.status_code == 400 and "Please sign in again" in r.text
    finally:
        _stop(proc)


def test_mfa_required_sends_a_prescriber_to_enrolment_first(tmp_path_factory):
    import pyotp

    proc, base, db_url = _start(tmp_path_factory, "require_mfa", {"KAPNOTES_REQUIRE_MFA": "1"})
    try:
        client = Client(base)
        page = _sign_in(client, username="mokafor")
        assert page.status_code == 200 and "Set up your second factor" in page.text
        assert 'src="data:image/svg+xml' in page.text  # the QR code is made here, not fetched
        assert not any(c.startswith("kapnotes_session=") for c in page.set_cookies)
        secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page.text).group(1)
        assert _user_row(db_url, "mokafor").totp_secret == secret
        assert _user_row(db_url, "mokafor").totp_enabled_at is None
        codes_page = _step(client, page, code=pyotp.TOTP(secret).now())
        assert "Your recovery codes" in codes_page.text
        shown = re.findall(r"<li>([a-z0-9]{5}-[a-z0-9]{5})</li>", codes_page.text)
        assert len(shown) == 10
        done = _step(client, codes_page)
        assert done.status_code == 303 and any(c.startswith("kapnotes_session=") for c in done.set_cookies)
        assert _user_row(db_url, "mokafor").totp_enabled_at is not None
        # a therapist is not asked
        assert _sign_in(Client(base), username="tsato").status_code == 303
    finally:
        _stop(proc)


def test_after_an_admin_reset_the_new_password_comes_first(server):
    from kapnotes import admin
    from kapnotes.actor import actor_of
    from kapnotes.models import User

    with _db(server.db_url) as s:
        ada = actor_of(s.exec(select(User).where(User.username == "admin")).one())
        target = s.exec(select(User).where(User.username == "rbennett")).one()
        temporary = admin.reset_password(s, ada, target.id)
    page = _sign_in(server, username="rbennett", password=temporary, next_path="/notes")
    assert page.status_code == 200 and "Choose a new password" in page.text
    assert not any(c.startswith("kapnotes_session=") for c in page.set_cookies)
    weak = _step(server, page, new_password="password1234", repeat_password="password1234")
    assert weak.status_code == 400 and "common or breached" in weak.text
    done = _step(server, weak, new_password="granite lantern orbit", repeat_password="granite lantern orbit")
    assert done.status_code == 303 and done.headers["location"] == "/notes"
    assert not _user_row(server.db_url, "rbennett").must_change_password
    assert _sign_in(Client(f"http://{server.netloc}", ip="198.51.100.77"), username="rbennett",
                    password="granite lantern orbit").status_code == 303


def test_a_colleagues_wrong_guesses_cost_a_short_wait_not_a_lock(direct):
    import time

    client = Client(direct[0])
    for i in range(4):
        assert _sign_in(client, username="rbennett", password=f"wrong-password-{i}").status_code == 401
    fifth = _sign_in(client, username="rbennett", password="wrong-password-5")
    assert fifth.status_code == 429 and "Wait 1 second before trying again" in fifth.text
    assert "locked" not in fifth.text
    owner = Client(direct[0])
    deadline = time.monotonic() + 10
    while True:  # the owner keeps trying with the right password: in at most a few seconds they are in
        r = _sign_in(owner, username="rbennett")
        if r.status_code == 303 or time.monotonic() > deadline:
            break
        assert "Wait" in r.text
        time.sleep(0.2)  # polling the outcome, not waiting a fixed time
    assert r.status_code == 303


def test_two_processes_on_one_database_share_sign_ins_sessions_and_limits(tmp_path_factory):
    """Issue 19: behind a balancer, the next request of a browser may reach another process.
    A sign-in started on one (right password) finishes on the other (the code); the session made
    there is valid on the first; failed sign-ins from one address count on both."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from tests.helpers.browser import start_server

    env = {"KAPNOTES_TRUST_PROXY": "1", "KAPNOTES_SIGNIN_IP_LIMIT": "3"}
    proc_a, base_a, db_url = _start(tmp_path_factory, "two_processes", env)
    proc_b = None
    try:
        proc_b, base_b = start_server(Path(make_url(db_url).database), extra_env=env, seed=False)
        secret, _ = _enrol_in_db(db_url, "mokafor")
        on_a, on_b = Client(base_a, ip="198.51.100.7"), Client(base_b, ip="198.51.100.7")
        on_b.cookies = on_a.cookies  # one browser, two processes
        first = _sign_in(on_a, username="mokafor", next_path="/patients")
        assert first.status_code == 200 and "Second step" in first.text
        done = _step(on_b, first, code=_next_code(db_url, "mokafor", secret))
        assert done.status_code == 303 and done.headers["location"] == "/patients"
        assert on_a.get("/patients").status_code == 200 and on_b.get("/patients").status_code == 200

        plain_a, plain_b = Client(base_a, ip="198.51.100.8"), Client(base_b, ip="198.51.100.8")
        plain_b.cookies = plain_a.cookies
        assert _sign_in(plain_a).status_code == 303
        assert plain_b.get("/dose_log").status_code == 200  # a session made on A, valid on B

        guess_a, guess_b = Client(base_a, ip="198.51.100.9"), Client(base_b, ip="198.51.100.9")
        for client in (guess_a, guess_b, guess_a):
            assert _sign_in(client, password="wrong-password").status_code == 401
        refused = _sign_in(guess_b)  # the right password, but this address used its 3 tries on both
        assert refused.status_code == 429 and "from this network" in refused.text
    finally:
        _stop(proc_a)
        if proc_b is not None:
            _stop(proc_b)


def _throwaway_postgres(tmp_path_factory):
    """A PostgreSQL cluster of our own (initdb + pg_ctl as the postgres user, on a free port under
    /tmp): restarting it disturbs nobody else's database."""
    import glob
    import os
    import shutil

    from tests.helpers.browser import free_port

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not bins or os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("needs PostgreSQL's pg_ctl and root (to run it as the postgres user)")
    import tempfile
    from pathlib import Path

    pg_ctl = bins[-1]
    data = Path(tempfile.mkdtemp(prefix="kap-pgfault-")) / "data"  # outside pytest's root-only tmp
    data.parent.chmod(0o777)
    port = free_port()

    def as_postgres(*args, check=True):
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], check=check, capture_output=True, text=True)

    as_postgres(pg_ctl.replace("pg_ctl", "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    opts = f"-p {port} -k {data.parent} -c listen_addresses=127.0.0.1 -c fsync=off"

    def start():
        as_postgres(pg_ctl, "-D", str(data), "-o", opts, "-l", str(data.parent / "pg.log"), "-w", "start")

    def stop(remove=False):
        as_postgres(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop", check=False)
        if remove:
            shutil.rmtree(data.parent, ignore_errors=True)

    start()
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", start, stop


@pytest.mark.slow
def test_a_postgresql_restart_fails_requests_cleanly_and_the_app_recovers_by_itself(tmp_path_factory):
    """Issue 19 fault: PostgreSQL restarts under a running app. While it is down, a signed-in page
    load and a sign-in get a plain 503 page that says so (never a crash or a traceback); once it is
    back, the same app process (not restarted) serves the same session again."""
    import time

    from tests.helpers.browser import start_server

    url, pg_start, pg_stop = _throwaway_postgres(tmp_path_factory)
    proc = None
    try:
        proc, base = start_server(tmp_path_factory.mktemp("pgfault_app") / "unused.db",
                                  extra_env={"KAPNOTES_DATABASE_URL": url})
        client = Client(base)
        assert _sign_in(client).status_code == 303
        assert client.get("/patients").status_code == 200
        pg_stop()
        down = client.get("/patients")
        assert down.status_code == 503 and "cannot reach its database" in down.text
        assert "Traceback" not in down.text and down.headers["Retry-After"] == "30"
        assert "content-security-policy" in {k.lower() for k in down.headers}
        other = Client(base)
        form = other.get("/auth/sign-in")
        assert form.status_code == 200  # the form itself needs no database
        r = _sign_in(other)
        assert r.status_code == 503 and "cannot reach its database" in r.text
        pg_start()
        began = time.monotonic()
        while client.get("/patients").status_code != 200:
            assert time.monotonic() - began < 30, "the app did not recover after PostgreSQL came back"
            time.sleep(0.5)
        print(f"recovered {time.monotonic() - began:.1f} s after PostgreSQL was back")
        assert _sign_in(Client(base)).status_code == 303
        assert proc.poll() is None  # the same process, never restarted
    finally:
        if proc is not None:
            _stop(proc)
        pg_stop(remove=True)
