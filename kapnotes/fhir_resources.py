"""The FHIR R4 resources of a patient's record, one builder per kind, as plain dicts.

The codes (LOINC, SNOMED CT, RxNorm, UCUM) and why each was chosen are in ``kapnotes.fhir``'s
docstring; ``kapnotes.fhir`` assembles these into the Bundle.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import date, datetime, timezone

from kapnotes.models import (
    AdjustmentStatus,
    Assessment,
    CareTeam,
    DoseAdjustment,
    DoseContext,
    DoseEntry,
    DoseSource,
    Patient,
    PlanStatus,
    SessionNote,
    TreatmentPlan,
    User,
)

NAMESPACE = uuid.UUID("6b1c3e0a-5d0e-4f4e-9a55-4b4150464849")
KAP = "https://kapnotes.example/fhir"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
PERFORM_FUNCTION = "http://terminology.hl7.org/CodeSystem/med-admin-perform-function"
ADMIN_CATEGORY = "http://terminology.hl7.org/CodeSystem/medication-admin-category"
SHA256_EXTENSION = f"{KAP}/StructureDefinition/attachment-sha256"
SOURCE_TAGS = f"{KAP}/CodeSystem/dose-source"

KETAMINE = {"coding": [{"system": RXNORM, "code": "6130", "display": "ketamine"}], "text": "Ketamine"}
ROUTES = {
    "sublingual": (SNOMED, "37161004", "Sublingual route"),
    "odt": (SNOMED, "372473007", "Oromucosal route"),
    "troche": (SNOMED, "372473007", "Oromucosal route"),
    "other": (SNOMED, "26643006", "Oral route"),
}
FORMULATION_TEXT = {"odt": "orally disintegrating tablet", "sublingual": "sublingual tablet",
                    "troche": "troche", "other": "other oral form"}

INSTRUMENTS = {
    "GAD-7": {"total": ("70274-6", "Generalized anxiety disorder 7 item (GAD-7) total score"),
              "items": ("69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7")},
    "PHQ-9": {"total": ("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"),
              "items": ("44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5",
                        "44253-3", "44260-8")},
}
ANSWERS = (("LA6568-5", "Not at all"), ("LA6569-3", "Several days"), ("LA6570-1", "More than half the days"),
           ("LA6571-9", "Nearly every day"))
NOTE_TYPE_DISPLAY = {"preparation": "Preparation session", "dosing": "KAP dosing session",
                     "integration": "Integration session", "check_in": "Check-in"}
PROGRESS_NOTE = {"system": LOINC, "code": "34904-3", "display": "Mental health Progress note"}
AUTHOR_SIGNATURE = {"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1",
                    "display": "Author's Signature"}


# --- small helpers -------------------------------------------------------------------------


def ref_uuid(kind: str, key: object) -> str:
    """A stable UUID for a record: the same record gets the same id in every export."""
    return str(uuid.uuid5(NAMESPACE, f"{kind}/{key}"))


def full_url(kind: str, key: object) -> str:
    return f"urn:uuid:{ref_uuid(kind, key)}"


def ref(kind: str, key: object, display: str | None = None) -> dict:
    out = {"reference": full_url(kind, key)}
    if display:
        out["display"] = display
    return out


def instant(value: datetime) -> str:
    """UTC with an explicit offset (``+00:00``), to the second."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def _day(value: date) -> str:
    return value.isoformat()


def _coding(system: str, code: str, display: str) -> dict:
    return {"system": system, "code": code, "display": display}


def _mg(value: float) -> dict:
    return {"value": float(value), "unit": "mg", "system": UCUM, "code": "mg"}


def _human_name(full_name: str) -> dict:
    parts = full_name.split()
    name: dict = {"text": full_name}
    if len(parts) >= 2:
        name["family"] = parts[-1]
        name["given"] = parts[:-1]
    elif parts:
        name["family"] = parts[0]
    return name


def _route(formulation: str) -> dict:
    system, code, display = ROUTES.get(formulation, ROUTES["other"])
    return {"coding": [_coding(system, code, display)], "text": display}


def entry(kind: str, key: object, resource: dict) -> dict:
    resource = {"resourceType": resource.pop("resourceType"), "id": ref_uuid(kind, key), **resource}
    return {"fullUrl": full_url(kind, key), "resource": resource}


