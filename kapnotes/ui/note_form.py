"""The note form, built from the template data (``kapnotes.notes.templates``), and the read-only view.

Widget values live under keys ``nf{note_id}_f_{field}`` (template fields) and
``nf{note_id}_h_{name}`` (session date, times, modality, free text, linked dose), so a
page can collect the content before drawing the widgets (errors then show at the field).
User text is always rendered with ``st.text`` (literally, never as Markdown).
"""

from __future__ import annotations

from datetime import date, time
from typing import Any

import streamlit as st

from kapnotes import vocab
from kapnotes.models import Modality
from kapnotes.notes.templates import FieldSpec, Template, display_value, is_empty, option_word

HEADER = ("session_date", "start_time", "end_time", "modality", "free_text", "integrates_dose_id")
# Wide on purpose: Streamlit's default bounds (ten years either side) make the browser drop a date
# typed outside them and keep the old value without a word; the service refuses it with a reason.
DATE_BOUNDS = {"min_value": date(1000, 1, 1), "max_value": date(9999, 12, 31)}
MODALITY_LABELS = vocab.MODALITY_WORDS


def fkey(note_id: int, name: str) -> str:
    return f"nf{note_id}_f_{name}"


def hkey(note_id: int, name: str) -> str:
    return f"nf{note_id}_h_{name}"


def skey(note_id: int, name: str) -> str:
    """Keys for the page's own state about a note (version, flags): ids and numbers only."""
    return f"nf{note_id}__{name}"


def label_of(spec: FieldSpec) -> str:
    unit = f" ({spec.unit})" if spec.unit else ""
    return f"{spec.label}{unit}{' *' if spec.required else ''}"


def to_widget(spec: FieldSpec, value: Any) -> Any:
    """A stored field value as its widget holds it (e.g. "10:15" as a ``time``)."""
    if spec.kind == "time":
        return time.fromisoformat(value) if isinstance(value, str) and value else None
    if spec.kind == "date":
        return date.fromisoformat(value) if isinstance(value, str) and value else value
    if spec.kind == "bool":
        return bool(value)
    if spec.kind == "multiselect":
        return list(value or [])
    if spec.kind in ("text", "textarea"):
        return value or ""
    if spec.kind == "int" and value is not None:
        return int(value)
    if spec.kind == "float" and value is not None:
        return float(value)
    return value


