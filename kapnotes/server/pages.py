"""The server's own HTML: the sign-in form and the pages of the steps after a right password
(second-factor code, new password, enrolment, recovery codes). Plain pages, no script."""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse

from kapnotes import oidc
from kapnotes.config import get_settings
from kapnotes.server.pending import Pending

SIGN_IN_PATH = "/auth/sign-in"
SIGN_IN_NEXT_PATH = "/auth/sign-in/next"  # the steps after a right password (code, new password, enrolment)

_STYLE = """
body{font-family:system-ui,sans-serif;color:#111;background:#fff;margin:0}
main{max-width:26rem;margin:4rem auto;padding:0 1rem}
h1{color:#23595c;margin-bottom:.25rem}
label{display:block;margin-top:1rem;font-weight:600}
input{display:block;width:100%;box-sizing:border-box;padding:.5rem;margin-top:.25rem;font-size:1rem;
border:1px solid #555;border-radius:.25rem}
button{margin-top:1.5rem;padding:.6rem 1.4rem;font-size:1rem;background:#23595c;color:#fff;border:0;
border-radius:.25rem;cursor:pointer}
button:focus,input:focus{outline:3px solid #e0a800;outline-offset:2px}
.error{background:#fde8e8;color:#7a1010;padding:.75rem;border-radius:.25rem}
.notice{background:#e6f0fa;color:#0b3a66;padding:.75rem;border-radius:.25rem}
"""

NOTICES = {
    "signed_out": "You have signed out.",
    "ended": "Your session has ended. Sign in again to continue.",
}


def sign_in_page(next_path: str, csrf: str, error: str = "", notice: str = "", status: int = 200) -> HTMLResponse:
    e = html.escape
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Sign in · KAPNotes</title><style>{_STYLE}</style></head><body><main>",
        "<h1>KAPNotes</h1>",
        "<p>Clinical documentation for ketamine-assisted psychotherapy. Sign in to continue.</p>",
    ]
    if notice:
        parts.append(f'<p class="notice" role="status">{e(notice)}</p>')
    if error:
        parts.append(f'<div class="error" role="alert">{"".join(f"<p>{e(m)}</p>" for m in error.split(chr(10)))}</div>')
    parts.append(oidc.sign_in_button(next_path))  # single sign-on, when configured
    parts += [
        f'<form method="post" action="{SIGN_IN_PATH}">',
        f'<input type="hidden" name="next" value="{e(next_path)}">',
        f'<input type="hidden" name="csrf" value="{e(csrf)}">',
        '<label for="username">Username</label>',
        '<input id="username" name="username" autocomplete="username" autocapitalize="none" spellcheck="false">',
        '<label for="password">Password</label>',
        '<input id="password" name="password" type="password" autocomplete="current-password">',
        '<button type="submit">Sign in</button>',
        "</form></main></body></html>",
    ]
    return HTMLResponse("".join(parts), status_code=status, headers={"Cache-Control": "no-store"})


def page(title: str, body: list[str], status: int = 200) -> HTMLResponse:
    e = html.escape
    parts = [
        '<!doctype html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)} · KAPNotes</title><style>{_STYLE}"
        "code{font-size:1.1rem}ul.codes{columns:2;font-family:monospace;font-size:1.1rem}</style></head><body><main>",
        "<h1>KAPNotes</h1>", f"<h2>{e(title)}</h2>", *body, "</main></body></html>",
    ]
    return HTMLResponse("".join(parts), status_code=status, headers={"Cache-Control": "no-store"})


def error_html(error: str) -> list[str]:
    if not error:
        return []
    paragraphs = "".join(f"<p>{html.escape(m)}</p>" for m in error.split(chr(10)))
    return [f'<div class="error" role="alert">{paragraphs}</div>']


def step_form(pending: Pending, step: str, fields: list[str], button: str) -> list[str]:
    e = html.escape
    return [f'<form method="post" action="{SIGN_IN_NEXT_PATH}">',
            f'<input type="hidden" name="form_token" value="{e(pending.form_token)}">',
            f'<input type="hidden" name="step" value="{e(step)}">', *fields,
            f'<button type="submit">{e(button)}</button></form>']


def codes_page(pending: Pending, codes: list[str]) -> HTMLResponse:
    e = html.escape
    return page("Your recovery codes", step_form(pending, "codes_seen", [
        '<p class="notice" role="status">Your second factor is on.</p>',
        "<p>Keep these recovery codes somewhere safe, away from your phone. Each one signs you in once "
        "if you lose your phone. <strong>They are shown only now.</strong></p>",
        '<ul class="codes" aria-label="Recovery codes">' + "".join(f"<li>{e(c)}</li>" for c in codes) + "</ul>",
    ], "I have kept them: continue"))


def code_page(pending: Pending, error: str, status: int) -> HTMLResponse:
    return page("Second step: your code", error_html(error) + step_form(pending, "code", [
        "<p>Enter the 6-digit code from your authenticator app, or one of your recovery codes.</p>",
        '<label for="code">Code</label>',
        '<input id="code" name="code" autocomplete="one-time-code" inputmode="text" autocapitalize="none" '
        'spellcheck="false" maxlength="20">',
    ], "Continue"), status)


def change_password_page(pending: Pending, error: str, status: int) -> HTMLResponse:
    minimum = get_settings().min_password_length
    return page("Choose a new password", error_html(error) + step_form(pending, "change_password", [
        "<p>Your administrator reset your password. Choose a new one before you continue: at least "
        f"{minimum} characters, not a common password and not built from your name or username. "
        "A few unrelated words work well.</p>",
        '<label for="new_password">New password</label>',
        '<input id="new_password" name="new_password" type="password" autocomplete="new-password">',
        '<label for="repeat_password">New password again</label>',
        '<input id="repeat_password" name="repeat_password" type="password" autocomplete="new-password">',
    ], "Save and continue"), status)


def enrol_page(pending: Pending, secret: str, qr_data_uri: str, error: str, status: int) -> HTMLResponse:
    e = html.escape
    return page("Set up your second factor", error_html(error) + step_form(pending, "enrol", [
        "<p>Your clinic requires a second factor for your role. Scan this code with an authenticator app "
        "(for example Google Authenticator, Microsoft Authenticator or FreeOTP), then enter the 6-digit "
        "code it shows.</p>",
        f'<img src="{e(qr_data_uri)}" alt="QR code for your authenticator app" width="240" height="240">',
        f'<p>Cannot scan? Enter this key instead: <code id="totp-secret">{e(secret)}</code></p>',
        '<label for="code">Code from the app</label>',
        '<input id="code" name="code" autocomplete="one-time-code" inputmode="numeric" maxlength="10">',
    ], "Turn on"), status)


DATABASE_UNAVAILABLE = ("KAPNotes cannot reach its database just now. Nothing you saved is lost. "
                        "Please try again in a minute.")


def database_unavailable_page() -> HTMLResponse:
    """A request that needed the database while it was down or restarting (HTTP 503, retry soon)."""
    alert = f'<p class="error" role="alert">{html.escape(DATABASE_UNAVAILABLE)}</p>'
    return page("Please try again in a minute", [alert], status=503)