# --- resources --------------------------------------------------------------------------------


def patient_resource(p: Patient) -> dict:
    status = {"active": True, "paused": True, "discharged": False}.get(p.status, True)
    return {
        "resourceType": "Patient",
        "identifier": [{
            "use": "usual",
            "type": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/v2-0203", "MR",
                                        "Medical record number")]},
            "system": f"{KAP}/mrn", "value": p.mrn,
        }],
        "active": status,
        "name": [_human_name(p.full_name)],
        "birthDate": _day(p.date_of_birth),
    }


def practitioner_resource(u: User) -> dict:
    res = {
        "resourceType": "Practitioner",
        "identifier": [{"system": f"{KAP}/username", "value": u.username}],
        "active": bool(u.is_active),
        "name": [_human_name(u.full_name)],
    }
    if u.credentials:
        res["qualification"] = [{"code": {"text": u.credentials}}]
    return res


def care_team_resource(team: CareTeam, patient: Patient, members: list[User]) -> dict:
    return {
        "resourceType": "CareTeam",
        "status": "active",
        "name": team.name,
        "subject": ref("Patient", patient.id),
        "participant": [{"role": [{"text": m.role}], "member": ref("Practitioner", m.id, m.full_name)}
                        for m in members],
    }


def assessment_resource(a: Assessment, patient: Patient) -> dict:
    spec = INSTRUMENTS[a.instrument]
    code, display = spec["total"]
    res: dict = {
        "resourceType": "Observation",
        "status": "entered-in-error" if a.voided_at else "final",
        "category": [{"coding": [_coding(OBS_CATEGORY, "survey", "Survey")]}],
        "code": {"coding": [_coding(LOINC, code, display)], "text": f"{a.instrument} total score"},
        "subject": ref("Patient", patient.id),
        "effectiveDateTime": _day(a.administered_on),
        "issued": instant(a.created_at),
        "performer": [ref("Practitioner", a.entered_by_id)],
        "valueInteger": int(a.total),
        "interpretation": [{"text": a.band}],
    }
    if a.items:
        res["component"] = [
            {"code": {"coding": [_coding(LOINC, item_code, f"{a.instrument} item {i + 1}")]},
             "valueCodeableConcept": {"coding": [_coding(LOINC, *ANSWERS[int(v)])], "text": str(int(v))}}
            for i, (item_code, v) in enumerate(zip(spec["items"], a.items, strict=False))
        ]
    if a.voided_at:
        res["note"] = [{"text": f"Voided: {a.void_reason or 'no reason given'}"}]
    return res


def reported_by(d: DoseEntry) -> tuple[str, str]:
    """(tag code, display): who the dose's information came from."""
    if d.source == DoseSource.session or d.context == DoseContext.in_session:
        return "clinic-entered", "Entered by the clinic (dose observed in session)"
    return "patient-reported", "Reported by the patient"


def dose_resource(d: DoseEntry, patient: Patient) -> dict:
    code, display = reported_by(d)
    performers = [{"function": {"coding": [_coding(PERFORM_FUNCTION, "performer", "Performer")]},
                   "actor": ref("Patient", patient.id)}]
    if code == "clinic-entered":
        performers.append({"function": {"coding": [_coding(PERFORM_FUNCTION, "witness", "Witness")]},
                           "actor": ref("Practitioner", d.entered_by_id)})
    in_clinic = d.context == DoseContext.in_session
    dosage_text = FORMULATION_TEXT.get(d.formulation, d.formulation)
    if d.administration:
        dosage_text += f", {'spat out' if d.administration == 'spit' else 'swallowed'}"
    res: dict = {
        "resourceType": "MedicationAdministration",
        "meta": {"tag": [_coding(SOURCE_TAGS, code, display)]},
        "status": "entered-in-error" if d.voided_at else "completed",
        "category": {"coding": [_coding(ADMIN_CATEGORY, "outpatient" if in_clinic else "community",
                                        "Outpatient" if in_clinic else "Community")]},
        "medicationCodeableConcept": KETAMINE,
        "subject": ref("Patient", patient.id),
        "effectiveDateTime": instant(d.taken_at),
        "performer": performers,
        "dosage": {"text": dosage_text, "route": _route(d.formulation), "dose": _mg(d.dose_mg)},
    }
    if d.plan_id is not None:
        res["request"] = ref("MedicationRequest", f"plan/{d.plan_id}")
    notes = []
    if d.notes:
        notes.append({"text": d.notes})
    if d.voided_at:
        notes.append({"text": f"Voided: {d.void_reason or 'no reason given'}", "time": instant(d.voided_at)})
    if notes:
        res["note"] = notes
    return res


