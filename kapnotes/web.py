"""What every route of the server shares, in one low module the route modules import at the top
(the sign-in routes, ``kapnotes.oidc``, ``kapnotes.checkin_routes``): whether a request came over
https, the client's address, a safe ``next`` path, cookies, the session cookie, and the engine.

Behind a trusted proxy (``KAPNOTES_TRUST_PROXY=1``, e.g. deploy/nginx) the scheme comes from
``X-Forwarded-Proto`` and the address from the LAST ``X-Forwarded-For`` entry (the one our proxy
appended; earlier ones are whatever the client sent).
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from starlette.requests import Request
from starlette.responses import Response

from kapnotes.auth import SESSION_COOKIE
from kapnotes.config import get_settings
from kapnotes.db import shared_engine

# Paths that are not pages: Streamlit's own endpoints and assets, and our routes.
NOT_PAGES = ("/_stcore/", "/static/", "/media/", "/component/", "/auth/", "/app/static/")


def engine() -> Engine:
    """The process's one engine for the configured database (kapnotes.db.shared_engine)."""
    return shared_engine()


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


def same_origin(request: Request) -> bool:
    """A present, non-null Origin must be ours (with no-referrer, forms may send ``null``)."""
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return True
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc == host


def set_session_cookie(response: Response, token: str, https: bool) -> None:
    response.set_cookie(SESSION_COOKIE, token, path="/", httponly=True, samesite="strict", secure=https)


def scope_cookie(scope, name: str) -> str | None:
    """A cookie from a raw ASGI scope (the middleware has no Request)."""
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
