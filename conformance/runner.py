"""``run_conformance``: the one public entry point of the suite.

A user tests an implementation with one line::

    from vmbspec.conformance import run_conformance
    report = run_conformance(MyTarget)          # a factory of fresh target objects
    assert report.passed, report.summary()

A run has two parts, both checked by :class:`conformance.driver.Driver` against the spec:

1. the case catalog (hand-written cases and the Z3 boundary vectors), each case on a fresh
   target; every failing case is reported;
2. the stateful run: Hypothesis generates call sequences (``conformance.machine``); at the
   first failure it shrinks the sequence to a minimal one, which the report keeps as steps
   and which ``vmbspec replay`` re-runs on any target.

A target that becomes *unreachable* (an adapter's fault of that kind, see
``conformance.guard``: a remote agent that stopped answering or accepting connections after a
hang) ends the run at once: the report says why (``stopped``: "agent unreachable after the
hang in case N") and lists what was not run (``not_run``), instead of one timeout a remaining
case. A *protocol error* of a harness (a reply of the wrong shape) is a failure of its own
kind, blamed on no requirement: it says what the harness must fix, not what the driver broke.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.stateful import get_state_machine_test

from vmbspec.conformance import interrupt
from vmbspec.conformance.cases import Case, load_cases
from vmbspec.conformance.determinism import fixed_generation
from vmbspec.conformance.driver import (
    ConformanceFailure,
    Driver,
    Evidence,
    Step,
    StepError,
    ring_bytes,
)
from vmbspec.conformance.guard import (
    GuardedTarget,
    TargetInterfaceError,
    TargetRaised,
    check_interface,
    close_quietly,
)
from vmbspec.conformance.inputs import shorten
from vmbspec.conformance.machine import RunState, build_machine
from vmbspec.conformance.minimise import Invalid, minimise
from vmbspec.conformance.targets import TargetFactory, resolve_target
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.readings import Profile

ProgressFn = Callable[[str, int, int], None]

#: Stateful examples of a run unless told otherwise: the command line, run_conformance and the
#: pytest plugin all use this one number.
DEFAULT_EXAMPLES = 1000
#: The seed of a run given none: every run is seeded, so the same command tests the same
#: sequences on any install.
DEFAULT_SEED = 0
#: Examples per Hypothesis test run. Hypothesis keeps a record of every example of a test run
#: (its tree of choices, to avoid repeats), which grows with the run; a long run is made of
#: batches of this many, each with its own seed derived from the run's, so memory stays flat.
BATCH_EXAMPLES = 500


class InternalError(Exception):
    """A bug of vmbspec itself (never the target's failure); the runner keeps its traceback."""


class SuiteUsageError(ValueError):
    """A mistake in how the suite was called (a bad argument, an adapter lacking methods)."""


@dataclass
class Failure:
    """One failure: what broke, where, and the minimal steps that show it."""

    source: str  # "case:<id>" or "stateful"
    requirements: tuple[str, ...]
    message: str
    steps: list[Step]
    #: or "crash", "hang", "target-error", "flaky", "protocol-error" (a harness's reply of the
    #: wrong shape: no requirement is blamed), "unidentified" (a stateful failure the target
    #: became unreachable before it could be re-run and named)
    kind: str = "nonconformance"
    #: Where ``vmbspec check`` saved the steps (set by the command line, else None).
    replay_file: str | None = None

    def blamed(self) -> str:
        """The requirements it breaks, as a line says them (a harness's protocol error, or a
        target gone, breaks none)."""
        return ", ".join(self.requirements) or "no requirement"

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "requirements": list(self.requirements),
            "message": self.message,
            "steps": self.steps,
            "replay_file": self.replay_file,
        }


@dataclass
class Problem:
    """Something that went wrong in vmbspec, not in the target: an internal error, or a case of
    the catalog whose expectation disagrees with the spec. Never counted against the target."""

    source: str
    kind: str  # "internal-error" or "case-drift"
    message: str
    details: str = ""  # the traceback of an internal error

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "message": self.message}


