"""Single sign-on with the clinic's OpenID Connect provider (Google, Microsoft Entra, Okta, Keycloak, ...).

Authorization code flow with PKCE (S256), ``state`` and ``nonce``, using Authlib (its
requests client for the authorization URL and the code exchange; its ``CodeIDToken`` and
joserfc, Authlib's JOSE library, to verify the ID token's signature against the provider's
JWKS and its iss, aud, exp and nonce). The provider's answer only says *who* someone is;
KAPNotes then finds an existing, active user with that **verified** e-mail address and gives
them the same server-side session a password sign-in gets (``auth.start_session``). Nobody
is ever created from a provider identity: an unknown one is refused and audited.

Streamlit's own ``st.login`` is not used: it keeps the identity in Streamlit's own signed
cookie, outside our ``user_sessions`` table, so sign-out, idle and absolute timeouts and
revocation (all decided by that table) would not apply to it.

The flow's secrets (state, nonce, PKCE verifier, where to go next) are kept for ten minutes in
the database (``kapnotes.auth_flows``), keyed by the hash of a random id held in a short-lived
HttpOnly cookie, so the callback is bound to the browser that started it, each flow is used
once, and the provider's answer may reach any app process behind the balancer.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from kapnotes import audit, auth, auth_flows
from kapnotes.actor import Actor, actor_of
from kapnotes.config import OidcSettings, get_oidc_settings
from kapnotes.db import session_scope
from kapnotes.web import client_ip, engine, is_https, safe_next, set_session_cookie

START_PATH = "/auth/oidc/start"
CALLBACK_PATH = "/auth/oidc/callback"
FLOW_COOKIE = "kapnotes_oidc_flow"
FLOW_SECONDS = 600  # from the button to the provider's answer
FLOW_KIND = "oidc"  # its rows in auth_flows
SCOPE = "openid email"
HTTP_TIMEOUT = 10  # seconds, for discovery, JWKS and the code exchange
METADATA_SECONDS = 3600
LEEWAY_SECONDS = 60  # clock skew allowed on exp/iat


class OidcError(Exception):
    """The provider's answer cannot be trusted (or the provider cannot be reached)."""


# --- the flow: state, nonce, PKCE ---------------------------------------------------------------


@dataclass
class Flow:
    state: str
    nonce: str
    verifier: str
    next_path: str

    @property
    def challenge(self) -> str:
        return pkce_challenge(self.verifier)


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding (Authlib's implementation)."""
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    return create_s256_code_challenge(verifier)


def new_flow(next_path: str) -> Flow:
    # 43+ characters from the unreserved set, as RFC 7636 asks of the verifier
    return Flow(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                verifier=secrets.token_urlsafe(48), next_path=next_path)


def put_flow(session, flow: Flow, now: datetime | None = None) -> str:
    """Keep a flow for ``FLOW_SECONDS``; returns the random id for the browser's cookie."""
    return auth_flows.put(session, FLOW_KIND, asdict(flow), FLOW_SECONDS, now)


def take_flow(session, flow_id: str | None, now: datetime | None = None) -> Flow | None:
    """The flow for this id, once: a replayed callback (on any process) finds nothing."""
    data = auth_flows.take(session, FLOW_KIND, flow_id, now)
    return Flow(**data) if data is not None else None


def state_matches(flow: Flow, sent_state: str | None) -> bool:
    return bool(sent_state) and hmac.compare_digest(flow.state.encode(), (sent_state or "").encode())


# --- the provider ---------------------------------------------------------------------------


_metadata_cache: dict[str, tuple[float, dict]] = {}
_jwks_cache: dict[str, dict] = {}


def _http():
    import requests

    return requests.Session()


def provider_metadata(settings: OidcSettings, force: bool = False) -> dict:
    cached = _metadata_cache.get(settings.discovery_url)
    if cached and not force and time.monotonic() - cached[0] < METADATA_SECONDS:
        return cached[1]
    try:
        with _http() as http:
            r = http.get(settings.discovery_url, timeout=HTTP_TIMEOUT)
            r.raise_for_status()
            metadata = r.json()
    except Exception as exc:  # network, HTTP status, not JSON
        raise OidcError(f"discovery failed: {type(exc).__name__}") from None
    for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(key), str) or not metadata[key]:
            raise OidcError(f"discovery document lacks {key}")
    _metadata_cache[settings.discovery_url] = (time.monotonic(), metadata)
    return metadata


