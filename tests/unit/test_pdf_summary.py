"""Treatment summary PDF: sections, range, response/remission, repeating dose-table header,
drafts only when asked, process notes never, vector chart, audit, byte-identical output."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlmodel import select

from kapnotes import exports
from kapnotes.db import make_engine, session_scope
from kapnotes.errors import PermissionDenied, ValidationError
from kapnotes.models import AuditEvent
from kapnotes.pdf.model import ScoreRow
from kapnotes.pdf.note_pdf import fmt_number
from kapnotes.pdf.summary_pdf import Outcome
from tests.factories import make_clinic
from tests.helpers.backends import SQLITE_ONLY
from tests.unit.pdf_data import (
    FIXED,
    OVERRIDE_RATIONALE,
    add_safety_story,
    assert_every_page_framed,
    build_world,
    flat,
    pdf_text,
    qpdf_ok,
)


@pytest.fixture
def world(engine, clinic):
    return build_world(engine, clinic, days=60)


def summary_text(pdf: bytes) -> str:
    return flat("\n".join(pdf_text(pdf)[1]))


def _summary(engine, clinic) -> str:
    """Tina's summary of patient A1, as flat text."""
    with session_scope(engine) as s:
        return summary_text(exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED))


def test_summary_has_every_section(engine, clinic, world, tmp_path):
    with session_scope(engine) as s:
        pdf = exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED)
    qpdf_ok(pdf, tmp_path)
    text = summary_text(pdf)
    for heading in ("Treatment summary", "Response and remission", "Treatment plan history",
                    "GAD-7 and PHQ-9 over time", "Dose log", "Adverse events",
                    "Dose-adjustment suggestions and decisions", "Session notes (signed)"):
        assert heading in text, heading
    assert "Session notes in brief; the full notes are available with" in text and "--full-notes" in text
    # header and diagnosis
    assert "Alice Able" in text and "A-001" in text and "1985-01-02" in text
    assert "F41.1 — Generalized anxiety disorder" in text
    assert "Paul Park (prescriber)" in text and "Tina Torres (therapist)" in text
    # plan history: both versions, who approved, why
    assert "Initial plan." in text
    assert "GAD-7 only 13 % lower after 4 weeks: increase to 200 mg." in text
    assert "Paul Park, MD" in text and "200 mg" in text and "every 7 d" in text
    # adverse events, suggestions and decisions
    assert "nausea; dizziness" in text and "vomited" in text
    assert "GAD-7 15 → 13 (−13 %) over 4 weeks at 150 mg, below the 25 % threshold" in text
    assert "approved by Paul Park, MD" in text and "Agree; tolerating well." in text
    assert "SUPERSEDED-SUGGESTION" not in text
    # voided dose entries never print
    assert "VOIDED-ENTRY" not in text and "999 mg" not in text
    # the signed notes in the range: in brief by default, in full with their addenda when asked
    notes = text[text.index("Session notes in brief"):]
    assert "KAP dosing session" in notes and "Integration session" in notes
    assert notes.count("verified") == 2
    assert "KAP dosing session note" not in text
    with session_scope(engine) as s:
        full = summary_text(exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED, full_notes=True))
    assert "KAP dosing session note" in full and "Integration session note" in full
    assert "Session notes in brief" not in full
    for addendum in world.addenda_texts:
        assert flat(addendum) in full and flat(addendum) not in text
    meta = PdfReader(io.BytesIO(pdf)).metadata
    assert meta.title.startswith("Treatment summary — Alice Able (A-001)")
    assert meta.author == "Tina Torres, LMFT" and "treatment summary" in meta.subject.lower()


