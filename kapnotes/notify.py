"""Notifications: nobody has to go looking for urgent items or decisions (issue 13 §5).

Placeholder interface; filled in by the notifications work.
"""

from __future__ import annotations


def urgent_item_created(session, patient_id: int) -> None:
    """Called by ``suggestions`` inside the transaction that made an urgent queue item."""
    return None
