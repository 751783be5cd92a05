"""Hostile text prints literally; no link, image or markup from user text reaches a PDF; no URL
or file access from rendering; fonts embedded; builds serialised; pages not blank."""

from __future__ import annotations

import io
import subprocess
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pypdf import PdfReader
from reportlab import rl_config
from reportlab.platypus import Paragraph, SimpleDocTemplate

from kapnotes import exports
from kapnotes.db import make_engine, session_scope
from kapnotes.pdf.styles import esc, make_styles
from tests.factories import make_clinic
from tests.helpers.threads import together
from tests.unit.pdf_data import FIXED, HOSTILE, build_world, flat, pdf_text, qpdf_ok

LITERAL = ("<b>", '<img src="/etc/passwd">', "AT&T", "a<b", "😀", "שלום עולם", "مرحبا بالعالم", "日本語のテキスト",
           '<a href="https://evil.example/x">click</a>', "<font color=red>red</font>", "&amp; &lt;",
           "Zoë Ångström, José Müller, 王小明")


def normalised(pdf: bytes) -> str:
    # NFKC folds Arabic presentation forms (the joined letters drawn) back to the letters typed.
    return flat(unicodedata.normalize("NFKC", "\n".join(pdf_text(pdf)[1])))


def no_links_or_images(pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(pdf))
    for page in reader.pages:
        assert "/Annots" not in page, "a link annotation reached the PDF"
        assert list(page.images) == [], "an image reached the PDF"


def _fresh_clinic(tmp_path_factory, sqlite_template, name: str):
    """The small clinic on a new copy of the migrated SQLite database: (engine, clinic)."""
    import shutil

    path = tmp_path_factory.mktemp(name) / "h.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    return engine, make_clinic(engine)


def _note_and_summary(engine, clinic, world) -> dict[str, bytes]:
    """The world's dosing note and the patient's full summary as PDFs (every user string printed);
    the engine is disposed."""
    with session_scope(engine) as s:
        note = exports.note_pdf(s, clinic.tina, world.dosing_note_id, generated_at=FIXED)
        summary = exports.summary_pdf(s, clinic.tina, clinic.a1, generated_at=FIXED,
                                      full_notes=True, full_dose_log=True)
    engine.dispose()
    return {"note": note, "summary": summary}


@pytest.fixture(scope="module")
def hostile_pdfs(tmp_path_factory, sqlite_template):
    engine, clinic = _fresh_clinic(tmp_path_factory, sqlite_template, "hostile")
    world = build_world(engine, clinic, days=30, hostile=True)
    return _note_and_summary(engine, clinic, world)


@pytest.mark.parametrize("kind", ["note", "summary"])
def test_hostile_strings_print_literally(hostile_pdfs, kind, tmp_path):
    pdf = hostile_pdfs[kind]
    qpdf_ok(pdf, tmp_path)
    text = normalised(pdf)
    for s in LITERAL:
        assert flat(unicodedata.normalize("NFKC", s)) in text, f"{s!r} not printed literally in the {kind} PDF"
    # markup did not apply: the "red" text is printed with its tag, not coloured, and no bold toggled
    assert "<font color=red>red</font>" in text


@pytest.mark.parametrize("kind", ["note", "summary"])
def test_no_link_or_image_from_user_text(hostile_pdfs, kind):
    no_links_or_images(hostile_pdfs[kind])
    assert b"/URI" not in hostile_pdfs[kind] and b"/Subtype /Image" not in hostile_pdfs[kind]


@pytest.mark.parametrize("kind", ["note", "summary"])
def test_fonts_are_embedded(hostile_pdfs, kind, tmp_path):
    path = tmp_path / "f.pdf"
    path.write_bytes(hostile_pdfs[kind])
    out = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    rows = out.splitlines()[2:]
    assert rows, out
    for row in rows:
        cols = row.split()
        assert "yes" in cols[-5:-2], f"font not embedded: {row}"  # the 'emb' column
    assert "DejaVuSans" in out and "DroidSansFallback" in out and "Helvetica" not in out


def test_pages_render_not_blank(hostile_pdfs, tmp_path):
    for kind, pdf in hostile_pdfs.items():
        src = tmp_path / f"{kind}.pdf"
        src.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", "40", "-png", str(src), str(tmp_path / kind)], check=True)
        pngs = sorted(tmp_path.glob(f"{kind}-*.png"))
        assert len(pngs) == len(PdfReader(io.BytesIO(pdf)).pages)
        for png in pngs:
            img = Image.open(png).convert("L")
            dark = sum(img.histogram()[:200])
            assert dark > 0.01 * img.width * img.height, f"{png.name} looks blank"


@pytest.mark.parametrize("raw", HOSTILE + ("x\x00y\x07z", "line1\nline2\r\nline3", "", "   "))
def test_esc_makes_text_inert(raw):
    out = esc(raw)
    assert "<b>" not in out and "<img" not in out and "<a " not in out and "<font color" not in out
    Paragraph(out, make_styles()["base"])  # parses without error


def test_rendering_cannot_fetch_urls_or_data():
    from reportlab.lib.utils import rlUrlRead

    import kapnotes.pdf  # noqa: F401 - importing locks ReportLab down

    assert rl_config.trustedHosts == [] and rl_config.trustedSchemes == []
    for url in ("data:text/plain,hello", "https://127.0.0.1:9/x", "file:///etc/passwd"):
        with pytest.raises(OSError):
            rlUrlRead(url)


