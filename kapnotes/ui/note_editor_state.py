"""The note editor's state machine: autosave, review-before-sign, sign, discard, conflicts.

The page (pages/note_editor.py) collects the form's content, calls ``step`` once per run and
draws what the returned ``Outcome`` says. Signing is a decision: "Sign note" first checks
the times (start and end present, end after start, end not after now) and, when they hold,
opens a confirmation with a short summary; only "Yes, sign" signs. Changing the note while
the confirmation is open closes it (the summary would no longer be what is signed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Callable

from kapnotes import notes
from kapnotes.errors import KapError, ValidationError
from kapnotes.notes import clock
from kapnotes.ui import note_form as nf

REVIEW, SIGN, DISCARD, KEEP_MINE, CANCEL = "review_sign", "sign", "discard", "keep_mine", "cancel_sign"


@dataclass
class Outcome:
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None  # an error shown above the form
    failure: KapError | None = None  # shown with show_error
    saved: Any = None  # the note as saved this run
    signed: bool = False
    discarded: bool = False


def sign_problems(content: dict) -> dict[str, str]:
    """Why the note's date and times cannot be signed as they are, by field (empty when they can).

    The service checks again when signing; this check
    runs first so the confirmation never summarises a note that cannot be signed.
    """
    errors: dict[str, str] = {}
    start, end = content.get("start_time"), content.get("end_time")
    day = content.get("session_date")
    if isinstance(day, str):
        try:
            day = date.fromisoformat(day)
        except ValueError:
            day = None
    if day is None:
        errors["session_date"] = "Enter the session date before signing."
    if not start:
        errors["start_time"] = "Enter the session's start time before signing."
    if not end:
        errors["end_time"] = "Enter the session's end time before signing."
    elif start and end < start:
        errors["end_time"] = f"End time {end} is before start time {start}."
    elif isinstance(day, date) and clock.in_future(day, end):  # the service's own clock and slack
        errors["end_time"] = (f"End time {end} on {day.isoformat()} has not come yet; sign the note once the "
                              "session has ended.")
    return errors


def sign_summary(title: str, content: dict, dose: str | None = None) -> str:
    """One line a clinician can check before signing: type, date, times, dose if any."""
    day = content.get("session_date")
    day_text = day.strftime("%A %-d %B %Y") if isinstance(day, date) else str(day)
    parts = [f"{title} note", day_text, f"{content.get('start_time') or '—'} to {content.get('end_time') or '—'}",
             nf.MODALITY_LABELS.get(content.get("modality"), "In person")]
    mg = (content.get("fields") or {}).get("dose_mg")
    if mg is not None:
        parts.append(f"dose {float(mg):g} mg")
    elif dose:
        parts.append(f"integrates the dose of {dose}")
    return " · ".join(parts)


def step(actor, note_id: int, ed: dict, mine: dict, stored: dict, stored_version: int, action: str | None,
         db: Callable) -> Outcome:
    """Apply this run's action (or the autosave) to the draft; ``ed`` is the page's own state.

    ``ed`` holds ``version`` (the version the form is based on), ``conflict`` (their version
    when a save found the draft changed elsewhere) and ``confirm`` (the content awaiting
    confirmation to sign, or None).
    """
    out = Outcome()
    changed = nf.comparable(mine) != nf.comparable(stored)
    if ed.get("confirm") is not None and nf.comparable(mine) != ed["confirm"]:
        ed["confirm"] = None  # edited while the confirmation was open: confirm again
    if action == CANCEL:
        ed["confirm"] = None
    elif action == REVIEW:
        _review(mine, ed, out)
    elif action == SIGN:
        if ed.get("confirm") is not None:  # else the note changed since the summary was shown
            _sign(actor, note_id, ed, mine, stored_version, db, out)
        return out
    elif action == DISCARD:
        _discard(actor, note_id, ed, stored_version, db, out)
        return out
    if action == KEEP_MINE or (ed["conflict"] is None and changed):
        _save(actor, note_id, ed, mine, stored_version, db, out, keep_mine=action == KEEP_MINE)
    elif not changed and ed["version"] != stored_version and ed["conflict"] is None:
        ed["version"] = stored_version  # saved elsewhere with the same content: nothing to merge
    return out


NOT_SIGNED = "Not signed yet: complete or correct the fields marked below. Your draft is kept."


def _review(mine: dict, ed: dict, out: Outcome) -> None:
    """"Sign note": check the times first; when they hold, open the confirmation."""
    problems = sign_problems(mine)
    if problems:
        out.errors = problems
        out.message = NOT_SIGNED
    else:
        ed["confirm"] = nf.comparable(mine)


def _sign(actor, note_id: int, ed: dict, mine: dict, stored_version: int, db: Callable, out: Outcome) -> None:
    """"Yes, sign": sign the confirmed content; the confirmation closes whatever happens."""
    try:
        with db() as s:
            notes.sign(s, actor, note_id, ed["version"], **mine)
    except ValidationError as exc:
        out.errors = exc.errors
        out.message = NOT_SIGNED
    except KapError as exc:
        _refused(exc, ed, stored_version, out)
    else:
        out.signed = True
    ed["confirm"] = None


def _discard(actor, note_id: int, ed: dict, stored_version: int, db: Callable, out: Outcome) -> None:
    try:
        with db() as s:
            notes.discard_draft(s, actor, note_id, ed["version"])
    except KapError as exc:
        _refused(exc, ed, stored_version, out)
    else:
        out.discarded = True


def _save(actor, note_id: int, ed: dict, mine: dict, stored_version: int, db: Callable, out: Outcome,
          keep_mine: bool) -> None:
    """Autosave (or "Keep my version", which saves over the version found in the conflict)."""
    expected = ed["conflict"] if keep_mine else ed["version"]
    try:
        with db() as s:
            saved = notes.save_draft(s, actor, note_id, expected, **mine)
    except ValidationError as exc:
        out.errors = {**exc.errors, **out.errors}
        out.message = out.message or "Not saved: correct the fields marked below. Nothing was half-saved."
        ed["confirm"] = None
    except KapError as exc:
        _refused(exc, ed, stored_version, out)
    else:
        ed.update(version=saved.version, conflict=None)  # right after the commit
        out.saved = saved


def _refused(exc: KapError, ed: dict, stored_version: int, out: Outcome) -> None:
    """A refusal other than bad input: a conflict opens the comparison, anything else is shown."""
    if isinstance(exc, notes.DraftConflict):
        ed["conflict"] = exc.their_version or stored_version
    else:
        out.failure = exc
