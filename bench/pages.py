"""Server-side page runs with Streamlit's AppTest, timed against baseline runs, in this process.

Each page gets one AppTest signed in by role (``user_id``/``last_activity``/``patient_id``
in session state, the heaviest patient selected); a first run warms it (imports, the
"record opened" audit event), then every timed run is a rerun, which is what a widget
click costs. Runs of the compared scripts are interleaved so that machine noise hits
both sides alike.
"""

from __future__ import annotations

import ast
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EMPTY_PAGE = 'import streamlit as st\n\nst.title("Empty page")\n'
SIGNED_IN_PAGE = ('import streamlit as st\n\nfrom kapnotes.ui.guard import require_user\n\n'
                  'require_user("therapist", "prescriber")\nst.title("Signed-in empty page")\n')
ROLE_USER = {"therapist": "tsato", "prescriber": "mokafor", "admin": "admin"}


def app_pages() -> list[tuple[str, str, tuple[str, ...]]]:
    """(file, title, roles) of every page in app.py's PAGES, read without running Streamlit."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
            rows = ast.literal_eval(node.value)
            return [(r[0], r[1], tuple(r[3])) for r in rows]
    raise RuntimeError("app.py has no PAGES list")


def _script(name: str, source: str) -> Path:
    path = ROOT / "bench" / "out" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != source:
        path.write_text(source)
    return path


def empty_page_path() -> Path:
    """The baseline: a Streamlit page with a title and nothing else."""
    return _script("empty_page.py", EMPTY_PAGE)


def signed_in_page_path() -> Path:
    """For information: the page guard (sign-in check, idle timeout, sidebar) plus a title."""
    return _script("signed_in_page.py", SIGNED_IN_PAGE)


@dataclass
class Runner:
    """One AppTest for one script, signed in as ``user_id`` on database ``url``."""

    script: Path
    url: str
    user_id: int | None
    patient_id: int | None
    times: list[float] = field(default_factory=list)
    error: str | None = None

    def __post_init__(self) -> None:
        import logging

        from streamlit.testing.v1 import AppTest

        logging.disable(logging.CRITICAL)  # AppTest's "missing ScriptRunContext" chatter; errors: at.exception

        self.at = AppTest.from_file(str(self.script), default_timeout=120)

    def run(self, timed: bool = True) -> None:
        from kapnotes.timeutil import utcnow

        if self.error:
            return
        os.environ["KAPNOTES_DATABASE_URL"] = self.url
        if self.user_id is not None:
            # read only under KAPNOTES_APPTEST_SIGN_IN (set in bench/__main__)
            self.at.session_state["user_id"] = self.user_id
            self.at.session_state["last_activity"] = utcnow()
            self.at.session_state["patient_id"] = self.patient_id
        t0 = time.perf_counter()
        try:
            self.at.run()
        except Exception as exc:  # noqa: BLE001 - a broken page is reported, not fatal
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            return
        elapsed = time.perf_counter() - t0
        if self.at.exception:
            exc = self.at.exception[0]
            trace = [line for line in (exc.stack_trace or []) if line.strip()]
            self.error = (trace[-1] if trace and "redacted" in exc.message else exc.message).strip()[:200]
            return
        if timed:
            self.times.append(elapsed)

    @property
    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None


def role_for(roles: tuple[str, ...]) -> str:
    return "therapist" if "therapist" in roles else roles[0]


def runner_for(page: str, roles: tuple[str, ...], clinic) -> Runner:
    return Runner(ROOT / page, clinic.url, clinic.users[ROLE_USER[role_for(roles)]], clinic.heavy_patient_id)


SLOW_PAGE_S = 2.0  # a page slower than this gets 3 timed runs, not ``runs`` (keeps make bench < 10 min)


def time_interleaved(runners: list[Runner], runs: int) -> None:
    for r in runners:
        r.run(timed=False)  # warm-up
    for _ in range(runs):
        for r in runners:
            if len(r.times) >= 3 and r.median > SLOW_PAGE_S:
                continue
            r.run()


# --- Streamlit's own floor for a page: the same elements, no data work --------------------------

SKIP_TYPES = {"main", "sidebar", "event"}
SIMPLE = {  # element type -> one line that makes one such element (index i for unique keys)
    "markdown": 'st.markdown("Some **text** here")', "caption": 'st.caption("A caption")',
    "text": 'st.text("Plain text")', "title": 'st.title("Title")', "subheader": 'st.subheader("Subheader")',
    "header": 'st.header("Header")', "metric": 'st.metric("Metric", "42")', "info": 'st.info("Info")',
    "error": 'st.error("Error")', "warning": 'st.warning("Warning")', "success": 'st.success("Done")',
    "code": 'st.code("code")', "divider": "st.divider()", "vega_lite_chart": "st.vega_lite_chart(spec=SPEC)",
    "button": 'st.button("Button", key="b{i}")', "number_input": 'st.number_input("Number", key="n{i}")',
    "text_input": 'st.text_input("Text", key="t{i}")', "text_area": 'st.text_area("Area", key="a{i}")',
    "selectbox": 'st.selectbox("Select", ["a", "b", "c"], key="s{i}")',
    "multiselect": 'st.multiselect("Multi", ["a", "b", "c"], key="m{i}")',
    "radio": 'st.radio("Radio", ["a", "b", "c"], key="r{i}", horizontal=True)',
    "checkbox": 'st.checkbox("Check", key="c{i}")', "date_input": 'st.date_input("Date", key="d{i}")',
    "time_input": 'st.time_input("Time", key="ti{i}")', "toggle": 'st.toggle("Toggle", key="tg{i}")',
    "expander": 'st.expander("Expander")', "flex_container": "st.container()",
    "file_uploader": 'st.file_uploader("File", key="f{i}")', "download_button":
    'st.download_button("Download", b"x", key="dl{i}")', "page_link": "pass",
}
REPLICA_HEAD = '''"""A replica of a page's elements with dummy content (bench/pages.py): Streamlit's floor."""
import pickle
import streamlit as st

if "spec" not in st.session_state:
    import altair as alt
    import pandas as pd
    df = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=150), "value": range(150)})
    st.session_state.spec = alt.Chart(df).mark_line(point=True).encode(x="date:T", y="value:Q").to_dict()
    with open(%r, "rb") as fh:
        st.session_state.frames = pickle.load(fh)
SPEC = st.session_state.spec
FRAMES = st.session_state.frames
'''


def element_counts(at) -> dict[str, int]:
    """Elements of each type in an AppTest's last run (layout blocks included)."""
    counts: dict[str, int] = {}

    def walk(node) -> None:
        for child in getattr(node, "children", {}).values():
            kind = getattr(child, "type", type(child).__name__)
            if kind not in SKIP_TYPES:
                counts[kind] = counts.get(kind, 0) + 1
            walk(child)

    walk(at._tree)
    return counts