def test_every_page_has_the_frame(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.summary_pdf(s, clinic.paul, clinic.a1, generated_at=FIXED)
    assert_every_page_framed(pdf, "Alice Able · MRN A-001", "by Paul Park, MD", min_pages=3)


def test_private_process_notes_never_and_drafts_only_when_asked(engine, clinic, world):
    with session_scope(engine) as s:
        plain = summary_text(exports.summary_pdf(s, clinic.tina, clinic.a1, full_notes=True))
        with_drafts = summary_text(exports.summary_pdf(s, clinic.tina, clinic.a1, include_drafts=True,
                                                       full_notes=True))
        paul_drafts = summary_text(exports.summary_pdf(s, clinic.paul, clinic.a1, include_drafts=True,
                                                       full_notes=True))
        brief = summary_text(exports.summary_pdf(s, clinic.tina, clinic.a1, include_drafts=True))
    for text in (plain, with_drafts, paul_drafts, brief):
        assert world.process_text not in text
    assert "DRAFT, not signed" in brief  # a draft asked for is a row of its own, marked
    assert world.draft_text not in plain and world.other_draft_text not in plain
    # tina asked for drafts: her own draft, never paul's
    assert world.draft_text in with_drafts and world.other_draft_text not in with_drafts
    assert "includes unsigned drafts" in with_drafts and "DRAFT — not signed." in with_drafts
    assert world.other_draft_text in paul_drafts and world.draft_text not in paul_drafts


@pytest.mark.slow
def test_date_range_limits_doses_scores_and_notes(engine, clinic, world):
    with session_scope(engine) as s:
        full = exports.gather_summary(s, clinic.tina, clinic.a1)
        dosing_day = full.notes[0].session_date
        late_from = dosing_day + timedelta(days=5)
        late = exports.gather_summary(s, clinic.tina, clinic.a1, late_from, full.date_to)
    assert full.date_from <= dosing_day <= full.date_to
    assert all(d.taken_on >= late_from for d in late.doses) and len(late.doses) < len(full.doses)
    assert all(x.administered_on >= late_from for x in late.scores)
    assert [n.note_type for n in full.notes] == ["dosing", "integration"]
    assert all(n.session_date >= late_from for n in late.notes)
    assert "Line one of the free text." in summary_text(exports.render_summary(dataclasses.replace(full,
                                                                                                 full_notes=True)))
    assert "Line one of the free text." not in summary_text(exports.render_summary(dataclasses.replace(late,
                                                                                                     full_notes=True)))
    # the baseline stays the earliest GAD-7 on record, even outside the range
    assert late.baseline["GAD-7"].administered_on == full.baseline["GAD-7"].administered_on


def test_bad_range_is_refused(engine, clinic, world):
    with session_scope(engine) as s, pytest.raises(ValidationError) as exc:
        exports.summary_pdf(s, clinic.tina, clinic.a1, date(2026, 5, 2), date(2026, 5, 1))
    assert "date_from" in exc.value.errors
    with session_scope(engine) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "export.summary_pdf")).first() is None


@pytest.mark.parametrize("who", ["theo", "pia", "ada", None])
def test_outsiders_cannot_export(engine, clinic, world, who):
    actor = getattr(clinic, who) if who else None
    with session_scope(engine) as s, pytest.raises(PermissionDenied):
        exports.summary_pdf(s, actor, clinic.a1)


def test_export_is_audited_with_ids_and_counts_only(engine, clinic, world):
    with session_scope(engine) as s:
        data = exports.prepare_summary(s, clinic.tina, clinic.a1, include_drafts=True)
    with session_scope(engine) as s:
        ev = s.exec(select(AuditEvent).where(AuditEvent.action == "export.summary_pdf")).one()
    assert (ev.actor_id, ev.record_type, ev.record_id, ev.patient_id) == (clinic.tina.id, "patient", str(clinic.a1),
                                                                           clinic.a1)
    assert ev.detail == (f"from={data.date_from};to={data.date_to};notes=3;drafts=1;doses={len(data.doses)};"
                         f"scores={len(data.scores)}")


