"""A Streamlit client that speaks the browser's protocol: protobuf ``BackMsg``/``ForwardMsg`` over
the ``/_stcore/stream`` WebSocket (Streamlit 1.67: subprotocol ``streamlit``, the session cookie
and a same-origin ``Origin`` header), after signing in through the real ``/auth/sign-in`` form.

Like the browser, it keeps each widget's current value (from the element's default the server
sent) and sends all of them with every rerun; a click is a ``trigger_value`` on the button, a
form submit sends the form's values with its submit button's trigger. Reconnecting with the
same session cookie (to the same or another process) is what a browser tab does after a drop.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

RUN_TIMEOUT = 60.0  # seconds for one script run before it counts as an error
WIDGETS = ("button", "checkbox", "date_input", "multiselect", "number_input", "radio", "selectbox",
           "slider", "text_area", "text_input", "time_input", "button_group")


class ProtocolError(Exception):
    """The run did not finish, or the app showed an exception or an error box."""


def http_request(base: str, method: str, path: str, cookies: dict, data: dict | None = None,
                 headers: dict | None = None, timeout: float = 30) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection(urlsplit(base).netloc, timeout=timeout)
    hdrs = {"User-Agent": "kapnotes-bench", **(headers or {})}
    if cookies:
        hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = None
    if data is not None:
        body = urlencode(data)
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        text = r.read().decode("utf-8", "replace")
        for c in r.headers.get_all("set-cookie") or []:
            name, value = c.split(";")[0].split("=", 1)
            if "max-age=0" in c.lower() or "01 jan 1970" in c.lower():
                cookies.pop(name, None)
            else:
                cookies[name] = value
        return r.status, text, dict(r.headers)
    finally:
        conn.close()


def sign_in(base: str, username: str, password: str, cookies: dict, headers: dict | None = None) -> None:
    status, text, _ = http_request(base, "GET", "/auth/sign-in", cookies, headers=headers)
    csrf = re.search(r'name="csrf" value="([^"]+)"', text)
    if status != 200 or not csrf:
        raise ProtocolError(f"sign-in form: HTTP {status}")
    status, text, _ = http_request(base, "POST", "/auth/sign-in", cookies, headers=headers,
                                   data={"username": username, "password": password, "next": "/",
                                         "csrf": csrf.group(1)})
    if status != 303 or "kapnotes_session" not in cookies:
        raise ProtocolError(f"sign-in refused: HTTP {status}")


@dataclass
class Widget:
    id: str
    kind: str
    label: str
    form_id: str
    proto: object


@dataclass
class Screen:
    """What one script run drew: widgets by id, texts (alerts and toasts included), and any
    exception the app showed. An error box is a text: clinical flags use them too, so a write
    is judged by its confirmation, not by the absence of red."""

    widgets: dict[str, Widget] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pages: dict[str, str] = field(default_factory=dict)  # url path -> page_script_hash

    def find(self, key: str | None = None, label: str | None = None, kind: str | None = None) -> Widget:
        for w in self.widgets.values():
            if ((key is None or w.id.endswith("-" + key)) and (label is None or w.label.startswith(label))
                    and (kind is None or w.kind == kind)):
                return w
        raise ProtocolError(f"no widget key={key!r} label={label!r} kind={kind!r}")

    def keys(self, prefix: str) -> list[str]:
        return [w.id.rsplit("-", 1)[-1] for w in self.widgets.values() if w.id.rsplit("-", 1)[-1].startswith(prefix)]


def _default_state(w: Widget) -> WidgetState | None:
    """The value the browser would hold for a widget it has just drawn."""
    p, s = w.proto, WidgetState(id=w.id)
    if w.kind in ("button",):
        return None  # a trigger only when clicked
    if w.kind == "checkbox":
        s.bool_value = p.default
    elif w.kind in ("text_input", "text_area"):
        if not p.HasField("default"):
            return None
        s.string_value = p.default
    elif w.kind == "number_input":
        if not p.HasField("default"):
            return None
        s.double_value = p.default
    elif w.kind in ("selectbox", "radio"):
        if not p.HasField("default"):
            return None
        s.string_value = p.options[p.default] if p.options else ""
    elif w.kind in ("date_input",):
        s.string_array_value.data.extend(list(p.default))
    elif w.kind == "time_input":
        if not p.HasField("default"):
            return None
        s.string_value = p.default
    elif w.kind in ("multiselect",):
        s.string_array_value.data.extend([p.options[i] for i in p.default if i < len(p.options)])
    else:
        return None
    return s


class Session:
    """One browser tab: one WebSocket to one app process, signed in by the session cookie."""

    def __init__(self, base: str, cookies: dict, headers: dict | None = None):
        self.base, self.cookies, self.headers = base, cookies, dict(headers or {})
        self.ws = None
        self.states: dict[str, WidgetState] = {}
        self.page_hash = ""
        self.pages: dict[str, str] = {}
        self.last = Screen()

    async def connect(self) -> None:
        hdrs = {"Origin": self.base, "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
                **self.headers}
        url = self.base.replace("http://", "ws://", 1) + "/_stcore/stream"
        self.ws = await websockets.connect(url, subprotocols=["streamlit"], additional_headers=hdrs,
                                           max_size=None, open_timeout=15, ping_interval=None)

    async def close(self) -> None:
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.ws.close(), 5)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.ws = None

    async def run(self, page: str | None = None, set_values: dict[str, WidgetState] | None = None,
                  trigger: str | None = None, query: str = "") -> tuple[float, Screen]:
        """One rerun (a page open, a click, a form submit); returns (seconds, what was drawn)."""
        if page is not None:
            self.page_hash = self.pages.get(page, "")
            self.states = {}
        msg = BackMsg()
        rerun = msg.rerun_script
        rerun.query_string = query
        rerun.page_script_hash = self.page_hash
        rerun.page_name = page or ""
        states = dict(self.states)
        states.update(set_values or {})
        if trigger:
            states[trigger] = WidgetState(id=trigger, trigger_value=True)
        rerun.widget_states.widgets.extend(states.values())
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        screen = await asyncio.wait_for(self._collect(), RUN_TIMEOUT)
        elapsed = time.perf_counter() - start
        self.last = screen
        self.states = {k: v for k, v in states.items() if k in screen.widgets and not v.HasField("trigger_value")}
        for w in screen.widgets.values():
            if w.id not in self.states:
                state = _default_state(w)
                if state is not None:
                    self.states[w.id] = state
        return elapsed, screen

    async def _collect(self) -> Screen:
        screen = Screen()
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await self.ws.recv())
            kind = fwd.WhichOneof("type")
            if kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in fwd.navigation.app_pages}
                self.page_hash = fwd.navigation.page_script_hash or self.page_hash
            elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                _read_element(fwd.delta.new_element, screen)
            elif kind == "script_finished":
                # 0 finished, 1 with error, 2 rerun requested (a switch_page/rerun follows), 3 fragment
                if fwd.script_finished == 2:
                    continue
                screen.pages = dict(self.pages)
                return screen


def _read_element(el, screen: Screen) -> None:
    kind = el.WhichOneof("type")
    body = getattr(el, kind)
    if kind in WIDGETS and getattr(body, "id", ""):
        screen.widgets[body.id] = Widget(body.id, kind, getattr(body, "label", ""), getattr(body, "form_id", ""), body)
    elif kind == "exception":
        screen.errors.append(f"{body.type}: {body.message}"[:200])
    elif kind == "alert":
        screen.texts.append(body.body)
    elif kind == "toast":
        screen.texts.append(body.body)
    elif kind in ("markdown", "text", "heading"):
        screen.texts.append(getattr(body, "body", "") or getattr(body, "text", ""))