def replica_path(name: str, at) -> tuple[Path, int]:
    """Write a script that makes the same number of elements of each type as the page's last
    run (its tables with the same data, charts with 150 points, widgets with dummy options)."""
    import pickle

    counts = element_counts(at)
    frames = [df.value for df in at.dataframe]
    data_path = ROOT / "bench" / "out" / f"replica_{name}.pkl"
    data_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_bytes(pickle.dumps(frames))
    lines = [REPLICA_HEAD % str(data_path)]
    buttons = counts.get("button", 0)
    for i in range(counts.get("form", 0)):
        lines.append(f'with st.form("form{i}"):\n    st.form_submit_button("Submit")')
        buttons -= 1
    counts["button"] = max(0, buttons)
    for i in range(len(frames)):
        lines.append(f"st.dataframe(FRAMES[{i}])")
    columns = counts.get("column", 0)
    while columns > 0:
        k = min(4, max(2, columns)) if columns != 1 else 2
        lines.append(f"st.columns({k})")
        columns -= k
    tabs, containers = counts.get("tab", 0), counts.get("tab_container", 0)
    for i in range(containers):
        n = max(1, tabs // containers)
        lines.append(f"st.tabs([{', '.join(repr(f'Tab {j}') for j in range(n))}], key='tabs{i}')")
    unknown = []
    for kind, n in counts.items():
        if kind in ("form", "dataframe", "column", "tab", "tab_container"):
            continue
        if kind not in SIMPLE:
            unknown.append(kind)
            continue
        lines += [SIMPLE[kind].format(i=i) for i in range(n)]
    if unknown:
        lines.append(f"# not replicated: {', '.join(sorted(unknown))}")
    return _script(f"replica_{name}.py", "\n".join(lines) + "\n"), sum(counts.values())