def test_response_and_remission_status(engine, clinic, world):
    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1)
    gad = [x for x in data.scores if x.instrument == "GAD-7"]
    baseline, latest = data.baseline["GAD-7"], max(gad, key=lambda x: (x.administered_on, x.id))
    text = summary_text(exports.render_summary(data))
    change = round((latest.total - baseline.total) / baseline.total * 100)
    row = (f"GAD-7 {baseline.total} ({baseline.band}), {baseline.administered_on} {latest.total} ({latest.band}), "
           f"{latest.administered_on} {change:+d} %")
    assert row in text
    response = "Yes (≥ 50 % below baseline)" if -change >= 50 else "No"
    remission = "Yes (< 5)" if latest.total < 5 else "No"
    assert f"{row} {response} {remission}" in text
    assert "Response: total at least 50 % below the earliest score on record." in text


@pytest.mark.parametrize(("base", "latest", "response", "remission"), [
    (20, 10, True, False),   # exactly 50 % below: response
    (20, 11, False, False),  # 45 %
    (8, 4, True, True),      # < 5: remission
    (8, 5, False, False),    # 5 is not remission
    (0, 0, False, True),     # no baseline change computable
])
def test_outcome_edges(base, latest, response, remission):
    o = Outcome("GAD-7", ScoreRow(1, "GAD-7", date(2026, 1, 1), base, "x"),
                ScoreRow(2, "GAD-7", date(2026, 2, 1), latest, "y"))
    assert (o.response, o.remission) == (response, remission)


def test_chart_is_vector_and_no_page_has_an_image(engine, clinic, world):
    with session_scope(engine) as s:
        pdf = exports.summary_pdf(s, clinic.tina, clinic.a1)
    reader = PdfReader(io.BytesIO(pdf))
    for page in reader.pages:
        assert list(page.images) == []
    chart_page = next(p for p in reader.pages if "GAD-7 and PHQ-9 over time" in (p.extract_text() or ""))
    content = chart_page.get_contents().get_data()
    assert content.count(b" l") + content.count(b" c") > 50  # drawn with path operators
    text = chart_page.extract_text()
    assert "Planned dose (mg, right axis" in text and "Remission: below 5" in text and "GAD-7 response: ≤" in text


def test_invariant_output_is_byte_identical(engine, clinic, world):
    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
    assert exports.render_summary(data, invariant=True) == exports.render_summary(data, invariant=True)


@pytest.mark.slow
def test_one_year_summary_repeats_the_dose_table_header(sqlite_url, tmp_path):
    """365 daily doses and 52 weekly notes, the full log: the dose table spans pages, each with its header row."""
    engine = make_engine(sqlite_url)
    clinic = make_clinic(engine)
    build_world(engine, clinic, days=365, weekly_notes=True)
    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED, full_dose_log=True)
        pdf = exports.render_summary(data)
    assert len(data.doses) >= 365 and len(data.notes) >= 52
    qpdf_ok(pdf, tmp_path)
    pages = pdf_text(pdf)[1]
    dose_pages = [flat(p) for p in pages if "ODT, Spit Home" in flat(p)]
    assert len(dose_pages) >= 5
    for page in dose_pages:
        assert "Anxiety before → after" in page and "BP pre → post (mmHg)" in page
    # the long notes cell wraps instead of running off the page: all of it is printed
    assert "about the evening after the dose, entry 0" in flat("\n".join(pages))
    engine.dispose()


def test_patient_without_any_data(engine, clinic):
    with session_scope(engine) as s:
        pdf = exports.summary_pdf(s, clinic.tina, clinic.a2)
    text = summary_text(pdf)
    assert "No doses logged in this period." in text
    assert "No GAD-7 or PHQ-9 recorded in this period" in text
    assert "No signed notes in this period." in text


def test_fingerprint_ignores_who_and_when_but_not_data(engine, clinic, world):
    with session_scope(engine) as s:
        a = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
        b = exports.gather_summary(s, clinic.paul, clinic.a1, generated_at=datetime.now(UTC))
        c = exports.gather_summary(s, clinic.tina, clinic.a1, a.date_from + timedelta(days=1), a.date_to)
    assert exports.fingerprint(a) == exports.fingerprint(b)
    assert exports.fingerprint(a) != exports.fingerprint(c)


