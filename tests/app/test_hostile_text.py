"""Issue 20, "No markup from anyone": a clinic whose names, notes, adverse-event tags and CSV
headers are hostile. Every page, run as each role allowed on it, renders no live link, image,
colour directive, icon, HTML, autolinked URL or bidi control from that text: every Markdown
body AppTest gives us (markdown, captions, titles, alerts, toasts, widget labels and help,
radio options, expander and tab labels, metric labels) is checked as the raw escaped text.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from kapnotes.db import session_scope
from kapnotes.models import DoseEntry, Patient, User
from kapnotes.textsafe import BIDI_CONTROLS
from tests.helpers.apptest import run_page
from tests.helpers.uitext import app_pages

LINKS = "[Verify your account](http://evil.example) ![u](http://evil.example/t.png) :red[x] <b>b</b> http://evil.example"
RLO = "evil\u202eexe.txt"
HOSTILE = f"{LINKS} {RLO}"
PAGES = app_pages()
ROLE_USER = {"therapist": "tina", "prescriber": "paul", "admin": "ada"}

# What would be live in Streamlit's Markdown (each checked in Chromium while choosing the escapes).
LIVE = {
    "link or image": re.compile(r"(?<!\\)\]\("),
    "image": re.compile(r"!\["),
    "colour directive": re.compile(r":red\["),
    "icon": re.compile(r"(?<!\\):material/"),
    "HTML": re.compile(r"(?<!\\)<b>"),
    "autolinked URL": re.compile(r"(?i)\bhttps?\\?://"),  # "http\://" is autolinked too
    "autolinked www": re.compile("(?i)(?<!\u2060)\\bwww\\\\?\\."),
    "bidi control": BIDI_CONTROLS,
}
_MARKDOWN_TYPES = {"markdown", "caption", "title", "header", "subheader", "error", "warning", "info",
                   "success", "toast", "exception"}


def markdown_bodies(at) -> list[str]:
    """Every string Streamlit renders as Markdown in this run (code, plain text, tables and
    select options render literally and are left out)."""
    out: list[str] = []

    def walk(node) -> None:
        kind = getattr(node, "type", "")
        label = getattr(node, "label", None)
        if isinstance(label, str) and label:
            out.append(label)
        help_ = getattr(node, "help", None)
        if isinstance(help_, str) and help_:
            out.append(help_)
        if kind in _MARKDOWN_TYPES:
            for attr in ("value", "body"):
                v = getattr(node, attr, None)
                if isinstance(v, str):
                    out.append(v)
        if kind == "radio":
            out.extend(str(o) for o in node.options)
        children = getattr(node, "children", None)
        if children:
            for key in sorted(children):
                walk(children[key])

    walk(at._tree)
    return out


def live_markup(bodies: list[str]) -> list[tuple[str, str]]:
    return [(what, body) for body in bodies for what, rx in LIVE.items() if rx.search(body)]


@pytest.fixture
def hostile(engine, clinic, monkeypatch) -> None:
    """The small clinic with hostile text in every name and free-text field patient A1 has."""
    import tests.unit.pdf_data as pdf_data

    monkeypatch.setattr(pdf_data, "HOSTILE", (LINKS, RLO))  # note text, themes, addenda
    pdf_data.build_world(engine, clinic, days=30, hostile=True)
    with session_scope(engine) as s:
        for uid in (clinic.tina, clinic.paul, clinic.ada):
            user = s.get(User, uid.id)
            user.full_name = f"{user.full_name} {HOSTILE}"
            s.add(user)
        patient = s.get(Patient, clinic.a1)
        patient.full_name = f"Ann {HOSTILE}"
        s.add(patient)
        for i, entry in enumerate(s.exec(select(DoseEntry).where(DoseEntry.patient_id == clinic.a1)).all()):
            if i % 2 == 0:
                entry.adverse_events = f"nausea;{LINKS};{RLO}"
                s.add(entry)


def test_every_page_as_every_role_renders_hostile_text_literally(engine, clinic, hostile):
    from kapnotes import auth
    from kapnotes.db import session_scope

    with session_scope(engine) as s:  # the auditor reads the audit log in full: hostile names there too
        auditor = auth.create_user(s, None, "auditor1", "auditor", LINKS[:150], "a-long-passphrase-9q")
    users = {role: getattr(clinic, name) for role, name in ROLE_USER.items()} | {"auditor": auditor}
    seen_hostile = 0
    failures = []
    for path, _title, _icon, roles, _section in PAGES:
        for role in roles:
            at = run_page(path, users[role].username, "A-001")
            assert not at.exception, (path, role, at.exception)
            bodies = markdown_bodies(at)
            seen_hostile += sum("Verify your account" in b for b in bodies)
            failures += [(path, role, what, body[:300]) for what, body in live_markup(bodies)]
    assert failures == [], "\n".join(map(str, failures))
    assert seen_hostile >= 5, "the hostile text never reached a Markdown element: the sweep checks nothing"


def test_import_preview_shows_hostile_csv_headers_literally(hostile):
    at = run_page("import_doses", "tina", "A-001")
    csv = (f"taken_at,dose_mg,{LINKS},{RLO}\n2026-01-05 09:00,150,a,b\n").encode()
    at.file_uploader[0].upload(RLO + ".csv", csv, "text/csv")
    at.run()
    assert not at.exception, at.exception
    bodies = markdown_bodies(at)
    assert any("Verify your account" in b for b in bodies), "the headers were not shown"
    assert live_markup(bodies) == []


def test_checkin_page_shows_a_hostile_clinic_and_first_name_literally(engine, clinic, hostile):
    from kapnotes import auth, checkin

    with session_scope(engine) as s:
        patient = s.get(Patient, clinic.a1)
        patient.full_name = f"{LINKS} {RLO}"
        s.add(patient)
        _link, token = checkin.create_link(s, auth.load_actor(s, clinic.tina.id), clinic.a1)
    at = run_page("checkin", query={"t": token})
    assert not at.exception, at.exception
    assert live_markup(markdown_bodies(at)) == []
