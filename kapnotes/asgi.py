"""The server: Streamlit's ``st.App`` around app.py, plus our sign-in routes and the edges.

Run with ``uvicorn kapnotes.asgi:app``. Streamlit's websocket cannot set an HttpOnly
cookie, so signing in is a plain HTML form posted to ``/auth/sign-in`` (our route), which
checks the password with ``kapnotes.auth``, stores the hash of a random session id and sets
the id as a cookie. Pages then find the user through that cookie only (kapnotes.ui.guard).
The middleware adds the security headers to every response, Streamlit's own included, and
sends a signed-out page request to the sign-in form with the page as ``next``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import os
import re
import secrets
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import streamlit as st
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from kapnotes import auth, checkin_routes, oidc
from kapnotes.actor import actor_of
from kapnotes.checkin_routes import CHECKIN_PATH
from kapnotes.config import PROJECT_ROOT, get_settings
from kapnotes.db import session_scope

TEST_SIGN_IN_FLAG = "KAPNOTES_APPTEST_SIGN_IN"  # see kapnotes.ui.guard; never in a served process
if os.environ.get(TEST_SIGN_IN_FLAG):
    raise RuntimeError(f"{TEST_SIGN_IN_FLAG} is for AppTest only; unset it to serve KAPNotes.")

CSRF_COOKIE = "kapnotes_csrf"
SIGN_IN_PATH = "/auth/sign-in"
SIGN_OUT_PATH = "/auth/sign-out"
SIGN_IN_NEXT_PATH = "/auth/sign-in/next"  # the steps after a right password (code, new password, enrolment)
PENDING_COOKIE = "kapnotes_pending"
# Paths that are not pages: Streamlit's own endpoints and assets, and our routes.
NOT_PAGES = ("/_stcore/", "/static/", "/media/", "/component/", "/auth/", "/app/static/")
# Served only to a signed-in staff session (issue 20): download_button files and uploads.
STAFF_ONLY = ("/media/", "/_stcore/upload_file")
# Answered only to a signed-in session or a live check-in (the frontend asks for host-config).
SIGNED_IN_ONLY = ("/_stcore/metrics", "/_stcore/host-config")

FAILED_BY_IP = auth.SlidingWindow()  # failed sign-ins per client IP, this process only
DELAY_BY_IP = auth.DelayTracker()  # growing waits per client IP (after twice the per-account threshold)


# --- helpers ---------------------------------------------------------------------------------


def _engine():
    from kapnotes.ui.database import engine  # the one engine per URL the pages use too

    return engine()


def is_https(scope) -> bool:
    if scope.get("scheme") in ("https", "wss"):
        return True
    if get_settings().trust_proxy:
        for name, value in scope.get("headers", []):
            if name == b"x-forwarded-proto":
                return value.decode("latin-1").split(",")[0].strip().lower() == "https"
    return False


def client_ip(request: Request) -> str:
    if get_settings().trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()[:64]  # the address our proxy saw
    return request.client.host if request.client else ""


def safe_next(value: str | None) -> str:
    """Only a path on this server: never another site (``//evil``, ``https:``, ``/\\evil``)."""
    value = (value or "").strip()
    if (not value.startswith("/") or value.startswith("//") or "\\" in value
            or any(ord(c) < 32 or ord(c) == 127 for c in value) or value.startswith(NOT_PAGES)):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value[:1000]


def _streamlit_inline_script_hashes() -> list[str]:
    """Streamlit's index.html has one small inline script; allow exactly it by hash."""
    index = Path(st.__file__).parent / "static" / "index.html"
    try:
        page = index.read_text(encoding="utf-8")
    except OSError:
        return []
    return [
        "'sha256-" + __import__("base64").b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    ]


CSP = "; ".join([
    "default-src 'self'",
    # blob: for Streamlit's v2 components, whose JS (shipped with the app, e.g. the note editor's
    # autosave bridge) Streamlit loads from a blob URL it creates itself; only same-origin script
    # can create one, and no inline script or other origin is allowed
    "script-src 'self' blob: " + " ".join(_streamlit_inline_script_hashes()),
    "style-src 'self' 'unsafe-inline'",  # Streamlit's CSS-in-JS writes style elements at run time
    "img-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",  # includes the same-origin websocket
    "media-src 'self' blob:",
    "worker-src 'self' blob:",
    "frame-src 'self' blob: data:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


def security_headers(https: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for old browsers
    }
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers


def set_session_cookie(response: Response, token: str, https: bool) -> None:
    response.set_cookie(auth.SESSION_COOKIE, token, path="/", httponly=True, samesite="strict", secure=https)


def _same_origin(request: Request) -> bool:
    """A present, non-null Origin must be ours (with no-referrer, forms may send ``null``)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return True
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


# --- the sign-in page -------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;color:#111;background:#fff;margin:0}
main{max-width:26rem;margin:4rem auto;padding:0 1rem}
h1{color:#23595c;margin-bottom:.25rem}
label{display:block;margin-top:1rem;font-weight:600}
input{display:block;width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem;font-size:1rem;
border:1px solid #555;border-radius:.25rem}
button{margin-top:1.5rem;padding:.6rem 1.4rem;font-size:1rem;background:#23595c;color:#fff;border:0;
border-radius:.25rem;cursor:pointer}
button:focus,input:focus{outline:3px solid #e0a800;outline-offset:2px}
.error{background:#fde8e8;color:#7a1010;padding:.75rem;border-radius:.25rem}
.notice{background:#e6f0fa;color:#0b3a66;padding:.75rem;border-radius:.25rem}
"""

NOTICES = {
    "signed_out": "You have signed out.",
    "ended": "Your session has ended. Sign in again to continue.",
}


def sign_in_page(next_path: str, csrf: str, error: str = "", notice: str = "", status: int = 200) -> HTMLResponse:
    e = html.escape
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Sign in · KAPNotes</title><style>{_STYLE}</style></head><body><main>",
        "<h1>KAPNotes</h1>",
        "<p>Clinical documentation for ketamine-assisted psychotherapy. Sign in to continue.</p>",
    ]
    if notice:
        parts.append(f'<p class="notice" role="status">{e(notice)}</p>')
    if error:
        parts.append(f'<div class="error" role="alert">{"".join(f"<p>{e(m)}</p>" for m in error.split(chr(10)))}</div>')
    parts.append(oidc.sign_in_button(next_path))  # single sign-on, when configured
    parts += [
        f'<form method="post" action="{SIGN_IN_PATH}">',
        f'<input type="hidden" name="next" value="{e(next_path)}">',
        f'<input type="hidden" name="csrf" value="{e(csrf)}">',
        '<label for="username">Username</label>',
        '<input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false">',
        '<label for="password">Password</label>',
        '<input id="password" name="password" type="password" autocomplete="current-password">',
        '<button type="submit">Sign in</button>',
        "</form></main></body></html>",
    ]
    response = HTMLResponse("".join(parts), status_code=status, headers={"Cache-Control": "no-store"})
    return response


def _with_csrf(request: Request, next_path: str, **kwargs) -> HTMLResponse:
    csrf = secrets.token_urlsafe(32)
    response = sign_in_page(next_path, csrf, **kwargs)
    response.set_cookie(CSRF_COOKIE, csrf, path="/auth/", httponly=True, samesite="strict",
                        secure=is_https(request.scope))
    return response


async def sign_in_form(request: Request) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""), "")
    return _with_csrf(request, safe_next(request.query_params.get("next")), notice=notice)


