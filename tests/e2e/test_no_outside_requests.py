"""Issue 20: no request leaves the machine from the app's pages. Every request a signed-in visit
makes (the page, Streamlit's assets, fonts, the favicon, the websocket) goes to the app's own
origin; a page icon given as ``:material/...:`` must not make the browser fetch from a CDN."""

from __future__ import annotations

from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.helpers.browser import sign_in, wait_idle

PAGES = ("Patients", "Session notes", "Review queue")


def test_a_signed_in_visit_requests_only_the_apps_own_origin(browser, app_server):
    base = app_server["url"]
    own = urlsplit(base).netloc
    seen: list[str] = []
    ctx = browser.new_context()
    ctx.on("request", lambda request: seen.append(request.url))
    page = ctx.new_page()
    page.on("websocket", lambda ws: seen.append(ws.url))
    sign_in(page, base, "mokafor")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=30000)
    for title in PAGES[1:]:
        page.get_by_role("link", name=title).first.click()
        wait_idle(page)
    page.reload()
    expect(page.locator('[data-testid="stApp"]')).to_be_visible(timeout=30000)
    wait_idle(page)
    # the favicon the browser was given is served by the app itself
    icon = page.evaluate("() => Array.from(document.querySelectorAll('link[rel~=icon]')).map(l => l.href)")
    ctx.close()
    assert seen, "no request was recorded"
    outside = sorted({u for u in seen + icon
                      if not u.startswith(("data:", "blob:")) and urlsplit(u).netloc != own})
    assert outside == [], outside
    assert all(urlsplit(u).hostname == "127.0.0.1" for u in seen if not u.startswith(("data:", "blob:")))
