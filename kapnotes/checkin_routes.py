"""``GET /checkin?t=TOKEN``: the patient's door into the check-in page (issue 15).

The token is checked here (rate-limited per IP: ``FAILURES``, counted in the database so every
app process behind the balancer sees the same count; the same limit and window as
``checkin.LIMITER``), then kept in an
HttpOnly cookie and the browser is sent to ``/`` with no token in the address: a reload finds
the link again through the cookie, the history and the address bar never hold the secret.
SameSite=Lax so the cookie is sent when the patient arrives from a QR scan (a top-level
navigation from elsewhere); Secure over https; it lives until the link expires. Revoking or
expiring the link ends it at the patient's next action: every use re-checks the link.
"""

from __future__ import annotations

import html

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from kapnotes import checkin
from kapnotes.db import session_scope
from kapnotes.timeutil import utcnow
from kapnotes.web import engine, is_https

CHECKIN_PATH = "/checkin"
CHECKIN_COOKIE = "kapnotes_checkin"
GENERIC_REFUSAL = ("This check-in link does not work. It may have expired, or your clinic may have ended it. "
                   "Please contact your clinic for a new link.")  # the page's own words (checkin_panel)
FAILURES = checkin.LIMITER.events  # wrong tokens per address: the same count as the check-in page


def refusal_page(status: int = 404) -> HTMLResponse:
    """One generic page for an unknown, expired or revoked link, and when rate-limited."""
    body = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1"><title>Check-in</title>'
            "<style>body{font-family:system-ui,sans-serif;color:#111;margin:0}main{max-width:26rem;margin:3rem auto;"
            "padding:0 1rem}h1{color:#23595c}.error{background:#fde8e8;color:#7a1010;padding:.75rem;"
            "border-radius:.25rem}</style></head><body><main><h1>Check-in</h1>"
            f'<p class="error" role="alert">{html.escape(GENERIC_REFUSAL)}</p></main></body></html>')
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def live_link_id(token: str | None) -> int | None:
    """The id of the live link this token opens, or None (blocking: call off the event loop)."""
    if not token:
        return None
    with session_scope(engine()) as session:
        link = checkin.resolve(session, token)
        return link.id if link is not None else None


def request_key(scope) -> str:
    """The rate-limit key of a request: the same per-IP rule as the page (``checkin.client_key``)."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
    client = scope.get("client")
    return checkin.client_key(headers, client[0] if client else None)


def check_token(token: str | None, key: str, opened: bool = False) -> tuple[int | None, int]:
    """(link id or None, seconds until it expires), counting a failure against ``key``."""
    with session_scope(engine()) as session:
        if FAILURES.count(session, key) >= checkin.LIMITER.limit:
            return None, 0
        link = checkin.resolve(session, token) if token else None
        if link is not None:
            if opened:
                checkin.note_opened(session, link)
            return link.id, max(1, int((link.expires_at - utcnow()).total_seconds()))
        FAILURES.add(session, key)
    return None, 0


async def open_link(request: Request) -> Response:
    token = request.query_params.get("t", "")
    link_id, max_age = await run_in_threadpool(check_token, token, request_key(request.scope), True)
    if link_id is None:
        response = refusal_page()
        response.delete_cookie(CHECKIN_COOKIE, path="/")
        return response
    response = RedirectResponse("/", status_code=303, headers={"Cache-Control": "no-store"})
    response.set_cookie(CHECKIN_COOKIE, token, path="/", max_age=max_age, httponly=True, samesite="lax",
                        secure=is_https(request.scope))
    return response


def routes() -> list[Route]:
    return [Route(CHECKIN_PATH, open_link, methods=["GET"])]
