"""The HTTP server around the Streamlit app (``uvicorn kapnotes.asgi:app``), in small pieces:

- ``assembly``: the routes, middleware and lifespan handed to ``st.App`` (``kapnotes.ui.app_server``);
- ``edge``: security headers on every response, signed-out page loads sent to the sign-in form;
- ``headers``: the Content-Security-Policy and the other security headers;
- ``sign_in``: the password form, per-address limits, the session cookie, sign-out;
- ``sign_in_steps``: the steps after a right password (code, enrolment, new password);
- ``pending``: a half-done sign-in, kept in the database so any process can finish it;
- ``pages``: the server's own HTML.

Shared request helpers (https, client address, safe ``next``) are in ``kapnotes.web``; single
sign-on in ``kapnotes.oidc``; the patient's check-in door in ``kapnotes.checkin_routes``.
"""

from kapnotes.server.assembly import lifespan, middleware, routes
from kapnotes.server.edge import EdgeMiddleware
from kapnotes.server.headers import CSP, security_headers

__all__ = ["CSP", "EdgeMiddleware", "lifespan", "middleware", "routes", "security_headers"]
