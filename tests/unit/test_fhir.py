"""FHIR R4 export: every resource validates with fhir.resources (R4B models), references
resolve, counts round-trip, codes and units are right, private process notes never appear."""

from __future__ import annotations

import base64
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError as PydanticError
from pypdf import PdfReader
from sqlmodel import select

from kapnotes import fhir
from kapnotes.db import session_scope
from kapnotes.errors import PermissionDenied
from kapnotes.models import (
    Assessment,
    AuditEvent,
    DoseAdjustment,
    DoseEntry,
    SessionNote,
    TreatmentPlan,
)
from tests.unit.pdf_data import build_world


@pytest.fixture
def world(engine, clinic):
    w = build_world(engine, clinic, days=30)
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        s.add(DoseEntry(patient_id=clinic.a1, taken_at=now - timedelta(days=1), dose_mg=200, formulation="sublingual",
                        context="home", entered_by_id=clinic.tina.id, source="import", notes="IMPORTED-DOSE"))
        s.add(DoseAdjustment(patient_id=clinic.a1, kind="proposal", status="pending", action="space_out",
                             proposed_dose_mg=200, proposed_interval_days=14, created_by_id=clinic.tina.id,
                             reasons=[{"code": "remission", "text": "GAD-7 below 5 twice"}],
                             therapist_note="Client asks to space out."))
        s.add(DoseAdjustment(patient_id=clinic.a1, kind="suggestion", status="open", action="increase",
                             proposed_dose_mg=250, proposed_interval_days=7, protocol_name="default",
                             reasons=[{"code": "non_response", "text": "GAD-7 down 10 %"}]))
    return w


def bundle_for(engine, actor, pid, **kw) -> dict:
    with session_scope(engine) as s:
        return fhir.build_bundle(s, actor, pid, **kw)


def of_type(bundle, kind) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_every_resource_validates_with_fhir_resources_r4b(engine, clinic, world):
    bundle = bundle_for(engine, clinic.tina, clinic.a1)
    Bundle.model_validate(bundle)
    kinds = set()
    for e in bundle["entry"]:
        r = e["resource"]
        kinds.add(r["resourceType"])
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    assert kinds == {"Patient", "Practitioner", "CareTeam", "Observation", "MedicationAdministration",
                     "MedicationRequest", "DocumentReference", "Provenance"}
    # the validator is not a rubber stamp: R5's shape of a dose (``medication`` as a CodeableReference,
    # no ``effectiveDateTime``) is refused by the R4B model
    good = of_type(bundle, "MedicationAdministration")[0]
    r5ish = {k: v for k, v in good.items() if k not in ("medicationCodeableConcept", "effectiveDateTime")}
    r5ish["medication"] = {"concept": good["medicationCodeableConcept"]}
    r5ish["occurenceDateTime"] = good["effectiveDateTime"]
    with pytest.raises(PydanticError):
        get_fhir_model_class("MedicationAdministration").model_validate(r5ish)
    # and the whole thing serialises as JSON
    json.dumps(bundle)


