"""``vmbspec trace check FILE``: replay a recorded trace through the spec.

Exit status: 0 the trace conforms, 1 a violation by the target or an unused suppression, 2 a
usage or input error: a trace or suppression file that cannot be read (one line naming the
record and field), a trace whose recorded caller broke its contract or that cannot be followed
(the report is still printed and written, marked ``"verdict": "invalid-trace"``), or a
``--json`` report that could not be written (the verdict is printed first).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vmbspec.conformance.cli_common import UsageError, profile_argument
from vmbspec.conformance.inputs import InputError
from vmbspec.conformance.trace import (
    TraceReport,
    check_trace,
    format_report,
    load_suppressions,
    load_trace,
)
from vmbspec.spec.catalog import CATALOG


def run_trace_check(args: argparse.Namespace) -> int:
    try:
        events = load_trace(Path(args.file))
        suppressions = (
            load_suppressions(Path(args.suppress), CATALOG.requirements)
            if args.suppress else []
        )
    except InputError as error:
        raise UsageError(str(error)) from error
    report = check_trace(events, args.profile, suppressions, path=args.file)
    print(format_report(report), flush=True)
    status = report.exit_status
    if args.json is not None and not write_json_report(report, args.json):
        status = 2
    return status


def write_json_report(report: TraceReport, path: str) -> bool:
    """Writes the machine-readable report to ``path``; False (and one line on standard error
    saying why) when it cannot be written: the verdict has been printed already."""
    text = json.dumps(report.as_json(), indent=1) + "\n"
    try:
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"vmbspec trace: cannot write the JSON report to {path}: {reason}",
              file=sys.stderr)
        return False
    return True


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
        "unused suppression, 2 when a file cannot be read, when the trace is invalid (its "
        "caller broke the caller's contract, or it cannot be followed: the report says where) "
        "or when the --json report cannot be written.",
    )
    check.add_argument("file", help="a trace (JSON Lines), e.g. from vmbspec agent --trace")
    profile_argument(check)
    check.add_argument("--suppress", metavar="FILE.toml",
                       help="known issues: [[suppress]] tables with requirement and/or event "
                       "and a reason")
    check.add_argument("--json", metavar="FILE", help="write the machine-readable report")
    check.set_defaults(func=run_trace_check)
