"""Large imports: written in short transactions, invisible until one final publish.

A large import's rows are staged as voided (reason ``doses.STAGING_REASON``), invisible to
every reader, while each chunk commits (on SQLite other users' writes get the lock in
between); one short final transaction publishes the whole batch. A crash leaves a staging
batch that the next import (or ``cleanup_abandoned_imports`` at start-up) removes. Imports of
one patient queue behind each other (the duplicate check must see the earlier one's rows).
"""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from kapnotes import audit
from kapnotes.db import lock_for_append
from kapnotes.doses import STAGING_REASON
from kapnotes.errors import ValidationError
from kapnotes.models import DoseEntry, ImportBatch
from kapnotes.timeutil import utcnow

IMPORT_LOCK_BASE = 0x4B41_7000
BATCH_COMPLETE = "complete"
STAGE_ABOVE = 2000  # rows; smaller imports write in one transaction (it is short anyway)
STAGE_CHUNKS_PER_COMMIT = 4  # 2,000 rows per short transaction
STALE_AFTER = timedelta(hours=6)  # a staging batch of another host this old is abandoned


def staging_status() -> str:
    return f"staging {socket.gethostname()[:40]} {os.getpid()}"[:64]


def _is_abandoned(batch: ImportBatch, now: datetime) -> bool:
    """A staging batch whose importing process is gone (same host: the pid no longer runs;
    another host: older than ``STALE_AFTER``)."""
    parts = (batch.status or "").split()
    if len(parts) == 3 and parts[1] == socket.gethostname()[:40] and parts[2].isdigit():
        pid = int(parts[2])
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    return now - batch.created_at > STALE_AFTER


def _staging(session: Session, patient_id: int | None = None):
    q = select(ImportBatch).where(col(ImportBatch.status).startswith("staging"))
    if patient_id is not None:
        q = q.where(ImportBatch.patient_id == patient_id)
    return session.exec(q.order_by(col(ImportBatch.id))).all()


def discard_staged(session: Session, batch_id: int, abandoned: bool = False) -> None:
    """Remove a staging batch and its rows in one short transaction (they were never visible)."""
    lock_for_append(session, IMPORT_LOCK_BASE)
    batch = session.get(ImportBatch, batch_id)
    if batch is None or not (batch.status or "").startswith("staging"):
        session.commit()
        return
    removed = session.execute(delete(DoseEntry).where(DoseEntry.import_batch_id == batch_id)
                              .execution_options(synchronize_session=False)).rowcount
    patient_id = batch.patient_id
    session.delete(batch)
    session.flush()
    if abandoned:
        audit.record(session, None, "import.abandoned", "import_batch", batch_id, patient_id,
                     detail=f"staged_rows_removed={removed}", actor_username="system")
    session.commit()


def cleanup_abandoned_imports(session: Session) -> int:
    """Remove imports a crashed process left staging (run at start-up; every import runs it too)."""
    now = utcnow()
    gone = [b.id for b in _staging(session) if _is_abandoned(b, now)]
    for batch_id in gone:
        discard_staged(session, batch_id, abandoned=True)
    return len(gone)


def wait_for_other_imports(session: Session, patient_id: int, timeout: float = 600) -> None:
    """Queue behind another import of this patient that is still staging (its rows are not yet
    visible, so the duplicate check could not see them), then take the patient's import lock."""
    deadline = time.monotonic() + timeout
    while True:
        lock_for_append(session, IMPORT_LOCK_BASE + patient_id)
        now = utcnow()
        live = [b for b in _staging(session, patient_id) if not _is_abandoned(b, now)]
        if not live:
            break
        if time.monotonic() > deadline:
            raise ValidationError({"_": "Another import for this patient is still running; try again when it "
                                        "has finished."})
        session.commit()  # releases the lock (and keeps the caller's earlier work) while we wait
        time.sleep(0.25)
    if any(True for _ in _staging(session)):
        # an abandoned batch: clean it up first (its own short transactions), then lock again
        session.commit()
        cleanup_abandoned_imports(session)
        lock_for_append(session, IMPORT_LOCK_BASE + patient_id)


def publish(session: Session, batch_id: int) -> None:
    """Make a staged batch visible at once: one UPDATE in the (short) final transaction."""
    lock_for_append(session, IMPORT_LOCK_BASE)
    session.execute(update(DoseEntry).where(DoseEntry.import_batch_id == batch_id,
                                            DoseEntry.void_reason == STAGING_REASON)
                    .values(voided_at=None, voided_by_id=None, void_reason=None)
                    .execution_options(synchronize_session=False))
    session.execute(update(ImportBatch).where(ImportBatch.id == batch_id).values(status=BATCH_COMPLETE)
                    .execution_options(synchronize_session=False))