def _jwks(metadata: dict, force: bool = False) -> dict:
    uri = metadata["jwks_uri"]
    if force or uri not in _jwks_cache:
        try:
            with _http() as http:
                r = http.get(uri, timeout=HTTP_TIMEOUT)
                r.raise_for_status()
                _jwks_cache[uri] = r.json()
        except Exception as exc:
            raise OidcError(f"JWKS fetch failed: {type(exc).__name__}") from None
    return _jwks_cache[uri]


def _client(settings: OidcSettings, redirect_uri: str):
    from authlib.integrations.requests_client import OAuth2Session

    return OAuth2Session(
        client_id=settings.client_id,
        client_secret=settings.client_secret or None,
        token_endpoint_auth_method="client_secret_basic" if settings.client_secret else "none",
        scope=SCOPE, redirect_uri=redirect_uri, code_challenge_method="S256",
        default_timeout=HTTP_TIMEOUT,
    )


def authorization_url(settings: OidcSettings, flow: Flow, redirect_uri: str) -> str:
    metadata = provider_metadata(settings)
    with _client(settings, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=flow.state, nonce=flow.nonce, code_verifier=flow.verifier)
    return url


def verify_id_token(id_token: str, metadata: dict, client_id: str, nonce: str, access_token: str | None = None,
                    jwks: dict | None = None, now: float | None = None) -> dict:
    """Signature against the provider's keys, then iss, aud, exp, iat and nonce (all required)."""
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.errors import InvalidKeyIdError, JoseError
    from joserfc.jwk import KeySet
    from joserfc.jws import JWSRegistry

    algorithms = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
    algorithms = [a for a in algorithms if a != "none"] or ["RS256"]
    registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
    try:
        try:
            token = jwt.decode(id_token, KeySet.import_key_set(jwks or _jwks(metadata)), registry=registry)
        except InvalidKeyIdError:
            if jwks is not None:
                raise
            token = jwt.decode(id_token, KeySet.import_key_set(_jwks(metadata, force=True)), registry=registry)
        options = {"iss": {"essential": True, "value": metadata["issuer"]},
                   "aud": {"essential": True, "value": client_id},
                   "exp": {"essential": True}}
        params = {"nonce": nonce, "client_id": client_id}
        if access_token:
            params["access_token"] = access_token
        claims = CodeIDToken(token.claims, token.header, options, params)
        claims.validate(now=int(now if now is not None else time.time()), leeway=LEEWAY_SECONDS)
    except (JoseError, ValueError) as exc:
        raise OidcError(f"ID token rejected: {type(exc).__name__}") from None
    if not nonce or not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
        raise OidcError("ID token rejected: nonce")
    return dict(claims)


def exchange_code(settings: OidcSettings, flow: Flow, code: str, redirect_uri: str) -> dict:
    """The code and the PKCE verifier for tokens (back channel), then the verified ID token's claims."""
    metadata = provider_metadata(settings)
    try:
        with _client(settings, redirect_uri) as client:
            token = client.fetch_token(metadata["token_endpoint"], code=code, code_verifier=flow.verifier,
                                       grant_type="authorization_code")
    except Exception as exc:
        raise OidcError(f"code exchange failed: {type(exc).__name__}") from None
    if not token.get("id_token"):
        raise OidcError("no ID token in the provider's answer")
    return verify_id_token(token["id_token"], metadata, settings.client_id, flow.nonce, token.get("access_token"))


