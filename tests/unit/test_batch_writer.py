"""A batch writer (the command-line import) waits several rounds of busy_timeout for SQLite's
write lock; a page's unit of work gives up after one and says so (ui/busy.py). A 200,000-row
import beside a busy clinic failed half-way when one round was all it had."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from kapnotes import db


@pytest.fixture
def short_busy_timeout(monkeypatch):
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)


def _hold_write_lock(path, seconds: float) -> threading.Thread:
    """Another process's writer: holds the lock for ``seconds`` from the moment this returns."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")

    def release():
        time.sleep(seconds)
        holder.execute("COMMIT")
        holder.close()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def _write(engine) -> None:
    with db.session_scope(engine) as s:
        s.exec(text("CREATE TABLE IF NOT EXISTS t (x int)"))
        s.exec(text("INSERT INTO t VALUES (1)"))


def test_a_unit_of_work_gives_up_after_one_busy_timeout(tmp_path, short_busy_timeout):
    path = tmp_path / "busy.db"
    engine = db.make_engine(f"sqlite:///{path}")
    _write(engine)
    thread = _hold_write_lock(path, 1.0)
    try:
        with pytest.raises(OperationalError) as exc:
            _write(engine)
        assert db.is_busy(exc.value)
    finally:
        thread.join()
        engine.dispose()


def test_a_batch_writer_waits_its_turn_and_then_writes(tmp_path, short_busy_timeout):
    path = tmp_path / "busy.db"
    engine = db.make_engine(f"sqlite:///{path}")
    _write(engine)
    thread = _hold_write_lock(path, 1.0)  # five rounds of 200 ms: more than one, fewer than eight
    try:
        _write(db.batch_writer(engine))
    finally:
        thread.join()
    with db.session_scope(engine, write=False) as s:
        assert s.exec(text("SELECT count(*) FROM t")).one()[0] == 2
    engine.dispose()

