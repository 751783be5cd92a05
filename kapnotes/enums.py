"""The codes the tables store (roles, statuses, formulations…), apart from the tables.

Services, forms and rules compare against these without loading the schema's machinery;
``kapnotes.models`` re-exports every name, so ``from kapnotes.models import Role`` still works.
How a code reads on screen lives in ``kapnotes.vocab``, not here.
"""

from __future__ import annotations

from enum import StrEnum

from kapnotes import vocab as _vocab

# No plan, approval, override or proposal may exceed this (DESIGN.md §3), whatever the protocol says;
# a database check enforces it too (migration 0109).
HARD_MAX_DOSE_MG = 500


class Role(StrEnum):
    therapist = "therapist"
    prescriber = "prescriber"
    admin = "admin"
    auditor = "auditor"  # reads the full audit log for investigations; nothing clinical, manages nothing


class PatientStatus(StrEnum):
    active = "active"
    paused = "paused"
    discharged = "discharged"


class Formulation(StrEnum):
    odt = "odt"
    sublingual = "sublingual"
    troche = "troche"
    other = "other"


class Administration(StrEnum):
    spit = "spit"
    swallow = "swallow"


class DoseContext(StrEnum):
    home = "home"
    home_with_sitter = "home_with_sitter"
    in_session = "in_session"


class DoseSource(StrEnum):
    manual = "manual"
    import_ = "import"
    session = "session"
    patient = "patient"  # the patient's own check-in (kapnotes.checkin)


# How a source reads wherever a clinician sees it (dose log, PDFs): defined in kapnotes.vocab.
DOSE_SOURCE_WORDS = _vocab.DOSE_SOURCE_WORDS
assert set(DOSE_SOURCE_WORDS) == {s.value for s in DoseSource}


class PlanStatus(StrEnum):
    active = "active"
    held = "held"
    ended = "ended"


class Instrument(StrEnum):
    gad7 = "GAD-7"
    phq9 = "PHQ-9"


class NoteType(StrEnum):
    preparation = "preparation"
    dosing = "dosing"
    integration = "integration"
    check_in = "check_in"


class NoteStatus(StrEnum):
    draft = "draft"
    signed = "signed"


class Modality(StrEnum):
    in_person = "in_person"
    telehealth = "telehealth"


class AdjustmentKind(StrEnum):
    suggestion = "suggestion"  # from the rules engine
    proposal = "proposal"  # from a therapist


class AdjustmentStatus(StrEnum):
    open = "open"  # engine output not (yet) sent to the prescriber
    pending = "pending"  # in the prescriber's queue
    approved = "approved"
    modified = "modified"
    rejected = "rejected"
    superseded = "superseded"  # a newer engine run replaced it before review
    withdrawn = "withdrawn"
