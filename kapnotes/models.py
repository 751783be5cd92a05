"""The schema: every noun of DESIGN.md §2.

Conventions:
- Datetimes are stored as UTC and come back timezone-aware (``UTCDateTime``).
- Clinical rows are never hard-deleted: dose entries and assessments are voided
  with a reason; plans and audit events are append-only.
- Rows two people may edit at once carry ``version`` for optimistic locking
  (a stale writer gets ``StaleDataError``, turned into ``ConflictError``).
- ``table=True`` models skip Pydantic validation, so services validate input
  with separate models before it reaches these.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Optional

from sqlalchemy import JSON, CheckConstraint, Column, ForeignKey, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# The codes and column types live in their own modules; callers import them from here, with the tables.
from kapnotes.column_types import UTCDateTime, Versioned, json_field, text_field, utc_field  # noqa: F401
from kapnotes.enums import (  # noqa: F401
    DOSE_SOURCE_WORDS,
    HARD_MAX_DOSE_MG,
    AdjustmentKind,
    AdjustmentStatus,
    Administration,
    DoseContext,
    DoseSource,
    Formulation,
    Instrument,
    Modality,
    NoteStatus,
    NoteType,
    PatientStatus,
    PlanStatus,
    Role,
)

# --- people and teams ---------------------------------------------------------


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    full_name: str = Field(max_length=200)
    credentials: str = Field(default="", max_length=64)  # e.g. "LMFT", "MD"
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    failed_logins: int = Field(default=0)
    locked_until: Optional[datetime] = utc_field()
    last_login_at: Optional[datetime] = utc_field()
    created_at: datetime = utc_field(nullable=False, default_now=True)
    # where urgent-item notices go (optional; the message never carries patient information)
    email: Optional[str] = Field(default=None, max_length=254)
    # when the user last looked at the decisions on items they sent (therapist's "since your last visit")
    decisions_seen_at: Optional[datetime] = utc_field()
    # second factor (TOTP, RFC 6238): the base32 secret is set at enrolment and is never shown
    # again once confirmed; ``totp_enabled_at`` None with a secret means "enrolment not confirmed"
    totp_secret: Optional[str] = Field(default=None, max_length=64)
    totp_enabled_at: Optional[datetime] = utc_field()
    totp_last_step: Optional[int] = Field(default=None)  # the last accepted 30-s step: no code is used twice
    # an admin reset the password to a temporary one: sign-in asks for a new one before anything else
    must_change_password: bool = Field(default=False)


class UserSession(SQLModel, table=True):
    """A signed-in browser. Only the SHA-256 of the cookie's random id is kept, so a copy of
    the database cannot be replayed as a cookie; revoking the row ends the session at once."""

    __tablename__ = "user_sessions"

    id: Optional[int] = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    last_seen_at: datetime = utc_field(nullable=False, default_now=True)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=255)
    revoked_at: Optional[datetime] = utc_field()
    revoked_reason: Optional[str] = Field(default=None, max_length=32)


class RecoveryCode(SQLModel, table=True):
    """A single-use second-factor code for a lost phone. Only ``salt$sha256(salt+code)`` is kept."""

    __tablename__ = "recovery_codes"

    id: Optional[int] = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    code_hash: str = Field(max_length=128)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    used_at: Optional[datetime] = utc_field()


class CareTeam(SQLModel, table=True):
    __tablename__ = "care_teams"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    created_at: datetime = utc_field(nullable=False, default_now=True)


class CareTeamMember(SQLModel, table=True):
    __tablename__ = "care_team_members"

    team_id: int = Field(foreign_key="care_teams.id", primary_key=True)
    user_id: int = Field(foreign_key="users.id", primary_key=True, index=True)
    added_at: datetime = utc_field(nullable=False, default_now=True)


class Patient(Versioned, SQLModel, table=True):
    __tablename__ = "patients"

    id: Optional[int] = Field(default=None, primary_key=True)
    mrn: str = Field(max_length=64, unique=True, index=True)
    full_name: str = Field(max_length=200, index=True)
    date_of_birth: date
    diagnosis: str = Field(default="F41.1", max_length=16)  # ICD-10
    status: str = Field(default=PatientStatus.active, max_length=16)
    care_team_id: int = Field(foreign_key="care_teams.id", index=True)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    version: int = Field(default=1)


# --- treatment ------------------------------------------------------------------


class TreatmentPlan(SQLModel, table=True):
    """One version of a patient's plan. Append-only: a change is a new row."""

    __tablename__ = "treatment_plans"
    __table_args__ = (
        UniqueConstraint("patient_id", "version_number", name="uq_plan_version"),
        # the hard maximum (DESIGN.md §3): no path, not even an ad-hoc script, stores more
        CheckConstraint(f"dose_mg > 0 AND dose_mg <= {HARD_MAX_DOSE_MG}", name="ck_plan_dose_hard_max"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    version_number: int
    formulation: str = Field(max_length=16)
    dose_mg: float
    interval_days: int
    minutes_in_mouth: int = Field(default=10)
    administration: str = Field(default=Administration.spit, max_length=16)
    fasting_instructions: str = Field(default="No food for 3 hours and no drink for 1 hour before dosing.")
    instructions: Optional[str] = text_field()
    status: str = Field(default=PlanStatus.active, max_length=16)
    effective_from: datetime = utc_field(nullable=False)
    created_at: datetime = utc_field(nullable=False, default_now=True)
    approved_by_id: int = Field(foreign_key="users.id")
    rationale: Optional[str] = text_field()
    # use_alter: plans and adjustments point at each other.
    adjustment_id: Optional[int] = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("dose_adjustments.id", use_alter=True, name="fk_plan_adjustment")),
    )