# --- who is it --------------------------------------------------------------------------------


def email_fingerprint(email: str) -> str:
    """For the audit trail: the domain and a short hash, never the address itself."""
    email = (email or "").strip().lower()
    domain = email.rsplit("@", 1)[-1] if "@" in email else "-"
    return f"domain={domain[:80]}; email_sha256={hashlib.sha256(email.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Mapping:
    actor: Actor | None
    reason: str = ""  # why refused: unverified, no_email, unknown, inactive, ambiguous


def find_user(session, claims: dict) -> Mapping:
    """An existing, active user whose e-mail is the provider's **verified** e-mail (case-insensitive)."""
    from sqlmodel import func, select

    from kapnotes.models import User

    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email or len(email) > 254:
        return Mapping(None, "no_email")
    if claims.get("email_verified") is not True and claims.get("email_verified") != "true":
        return Mapping(None, "unverified")
    users = session.exec(select(User).where(func.lower(User.email) == email.strip().lower())).all()
    if not users:
        return Mapping(None, "unknown")
    if len(users) > 1:
        return Mapping(None, "ambiguous")
    if not users[0].is_active:
        return Mapping(None, "inactive")
    return Mapping(actor_of(users[0]))


def sign_in_with_claims(session, claims: dict, ip: str = "", user_agent: str = "") -> tuple[Actor | None, str]:
    """Map, then either start a session (returns the cookie value) or audit the refusal."""
    from kapnotes.models import User
    from kapnotes.timeutil import utcnow

    mapping = find_user(session, claims)
    if mapping.actor is None:
        audit.record(session, None, "auth.oidc_refused", "user",
                     detail=f"reason={mapping.reason}; {email_fingerprint(str(claims.get('email') or ''))}",
                     actor_username="(single sign-on)")
        return None, ""
    user = session.get(User, mapping.actor.id)
    user.last_login_at = utcnow()
    session.add(user)
    audit.record(session, mapping.actor, "auth.sign_in", "user", user.id, detail="method=oidc")
    return mapping.actor, auth.start_session(session, mapping.actor, ip, user_agent)


# --- the routes -------------------------------------------------------------------------------


def sign_in_button(next_path: str) -> str:
    """The SSO link on the sign-in form; nothing when single sign-on is not configured."""
    settings = get_oidc_settings()
    if settings is None:
        return ""
    href = f"{START_PATH}?next={quote(next_path, safe='/')}"
    return (f'<p style="margin-top:1.5rem"><a href="{html.escape(href)}" style="display:inline-block;'
            'padding:.6rem 1.4rem;border:2px solid #23595c;border-radius:.25rem;color:#23595c;'
            f'font-weight:600;text-decoration:none">{html.escape(settings.button_label)}</a></p>'
            '<p style="color:#444">or sign in with your KAPNotes username and password:</p>')


def _page(title: str, message: str, status: int, link: tuple[str, str] | None = None) -> HTMLResponse:
    e = html.escape
    href, text = link or ("/auth/sign-in", "Back to sign-in")
    body = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(title)} · KAPNotes</title></head>'
            '<body style="font-family:system-ui,sans-serif;color:#111"><main style="max-width:32rem;margin:4rem auto;'
            f'padding:0 1rem"><h1 style="color:#23595c">{e(title)}</h1><p>{e(message)}</p>'
            f'<p><a href="{e(href)}">{e(text)}</a></p></main></body></html>')
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


def _redirect_uri(request: Request) -> str:
    scheme = "https" if is_https(request.scope) else "http"
    return f"{scheme}://{request.headers.get('host', '')}{CALLBACK_PATH}"


def _not_configured() -> Response:
    return Response("Not Found", status_code=404, media_type="text/plain")


def _clear_flow(response: Response) -> Response:
    response.delete_cookie(FLOW_COOKIE, path="/auth/oidc/")
    return response


