"""Every page, as each role, speaks in words (issue 16, item 5).

The patient has every kind of record: doses with tags, every context, a voided one, scores, signed
and draft notes with addenda, plan versions (held, resumed), engine suggestions and therapist
proposals with decisions including a safety override, urgent items waiting, and a check-in link.
Each page is run as each role that may open it (dose-log tabs, the note viewer and the note editor
too) and its rendered text is scanned for snake_case tokens, raw stored codes, "every 1 days",
"modifyed" and record ids (``tests.helpers.words.code_words``).
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from streamlit.testing.v1 import AppTest

from kapnotes import checkin
from kapnotes.db import make_engine, session_scope
from kapnotes.doses import CSV_COLUMNS
from kapnotes.models import DoseAdjustment, DoseEntry
from tests.factories import make_clinic
from tests.helpers.apptest import run_page
from tests.helpers.uitext import app_pages, rendered_text
from tests.helpers.words import code_words
from tests.unit.pdf_data import add_safety_story, build_world

ROLES = {"therapist": "tina", "prescriber": "paul", "admin": "ada"}
# The import page names the file's own column headers (what a spreadsheet must hold) and offers
# them in its column mapping: those snake_case words are the file format, shown on purpose there.
IMPORT_ALLOWED = tuple(sorted(CSV_COLUMNS, key=len, reverse=True)) + ("dose_log_template",)
ICON = re.compile(r":material/[a-z0-9_]+:")  # drawn as an icon, never read as text
# The audit log is the record itself: its action codes (``patient.open``, ``checkin.link_create``) and the
# page a record was opened from are what an auditor filters and matches against the logs.
AUDIT_CODES = re.compile(r"\b[a-z_]+(?:\.[a-z_]+)+\b")
AUDIT_PAGES = tuple(p.split("/")[-1][:-3] for p, *_ in app_pages())


pytestmark = pytest.mark.xdist_group("words")  # one worker builds the record once


@pytest.fixture(scope="module")
def world(tmp_path_factory, sqlite_template):
    path = tmp_path_factory.mktemp("words") / "words.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    clinic = make_clinic(engine)
    w = build_world(engine, clinic, days=60)
    add_safety_story(engine, clinic, w)
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        for days_ago, context, adm, tags in ((5, "home_with_sitter", "swallow", "chest_pain;fall"),
                                             (8, "in_session", "spit", "breathing_difficulty")):
            s.add(DoseEntry(patient_id=clinic.a1, taken_at=now - timedelta(days=days_ago), dose_mg=200,
                            formulation="sublingual", administration=adm, context=context, adverse_events=tags,
                            entered_by_id=clinic.tina.id))
        s.add(DoseEntry(patient_id=clinic.a1, taken_at=now - timedelta(days=9), dose_mg=200, formulation="troche",
                        context="home", entered_by_id=clinic.tina.id, source="patient"))
        s.add(DoseAdjustment(patient_id=clinic.a1, kind="proposal", status="rejected", action="space_out",
                             proposed_dose_mg=200, proposed_interval_days=1, created_by_id=clinic.tina.id,
                             sent_by_id=clinic.tina.id, reasons=[{"code": "proposal", "text": "Wants daily."}],
                             decided_by_id=clinic.paul.id, decided_at=now - timedelta(days=2),
                             decision_rationale="Weekly stays.", created_at=now - timedelta(days=3)))
        s.add(DoseAdjustment(patient_id=clinic.a1, kind="proposal", status="modified", action="increase",
                             proposed_dose_mg=250, proposed_interval_days=7, created_by_id=clinic.tina.id,
                             sent_by_id=clinic.tina.id, reasons=[{"code": "proposal", "text": "More effect."}],
                             decided_by_id=clinic.paul.id, decided_at=now - timedelta(days=20),
                             decision_rationale="One step.", decided_dose_mg=200, decided_interval_days=1,
                             created_at=now - timedelta(days=21)))
        checkin.create_link(s, clinic.tina, clinic.a1, days=7)
    engine.dispose()
    return SimpleNamespace(url=url, clinic=clinic, records=w)


@pytest.fixture(autouse=True)
def words_database(app_database, world, monkeypatch) -> None:
    """Every test here reads the module's one full record (built once; the pages only read it)."""
    monkeypatch.setenv("KAPNOTES_DATABASE_URL", world.url)


