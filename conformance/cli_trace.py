"""``vmbspec trace check FILE``: replay a recorded trace through the spec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from conformance.cli_common import UsageError, profile_argument
from conformance.trace import (
    TraceFormatError,
    check_trace,
    format_report,
    load_suppressions,
    load_trace,
)
from spec.catalog import CATALOG


def run_trace_check(args: argparse.Namespace) -> int:
    if args.json is not None and not Path(args.json).parent.exists():
        raise UsageError(f"cannot write {args.json}: folder {Path(args.json).parent} "
                         "does not exist")
    try:
        events = load_trace(Path(args.file))
        suppressions = (
            load_suppressions(Path(args.suppress), CATALOG.requirements)
            if args.suppress else []
        )
    except TraceFormatError as error:
        raise UsageError(str(error)) from error
    report = check_trace(events, args.profile, suppressions, path=args.file)
    print(format_report(report))
    if args.json is not None:
        Path(args.json).write_text(json.dumps(report.as_json(), indent=1) + "\n",
                                   encoding="utf-8")
    return 0 if report.passed else 1


def add_parser(subparsers: Any) -> None:
    trace = subparsers.add_parser(
        "trace", help="check recorded traces against the spec",
        description="Traces are JSON Lines recordings of calls, return values, emitted "
        "packets and completion-routine calls (docs/trace-format.md).",
    )
    sub = trace.add_subparsers(dest="trace_command", metavar="SUBCOMMAND")
    sub.required = True
    check = sub.add_parser(
        "check", help="replay a trace through the spec and report the first violation",
        description="Replay every session of a trace through the conformance driver, with the "
        "spec as the oracle. Reports the first violation of each session with its requirement "
        "IDs and the events around it. Exit 0 when the trace conforms, 1 on a violation or an "
        "unused suppression, 2 when the files cannot be read.",
    )
    check.add_argument("file", help="a trace (JSON Lines), e.g. from vmbspec agent --trace")
    profile_argument(check)
    check.add_argument("--suppress", metavar="FILE.toml",
                       help="known issues: [[suppress]] tables with requirement and/or event "
                       "and a reason")
    check.add_argument("--json", metavar="FILE", help="write the machine-readable report")
    check.set_defaults(func=run_trace_check)
