"""``python -m kapnotes suggest --scenario FILE.json [--protocol FILE.toml]`` (DESIGN.md §3).

Runs the rules engine on a scenario without a database and prints the suggestion as
JSON: ``{"action", "dose_mg", "interval_days", "flags", "reasons", "checks"}`` (``checks``: one
``{"rule", "status", "text"}`` per rule of 1–5 and of the increase gate, fired, passed or not
evaluable). The protocol used (name and SHA-256) goes to stderr. A malformed scenario or
protocol: exit status 2 and one ``error: FIELD: message`` line per problem on stderr.
"""

from __future__ import annotations

import json
import sys

from kapnotes.dosing import protocol, rules, scenario

EXIT_MALFORMED = 2


def register(sub) -> None:
    p = sub.add_parser("suggest", help="run the dose-adjustment rules on a scenario file (no database)")
    p.add_argument("--scenario", required=True, metavar="FILE.json",
                   help="the scenario (as_of, plan, doses, assessments)")
    p.add_argument("--protocol", metavar="FILE.toml",
                   help="a protocol file (default: KAPNOTES_PROTOCOL, else the bundled default protocol)")
    p.set_defaults(func=cmd_suggest)


def _fail(source: str, exc) -> int:
    """One line per bad field; protocol problems are prefixed so they are not taken for the scenario's."""
    prefix = "protocol " if source == "protocol" else ""
    for field, message in exc.errors.items():
        print(f"error: {prefix}{source if field == '_' else field}: {message}", file=sys.stderr)
    return EXIT_MALFORMED


def cmd_suggest(args) -> int:
    try:
        proto = protocol.load(args.protocol or protocol.env_path())
    except protocol.ProtocolError as exc:
        return _fail("protocol", exc)
    try:
        sc = scenario.load(args.scenario)
    except scenario.ScenarioError as exc:
        return _fail("scenario", exc)
    result = rules.suggest(sc.plan, sc.doses, sc.assessments, proto, sc.as_of)
    print(json.dumps(result.as_dict(), ensure_ascii=False, indent=2))
    print(f"protocol: {proto.name} (sha256 {proto.sha256})", file=sys.stderr)
    return 0