def test_references_all_resolve_inside_the_bundle(engine, clinic, world):
    bundle = bundle_for(engine, clinic.tina, clinic.a1)
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls)) and all(u.startswith("urn:uuid:") for u in urls)
    for e in bundle["entry"]:
        assert e["fullUrl"] == f"urn:uuid:{e['resource']['id']}"
    assert fhir.unresolved_references(bundle) == []
    text = json.dumps(bundle)
    assert text.count('"reference"') > 100  # references are there, and every one resolved
    # a dangling reference is detected
    broken = json.loads(text)
    broken["entry"][3]["resource"]["subject"] = {"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}
    assert fhir.unresolved_references(broken) == ["urn:uuid:00000000-0000-0000-0000-000000000000"]


def test_counts_round_trip(engine, clinic, world):
    bundle = bundle_for(engine, clinic.tina, clinic.a1)
    with session_scope(engine) as s:
        doses = s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a1)).all()
        scores = s.exec(select(Assessment).where(Assessment.patient_id == clinic.a1)).all()
        plans = s.exec(select(TreatmentPlan).where(TreatmentPlan.patient_id == clinic.a1)).all()
        signed = s.exec(select(SessionNote).where(SessionNote.patient_id == clinic.a1,
                                                  SessionNote.status == "signed")).all()
        undecided = s.exec(select(DoseAdjustment).where(DoseAdjustment.patient_id == clinic.a1,
                                                        DoseAdjustment.status.in_(["open", "pending"]))).all()
    counts = fhir.bundle_counts(bundle)
    assert counts["Patient"] == 1 and counts["CareTeam"] == 1
    assert counts["MedicationAdministration"] == len(doses)
    voided = [d for d in doses if d.voided_at]
    assert len(voided) == 1
    assert sum(1 for r in of_type(bundle, "MedicationAdministration") if r["status"] == "entered-in-error") == 1
    assert counts["Score"] == len(scores) == 7
    assert counts["PlanVersion"] == len(plans) == 2
    assert counts["Proposal"] == len(undecided) == 2
    assert counts["DocumentReference"] == counts["Provenance"] == len(signed) == 2
    expected_vitals = sum((d.bp_systolic_pre is not None) + (d.bp_systolic_post is not None)
                          + (d.heart_rate is not None) for d in doses)
    assert counts["Vital"] == expected_vitals
    names = {r["name"][0]["text"] for r in of_type(bundle, "Practitioner")}
    assert names == {"Tina Torres", "Paul Park"}
    # the export is audited with the counts, as the signed-in user
    with session_scope(engine) as s:
        [ev] = s.exec(select(AuditEvent).where(AuditEvent.action == "export.fhir")).all()
    assert ev.actor_id == clinic.tina.id and ev.patient_id == clinic.a1
    assert f"MedicationAdministration={len(doses)}" in ev.detail and "DocumentReference=2" in ev.detail


def test_no_private_process_note_and_no_draft(engine, clinic, world):
    bundle = bundle_for(engine, clinic.tina, clinic.a1)
    text = json.dumps(bundle, ensure_ascii=False)
    assert world.process_text not in text and "B1 process note" not in text
    assert world.draft_text not in text and world.other_draft_text not in text
    for doc in of_type(bundle, "DocumentReference"):
        att = doc["content"][0]["attachment"]
        pdf = base64.b64decode(att["data"])
        assert att["contentType"] == "application/pdf" and att["size"] == len(pdf)
        assert att["extension"][0]["valueString"] == hashlib.sha256(pdf).hexdigest()
        assert base64.b64decode(att["hash"]) == hashlib.sha1(pdf).digest()  # noqa: S324 - R4's definition
        pages = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
        assert "Electronically signed" in pages
        assert world.process_text not in pages and world.draft_text not in pages


