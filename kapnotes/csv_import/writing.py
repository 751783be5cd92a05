"""``import_doses``: a parsed file into the dose log, as one ``ImportBatch``, all or nothing.

Any invalid row means nothing is written unless ``skip_invalid``; rows already in the log
(same patient, ``taken_at`` to the second, ``dose_mg``) are skipped and counted. A small
import is one transaction; a large one is staged (``staging``) and published at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import insert
from sqlmodel import Session, col, select

from kapnotes import audit, events
from kapnotes.access import require_patient
from kapnotes.actor import Actor
from kapnotes.csv_import.parsed import ImportRejected, ParsedFile, RowError
from kapnotes.csv_import.staging import (
    BATCH_COMPLETE,
    STAGE_ABOVE,
    STAGE_CHUNKS_PER_COMMIT,
    discard_staged,
    publish,
    staging_status,
    wait_for_other_imports,
)
from kapnotes.dose_columns import CSV_COLUMNS
from kapnotes.doses import STAGING_REASON, DoseInput, _clean, active_filter
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import CareTeamMember, DoseEntry, DoseSource, ImportBatch, Patient, Role, TreatmentPlan, User
from kapnotes.timeutil import utcnow

WRITE_CHUNK = 500
Progress = Callable[[str, int, int], None]
Key = tuple[str, float]


@dataclass
class ImportResult:
    batch_id: int | None
    total: int
    imported: int
    duplicates: int
    invalid: int
    dry_run: bool
    errors: list[RowError] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)

    def describe(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        return (f"{verb} {self.imported}, duplicates skipped {self.duplicates}, invalid {self.invalid} "
                f"(of {self.total} rows)")


def patient_by_mrn(session: Session, mrn: str) -> Patient:
    patient = session.exec(select(Patient).where(Patient.mrn == mrn.strip())).first()
    if patient is None:
        raise ValidationError({"patient": f"No patient with MRN {mrn.strip()!r}."})
    return patient


def default_importer(session: Session, patient: Patient) -> User:
    """For the operator's CLI without ``--user``: the care team's therapist."""
    user = session.exec(
        select(User).join(CareTeamMember, CareTeamMember.user_id == User.id)
        .where(CareTeamMember.team_id == patient.care_team_id, User.role == Role.therapist.value,
               User.is_active == True)  # noqa: E712
        .order_by(User.id)
    ).first()
    if user is None:
        raise ValidationError({"user": "The patient's care team has no active therapist; name one with --user."})
    return user


def _key(taken_at: datetime, dose_mg: float) -> Key:
    # plain datetime arithmetic (aware datetimes only): 7x faster than pandas for 200,000 rows
    return taken_at.astimezone(timezone.utc).replace(microsecond=0).isoformat(), round(float(dose_mg), 3)


def import_doses(
    session: Session,
    actor: Actor | None,
    patient_id: int,
    parsed: ParsedFile,
    filename: str,
    skip_invalid: bool = False,
    dry_run: bool = False,
    entered_by_id: int | None = None,
    progress: Progress | None = None,
) -> ImportResult:
    """Write the parsed rows as one batch, in the caller's transaction.

    ``actor`` None is the operator's CLI, which names the user in ``entered_by_id``.
    A dry run reads (to count duplicates) and writes nothing.
    """
    # cleaned and keyed before the first query, so no transaction (or SQLite lock) waits for it
    prepared = [] if parsed.file_error else [(_key(d.taken_at, d.dose_mg), d) for d in
                                             (_clean(dose) for _, dose in parsed.rows)]
    entered_by_id = _recorded_for(session, actor, patient_id, entered_by_id)
    if parsed.file_error or (parsed.errors and not skip_invalid):
        raise ImportRejected(parsed)
    if not dry_run:
        wait_for_other_imports(session, patient_id)  # takes the patient's import lock; imports of one patient queue
    fresh, duplicates = _new_rows(session, patient_id, parsed, prepared)
    invalid = len(parsed.invalid_rows)
    result = ImportResult(None, parsed.total_rows, len(fresh), duplicates, invalid, dry_run,
                          list(parsed.errors), list(parsed.extra_columns))
    if dry_run:
        return result
    batch = ImportBatch(patient_id=patient_id, filename=Path(filename).name[:255] or "upload.csv",
                        imported_by_id=entered_by_id, rows_total=parsed.total_rows, rows_imported=len(fresh),
                        rows_duplicate=duplicates, rows_invalid=invalid,
                        status=staging_status() if len(fresh) > STAGE_ABOVE else BATCH_COMPLETE)
    session.add(batch)
    session.flush()
    result.batch_id = batch_id = batch.id  # kept: a staged import commits, which expires ``batch``
    _write(session, batch, fresh, progress)
    audit.record(session, actor, "import.batch", "import_batch", batch_id, patient_id,
                 detail=f"imported={len(fresh)} duplicates={duplicates} invalid={invalid}",
                 actor_username=None if actor else "cli")
    events.emit(session, "dose.changed", actor, patient_id=patient_id, dose_id=None)
    return result


def _recorded_for(session: Session, actor: Actor | None, patient_id: int, entered_by_id: int | None) -> int:
    """The user the rows are entered by: the actor (who must be on the patient's team), or the
    user the operator's CLI names."""
    if actor is not None:
        require_patient(session, actor, patient_id)
        return actor.id
    if entered_by_id is None:
        raise PermissionDenied("An import must name the user it is recorded for.")
    if session.get(Patient, patient_id) is None:
        raise ValidationError({"patient": "No such patient."})
    return entered_by_id


def _new_rows(session: Session, patient_id: int, parsed: ParsedFile,
              prepared: list[tuple[Key, DoseInput]]) -> tuple[list[DoseInput], int]:
    """The rows not yet in the log (nor twice in the file), and how many were duplicates."""
    existing: set[Key] = set()
    if parsed.rows:
        lo = min(d.taken_at for _, d in parsed.rows)
        hi = max(d.taken_at for _, d in parsed.rows)
        for t, mg in session.exec(
            select(DoseEntry.taken_at, DoseEntry.dose_mg).where(
                DoseEntry.patient_id == patient_id, active_filter(),
                DoseEntry.taken_at >= lo.replace(microsecond=0), DoseEntry.taken_at <= hi)
        ).all():
            existing.add(_key(t, mg))
    fresh: list[DoseInput] = []
    duplicates = 0
    for k, dose in prepared:
        if k in existing:
            duplicates += 1
            continue
        existing.add(k)
        fresh.append(dose)
    return fresh, duplicates


def _write(session: Session, batch: ImportBatch, fresh: list[DoseInput], progress: Progress | None) -> None:
    """Insert the batch's rows in chunks; a staged batch commits as it goes and is published at the end
    (or discarded, on any failure)."""
    staged = batch.status != BATCH_COMPLETE
    plan_starts = session.exec(
        select(TreatmentPlan.effective_from, TreatmentPlan.id).where(TreatmentPlan.patient_id == batch.patient_id)
        .order_by(col(TreatmentPlan.version_number))
    ).all()
    now = utcnow()
    hidden = {"voided_at": now, "voided_by_id": batch.imported_by_id, "void_reason": STAGING_REASON} if staged else {
        "voided_at": None, "voided_by_id": None, "void_reason": None}
    fixed = {"patient_id": batch.patient_id, "source": DoseSource.import_.value, "import_batch_id": batch.id,
             "session_note_id": None, "entered_by_id": batch.imported_by_id, "created_at": now, **hidden,
             "version": 1}
    batch_id = batch.id
    try:
        if staged:
            session.commit()
        for start in range(0, len(fresh), WRITE_CHUNK):
            values = [{**{c: getattr(d, c) for c in CSV_COLUMNS}, "plan_id": _plan_of(plan_starts, d.taken_at),
                       **fixed} for d in fresh[start:start + WRITE_CHUNK]]
            session.execute(insert(DoseEntry.__table__), values)
            if staged and (start // WRITE_CHUNK) % STAGE_CHUNKS_PER_COMMIT == STAGE_CHUNKS_PER_COMMIT - 1:
                session.commit()
            if progress:
                progress("writing", min(start + WRITE_CHUNK, len(fresh)), len(fresh))
        if staged:
            session.commit()
            publish(session, batch_id)
    except BaseException:
        if staged:
            session.rollback()
            discard_staged(session, batch_id)
        raise


def _plan_of(plan_starts, taken_at: datetime) -> int | None:
    """The plan version in effect when the dose was taken (the last one that started before it)."""
    plan_id = None
    for eff, pid in plan_starts:
        if eff <= taken_at:
            plan_id = pid
    return plan_id
