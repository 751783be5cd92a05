"""A right password whose sign-in is not finished yet (a code, a new password or enrolment to
come), kept in the database (``kapnotes.auth_flows``) so the next step may reach any app process.
The browser holds only a random id in an HttpOnly cookie; the TOTP secret being enrolled stays
on the account row (``mfa.pending_secret``), never in the flow."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field

from kapnotes import auth_flows
from kapnotes.db import session_scope
from kapnotes.web import engine

PENDING_COOKIE = "kapnotes_pending"
PENDING_SECONDS = 600  # a half-done sign-in lasts at most 10 minutes
MAX_CODE_TRIES = 5  # wrong codes in one half-done sign-in before the password is asked again
KIND = "sign_in"  # its rows in auth_flows


@dataclass
class Pending:
    user_id: int
    username: str
    next_path: str
    steps: list[str]
    ip: str
    user_agent: str
    form_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    code_failures: int = 0
    enrol_started: bool = False


def put(pending: Pending) -> str:
    """Store it; returns the raw id for the cookie (blocking: call off the event loop)."""
    with session_scope(engine()) as session:
        return auth_flows.put(session, KIND, asdict(pending), PENDING_SECONDS)


def load(raw: str | None) -> Pending | None:
    with session_scope(engine()) as session:
        data = auth_flows.get(session, KIND, raw)
    return Pending(**data) if data is not None else None


def save(raw: str | None, pending: Pending) -> None:
    with session_scope(engine()) as session:
        auth_flows.save(session, KIND, raw, asdict(pending))


def drop(raw: str | None) -> None:
    with session_scope(engine()) as session:
        auth_flows.drop(session, KIND, raw)