def _build(text: str) -> bytes:
    from kapnotes.pdf import build_lock

    buf = io.BytesIO()
    with build_lock():
        SimpleDocTemplate(buf).build([Paragraph(esc(text), make_styles()["base"])])
    return buf.getvalue()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=120))
def test_any_text_builds_without_links_or_images(text):
    """Arbitrary Unicode (controls, RTL, astral planes, markup) through esc() always builds."""
    no_links_or_images(_build(text))


MARKUP_ALPHABET = list("abcXYZ0129<>&\"'/=;#!?%()[]{}éüßñÅØçΩЖж日本語中文한국어😀")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(MARKUP_ALPHABET + [" "]), min_size=1, max_size=80))
def test_markup_like_text_round_trips_literally(text):
    """Text full of markup characters prints exactly as typed (whitespace aside)."""
    printed = "".join(normalised(_build(text)).split())
    assert printed == "".join(unicodedata.normalize("NFKC", text).split())


def test_concurrent_builds_are_serialised_and_identical(hostile_pdfs, sqlite_url):
    engine = make_engine(sqlite_url)
    clinic = make_clinic(engine)
    world = build_world(engine, clinic, days=20, hostile=True)
    with session_scope(engine) as s:
        meta, patient, note = exports.prepare_note(s, clinic.tina, world.dosing_note_id, generated_at=FIXED)
    results: list[bytes] = []

    def work():
        results.append(exports.render_note(meta, patient, note, invariant=True))

    errors = together(*[work] * 6, timeout=None)
    assert not errors
    assert len(results) == 6 and len(set(results)) == 1
    engine.dispose()


# --- issue 20: links, directives and bidi controls in names and notes print literally ------------

MD_LINKS = "[Verify your account](http://evil.example) ![u](http://evil.example/t.png) :red[x] <b>b</b> http://evil.example"
RLO_NAME = "evil\u202eexe.txt"


@pytest.fixture(scope="module")
def markdown_hostile_pdfs(tmp_path_factory, sqlite_template):
    import tests.unit.pdf_data as pdf_data
    from kapnotes.models import Patient, User

    engine, clinic = _fresh_clinic(tmp_path_factory, sqlite_template, "mdhostile")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pdf_data, "HOSTILE", (MD_LINKS, RLO_NAME))
        world = build_world(engine, clinic, days=30, hostile=True)
    with session_scope(engine) as s:
        for uid in (clinic.tina.id, clinic.paul.id):
            user = s.get(User, uid)
            user.full_name = f"{user.full_name} {RLO_NAME}"
            s.add(user)
        patient = s.get(Patient, clinic.a1)
        patient.full_name = f"Ann {RLO_NAME}"
        s.add(patient)
    return _note_and_summary(engine, clinic, world)


@pytest.mark.parametrize("kind", ["note", "summary"])
def test_markdown_and_bidi_print_literally_with_controls_removed(markdown_hostile_pdfs, kind, tmp_path):
    """Bidi controls are removed (not replaced): "evil\\u202eexe.txt" prints as typed, "evilexe.txt",
    never reordered to pose as "evil.txt"-like text; link and directive syntax prints as typed."""
    pdf = markdown_hostile_pdfs[kind]
    qpdf_ok(pdf, tmp_path)
    raw = "\n".join(pdf_text(pdf)[1])
    assert not any(ch in raw for ch in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
    text = flat(raw)
    assert "evilexe.txt" in text
    assert flat(MD_LINKS) in text, f"the link text is not printed literally in the {kind} PDF"
    no_links_or_images(pdf)
    assert b"/URI" not in pdf


@pytest.mark.slow
def test_a_long_note_prints_in_small_blocks_and_keeps_every_word():
    """Issue 20: a 100,000-character note took 19 s to print, because one Paragraph holding it was
    re-wrapped from the top at every page break. It now prints as blocks of a few lines and a few
    thousand characters (work linear in the note's length), with every word in its order."""
    from datetime import date

    from pypdf import PdfReader

    from kapnotes import exports
    from kapnotes.pdf import model
    from kapnotes.pdf.styles import LONG_LINE, make_styles, text_blocks

    lines = "\n".join(f"line {i} of what the client said today" for i in range(2500))
    one_line = " ".join(f"w{i}" for i in range(20000))
    for text in (lines, one_line):
        blocks = text_blocks(text, make_styles()["value"])
        assert len(blocks) > 10
        assert all(len(b.text) <= 12 * LONG_LINE for b in blocks)  # escaped text of each block stays small
        words = " ".join(" ".join(b.text.replace("<br/>", " ").split()) for b in blocks).split()
        assert words == text.split()
    note = model.NoteData(1, "integration", "draft", date(2026, 11, 1), "10:00", "11:00", "in_person", "T", {},
                          lines + "\n" + one_line + " LASTWORD", None, None, None, None, False, (), (), ())
    pdf = exports.render_note(model.DocMeta("Clinic", "2026-11-29 10:00", "tester"),
                              model.PatientInfo("Pat", "KAP-1", date(1980, 1, 1), "F41.1", "active"), note)
    import io
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
    assert "line 0 of what" in text and "line 2499 of what" in text and "LASTWORD" in text