async def start(request: Request) -> Response:
    settings = get_oidc_settings()
    if settings is None:
        return _not_configured()
    flow = new_flow(safe_next(request.query_params.get("next")))
    try:
        url = await run_in_threadpool(authorization_url, settings, flow, _redirect_uri(request))
    except OidcError:
        return _page("Single sign-on is unavailable",
                     "The sign-in service could not be reached. Try again in a moment, or sign in with "
                     "your KAPNotes username and password.", 502)
    def _keep() -> str:
        with session_scope(engine()) as session:
            return put_flow(session, flow)

    flow_id = await run_in_threadpool(_keep)
    response = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    # SameSite=Lax: the provider's redirect back is a cross-site top-level GET, which Strict would strip
    response.set_cookie(FLOW_COOKIE, flow_id, max_age=FLOW_SECONDS, path="/auth/oidc/", httponly=True,
                        samesite="lax", secure=is_https(request.scope))
    return response


async def callback(request: Request) -> Response:
    settings = get_oidc_settings()
    if settings is None:
        return _not_configured()
    def scope():
        return session_scope(engine())

    async def fail(reason: str, message: str, status: int = 400) -> Response:
        """Audited (the reason only), the flow cookie cleared, a plain page with a way back."""
        def _audit():
            with scope() as session:
                audit.record(session, None, "auth.oidc_failed", "user", detail=f"reason={reason}"[:120],
                             actor_username="(single sign-on)")

        await run_in_threadpool(_audit)
        return _clear_flow(_page("Single sign-on did not work", message, status))

    params = request.query_params
    def _take() -> Flow | None:
        with scope() as session:
            return take_flow(session, request.cookies.get(FLOW_COOKIE))

    flow = await run_in_threadpool(_take)
    if flow is None:
        return await fail("no_flow", "This sign-in took too long or was started in another browser. "
                                     "Please start again.")
    if not state_matches(flow, params.get("state")):
        return await fail("state_mismatch", "The answer from the sign-in service did not match this sign-in. "
                                            "Please start again.")
    if params.get("error") or not params.get("code"):
        return await fail(f"provider_{params.get('error', 'no_code')}"[:60],
                          "The sign-in service did not sign you in. Please start again, or sign in with your "
                          "KAPNotes username and password.")
    try:
        claims = await run_in_threadpool(exchange_code, settings, flow, params["code"], _redirect_uri(request))
    except OidcError as exc:
        return await fail(str(exc), "The answer from the sign-in service could not be verified. Please start again.")

    ip, user_agent = client_ip(request), request.headers.get("user-agent", "")

    def _sign_in():
        with scope() as session:
            return sign_in_with_claims(session, claims, ip, user_agent)

    actor, token = await run_in_threadpool(_sign_in)
    if actor is None:
        return _clear_flow(_page(
            "No KAPNotes account for this sign-in",
            "The account you signed in with is not linked to a KAPNotes user. Ask your administrator to "
            "record your verified work e-mail address on your KAPNotes account, or sign in with your "
            "KAPNotes username and password.", 403))
    # A page, not a redirect: the browser arrived here from the provider's site, and a browser that
    # applies SameSite=Strict to a whole redirect chain would hold the new session cookie back on a
    # redirect (Chromium today does not); moving on from this page is a same-site navigation.
    target = html.escape(flow.next_path)
    body = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="refresh" content="0;url={target}"><title>Signed in · KAPNotes</title></head>'
            f'<body><p>Signed in. <a href="{target}">Continue to KAPNotes</a></p></body></html>')
    response = HTMLResponse(body, headers={"Cache-Control": "no-store"})
    set_session_cookie(response, token, is_https(request.scope))
    return _clear_flow(response)


def routes() -> list[Route]:
    """Always present; they answer 404 while single sign-on is not configured."""
    return [Route(START_PATH, start, methods=["GET"]), Route(CALLBACK_PATH, callback, methods=["GET"])]