def _from_widget(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def _put(key: str, value: Any, shadow: dict | None) -> None:
    st.session_state[key] = value
    if shadow is not None:
        shadow[key] = value


def load_state(note_id: int, tpl: Template, content: dict, shadow: dict | None = None) -> None:
    """Put a note's stored content into the widget keys (first open, or "load the saved version")."""
    fields = content.get("fields") or {}
    for spec in tpl.fields:
        _put(fkey(note_id, spec.name), to_widget(spec, fields.get(spec.name)), shadow)
    _put(hkey(note_id, "session_date"), content.get("session_date"), shadow)
    for name in ("start_time", "end_time"):
        v = content.get(name)
        _put(hkey(note_id, name), time.fromisoformat(v) if v else None, shadow)
    _put(hkey(note_id, "modality"), content.get("modality") or Modality.in_person.value, shadow)
    _put(hkey(note_id, "free_text"), content.get("free_text") or "", shadow)
    _put(hkey(note_id, "integrates_dose_id"), content.get("integrates_dose_id"), shadow)


def _value(key: str, shadow: dict | None, restore: set) -> Any:
    """A widget's value; keys in ``restore`` come back from the shadow copy."""
    if key in st.session_state:
        v = st.session_state[key]
        if shadow is not None:
            if key in restore:
                st.session_state[key] = v = shadow[key]
            shadow[key] = v
        return v
    if shadow is not None and key in shadow:
        st.session_state[key] = shadow[key]
        return shadow[key]
    return None


def _spurious_resets(keys: list[str], shadow: dict | None) -> set:
    """Inputs Streamlit handed back empty although the user did not clear them.

    When a run is stopped for a newer one (the user typed on while the page was saving),
    Streamlit can return several untouched number, date and time inputs as empty at once.
    One interaction changes one input, so when two or more inputs turn from a value to empty
    in the same run, they are restored from the shadow copy (the last values seen): autosave
    never wipes values the user did not clear.
    """
    if not shadow:
        return set()
    emptied = {k for k in keys if k in st.session_state and st.session_state[k] is None
               and shadow.get(k) is not None}
    return emptied if len(emptied) >= 2 else set()


def collect(note_id: int, tpl: Template, shadow: dict | None = None) -> dict:
    """The content as the widgets hold it, in the stored format (empties dropped)."""
    keys = [fkey(note_id, sp.name) for sp in tpl.fields] + [hkey(note_id, n) for n in HEADER]
    restore = _spurious_resets(keys, shadow)
    fields = {}
    for spec in tpl.fields:
        v = _from_widget(spec, _value(fkey(note_id, spec.name), shadow, restore))
        if not is_empty(v):
            fields[spec.name] = v
    times = {}
    for name in ("start_time", "end_time"):
        v = _value(hkey(note_id, name), shadow, restore)
        times[name] = v.strftime("%H:%M") if isinstance(v, time) else (v or None)
    return {
        "session_date": _value(hkey(note_id, "session_date"), shadow, restore),
        **times,
        "modality": _value(hkey(note_id, "modality"), shadow, restore) or Modality.in_person.value,
        "fields": fields,
        "free_text": _value(hkey(note_id, "free_text"), shadow, restore) or None,
        "integrates_dose_id": _value(hkey(note_id, "integrates_dose_id"), shadow, restore),
    }


def comparable(content: dict) -> dict:
    """Normalise stored or collected content so "nothing changed" compares equal."""
    out = dict(content)
    out["fields"] = {k: v for k, v in (content.get("fields") or {}).items() if not is_empty(v)}
    out["free_text"] = content.get("free_text") or None
    for name in ("start_time", "end_time"):
        out[name] = content.get(name) or None
    return out


def _field_error(errors: dict[str, str], warnings: dict[str, str], name: str) -> None:
    if name in errors:
        st.error(errors[name], icon=":material/error:")
    if name in warnings:
        st.warning(warnings[name], icon=":material/warning:")


def render_header(note_id: int, errors: dict[str, str], dose_choices: list[tuple[int, str]] | None = None,
                  disabled: bool = False) -> None:
    c1, c2, c3, c4 = st.columns(4)
    with c1:
        st.date_input("Session date *", value=None, key=hkey(note_id, "session_date"), disabled=disabled,
                      format="YYYY-MM-DD", **DATE_BOUNDS)
        _field_error(errors, {}, "session_date")
    with c2:
        st.time_input("Start time *", value=None, key=hkey(note_id, "start_time"), step=300, disabled=disabled)
        _field_error(errors, {}, "start_time")
    with c3:
        st.time_input("End time", value=None, key=hkey(note_id, "end_time"), step=300, disabled=disabled)
        _field_error(errors, {}, "end_time")
    with c4:
        st.selectbox("Modality", list(MODALITY_LABELS), format_func=MODALITY_LABELS.get,
                     key=hkey(note_id, "modality"), disabled=disabled)
        _field_error(errors, {}, "modality")
    if dose_choices is not None:
        labels = dict(dose_choices)
        current = st.session_state.get(hkey(note_id, "integrates_dose_id"))
        options = [d for d, _ in dose_choices]
        if current is not None and current not in options:
            options.insert(0, current)
        st.selectbox("Dose this session integrates", options, index=None,
                     format_func=lambda d: labels.get(d, f"Dose #{d}"), key=hkey(note_id, "integrates_dose_id"),
                     placeholder="Choose the dose (newest first)", disabled=disabled)
        _field_error(errors, {}, "integrates_dose_id")


def _widget(note_id: int, spec: FieldSpec, disabled: bool) -> None:
    key, label = fkey(note_id, spec.name), label_of(spec)
    help_ = spec.help or None
    if spec.kind == "text":
        st.text_input(label, key=key, help=help_, disabled=disabled)
    elif spec.kind == "textarea":
        st.text_area(label, key=key, help=help_, disabled=disabled, height=100)
    elif spec.kind == "int":
        st.number_input(label, value=None, step=1, format="%d", key=key, help=help_, disabled=disabled)
    elif spec.kind == "float":
        st.number_input(label, value=None, step=0.5, format="%.1f", key=key, help=help_, disabled=disabled)
    elif spec.kind == "bool":
        st.checkbox(label, key=key, help=help_, disabled=disabled)
    elif spec.kind == "time":
        st.time_input(label, value=None, step=300, key=key, help=help_, disabled=disabled)
    elif spec.kind == "date":
        st.date_input(label, value=None, key=key, help=help_, disabled=disabled, format="YYYY-MM-DD", **DATE_BOUNDS)
    elif spec.kind == "select":
        st.selectbox(label, list(spec.options), index=None, key=key, help=help_, disabled=disabled,
                     placeholder="Choose…", format_func=lambda o: option_word(spec, o))
    elif spec.kind == "multiselect":  # no "Select all": each adverse event is a decision of its own
        st.multiselect(label, list(spec.options), key=key, help=help_, disabled=disabled, select_all=False,
                       format_func=lambda o: option_word(spec, o))
    else:  # pragma: no cover - templates are validated by tests
        raise ValueError(spec.kind)


def render_fields(note_id: int, tpl: Template, errors: dict[str, str], warnings: dict[str, str] | None = None,
                  disabled: bool = False) -> None:
    """The template's widgets, section by section; short inputs two to a row; errors at the field."""
    warnings = warnings or {}
    for section in tpl.sections:
        if section:
            st.markdown(f"##### {section}")
        specs = [s for s in tpl.fields if s.section == section]
        short: list[FieldSpec] = []

        def flush_short() -> None:
            for i in range(0, len(short), 3):  # noqa: B023 - called within the same iteration
                cols = st.columns(3)
                for col, spec in zip(cols, short[i:i + 3]):  # noqa: B023
                    with col:
                        _widget(note_id, spec, disabled)
                        _field_error(errors, warnings, spec.name)
            short.clear()  # noqa: B023

        for spec in specs:
            if spec.kind in ("textarea", "multiselect", "text"):
                flush_short()
                _widget(note_id, spec, disabled)
                _field_error(errors, warnings, spec.name)
            else:
                short.append(spec)
        flush_short()
    st.text_area("Free text", key=hkey(note_id, "free_text"), height=150, disabled=disabled,
                 help="Anything the structured fields do not cover.")
    _field_error(errors, {}, "free_text")
    other = {k: v for k, v in errors.items() if k not in tpl.names and k not in HEADER}
    for k, v in other.items():
        st.error(v if k == "_" else f"{k}: {v}")


def render_readonly(tpl: Template, fields: dict, free_text: str | None, skip_empty: bool = True) -> None:
    """A note's content as plain text, in template order (user text never parsed as Markdown)."""
    for section in tpl.sections:
        specs = [s for s in tpl.fields if s.section == section]
        shown = [s for s in specs if not (skip_empty and is_empty(fields.get(s.name)))]
        if not shown:
            continue
        if section:
            st.markdown(f"**{section}**")
        for spec in shown:
            c1, c2 = st.columns([1, 2])
            c1.caption(spec.label)
            c2.text(display_value(spec, fields.get(spec.name)))
    if free_text:
        st.markdown("**Free text**")
        st.text(free_text)
