"""Keyed signatures: a signed note rewritten in the database, hash and all, is caught by
`verify-audit` (MAC under a key outside the database + the hash in the audit chain).
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlmodel import select

from kapnotes import audit, notes
from kapnotes.db import session_scope
from kapnotes.models import Addendum, AuditEvent, SessionNote
from kapnotes.notes import hashing as notehash
from kapnotes.notes.hashing import content_hash
from kapnotes.timeutil import utcnow
from tests.helpers.cli import kap
from tests.unit.tamper import rehash_audit_chain, unguarded

ROOT = Path(__file__).resolve().parents[2]
TODAY = utcnow().date() - timedelta(days=1)
INTEGRATION = {"client_account": "Gentle.", "risk_check": "Denies.", "plan": "Continue."}


@pytest.fixture
def key_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "keys" / "signing.key"
    monkeypatch.setenv(notehash.KEY_FILE_ENV, str(path))
    return path


def _cli(db_url: str, key_file: Path, *args: str) -> subprocess.CompletedProcess:
    return kap(db_url, *args, env={notehash.KEY_FILE_ENV: str(key_file)})


def _signed_note(engine, clinic, text_: str = "Felt calm.") -> int:
    with session_scope(engine) as s:
        note = notes.create_draft(s, clinic.tina, clinic.a1, "integration", session_date=TODAY)
        nid, version = note.id, note.version
    with session_scope(engine) as s:
        notes.sign(s, clinic.tina, nid, version, fields=INTEGRATION, free_text=text_)
    return nid


def test_a_signature_is_a_mac_and_the_chain_records_the_hash(engine, clinic, key_file):
    nid = _signed_note(engine, clinic)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ring = notehash.read_keys(key_file)
    with session_scope(engine) as s:
        add = notes.add_addendum(s, clinic.tina, nid, "Late entry.")
        aid = add.id
    with session_scope(engine) as s:
        note = s.get(SessionNote, nid)
        assert note.signature_key_id == ring.current and len(note.signature_mac) == 64
        assert note.signature_mac != note.content_hash
        assert notes.signature_state(note) == "ok" and notes.verify(note)
        sign_ev = s.exec(select(AuditEvent).where(AuditEvent.action == "note.sign",
                                                  AuditEvent.record_id == str(nid))).one()
        assert f"sha256={content_hash(note)}" in sign_ev.detail and "Felt calm" not in sign_ev.detail
        add_row = s.get(Addendum, aid)
        assert add_row.signature_key_id == ring.current
        add_ev = s.exec(select(AuditEvent).where(AuditEvent.action == "addendum.create")).one()
        assert f"sha256={add_row.content_hash}" in add_ev.detail
        view = notes.view_note(s, clinic.tina, nid)
        assert view.hash_ok is True and view.signature_state == "ok" and view.addenda[0].state == "ok"


def _rewrite_note_and_hash(engine, nid: int) -> None:
    """The attack: change the free text and recompute the unkeyed hash, guards lifted."""
    with session_scope(engine) as s:
        note = s.get(SessionNote, nid)
        s.expunge(note)
        note.free_text = "Nothing notable."
        forged = content_hash(note)
        unguarded(s, "UPDATE session_notes SET free_text = :t, content_hash = :h WHERE id = :id",
                  ("session_notes",), t="Nothing notable.", h=forged, id=nid)


@pytest.mark.slow
def test_rewriting_a_note_and_its_hash_is_named_by_verify_audit(engine, db_url, clinic, key_file):
    _signed_note(engine, clinic, "First.")
    victim = _signed_note(engine, clinic, "Disclosed a plan; safety plan reviewed.")
    ok = _cli(db_url, key_file, "verify-audit")
    assert ok.returncode == 0, ok.stderr
    assert "signatures intact: 2 signed notes" in ok.stdout

    _rewrite_note_and_hash(engine, victim)
    with session_scope(engine) as s:
        view = notes.view_note(s, clinic.tina, victim)
        assert view.hash_ok is False and view.signature_state == "bad"  # the viewer no longer vouches for it
    bad = _cli(db_url, key_file, "verify-audit")
    assert bad.returncode == 1
    assert f"note {victim}:" in bad.stderr and bad.stdout == ""


@pytest.mark.slow
def test_rewriting_the_audit_chain_too_still_fails_the_mac(engine, db_url, clinic, key_file):
    """Even with the sign event's hash edited and the whole chain re-hashed, the MAC holds."""
    victim = _signed_note(engine, clinic)
    _rewrite_note_and_hash(engine, victim)
    with session_scope(engine) as s:
        forged = s.get(SessionNote, victim).content_hash
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "note.sign")).one()
        unguarded(s, "UPDATE audit_events SET detail = :d WHERE id = :id",
                  d=f"type=integration;sha256={forged}", id=ev.id)
        rehash_audit_chain(s)
        assert audit.verify_chain(s).ok  # the chain alone now vouches for the forgery
    bad = _cli(db_url, key_file, "verify-audit")
    assert bad.returncode == 1
    assert f"note {victim}: its keyed signature (MAC) does not match" in bad.stderr