@pytest.mark.slow
@SQLITE_ONLY
def test_a_dose_log_of_1000_rows_prints_every_row_in_order(engine, clinic, world):
    """The dose log is one long table split across pages: no row lost, duplicated or reordered."""
    from kapnotes.pdf.model import DoseRow

    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
    start = date(2024, 1, 1)
    doses = [DoseRow(id=i + 1, taken_at=f"{(start + timedelta(days=i)).isoformat()} 20:{i % 60:02d}",
                     taken_on=start + timedelta(days=i), dose_mg=100.0, formulation="odt", context="home",
                     notes=f"row-{i:04d}-end")
             for i in range(1000)]
    pdf = exports.render_summary(dataclasses.replace(data, doses=doses, notes=[], full_dose_log=True))
    text = flat("\n".join(pdf_text(pdf)[1]))
    positions = [text.find(f"row-{i:04d}-end") for i in range(1000)]
    assert all(p >= 0 for p in positions)
    assert positions == sorted(positions)
    assert all(text.count(f"row-{i:04d}-end") == 1 for i in range(0, 1000, 97))
    assert "1000 doses taken in the period" in text


@pytest.mark.slow
@SQLITE_ONLY
def test_long_note_fields_and_dose_notes_split_across_pages(engine, clinic, world):
    """In the summary, a note field and a dose's notes each longer than a page print whole, in order."""
    from tests.unit.pdf_data import long_text as _long_text

    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
    assert data.notes and data.doses
    note = data.notes[0]
    key = next(iter(note.fields))
    notes = [dataclasses.replace(note, fields={**note.fields, key: _long_text("fld", 300)}), *data.notes[1:]]
    doses = [dataclasses.replace(data.doses[0], notes=_long_text("dnt", 300)), *data.doses[1:]]
    text = flat("\n".join(pdf_text(exports.render_summary(dataclasses.replace(data, notes=notes, doses=doses,
                                                                            full_dose_log=True,
                                                                            full_notes=True)))[1]))
    for tag in ("fld", "dnt"):
        positions = [text.find(f"{tag}-{i:04d} ") for i in range(300)]
        assert all(p >= 0 for p in positions), f"{tag}: missing sentence {positions.index(-1)}"
        assert positions == sorted(positions)


@pytest.mark.slow
def test_summary_notes_leave_out_empty_fields_and_keep_links_and_signature(engine, clinic, world):
    """In the summary a note lists the fields with an answer (the note's own PDF lists all),
    its linked doses on a line, and its signature, with a hash mismatch still printed loudly."""
    from kapnotes.notes.templates import template

    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
    dosing = next(n for n in data.notes if n.note_type == "dosing" and n.doses)
    specs = [f for f in template("dosing").fields if f.label not in ("Intention",)]
    empty_spec = next(f for f in specs if "Booster" in f.label)
    fields = {**dosing.fields, empty_spec.name: None, "legacy_blank": "  ", "legacy_false": False}
    note = dataclasses.replace(dosing, fields=fields, hash_verified=False)
    text = flat("\n".join(pdf_text(exports.render_summary(dataclasses.replace(data, notes=[note],
                                                                            full_notes=True)))[1]))
    assert "Fields without an answer are left out here" in text
    assert flat(empty_spec.label) not in text and "legacy_blank" not in text
    assert "legacy_false" in text  # False is an answer ("No"), not an empty field
    assert "Linked dose-log entries (in the dose log above)" in text
    assert f"{fmt_number(note.doses[0].dose_mg)} mg" in text
    assert "Electronically signed by" in text
    assert "WARNING: the stored hash does not match the note's content." in text
    with session_scope(engine) as s:
        meta, patient, _ = exports.prepare_note(s, clinic.tina, dosing.id, record=False)
    full = flat("\n".join(pdf_text(exports.render_note(meta, patient, note))[1]))
    assert flat(empty_spec.label) in full and "legacy_blank" in full


