"""The clinic's protocol setting: which protocol is in force, and an administrator saving one.

The clinic's text (ClinicSetting ``protocol_path``: ``{"text", "sha256"}``) wins over the
deployment's file (``KAPNOTES_PROTOCOL``), which wins over the bundled default. Saving is
audited with the text's SHA-256; nothing here reads a server path an administrator typed.
The parser itself (``protocol``) stays free of the database.
"""

from __future__ import annotations

from pathlib import Path

from kapnotes import audit
from kapnotes.access import require_role
from kapnotes.dosing.protocol import (
    CLINIC_SOURCE,
    DEFAULT_PATH,
    ENV_VAR,
    SETTING_KEY,
    Protocol,
    ProtocolError,
    env_path,
    load,
    load_default,
    parse_text,
)
from kapnotes.errors import KapError
from kapnotes.models import ClinicSetting, Role
from kapnotes.timeutil import utcnow


def _setting(session):
    row = session.get(ClinicSetting, SETTING_KEY) if session is not None else None
    return (row.value or {}) if row is not None else {}


def clinic_text(session) -> str | None:
    """The protocol text an administrator saved for the clinic, or None."""
    text = _setting(session).get("text")
    return str(text) if text else None


def configured_path(session=None) -> str | None:
    """A protocol *file* set by the deployment (``KAPNOTES_PROTOCOL``), or one a clinic chose
    before the protocol was kept as text (a legacy ``path`` setting, still honoured until an
    administrator saves text or goes back to the default). The page never takes a path."""
    legacy = _setting(session).get("path")
    if legacy:
        return str(legacy)
    return env_path()


def in_force(session=None) -> Protocol:
    """The protocol the clinic runs now: the clinic's text, else a configured file, else the default."""
    text = clinic_text(session) if session is not None else None
    if text is not None:
        return parse_text(text)
    return load(configured_path(session))


def in_force_or_default(session) -> Protocol:
    """The protocol in force, or the bundled default when the clinic's cannot be read: a summary, the
    patient banner or a handout still prints (the engine itself refuses to run on a broken one)."""
    try:
        return in_force(session)
    except KapError:
        return load_default()


def text_in_force(session=None) -> str:
    """The TOML of the protocol in force, to show or to copy as a starting point."""
    text = clinic_text(session) if session is not None else None
    if text is not None:
        return text
    path = configured_path(session)
    return (Path(path) if path else DEFAULT_PATH).read_text(encoding="utf-8")


def set_clinic_protocol(session, actor, text: str | bytes | None) -> Protocol:
    """Admin: validate protocol TEXT and make it the clinic's (None/empty: back to the default).

    Stored in the database (ClinicSetting ``protocol_path``), audited with its SHA-256; a bad
    key is refused by name and nothing is written. No server path is read."""
    require_role(actor, Role.admin.value)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError({"file": "is not UTF-8 text."}) from None
    text = text if text and text.strip() else None
    proto = parse_text(text) if text is not None else load(env_path())
    row = session.get(ClinicSetting, SETTING_KEY)
    if row is None:
        row = ClinicSetting(key=SETTING_KEY, value={})
    row.value = {"text": text, "sha256": proto.sha256} if text is not None else {}
    row.updated_at = utcnow()
    row.updated_by_id = actor.id
    session.add(row)
    session.flush()
    audit.record(session, actor, "protocol.set", "clinic_setting", SETTING_KEY,
                 detail=f"sha256={proto.sha256} default={text is None}")
    return proto


# its own names, and the parser's a caller reads beside them (one import serves a page or a test)
__all__ = ["in_force", "text_in_force", "clinic_text", "configured_path", "set_clinic_protocol",
           "CLINIC_SOURCE", "DEFAULT_PATH", "ENV_VAR", "SETTING_KEY", "Protocol", "ProtocolError", "load",
           "load_default", "parse_text"]
