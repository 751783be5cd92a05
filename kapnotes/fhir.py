"""FHIR R4 export: one Bundle (type ``collection``) per patient, as plain JSON dicts.

Why plain dicts: the app needs no FHIR library at run time; the tests validate every
resource with ``fhir.resources.R4B`` (R4's structure for these resources).

What a Bundle holds (and why this shape):
- Patient (MRN as a ``MR`` identifier), a Practitioner for every clinician the record
  names, and the CareTeam.
- Observation per GAD-7 (LOINC 70274-6) and PHQ-9 (44261-6) total, item answers as
  components (item LOINC codes, answers as LOINC answer codes LA6568-5..LA6571-9), category
  ``survey``; per dose, blood pressure as the 85354-9 panel (8480-6 / 8462-4, ``mm[Hg]``)
  before and after, and heart rate 8867-4 (``/min``), ``partOf`` the dose.
- MedicationAdministration per dose-log entry (ketamine, RxNorm 6130, dose in ``mg``);
  voided entries are ``entered-in-error``. Route (SNOMED CT): sublingual tablet →
  37161004 *Sublingual route*; ODT and troche (held in the mouth, then spat or swallowed)
  → 372473007 *Oromucosal route*; other → 26643006 *Oral route*. The patient is always the
  performer (self-administered); a dose entered by the clinic in a session also names the
  clinician as ``witness``. Who reported it is a ``meta.tag`` (patient-reported for home
  doses and imports, clinic-entered for in-session doses).
- MedicationRequest per plan version (intent ``order``; status active / on-hold / stopped;
  a superseded version is ``stopped``; requester = the approving prescriber;
  ``priorPrescription`` = the version before) and per undecided suggestion or proposal
  (intent ``proposal``; ``draft`` until sent to the prescriber, then ``active``).
- DocumentReference per signed note: the note PDF (the existing note builder) as base64
  attachment; R4's ``Attachment.hash`` is SHA-1 by definition, so the PDF's SHA-256 is an
  extension on the attachment. A Provenance per note records the signature (who, when, and
  the note's content hash). Drafts and private process notes are never read here.

Every ``fullUrl`` is ``urn:uuid:`` (a UUID5 of the record, so the same record has the same
id in every export) and every reference points at an entry of the same Bundle.
Times are UTC with an explicit offset.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from kapnotes import audit
from kapnotes.actor import Actor
from kapnotes.exports import file_stem, patient_for_export, prepare_note, render_note
from kapnotes.fhir_resources import (  # noqa: F401 - re-exported: the codes a reader of a Bundle checks
    INSTRUMENTS,
    KAP,
    LOINC,
    RXNORM,
    SNOMED,
    UCUM,
    adjustment_resource,
    assessment_resource,
    care_team_resource,
    dose_resource,
    entry,
    instant,
    note_resources,
    patient_resource,
    plan_resource,
    practitioner_resource,
    vital_resources,
)
from kapnotes.models import (
    AdjustmentStatus,
    Assessment,
    CareTeam,
    CareTeamMember,
    DoseAdjustment,
    DoseEntry,
    NoteStatus,
    SessionNote,
    TreatmentPlan,
    User,
)
from kapnotes.timeutil import utcnow

# --- the bundle -------------------------------------------------------------------------------


@dataclass
class _Record:
    """Every row of the patient's record that goes into the Bundle."""

    members: list[User]
    doses: list[DoseEntry]
    scores: list[Assessment]
    plans: list[TreatmentPlan]
    pending: list[DoseAdjustment]
    notes: list[SessionNote]


def _read_record(session: Session, patient) -> _Record:
    pid = patient.id
    members = session.exec(
        select(User).join(CareTeamMember, CareTeamMember.user_id == User.id)
        .where(CareTeamMember.team_id == patient.care_team_id).order_by(User.role, User.id))
    doses = session.exec(select(DoseEntry).where(DoseEntry.patient_id == pid)
                         .order_by(DoseEntry.taken_at, DoseEntry.id))
    scores = session.exec(select(Assessment).where(Assessment.patient_id == pid)
                          .order_by(Assessment.administered_on, Assessment.id))
    plans = session.exec(select(TreatmentPlan).where(TreatmentPlan.patient_id == pid)
                         .order_by(TreatmentPlan.version_number))
    pending = session.exec(
        select(DoseAdjustment).where(DoseAdjustment.patient_id == pid,
                                     col(DoseAdjustment.status).in_([AdjustmentStatus.open.value,
                                                                     AdjustmentStatus.pending.value]))
        .order_by(DoseAdjustment.created_at, DoseAdjustment.id))
    notes = session.exec(  # signed notes only; private process notes live in another table, never read
        select(SessionNote).where(SessionNote.patient_id == pid, SessionNote.status == NoteStatus.signed)
        .order_by(SessionNote.session_date, SessionNote.id))
    return _Record(*(list(rows.all()) for rows in (members, doses, scores, plans, pending, notes)))