@pytest.mark.slow
def test_an_altered_addendum_is_named(engine, db_url, clinic, key_file):
    nid = _signed_note(engine, clinic)
    with session_scope(engine) as s:
        aid = notes.add_addendum(s, clinic.tina, nid, "Called the next day.").id
    with session_scope(engine) as s:
        a = s.get(Addendum, aid)
        forged = notes.addendum_hash(a.note_id, a.author_id, a.created_at, "Did not call.")
        unguarded(s, "UPDATE addenda SET text = 'Did not call.', content_hash = :h WHERE id = :id", ("addenda",),
                  h=forged, id=aid)
    bad = _cli(db_url, key_file, "verify-audit")
    assert bad.returncode == 1 and f"addendum {aid}:" in bad.stderr


@pytest.mark.slow
def test_legacy_signatures_are_hash_only_until_sealed(engine, db_url, clinic, key_file):
    nid = _signed_note(engine, clinic)
    with session_scope(engine) as s:  # as before migration 0112: no MAC, and an event without the hash
        unguarded(s, "UPDATE session_notes SET signature_mac = NULL, signature_key_id = NULL WHERE id = :id",
                  id=nid)
        unguarded(s, "UPDATE audit_events SET detail = 'type=integration' WHERE action = 'note.sign'")
        rehash_audit_chain(s)
    with session_scope(engine) as s:
        assert notes.view_note(s, clinic.tina, nid).signature_state == "unsealed"
    legacy = _cli(db_url, key_file, "verify-audit")
    assert legacy.returncode == 0, legacy.stderr
    assert "1 signed before MACs; hash only" in legacy.stdout

    sealed = _cli(db_url, key_file, "seal-legacy-signatures")
    assert sealed.returncode == 0, sealed.stderr
    assert "sealed 1 signature" in sealed.stdout
    again = _cli(db_url, key_file, "verify-audit")
    assert again.returncode == 0 and "hash only" not in again.stdout
    with session_scope(engine) as s:
        assert notes.view_note(s, clinic.tina, nid).signature_state == "ok"
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "note.seal")).one().detail.startswith("sha256=")
        # the seal exception lets nothing else through, and a MAC cannot be replaced
        with pytest.raises(DatabaseError, match="signed notes are immutable"):
            s.execute(text("UPDATE session_notes SET signature_mac = :m WHERE id = :id"), {"m": "0" * 64, "id": nid})
        s.rollback()
        with pytest.raises(DatabaseError, match="signed notes are immutable"):
            s.execute(text("UPDATE session_notes SET free_text = 'x' WHERE id = :id"), {"id": nid})
        s.rollback()


@pytest.mark.slow
def test_key_rotation_keeps_old_signatures_verifiable(engine, db_url, clinic, key_file):
    first = _signed_note(engine, clinic)
    old = notehash.read_keys(key_file).current
    new = notehash.rotate_key(key_file)
    assert new != old and notehash.read_keys(key_file).current == new
    second = _signed_note(engine, clinic)
    with session_scope(engine) as s:
        assert s.get(SessionNote, first).signature_key_id == old
        assert s.get(SessionNote, second).signature_key_id == new
        assert notes.verify(s.get(SessionNote, first)) and notes.verify(s.get(SessionNote, second))
    assert _cli(db_url, key_file, "verify-audit").returncode == 0
    # losing a key is reported, never silently accepted
    lines = [ln for ln in key_file.read_text().splitlines() if not ln.startswith(old)]
    key_file.write_text("\n".join(lines) + "\n")
    bad = _cli(db_url, key_file, "verify-audit")
    assert bad.returncode == 1 and f"note {first}: it was signed with a key that is not in the signing key file" \
        in bad.stderr


@pytest.mark.slow
def test_init_db_creates_the_key_owner_only_and_backup_leaves_it_out(tmp_path, key_file):
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    done = _cli(url, key_file, "init-db")
    assert done.returncode == 0, done.stderr
    assert f"signing key created: {key_file}" in done.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    before = key_file.read_text()
    assert _cli(url, key_file, "init-db").returncode == 0 and key_file.read_text() == before  # kept as is
    out = tmp_path / "backups"
    b = _cli(url, key_file, "backup", "--out-dir", str(out))
    assert b.returncode == 0, b.stderr
    assert f"the signing key {key_file} is NOT in this backup" in b.stdout
    assert [p.suffix for p in out.iterdir()] == [".db"]
    hexkey = before.split()[-1]
    assert hexkey.encode() not in next(out.iterdir()).read_bytes()


def test_default_key_sits_beside_the_sqlite_file(tmp_path, monkeypatch):
    monkeypatch.delenv(notehash.KEY_FILE_ENV, raising=False)
    assert notehash.default_key_path(f"sqlite:///{tmp_path}/x/clinic.db") == (tmp_path / "x" / "signing.key")
