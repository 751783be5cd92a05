"""The content hash of a signed note: SHA-256 over a canonical JSON of what was signed.

Defined once so signing, verification, PDFs and the seeder agree byte for byte.
"""

from __future__ import annotations

import hashlib
import json

from kapnotes.models import SessionNote

SIGNED_FIELDS = (
    "patient_id", "author_id", "note_type", "session_date", "start_time", "end_time",
    "modality", "fields", "free_text", "integrates_dose_id",
)


def canonical(note: SessionNote) -> str:
    data = {name: getattr(note, name) for name in SIGNED_FIELDS}
    data["session_date"] = note.session_date.isoformat()
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(note: SessionNote) -> str:
    return hashlib.sha256(canonical(note).encode("utf-8")).hexdigest()


def text_hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
