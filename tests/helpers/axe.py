"""axe-core in the browser tier: WCAG 2.1 AA violations on the page as drawn now."""

from __future__ import annotations

from pathlib import Path

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
# resultTypes: axe still runs every rule, but builds a selector for each node of the violations only
# (axe's documented speed-up; on these pages it was a quarter of the accessibility tests' time)
RULES = "{runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']}"


def violations(page, axe_path: str) -> list[str]:
    """Each violation as one line: rule, help text, node count and the first node's HTML.
    (axe is injected as an inline script: the page's context needs ``bypass_csp``.)"""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):  # once per page load, not per check
        page.add_script_tag(path=axe_path)
    result = page.evaluate(f"axe.run(document, {RULES})")
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes) e.g. {v['nodes'][0]['html'][:120]}"
            for v in result["violations"]]