# --- the safety section, untagged high BP, superseded plan versions (issue 13 §6) ---------------


def _section(text: str, start: str, end: str) -> str:
    assert start in text and end in text, (start, end)
    return text[text.index(start):text.index(end, text.index(start))]


@pytest.fixture
def safety_world(engine, clinic, world):
    return add_safety_story(engine, clinic, world)


def test_summary_opens_with_the_safety_section(engine, clinic, safety_world, tmp_path):
    with session_scope(engine) as s:
        pdf = exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED)
    qpdf_ok(pdf, tmp_path)
    text = summary_text(pdf)
    safety = _section(text, "Safety Active safety flags today", "Response and remission")
    assert text.index("Safety Active safety flags today") < text.index("Response and remission")
    # active flags, in words with their facts
    assert "Suicidality (PHQ-9 item 9 above 0): PHQ-9 of" in safety
    assert "Severe hypertension (blood pressure at or above the hold threshold)" in safety
    assert "Serious adverse event" in safety
    # holds: the engine's run of re-evaluations is one line; the held plan version
    holds = _section(safety, "Holds in the period", "Decisions with a safety override")
    # two re-evaluations with the same flags, the later superseding the earlier: one line, dated as a run
    assert holds.count("Engine hold: Suicidality") == 1 and "replaced by a newer evaluation" in holds
    day1, day2 = (str(datetime.now(UTC).date() - timedelta(days=n)) for n in (2, 1))
    assert f"{day1} to {day2} Engine hold: Suicidality" in holds
    assert f"Plan version {safety_world.held_version} held" in holds
    assert "Chest pain after the dose: held pending review." in holds
    # the override: when, who, the conditions overridden in words, the rationale as typed
    overrides = _section(safety, "Decisions with a safety override", "Urgent items still waiting")
    assert "Increase to 250 mg every 7 days, overriding: Suicidality (PHQ-9 item 9 above 0); Severe hypertension" \
        in overrides
    assert "Paul Park, MD" in overrides
    assert f"Override rationale: {OVERRIDE_RATIONALE}" in overrides  # escaped: printed literally
    # urgent items still waiting
    waiting = safety[safety.index("Urgent items still waiting"):]
    assert "Decrease: 200 mg every 7 days" in waiting and "2 of the last 3 doses met 160/100." in waiting
    assert "Hold: 250 mg every 7 days" in waiting and waiting.count("waiting for the prescriber") == 2
    # codes never reach the reader
    for code in ("hypertension_severe", "serious_adverse_event", "suicidality,", "override_rules"):
        assert code not in safety


def test_safety_section_says_so_when_nothing_is_flagged(engine, clinic, world):
    safety = _section(_summary(engine, clinic), "Safety Active safety flags today", "Response and remission")
    for words in ("None: no suicidality, severe hypertension, serious adverse event, overuse or dose above the plan",
                  "No hold in this period.", "No decision overrode a safety rule in this period.",
                  "No urgent item is waiting for the prescriber."):
        assert words in safety


BP_EVENTS = ("Blood pressure at or above the protocol's thresholds", "Dose-adjustment suggestions and")


def test_untagged_blood_pressure_over_the_thresholds_is_an_adverse_event(engine, clinic, safety_world):
    events = _section(_summary(engine, clinic), *BP_EVENTS)
    for words in ("160/100 (decrease) and 180/110 (hold)", "BP 168/104 before the dose, not tagged",
                  "chest pain; BP 192/118 after the dose (hold level)"):
        assert words in events
    assert "150/95" not in events and "158/99" not in events  # below the thresholds: not an event


def test_blood_pressure_thresholds_come_from_the_protocol_in_force(engine, clinic, safety_world, monkeypatch):
    from dataclasses import replace

    from kapnotes.dosing import protocol as protocol_mod

    stricter = replace(protocol_mod.load_default(), decrease_systolic=150, decrease_diastolic=95)
    monkeypatch.setattr(exports.protocol_mod, "in_force", lambda session=None: stricter)
    events = _section(_summary(engine, clinic), *BP_EVENTS)
    assert "150/95 (decrease) and 180/110 (hold)" in events
    assert "BP 150/95 before the dose; BP 158/99 after the dose, not tagged" in events


