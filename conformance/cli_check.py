"""``vmbspec check`` and ``vmbspec replay``."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
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
from vmbspec.conformance.cli_common import seed as seed_value
from vmbspec.conformance.cli_probe import PROBE_PROFILE, accept_probe_profile, probe_profile
from vmbspec.conformance.driver import Evidence
from vmbspec.conformance.exampledb import (
    NO_DB,
    DatabaseError,
    default_db,
    load_failures,
    open_database,
    store_failures,
)
from vmbspec.conformance.replay import ReplayFileError, load_replay, replay_steps, save_replay
from vmbspec.conformance.report import describe_step, table, write_outputs
from vmbspec.conformance.runner import (
    BATCH_EXAMPLES,
    DEFAULT_EXAMPLES,
    DEFAULT_SEED,
    ConformanceReport,
    SuiteUsageError,
    describe_not_run,
    run_conformance,
)
from vmbspec.conformance.targets import UnknownTarget, resolve_target


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
    from vmbspec.spec.proofs.properties import run_properties

    results = run_properties()
    proofs = [r.as_json() for r in results]
    if not quiet:
        proved = sum(1 for p in proofs if p.get("ok"))
        print(f"proofs: {proved}/{len(proofs)} as expected", file=sys.stderr)
    return proofs


def _save_replays(report: Any, folder: Path) -> None:
    for number, failure in enumerate(report.failures, start=1):
        path = folder / f"vmbspec-failure-{number}.json"
        try:
            save_replay(path, failure, report.target, report.profile)
        except OSError as error:
            print(f"could not save replay file {path}: {error.strerror or error}",
                  file=sys.stderr)
        else:
            failure.replay_file = str(path)


def _print_results(report: Any, target: str) -> None:
    print(table(report))
    print()
    print(report.summary())
    for number, failure in enumerate(report.failures, start=1):
        print(f"\nFAILURE {number} ({failure.kind}, {failure.source}): "
              f"[{failure.blamed()}]")
        print(f"  {failure.message}")
        print("  minimal steps:")
        for index, step in enumerate(failure.steps, start=1):
            print(f"    {index}. {describe_step(step)}")
        if failure.replay_file:
            print(f"  replay: vmbspec replay {failure.replay_file} --target {target}")


def _status(report: Any, proofs: list[dict[str, Any]], write_errors: list[str]) -> int:
    """The exit status: a failure of the target first (a target that became unreachable,
    cutting the run short, is one), then vmbspec's own problems, then an interruption, then a
    report that could not be written."""
    if report.failures or report.stopped or any(not p.get("ok") for p in proofs):
        return EXIT_FAILED
    if report.problems:
        return EXIT_INTERNAL
    if report.interrupted:
        return EXIT_INTERRUPTED
    if write_errors:
        return EXIT_USAGE
    return EXIT_OK


def _terminate_as_interrupt(_signal: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def workers_value(text: str) -> int:
    """``--workers N`` (1..1024) or ``auto`` (the number of cores)."""
    if text == "auto":
        return max(1, os.cpu_count() or 1)
    return count(1, 1024)(text)


class TargetAppend(argparse.Action):
    """``--target`` given several times: ``targets`` lists them all (worker ``i`` runs on
    target ``i mod len(targets)``) and ``target`` stays the first, as one ``--target`` sets
    it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        targets = list(getattr(namespace, "targets", None) or [])
        targets.append(values)
        namespace.targets = targets
        namespace.target = targets[0]


def _open_db(text: str | None) -> tuple[str, Any]:
    """The ``--db`` store (``$VMBSPEC_DB`` or .vmbspec/db without one) and its name; a value
    that cannot be used is a usage error."""
    name = text if text is not None else default_db()
    try:
        return name, open_database(name)
    except DatabaseError as error:
        raise UsageError(str(error)) from error


def _stored(db: Any, name: str, command: str) -> list[Any]:
    """The failures in the store ``name``; a value that cannot be read is skipped with a
    warning, a store that cannot be read at all is a usage error."""
    try:
        stored, warnings = load_failures(db, name)
    except DatabaseError as error:
        raise UsageError(str(error)) from error
    for warning in warnings:
        print(f"vmbspec {command}: {warning}", file=sys.stderr)
    return list(stored)


def _known_failures(db: Any, name: str, quiet: bool) -> list[Any]:
    """The store's failures, to be replayed first (a value that cannot be read is skipped
    with a warning)."""
    if db is None:
        return []
    stored = _stored(db, name, "check")
    if stored and not quiet:
        print(f"replaying {len(stored)} known failure(s) from {name} first", file=sys.stderr)
    return [failure.as_known() for failure in stored]


def _store(db: Any, name: str, report: ConformanceReport, quiet: bool) -> list[str]:
    """Store the run's failures; the errors, as lines (the verdict stands)."""
    if db is None or not report.failures:
        return []
    from vmbspec.conformance.report import versions

    try:
        ids = store_failures(db, name, report.failures, report.target, report.profile.name,
                             versions().get("vmbspec", "?"))
    except DatabaseError as error:
        return [str(error)]
    if ids and not quiet:
        print(f"stored {len(ids)} new failure(s) in {name}: {', '.join(ids)}",
              file=sys.stderr)
    return []