class ImportBatch(SQLModel, table=True):
    __tablename__ = "import_batches"

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    filename: str = Field(max_length=255)
    imported_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = utc_field(nullable=False, default_now=True)
    rows_total: int = 0
    rows_imported: int = 0
    rows_duplicate: int = 0
    rows_invalid: int = 0
    undone_at: Optional[datetime] = utc_field()
    undone_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    # migration 0112: "staging" while a long import writes in short transactions (its rows are
    # invisible to every reader), "complete" once one short final transaction publishes them.
    status: str = Field(default="complete", max_length=16)


class DoseEntry(Versioned, SQLModel, table=True):
    """One dose taken. Field order follows the canonical CSV columns."""

    __tablename__ = "dose_entries"
    __table_args__ = (Index("ix_dose_patient_taken", "patient_id", "taken_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id")
    plan_id: Optional[int] = Field(default=None, foreign_key="treatment_plans.id")
    taken_at: datetime = utc_field(nullable=False)
    dose_mg: float
    formulation: str = Field(max_length=16)
    administration: Optional[str] = Field(default=None, max_length=16)
    context: str = Field(default=DoseContext.home, max_length=24)
    anxiety_before: Optional[int] = None
    anxiety_after: Optional[int] = None
    dissociation: Optional[int] = None
    nausea: Optional[int] = None
    vomited: bool = False
    bp_systolic_pre: Optional[int] = None
    bp_diastolic_pre: Optional[int] = None
    bp_systolic_post: Optional[int] = None
    bp_diastolic_post: Optional[int] = None
    heart_rate: Optional[int] = None
    adverse_events: str = Field(default="")  # ';'-separated tags
    notes: Optional[str] = text_field()
    source: str = Field(default=DoseSource.manual, max_length=16)
    import_batch_id: Optional[int] = Field(default=None, foreign_key="import_batches.id", index=True)
    session_note_id: Optional[int] = Field(default=None, foreign_key="session_notes.id", index=True)
    entered_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = utc_field(nullable=False, default_now=True)
    voided_at: Optional[datetime] = utc_field()
    voided_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    void_reason: Optional[str] = text_field()
    version: int = Field(default=1)


class Assessment(SQLModel, table=True):
    __tablename__ = "assessments"
    __table_args__ = (
        Index("ix_assessment_patient_instr_date", "patient_id", "instrument", "administered_on"),
        Index("ix_assessment_session_note", "session_note_id"),  # migration 0107: scores linked to notes
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id")
    instrument: str = Field(max_length=8)
    administered_on: date
    items: Optional[list[int]] = Field(default=None, sa_column=Column(JSON, nullable=True))
    total: int
    band: str = Field(max_length=32)
    item9: Optional[int] = None  # PHQ-9 item 9 (thoughts of self-harm), kept apart for the safety flag
    loinc_panel: str = Field(max_length=16)
    loinc_total: str = Field(max_length=16)
    session_note_id: Optional[int] = Field(default=None, foreign_key="session_notes.id")
    entered_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = utc_field(nullable=False, default_now=True)
    voided_at: Optional[datetime] = utc_field()
    voided_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    void_reason: Optional[str] = text_field()


# --- notes --------------------------------------------------------------------


class SessionNote(Versioned, SQLModel, table=True):
    """Draft → signed (immutable; a database trigger refuses content changes)."""

    __tablename__ = "session_notes"
    __table_args__ = (
        Index("ix_note_patient_date", "patient_id", "session_date"),
        # migration 0107: "this patient's signed notes" (SQLite would otherwise pick the status index)
        Index("ix_note_patient_status_date", "patient_id", "status", "session_date"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id")
    author_id: int = Field(foreign_key="users.id", index=True)
    note_type: str = Field(max_length=16)
    status: str = Field(default=NoteStatus.draft, max_length=16, index=True)
    session_date: date
    start_time: Optional[str] = Field(default=None, max_length=5)  # "HH:MM", clinic time
    end_time: Optional[str] = Field(default=None, max_length=5)
    modality: str = Field(default=Modality.in_person, max_length=16)
    fields: dict = json_field()
    free_text: Optional[str] = text_field()
    carried_over_from_id: Optional[int] = Field(default=None, foreign_key="session_notes.id")
    # use_alter: notes and dose entries point at each other.
    integrates_dose_id: Optional[int] = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("dose_entries.id", use_alter=True, name="fk_note_integrates_dose")),
    )
    created_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)
    updated_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    signed_at: Optional[datetime] = utc_field()
    signed_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    content_hash: Optional[str] = Field(default=None, max_length=64)
    # migration 0112: HMAC-SHA-256 under the signing key (outside the database) and its key id
    signature_mac: Optional[str] = Field(default=None, max_length=64)
    signature_key_id: Optional[str] = Field(default=None, max_length=32)
    version: int = Field(default=1)


class Addendum(SQLModel, table=True):
    __tablename__ = "addenda"

    id: Optional[int] = Field(default=None, primary_key=True)
    note_id: int = Field(foreign_key="session_notes.id", index=True)
    author_id: int = Field(foreign_key="users.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = utc_field(nullable=False, default_now=True)
    signed_at: datetime = utc_field(nullable=False, default_now=True)
    content_hash: str = Field(max_length=64)
    # migration 0112: HMAC-SHA-256 under the signing key (outside the database) and its key id
    signature_mac: Optional[str] = Field(default=None, max_length=64)
    signature_key_id: Optional[str] = Field(default=None, max_length=32)


class ProcessNote(Versioned, SQLModel, table=True):
    """A therapist's private psychotherapy notes (HIPAA 164.501): author-only, never exported."""

    __tablename__ = "process_notes"
    __table_args__ = (Index("ix_process_author_patient", "author_id", "patient_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id")
    author_id: int = Field(foreign_key="users.id")
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = utc_field(nullable=False, default_now=True)
    updated_at: datetime = utc_field(nullable=False, default_now=True)
    version: int = Field(default=1)


# --- dose adjustments -------------------------------------------------------------


class DoseAdjustment(Versioned, SQLModel, table=True):
    """A suggestion (engine) or proposal (therapist), and the prescriber's decision."""

    __tablename__ = "dose_adjustments"
    __table_args__ = (
        Index("ix_adjustment_patient_status", "patient_id", "status"),
        Index("ix_adjustment_status_urgent", "status", "urgent"),
        CheckConstraint(f"proposed_dose_mg IS NULL OR proposed_dose_mg <= {HARD_MAX_DOSE_MG}",
                        name="ck_adjustment_proposed_hard_max"),
        CheckConstraint(f"decided_dose_mg IS NULL OR decided_dose_mg <= {HARD_MAX_DOSE_MG}",
                        name="ck_adjustment_decided_hard_max"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id")
    kind: str = Field(max_length=16)
    status: str = Field(default=AdjustmentStatus.open, max_length=16, index=True)
    plan_id: Optional[int] = Field(default=None, foreign_key="treatment_plans.id")
    action: str = Field(max_length=24)
    proposed_dose_mg: Optional[float] = None
    proposed_interval_days: Optional[int] = None
    flags: list = json_field(list)
    reasons: list = json_field(list)
    facts: dict = json_field()
    protocol_name: Optional[str] = Field(default=None, max_length=120)
    protocol_hash: Optional[str] = Field(default=None, max_length=64)
    as_of: Optional[datetime] = utc_field()
    created_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    created_at: datetime = utc_field(nullable=False, default_now=True)
    therapist_note: Optional[str] = text_field()
    source_note_id: Optional[int] = Field(default=None, foreign_key="session_notes.id")
    sent_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    sent_at: Optional[datetime] = utc_field()
    decided_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    decided_at: Optional[datetime] = utc_field()
    decision_rationale: Optional[str] = text_field()
    decided_dose_mg: Optional[float] = None
    decided_interval_days: Optional[int] = None
    resulting_plan_id: Optional[int] = Field(default=None, foreign_key="treatment_plans.id")
    # every rule of the engine with its status (fired / passed / not_evaluable) and text
    checks: list = json_field(list)
    # hold/decrease/review reach the prescriber at once, marked urgent (no forwarding)
    urgent: bool = Field(default=False)
    # what the patient's record looked like when the item was made (stale when it differs now)
    facts_key: Optional[str] = Field(default=None, max_length=64)
    # a decision toward more drug while a safety rule fires, or off the protocol's steps,
    # intervals or above its ceiling: the conditions overridden and the prescriber's reason
    override_rules: list = json_field(list)
    override_rationale: Optional[str] = text_field()
    version: int = Field(default=1)


# --- audit and settings -------------------------------------------------------------


class AuditEvent(SQLModel, table=True):
    """Who did what to which record. Never clinical text. Hash-chained."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_patient_at", "patient_id", "at"),
        Index("ix_audit_actor_at", "actor_id", "at"),
        Index("ix_audit_actor_username", "actor_username"),  # migration 0108: the log's user filter
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = utc_field(nullable=False, index=True)
    actor_id: Optional[int] = Field(default=None, foreign_key="users.id")
    actor_username: str = Field(default="", max_length=64)
    action: str = Field(max_length=48, index=True)
    record_type: str = Field(default="", max_length=32)
    record_id: Optional[str] = Field(default=None, max_length=64)
    patient_id: Optional[int] = Field(default=None, foreign_key="patients.id")
    detail: str = Field(default="", max_length=255)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


class ClinicSetting(SQLModel, table=True):
    """Small clinic-wide settings (e.g. the CSV column mapping, the protocol file)."""

    __tablename__ = "clinic_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: dict = json_field()
    updated_at: datetime = utc_field(nullable=False, default_now=True)
    updated_by_id: Optional[int] = Field(default=None, foreign_key="users.id")


# --- patient check-in (issue 15) -----------------------------------------------------


class CheckinLink(SQLModel, table=True):
    """A patient's check-in link: only the SHA-256 of its token is stored (the link itself
    cannot be rebuilt from the database), bound to one patient, expiring, revocable."""

    __tablename__ = "checkin_links"

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patients.id", index=True)
    token_hash: str = Field(max_length=64, unique=True)
    created_by_id: int = Field(foreign_key="users.id")
    created_at: datetime = utc_field(nullable=False, default_now=True)
    expires_at: datetime = utc_field(nullable=False)
    ask_scales: bool = Field(default=False)  # the clinician asked for the GAD-7 and PHQ-9 now
    revoked_at: Optional[datetime] = utc_field()
    revoked_by_id: Optional[int] = Field(default=None, foreign_key="users.id")
    last_used_at: Optional[datetime] = utc_field()
    use_count: int = Field(default=0)


class CheckinSubmission(SQLModel, table=True):
    """One submitted check-in; ``nonce`` (one per form render) makes a resubmit a no-op."""

    __tablename__ = "checkin_submissions"

    id: Optional[int] = Field(default=None, primary_key=True)
    link_id: int = Field(foreign_key="checkin_links.id", index=True)
    nonce: str = Field(max_length=64, unique=True)
    dose_entry_id: Optional[int] = Field(default=None, foreign_key="dose_entries.id")
    assessment_ids: list = json_field(list)
    crisis: bool = Field(default=False)
    created_at: datetime = utc_field(nullable=False, default_now=True)


# --- state every app process must see (issue 19: several processes behind one balancer) ---------


class AuthFlow(SQLModel, table=True):
    """A sign-in between two requests: a right password whose code is still to come, or a single
    sign-on flow between the redirect to the provider and its answer. In the database, not one
    process's memory, so the next request may land on any process. Only the SHA-256 of the
    browser's random id is kept; ``expires_at`` bounds its life (rows past it are ignored and pruned)."""

    __tablename__ = "auth_flows"

    key_hash: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # "sign_in" (the steps after a password) or "oidc"
    data: dict = json_field(dict)
    expires_at: datetime = utc_field(nullable=False, index=True)


class ThrottleState(SQLModel, table=True):
    """Failures in a row per key (a source address, an unknown username) and when the next
    attempt may be checked: the growing sign-in delays, shared by every process."""

    __tablename__ = "throttle_states"

    kind: str = Field(primary_key=True, max_length=32)
    key: str = Field(primary_key=True, max_length=128)
    failures: int = Field(default=0)
    last_at: datetime = utc_field(nullable=False, index=True)
    until_at: datetime = utc_field(nullable=False)


class ThrottleEvent(SQLModel, table=True):
    """One counted failure (a failed sign-in, a wrong check-in token) per key, for limits over a
    sliding window (e.g. 10 in 10 minutes per address), shared by every process."""

    __tablename__ = "throttle_events"
    __table_args__ = (Index("ix_throttle_events_kind_key_at", "kind", "key", "at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    key: str = Field(max_length=128)
    at: datetime = utc_field(nullable=False)