def _ip_refusal(ip: str) -> str:
    """Why this address may not try now ("" if it may): the 15-minute cap, or a growing wait."""
    if FAILED_BY_IP.count(ip) >= get_settings().signin_ip_limit:
        return ("Too many failed sign-ins from this network. Wait 15 minutes and try again, "
                "or ask your administrator.")
    wait = DELAY_BY_IP.wait(ip)
    return auth.wait_message(wait) if wait else ""


def _failure_message(result_message: str, wait: int, failures: int) -> str:
    lines = [result_message]
    if wait:
        lines.append(auth.wait_message(wait))
    if failures >= 2:
        lines.append(auth.repeated_failure_notice())
    return "\n".join(lines)


async def sign_in(request: Request) -> Response:
    form = await request.form()
    next_path = safe_next(str(form.get("next", "")))
    sent, kept = str(form.get("csrf", "")), request.cookies.get(CSRF_COOKIE, "")
    if not kept or not hmac.compare_digest(sent, kept) or not _same_origin(request):
        return _with_csrf(request, next_path, error="The sign-in form had expired. Please try again.", status=400)
    ip = client_ip(request)
    refusal = _ip_refusal(ip)
    if refusal:
        return _with_csrf(request, next_path, status=429, error=refusal)
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    user_agent = request.headers.get("user-agent", "")

    def _check():
        with session_scope(_engine()) as session:
            result = auth.authenticate(session, username, password)
            token = auth.start_session(session, result.actor, ip, user_agent) if result.complete else None
            return result, token

    result, token = await run_in_threadpool(_check)
    if not result.ok:
        # a refusal during a wait looked at nothing: it does not count against the address
        failures = FAILED_BY_IP.add(ip) if result.checked else FAILED_BY_IP.count(ip)
        ip_wait = DELAY_BY_IP.fail(ip, threshold_scale=2) if result.checked else 0
        message = _failure_message(result.message, max(result.wait_seconds, ip_wait), failures)
        return _with_csrf(request, next_path, error=message, status=429 if result.wait_seconds else 401)
    if result.steps:  # a right password, but not signed in yet: the next step, held on the server
        pending = _Pending(result.actor.id, result.actor.username, next_path, list(result.steps), ip, user_agent)
        raw = PENDING.put(pending)
        response = await run_in_threadpool(_step_page, pending)
        response.set_cookie(PENDING_COOKIE, raw, path="/auth/", httponly=True, samesite="strict",
                            secure=is_https(request.scope), max_age=PENDING_SECONDS)
        response.delete_cookie(CSRF_COOKIE, path="/auth/")
        return response
    DELAY_BY_IP.reset(ip)
    return _signed_in(request, next_path, token)