def _print_known(report: ConformanceReport) -> None:
    """One line per known failure replayed: did it fail again?"""
    for known in report.known:
        print(f"known failure {known['id']} (found on {known['found_on'] or '?'}) on "
              f"{known['target']}: {known['result']}")


def run_check(args: argparse.Namespace) -> int:
    # SIGTERM (a CI job's time limit, `kill`) ends the run as Ctrl-C does: reports written.
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    probe_status = EXIT_OK
    if args.profile == PROBE_PROFILE:  # `--profile probe`: the profile the probe finds
        args.profile, probe_status = probe_profile(args)
    targets = list(getattr(args, "targets", None) or [args.target])
    try:
        resolved = [resolve_target(text, target_options(args)) for text in targets]
    except UnknownTarget as error:
        raise UsageError(str(error)) from error
    name, factory = resolved[0]
    name = ", ".join(n for n, _ in resolved)
    db_name, db = _open_db(args.db)
    known = _known_failures(db, db_name, args.quiet)
    progress = Progress(args.quiet)
    removed = remove_stale_replays(args.replay_dir, "vmbspec-failure")
    if removed and not args.quiet:
        print(f"removed {removed} replay file(s) of an earlier run from {args.replay_dir}",
              file=sys.stderr)
    proofs: list[dict[str, Any]] = []
    try:
        if not args.no_proofs:
            proofs = _run_proofs(args.quiet)
        report = run_conformance(
            factory if args.workers == 1 and len(targets) == 1 else targets,
            target_options=target_options(args),
            workers=args.workers,
            batch_examples=args.batch_examples,
            known_failures=known,
            profile=args.profile,
            examples=args.examples,
            steps_per_example=args.steps,
            seed=args.seed,
            cases=not args.no_cases,
            progress=progress,
        )
    except KeyboardInterrupt:  # during the proofs: the report says nothing else ran
        report = ConformanceReport(name, args.profile, args.seed, 0, Evidence(),
                                   interrupted=True)
    except SuiteUsageError as error:
        raise UsageError(str(error)) from error
    report.target = name if report.target in ("", None) else report.target
    report.proofs = proofs
    if report.interrupted:
        print("\ninterrupted: writing the reports of what ran so far", file=sys.stderr)
    elif report.stopped:
        print(f"\nvmbspec check: the run was cut short: {report.stopped}; not run: "
              f"{describe_not_run(report.not_run)}. Writing the reports of what ran.",
              file=sys.stderr)
    _save_replays(report, args.replay_dir)
    write_errors = write_outputs(report, json_path=args.json, junit_path=args.junit,
                                 markdown_path=args.report)
    write_errors += _store(db, db_name, report, args.quiet)
    status = _status(report, proofs, write_errors)
    # `--profile probe`: the worse of the probe's and the check's, in the usual order.
    status = next((s for s in (EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE)
                   if s in (status, probe_status)), EXIT_OK)
    for problem in report.problems:
        path = save_traceback(problem.details or problem.message)
        where = f"; the traceback is in {path}" if path else ""
        print(f"vmbspec check: internal error in {problem.source} (a bug of vmbspec, not a "
              f"failure of the target): {problem.message}{where}", file=sys.stderr)
    for line in write_errors:
        print(f"vmbspec check: {line}", file=sys.stderr)
    failed_proofs = [p for p in proofs if not p.get("ok")]
    if failed_proofs:
        names = ", ".join(str(p.get("name")) for p in failed_proofs)
        print(f"proofs not as expected: {names}", file=sys.stderr)
    try:
        _print_known(report)
        _print_results(report, args.target)
    except BrokenPipeError:  # `vmbspec check | head`: the verdict still decides the status
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), sys.stdout.fileno())
    return status