def test_plan_history_labels_superseded_versions_and_prints_the_override(engine, clinic, safety_world):
    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
        text = summary_text(exports.render_summary(data))
    history = _section(text, "Treatment plan history", "GAD-7 and PHQ-9 over time")
    n = safety_world.plan_versions
    assert [p.superseded for p in data.plans] == [True] * (n - 1) + [False]
    assert history.count("superseded") == n - 1
    assert "superseded (was held)" in history
    assert (f"Safety override (Suicidality (PHQ-9 item 9 above 0); Severe hypertension (blood pressure at or above "
            f"the hold threshold)): {OVERRIDE_RATIONALE}") in history


# --- shorter summaries: home doses by week, doses that need attention one by one (issue 17 item 4) ----


@pytest.mark.slow
def test_four_months_of_the_heaviest_demo_patient_fit_in_a_few_pages(tmp_path, sqlite_template):
    """The demo's daily patient over 4 months: a few pages, and the weekly counts add up to the
    doses on record (not voided) in that range."""
    import shutil

    from sqlmodel import func

    from kapnotes.auth import load_actor
    from kapnotes.config import get_settings
    from kapnotes.models import DoseEntry, NoteStatus, Patient, SessionNote, User
    from kapnotes.seed import HEAVIEST_MRN, seed_demo

    path = tmp_path / "demo.db"
    shutil.copy(sqlite_template, path)
    eng = make_engine(f"sqlite:///{path}")
    today = date(2026, 11, 1)
    seed_demo(eng, patients=1, years=0.5, seed=7, today=today)
    d_from, d_to = today - timedelta(days=121), today
    with session_scope(eng) as s:
        pid = s.exec(select(Patient.id).where(Patient.mrn == HEAVIEST_MRN)).one()
        actor = load_actor(s, s.exec(select(User.id).where(User.username == "tsato")).one())
        data = exports.gather_summary(s, actor, pid, d_from, d_to, generated_at=FIXED)
        start, end = exports.day_bounds(d_from, d_to, get_settings().tz)
        on_record = s.exec(select(func.count()).select_from(DoseEntry).where(
            DoseEntry.patient_id == pid, DoseEntry.voided_at.is_(None), DoseEntry.taken_at >= start,
            DoseEntry.taken_at < end)).one()
        signed = s.exec(select(SessionNote.session_date, SessionNote.note_type).where(
            SessionNote.patient_id == pid, SessionNote.status == NoteStatus.signed,
            SessionNote.session_date >= d_from, SessionNote.session_date <= d_to)).all()
    eng.dispose()
    assert on_record >= 100  # daily dosing: four months of it
    assert sum(w.taken for w in data.weeks) == on_record == len(data.doses)
    assert 17 <= len(data.weeks) <= 19
    pdf = exports.render_summary(data)
    qpdf_ok(pdf, tmp_path)
    reader, pages = pdf_text(pdf)
    # the whole summary, signed notes in brief included, fits in a few pages
    assert len(pages) <= 6, len(pages)
    text = flat("\n".join(pages))
    assert "Home doses by week; the full log is available with" in text
    assert "--full-dose-log" in text and "Doses that need attention" in text
    assert "Session notes in brief; the full notes are available with" in text and "--full-notes" in text
    # one row per signed note in the range, as many as the database holds
    assert len(signed) >= 10 and len(data.notes) == len(signed)
    from kapnotes.pdf.note_pdf import note_type_label

    brief = text[text.index("Session notes in brief"):]
    for t in {t for _, t in signed}:
        assert brief.count(note_type_label(t)) == sum(1 for _, x in signed if x == t), t
    assert all(d.isoformat() in brief for d, _ in signed)
    assert brief.count("verified") == len(signed)
    # the full notes and the full dose log are each longer
    full_notes = exports.render_summary(dataclasses.replace(data, full_notes=True))
    assert len(PdfReader(io.BytesIO(full_notes)).pages) > len(pages) + 5
    full_log = exports.render_summary(dataclasses.replace(data, full_dose_log=True))
    assert len(PdfReader(io.BytesIO(full_log)).pages) > len(pages)


