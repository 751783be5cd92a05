"""A note's editable content as a plain dict, and the two refusals about changing it.

Drafts, signing and the editor all speak in this dict (``CONTENT_KEYS``): a conflict shows two
of them side by side, and ``UNSET`` marks an argument the caller left out (None is a value).
"""

from __future__ import annotations

from typing import Any

from kapnotes.errors import ConflictError, KapError
from kapnotes.models import SessionNote
from kapnotes.notes.templates import SYSTEM_KEYS

CONTENT_KEYS = ("session_date", "start_time", "end_time", "modality", "fields", "free_text", "integrates_dose_id")


class UnsetType:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "UNSET"


UNSET: Any = UnsetType()


class SignedNoteError(KapError):
    """A signed note cannot change: corrections are addenda."""

    def __init__(self, message: str = "This note is signed and can no longer be edited. Add an addendum instead."):
        super().__init__(message)


class DraftConflict(ConflictError):
    """Someone saved this draft since you loaded it. Carries both versions; nothing was written."""

    def __init__(self, note_id: int, my_version: int, their_version: int | None,
                 mine: dict | None, theirs: dict | None):
        super().__init__(
            f"This draft was saved elsewhere (version {their_version}) since you loaded version {my_version}. "
            "Nothing was overwritten: compare both versions and choose.",
            theirs=theirs,
        )
        self.note_id = note_id
        self.my_version = my_version
        self.their_version = their_version
        self.mine = mine
        self.theirs = theirs


def content_of(note: SessionNote) -> dict:
    """The editable content of a note as a plain dict (what a conflict shows side by side)."""
    return {
        "session_date": note.session_date,
        "start_time": note.start_time,
        "end_time": note.end_time,
        "modality": note.modality,
        "fields": {k: v for k, v in (note.fields or {}).items() if k not in SYSTEM_KEYS},
        "free_text": note.free_text,
        "integrates_dose_id": note.integrates_dose_id,
    }


def snapshot(note: SessionNote) -> dict:
    """The stored draft as a conflict reports it: content plus who saved which version when."""
    return {"version": note.version, "updated_at": note.updated_at, "updated_by_id": note.updated_by_id,
            **content_of(note)}


def merged(note: SessionNote, changes: dict) -> dict:
    """The stored content with the caller's changes on top (``UNSET`` ones left as they are)."""
    base = content_of(note)
    for key, value in changes.items():
        if value is not UNSET:
            base[key] = value
    return base