def vital_resources(d: DoseEntry, patient: Patient) -> list[tuple[str, dict]]:
    """(key, Observation): BP panels before/after the dose and the heart rate."""
    out: list[tuple[str, dict]] = []
    status = "entered-in-error" if d.voided_at else "final"
    base = {
        "resourceType": "Observation",
        "status": status,
        "category": [{"coding": [_coding(OBS_CATEGORY, "vital-signs", "Vital Signs")]}],
        "subject": ref("Patient", patient.id),
        "effectiveDateTime": instant(d.taken_at),
        "partOf": [ref("MedicationAdministration", d.id)],
    }
    for when, label in (("pre", "before the dose"), ("post", "after the dose")):
        s, dia = getattr(d, f"bp_systolic_{when}"), getattr(d, f"bp_diastolic_{when}")
        if s is None and dia is None:
            continue
        comps = []
        for value, code, disp in ((s, "8480-6", "Systolic blood pressure"),
                                  (dia, "8462-4", "Diastolic blood pressure")):
            comp: dict = {"code": {"coding": [_coding(LOINC, code, disp)]}}
            if value is None:
                comp["dataAbsentReason"] = {"coding": [_coding(
                    "http://terminology.hl7.org/CodeSystem/data-absent-reason", "unknown", "Unknown")]}
            else:
                comp["valueQuantity"] = {"value": int(value), "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"}
            comps.append(comp)
        out.append((f"bp/{d.id}/{when}", {
            **base, "code": {"coding": [_coding(LOINC, "85354-9", "Blood pressure panel with all children optional")],
                             "text": f"Blood pressure {label}"},
            "component": comps,
        }))
    if d.heart_rate is not None:
        out.append((f"hr/{d.id}", {
            **base, "code": {"coding": [_coding(LOINC, "8867-4", "Heart rate")], "text": "Heart rate"},
            "valueQuantity": {"value": int(d.heart_rate), "unit": "beats/minute", "system": UCUM, "code": "/min"},
        }))
    return out


def _dosage(dose_mg: float | None, interval_days: int | None, formulation: str, text: str,
            patient_instruction: str | None = None) -> dict:
    dosage: dict = {"text": text, "route": _route(formulation)}
    if interval_days:
        dosage["timing"] = {"repeat": {"frequency": 1, "period": int(interval_days), "periodUnit": "d"}}
    if dose_mg is not None:
        dosage["doseAndRate"] = [{"doseQuantity": _mg(dose_mg)}]
    if patient_instruction:
        dosage["patientInstruction"] = patient_instruction
    return dosage


def plan_status(plan: TreatmentPlan, latest: bool) -> str:
    if not latest:
        return "stopped"  # superseded by a newer version
    return {PlanStatus.active: "active", PlanStatus.held: "on-hold", PlanStatus.ended: "stopped"}.get(
        plan.status, "unknown")


def plan_resource(plan: TreatmentPlan, patient: Patient, previous: TreatmentPlan | None, latest: bool) -> dict:
    form = FORMULATION_TEXT.get(plan.formulation, plan.formulation)
    text = f"{plan.dose_mg:g} mg {form} every {plan.interval_days} days"
    instruction = (f"Hold in the mouth for {plan.minutes_in_mouth} minutes, then "
                   f"{'spit out' if plan.administration == 'spit' else 'swallow'}. {plan.fasting_instructions}")
    if plan.instructions:
        instruction += f" {plan.instructions}"
    res: dict = {
        "resourceType": "MedicationRequest",
        "identifier": [{"system": f"{KAP}/plan-version", "value": f"{patient.mrn}/v{plan.version_number}"}],
        "status": plan_status(plan, latest),
        "intent": "order",
        "medicationCodeableConcept": KETAMINE,
        "subject": ref("Patient", patient.id),
        "authoredOn": instant(plan.created_at),
        "requester": ref("Practitioner", plan.approved_by_id),
        "dosageInstruction": [_dosage(plan.dose_mg, plan.interval_days, plan.formulation, text, instruction)],
        "dispenseRequest": {"validityPeriod": {"start": instant(plan.effective_from)}},
    }
    if plan.rationale:
        res["note"] = [{"text": plan.rationale}]
    if previous is not None:
        res["priorPrescription"] = ref("MedicationRequest", f"plan/{previous.id}")
    return res


