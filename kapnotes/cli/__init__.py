"""``python -m kapnotes COMMAND``: one parser, commands registered by their modules.

Each module in ``COMMAND_MODULES`` has ``register(subparsers)`` and sets ``func`` on
its parsers; ``func(args)`` returns the exit status. Errors a clinic admin can act on
(``KapError``) go to stderr in plain words with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from kapnotes.errors import KapError, ValidationError

COMMAND_MODULES = (
    "kapnotes.cli.core",
    "kapnotes.cli.doses",
    "kapnotes.cli.suggest",
    "kapnotes.cli.export",
    "kapnotes.cli.backup",
    "kapnotes.cli.checkin",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kapnotes", description="KAPNotes operator commands.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValidationError as exc:
        for field, message in exc.errors.items():
            print(f"error: {message}" if field == "_" else f"error: {field}: {message}", file=sys.stderr)
        return 1
    except KapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
