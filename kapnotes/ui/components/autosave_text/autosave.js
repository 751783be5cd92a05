// Autosave while typing: commit a draft's text fields through Streamlit's own widget path.
// A Streamlit text area sends its value to Python only on blur or Ctrl+Enter. This bridge
// presses Ctrl+Enter for the clinician on a field whose key starts with data.prefix when
// typing pauses for data.delay ms, and at once when the page is hidden or closed, so the
// page's autosave runs with the text. The widget keeps what is typed meanwhile (no value is
// pushed back into it), so nothing typed is overwritten.
export default function (component) {
  const { data } = component;
  const prefix = (data && data.prefix) || "";
  const delay = (data && data.delay) || 2000;
  const doc = window.document;
  const timers = new Map();
  const selector = 'textarea, input[type="text"]';

  const keyOf = (el) => {
    const box = el.closest('[class*="st-key-"]');
    if (!box) return null;
    const cls = Array.from(box.classList).find((c) => c.startsWith("st-key-"));
    return cls ? cls.slice("st-key-".length) : null;
  };
  const watched = (el) => {
    if (!el || !el.matches || !el.matches(selector)) return false;
    const key = keyOf(el);
    return key !== null && key.startsWith(prefix);
  };
  const commit = (el) => {
    timers.delete(el);
    if (!el.isConnected) return;
    el.dispatchEvent(new KeyboardEvent("keydown", {
      key: "Enter", code: "Enter", keyCode: 13, which: 13, ctrlKey: true, bubbles: true, cancelable: true,
    }));
  };
  const onInput = (ev) => {
    const el = ev.target;
    if (!watched(el)) return;
    clearTimeout(timers.get(el));
    timers.set(el, setTimeout(() => commit(el), delay));
  };
  const flush = () => {
    for (const [el, t] of Array.from(timers.entries())) {
      clearTimeout(t);
      commit(el);
    }
  };
  const onVisibility = () => { if (doc.visibilityState === "hidden") flush(); };

  doc.addEventListener("input", onInput, true);
  doc.addEventListener("visibilitychange", onVisibility);
  window.addEventListener("pagehide", flush);
  return () => {
    flush();
    doc.removeEventListener("input", onInput, true);
    doc.removeEventListener("visibilitychange", onVisibility);
    window.removeEventListener("pagehide", flush);
  };
}