def _signed_in(request: Request, next_path: str, token: str) -> Response:
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, token, is_https(request.scope))
    response.delete_cookie(CSRF_COOKIE, path="/auth/")
    response.delete_cookie(PENDING_COOKIE, path="/auth/")
    return response


# --- the steps after a right password -------------------------------------------------------------

PENDING_SECONDS = 600  # a half-done sign-in lasts at most 10 minutes
MAX_CODE_TRIES = 5  # wrong codes in one half-done sign-in before the password is asked again


@dataclass
class _Pending:
    """A right password whose sign-in is not finished. Kept in this process's memory, found by
    the hash of a random id in an HttpOnly cookie: the browser holds nothing it could forge."""

    user_id: int
    username: str
    next_path: str
    steps: list[str]
    ip: str
    user_agent: str
    form_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    expires: float = field(default_factory=lambda: time.monotonic() + PENDING_SECONDS)
    code_failures: int = 0
    enrol_uri: str = ""
    enrol_secret: str = ""


class _PendingStore:
    def __init__(self):
        self._items: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def put(self, pending: _Pending) -> str:
        raw = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            for key in [k for k, v in self._items.items() if v.expires < now]:
                del self._items[key]
            self._items[auth.token_hash(raw)] = pending
        return raw

    def get(self, raw: str | None) -> _Pending | None:
        if not raw or len(raw) > 200:
            return None
        with self._lock:
            pending = self._items.get(auth.token_hash(raw))
            if pending is not None and pending.expires < time.monotonic():
                del self._items[auth.token_hash(raw)]
                return None
            return pending

    def drop(self, raw: str | None) -> None:
        if raw:
            with self._lock:
                self._items.pop(auth.token_hash(raw), None)


PENDING = _PendingStore()


def _page(title: str, body: list[str], status: int = 200) -> HTMLResponse:
    e = html.escape
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)} · KAPNotes</title><style>{_STYLE}"
        "code{font-size:1.1rem}ul.codes{columns:2;font-family:monospace;font-size:1.1rem}</style></head><body><main>",
        "<h1>KAPNotes</h1>", f"<h2>{e(title)}</h2>", *body, "</main></body></html>",
    ]
    return HTMLResponse("".join(parts), status_code=status, headers={"Cache-Control": "no-store"})


