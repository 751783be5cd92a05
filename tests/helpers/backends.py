"""Which databases a test runs on.

A service test runs on SQLite and on PostgreSQL (the ``backend`` fixture of tests/conftest.py). A
test whose subject is what happens after the data is read (how a PDF lays out a long field, how the
command line's own process reads a password or reports a refusal) runs on SQLite only: the
database has no part in what it checks, and the same reads run on PostgreSQL in the other tests.
"""

from __future__ import annotations

import pytest

# direct parametrization of ``backend`` replaces the fixture's two values with this one
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