def test_weekly_table_counts_doses_and_lists_attention_doses_one_by_one(engine, clinic, world, tmp_path):
    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
    assert sum(w.taken for w in data.weeks) == len(data.doses)
    assert sum(w.voided for w in data.weeks) == data.voided == 1
    pdf = exports.render_summary(data)
    qpdf_ok(pdf, tmp_path)
    text = summary_text(pdf)
    weekly = _section(text, "Home doses by week", "Doses that need attention")
    assert "Taken / planned" in weekly and "Highest BP" in weekly
    assert "150 mg ×" in weekly and "severe" in weekly and "nausea; dizziness" in weekly
    assert "136/86" in weekly  # the highest reading of a week
    assert "999 mg" not in text and "VOIDED-ENTRY" not in text  # voided: counted, never printed
    # an ordinary home dose is only summed, never printed on its own line
    ordinary = [d for d in data.doses if d.context == "home" and d.id not in {a.dose.id for a in data.attention}]
    assert ordinary and all(d.taken_at.split(" ")[0] + " " + d.taken_at.split(" ")[1] not in text for d in ordinary)
    attention = _section(text, "Doses that need attention", "Adverse events")
    ids = {a.dose.id: a.reasons for a in data.attention}
    in_session = next(d for d in data.doses if d.context == "in_session")
    assert ids[in_session.id] == ("In session",)
    vomited = next(d for d in data.doses if d.vomited)
    assert "Vomited" in ids[vomited.id]
    for a in data.attention:
        assert a.dose.taken_at in attention  # each on its own line, with its time
    assert "In session" in attention and "Vomited" in attention and "Severe nausea (3 of 3)" in attention
    assert "Adverse event: nausea; dizziness" in attention


def test_a_dose_above_the_plan_and_high_bp_need_attention(engine, clinic, world, safety_world):
    from kapnotes.models import DoseEntry

    with session_scope(engine) as s:
        when = datetime.now(UTC) - timedelta(hours=2)
        s.add(DoseEntry(patient_id=clinic.a1, taken_at=when, dose_mg=400, formulation="odt", context="home",
                        entered_by_id=clinic.tina.id, notes="TOO-MUCH"))
    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
    reasons = {a.dose.dose_mg: a.reasons for a in data.attention}
    assert reasons[400.0] == ("Dose above the plan (400 mg; plan 250 mg)",)
    high = [a for a in data.attention if any("BP 168/104 before the dose" in r for r in a.reasons)]
    assert len(high) == 1  # untagged, but at or above the decrease threshold
    text = summary_text(exports.render_summary(data))
    attention = _section(text, "Doses that need attention", "Adverse events")
    assert "Dose above the plan (400 mg; plan 250 mg)" in attention and "TOO-MUCH" in attention
    assert "BP 168/104 before the dose" in attention


def test_full_dose_log_prints_every_dose(engine, clinic, world, tmp_path):
    with session_scope(engine) as s:
        pdf = exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED, full_dose_log=True)
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED, full_dose_log=True)
    qpdf_ok(pdf, tmp_path)
    text = summary_text(pdf)
    assert "Every dose is listed (the full log)." in text and "Home doses by week" not in text
    log = _section(text, "Every dose is listed", "Doses that need attention")
    for d in data.doses:
        assert d.taken_at in log
    assert log.count("ODT, Spit") == len(data.doses)