def _error_html(error: str) -> list[str]:
    if not error:
        return []
    paragraphs = "".join(f"<p>{html.escape(m)}</p>" for m in error.split(chr(10)))
    return [f'<div class="error" role="alert">{paragraphs}</div>']


def _step_form(pending: _Pending, step: str, fields: list[str], button: str) -> list[str]:
    e = html.escape
    return [f'<form method="post" action="{SIGN_IN_NEXT_PATH}">',
            f'<input type="hidden" name="form_token" value="{e(pending.form_token)}">',
            f'<input type="hidden" name="step" value="{e(step)}">', *fields,
            f'<button type="submit">{e(button)}</button></form>']


def _step_page(pending: _Pending, error: str = "", status: int = 200, codes: list[str] | None = None) -> HTMLResponse:
    """The page for the first step still to do (runs in a worker thread: may touch the database)."""
    from kapnotes import mfa

    e = html.escape
    if codes:
        return _page("Your recovery codes", _step_form(pending, "codes_seen", [
            '<p class="notice" role="status">Your second factor is on.</p>',
            "<p>Keep these recovery codes somewhere safe, away from your phone. Each one signs you in once "
            "if you lose your phone. <strong>They are shown only now.</strong></p>",
            '<ul class="codes" aria-label="Recovery codes">' + "".join(f"<li>{e(c)}</li>" for c in codes) + "</ul>",
        ], "I have kept them: continue"))
    step = pending.steps[0]
    if step == "code":
        return _page("Second step: your code", _error_html(error) + _step_form(pending, "code", [
            "<p>Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>",
            '<label for="code">Code</label>',
            '<input id="code" name="code" autocomplete="one-time-code" inputmode="text" autocapitalize="none" '
            'spellcheck="false" maxlength="20">',
        ], "Continue"), status)
    if step == "change_password":
        minimum = get_settings().min_password_length
        return _page("Choose a new password", _error_html(error) + _step_form(pending, "change_password", [
            "<p>Your administrator reset your password. Choose a new one before you continue: at least "
            f"{minimum} characters, not a common password and not built from your name or username. "
            "A few unrelated words work well.</p>",
            '<label for="new_password">New password</label>',
            '<input id="new_password" name="new_password" type="password" autocomplete="new-password">',
            '<label for="repeat_password">New password again</label>',
            '<input id="repeat_password" name="repeat_password" type="password" autocomplete="new-password">',
        ], "Save and continue"), status)
    # enrol
    if not pending.enrol_uri:
        with session_scope(_engine()) as session:
            pending.enrol_secret, pending.enrol_uri = mfa.begin_enrolment(session, pending.user_id)
    qr = mfa.qr_svg_data_uri(pending.enrol_uri)
    return _page("Set up your second factor", _error_html(error) + _step_form(pending, "enrol", [
        "<p>Your clinic requires a second factor for your role. Scan this code with an authenticator app "
        "(for example Google Authenticator, Microsoft Authenticator or FreeOTP), then enter the 6-digit "
        "code it shows.</p>",
        f'<img src="{e(qr)}" alt="QR code for your authenticator app" width="240" height="240">',
        f'<p>Cannot scan? Enter this key instead: <code id="totp-secret">{e(pending.enrol_secret)}</code></p>',
        '<label for="code">Code from the app</label>',
        '<input id="code" name="code" autocomplete="one-time-code" inputmode="numeric" maxlength="10">',
    ], "Turn on"), status)


def _start_over(request: Request, message: str) -> Response:
    response = _with_csrf(request, "/", error=message, status=400)
    response.delete_cookie(PENDING_COOKIE, path="/auth/")
    return response