@dataclass
class ConformanceReport:
    target: str
    profile: Profile
    seed: int | None
    examples: int
    evidence: Evidence
    failures: list[Failure] = field(default_factory=list)
    cases_run: int = 0
    seconds: float = 0.0
    capabilities: frozenset[str] = frozenset()
    proofs: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: The run was stopped (Ctrl-C) before it finished: the report holds what was done.
    interrupted: bool = False
    examples_requested: int = 0
    shrink_runs: int = 0
    #: The stateful run's sequences depend only on vmbspec, Hypothesis's version, the target,
    #: the profile, the counts and the seed (conformance.determinism).
    reproducible: bool = True
    #: SHA-256 over the steps of every generated example (see RunState.digest).
    steps_digest: str = ""
    #: Seconds from the stateful run's first failure to its minimal step list.
    shrink_seconds: float = 0.0
    #: How deep the generated examples went (RunState.depth_report).
    generation: dict[str, Any] = field(default_factory=dict)
    #: Why the run was cut short (the target became unreachable), "" when it was not; and
    #: what was not run then: "case:<id>" for each case, "stateful" (with how many examples)
    #: for the stateful run.
    stopped: str = ""
    not_run: list[str] = field(default_factory=list)
    #: Processes the run was split over (conformance.workers).
    workers: int = 1
    #: The known failures replayed first (conformance.exampledb): for each and each target,
    #: ``{"id", "target", "found_on", "result"}`` with result "fails", "passes" or why it
    #: was not replayable.
    known: list[dict[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """The target conforms: no failure, and the run was complete and sound."""
        return (not self.failures and not self.problems and not self.interrupted
                and not self.stopped)

    @property
    def verdict(self) -> str:
        # A target that became unreachable failed (as a crash or hang does), even when that
        # is all the run saw.
        if self.failures or self.stopped:
            return "FAIL"
        if self.problems:
            return "ERROR"
        if self.interrupted:
            return "INTERRUPTED"
        return "PASS"

    def failing_requirements(self) -> set[str]:
        return {r for f in self.failures for r in f.requirements}

    def summary(self) -> str:
        """One paragraph: the verdict, what ran, and each failure or problem in a line."""
        cut = ", run cut short" if self.stopped else ""
        verdict = {
            "FAIL": f"FAIL ({len(self.failures)} failure(s){cut})",
            "ERROR": f"ERROR (vmbspec could not judge: {len(self.problems)} problem(s))",
            "INTERRUPTED": "INTERRUPTED (partial run, no verdict)",
        }.get(self.verdict, "PASS")
        examples = f"{self.examples} stateful examples"
        if self.examples_requested and self.examples_requested != self.examples:
            examples += f" ({self.examples_requested} requested)"
        if self.workers > 1:
            examples += f" over {self.workers} workers"
        lines = [
            f"{self.target}: {verdict}; {self.cases_run} cases, {examples}, "
            f"{self.evidence.total_steps} steps in {self.seconds:.1f} s"
        ]
        if self.known:
            again = sum(1 for known in self.known if known["result"] == "fails")
            lines.append(f"  known failures replayed first: {len(self.known)}, "
                         f"{again} failing again")
        for number, failure in enumerate(self.failures, start=1):
            where = f" (replay: {failure.replay_file})" if failure.replay_file else ""
            lines.append(
                f"  failure {number} [{failure.blamed()}] {failure.kind}, "
                f"{failure.source}, {len(failure.steps)} steps: {failure.message}{where}"
            )
        for problem in self.problems:
            lines.append(f"  vmbspec problem ({problem.kind}, {problem.source}): "
                         f"{problem.message}")
        if self.stopped:
            lines.append(f"  run cut short: {self.stopped}")
            lines.append(f"  not run: {describe_not_run(self.not_run)}")
        for capability, skipped in skipped_checks(self).items():
            if capability not in SKIPS_NOTHING:
                lines.append(f"  without {capability}: {skipped}")
        return "\n".join(lines)


#: Capability -> the checks a run makes only on a target that declares it (what a report
#: lists as skipped when the target does not), as docs/remote-protocol.md says them.
CAPABILITY_CHECKS = {
    "ring-bytes": "the raw ring is never read: after each step, that it decodes (indices, "
    "8-byte trailers), holds as many packets as the model and is never completely full "
    "(RING-LAYOUT, RING-TRAILER, RING-NEVER-FULL), and that a rejected send left it unchanged",
    "robust-contract-violations": "no call breaks the caller's side of the contract (READ-A10): "
    "no send of a queued, in-flight or freed packet, no free of a busy packet",
    "reads-buffer-late": "nothing: the suite changes queued buffers on every target and judges "
    "when they were read by reading A11 of the profile (an agent never declares it: its "
    "buffer is a copy made at the call)",
}


#: Capabilities whose lack skips no check (the summary leaves them out; the reports say so).
SKIPS_NOTHING = frozenset({"reads-buffer-late"})


def skipped_checks(report: ConformanceReport) -> dict[str, str]:
    """For each capability of :data:`CAPABILITY_CHECKS` the target does not declare, what the
    run did not check for want of it."""
    return {name: checks for name, checks in CAPABILITY_CHECKS.items()
            if name not in report.capabilities}


def describe_not_run(not_run: list[str]) -> str:
    """``not_run`` in a line: how many cases (the first few named) and the stateful run."""
    cases = [item.removeprefix("case:") for item in not_run if item.startswith("case:")]
    parts = []
    if cases:
        shown = ", ".join(cases[:3]) + (", ..." if len(cases) > 3 else "")
        parts.append(f"{len(cases)} case(s) ({shown})")
    parts += [item for item in not_run if not item.startswith("case:")]
    return " and ".join(parts) or "nothing"


def _where(source: str) -> str:
    """``case:abc`` -> "case abc"; ``stateful`` -> "the stateful run"."""
    if source.startswith("case:"):
        return "case " + source.removeprefix("case:")
    return "the stateful run" if source == "stateful" else source


def _unreachable_reason(detail: str, after: Failure | None, where: str) -> str:
    """The one verdict of a run cut short: "agent unreachable after the hang in case N"."""
    if after is not None and after.kind in ("crash", "hang", "protocol-error", "target-error"):
        return f"agent unreachable after the {after.kind} in {_where(after.source)}: {detail}"
    return f"agent unreachable in {_where(where)}: {detail}"


class _Unreachable(KeyboardInterrupt):
    """The target became unreachable during the stateful run: the run stops, as at Ctrl-C.
    A KeyboardInterrupt, the one exception Hypothesis's engine lets through at once: an
    ordinary exception would be taken as a failure and re-run (one unreachable example after
    another). When Hypothesis re-runs a failing example to report it, an example cut short
    comes out as a Flaky error instead; the runner then goes by what :class:`_StatefulWatch`
    saw. Caught by the runner before its handler of Ctrl-C."""

    def __init__(self, raised: TargetRaised) -> None:
        super().__init__(str(raised))
        self.raised = raised


def _classify(error: BaseException) -> tuple[str, tuple[str, ...], str]:
    """``(kind, requirements, message)`` of a failure the target is to blame for; an error that
    is not the target's (a bug of vmbspec) raises :class:`InternalError`."""
    if isinstance(error, ConformanceFailure):
        return "nonconformance", error.requirements, error.message
    if isinstance(error, TargetRaised):
        if error.kind == "protocol-error":
            # The harness broke the protocol: no requirement of the driver is in question.
            detail = str(error).removeprefix(f"{error.method}: ")
            return "protocol-error", (), (
                f"harness protocol error in {error.method}: {detail}. This is no verdict on "
                "the driver: fix the harness, then run again"
            )
        if error.kind == "unreachable":
            return "unreachable", (), f"the target became unreachable in {error.method}: {error}"
        if error.kind in ("crash", "hang"):
            return error.kind, ("SEED-RETURN",), f"the target {error.kind}ed in {error.method}: " \
                f"{error}"
        return "target-error", ("SEED-RETURN",), f"the target's {error.method} failed: {error}"
    if isinstance(error, StepError):
        raise InternalError(f"the suite made a step it cannot perform: {error}") from error
    detail = shorten("".join(traceback.format_exception_only(type(error), error)).strip())
    raise InternalError(f"vmbspec's own code raised {detail}") from error


def _problem(source: str, error: BaseException) -> Problem:
    """The :class:`Problem` for an error of vmbspec's own (with the traceback kept)."""
    cause = error.__cause__ if isinstance(error, InternalError) and error.__cause__ else error
    details = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    kind = "case-drift" if isinstance(cause, StepError) and source.startswith("case:") else \
        "internal-error"
    return Problem(source, kind, str(error), details)


def _make_target(factory: TargetFactory) -> Any:
    """A fresh target; a factory that fails is the target's failure, named as such."""
    try:
        return factory()
    except Exception as error:
        kind = getattr(error, "kind", None)
        kind = kind if kind in ("crash", "hang") else "target-error"
        detail = shorten(f"{type(error).__name__}: {error}")
        raise TargetRaised("creating the target", detail, kind) from error


def run_case(
    case: Case, factory: TargetFactory, profile: Profile, evidence: Evidence
) -> Failure | None:
    """Run one case on a fresh target; the failure, if any. An error of vmbspec's own raises
    :class:`InternalError` (a case that disagrees with the spec is one)."""
    try:
        target = _make_target(factory)
    except TargetRaised as error:
        kind, requirements, message = _classify(error)
        return Failure(f"case:{case.id}", requirements, message, [], kind)
    driver = Driver(target, profile, evidence)
    driver.check_expectations = case.expectations_hold(profile)
    try:
        for step in case.steps:
            driver.execute(step)
    except Exception as error:
        if isinstance(error, StepError) and not driver.check_expectations:
            # Under a profile other than the one the case was written for, a later step may
            # need the verdict the case expected (the completion of a send this profile
            # rejects): the case ends there. Every step it ran was checked against the
            # active profile.
            evidence.ended_early[case.id] = str(error)
            return None
        kind, requirements, message = _classify(error)
        if not requirements and kind not in ("protocol-error", "unreachable"):
            requirements = case.requirements
        return Failure(f"case:{case.id}", requirements, message, list(driver.log), kind)
    finally:
        evidence.end_case()
        close_quietly(target)
    return None


def _validate_arguments(examples: Any, steps_per_example: Any, seed: Any) -> None:
    for name, value, low in (("examples", examples, 0), ("steps_per_example",
                                                        steps_per_example, 1)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise SuiteUsageError(f"{name} must be an integer, not {value!r}")
        if not low <= value <= 10**9:
            raise SuiteUsageError(f"{name} must be between {low} and 10**9, not {value}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2**64):
        raise SuiteUsageError(f"seed must be an integer in 0..2**64-1, not {seed!r}")


def batch_seed(seed: int, batch: int) -> int:
    """The seed of batch ``batch`` of a run seeded ``seed``: fixed by the two numbers alone."""
    digest = hashlib.sha256(f"vmbspec-stateful:{seed}:{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _stateful_settings(examples: int, steps_per_example: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=steps_per_example,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        # No Phase.shrink: Hypothesis's shrinker re-ran a 40-rule example thousands of times
        # (18 s for one failure) to reach about 17 steps; the step-level pass of
        # conformance.minimise gets from the whole failing example to 4-8 steps in well under
        # a second, re-running only steps, so it costs the same on a slow remote target.
        phases=[Phase.explicit, Phase.generate],
        print_blob=False,
        # One failure a run, the first found, shrunk: two distinct failures would come back
        # as an ExceptionGroup with no single minimal sequence to replay.
        report_multiple_bugs=False,
    )


def batch_sizes(examples: int, batch_examples: int = BATCH_EXAMPLES) -> list[tuple[int, int]]:
    """``(batch, examples)`` of every batch of a run of ``examples`` examples: batch ``b``
    holds ``batch_examples`` examples (the last one the rest), whatever process runs it."""
    if batch_examples < 1:
        raise SuiteUsageError(f"batch_examples must be at least 1, not {batch_examples}")
    return [(number, min(batch_examples, examples - start))
            for number, start in enumerate(range(0, examples, batch_examples))]


def combine_digests(batch_digests: list[str]) -> str:
    """The run's ``steps_digest``: SHA-256 over the per-batch digests in batch order, so a run
    split over workers (conformance.workers) has the digest of the same run in one process."""
    return hashlib.sha256("".join(batch_digests).encode()).hexdigest()


def _run_batches(
    machine: Any, state: RunState, batches: list[tuple[int, int]], steps_per_example: int,
    seed: int, batch_digests: list[str],
) -> None:
    """Hypothesis test runs, one per ``(batch, examples)`` of ``batches`` (see
    :func:`batch_sizes`), batch ``b`` seeded ``batch_seed(seed, b)``, until all ran or one
    fails. Each batch's examples go into a digest of their own, kept in ``batch_digests``
    (also the digest of a batch cut short by a failure)."""
    for batch, size in batches:
        test = get_state_machine_test(
            machine, settings=_stateful_settings(size, steps_per_example)
        )
        before = state.examples
        state.digest = hashlib.sha256()
        try:
            hypothesis_seed(batch_seed(seed, batch))(test)()
        finally:
            batch_digests.append(state.digest.hexdigest())
        if state.examples == before:  # nothing left to generate (cannot happen today)
            return


class _StatefulWatch:
    """What the runner needs to see of a stateful run whose target may become unreachable:
    the first fault the target raised and the steps of the first failing example (Hypothesis
    raises the failure only after re-running that example), and the stop itself."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.first_fault: TargetRaised | None = None
        self.failing_log: list[Step] | None = None
        #: The fault that said the target is unreachable, once one did.
        self.unreachable: TargetRaised | None = None

    def target(self, factory: TargetFactory) -> GuardedTarget:
        """A fresh target for one example, whose faults this watch sees."""
        if self.state.shrinking and self.failing_log is None:
            # The example before this one failed first: its steps are the last log.
            self.failing_log = list(self.state.last_log)
        return GuardedTarget(_make_target(factory), on_raise=self.on_raise)

    def on_raise(self, raised: TargetRaised) -> None:
        if raised.kind == "unreachable":
            self.unreachable = raised
            raise _Unreachable(raised)
        if self.first_fault is None and not self.state.shrinking:
            self.first_fault = raised


def _run_stateful(
    report: ConformanceReport,
    factory: TargetFactory,
    profile: Profile,
    examples: int,
    steps_per_example: int,
    seed: int,
    progress: ProgressFn | None,
    *,
    batches: list[tuple[int, int]] | None = None,
    state: RunState | None = None,
    minimise_failure: bool = True,
) -> bool:
    """The stateful run (see :func:`_run_batches`): every batch of ``examples``, or only
    ``batches`` (a worker's share, conformance.workers); the first failure, minimised by
    :func:`_minimise`, goes into ``report``. A target that becomes unreachable ends it
    (:func:`_stateful_cut_short`). With ``minimise_failure`` False the failure keeps its
    example's steps and the return value says it is still to be minimised."""
    if batches is None:
        batches = batch_sizes(examples)
    state = state or RunState(report.evidence, steps_per_example)
    if progress is not None:
        state.on_example = lambda n, _steps: progress("stateful", n, examples)
    watch = _StatefulWatch(state)
    machine = build_machine(lambda: watch.target(factory), profile, state)
    batch_digests: list[str] = []
    to_minimise = False
    try:
        try:
            with fixed_generation() as reproducible:
                report.reproducible = reproducible
                _run_batches(machine, state, batches, steps_per_example, seed, batch_digests)
        except (_Unreachable, Exception):
            if watch.unreachable is None:
                raise
            # However Hypothesis passed it on (itself, or as Flaky when it cut short the
            # re-run of a failing example), the target is gone: the run stops here.
            _stateful_cut_short(report, watch, watch.unreachable, examples)
    except Flaky as error:
        if interrupt.requested():
            # Ctrl-C while Hypothesis re-ran a failing example: Hypothesis reports the cut-short
            # re-run as Flaky; it is the user's interruption, not a target that changed its mind.
            raise KeyboardInterrupt from error
        report.failures.append(
            Failure("stateful", ("SEED-RETURN",), f"the target is not deterministic: "
                    f"a failure did not reproduce ({shorten(str(error))})",
                    list(state.last_log), "flaky")
        )
    except Exception as error:
        try:
            kind, requirements, message = _classify(error)
        except InternalError as internal:
            report.problems.append(_problem("stateful", internal))
        else:
            failure = Failure("stateful", requirements, message, list(state.last_log), kind)
            if minimise_failure:
                minimise_into(report, failure, factory, profile)
            else:
                to_minimise = True
            report.failures.append(failure)
            if state.failed_at:
                report.shrink_seconds = round(time.perf_counter() - state.failed_at, 3)
    finally:
        report.examples = state.examples
        report.shrink_runs = state.shrink_runs
        report.steps_digest = combine_digests(batch_digests)
        report.generation = state.depth_report()
    return to_minimise


def minimise_into(
    report: ConformanceReport, failure: Failure, factory: TargetFactory, profile: Profile
) -> None:
    """Minimise the stateful run's ``failure`` in place (its steps, kind, requirements and
    message become the minimal list's); a target that becomes unreachable meanwhile cuts the
    run short (``report.stopped``) and leaves the failing example's steps."""
    try:
        failure.steps, failure.kind, failure.requirements, failure.message = _minimise(
            failure.steps, (failure.kind, failure.requirements, failure.message), factory,
            profile,
        )
    except _Unreachable as unreachable:
        report.stopped = (
            f"{_unreachable_reason(str(unreachable.raised), None, 'stateful')} "
            "(while the failure of the stateful run was minimised: its steps are "
            "the failing example's, not minimised)"
        )


def _stateful_cut_short(
    report: ConformanceReport, watch: _StatefulWatch, raised: TargetRaised, examples: int
) -> None:
    """The report of a stateful run whose target became unreachable: the failure found
    before, if any (its example's steps, not shrunk), and why and where the run stopped."""
    state = watch.state
    after: Failure | None = None
    if state.shrinking:  # an example had failed: Hypothesis was re-running it
        steps = watch.failing_log if watch.failing_log is not None else list(state.last_log)
        if watch.first_fault is not None:
            kind, requirements, message = _classify(watch.first_fault)
            message += " (not minimised: the target became unreachable afterwards)"
        else:
            kind, requirements = "unidentified", ()
            message = ("an example of the stateful run failed, and the target became "
                       "unreachable before the failure could be re-run and named: the steps "
                       "are the failing example's; replay them to see the failure")
        after = Failure("stateful", requirements, message, steps, kind)
        report.failures.append(after)
        report.not_run.append("the minimisation of the stateful run's failure")
        if state.failed_at:
            report.shrink_seconds = round(time.perf_counter() - state.failed_at, 3)
    else:
        report.not_run.append(
            f"stateful ({max(0, examples - state.examples)} of {examples} examples)"
        )
    report.stopped = _unreachable_reason(str(raised), after, "stateful")


def _minimise(
    steps: list[Step], failure: tuple[str, tuple[str, ...], str], factory: TargetFactory,
    profile: Profile,
) -> tuple[list[Step], str, tuple[str, ...], str]:
    """``steps`` after the step-deletion pass of :mod:`conformance.minimise`, with the kind,
    requirements and message of the minimal list's own failure (what its replay shows). A
    target that becomes unreachable meanwhile raises :class:`_Unreachable`."""
    kind, requirements, message = failure
    seen: dict[str, str] = {}

    def run(candidate: list[Step]) -> tuple[str, tuple[str, ...]] | Invalid | None:
        try:
            target = _make_target(factory)
        except TargetRaised:
            return None
        driver = Driver(target, profile, Evidence())
        executed = 0
        try:
            for step in candidate:
                driver.execute(step)
                executed += 1
        except (ConformanceFailure, TargetRaised) as error:
            if isinstance(error, TargetRaised) and error.kind == "unreachable":
                raise _Unreachable(error) from error
            kind, requirements, message = _classify(error)
            seen["message"] = message
            return kind, requirements
        except StepError:  # not a valid sequence any more: this step needed a removed one
            return Invalid(executed)
        except Exception:  # not this failure
            return None
        finally:
            close_quietly(target)
        return None

    minimal, _runs = minimise(
        steps, (kind, requirements), run, size=lambda step: ring_bytes(step, profile)
    )
    if minimal != steps:
        outcome = run(minimal)
        if isinstance(outcome, tuple):
            return minimal, outcome[0], outcome[1], seen.get("message", message)
    return minimal, kind, requirements, message


@dataclass
class KnownFailure:
    """A failure found by an earlier run (conformance.exampledb): replayed before the cases."""

    id: str
    steps: list[Step]
    kind: str = "nonconformance"
    requirements: tuple[str, ...] = ()
    #: Where it was found (the target's name), as the store says it.
    found_on: str = ""


class _NotReplayable(Exception):
    """The steps of a known failure are refused by this vmbspec's driver (stored by another
    version): skipped, not judged."""


def run_known(
    known: KnownFailure, factory: TargetFactory, profile: Profile, evidence: Evidence
) -> Failure | None:
    """Replay a known failure's steps on a fresh target, as a case runs: the failure it
    shows now (source ``known:<id>``), None if the target passes them now. Steps the driver
    refuses raise :class:`_NotReplayable`."""
    source = f"known:{known.id}"
    try:
        target = _make_target(factory)
    except TargetRaised as error:
        kind, requirements, message = _classify(error)
        return Failure(source, requirements, message, [], kind)
    driver = Driver(target, profile, evidence)
    try:
        for step in known.steps:
            driver.execute(step)
    except StepError as error:
        raise _NotReplayable(str(error)) from error
    except Exception as error:
        kind, requirements, message = _classify(error)
        return Failure(source, requirements, message, list(driver.log), kind)
    finally:
        evidence.end_case()
        close_quietly(target)
    return None


def _run_known_failures(
    report: ConformanceReport, factories: list[tuple[str, TargetFactory]], profile: Profile,
    known: list[KnownFailure],
) -> bool:
    """Replay every known failure on every target, first thing in the run; False when a
    target became unreachable (``report.stopped`` says so)."""
    for number, failure_known in enumerate(known):
        for name, factory in factories:
            interrupt.check()
            outcome = {"id": failure_known.id, "target": name, "found_on": failure_known.found_on}
            try:
                # Not counted in the evidence: a run's counts do not depend on what the
                # store holds (and stay those of one process with any number of workers).
                failure = run_known(failure_known, factory, profile, Evidence())
            except _NotReplayable as error:
                outcome["result"] = f"not replayable by this vmbspec: {shorten(str(error))}"
                report.known.append(outcome)
                continue
            except InternalError as error:
                report.problems.append(_problem(f"known:{failure_known.id}", error))
                continue
            if failure is not None and failure.kind == "unreachable":
                detail = failure.message.split(": ", 1)[-1]
                report.stopped = _unreachable_reason(detail, None, failure.source)
                report.not_run = [f"known:{k.id}" for k in known[number:]]
                return False
            outcome["result"] = "fails" if failure is not None else "passes"
            report.known.append(outcome)
            if failure is not None:
                if len(factories) > 1:
                    failure.message = f"on {name}: {failure.message}"
                report.failures.append(failure)
    return True


def _run_parts(
    report: ConformanceReport, factory: TargetFactory, profile: Profile, cases: bool,
    stateful: bool, examples: int, steps_per_example: int, seed: int,
    progress: ProgressFn | None, batch_examples: int = BATCH_EXAMPLES,
) -> None:
    """The case catalog, then the stateful run, into ``report``; a target that becomes
    unreachable during the cases ends the run there (``report.stopped``)."""
    if cases:
        catalog = load_cases()
        previous: Failure | None = None  # the failure of the case just before, if any
        for number, case in enumerate(catalog, start=1):
            interrupt.check()
            try:
                failure = run_case(case, factory, profile, report.evidence)
            except InternalError as error:
                report.problems.append(_problem(f"case:{case.id}", error))
                failure = None
            if failure is not None and failure.kind == "unreachable":
                detail = failure.message.split(": ", 1)[-1]
                report.stopped = _unreachable_reason(detail, previous, f"case:{case.id}")
                report.not_run = [f"case:{c.id}" for c in catalog[number - 1:]]
                if stateful and examples > 0:
                    report.not_run.append(f"stateful ({examples} examples)")
                return
            report.cases_run += 1
            if failure is not None:
                report.failures.append(failure)
            previous = failure
            if progress is not None:
                progress("cases", number, len(catalog))
    if stateful and examples > 0:
        _run_stateful(report, factory, profile, examples, steps_per_example, seed, progress,
                      batches=batch_sizes(examples, batch_examples))


def _probe(factory: TargetFactory, name: str) -> tuple[str, frozenset[str]]:
    """A target's display name and capabilities, from one fresh target whose interface is
    checked (a target lacking methods is the user's mistake: :class:`SuiteUsageError`)."""
    probe = _make_target(factory)
    try:
        check_interface(probe)
    except TargetInterfaceError as error:
        raise SuiteUsageError(str(error)) from error
    finally:
        close = getattr(probe, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()
    return str(getattr(probe, "name", name)), frozenset(getattr(probe, "capabilities", ()))


def _targets(
    target: TargetFactory | str | list[str], options: dict[str, Any] | None, workers: int
) -> tuple[list[str], list[tuple[str, TargetFactory]]]:
    """The target texts (empty for a factory) and ``(name, factory)`` of each target."""
    if isinstance(target, str):
        target = [target]
    if isinstance(target, list):
        if not target or not all(isinstance(t, str) for t in target):
            raise SuiteUsageError(f"target must be a target name or a factory, not {target!r}")
        if len(target) > workers:
            raise SuiteUsageError(
                f"{len(target)} targets need at least {len(target)} workers (a worker runs on "
                f"one target): give --workers {len(target)} or more"
            )
        return list(target), [resolve_target(text, options) for text in target]
    if callable(target):
        if workers > 1:
            raise SuiteUsageError(
                "workers > 1 needs the target as a name (such as 'sim' or "
                "'remote:tcp://HOST:PORT'): a factory object cannot be sent to other processes"
            )
        name = str(getattr(target, "name", None) or getattr(target, "__name__", repr(target)))
        return [], [(name, target)]
    raise SuiteUsageError(f"target must be a target name or a factory, not {target!r}")


def run_conformance(
    target: TargetFactory | str | list[str] = "sim",
    *,
    profile: Profile | None = None,
    examples: int = DEFAULT_EXAMPLES,
    steps_per_example: int = 40,
    seed: int | None = None,
    cases: bool = True,
    stateful: bool = True,
    progress: ProgressFn | None = None,
    target_options: dict[str, Any] | None = None,
    workers: int = 1,
    batch_examples: int = BATCH_EXAMPLES,
    known_failures: list[KnownFailure] | None = None,
) -> ConformanceReport:
    """Run the suite against ``target``: a factory of fresh targets, or a name such as
    ``"sim"``, ``"rust"`` or ``"native:./lib.so"`` (``target_options`` such as
    ``{"isolate": True, "timeout": 5.0}`` go to the adapter that resolves the name), or a
    list of names, one per worker (worker ``i`` runs on target ``i mod len(targets)``).

    ``seed`` fixes the generated sequences (default :data:`DEFAULT_SEED`: every run is
    seeded). ``workers`` > 1 splits the cases and the stateful batches over that many
    processes (conformance.workers) with the same examples, counts and ``steps_digest`` as
    one process; ``batch_examples`` is the size of a batch (:data:`BATCH_EXAMPLES`).
    ``known_failures`` (conformance.exampledb) are replayed first, reported like cases with
    source ``known:<id>``. A bad argument or an adapter lacking interface methods raises
    :class:`SuiteUsageError`. Ctrl-C during the run returns the report so far, marked
    ``interrupted``. An error of vmbspec's own is kept in ``report.problems``, never counted
    as the target's failure."""
    _validate_arguments(examples, steps_per_example, seed)
    for label, value, high in (("workers", workers, 1024), ("batch_examples", batch_examples,
                                                            10**9)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise SuiteUsageError(f"{label} must be an integer in 1..{high}, not {value!r}")
    profile = profile or Profile.default()
    if not isinstance(profile, Profile):
        raise SuiteUsageError(f"profile must be a spec.readings.Profile, not {profile!r}")
    seed = DEFAULT_SEED if seed is None else seed
    texts, factories = _targets(target, target_options, workers)
    probed = [_probe(factory, name) for name, factory in factories]
    factories = [(name, factory) for (name, _), (_, factory) in zip(probed, factories,
                                                                     strict=True)]
    capabilities = frozenset.intersection(*(caps for _, caps in probed))
    name = ", ".join(name for name, _ in probed)
    evidence = Evidence()
    report = ConformanceReport(name, profile, seed, 0, evidence, capabilities=capabilities,
                               examples_requested=examples if stateful else 0)
    report.workers = workers
    started = time.perf_counter()
    try:
        with interrupt.deferred():
            if _run_known_failures(report, factories, profile, list(known_failures or ())):
                if workers == 1:
                    _run_parts(report, factories[0][1], profile, cases, stateful, examples,
                               steps_per_example, seed, progress, batch_examples)
                else:
                    from vmbspec.conformance.workers import run_parallel

                    run_parallel(report, texts, dict(target_options or {}), factories,
                                 cases=cases, stateful=stateful, examples=examples,
                                 steps_per_example=steps_per_example, seed=seed,
                                 progress=progress, workers=workers,
                                 batch_examples=batch_examples)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        report.seconds = time.perf_counter() - started
    return report


def uncovered_reason(requirement_id: str, report: ConformanceReport) -> str:
    """Why a requirement has no evidence in this run."""
    requirement = CATALOG.requirements[requirement_id]
    if report.stopped:
        return "no step exercised it before the run was cut short (see the report's top)"
    if requirement.kind == "contract" and requirement_id != "READ-A10":
        return "a rule for the caller: a target cannot be tested against it"
    if requirement_id == "READ-A10" and (
        "robust-contract-violations" not in report.capabilities
    ):
        return "the target does not declare robust-contract-violations"
    if requirement.kind == "reading":
        option = report.profile[requirement_id.removeprefix("READ-")]
        return f"no call in this run depended on this reading (option {option})"
    return "no step in this run exercised it"