def _users(session: Session, rec: _Record) -> dict[int, User]:
    """Every clinician the record names, by id."""
    people = {m.id for m in rec.members}
    people |= {d.entered_by_id for d in rec.doses} | {a.entered_by_id for a in rec.scores}
    people |= {p.approved_by_id for p in rec.plans} | {a.created_by_id for a in rec.pending if a.kind == "proposal"}
    people |= {n.author_id for n in rec.notes} | {n.signed_by_id for n in rec.notes}
    people.discard(None)
    if not people:
        return {}
    return {u.id: u for u in session.exec(select(User).where(col(User.id).in_(people))).all()}


def _note_pdf(session: Session, actor: Actor | None, note_id: int, as_operator: bool) -> bytes:
    meta, info, data = prepare_note(session, actor, note_id, as_operator=as_operator, record=False)
    return render_note(meta, info, data, invariant=True)


def _clinical_entries(patient, rec: _Record) -> list[dict]:
    """Scores, doses with their vitals, plan versions and undecided proposals."""
    entries = [entry("Observation", f"assessment/{a.id}", assessment_resource(a, patient))
               for a in rec.scores if a.instrument in INSTRUMENTS]
    for d in rec.doses:
        entries.append(entry("MedicationAdministration", d.id, dose_resource(d, patient)))
        entries += [entry("Observation", key, res) for key, res in vital_resources(d, patient)]
    plans = rec.plans
    for i, p in enumerate(plans):
        entries.append(entry("MedicationRequest", f"plan/{p.id}",
                             plan_resource(p, patient, plans[i - 1] if i else None, latest=i == len(plans) - 1)))
    plan_ids = {p.id for p in plans}
    current = plans[-1] if plans else None
    entries += [entry("MedicationRequest", f"adjustment/{a.id}", adjustment_resource(a, patient, plan_ids, current))
                for a in rec.pending]
    return entries


def build_bundle(session: Session, actor: Actor | None, patient_id: int, *, as_operator: bool = False,
                 generated_at: datetime | None = None, record: bool = True) -> dict:
    """The patient's Bundle. Checks access; (``record``) audits ``export.fhir`` with counts."""
    patient = patient_for_export(session, actor, patient_id, as_operator)  # the exports' one access rule
    team = session.get(CareTeam, patient.care_team_id)
    rec = _read_record(session, patient)
    users = _users(session, rec)

    entries = [entry("Patient", patient.id, patient_resource(patient))]
    entries += [entry("Practitioner", uid, practitioner_resource(users[uid])) for uid in sorted(users)]
    if team is not None:
        entries.append(entry("CareTeam", team.id, care_team_resource(team, patient, rec.members)))
    entries += _clinical_entries(patient, rec)
    for n in rec.notes:
        doc, prov = note_resources(n, patient, _note_pdf(session, actor, n.id, as_operator))
        entries.append(entry("DocumentReference", n.id, doc))
        entries.append(entry("Provenance", f"note/{n.id}", prov))

    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant(generated_at or utcnow())},
        "identifier": {"system": f"{KAP}/export", "value": str(uuid.uuid4())},
        "type": "collection",
        "timestamp": instant(generated_at or utcnow()),
        "entry": entries,
    }
    if record:
        counts = bundle_counts(bundle)
        audit.record(session, actor, "export.fhir", "patient", patient.id, patient.id,
                     detail=";".join(f"{k}={v}" for k, v in counts.items()))
    return bundle


def bundle_counts(bundle: dict) -> dict[str, int]:
    """Resources per type (Observations split into scores and vitals): what a reader can check."""
    counts: dict[str, int] = {}
    for e in bundle.get("entry", []):
        r = e["resource"]
        kind = r["resourceType"]
        if kind == "Observation":
            cat = r["category"][0]["coding"][0]["code"]
            kind = "Score" if cat == "survey" else "Vital"
        elif kind == "MedicationRequest":
            kind = "PlanVersion" if r["intent"] == "order" else "Proposal"
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def unresolved_references(bundle: dict) -> list[str]:
    """Every ``reference`` in the Bundle that does not name one of its entries' fullUrl."""
    urls = {e["fullUrl"] for e in bundle.get("entry", [])}
    missing: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            r = node.get("reference")
            if isinstance(r, str) and r not in urls:
                missing.append(r)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for e in bundle.get("entry", []):
        walk(e["resource"])
    return missing


def file_name(mrn: str) -> str:
    return file_stem(mrn).replace("summary-", "fhir-", 1) + ".json"


__all__ = ["build_bundle", "bundle_counts", "file_name", "unresolved_references"]
