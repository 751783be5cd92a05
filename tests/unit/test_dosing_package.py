"""The dosing package's shape: every piece imports on its own, in any order, and the package
root re-exports the public names (issue 18)."""

import subprocess
import sys

import pytest

import kapnotes.dosing as dosing
from kapnotes import patients, safety
from kapnotes.dosing import decisions, queue, suggestions

FIRST_IMPORTS = ["kapnotes.safety", "kapnotes.patients", "kapnotes.doses", "kapnotes.notes",
                 "kapnotes.dosing.rules", "kapnotes.dosing.suggestions", "kapnotes.exports"]


@pytest.mark.parametrize("module", FIRST_IMPORTS)
def test_each_piece_imports_first_in_a_fresh_interpreter(module):
    """A package root that imports its submodules must not trip a half-imported caller."""
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_package_root_and_the_old_names_are_the_same_objects():
    assert dosing.decide is decisions.decide is suggestions.decide
    assert dosing.review_queue is queue.review_queue is suggestions.review_queue
    assert patients.safety_flags is safety.safety_flags and suggestions.hold_flags is safety.hold_flags
    assert set(dosing.__all__) <= set(dir(dosing))
