"""What the served app is made of besides Streamlit: our routes, the edge middleware and the
start-up/shutdown work. ``kapnotes.ui.app_server`` hands these to ``st.App``."""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.routing import Route

from kapnotes import audit, checkin_routes, csv_import, oidc, throttle
from kapnotes.db import session_scope
from kapnotes.server.edge import EdgeMiddleware
from kapnotes.server.pages import SIGN_IN_NEXT_PATH, SIGN_IN_PATH
from kapnotes.server.sign_in import SIGN_OUT_PATH, sign_in, sign_in_form, sign_out
from kapnotes.server.sign_in_steps import sign_in_next
from kapnotes.web import engine


def routes() -> list[Route]:
    return [
        Route(SIGN_IN_PATH, sign_in_form, methods=["GET"]),
        Route(SIGN_IN_PATH, sign_in, methods=["POST"]),
        Route(SIGN_IN_NEXT_PATH, sign_in_next, methods=["POST"]),
        Route(SIGN_OUT_PATH, sign_out, methods=["POST"]),
        *oidc.routes(),  # single sign-on (404 unless configured)
        *checkin_routes.routes(),  # GET /checkin?t=: the patient's link (issue 15)
    ]


def middleware() -> list[Middleware]:
    return [Middleware(EdgeMiddleware)]


@asynccontextmanager
async def lifespan(_app):
    """Start-up: remove imports a crashed process left half-staged, forget day-old throttle rows;
    anchor the audit chain at least hourly when ``KAPNOTES_AUDIT_ANCHOR_FILE`` is set (the thread
    stops at shutdown)."""
    def _cleanup() -> None:
        with session_scope(engine()) as session:
            csv_import.cleanup_abandoned_imports(session)
            throttle.prune(session)

    await run_in_threadpool(_cleanup)
    anchor_file = os.environ.get("KAPNOTES_AUDIT_ANCHOR_FILE", "").strip()
    thread = audit.start_anchor_thread(engine(), anchor_file) if anchor_file else None
    try:
        yield None
    finally:
        if thread is not None:
            thread.stop()
