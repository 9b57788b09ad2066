"""``vmbspec check`` and ``vmbspec replay``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from conformance.cli_common import UsageError, profile_argument
from conformance.replay import ReplayFileError, load_replay, replay_steps, save_replay
from conformance.report import describe_step, table, write_outputs
from conformance.runner import run_conformance
from conformance.targets import UnknownTarget, resolve_target


class Progress:
    """A one-line progress display on stderr (a plain line every 10% when not a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.last_tenth: dict[str, int] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        done = min(done, total)
        elapsed = time.perf_counter() - self.started
        if self.tty:
            width = 30
            filled = width * done // total
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r{phase:<9} [{bar}] {done}/{total}  {elapsed:5.1f} s")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()
            return
        tenth = 10 * done // total
        if tenth != self.last_tenth.get(phase):
            self.last_tenth[phase] = tenth
            print(f"{phase}: {done}/{total} ({elapsed:.1f} s)", file=sys.stderr, flush=True)


def _run_proofs(quiet: bool) -> list[dict[str, Any]]:
    try:
        from spec.proofs.properties import run_properties
    except ImportError:  # pragma: no cover - the proofs are part of the package
        return []
    results = run_properties()
    proofs = [r.as_json() for r in results]
    if not quiet:
        proved = sum(1 for p in proofs if p.get("ok"))
        print(f"proofs: {proved}/{len(proofs)} as expected", file=sys.stderr)
    return proofs


def _target_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"isolate": args.isolate, "timeout": args.timeout}


def run_check(args: argparse.Namespace) -> int:
    try:
        name, factory = resolve_target(args.target, _target_options(args))
    except UnknownTarget as error:
        raise UsageError(str(error)) from error
    if args.examples < 0:
        raise UsageError("--examples must be 0 or more")
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    for option in (args.json, args.junit, args.report):
        if option is not None and not Path(option).parent.exists():
            raise UsageError(f"cannot write {option}: folder {Path(option).parent} does not exist")
    progress = Progress(args.quiet)
    proofs = [] if args.no_proofs else _run_proofs(args.quiet)
    report = run_conformance(
        factory,
        profile=args.profile,
        examples=args.examples,
        steps_per_example=args.steps,
        seed=args.seed,
        cases=not args.no_cases,
        progress=progress,
    )
    report.target = name if report.target in ("", None) else report.target
    report.proofs = proofs
    print(table(report))
    print()
    print(report.summary())
    replay_dir = Path(args.replay_dir)
    for number, failure in enumerate(report.failures, start=1):
        path = replay_dir / f"vmbspec-failure-{number}.json"
        try:
            save_replay(path, failure, report.target, report.profile)
        except OSError as error:
            print(f"could not save replay file {path}: {error}", file=sys.stderr)
            path = None  # type: ignore[assignment]
        print(f"\nFAILURE {number} ({failure.kind}, {failure.source}): "
              f"[{', '.join(failure.requirements)}]")
        print(f"  {failure.message}")
        print("  minimal steps:")
        for index, step in enumerate(failure.steps, start=1):
            print(f"    {index}. {describe_step(step)}")
        if path is not None:
            print(f"  replay: vmbspec replay {path} --target {args.target}")
    write_outputs(
        report,
        json_path=Path(args.json) if args.json else None,
        junit_path=Path(args.junit) if args.junit else None,
        markdown_path=Path(args.report) if args.report else None,
    )
    failed_proofs = [p for p in proofs if not p.get("ok")]
    if failed_proofs:
        names = ", ".join(str(p.get("name")) for p in failed_proofs)
        print(f"proofs not as expected: {names}", file=sys.stderr)
    return 0 if report.passed and not failed_proofs else 1


def run_replay(args: argparse.Namespace) -> int:
    try:
        document = load_replay(Path(args.file))
    except ReplayFileError as error:
        raise UsageError(str(error)) from error
    target = args.target or "sim"
    try:
        _name, factory = resolve_target(target, _target_options(args))
    except UnknownTarget as error:
        raise UsageError(str(error)) from error
    profile = args.profile
    steps = document["steps"]
    print(f"replaying {len(steps)} steps from {args.file} (found on "
          f"{document.get('found_on', '?')}) on {target}, profile {profile.name}")
    for index, step in enumerate(steps, start=1):
        print(f"  {index}. {describe_step(step)}")
    try:
        result = replay_steps(steps, factory, profile)
    except Exception as error:  # the file's steps themselves are wrong
        if type(error).__name__ in ("StepError", "CaseDisagrees"):
            raise UsageError(f"{args.file}: {error}") from error
        raise
    if result.failure is None:
        print(f"PASS: the sequence conforms on {target}")
        return 0
    failure = result.failure
    print(f"FAIL at step {result.steps_run} ({failure.kind}): "
          f"[{', '.join(failure.requirements)}] {failure.message}")
    return 1


def add_parser(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check",
        help="run the conformance suite against a target",
        description="Run the case catalog and the stateful suite against a target, with the "
        "spec as the oracle; print a per-requirement table and save every failure as a "
        "replay file.",
    )
    check.add_argument("--target", default="sim",
                       help="sim (default), sim:BUG[,BUG], rust, native:PATH, "
                       "remote:stdio:COMMAND, remote:tcp://HOST:PORT")
    profile_argument(check)
    check.add_argument("--examples", type=int, default=1000,
                       help="stateful examples (call sequences) to generate (default 1000)")
    check.add_argument("--steps", type=int, default=40,
                       help="the most steps in one generated sequence (default 40)")
    check.add_argument("--seed", type=int, default=None,
                       help="seed for the stateful run (default: derandomized, repeatable)")
    check.add_argument("--json", metavar="FILE", help="write the machine-readable report")
    check.add_argument("--junit", metavar="FILE", help="write JUnit XML, one test a requirement")
    check.add_argument("--report", metavar="FILE.md", help="write the Markdown report")
    check.add_argument("--replay-dir", default=".", metavar="DIR",
                       help="where failing sequences are saved (default: here)")
    check.add_argument("--no-cases", action="store_true", help="skip the case catalog")
    check.add_argument("--no-proofs", action="store_true", help="skip the Z3 properties")
    check.add_argument("--quiet", action="store_true", help="no progress display")
    _target_switches(check)
    check.set_defaults(func=run_check)

    replay = subparsers.add_parser(
        "replay", help="re-run a saved failing sequence on a target",
        description="Re-run the steps of a replay file (written by `vmbspec check`) on any "
        "target. Exit 1 if the sequence fails there, 0 if it conforms.",
    )
    replay.add_argument("file", help="a vmbspec-failure-N.json file")
    replay.add_argument("--target", default=None, help="target to replay on (default sim)")
    profile_argument(replay)
    _target_switches(replay)
    replay.set_defaults(func=run_replay)


def _target_switches(parser: Any) -> None:
    isolate = parser.add_mutually_exclusive_group()
    isolate.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                         help="run a native target in a worker process, so a crash or hang "
                         "is a verdict (the default for native:PATH)")
    isolate.add_argument("--no-isolate", dest="isolate", action="store_false",
                         help="load a native target into this process")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="how long one call to an isolated or remote target may take")