def test_hostile_text_in_attention_doses_prints_literally(engine, clinic, tmp_path):
    from kapnotes.models import DoseEntry
    from tests.unit.pdf_data import HOSTILE

    build_world(engine, clinic, days=20)
    hostile = " | ".join(HOSTILE[:4] + HOSTILE[8:])
    with session_scope(engine) as s:
        s.add(DoseEntry(patient_id=clinic.a1, taken_at=datetime.now(UTC) - timedelta(days=3), dose_mg=150,
                        formulation="odt", context="home", vomited=True, notes=hostile,
                        adverse_events="<b>bold</b>;AT&T", entered_by_id=clinic.tina.id))
    with session_scope(engine) as s:
        pdf = exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED)
    qpdf_ok(pdf, tmp_path)
    text = summary_text(pdf)
    attention = _section(text, "Doses that need attention", "Adverse events")
    for piece in ("<b>", '<img src="/etc/passwd">', "AT&T", "a<b", "<font color=red>red</font>", "&amp; &lt;"):
        assert piece in attention, piece
    assert "Adverse event: <b>bold</b>; AT&T" in attention
    weekly = _section(text, "Home doses by week", "Doses that need attention")
    assert "<b>bold</b>" in weekly and "AT&T" in weekly


# --- shorter summaries: signed notes in brief, one row each (issue 17 item 4) -----------------------


def test_notes_in_brief_show_a_hash_mismatch_in_red(engine, clinic, world):
    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
    assert all(n.hash_verified for n in data.notes)
    bad = dataclasses.replace(data.notes[0], hash_verified=False)
    pdf = exports.render_summary(dataclasses.replace(data, notes=[bad, *data.notes[1:]]))
    text = summary_text(pdf)
    brief = text[text.index("Session notes in brief"):]
    assert brief.count("MISMATCH") == 1 and brief.count("verified") == len(data.notes) - 1
    assert f"WARNING: the stored hash does not match the note's content ({bad.session_date.isoformat()})." in brief
    # the word is drawn in the warning red, as the full note prints its warning
    page = next(p for p in PdfReader(io.BytesIO(pdf)).pages if "MISMATCH" in (p.extract_text() or ""))
    content = page.get_contents().get_data().decode("latin-1")
    assert re.search(r"0?\.70588\d* 0?\.13725\d* 0?\.09411\d* rg", content)  # #b42318


def test_notes_in_brief_print_the_intention_cut_short_and_hostile_text_literally(engine, clinic, world, tmp_path):
    from tests.unit.pdf_data import HOSTILE

    with session_scope(engine) as s:
        data = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
    dosing = next(n for n in data.notes if n.note_type == "dosing")
    assert dosing.fields["intention"] == "Meet the worry with curiosity"
    hostile = " ".join(HOSTILE[:4] + HOSTILE[9:])
    long_theme = "word " * 60 + "END-OF-THEME"
    notes = [dataclasses.replace(dosing, fields={**dosing.fields, "intention": hostile}, author="<i>Dr</i> A&B"),
             dataclasses.replace(dosing, id=-1, fields={**dosing.fields, "intention": long_theme})]
    pdf = exports.render_summary(dataclasses.replace(data, notes=notes))
    qpdf_ok(pdf, tmp_path)
    brief = summary_text(pdf)
    brief = brief[brief.index("Session notes in brief"):]
    for piece in ("<b>", '<img src="/etc/passwd">', "AT&T", "a<b", "<font color=red>red</font>", "&amp; &lt;",
                  "<i>Dr</i> A&B"):
        assert piece in brief, piece
    assert "Intention: word word" in brief and "END-OF-THEME" not in brief and "…" in brief
    assert "Meet the worry" not in brief  # replaced above: the row shows the note's own field
    # the full notes print every word
    full = summary_text(exports.render_summary(dataclasses.replace(data, notes=notes, full_notes=True)))
    assert "END-OF-THEME" in full


def test_full_notes_is_part_of_the_fingerprint(engine, clinic, world):
    with session_scope(engine) as s:
        brief = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED)
        full = exports.gather_summary(s, clinic.tina, clinic.a1, generated_at=FIXED, full_notes=True)
    assert not brief.full_notes and full.full_notes
    assert exports.fingerprint(brief) != exports.fingerprint(full)