async def sign_in_next(request: Request) -> Response:
    """One step after a right password; the session starts only when no step is left."""
    from kapnotes import mfa
    from kapnotes.errors import ValidationError
    from kapnotes.models import User

    form = await request.form()
    raw = request.cookies.get(PENDING_COOKIE)
    pending = PENDING.get(raw)
    if (pending is None or not _same_origin(request)
            or not hmac.compare_digest(str(form.get("form_token", "")), pending.form_token)):
        return _start_over(request, "The sign-in took too long or was interrupted. Please sign in again.")
    ip = client_ip(request)
    step = str(form.get("step", ""))
    if step == "codes_seen" and pending.steps and pending.steps[0] == "codes_seen":
        pending.steps.pop(0)
    elif not pending.steps or step != pending.steps[0]:
        return await run_in_threadpool(_step_page, pending, "Please complete this step first.", 400)
    elif step in ("code", "enrol"):
        refusal = _ip_refusal(ip)
        if refusal:
            return await run_in_threadpool(_step_page, pending, refusal, 429)
        code = str(form.get("code", ""))[:40]

        def _check_code():
            with session_scope(_engine()) as session:
                user = session.get(User, pending.user_id)
                if user is None or not user.is_active:
                    return "gone", 0, None
                wait = auth.account_wait(user)
                if wait:
                    return "wait", wait, None
                if step == "code":
                    if mfa.verify(session, user.id, code):
                        return "ok", 0, None
                else:
                    try:
                        return "ok", 0, mfa.confirm_enrolment(session, user.id, code)
                    except ValidationError:
                        pass
                return "bad", auth.record_failure(session, user, "bad second-factor code"), None

        outcome, wait, codes = await run_in_threadpool(_check_code)
        if outcome == "gone":
            PENDING.drop(raw)
            return _start_over(request, auth.GENERIC_FAILURE)
        if outcome in ("wait", "bad"):
            failures = FAILED_BY_IP.add(ip) if outcome == "bad" else FAILED_BY_IP.count(ip)
            if outcome == "bad":
                wait = max(wait, DELAY_BY_IP.fail(ip, threshold_scale=2))
                pending.code_failures += 1
                if pending.code_failures >= MAX_CODE_TRIES:
                    PENDING.drop(raw)
                    return _start_over(request, "Too many wrong codes. Sign in again.\n"
                                       + auth.repeated_failure_notice())
            message = _failure_message("That code did not work. Enter the code your app shows now, or a recovery code.",
                                       wait, failures)
            return await run_in_threadpool(_step_page, pending, message, 429 if wait else 401)
        pending.steps.pop(0)
        if codes:
            pending.steps.insert(0, "codes_seen")
            return await run_in_threadpool(lambda: _step_page(pending, codes=codes))
    elif step == "change_password":
        new, repeat = str(form.get("new_password", "")), str(form.get("repeat_password", ""))

        def _change():
            with session_scope(_engine()) as session:
                if new != repeat:
                    raise ValidationError({"repeat": "The two passwords differ."})
                user = session.get(User, pending.user_id)
                if user is not None and auth._verify_quietly(user.password_hash, new):
                    raise ValidationError({"password": "Choose a password different from the temporary one."})
                auth.set_password(session, actor_of(user), pending.user_id, new)

        try:
            await run_in_threadpool(_change)
        except ValidationError as exc:
            return await run_in_threadpool(_step_page, pending, "\n".join(exc.errors.values()), 400)
        pending.steps.pop(0)
    if pending.steps:
        return await run_in_threadpool(_step_page, pending)

    def _finish():
        with session_scope(_engine()) as session:
            actor = auth.finish_sign_in(session, pending.user_id)
            return auth.start_session(session, actor, pending.ip, pending.user_agent) if actor else None

    token = await run_in_threadpool(_finish)
    PENDING.drop(raw)
    if token is None:
        return _start_over(request, auth.GENERIC_FAILURE)
    DELAY_BY_IP.reset(ip)
    return _signed_in(request, pending.next_path, token)


