"""The shape a newcomer can rely on (issue 18): small modules, simple functions, thin pages,
no import cycles among ``kapnotes`` modules, and no import hidden in a function to dodge one.

Function-level imports are allowed (a heavy library loaded only when needed), but the cycle
check counts them as if they were at the top: a cycle cannot hide inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kapnotes"
MAX_MODULE_LINES = 500
MAX_COMPLEXITY = 25
MAX_PAGE_LINES = 120


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every ``kapnotes`` module this one imports, at the top or inside a function."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _cycles() -> list[list[str]]:
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    # a package's __init__ re-exporting its own submodules is not a cycle
    graph = {n: {t for t in ts if not n.startswith(t + ".") and not t.startswith(n + ".") or n == t}
             for n, ts in graph.items()}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles_among_kapnotes_modules():
    assert _cycles() == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small(name):
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{name} has {lines} lines"


def test_no_function_is_too_complex():
    files = list(MODULES.values()) + sorted((ROOT / "pages").glob("*.py")) + [ROOT / "app.py"]
    too = []
    for path in files:
        for block in cc_visit(path.read_text(encoding="utf-8")):
            if block.complexity > MAX_COMPLEXITY:
                too.append(f"{path.relative_to(ROOT)}:{block.name} {block.complexity}")
    assert too == []


def test_pages_are_thin():
    fat = {p.name: n for p in sorted((ROOT / "pages").glob("*.py"))
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_PAGE_LINES}
    assert fat == {}


def test_the_domain_layer_never_imports_streamlit():
    offenders = [n for n, p in MODULES.items() if not n.startswith("kapnotes.ui")
                 and "streamlit" in {t.split(".")[0] for t in _all_imports(p)}]
    assert offenders == []


def test_no_test_module_imports_another():
    offenders = []
    for path in (ROOT / "tests").rglob("test_*.py"):
        for target in _all_imports(path):
            if target.rpartition(".")[2].startswith("test_"):
                offenders.append(f"{path.relative_to(ROOT)} imports {target}")
    assert offenders == []


def _all_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out