def adjustment_resource(a: DoseAdjustment, patient: Patient, plan_keys: set[int],
                        current: TreatmentPlan | None) -> dict:
    formulation = current.formulation if current else "other"
    dose = a.proposed_dose_mg
    interval = a.proposed_interval_days
    words = " ".join(p for p in (f"{dose:g} mg" if dose is not None else "",
                                 f"every {interval} days" if interval else "") if p)
    text = f"{'Suggested' if a.kind == 'suggestion' else 'Proposed'}: {a.action.replace('_', ' ')}" + \
        (f", {words}" if words else "")
    res: dict = {
        "resourceType": "MedicationRequest",
        "status": "active" if a.status == AdjustmentStatus.pending else "draft",
        "intent": "proposal",
        "medicationCodeableConcept": KETAMINE,
        "subject": ref("Patient", patient.id),
        "authoredOn": instant(a.created_at),
        "dosageInstruction": [_dosage(dose, interval, formulation, text)],
    }
    if a.kind == "proposal" and a.created_by_id:
        res["requester"] = ref("Practitioner", a.created_by_id)
    reasons = [str(r.get("text") or r.get("code")) if isinstance(r, dict) else str(r) for r in (a.reasons or [])]
    if reasons:
        res["reasonCode"] = [{"text": r} for r in reasons if r]
    notes = []
    if a.kind == "suggestion":
        notes.append({"text": "Decision support from the clinic's rules engine"
                              + (f" (protocol {a.protocol_name})" if a.protocol_name else "")
                              + "; not a prescriber's decision."})
    if a.therapist_note:
        notes.append({"text": a.therapist_note})
    if notes:
        res["note"] = notes
    if a.plan_id in plan_keys:
        res["priorPrescription"] = ref("MedicationRequest", f"plan/{a.plan_id}")
    return res


def note_resources(note: SessionNote, patient: Patient, pdf: bytes) -> tuple[dict, dict]:
    """(DocumentReference, Provenance) of one signed note."""
    kind = NOTE_TYPE_DISPLAY.get(note.note_type, note.note_type)
    title = f"{kind} note, {note.session_date.isoformat()}"
    doc = {
        "resourceType": "DocumentReference",
        "identifier": [{"system": f"{KAP}/note-content-sha256", "value": note.content_hash or ""}],
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [PROGRESS_NOTE], "text": kind},
        "category": [{"text": "Session note"}],
        "subject": ref("Patient", patient.id),
        "date": instant(note.signed_at),
        "author": [ref("Practitioner", note.author_id)],
        "authenticator": ref("Practitioner", note.signed_by_id),
        "description": title,
        "content": [{"attachment": {
            "extension": [{"url": SHA256_EXTENSION, "valueString": hashlib.sha256(pdf).hexdigest()}],
            "contentType": "application/pdf",
            "language": "en",
            "data": base64.b64encode(pdf).decode("ascii"),
            "size": len(pdf),
            "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),  # noqa: S324 - R4 defines SHA-1
            "title": title,
            "creation": instant(note.signed_at),
        }}],
        "context": {"period": {"start": note.session_date.isoformat()}},
    }
    if not doc["identifier"][0]["value"]:
        del doc["identifier"]
    prov = {
        "resourceType": "Provenance",
        "target": [ref("DocumentReference", note.id)],
        "recorded": instant(note.signed_at),
        "activity": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE",
                                        "revise")], "text": "Signed"},
        "agent": [{"type": {"coding": [_coding("http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                               "author", "Author")]},
                   "who": ref("Practitioner", note.signed_by_id)}],
        "signature": [{
            "type": [AUTHOR_SIGNATURE],
            "when": instant(note.signed_at),
            "who": ref("Practitioner", note.signed_by_id),
            "sigFormat": "text/plain",
            # an electronic signature in the app (not a cryptographic one): the content hash it sealed
            "data": base64.b64encode(f"sha256:{note.content_hash or ''}".encode()).decode("ascii"),
        }],
    }
    return doc, prov
