"""`make test` relies on pytest-xdist's ``--dist loadgroup``: the tests of one ``xdist_group`` run
on one worker, one after the other (a module's seeded clinic or started server is built once;
tests that look at the whole PostgreSQL server never overlap). With pytest 9.2 and xdist 3.8 the
groups were silently ignored (pytest-dev/pytest-xdist#1386), so this checks it really happens."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # starts a pytest-xdist session of its own


def _own_session_env() -> dict[str, str]:
    """This environment without what makes a pytest session a worker of this one: with
    ``PYTEST_XDIST_WORKER`` set, tests/conftest.py would drop and re-create this worker's PostgreSQL
    database (it is the one a killed run left behind) while this worker still uses it."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTEST_XDIST_WORKER", "KAPNOTES_TEST_POSTGRES_URL")}


GROUPED = textwrap.dedent("""
    import os
    import pytest

    @pytest.mark.xdist_group("one")
    @pytest.mark.parametrize("i", range(8))
    def test_grouped(i):
        with open(os.environ["WORKERS_FILE"], "a") as f:
            f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

    @pytest.mark.parametrize("i", range(8))
    def test_free(i):
        pass
""")


def test_an_xdist_group_runs_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    workers = tmp_path / "workers.txt"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider",
         str(tmp_path)],
        cwd=tmp_path, env={**_own_session_env(), "WORKERS_FILE": str(workers)},
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    ran_on = workers.read_text().split()
    assert len(ran_on) == 8
    assert len(set(ran_on)) == 1, f"the group was spread over workers: {ran_on}"


SHOW_ORDER = textwrap.dedent("""
    def pytest_collection_finish(session):
        for item in session.items:
            grouped = any(item.iter_markers("xdist_group"))
            print("ORDER", "grouped" if grouped else "loose", item.nodeid)
""")


def test_browser_tests_are_handed_out_among_the_others(tmp_path):
    """A browser test mostly waits for its server and Chromium: the suite orders them spaced among the
    other tests (after the groups), so the two workers do not wait side by side while a CPU idles."""
    (tmp_path / "show_order.py").write_text(SHOW_ORDER)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-p", "show_order", "tests/app", "tests/e2e"], cwd=root, capture_output=True, text=True,
                         env={**_own_session_env(), "PYTHONPATH": str(tmp_path)}, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    order = [line.split(maxsplit=2)[1:] for line in run.stdout.splitlines() if line.startswith("ORDER ")]
    kinds = [kind for kind, _ in order]
    assert "loose" not in kinds[:kinds.count("grouped")]  # the groups first
    browser = [n for n, (kind, nodeid) in enumerate(order) if kind == "loose" and nodeid.startswith("tests/e2e/")]
    assert len(browser) > 10 and len(order) - len(browser) > 100
    assert all(b - a > 2 for a, b in zip(browser, browser[1:], strict=False)), [order[n][1] for n in browser]
    assert browser[-1] - browser[0] > len(order) // 2  # spread over the whole run, not bunched
