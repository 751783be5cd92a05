"""Test data for the PDF export tests: a patient's year of doses, scores, notes and decisions.

Rows are written directly (like the seeder does), so these tests do not depend on the
note, dose and suggestion services' forms: they test what the PDFs print.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from pypdf import PdfReader
from sqlmodel import select

from kapnotes.db import session_scope
from kapnotes.models import (
    Addendum,
    Assessment,
    DoseAdjustment,
    DoseEntry,
    ProcessNote,
    SessionNote,
    TreatmentPlan,
)
from kapnotes.notes.hashing import content_hash, text_hash
from kapnotes.scales import score

FIXED = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)  # "generated at" in every test PDF


def pdf_text(pdf: bytes) -> tuple[PdfReader, list[str]]:
    reader = PdfReader(io.BytesIO(pdf))
    return reader, [page.extract_text() or "" for page in reader.pages]


def flat(text: str) -> str:
    """Whitespace-normalised text: a label wrapped over two lines still matches."""
    return " ".join(text.split())


def qpdf_ok(pdf: bytes, tmp_path) -> None:
    path = tmp_path / "check.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(["qpdf", "--check", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def assert_every_page_framed(pdf: bytes, *words: str, min_pages: int = 1) -> None:
    """Every page of ``pdf`` carries the frame: "Page i of n", the confidentiality line and ``words``
    (the patient, who generated it); the PDF has at least ``min_pages`` pages."""
    pages = pdf_text(pdf)[1]
    assert len(pages) >= min_pages, f"{len(pages)} pages"
    for i, page in enumerate(pages, start=1):
        page = flat(page)
        for expected in (f"Page {i} of {len(pages)}", "Confidential — contains protected health information", *words):
            assert expected in page, f"{expected!r} not on page {i}"


def long_text(tag: str, sentences: int = 600) -> str:
    """About 40,000 characters in paragraphs: taller than a page in any cell or column."""
    parts = [f"{tag}-{i:04d} the session went on and the patient reflected at length." for i in range(sentences)]
    return "\n\n".join(" ".join(parts[i:i + 20]) for i in range(0, sentences, 20))


HOSTILE = (
    "<b>", '<img src="/etc/passwd">', "AT&T", "a<b", "😀 emoji", "שלום עולם", "مرحبا بالعالم", "日本語のテキスト",
    '<a href="https://evil.example/x">click</a>', "<font color=red>red</font>", "&amp; &lt;",
)

DOSING_FIELDS = {
    "session_number": 3,
    "present": "Therapist and sitter Zoë",
    "consent_confirmed": True,
    "intention": "Meet the worry with curiosity",
    "fasting_confirmed": True,
    "interacting_medications": "None reported",
    "consent_to_touch": False,
    "bp_systolic_pre": 128,
    "bp_diastolic_pre": 82,
    "heart_rate_pre": 74,
    "mental_status_pre": "Calm, oriented",
    "dose_mg": 150.0,
    "formulation": "odt",
    "time_taken": "10:05",
    "minutes_in_mouth": 10,
    "administration": "spit",
    "onset_time": "10:20",
    "peak_time": "10:45",
    "end_time": "11:40",
    "dissociation": 6,
    "nausea": 1,
    "themes": "Grief for a parent, felt as warmth",
    "observed_behaviour": "Tearful, then settled",
    "adverse_events": ["nausea", "dizziness"],
    "bp_systolic_post": 138,
    "bp_diastolic_post": 88,
    "heart_rate_post": 80,
    "vitals_ok_at_discharge": True,
    "discharge_status": "Picked up by partner; no driving until tomorrow",
}


@dataclass
class PdfWorld:
    patient_id: int
    dosing_note_id: int
    integration_note_id: int
    draft_note_id: int
    other_draft_note_id: int
    addenda_texts: list[str] = field(default_factory=list)
    process_text: str = "PRIVATE-PROCESS-NOTE-never-exported"
    draft_text: str = "DRAFT-ONLY-free-text"
    other_draft_text: str = "OTHER-AUTHORS-DRAFT-text"
    dose_ids: list[int] = field(default_factory=list)


def _aware(d: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(d, time(hour, minute), UTC)


def build_world(engine, clinic, *, days: int = 60, weekly_notes: bool = False, hostile: bool = False,
                start: date | None = None, extra_fields: dict | None = None) -> PdfWorld:
    """Doses every ``days // 20`` days, GAD-7/PHQ-9 every 2 weeks, notes, addenda, decisions for A1."""
    pid = clinic.a1
    tina, paul, theo = clinic.tina, clinic.paul, clinic.theo
    today = datetime.now(UTC).date()
    start = start or today - timedelta(days=days)
    hostile_text = " | ".join(HOSTILE)
    with session_scope(engine) as s:
        plan = s.exec(select(TreatmentPlan).where(TreatmentPlan.patient_id == pid)).first()
        plan.effective_from = _aware(start - timedelta(days=1), 9)
        s.add(plan)
        s.add(TreatmentPlan(patient_id=pid, version_number=2, formulation="odt", dose_mg=200, interval_days=7,
                            effective_from=_aware(start + timedelta(days=days // 2), 9), approved_by_id=paul.id,
                            rationale="GAD-7 only 13 % lower after 4 weeks: increase to 200 mg."))
        dose_ids = []
        step = 1 if days >= 300 else max(1, days // 20)
        for i, day_n in enumerate(range(0, days, step)):
            d = start + timedelta(days=day_n)
            entry = DoseEntry(
                patient_id=pid, taken_at=_aware(d, 14, 5), dose_mg=150 if day_n < days // 2 else 200,
                formulation="odt", administration="spit", context="home", anxiety_before=6, anxiety_after=3,
                dissociation=5, nausea=1 if i % 5 else 3, vomited=(i == 3), bp_systolic_pre=124, bp_diastolic_pre=80,
                bp_systolic_post=136, bp_diastolic_post=86, heart_rate=76,
                adverse_events="nausea;dizziness" if i % 4 == 0 else "",
                notes=("A long free-text note about the evening after the dose, " * 4 + f"entry {i}")
                if i % 3 == 0 else (hostile_text if hostile and i == 1 else None),
                entered_by_id=tina.id,
            )
            s.add(entry)
            s.flush()
            dose_ids.append(entry.id)
        voided = DoseEntry(patient_id=pid, taken_at=_aware(start + timedelta(days=2), 9), dose_mg=999,
                           formulation="odt", context="home", entered_by_id=tina.id, notes="VOIDED-ENTRY",
                           voided_at=_aware(start + timedelta(days=2), 10), voided_by_id=tina.id, void_reason="typo")
        s.add(voided)
        for k, day_n in enumerate(range(0, days, 14)):
            d = start + timedelta(days=day_n)
            g_items = [max(0, 3 - k // 2)] * 5 + [max(0, 2 - k // 2)] * 2
            p_items = [max(0, 2 - k // 3)] * 8 + [1 if k == 1 else 0]
            for instrument, items in (("GAD-7", g_items), ("PHQ-9", p_items)):
                sc = score(instrument, items=items)
                s.add(Assessment(patient_id=pid, instrument=instrument, administered_on=d, items=items,
                                 total=sc.total, band=sc.band, item9=items[8] if instrument == "PHQ-9" else None,
                                 loinc_panel="x", loinc_total="y", entered_by_id=tina.id))

        fields = dict(DOSING_FIELDS)
        if hostile:
            fields["themes"] = hostile_text
            fields["present"] = "Zoë Ångström, José Müller, 王小明"
        if extra_fields:
            fields.update(extra_fields)
        dosing_day = start + timedelta(days=7)
        dosing = SessionNote(patient_id=pid, author_id=tina.id, note_type="dosing", status="signed",
                             session_date=dosing_day, start_time="09:30", end_time="12:00", modality="in_person",
                             fields=fields, free_text=("Line one of the free text.\nLine two: " +
                                                       (hostile_text if hostile else "all calm.")),
                             signed_at=_aware(dosing_day, 18), signed_by_id=tina.id)
        dosing.content_hash = content_hash(dosing)
        s.add(dosing)
        s.flush()
        linked = DoseEntry(patient_id=pid, taken_at=_aware(dosing_day, 14, 5), dose_mg=150, formulation="odt",
                           administration="spit", context="in_session", bp_systolic_pre=128, bp_diastolic_pre=82,
                           bp_systolic_post=138, bp_diastolic_post=88, heart_rate=74, dissociation=6, nausea=1,
                           entered_by_id=tina.id, session_note_id=dosing.id, source="session")
        s.add(linked)
        s.flush()
        dose_ids.append(linked.id)
        g = score("GAD-7", items=[2, 2, 1, 2, 1, 1, 2])
        s.add(Assessment(patient_id=pid, instrument="GAD-7", administered_on=dosing_day, items=[2, 2, 1, 2, 1, 1, 2],
                         total=g.total, band=g.band, loinc_panel="69737-5", loinc_total="70274-6",
                         entered_by_id=tina.id, session_note_id=dosing.id))
        addenda_texts = ["First addendum: BP re-checked at 12:30, 130/84.",
                         "Second addendum: client called next day, feeling well."
                         + (" " + hostile_text if hostile else "")]
        for j, text in enumerate(addenda_texts):
            at = _aware(dosing_day + timedelta(days=1 + j), 9)
            s.add(Addendum(note_id=dosing.id, author_id=tina.id if j == 0 else paul.id, text=text, created_at=at,
                           signed_at=at, content_hash=text_hash(str(dosing.id), text)))

        integ_day = start + timedelta(days=9)
        integration = SessionNote(patient_id=pid, author_id=tina.id, note_type="integration", status="signed",
                                  session_date=integ_day, start_time="15:00", end_time="15:50", modality="telehealth",
                                  fields={"client_account": "Gentle and meaningful", "risk_check": "Denies self-harm",
                                          "plan": "Continue plan", "homework": "Journal daily"},
                                  free_text="Integration free text.", integrates_dose_id=linked.id,
                                  signed_at=_aware(integ_day, 20), signed_by_id=tina.id)
        integration.content_hash = content_hash(integration)
        s.add(integration)
        s.flush()

        if weekly_notes:
            for w in range(2, days // 7):
                d = start + timedelta(days=7 * w)
                n = SessionNote(patient_id=pid, author_id=tina.id, note_type="dosing", status="signed",
                                session_date=d, start_time="09:30", end_time="11:30", modality="in_person",
                                fields=dict(DOSING_FIELDS, session_number=w + 1), free_text=f"Weekly session {w}.",
                                signed_at=_aware(d, 18), signed_by_id=tina.id)
                n.content_hash = content_hash(n)
                s.add(n)

        draft = SessionNote(patient_id=pid, author_id=tina.id, note_type="check_in", status="draft",
                            session_date=start + timedelta(days=20), modality="telehealth",
                            fields={"data": "Draft data"}, free_text="DRAFT-ONLY-free-text")
        other = SessionNote(patient_id=pid, author_id=paul.id, note_type="check_in", status="draft",
                            session_date=start + timedelta(days=21), modality="telehealth",
                            fields={"data": "Paul's draft"}, free_text="OTHER-AUTHORS-DRAFT-text")
        s.add(draft)
        s.add(other)
        s.add(ProcessNote(patient_id=pid, author_id=tina.id, text="PRIVATE-PROCESS-NOTE-never-exported"))
        s.add(ProcessNote(patient_id=clinic.b1, author_id=theo.id, text="B1 process note"))
        s.add(DoseAdjustment(patient_id=pid, kind="suggestion", status="approved", action="increase",
                             proposed_dose_mg=200, proposed_interval_days=7, flags=["non_response"],
                             reasons=[{"code": "non_response",
                                       "text": "GAD-7 15 → 13 (−13 %) over 4 weeks at 150 mg, "
                                               "below the 25 % threshold"}],
                             protocol_name="default", protocol_hash="ab" * 32,
                             created_at=_aware(start + timedelta(days=days // 2 - 1), 8),
                             decided_by_id=paul.id, decided_at=_aware(start + timedelta(days=days // 2), 8),
                             decision_rationale="Agree; tolerating well.", decided_dose_mg=200,
                             decided_interval_days=7))
        s.add(DoseAdjustment(patient_id=pid, kind="suggestion", status="superseded", action="continue",
                             reasons=[{"code": "x", "text": "SUPERSEDED-SUGGESTION"}],
                             created_at=_aware(start + timedelta(days=3), 8)))
        s.flush()
        return PdfWorld(pid, dosing.id, integration.id, draft.id, other.id, addenda_texts, dose_ids=dose_ids)


OVERRIDE_RATIONALE = "Family <b>insists</b> & AT&T a<b: benefit outweighs the BP risk"


@dataclass
class SafetyWorld:
    held_version: int
    override_version: int
    plan_versions: int


def add_safety_story(engine, clinic, world: PdfWorld) -> SafetyWorld:
    """What the summary's safety section and adverse events must show: untagged high BP, a
    positive PHQ-9 item 9 today, engine holds, a held plan version, an override decision that
    produced a plan version, and an urgent item still waiting."""
    pid, tina, paul = world.patient_id, clinic.tina, clinic.paul
    today = datetime.now(UTC).date()
    with session_scope(engine) as s:
        for day, pre, post, tags in ((today - timedelta(days=6), (168, 104), (150, 92), ""),
                                     (today - timedelta(days=4), (132, 84), (192, 118), "chest_pain"),
                                     (today - timedelta(days=3), (150, 95), (158, 99), "")):
            s.add(DoseEntry(patient_id=pid, taken_at=_aware(day, 14, 5), dose_mg=200, formulation="odt",
                            administration="spit", context="home", bp_systolic_pre=pre[0], bp_diastolic_pre=pre[1],
                            bp_systolic_post=post[0], bp_diastolic_post=post[1], adverse_events=tags,
                            entered_by_id=tina.id))
        items = [1, 1, 1, 1, 1, 1, 1, 1, 1]
        sc = score("PHQ-9", items=items)
        s.add(Assessment(patient_id=pid, instrument="PHQ-9", administered_on=today - timedelta(days=2), items=items,
                         total=sc.total, band=sc.band, item9=1, loinc_panel="x", loinc_total="y",
                         entered_by_id=tina.id))
        hold_reason = {"code": "suicidality", "text": f"PHQ-9 of {today - timedelta(days=2)} answers item 9 with 1."}
        for status, days_ago in (("superseded", 2), ("superseded", 1)):
            s.add(DoseAdjustment(patient_id=pid, kind="suggestion", status=status, action="hold",
                                 proposed_dose_mg=200, proposed_interval_days=7, flags=["suicidality"],
                                 reasons=[hold_reason], created_at=_aware(today - timedelta(days=days_ago), 8)))
        top = s.exec(select(TreatmentPlan).where(TreatmentPlan.patient_id == pid)
                     .order_by(TreatmentPlan.version_number.desc())).first()
        held = TreatmentPlan(patient_id=pid, version_number=top.version_number + 1, formulation="odt", dose_mg=200,
                             interval_days=7, status="held", effective_from=_aware(today - timedelta(days=4), 16),
                             approved_by_id=paul.id, rationale="Chest pain after the dose: held pending review.")
        s.add(held)
        s.flush()
        override = DoseAdjustment(
            patient_id=pid, kind="proposal", status="approved", action="increase", plan_id=held.id,
            proposed_dose_mg=250, proposed_interval_days=7, created_at=_aware(today - timedelta(days=1), 9),
            created_by_id=tina.id, decided_by_id=paul.id, decided_at=_aware(today - timedelta(days=1), 11),
            decision_rationale="Discussed with the family and the patient.", decided_dose_mg=250,
            decided_interval_days=7, override_rules=["suicidality", "hypertension_severe"],
            override_rationale=OVERRIDE_RATIONALE)
        s.add(override)
        s.flush()
        resumed = TreatmentPlan(patient_id=pid, version_number=held.version_number + 1, formulation="odt",
                                dose_mg=250, interval_days=7, status="active",
                                effective_from=_aware(today - timedelta(days=1), 11), approved_by_id=paul.id,
                                rationale="Discussed with the family and the patient.", adjustment_id=override.id)
        s.add(resumed)
        s.flush()
        override.resulting_plan_id = resumed.id
        s.add(override)
        s.add(DoseAdjustment(patient_id=pid, kind="suggestion", status="pending", action="hold", plan_id=resumed.id,
                             proposed_dose_mg=250, proposed_interval_days=7, flags=["suicidality"],
                             reasons=[hold_reason], created_at=_aware(today, 7)))
        s.add(DoseAdjustment(patient_id=pid, kind="suggestion", status="pending", action="decrease",
                             plan_id=resumed.id, proposed_dose_mg=200, proposed_interval_days=7, flags=["hypertension"],
                             reasons=[{"code": "hypertension", "text": "2 of the last 3 doses met 160/100."}],
                             created_at=_aware(today - timedelta(days=1), 7)))
        s.flush()
        return SafetyWorld(held.version_number, resumed.version_number, resumed.version_number)
