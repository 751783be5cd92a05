"""The dosing package's shape: every piece imports on its own, in any order, and the package
root re-exports the public names (issue 18)."""

import subprocess
import sys
import textwrap

import kapnotes.dosing as dosing
from kapnotes import patients, safety
from kapnotes.dosing import decisions, queue, suggestions

FIRST_IMPORTS = ["kapnotes.safety", "kapnotes.patients", "kapnotes.doses", "kapnotes.notes",
                 "kapnotes.dosing.rules", "kapnotes.dosing.suggestions", "kapnotes.exports"]


# One interpreter imports the libraries once, then forks a child per module: each child imports its
# module first, with nothing of kapnotes imported yet (seven fresh interpreters spent 7 s importing
# the same libraries).
FIRST_IMPORT = textwrap.dedent("""
    import importlib, os, sys, traceback
    import pandas, reportlab.platypus, sqlalchemy, sqlmodel, streamlit  # noqa: F401
    assert not [m for m in sys.modules if m.startswith("kapnotes")]
    failed = []
    for module in sys.argv[1:]:
        pid = os.fork()
        if pid == 0:
            try:
                importlib.import_module(module)
            except BaseException:
                print(f"--- import {module} first:", file=sys.stderr)
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        if os.waitpid(pid, 0)[1] != 0:
            failed.append(module)
    print(" ".join(failed))
""")


def test_each_piece_imports_first_in_a_fresh_interpreter():
    """A package root that imports its submodules must not trip a half-imported caller."""
    done = subprocess.run([sys.executable, "-c", FIRST_IMPORT, *FIRST_IMPORTS], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [], done.stderr[-3000:]


def test_the_package_root_and_the_old_names_are_the_same_objects():
    assert dosing.decide is decisions.decide is suggestions.decide
    assert dosing.review_queue is queue.review_queue is suggestions.review_queue
    assert patients.safety_flags is safety.safety_flags and suggestions.hold_flags is safety.hold_flags
    assert set(dosing.__all__) <= set(dir(dosing))
