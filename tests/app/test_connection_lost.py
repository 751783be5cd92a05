"""A page whose database connection dropped (PostgreSQL restarted, the network went away) says
"retrying" and runs again, never Streamlit's error box; if the database stays away it says so,
and asks the user to look before saving again (a save in flight may or may not have committed)."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from streamlit.testing.v1 import AppTest

from kapnotes.db import is_busy, is_connection_lost
from kapnotes.ui import busy
from tests.helpers.apptest import failing_page


def _page_losing_its_connection(fail_times: int) -> AppTest:
    at = AppTest.from_function(failing_page, default_timeout=60)
    at.session_state["error"] = "lost"
    at.session_state["fail_times"] = fail_times
    at.run()
    assert not at.exception
    return at


def test_a_dropped_connection_is_retried_on_the_page():
    at = _page_losing_its_connection(1)
    assert [s.value for s in at.success] == ["loaded after 2 tries"]


def test_a_database_that_stays_away_says_so_and_asks_to_check_a_save():
    at = _page_losing_its_connection(99)
    assert [w.value for w in at.warning] == [busy.UNREACHABLE_MESSAGE]
    assert "check that it is there before saving it again" in busy.UNREACHABLE_MESSAGE


@pytest.mark.parametrize("orig", [
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),  # 57P01
    psycopg.errors.CannotConnectNow("the database system is starting up"),  # 57P03
    psycopg.errors.ConnectionFailure("connection failure"),  # 08006
])
def test_postgresql_connection_errors_count_as_lost(orig):
    assert is_connection_lost(OperationalError("SELECT 1", {}, orig))


def test_other_database_errors_are_not_retried():
    unique = IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key"))
    assert not is_connection_lost(unique) and not is_busy(unique)
    assert not is_connection_lost(ValueError("not a database error"))