def test_codes_units_and_times(engine, clinic, world):
    bundle = bundle_for(engine, clinic.tina, clinic.a1)
    [patient] = of_type(bundle, "Patient")
    assert patient["identifier"][0]["value"] == "A-001"
    assert patient["identifier"][0]["type"]["coding"][0]["code"] == "MR"
    obs = of_type(bundle, "Observation")
    gad = [o for o in obs if o["code"]["coding"][0]["code"] == "70274-6"]
    phq = [o for o in obs if o["code"]["coding"][0]["code"] == "44261-6"]
    assert len(gad) == 4 and len(phq) == 3
    assert all(o["category"][0]["coding"][0]["code"] == "survey" for o in gad + phq)
    assert [c["code"]["coding"][0]["code"] for c in gad[0]["component"]] == [
        "69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
    assert phq[0]["component"][8]["code"]["coding"][0]["code"] == "44260-8"
    item9_answers = [o["component"][8]["valueCodeableConcept"]["coding"][0]["code"] for o in phq]
    assert "LA6569-3" in item9_answers  # item 9 answered 1 ("several days") once
    bp = [o for o in obs if o["code"]["coding"][0]["code"] == "85354-9"]
    assert bp and {c["code"]["coding"][0]["code"] for c in bp[0]["component"]} == {"8480-6", "8462-4"}
    assert all(c["valueQuantity"]["code"] == "mm[Hg]" for c in bp[0]["component"])
    hr = [o for o in obs if o["code"]["coding"][0]["code"] == "8867-4"]
    assert hr and hr[0]["valueQuantity"]["code"] == "/min" and hr[0]["valueQuantity"]["system"] == fhir.UCUM
    meds = of_type(bundle, "MedicationAdministration")
    assert all(m["medicationCodeableConcept"]["coding"][0]["code"] == "6130" for m in meds)
    assert all(m["dosage"]["dose"]["code"] == "mg" for m in meds)
    assert all(m["effectiveDateTime"].endswith("+00:00") for m in meds)
    assert bundle["timestamp"].endswith("+00:00")
    routes = {m["dosage"]["route"]["coding"][0]["code"] for m in meds}
    assert routes == {"372473007", "37161004"}  # ODT oromucosal, the sublingual tablet sublingual
    by_tag = {m["meta"]["tag"][0]["code"] for m in meds}
    assert by_tag == {"patient-reported", "clinic-entered"}
    in_session = [m for m in meds if m["meta"]["tag"][0]["code"] == "clinic-entered"]
    assert [p["function"]["coding"][0]["code"] for p in in_session[0]["performer"]] == ["performer", "witness"]


def test_plan_versions_and_proposals(engine, clinic, world):
    bundle = bundle_for(engine, clinic.tina, clinic.a1)
    reqs = of_type(bundle, "MedicationRequest")
    orders = [r for r in reqs if r["intent"] == "order"]
    proposals = [r for r in reqs if r["intent"] == "proposal"]
    assert [o["status"] for o in orders] == ["stopped", "active"]
    paul = next(e["fullUrl"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Practitioner"
                and e["resource"]["name"][0]["text"] == "Paul Park")
    assert all(o["requester"]["reference"] == paul for o in orders)
    assert orders[1]["priorPrescription"]["reference"] == next(
        e["fullUrl"] for e in bundle["entry"] if e["resource"] is orders[0])
    repeat = orders[1]["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat == {"frequency": 1, "period": 7, "periodUnit": "d"}
    assert orders[1]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 200
    assert sorted(p["status"] for p in proposals) == ["active", "draft"]
    spaced = next(p for p in proposals if p["status"] == "active")
    assert spaced["dosageInstruction"][0]["timing"]["repeat"]["period"] == 14
    assert "requester" in spaced


def test_held_plan_is_on_hold(engine, clinic, world):
    with session_scope(engine) as s:
        s.add(TreatmentPlan(patient_id=clinic.a1, version_number=3, formulation="odt", dose_mg=200, interval_days=7,
                            status="held", effective_from=datetime.now(UTC), approved_by_id=clinic.paul.id))
    orders = [r for r in of_type(bundle_for(engine, clinic.tina, clinic.a1), "MedicationRequest")
              if r["intent"] == "order"]
    assert [o["status"] for o in orders] == ["stopped", "stopped", "on-hold"]


def test_access_is_checked(engine, clinic, world):
    with pytest.raises(PermissionDenied):
        bundle_for(engine, clinic.theo, clinic.a1)
    with pytest.raises(PermissionDenied):
        bundle_for(engine, clinic.ada, clinic.a1)
    with pytest.raises(PermissionDenied):
        bundle_for(engine, None, clinic.a1)  # the command line must say it is the operator
    assert bundle_for(engine, None, clinic.a1, as_operator=True)["type"] == "collection"
    with session_scope(engine) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "export.fhir")).all()
    assert [(e.actor_id, e.actor_username) for e in events] == [(None, "system")]


def test_the_same_record_keeps_its_id(engine, clinic, world):
    a = bundle_for(engine, clinic.tina, clinic.a1)
    b = bundle_for(engine, clinic.paul, clinic.a1)
    assert [e["fullUrl"] for e in a["entry"]] == [e["fullUrl"] for e in b["entry"]]
    assert a["id"] != b["id"]