async def sign_out(request: Request) -> Response:
    """Revoke this browser's session row; the cookie is cleared too, but the row is what counts."""
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token and _same_origin(request):
        def _end():
            with session_scope(_engine()) as session:
                auth.end_session(session, token)

        await run_in_threadpool(_end)
    response = RedirectResponse(f"{SIGN_IN_PATH}?notice=signed_out", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


# --- the edges ----------------------------------------------------------------------------------


def _is_page_request(scope) -> bool:
    path = scope.get("path", "/")
    if scope.get("method") not in ("GET", "HEAD") or path.startswith(NOT_PAGES):
        return False
    return "." not in path.rsplit("/", 1)[-1]  # /patients is a page; /favicon.png is not


def _cookie(scope, name: str) -> str | None:
    from http.cookies import SimpleCookie

    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # a malformed cookie header is simply no session
                return None
            if name in jar:
                return jar[name].value
    return None


class EdgeMiddleware:
    """Security headers on every HTTP response; signed-out page loads go to the sign-in form."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = is_https(scope)
        headers = security_headers(https)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                mutable = MutableHeaders(scope=message)
                for name, value in headers.items():
                    mutable[name] = value
            await send(message)

        path = scope.get("path", "/")
        if path == CHECKIN_PATH:  # the patient's door (kapnotes.checkin_routes): no staff session needed
            await self.app(scope, receive, send_with_headers)
            return
        closed = path.startswith(STAFF_ONLY) or path in SIGNED_IN_ONLY
        if _is_page_request(scope) or closed:
            token = _cookie(scope, auth.SESSION_COOKIE)
            patient_token = _cookie(scope, checkin_routes.CHECKIN_COOKIE)

            def _valid() -> bool:
                with session_scope(_engine()) as session:
                    return auth.check_session(session, token).ok

            staff = bool(token) and await run_in_threadpool(_valid)
            if not staff and path.startswith(STAFF_ONLY):
                # export files and uploads belong to a signed-in session, never to whoever has the URL
                await PlainTextResponse("Forbidden", status_code=403)(scope, receive, send_with_headers)
                return
            if not staff and patient_token:
                key = checkin_routes.request_key(scope)
                link_id, _ = await run_in_threadpool(checkin_routes.check_token, patient_token, key)
                if link_id is not None:  # the patient's check-in page and what its frontend needs
                    await self.app(scope, receive, send_with_headers)
                    return
                if not closed:  # revoked or expired: the one generic page, never the staff sign-in
                    await checkin_routes.refusal_page()(scope, receive, send_with_headers)
                    return
            if not staff and closed:  # metrics and host-config: nothing for a signed-out visitor
                await PlainTextResponse("Not found", status_code=404)(scope, receive, send_with_headers)
                return
            if not staff:
                query = scope.get("query_string", b"").decode("latin-1")
                if path == "/" and "t" in parse_qs(query):  # an older check-in link: through the door
                    target = f"{CHECKIN_PATH}?{urlencode({'t': parse_qs(query)['t'][0]})}"
                    await RedirectResponse(target, status_code=303)(scope, receive, send_with_headers)
                    return
                target = safe_next(path + (f"?{query}" if query else ""))
                notice = "&notice=ended" if token else ""
                response = RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target, safe='/')}{notice}", status_code=303)
                if token:
                    response.delete_cookie(auth.SESSION_COOKIE, path="/")
                await response(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


@asynccontextmanager
async def lifespan(_app):
    """Start-up: remove imports a crashed process left half-staged; anchor the audit chain at least
    hourly when ``KAPNOTES_AUDIT_ANCHOR_FILE`` is set (the thread stops at shutdown)."""
    from kapnotes import audit, csv_import

    def _cleanup() -> None:
        with session_scope(_engine()) as session:
            csv_import.cleanup_abandoned_imports(session)

    await run_in_threadpool(_cleanup)
    anchor_file = os.environ.get("KAPNOTES_AUDIT_ANCHOR_FILE", "").strip()
    thread = audit.start_anchor_thread(_engine(), anchor_file) if anchor_file else None
    try:
        yield None
    finally:
        if thread is not None:
            thread.stop()


app = st.App(
    str(PROJECT_ROOT / "app.py"),
    lifespan=lifespan,
    routes=[
        Route(SIGN_IN_PATH, sign_in_form, methods=["GET"]),
        Route(SIGN_IN_PATH, sign_in, methods=["POST"]),
        Route(SIGN_IN_NEXT_PATH, sign_in_next, methods=["POST"]),
        Route(SIGN_OUT_PATH, sign_out, methods=["POST"]),
        *oidc.routes(),  # single sign-on (404 unless configured)
        *checkin_routes.routes(),  # GET /checkin?t=: the patient's link (issue 15)
    ],
    middleware=[Middleware(EdgeMiddleware)],
)
