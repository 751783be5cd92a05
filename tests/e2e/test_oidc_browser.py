"""Single sign-on in Chromium against a real OpenID provider started here (``oidc-provider-mock``,
on 127.0.0.1): a known user lands on the page they asked for; an unknown identity is refused and
nothing is created; a tampered ``state`` is refused."""

from __future__ import annotations

import json
import threading
import urllib.request
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, create_engine, func, select

from kapnotes.models import AuditEvent, User, UserSession
from tests.helpers.browser import start_server, stop_server, wait_app

KNOWN = ("okafor-at-idp", {"email": "Michelle.Okafor@clinic.example", "email_verified": True})
UNKNOWN = ("stranger-at-idp", {"email": "stranger@elsewhere.example", "email_verified": True})
UNVERIFIED = ("unverified-at-idp", {"email": "michelle.okafor@clinic.example", "email_verified": False})
BUTTON = "Sign in with Clinic Account"


@pytest.fixture(scope="module")
def provider():
    """The mock provider in a thread on a free loopback port; it insists on a nonce."""
    import oidc_provider_mock
    import werkzeug.serving

    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(require_nonce=True), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    for sub, claims in (KNOWN, UNKNOWN, UNVERIFIED):
        request = urllib.request.Request(f"{base}/users/{quote(sub)}", data=json.dumps(claims).encode(),
                                         method="PUT", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 204
    yield base
    server.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def sso_server(tmp_path_factory, browser_type_launch_args, provider):
    db_path = tmp_path_factory.mktemp("oidc") / "oidc.db"
    env = {"KAPNOTES_OIDC_DISCOVERY_URL": f"{provider}/.well-known/openid-configuration",
           "KAPNOTES_OIDC_CLIENT_ID": "kapnotes-test", "KAPNOTES_OIDC_CLIENT_SECRET": "test-secret",
           "KAPNOTES_OIDC_BUTTON": BUTTON}
    proc, base = start_server(db_path, extra_env=env)
    engine = create_engine(f"sqlite:///{db_path}")
    with Session(engine) as session:  # an admin recorded the prescriber's work e-mail
        user = session.exec(select(User).where(User.username == "mokafor")).one()
        user.email = "michelle.okafor@clinic.example"
        session.add(user)
        session.commit()
    yield {"url": base, "engine": engine}
    stop_server(proc)
    engine.dispose()


def _counts(engine):
    with Session(engine) as session:
        return (session.exec(select(func.count()).select_from(User)).one(),
                session.exec(select(func.count()).select_from(UserSession)).one())


def _events(engine, action):
    with Session(engine) as session:
        return session.exec(select(AuditEvent).where(AuditEvent.action == action)).all()


def _to_provider(page, base, path):
    """A signed-out deep link, the SSO button on the sign-in form, then the provider's own page."""
    page.goto(f"{base}/{path}")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
    page.get_by_role("link", name=BUTTON).click()
    expect(page.get_by_role("heading", name="Authorize Client")).to_be_visible(timeout=20000)
    query = dict(parse_qsl(urlsplit(page.url).query))
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["nonce"] and query["state"] and query["redirect_uri"] == f"{base}/auth/oidc/callback"


def test_known_user_signs_in_through_the_provider_and_lands_on_the_page_asked_for(browser, sso_server):
    base, engine = sso_server["url"], sso_server["engine"]
    context = browser.new_context()
    page = context.new_page()
    _to_provider(page, base, "review_queue")
    page.get_by_placeholder("sub").fill(KNOWN[0])
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{base}/review_queue", timeout=30000)
    wait_app(page)
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
    expect(page.get_by_text("Michelle Okafor").first).to_be_visible()
    assert page.get_by_role("button", name="Sign in").count() == 0
    session_cookie = next(c for c in context.cookies() if c["name"] == "kapnotes_session")
    assert session_cookie["httpOnly"] and session_cookie["sameSite"] == "Strict"
    assert not [c for c in context.cookies() if c["name"] == "kapnotes_oidc_flow"]  # the flow is used up
    signed_in = [e for e in _events(engine, "auth.sign_in") if e.detail == "method=oidc"]
    assert [e.actor_username for e in signed_in] == ["mokafor"]
    page.reload()  # an ordinary server-side session: a reload keeps it
    wait_app(page)
    expect(page.get_by_text("Signed in as")).to_be_visible(timeout=20000)
    context.close()


@pytest.mark.parametrize("identity", [UNKNOWN, UNVERIFIED], ids=["unknown", "email-not-verified"])
def test_unknown_or_unverified_identity_is_refused_and_nothing_is_created(browser, sso_server, identity):
    base, engine = sso_server["url"], sso_server["engine"]
    before = _counts(engine)
    refused_before = len(_events(engine, "auth.oidc_refused"))
    context = browser.new_context()
    page = context.new_page()
    _to_provider(page, base, "patients")
    page.get_by_placeholder("sub").fill(identity[0])
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="No KAPNotes account for this sign-in")).to_be_visible(timeout=20000)
    assert not [c for c in context.cookies() if c["name"] == "kapnotes_session"]
    assert _counts(engine) == before  # no user, no session
    refused = _events(engine, "auth.oidc_refused")
    assert len(refused) == refused_before + 1
    assert identity[1]["email"].split("@")[0].lower() not in refused[-1].detail.lower()  # no address in the log
    assert "domain=" in refused[-1].detail
    page.goto(f"{base}/patients")  # still signed out
    expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=20000)
    context.close()


def test_tampered_state_is_refused(browser, sso_server):
    base, engine = sso_server["url"], sso_server["engine"]
    before = _counts(engine)
    context = browser.new_context()
    page = context.new_page()

    def tamper(route):
        """The provider's answer (a redirect back to us) with its ``state`` altered on the way."""
        if route.request.method != "POST":
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        parts = urlsplit(response.headers["location"])
        query = dict(parse_qsl(parts.query))
        assert query.get("code") and query.get("state")
        query["state"] = query["state"][:-2] + ("AA" if not query["state"].endswith("AA") else "BB")
        headers = {**response.headers, "location": urlunsplit(parts._replace(query=urlencode(query)))}
        route.fulfill(response=response, headers=headers)

    page.route(lambda url: "/oauth2/authorize" in url, tamper)
    _to_provider(page, base, "patients")
    page.get_by_placeholder("sub").fill(KNOWN[0])  # a known user: only the state is wrong
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_role("heading", name="Single sign-on did not work")).to_be_visible(timeout=20000)
    expect(page.get_by_text("did not match this sign-in")).to_be_visible()
    assert not [c for c in context.cookies() if c["name"] == "kapnotes_session"]
    assert _counts(engine) == before
    assert _events(engine, "auth.oidc_failed")[-1].detail == "reason=state_mismatch"
    context.close()
