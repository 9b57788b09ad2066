"""``vmbspec sweep``: every single call of a bounded lattice on a target, checked by the spec.

Exit statuses as ``vmbspec check``: 0 every shape conformed, 1 a shape did not (the failures
are grouped by requirement and saved as replay files), 2 a usage error, 3 an internal error of
vmbspec, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vmbspec.conformance.cli_common import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    count,
    output_file,
    output_folder,
    profile_argument,
    remove_stale_replays,
    save_traceback,
    target_options,
    target_switches,
)
from vmbspec.conformance.guard import TargetInterfaceError, TargetRaised, check_interface
from vmbspec.conformance.runner import _make_target
from vmbspec.conformance.sweep import report
from vmbspec.conformance.sweep.lattice import MAX_CHAINS, LatticeSpec
from vmbspec.conformance.sweep.run import Progress, SweepResult, sweep
from vmbspec.conformance.targets import UnknownTarget, resolve_target


def _probe(name: str, factory: Any) -> None:
    """A target of the factory has the methods of the target interface (else exit 2)."""
    try:
        target = _make_target(factory)
    except TargetRaised as error:
        raise UsageError(f"{name}: creating the target failed: {error}") from error
    try:
        check_interface(target)
    except TargetInterfaceError as error:
        raise UsageError(str(error)) from error
    finally:
        close = getattr(target, "close", None)
        if callable(close):
            close()


def _status(result: SweepResult, write_errors: list[str]) -> int:
    if result.failures or result.stopped:  # stopped: the target became unreachable
        return EXIT_FAILED
    if result.problems:
        return EXIT_INTERNAL
    if result.interrupted:
        return EXIT_INTERRUPTED
    if write_errors:
        return EXIT_USAGE
    return EXIT_OK


def run_sweep(args: argparse.Namespace) -> int:
    try:
        name, factory = resolve_target(args.target, target_options(args))
    except UnknownTarget as error:
        raise UsageError(str(error)) from error
    _probe(name, factory)
    lattice = LatticeSpec.quick(args.chains) if args.quick else LatticeSpec(args.chains)
    if not args.quiet:
        print(f"sweep: {lattice.describe()} on {name}", file=sys.stderr)
    remove_stale_replays(args.replay_dir, "vmbspec-sweep-failure")
    result = sweep(args.target, factory, args.profile, lattice, Progress(args.quiet),
                   use_native=not args.per_shape, max_failures=args.max_failures)
    if result.interrupted:
        print("\ninterrupted: writing the reports of what ran so far", file=sys.stderr)
    errors = report.save_replays(result, args.replay_dir, args.replays_per_group)
    errors += report.write_outputs(result, args.json, args.report)
    for problem in result.problems:
        path = save_traceback(problem.details or problem.message)
        where = f"; the traceback is in {path}" if path else ""
        print(f"vmbspec sweep: internal error (a bug of vmbspec, not a failure of the "
              f"target): {problem.message}{where}", file=sys.stderr)
    for line in errors:
        print(f"vmbspec sweep: {line}", file=sys.stderr)
    print(report.to_text(result))
    return _status(result, [e for e in errors if e.startswith("cannot write")])


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep",
        help="run every single call of a bounded lattice on a target",
        description="Run every shape of a bounded lattice of single calls (each on a fresh "
        "idle packet of an open channel) on a target and check each against the spec like a "
        "send of the stateful run. Exit 1 if a shape does not conform.",
    )
    parser.add_argument("--target", default="sim",
                        help="sim (default), sim:BUG[,BUG], sim:A5=b[+A3=c], rust, native:PATH, "
                        "remote:stdio:COMMAND, remote:tcp://HOST:PORT")
    parser.add_argument("--chains", type=count(1, MAX_CHAINS), default=1,
                        help=f"the longest MDL chain of the lattice, 1 to {MAX_CHAINS} "
                        "(default 1)")
    profile_argument(parser)
    parser.add_argument("--quick", action="store_true",
                        help="the reduced lattice: ByteOffset 0 and 0xFFF, ByteCount around 0 "
                        "and 1 page (the report says it is reduced)")
    parser.add_argument("--max-failures", type=count(1, 10**9), default=None, metavar="N",
                        help="stop after N failing shapes (default: run every shape)")
    parser.add_argument("--per-shape", action="store_true",
                        help="run shape by shape through the target interface even where a "
                        "native batch runner exists (in process for `rust`: a fault ends the "
                        "process; add --isolate)")
    parser.add_argument("--json", metavar="FILE", type=output_file,
                        help="write the machine-readable report")
    parser.add_argument("--report", metavar="FILE.md", type=output_file,
                        help="write the Markdown report")
    parser.add_argument("--replay-dir", default=Path("."), type=output_folder, metavar="DIR",
                        help="where replay files of failing shapes are saved (default: here)")
    parser.add_argument("--replays-per-group", type=count(0, 10**9),
                        default=report.REPLAYS_PER_GROUP, metavar="N",
                        help="replay files written per group of failures (default "
                        f"{report.REPLAYS_PER_GROUP}; every failing shape is in the JSON report)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    target_switches(parser)
    parser.set_defaults(func=run_sweep)
