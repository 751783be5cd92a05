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
        cwd=tmp_path, env={**os.environ, "WORKERS_FILE": str(workers)},
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    ran_on = workers.read_text().split()
    assert len(ran_on) == 8
    assert len(set(ran_on)) == 1, f"the group was spread over workers: {ran_on}"
