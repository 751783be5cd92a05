"""In-process domain events, so features react to each other without importing each other.

Producers call ``emit(session, event, actor, **payload)`` inside their transaction:
- ``"dose.changed"`` (patient_id, dose_id) — a dose entry added, edited, voided or imported
- ``"assessment.changed"`` (patient_id, assessment_id)
- ``"note.signed"`` (patient_id, note_id, note_type)
Each module named in ``LISTENER_MODULES`` defines ``handle(session, event, actor, payload)``.
A listener's failure rolls back the producer's transaction: nothing half-done.
"""

from __future__ import annotations

import importlib
from typing import Any

LISTENER_MODULES: tuple[str, ...] = (
    "kapnotes.dosing.suggestions",
)


def emit(session, event: str, actor, **payload: Any) -> None:
    for name in LISTENER_MODULES:
        importlib.import_module(name).handle(session, event, actor, payload)
