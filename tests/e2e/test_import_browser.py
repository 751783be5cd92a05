"""Browser: import a dose CSV through the UI — preview errors for a bad file, import a good one,
see the dashboard's dose count and chart update."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import expect

from tests.helpers.browser import sign_in, wait_idle

DATA = Path(__file__).resolve().parents[1] / "data"
NY = ZoneInfo("America/New_York")  # the default clinic zone
T = 30_000  # ms: the machine is shared, Streamlit reruns can be slow


def _good_csv(path: Path) -> Path:
    lines = ["taken_at;dose_mg;formulation;vomited;anxiety_before;anxiety_after;bp_systolic_pre;bp_diastolic_pre;app"]
    base = datetime.now(NY).replace(hour=7, minute=13, second=0, microsecond=0)
    for k in (3, 10, 17):
        lines.append(f"{(base - timedelta(days=k)):%Y-%m-%d %H:%M};150;odt;no;7;3;126;82;x{k}")
    path.write_bytes(b"\xef\xbb\xbf" + ("\n".join(lines) + "\n").encode())
    return path


def _dose_count(page) -> int:
    caption = page.get_by_text(re.compile(r"Dose log: \d+ doses? logged")).first
    expect(caption).to_be_visible(timeout=T)
    return int(re.search(r"Dose log: (\d+)", caption.inner_text()).group(1))


def _nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    wait_idle(page)


def test_import_csv_through_the_ui(page, app_server, tmp_path):
    sign_in(page, app_server["url"], "tsato")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=T)
    page.get_by_role("button", name="Open").first.click()
    wait_idle(page)
    before = _dose_count(page)
    expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible(timeout=T)

    _nav(page, "Import doses")
    expect(page.get_by_role("heading", name="Import doses")).to_be_visible(timeout=T)
    upload = page.locator('input[type="file"]')

    # a bad file: the preview names row, column and value, and nothing can be imported
    upload.set_input_files(str(DATA / "doses_bad.csv"))
    wait_idle(page)
    expect(page.get_by_text(re.compile("9 rows have problems"))).to_be_visible(timeout=T)
    expect(page.get_by_text(re.compile(r"row 5, formulation = 'pill'"))).to_be_visible(timeout=T)
    expect(page.get_by_role("button", name=re.compile(r"^Import \d+ doses?$"))).to_be_disabled(timeout=T)

    # a good file (BOM, ';', an extra column): preview, then import
    upload.set_input_files(str(_good_csv(tmp_path / "phone_export.csv")))
    wait_idle(page)
    expect(page.get_by_text("Ignored columns: app")).to_be_visible(timeout=T)
    button = page.get_by_role("button", name="Import 3 doses")
    expect(button).to_be_enabled(timeout=T)
    button.click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Imported 3 doses from phone_export.csv; skipped 0 already in the log"))
           ).to_be_visible(timeout=T)
    # the form starts afresh: no stale button or counts for the file just imported
    expect(page.get_by_role("button", name=re.compile(r"^Import \d+ doses?$"))).to_have_count(0, timeout=T)
    expect(page.get_by_text("Ignored columns: app")).to_have_count(0, timeout=T)

    _nav(page, "Patient dashboard")
    assert _dose_count(page) == before + 3
    expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible(timeout=T)

    # the same file again: everything is a duplicate
    _nav(page, "Import doses")
    upload = page.locator('input[type="file"]')
    upload.set_input_files(str(tmp_path / "phone_export.csv"))
    wait_idle(page)
    expect(page.get_by_role("button", name="Import 0 doses")).to_be_disabled(timeout=T)


def _map(page, header: str, target: str) -> None:
    box = page.get_by_role("combobox", name=f"Column “{header}”")
    box.click()
    page.keyboard.type(target)
    option = page.get_by_role("option", name=target, exact=True)
    expect(option).to_be_visible(timeout=T)
    option.click()
    wait_idle(page)


def test_column_mapping_is_remembered(page, app_server):
    sign_in(page, app_server["url"], "tsato")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=T)
    page.get_by_role("button", name="Open").nth(1).click()
    wait_idle(page)
    _nav(page, "Import doses")
    page.locator('input[type="file"]').set_input_files(str(DATA / "doses_mapped.csv"))
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"has no taken_at column"))).to_be_visible(timeout=T)
    for header, target in (("Date", "taken_at"), ("Amount (mg)", "dose_mg"), ("Form", "formulation"),
                           ("Anxiety pre", "anxiety_before"), ("Anxiety post", "anxiety_after")):
        _map(page, header, target)
    page.get_by_text("Remember this mapping for the clinic").click()
    wait_idle(page)
    expect(page.get_by_text("Ignored columns: Mood")).to_be_visible(timeout=T)
    page.get_by_role("button", name="Import 2 doses").click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Imported 2 doses from doses_mapped.csv"))).to_be_visible(timeout=T)

    # a fresh visit: the saved mapping applies at once (the rows are now duplicates)
    _nav(page, "Patient dashboard")
    _nav(page, "Import doses")
    page.locator('input[type="file"]').set_input_files(str(DATA / "doses_mapped.csv"))
    wait_idle(page)
    expect(page.get_by_role("button", name="Import 0 doses")).to_be_disabled(timeout=T)
    expect(page.get_by_text(re.compile(r"has no taken_at column"))).to_have_count(0, timeout=T)


def test_files_as_they_come(page, app_server, tmp_path):
    """Ambiguous slashed dates are asked for (never guessed); a header-only file says so; too wide is refused."""
    sign_in(page, app_server["url"], "tsato")
    expect(page.get_by_role("heading", name="Patients")).to_be_visible(timeout=T)
    page.get_by_role("button", name="Open").first.click()
    wait_idle(page)
    _nav(page, "Import doses")
    expect(page.get_by_role("heading", name="Import doses")).to_be_visible(timeout=T)
    upload = page.locator('input[type="file"]')

    ambiguous = tmp_path / "us_or_eu.csv"
    ambiguous.write_bytes("taken_at,dose_mg,formulation,notes\r\n03/04/2025 10:00,150,odt,Zoë\r\n"
                          "05/06/2025 10:00,150,odt,\r\n".encode("cp1252"))
    upload.set_input_files(str(ambiguous))
    wait_idle(page)
    expect(page.get_by_text("Choose how the dates are written", exact=False)).to_be_visible(timeout=T)
    expect(page.get_by_role("button", name=re.compile(r"^Import \d+ doses?$"))).to_have_count(0, timeout=T)
    page.get_by_text("Day/month/year (03/04/2026 is 3 April)").click()
    wait_idle(page)
    expect(page.get_by_text(re.compile(r"Detected: Read as Windows-1252; separated by commas; "
                                       r"dates as day/month/year \(as chosen\)"))).to_be_visible(timeout=T)
    expect(page.get_by_role("button", name="Import 2 doses")).to_be_enabled(timeout=T)

    header_only = tmp_path / "empty_export.csv"
    header_only.write_text("taken_at;dose_mg;formulation\n", encoding="utf-8")
    upload.set_input_files(str(header_only))
    wait_idle(page)
    expect(page.get_by_text(re.compile("no rows: only a header"))).to_be_visible(timeout=T)

    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(10_000)) + "\n", encoding="utf-8")
    upload.set_input_files(str(wide))
    wait_idle(page)
    expect(page.get_by_text(re.compile("The file has 10000 columns; at most 64"))).to_be_visible(timeout=T)
    expect(page.get_by_role("combobox")).to_have_count(0, timeout=T)
