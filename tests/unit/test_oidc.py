"""Single sign-on pieces: settings, PKCE, state and the flow store, ID-token verification,
and the mapping from a provider identity to a KAPNotes user (on SQLite and PostgreSQL).
The whole flow through a real provider is in tests/e2e/test_oidc_browser.py."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlmodel import col, func, select

from kapnotes import oidc
from kapnotes.config import ConfigError, OidcSettings, get_oidc_settings
from kapnotes.models import AuditEvent, User, UserSession

ISSUER = "https://idp.example"
CLIENT = "kapnotes-client"
METADATA = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/authorize", "token_endpoint": f"{ISSUER}/token",
            "jwks_uri": f"{ISSUER}/jwks", "id_token_signing_alg_values_supported": ["RS256"]}
SETTINGS = OidcSettings(discovery_url=f"{ISSUER}/.well-known/openid-configuration", client_id=CLIENT,
                        client_secret="s3cret", button_label="Sign in with Clinic")
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, different key: a forgery
JWKS = KeySet([KEY]).as_dict(private=False)


# --- settings -----------------------------------------------------------------------------


@pytest.fixture
def no_oidc_env(monkeypatch):
    for name in ("DISCOVERY_URL", "CLIENT_ID", "CLIENT_SECRET", "BUTTON"):
        monkeypatch.delenv(f"KAPNOTES_OIDC_{name}", raising=False)
    return monkeypatch


def test_unset_means_no_single_sign_on_and_no_button(no_oidc_env):
    assert get_oidc_settings() is None
    assert oidc.sign_in_button("/patients") == ""


def test_settings_from_the_environment_and_the_button(no_oidc_env):
    no_oidc_env.setenv("KAPNOTES_OIDC_DISCOVERY_URL", SETTINGS.discovery_url)
    no_oidc_env.setenv("KAPNOTES_OIDC_CLIENT_ID", CLIENT)
    no_oidc_env.setenv("KAPNOTES_OIDC_CLIENT_SECRET", "s3cret")
    no_oidc_env.setenv("KAPNOTES_OIDC_BUTTON", "Sign in with <Google>")
    settings = get_oidc_settings()
    assert settings.client_secret == "s3cret" and "s3cret" not in repr(settings)
    button = oidc.sign_in_button("/dose_log?patient=3")
    assert 'href="/auth/oidc/start?next=/dose_log%3Fpatient%3D3"' in button
    assert "Sign in with &lt;Google&gt;" in button  # the label is escaped


@pytest.mark.parametrize("url", ["http://idp.example/.well-known/openid-configuration", "ftp://idp.example/x",
                                 "not a url"])
def test_discovery_must_be_https_except_on_loopback(no_oidc_env, url):
    no_oidc_env.setenv("KAPNOTES_OIDC_DISCOVERY_URL", url)
    no_oidc_env.setenv("KAPNOTES_OIDC_CLIENT_ID", CLIENT)
    with pytest.raises(ConfigError, match="KAPNOTES_OIDC_DISCOVERY_URL"):
        get_oidc_settings()
    no_oidc_env.setenv("KAPNOTES_OIDC_DISCOVERY_URL", "http://127.0.0.1:9400/.well-known/openid-configuration")
    assert get_oidc_settings() is not None


def test_half_configured_is_an_error_not_silently_off(no_oidc_env):
    no_oidc_env.setenv("KAPNOTES_OIDC_CLIENT_ID", CLIENT)
    with pytest.raises(ConfigError, match="both"):
        get_oidc_settings()


# --- PKCE, state, nonce -------------------------------------------------------------------


def test_pkce_s256_is_unpadded_base64url_of_the_sha256():
    verifier = "dBjftJeZ4CVP-mJ92K9kEEe6VgwwaGm2z7Dkzkj_gpQ"
    assert oidc.pkce_challenge(verifier) == "WvseqATbhOdYG8JZT-wjWHoP1NMSue2Le-8n1kUROr8"  # computed by hand
    assert oidc.pkce_challenge(verifier) != verifier  # not the "plain" method


def test_each_flow_has_fresh_unguessable_values():
    a, b = oidc.new_flow("/"), oidc.new_flow("/")
    assert len({a.state, a.nonce, a.verifier, b.state, b.nonce, b.verifier}) == 6
    assert 43 <= len(a.verifier) <= 128 and len(a.state) >= 43 and len(a.nonce) >= 43
    digest = base64.urlsafe_b64encode(hashlib.sha256(a.verifier.encode()).digest()).rstrip(b"=").decode()
    assert a.challenge == digest


def test_authorization_url_carries_s256_challenge_state_nonce(monkeypatch):
    monkeypatch.setitem(oidc._metadata_cache, SETTINGS.discovery_url, (time.monotonic(), METADATA))
    flow = oidc.new_flow("/patients")
    url = oidc.authorization_url(SETTINGS, flow, "https://kap.example/auth/oidc/callback")
    assert url.startswith(f"{ISSUER}/authorize?")
    q = dict(parse_qsl(urlsplit(url).query))
    assert q["response_type"] == "code" and q["client_id"] == CLIENT and q["scope"] == "openid email"
    assert q["state"] == flow.state and q["nonce"] == flow.nonce
    assert q["code_challenge_method"] == "S256" and q["code_challenge"] == flow.challenge
    assert flow.verifier not in url  # the verifier only goes to the token endpoint
    assert q["redirect_uri"] == "https://kap.example/auth/oidc/callback"


def test_state_must_match_exactly():
    flow = oidc.new_flow("/")
    assert oidc.state_matches(flow, flow.state)
    assert not oidc.state_matches(flow, flow.state[:-1] + ("A" if flow.state[-1] != "A" else "B"))
    assert not oidc.state_matches(flow, "")
    assert not oidc.state_matches(flow, None)


def test_a_flow_is_taken_once_only_by_its_id_and_expires(engine):
    """In the database: started on one process (engine), finished on another (a second engine)."""
    from datetime import timedelta

    from kapnotes.db import make_engine, session_scope
    from kapnotes.timeutil import utcnow

    other = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        flow = oidc.new_flow("/review_queue")
        with session_scope(engine) as s:
            flow_id = oidc.put_flow(s, flow)
        with session_scope(other) as s:
            assert oidc.take_flow(s, "someone-elses-id") is None
            assert oidc.take_flow(s, None) is None
            assert oidc.take_flow(s, flow_id) == flow
        with session_scope(engine) as s:
            assert oidc.take_flow(s, flow_id) is None  # single use: a replayed callback finds nothing
            old_id = oidc.put_flow(s, oidc.new_flow("/"))
        with session_scope(other) as s:
            assert oidc.take_flow(s, old_id, now=utcnow() + timedelta(seconds=601)) is None
    finally:
        other.dispose()


def test_expired_flows_are_pruned_when_new_ones_start(session):
    from datetime import timedelta

    from kapnotes.models import AuthFlow
    from kapnotes.timeutil import utcnow

    for _ in range(3):
        oidc.put_flow(session, oidc.new_flow("/"), now=utcnow() - timedelta(hours=1))
    oidc.put_flow(session, oidc.new_flow("/"))
    assert session.exec(select(func.count()).select_from(AuthFlow)).one() == 1


# --- the ID token ------------------------------------------------------------------------


def _token(key=KEY, **overrides):
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "abc", "iat": now, "exp": now + 300, "nonce": "n-123",
              "email": "paul@clinic.example", "email_verified": True}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)


def test_a_good_id_token_is_accepted():
    claims = oidc.verify_id_token(_token(), METADATA, CLIENT, "n-123", jwks=JWKS)
    assert claims["sub"] == "abc" and claims["email"] == "paul@clinic.example"


@pytest.mark.parametrize("overrides", [
    {"nonce": "n-other"}, {"nonce": None}, {"aud": "another-client"}, {"iss": "https://evil.example"},
    {"exp": int(time.time()) - 3600}, {"exp": None}, {"iss": None},
], ids=["wrong-nonce", "no-nonce", "wrong-aud", "wrong-iss", "expired", "no-exp", "no-iss"])
def test_a_bad_id_token_is_rejected(overrides):
    with pytest.raises(oidc.OidcError):
        oidc.verify_id_token(_token(**overrides), METADATA, CLIENT, "n-123", jwks=JWKS)


def test_a_token_signed_with_another_key_is_rejected():
    with pytest.raises(oidc.OidcError):
        oidc.verify_id_token(_token(key=OTHER_KEY), METADATA, CLIENT, "n-123", jwks=JWKS)


def test_an_unsigned_token_is_rejected():
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    body = base64.urlsafe_b64encode(
        f'{{"iss":"{ISSUER}","aud":"{CLIENT}","sub":"x","iat":{int(time.time())},"exp":{int(time.time()) + 300},'
        f'"nonce":"n-123"}}'.encode()).rstrip(b"=").decode()
    with pytest.raises(oidc.OidcError):
        oidc.verify_id_token(f"{header}.{body}.", METADATA, CLIENT, "n-123", jwks=JWKS)


# --- who is it (both backends) -----------------------------------------------------------------


def _set_email(session, username, email, active=True):
    user = session.exec(select(User).where(User.username == username)).one()
    user.email, user.is_active = email, active
    session.add(user)
    session.commit()


def _count(session, model):
    return session.exec(select(func.count()).select_from(model)).one()


def test_verified_email_maps_to_the_user_case_insensitively_and_starts_a_session(session, clinic):
    _set_email(session, "paul", "Paul.Park@Clinic.example")
    claims = {"sub": "x", "email": "paul.park@clinic.example", "email_verified": True}
    actor, token = oidc.sign_in_with_claims(session, claims, "127.0.0.1", "test")
    session.commit()
    assert actor.username == "paul" and token
    from kapnotes import auth

    assert auth.check_session(session, token).actor.username == "paul"
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "auth.sign_in")
                         .order_by(col(AuditEvent.id).desc())).first()
    assert event.actor_username == "paul" and event.detail == "method=oidc"


@pytest.mark.parametrize("claims,reason", [
    ({"email": "paul.park@clinic.example", "email_verified": False}, "unverified"),
    ({"email": "paul.park@clinic.example"}, "unverified"),
    ({"email": "paul.park@clinic.example", "email_verified": "false"}, "unverified"),
    ({"email": "nobody@clinic.example", "email_verified": True}, "unknown"),
    ({"email_verified": True}, "no_email"),
], ids=["verified-false", "verified-missing", "verified-string-false", "unknown", "no-email"])
def test_refused_identities_are_audited_and_nothing_is_created(session, clinic, claims, reason):
    _set_email(session, "paul", "paul.park@clinic.example")
    users, sessions = _count(session, User), _count(session, UserSession)
    actor, token = oidc.sign_in_with_claims(session, {"sub": "x", **claims})
    session.commit()
    assert actor is None and token == ""
    assert (_count(session, User), _count(session, UserSession)) == (users, sessions)
    event = session.exec(select(AuditEvent).where(AuditEvent.action == "auth.oidc_refused")).one()
    assert event.detail.startswith(f"reason={reason}")
    assert "paul.park" not in event.detail and "nobody" not in event.detail  # domain and a hash only


def test_inactive_or_ambiguous_users_are_refused(session, clinic):
    _set_email(session, "paul", "shared@clinic.example", active=False)
    claims = {"sub": "x", "email": "shared@clinic.example", "email_verified": True}
    assert oidc.find_user(session, claims).reason == "inactive"
    _set_email(session, "paul", "shared@clinic.example")
    _set_email(session, "pia", "SHARED@clinic.example")
    assert oidc.find_user(session, claims).reason == "ambiguous"


# --- the routes when single sign-on is off ----------------------------------------------------


def test_routes_answer_404_when_not_configured(no_oidc_env):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    client = TestClient(Starlette(routes=oidc.routes()))
    assert client.get("/auth/oidc/start?next=/patients", follow_redirects=False).status_code == 404
    assert client.get("/auth/oidc/callback?code=x&state=y", follow_redirects=False).status_code == 404


def test_start_sends_the_browser_to_the_provider_with_a_flow_cookie(no_oidc_env, monkeypatch, engine, db_url):
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    no_oidc_env.setenv("KAPNOTES_OIDC_DISCOVERY_URL", SETTINGS.discovery_url)
    no_oidc_env.setenv("KAPNOTES_OIDC_CLIENT_ID", CLIENT)
    monkeypatch.delenv("KAPNOTES_APPTEST_SIGN_IN", raising=False)  # the routes use the server's helpers
    monkeypatch.setenv("KAPNOTES_DATABASE_URL", db_url)  # the flow is kept in the database
    monkeypatch.setitem(oidc._metadata_cache, SETTINGS.discovery_url, (time.monotonic(), METADATA))
    client = TestClient(Starlette(routes=oidc.routes()), base_url="http://kap.test")
    r = client.get("/auth/oidc/start?next=//evil.example/x", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith(f"{ISSUER}/authorize?")
    cookie = r.headers["set-cookie"].lower()
    assert "kapnotes_oidc_flow=" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "path=/auth/oidc/" in cookie and "max-age=600" in cookie
    flow_id = r.cookies.get(oidc.FLOW_COOKIE)
    from kapnotes.db import session_scope

    with session_scope(engine) as s:
        flow = oidc.take_flow(s, flow_id)
    assert flow.next_path == "/"  # another site is never a destination
    assert dict(parse_qsl(urlsplit(r.headers["location"]).query))["state"] == flow.state
