"""The records-request packet: what a clinic sends to another clinic or a referring clinician.

A cover letter (clinic name, address, phone, NPI from settings; recipient; purpose; date
range; the sections included), the exporting clinician's attestation and signature line,
a redisclosure notice, a one-page "course of treatment", then the chosen sections. The
data comes from ``exports.gather_summary`` (the same access rule and the same rows as the
treatment summary); private process notes are never read. Every packet is audited
(``export.packet_pdf``) with its sections and recipient, which is what an accounting of
disclosures needs, never clinical text.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from kapnotes import audit, vocab
from kapnotes.actor import Actor
from kapnotes.config import get_settings
from kapnotes.errors import ValidationError
from kapnotes.exports import file_stem, gather_summary
from kapnotes.notes.templates import SERIOUS_ADVERSE_EVENTS
from kapnotes.pdf.model import DoseRow, SummaryData
from kapnotes.pdf.packet_data import (
    SECTION_LABELS,
    SECTIONS,
    ClinicInfo,
    Course,
    DoseStep,
    PacketData,
    PacketRequest,
    Trend,
)

EXTRA_SERIOUS_TAGS = {"fall"}  # beside the protocol's serious adverse events
RECIPIENT_MAX = 300
PURPOSE_MAX = 500


def validate_request(req: PacketRequest) -> PacketRequest:
    errors: dict[str, str] = {}
    recipient, purpose = (req.recipient or "").strip(), (req.purpose or "").strip()
    if not recipient:
        errors["recipient"] = "Name the recipient of the records."
    elif len(recipient) > RECIPIENT_MAX:
        errors["recipient"] = f"The recipient is limited to {RECIPIENT_MAX} characters."
    if not purpose:
        errors["purpose"] = "Give the purpose of the disclosure (e.g. continuity of care)."
    elif len(purpose) > PURPOSE_MAX:
        errors["purpose"] = f"The purpose is limited to {PURPOSE_MAX} characters."
    unknown = [s for s in req.sections if s not in SECTIONS]
    if unknown:
        errors["sections"] = "Unknown section(s): " + ", ".join(unknown) + "."
    if req.date_from and req.date_to and req.date_from > req.date_to:
        errors["date_from"] = "The start date is after the end date."
    if errors:
        raise ValidationError(errors)
    ordered = tuple(s for s in SECTIONS if s in set(req.sections))
    return PacketRequest(recipient, purpose, req.date_from, req.date_to, ordered)


def _dose_steps(doses: list[DoseRow]) -> list[DoseStep]:
    steps: list[DoseStep] = []
    for d in doses:
        if steps and steps[-1].dose_mg == d.dose_mg:
            s = steps[-1]
            steps[-1] = DoseStep(s.dose_mg, s.first, d.taken_on.isoformat(), s.count + 1)
        else:
            steps.append(DoseStep(d.dose_mg, d.taken_on.isoformat(), d.taken_on.isoformat(), 1))
    return steps


def _safety_events(data: SummaryData) -> list[str]:
    """Serious adverse events, vomiting, blood pressure at or above the hold threshold, item 9 and
    holds, by the protocol in force (``data.bp_hold``, ``data.serious_events``)."""
    out: list[str] = []
    serious_tags = frozenset(data.serious_events or SERIOUS_ADVERSE_EVENTS) | EXTRA_SERIOUS_TAGS
    for d in data.doses:
        tags = [t for t in d.adverse_events.split(";") if t.strip()]
        serious = [t.replace("_", " ") for t in tags if t in serious_tags]
        if serious:
            out.append(f"{d.taken_at}: serious adverse event after {d.dose_mg:g} mg ({', '.join(serious)})")
        if d.vomited:
            out.append(f"{d.taken_at}: vomited after {d.dose_mg:g} mg")
        for label, bp in (("before", d.bp_pre), ("after", d.bp_post)):
            try:
                s, dia = (int(x) for x in bp.split("/"))
            except ValueError:
                continue
            if s >= data.bp_hold[0] or dia >= data.bp_hold[1]:
                out.append(f"{d.taken_at}: blood pressure {bp} mmHg {label} the dose")
    for s in data.scores:
        if s.instrument == "PHQ-9" and s.item9:
            out.append(f"{s.administered_on.isoformat()}: PHQ-9 item 9 (thoughts of self-harm) answered {s.item9}")
    for a in data.adjustments:
        if a.action == "hold":
            out.append(f"{a.created}: hold {a.kind} ({a.status})"
                       + (f": {a.reasons[0]}" if a.reasons else ""))
    return out


def course_of_treatment(data: SummaryData) -> Course:
    plan = data.plans[-1] if data.plans else None
    plan_now = (f"{plan.dose_mg:g} mg {vocab.every(plan.interval_days)} ({vocab.formulation_word(plan.formulation)}), "
                f"{plan.status}, "
                f"version {plan.version} from {plan.effective}, approved by {plan.approved_by}"
                if plan else "No treatment plan on record.")
    trends = []
    for instrument in ("GAD-7", "PHQ-9"):
        series = [s for s in data.scores if s.instrument == instrument]
        trends.append(Trend(instrument, series[0] if series else None, series[-1] if series else None, len(series)))
    return Course(plan_now, _dose_steps(data.doses), trends, _safety_events(data),
                  bp_hold=f"{data.bp_hold[0]}/{data.bp_hold[1]}")


def prepare_packet(session: Session, actor: Actor | None, patient_id: int, request: PacketRequest, *,
                   as_operator: bool = False, generated_at: datetime | None = None) -> PacketData:
    """Check access, gather, and audit the disclosure, in the caller's transaction."""
    req = validate_request(request)
    data = gather_summary(session, actor, patient_id, req.date_from, req.date_to,
                                  generated_at=generated_at, as_operator=as_operator)
    req = PacketRequest(req.recipient, req.purpose, data.date_from, data.date_to, req.sections)
    settings = get_settings()
    clinic = ClinicInfo(settings.clinic_name, settings.clinic_address, settings.clinic_phone, settings.clinic_npi)
    audit.record(
        session, actor, "export.packet_pdf", "patient", patient_id, patient_id,
        detail=(f"sections={','.join(req.sections) or 'none'};from={data.date_from.isoformat()};"
                f"to={data.date_to.isoformat()};notes={len(data.notes) if 'notes' in req.sections else 0};"
                f"recipient={req.recipient[:80]}")[:255],
    )
    return PacketData(data, req, clinic, data.meta.generated_by, course_of_treatment(data))


def render_packet(data: PacketData, invariant: bool = False) -> bytes:
    from kapnotes.pdf.packet_pdf import build_packet_pdf

    return build_packet_pdf(data, invariant=invariant)


def file_name(data: PacketData) -> str:
    s = data.summary
    return (f"{file_stem(s.patient.mrn).replace('summary-', 'records-', 1)}_{s.date_from.isoformat()}_"
            f"{s.date_to.isoformat()}.pdf")


__all__ = ["SECTIONS", "SECTION_LABELS", "PacketData", "PacketRequest", "course_of_treatment", "file_name",
           "prepare_packet", "render_packet", "validate_request"]