def _replay_db(args: argparse.Namespace) -> int:
    """``replay --db DB``: list the stored failures; with ``--all``, replay each on the
    target (exit 1 if any still fails there)."""
    if args.file is not None:
        raise UsageError("replay: give a replay file or --db DB, not both")
    name, db = _open_db(args.db)
    if db is None:
        raise UsageError(f"replay --db {NO_DB}: there is no store to list")
    stored = _stored(db, name, "replay")
    print(f"{len(stored)} failure(s) stored in {name}")
    for failure in stored:
        blamed = ", ".join(failure.requirements) or "no requirement"
        print(f"  {failure.id}  {failure.kind} [{blamed}] {len(failure.steps)} steps, found on "
              f"{failure.target} ({failure.source}, profile {failure.profile}, vmbspec "
              f"{failure.vmbspec}): {failure.message[:160]}")
    if not args.all:
        return 0
    target = args.target or "sim"
    try:
        _name, factory = resolve_target(target, target_options(args))
    except UnknownTarget as error:
        raise UsageError(str(error)) from error
    failing = 0
    for failure in stored:
        try:
            result = replay_steps(failure.steps, factory, args.profile)
        except Exception as error:  # steps this vmbspec's driver refuses
            if type(error).__name__ not in ("StepError", "CaseDisagrees"):
                raise
            print(f"{failure.id}: not replayable by this vmbspec: {error}")
            continue
        if result.failure is None:
            print(f"{failure.id}: PASS on {target}")
        else:
            failing += 1
            print(f"{failure.id}: FAIL on {target} at step {result.steps_run} "
                  f"({result.failure.kind}): [{result.failure.blamed()}] "
                  f"{result.failure.message}")
    print(f"{failing} of {len(stored)} stored failure(s) fail on {target}")
    return EXIT_FAILED if failing else EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    if args.db is not None:
        return _replay_db(args)
    if args.all:
        raise UsageError("replay --all replays the failures of a store: give --db DB")
    if args.file is None:
        raise UsageError("replay: give a replay file (vmbspec-failure-N.json) or --db DB")
    try:
        document = load_replay(Path(args.file))
    except ReplayFileError as error:
        raise UsageError(str(error)) from error
    target = args.target or "sim"
    try:
        _name, factory = resolve_target(target, target_options(args))
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
          f"[{failure.blamed()}] {failure.message}")
    return 1


def add_parser(subparsers: Any) -> None:
    check = subparsers.add_parser(
        "check",
        help="run the conformance suite against a target",
        description="Run the case catalog and the stateful suite against a target, with the "
        "spec as the oracle; print a per-requirement table and save every failure as a "
        "replay file.",
    )
    check.add_argument("--target", default="sim", action=TargetAppend,
                       help="sim (default), sim:BUG[,BUG], sim:A5=b[+A3=c], rust, native:PATH, "
                       "remote:stdio:COMMAND, remote:tcp://HOST:PORT; give it several times "
                       "to spread the workers over several targets (worker i runs on target "
                       "i mod the number of targets)")
    check.add_argument("--workers", type=workers_value, default=1, metavar="N|auto",
                       help="split the cases and the stateful examples over N processes "
                       "(auto: one per core); the same examples, counts and steps digest as "
                       "one process (default 1)")
    check.add_argument("--db", default=None, metavar="DIR|redis://HOST:PORT[/N]",
                       help="the failure store: every failure found is stored there and "
                       "replayed first by the next check (default $VMBSPEC_DB or "
                       f".vmbspec/db; {NO_DB}: no store)")
    check.add_argument("--batch-examples", type=count(1, 10**9), default=BATCH_EXAMPLES,
                       help=argparse.SUPPRESS)
    profile_argument(check)
    accept_probe_profile(check)
    check.add_argument("--examples", type=count(0, 10**9), default=DEFAULT_EXAMPLES,
                       help="stateful examples (call sequences) to generate "
                       f"(default {DEFAULT_EXAMPLES})")
    check.add_argument("--steps", type=count(1, 10_000), default=40,
                       help="the most steps in one generated sequence (default 40)")
    check.add_argument("--seed", type=seed_value, default=DEFAULT_SEED,
                       help=f"seed of the stateful run, 0..2**64-1 (default {DEFAULT_SEED}: "
                       "the same command tests the same sequences)")
    check.add_argument("--json", metavar="FILE", type=output_file,
                       help="write the machine-readable report")
    check.add_argument("--junit", metavar="FILE", type=output_file,
                       help="write JUnit XML, one test a requirement")
    check.add_argument("--report", metavar="FILE.md", type=output_file,
                       help="write the Markdown report")
    check.add_argument("--replay-dir", default=Path("."), type=output_folder, metavar="DIR",
                       help="where failing sequences are saved (default: here); replay files "
                       "of an earlier run there are removed first")
    check.add_argument("--no-cases", action="store_true", help="skip the case catalog")
    check.add_argument("--no-proofs", action="store_true", help="skip the Z3 properties")
    check.add_argument("--quiet", action="store_true", help="no progress display")
    target_switches(check)
    check.set_defaults(func=run_check)

    replay = subparsers.add_parser(
        "replay", help="re-run a saved failing sequence on a target",
        description="Re-run the steps of a replay file (written by `vmbspec check`) on any "
        "target, or list (and with --all replay) the failures of a store (--db). Exit 1 if "
        "a sequence fails there, 0 if it conforms.",
    )
    replay.add_argument("file", nargs="?", default=None,
                        help="a vmbspec-failure-N.json file")
    replay.add_argument("--db", default=None, metavar="DIR|redis://HOST:PORT[/N]",
                        help="list the failures stored there (by vmbspec check --db)")
    replay.add_argument("--all", action="store_true",
                        help="with --db: replay every stored failure on the target")
    replay.add_argument("--target", default=None, help="target to replay on (default sim)")
    profile_argument(replay)
    target_switches(replay)
    replay.set_defaults(func=run_replay)

