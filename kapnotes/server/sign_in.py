"""``/auth/sign-in`` and ``/auth/sign-out``: the password form (Streamlit's websocket cannot set
an HttpOnly cookie, so signing in is a plain HTML form posted here), the per-address limits, and
the session cookie. Only the hash of the session id is stored (``auth.start_session``).

The per-address counts live in the database (``auth.SIGN_IN_FAILURES_BY_IP``,
``auth.SIGN_IN_DELAY_BY_IP``), so a guesser gains nothing from landing on another process.
"""

from __future__ import annotations

import hmac
import secrets

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from kapnotes import auth, mfa
from kapnotes.config import get_settings
from kapnotes.db import session_scope
from kapnotes.server import pending as pending_store
from kapnotes.server.pages import (
    NOTICES,
    SIGN_IN_PATH,
    change_password_page,
    code_page,
    codes_page,
    enrol_page,
    sign_in_page,
)
from kapnotes.server.pending import PENDING_COOKIE, PENDING_SECONDS, Pending
from kapnotes.web import client_ip, engine, is_https, safe_next, same_origin, set_session_cookie

CSRF_COOKIE = "kapnotes_csrf"
SIGN_OUT_PATH = "/auth/sign-out"
FAILED_BY_IP = auth.SIGN_IN_FAILURES_BY_IP
DELAY_BY_IP = auth.SIGN_IN_DELAY_BY_IP


def with_csrf(request: Request, next_path: str, **kwargs) -> HTMLResponse:
    csrf = secrets.token_urlsafe(32)
    response = sign_in_page(next_path, csrf, **kwargs)
    response.set_cookie(CSRF_COOKIE, csrf, path="/auth/", httponly=True, samesite="strict",
                        secure=is_https(request.scope))
    return response


async def sign_in_form(request: Request) -> Response:
    notice = NOTICES.get(request.query_params.get("notice", ""), "")
    return with_csrf(request, safe_next(request.query_params.get("next")), notice=notice)


def ip_refusal(session: Session, ip: str) -> str:
    """Why this address may not try now ("" if it may): the 15-minute cap, or a growing wait."""
    if FAILED_BY_IP.count(session, ip) >= get_settings().signin_ip_limit:
        return ("Too many failed sign-ins from this network. Wait 15 minutes and try again, "
                "or ask your administrator.")
    wait = DELAY_BY_IP.wait(session, ip)
    return auth.wait_message(wait) if wait else ""


def count_ip_failure(session: Session, ip: str, checked: bool) -> tuple[int, int]:
    """(failures from this address in the window, the address's wait); a refusal during a wait
    looked at nothing, so it does not count against the address."""
    if not checked:
        return FAILED_BY_IP.count(session, ip), 0
    return FAILED_BY_IP.add(session, ip), DELAY_BY_IP.fail(session, ip, threshold_scale=2)


def failure_message(result_message: str, wait: int, failures: int) -> str:
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
    if not kept or not hmac.compare_digest(sent, kept) or not same_origin(request):
        return with_csrf(request, next_path, error="The sign-in form had expired. Please try again.", status=400)
    ip = client_ip(request)
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    user_agent = request.headers.get("user-agent", "")

    def _check():
        with session_scope(engine()) as session:
            refusal = ip_refusal(session, ip)
            if refusal:
                return refusal, None, None, ""
            result = auth.authenticate(session, username, password)
            if not result.ok:
                failures, ip_wait = count_ip_failure(session, ip, result.checked)
                return "", result, None, failure_message(result.message, max(result.wait_seconds, ip_wait), failures)
            token = auth.start_session(session, result.actor, ip, user_agent) if result.complete else None
            if result.complete:
                DELAY_BY_IP.reset(session, ip)
            return "", result, token, ""

    refusal, result, token, message = await run_in_threadpool(_check)
    if refusal:
        return with_csrf(request, next_path, status=429, error=refusal)
    if not result.ok:
        return with_csrf(request, next_path, error=message, status=429 if result.wait_seconds else 401)
    if result.steps:  # a right password, but not signed in yet: the next step, held on the server
        pending = Pending(result.actor.id, result.actor.username, next_path, list(result.steps), ip, user_agent)
        raw = await run_in_threadpool(pending_store.put, pending)
        response = await run_in_threadpool(step_page, pending, raw)
        response.set_cookie(PENDING_COOKIE, raw, path="/auth/", httponly=True, samesite="strict",
                            secure=is_https(request.scope), max_age=PENDING_SECONDS)
        response.delete_cookie(CSRF_COOKIE, path="/auth/")
        return response
    return signed_in(request, next_path, token)


def signed_in(request: Request, next_path: str, token: str) -> Response:
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, token, is_https(request.scope))
    response.delete_cookie(CSRF_COOKIE, path="/auth/")
    response.delete_cookie(PENDING_COOKIE, path="/auth/")
    return response


def start_over(request: Request, message: str) -> Response:
    response = with_csrf(request, "/", error=message, status=400)
    response.delete_cookie(PENDING_COOKIE, path="/auth/")
    return response


def step_page(pending: Pending, raw: str | None, error: str = "", status: int = 200,
              codes: list[str] | None = None) -> HTMLResponse:
    """The page for the first step still to do (runs in a worker thread: may touch the database)."""
    if codes:
        return codes_page(pending, codes)
    step = pending.steps[0]
    if step == "code":
        return code_page(pending, error, status)
    if step == "change_password":
        return change_password_page(pending, error, status)
    with session_scope(engine()) as session:  # enrol: a fresh secret once per half-done sign-in
        secret = mfa.pending_secret(session, pending.user_id) if pending.enrol_started else None
        if secret is None:
            secret, _ = mfa.begin_enrolment(session, pending.user_id)
            pending.enrol_started = True
    if raw is not None:
        pending_store.save(raw, pending)
    uri = mfa.provisioning_uri(secret, pending.username)
    return enrol_page(pending, secret, mfa.qr_svg_data_uri(uri), error, status)


async def sign_out(request: Request) -> Response:
    """Revoke this browser's session row; the cookie is cleared too, but the row is what counts."""
    token = request.cookies.get(auth.SESSION_COOKIE)
    if token and same_origin(request):
        def _end():
            with session_scope(engine()) as session:
                auth.end_session(session, token)

        await run_in_threadpool(_end)
    response = RedirectResponse(f"{SIGN_IN_PATH}?notice=signed_out", status_code=303)
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response