def screen_text(at: AppTest, skip_code: bool = False) -> str:
    """What a reader sees: labels, bodies, captions, option words (never a select's raw value),
    table cells under their configured headers; Markdown escapes removed. ``skip_code``: not the
    protocol's own TOML, shown or edited as the file is."""
    text = rendered_text(at, skip=("code", "text_area") if skip_code else (), reader=True)
    return ICON.sub(" ", text.replace("\\", ""))


def _cases():
    out = []
    for path, _title, _icon, roles, _section in app_pages():
        for role in ("therapist", "prescriber", "admin"):
            if role in roles:
                out.append((path, role, None))
    for tab in ("Add a dose", "Edit or void"):
        for role in ("therapist", "prescriber"):
            out.append(("pages/dose_log.py", role, {"dose_tab": tab}))
    for role in ("therapist", "prescriber"):
        out.append(("pages/notes.py", role, {"view_note_id": "dosing"}))
        out.append(("pages/notes.py", role, {"view_note_id": "integration"}))
    out.append(("pages/note_editor.py", "therapist", {"edit_note_id": "draft"}))
    return out


CASES = _cases()


@pytest.mark.parametrize(("page", "role", "state"), CASES,
                         ids=[f"{c[0].split('/')[-1][:-3]}-{c[1]}" + (f"-{next(iter(c[2].values()))}" if c[2] else "")
                              for c in (getattr(x, "values", x) for x in CASES)])
def test_page_speaks_in_words(world, page, role, state):
    w = world.records
    ids = {"dosing": w.dosing_note_id, "integration": w.integration_note_id, "draft": w.draft_note_id}
    state = {k: ids.get(v, v) for k, v in (state or {}).items()}
    at = run_page(page, ROLES[role], "A-001", **state)
    assert not at.exception, at.exception
    # the protocol page shows and edits the protocol file itself (its TOML keys are the file format)
    text = screen_text(at, skip_code=page.endswith("protocol_admin.py"))
    # the scan reached the patient (pages about one user or their drafts do not name one)
    assert "Alice Able" in text or role == "admin" or page.endswith(("my_drafts.py", "account.py"))
    allowed = IMPORT_ALLOWED if page.endswith("import_doses.py") else ()
    if page.endswith("audit_log.py"):
        text = AUDIT_CODES.sub(" ", text)
        allowed = tuple(sorted(AUDIT_PAGES, key=len, reverse=True))
    assert code_words(text, allowed) == [], f"{page} as {role}"


def test_scan_sees_the_records():
    """The scan reads what it must: the dose log's tags and contexts are on screen, in words."""
    text = screen_text(run_page("dose_log", "tina", "A-001", dl_voided=True))
    for words in ("chest pain, fall", "At home with a sitter", "In session", "Swallowed", "patient-reported",
                  "voided", "rows 1–"):
        assert words in text, words


def test_dose_form_tags_are_words_without_select_all():
    at = run_page("dose_log", "tina", "A-001", dose_tab="Add a dose")
    tags = at.multiselect(key="add_tags")
    assert "chest pain" in tags.options and "difficulty breathing" in tags.options and "fall" in tags.options
    assert tags.proto.select_all == 0, "one click must never tag every adverse event"


def test_note_form_multiselect_has_no_select_all(world):
    from kapnotes.models import SessionNote

    clinic = world.clinic
    eng = make_engine(world.url)
    with session_scope(eng) as s:
        note = SessionNote(patient_id=clinic.a1, author_id=clinic.tina.id, note_type="dosing", status="draft",
                           session_date=datetime.now(UTC).date(), modality="in_person", fields={})
        s.add(note)
        s.flush()
        nid = note.id
    eng.dispose()
    at = run_page("note_editor", "tina", "A-001", edit_note_id=nid)
    assert not at.exception, at.exception
    boxes = [m for m in at.multiselect if m.label == "Adverse events"]
    assert boxes and "chest pain" in boxes[0].options and boxes[0].proto.select_all == 0
