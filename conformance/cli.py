"""The ``vmbspec`` command line.

Each subcommand lives in a module with ``add_parser(subparsers)`` (which sets ``func``) so the
front door stays small.

Exit statuses (``conformance.cli_common``): 0 the target conforms, 1 it does not, 2 a usage
error (a bad option value, a missing or malformed file: one line, never a traceback), 3 an
internal error of vmbspec (the traceback saved to a file named in the message; never reported
as the target's failure), 130 interrupted by Ctrl-C (with the reports asked for written).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from vmbspec.conformance.cli_common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    internal_error_message,
)
from vmbspec.conformance.inputs import InputError
from vmbspec.conformance.runner import SuiteUsageError
from vmbspec.spec.catalog import CATALOG, KINDS
from vmbspec.spec.errors import InvalidValue
from vmbspec.spec.readings import PROFILES


def _unobservable() -> dict[str, list[dict[str, Any]]]:
    """Per reading (``READ-A7``), the options no observation tells apart and why, from the
    probes the spec found (``conformance/probe/calls.json``,
    ``python -m vmbspec.spec.discriminate``); empty when that file cannot be read."""
    from vmbspec.conformance.probe.load import ProbeFileError, load_probes

    try:
        probes = load_probes()
    except ProbeFileError:
        return {}
    notes: dict[str, list[dict[str, Any]]] = {}
    for entry in probes.unobservable:
        notes.setdefault(f"READ-{entry.reading}", []).append(
            {"options": list(entry.options), "why": entry.why}
        )
    return notes


def _requirement_json(requirement: Any, notes: dict[str, list[dict[str, Any]]]) -> Any:
    data = requirement.as_json()
    if requirement.kind == "reading" and len(requirement.options or ()) > 1:
        data["unobservable"] = notes.get(requirement.id, [])
    return data


def _requirements(args: argparse.Namespace) -> int:
    entries = [r for r in CATALOG.requirements.values() if args.kind in (None, r.kind)]
    notes = _unobservable() if any(r.kind == "reading" for r in entries) else {}
    if args.json:
        document = {
            "requirements": [_requirement_json(r, notes) for r in entries],
            "seed": [
                {
                    "sentence": s.sentence,
                    "covered_by": list(s.covered_by),
                    "informational": s.informational,
                }
                for s in CATALOG.seed
            ],
        }
        json.dump(document, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    width = max(len(r.id) for r in entries) if entries else 0
    for requirement in entries:
        print(f"{requirement.id:<{width}}  {requirement.kind:<8}  {requirement.text}")
        if requirement.kind == "reading":
            for option, meaning in (requirement.options or {}).items():
                mark = "*" if option == requirement.default else " "
                print(f"{'':<{width}}  {'':<8}  {mark} ({option}) {meaning}")
            for note in notes.get(requirement.id, []):
                shown = " from ".join(f"({o})" for o in note["options"])
                print(f"{'':<{width}}  {'':<8}    cannot tell {shown} by observation: "
                      f"{note['why']}")
    print(f"\n{len(entries)} requirements; * marks the default reading")
    return 0


def _profiles(args: argparse.Namespace) -> int:
    if args.json:
        json.dump([p.as_json() for p in PROFILES.values()], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for name, profile in PROFILES.items():
        changes = profile.differs_from_default()
        what = ", ".join(f"{k}={v}" for k, v in changes.items()) or "every default reading"
        print(f"{name:<26} {what}")
    print("\nCombine: --profile NAME+A4=c+A8=exact (see `vmbspec requirements --kind reading`)")
    return 0


def version_text() -> str:
    """What ``vmbspec --version`` prints: vmbspec and what decides what a seeded run generates
    (Hypothesis), what proves (z3-solver) and the Python running them."""
    from importlib.metadata import PackageNotFoundError, version

    from vmbspec.conformance.report import versions

    found = versions()
    try:
        z3 = version("z3-solver")
    except PackageNotFoundError:
        z3 = "unknown"
    return (
        f"vmbspec {found['vmbspec']} (hypothesis {found['hypothesis']}, z3-solver {z3}, "
        f"Python {platform.python_version()})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vmbspec",
        description="Executable specification and conformance suite for "
        "VmbPacketSendWithExternalMdl.",
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    requirements = sub.add_parser(
        "requirements", help="list the requirement catalog (seed rules, facts, readings)"
    )
    requirements.add_argument("--json", action="store_true", help="machine-readable output")
    requirements.add_argument("--kind", choices=KINDS, help="only requirements of this kind")
    requirements.set_defaults(func=_requirements)

    profiles = sub.add_parser("profiles", help="list the named profiles of readings")
    profiles.add_argument("--json", action="store_true", help="machine-readable output")
    profiles.set_defaults(func=_profiles)

    for module in _subcommand_modules():
        module.add_parser(sub)
    return parser


def _subcommand_modules() -> list[Any]:
    from vmbspec.conformance import cli_agent, cli_check, cli_probe, cli_prove, cli_sweep, cli_trace

    return [cli_check, cli_prove, cli_agent, cli_trace, cli_sweep, cli_probe]


def _silence_stdout() -> None:
    """The reader of our output went away (``vmbspec ... | head``): stop writing to it."""
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a bad value (2, one line printed)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        status: int = args.func(args)
    except (UsageError, InputError, SuiteUsageError, InvalidValue) as error:
        print(f"vmbspec {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"vmbspec {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except OSError as error:  # the system refused something asked of it: a path, a port
        print(f"vmbspec {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:
        details = traceback.format_exc()
        print(internal_error_message(args.command, error, details), file=sys.stderr)
        return EXIT_INTERNAL
    return status


if __name__ == "__main__":
    raise SystemExit(main())
