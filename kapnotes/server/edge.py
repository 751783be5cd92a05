"""The edge every HTTP request passes: security headers on every response (Streamlit's own
included), and a signed-out page request sent to the sign-in form with the page as ``next``.
Export files and uploads are served only to a signed-in staff session; a patient's live
check-in link opens only the check-in page and what its frontend needs."""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlencode

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.responses import PlainTextResponse, RedirectResponse

from kapnotes import auth, checkin_routes
from kapnotes.checkin_routes import CHECKIN_PATH
from kapnotes.db import session_scope
from kapnotes.server.headers import security_headers
from kapnotes.server.pages import SIGN_IN_PATH, database_unavailable_page
from kapnotes.web import NOT_PAGES, engine, is_https, safe_next, scope_cookie

# Served only to a signed-in staff session (issue 20): download_button files and uploads.
STAFF_ONLY = ("/media/", "/_stcore/upload_file")
# Answered only to a signed-in session or a live check-in (the frontend asks for host-config).
SIGNED_IN_ONLY = ("/_stcore/metrics", "/_stcore/host-config")


def is_page_request(scope) -> bool:
    path = scope.get("path", "/")
    if scope.get("method") not in ("GET", "HEAD") or path.startswith(NOT_PAGES):
        return False
    return "." not in path.rsplit("/", 1)[-1]  # /patients is a page; /favicon.png is not


def _staff_session(token: str | None) -> bool:
    if not token:
        return False
    with session_scope(engine()) as session:
        return auth.check_session(session, token).ok


def _to_sign_in(scope, token: str | None):
    """A signed-out page request: to the sign-in form (an older check-in link: through its door)."""
    path = scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    if path == "/" and "t" in parse_qs(query):
        return RedirectResponse(f"{CHECKIN_PATH}?{urlencode({'t': parse_qs(query)['t'][0]})}", status_code=303)
    target = safe_next(path + (f"?{query}" if query else ""))
    notice = "&notice=ended" if token else ""
    response = RedirectResponse(f"{SIGN_IN_PATH}?next={quote(target, safe='/')}{notice}", status_code=303)
    if token:
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


async def _signed_out_answer(scope, token: str | None, closed: bool):
    """What a request without a staff session gets (None: let it through to Streamlit)."""
    path = scope.get("path", "/")
    if path.startswith(STAFF_ONLY):
        # export files and uploads belong to a signed-in session, never to whoever has the URL
        return PlainTextResponse("Forbidden", status_code=403)
    patient_token = scope_cookie(scope, checkin_routes.CHECKIN_COOKIE)
    if patient_token:
        key = checkin_routes.request_key(scope)
        link_id, _ = await run_in_threadpool(checkin_routes.check_token, patient_token, key)
        if link_id is not None:  # the patient's check-in page and what its frontend needs
            return None
        if not closed:  # revoked or expired: the one generic page, never the staff sign-in
            return checkin_routes.refusal_page()
    if closed:  # metrics and host-config: nothing for a signed-out visitor
        return PlainTextResponse("Not found", status_code=404)
    return _to_sign_in(scope, token)


class EdgeMiddleware:
    """Security headers on every HTTP response; signed-out page loads go to the sign-in form."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = security_headers(is_https(scope))

        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                mutable = MutableHeaders(scope=message)
                for name, value in headers.items():
                    mutable[name] = value
            await send(message)

        try:
            await self._guarded(scope, receive, send_with_headers)
        except (OperationalError, InterfaceError):
            # the database is down or restarting: a plain answer, and the pool reconnects by itself
            if started:
                raise
            response = database_unavailable_page()
            response.headers["Retry-After"] = "30"
            await response(scope, receive, send_with_headers)

    async def _guarded(self, scope, receive, send_with_headers):
        path = scope.get("path", "/")
        closed = path.startswith(STAFF_ONLY) or path in SIGNED_IN_ONLY
        # the patient's door (kapnotes.checkin_routes) needs no staff session
        if path != CHECKIN_PATH and (is_page_request(scope) or closed):
            token = scope_cookie(scope, auth.SESSION_COOKIE)
            staff = bool(token) and await run_in_threadpool(_staff_session, token)
            answer = None if staff else await _signed_out_answer(scope, token, closed)
            if answer is not None:
                await answer(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)
