"""Session notes: drafts (versioned, author-only), signing (hash, immutable), addenda, finding notes.

Rules this package enforces for every caller (pages, CLI, other features):
- Only a therapist on the patient's care team writes notes; a draft is visible to its
  author alone. Signed notes are read by every clinician on the care team.
- A draft carries ``version``. ``save_draft`` with a stale ``expected_version`` raises
  :class:`DraftConflict` (a ``ConflictError``) carrying both versions; nothing is written.
- ``sign`` checks the required fields, records signer, time and the content hash
  (:func:`kapnotes.notes.hashing.content_hash`) and emits ``"note.signed"``. A signed note is
  never changed again (``SignedNoteError`` here; a database trigger for any other path).
- Corrections are addenda: any clinician on the care team (therapist or prescriber) may add
  one to a signed note; each is dated, names its author and carries its own hash.
- A dosing note creates or links exactly one dose-log entry (``context = in_session``,
  ``source = session``) and keeps it in step while the note is a draft.
- Every read of note content, every change and every search is audited, with ids and
  counts only, never note text.

The pieces, lowest first (each imports only those above it, never this package root):

- ``templates``    the note types as data: fields, labels, required fields, typed validation
- ``hashing``      content hashes and the keyed signature (MAC) with its key file
- ``clock``        the service's one clock: clinic "today", "still in the future"
- ``content``      a note's editable content as a dict; ``UNSET``; ``DraftConflict``, ``SignedNoteError``
- ``loading``      who may read or change a note (``load``, ``get_note``)
- ``validation``   what a draft and a signed note must hold (``check``), plan-difference warnings
- ``dose_link``    the dose-log entry of a dosing note; the dose an integration note integrates
- ``drafts``       create, save (optimistic locking), discard
- ``signing``      sign, signature state, addenda
- ``queries``      timeline, my drafts, search, the note viewer
- ``verification`` re-checking every signature against the audit chain; sealing pre-MAC ones
"""

from __future__ import annotations

from kapnotes.notes.clock import local_today as _local_today  # noqa: F401 - the app tests use it
from kapnotes.notes.content import (
    CONTENT_KEYS,
    UNSET,
    DraftConflict,
    SignedNoteError,
    content_of,
    snapshot,
)
from kapnotes.notes.dose_link import dose_choices, latest_dose, linked_dose
from kapnotes.notes.drafts import create_draft, discard_draft, last_signed_note, save_draft
from kapnotes.notes.loading import get_note
from kapnotes.notes.queries import SEARCH_LIMIT, NoteRow, NoteView, SearchHit, my_drafts, search, timeline, view_note
from kapnotes.notes.signing import (
    ADDENDUM_MAX,
    AddendumRow,
    add_addendum,
    addendum_hash,
    addendum_state,
    can_add_addendum,
    list_addenda,
    sign,
    signature_state,
    verify,
)
from kapnotes.notes.validation import FREE_TEXT_MAX, warnings_for
from kapnotes.notes.verification import SignatureReport, seal_legacy_signatures, verify_signatures

__all__ = [
    "ADDENDUM_MAX", "CONTENT_KEYS", "FREE_TEXT_MAX", "SEARCH_LIMIT", "UNSET",
    "AddendumRow", "DraftConflict", "NoteRow", "NoteView", "SearchHit", "SignatureReport", "SignedNoteError",
    "add_addendum", "addendum_hash", "addendum_state", "can_add_addendum", "content_of", "create_draft",
    "discard_draft", "dose_choices", "get_note", "last_signed_note", "latest_dose", "linked_dose", "list_addenda",
    "my_drafts", "save_draft", "seal_legacy_signatures", "search", "sign", "signature_state", "snapshot",
    "timeline", "verify", "verify_signatures", "view_note", "warnings_for",
]
