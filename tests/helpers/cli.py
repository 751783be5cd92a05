"""``python -m kapnotes ARGS`` run in the test's own process: what the command prints and returns,
without a second of Python start-up per call.

The unit tier ran the command line about a hundred times as a real process; the imports alone
(pandas, SQLAlchemy, ReportLab) were two minutes of the suite's CPU. ``kap`` runs the same entry
point (``kapnotes.cli.main``, all that ``python -m kapnotes`` calls) with the environment, working
directory and standard input of the call, and returns a ``subprocess.CompletedProcess`` with the
same ``returncode``, ``stdout`` and ``stderr``. What only a real process shows (the ``python -m``
entry point, a killed import, worker processes) is still tested with ``kap_process``.

Engines the command opened are disposed afterwards, as a process would have closed them on exit.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import types
from pathlib import Path

import kapnotes.db

ROOT = Path(__file__).resolve().parents[2]


def _environment(db_url: str | None, env: dict[str, str | None] | None) -> dict[str, str | None]:
    wanted: dict[str, str | None] = {"KAPNOTES_FAST_HASH": "1"}
    if db_url is not None:
        wanted["KAPNOTES_DATABASE_URL"] = db_url
    wanted.update(env or {})
    return wanted


def _apply(values: dict[str, str | None], environ) -> None:
    """Set each variable, or remove it where the value is None."""
    for name, value in values.items():
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value


@contextlib.contextmanager
def _patched_environ(values: dict[str, str | None]):
    before = {name: os.environ.get(name) for name in values}
    try:
        _apply(values, os.environ)
        yield
    finally:
        _apply(before, os.environ)


@contextlib.contextmanager
def _engines_closed_after():
    """Dispose every engine ``kapnotes.db.make_engine`` creates inside the block."""
    made = []
    real = kapnotes.db.create_engine

    def recording(*args, **kwargs):
        engine = real(*args, **kwargs)
        made.append(engine)
        return engine

    kapnotes.db.create_engine = recording
    try:
        yield
    finally:
        kapnotes.db.create_engine = real
        for engine in made:
            engine.dispose()


def kap(db_url: str | None, *args: str, stdin: str | None = None, env: dict[str, str | None] | None = None,
        cwd: str | Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``python -m kapnotes *args`` in this process; ``env`` adds (or, with None, removes) variables."""
    from kapnotes.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_stdin, old_main = Path.cwd(), sys.stdin, sys.modules["__main__"]
    with _patched_environ(_environment(db_url, env)), _engines_closed_after():
        sys.stdin = io.StringIO(stdin or "")
        # worker processes (export-pdf --jobs N, "spawn") re-run the parent's __main__ script; in a test
        # process that may be whatever AppTest ran last (a page), so the workers get an empty one
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            os.chdir(cwd)  # the real process ran in the repository, as `make run` does
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    status = main(list(args))
                except SystemExit as exc:  # argparse: a usage error (2) or --help (0)
                    status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdin, sys.modules["__main__"] = old_stdin, old_main
            os.chdir(old_cwd)
    return subprocess.CompletedProcess(["python", "-m", "kapnotes", *args], status, out.getvalue(), err.getvalue())


def kap_process(db_url: str | None, *args: str, stdin: str | None = None,
                env: dict[str, str | None] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m kapnotes *args`` as a real process (the entry point itself, exit on a signal)."""
    full = dict(os.environ)
    _apply(_environment(db_url, env), full)
    return subprocess.run([sys.executable, "-m", "kapnotes", *args], cwd=ROOT, env=full, input=stdin,
                          capture_output=True, text=True, timeout=timeout)
