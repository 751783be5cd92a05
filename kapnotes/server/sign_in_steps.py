"""``POST /auth/sign-in/next``: one step after a right password (a second-factor code, enrolment,
a new password after a reset, "I have kept my recovery codes"); the session starts only when no
step is left. The half-done sign-in is read from and written back to the database on every
step (``kapnotes.server.pending``), so each step may be served by a different process."""

from __future__ import annotations

import hmac

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from kapnotes import auth, auth_flows, mfa
from kapnotes.actor import actor_of
from kapnotes.db import session_scope
from kapnotes.errors import ValidationError
from kapnotes.models import User
from kapnotes.server import pending as pending_store
from kapnotes.server.pending import MAX_CODE_TRIES, PENDING_COOKIE, Pending
from kapnotes.server.sign_in import (
    DELAY_BY_IP,
    count_ip_failure,
    failure_message,
    ip_refusal,
    signed_in,
    start_over,
    step_page,
)
from kapnotes.web import client_ip, engine, same_origin

BAD_CODE = "That code did not work. Enter the code your app shows now, or a recovery code."


def _check_code(pending: Pending, step: str, code: str, ip: str) -> tuple[str, int, list[str] | None, str]:
    """(outcome, wait, recovery codes, message): outcome is ok, gone, refused, wait or bad."""
    with session_scope(engine()) as session:
        refusal = ip_refusal(session, ip)
        if refusal:
            return "refused", 0, None, refusal
        user = session.get(User, pending.user_id)
        if user is None or not user.is_active:
            return "gone", 0, None, ""
        wait = auth.account_wait(user)
        if wait:
            failures, _ = count_ip_failure(session, ip, checked=False)
            return "wait", wait, None, failure_message(BAD_CODE, wait, failures)
        if step == "code":
            if mfa.verify(session, user.id, code):
                return "ok", 0, None, ""
        else:
            try:
                return "ok", 0, mfa.confirm_enrolment(session, user.id, code), ""
            except ValidationError:
                pass
        wait = auth.record_failure(session, user, "bad second-factor code")
        failures, ip_wait = count_ip_failure(session, ip, checked=True)
        wait = max(wait, ip_wait)
        return "bad", wait, None, failure_message(BAD_CODE, wait, failures)


async def _code_step(request: Request, raw: str, pending: Pending, step: str, code: str) -> Response | None:
    """A code or enrolment step: a page to show, or None when the step is done."""
    outcome, wait, codes, message = await run_in_threadpool(_check_code, pending, step, code, client_ip(request))
    if outcome == "refused":
        return await run_in_threadpool(step_page, pending, raw, message, 429)
    if outcome == "gone":
        await run_in_threadpool(pending_store.drop, raw)
        return start_over(request, auth.GENERIC_FAILURE)
    if outcome == "bad":
        pending.code_failures += 1
        if pending.code_failures >= MAX_CODE_TRIES:
            await run_in_threadpool(pending_store.drop, raw)
            return start_over(request, "Too many wrong codes. Sign in again.\n" + auth.repeated_failure_notice())
    if outcome in ("wait", "bad"):
        await run_in_threadpool(pending_store.save, raw, pending)
        return await run_in_threadpool(step_page, pending, raw, message, 429 if wait else 401)
    pending.steps.pop(0)
    if codes:
        pending.steps.insert(0, "codes_seen")
        await run_in_threadpool(pending_store.save, raw, pending)
        return await run_in_threadpool(lambda: step_page(pending, raw, codes=codes))
    return None


def _change_password(pending: Pending, new: str, repeat: str) -> None:
    with session_scope(engine()) as session:
        if new != repeat:
            raise ValidationError({"repeat": "The two passwords differ."})
        user = session.get(User, pending.user_id)
        if user is not None and auth._verify_quietly(user.password_hash, new):
            raise ValidationError({"password": "Choose a password different from the temporary one."})
        auth.set_password(session, actor_of(user), pending.user_id, new)


def _finish(pending: Pending, raw: str, ip: str) -> str | None:
    """Every step done: the session starts (and the half-done sign-in is gone) in one unit of work."""
    with session_scope(engine()) as session:
        auth_flows.drop(session, pending_store.KIND, raw)
        actor = auth.finish_sign_in(session, pending.user_id)
        if actor is None:
            return None
        DELAY_BY_IP.reset(session, ip)
        return auth.start_session(session, actor, pending.ip, pending.user_agent)


async def sign_in_next(request: Request) -> Response:
    """One step after a right password; the session starts only when no step is left."""
    form = await request.form()
    raw = request.cookies.get(PENDING_COOKIE)
    pending = await run_in_threadpool(pending_store.load, raw)
    if (pending is None or not same_origin(request)
            or not hmac.compare_digest(str(form.get("form_token", "")), pending.form_token)):
        return start_over(request, "The sign-in took too long or was interrupted. Please sign in again.")
    step = str(form.get("step", ""))
    if step == "codes_seen" and pending.steps and pending.steps[0] == "codes_seen":
        pending.steps.pop(0)
    elif not pending.steps or step != pending.steps[0]:
        return await run_in_threadpool(step_page, pending, raw, "Please complete this step first.", 400)
    elif step in ("code", "enrol"):
        shown = await _code_step(request, raw, pending, step, str(form.get("code", ""))[:40])
        if shown is not None:
            return shown
    elif step == "change_password":
        try:
            await run_in_threadpool(_change_password, pending, str(form.get("new_password", "")),
                                    str(form.get("repeat_password", "")))
        except ValidationError as exc:
            return await run_in_threadpool(step_page, pending, raw, "\n".join(exc.errors.values()), 400)
        pending.steps.pop(0)
    if pending.steps:
        await run_in_threadpool(pending_store.save, raw, pending)
        return await run_in_threadpool(step_page, pending, raw)
    token = await run_in_threadpool(_finish, pending, raw, client_ip(request))
    if token is None:
        return start_over(request, auth.GENERIC_FAILURE)
    return signed_in(request, pending.next_path, token)

