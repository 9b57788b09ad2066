"""``run_conformance``: the one public entry point of the suite.

A user tests an implementation with one line::

    from conformance import run_conformance
    report = run_conformance(MyTarget)          # a factory of fresh target objects
    assert report.passed, report.summary()

A run has two parts, both checked by :class:`conformance.driver.Driver` against the spec:

1. the case catalog (hand-written cases and the Z3 boundary vectors), each case on a fresh
   target; every failing case is reported;
2. the stateful run: Hypothesis generates call sequences (``conformance.machine``); at the
   first failure it shrinks the sequence to a minimal one, which the report keeps as steps
   and which ``vmbspec replay`` re-runs on any target.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky
from hypothesis.stateful import get_state_machine_test

from conformance.cases import Case, load_cases
from conformance.driver import ConformanceFailure, Driver, Evidence, Step, StepError
from conformance.machine import RunState, build_machine
from conformance.targets import TargetFactory, resolve_target
from spec.catalog import CATALOG
from spec.readings import Profile

ProgressFn = Callable[[str, int, int], None]


@dataclass
class Failure:
    """One failure: what broke, where, and the minimal steps that show it."""

    source: str  # "case:<id>" or "stateful"
    requirements: tuple[str, ...]
    message: str
    steps: list[Step]
    kind: str = "nonconformance"  # or "crash", "hang", "target-error", "case-drift"

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "requirements": list(self.requirements),
            "message": self.message,
            "steps": self.steps,
        }


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

    @property
    def passed(self) -> bool:
        return not self.failures

    def failing_requirements(self) -> set[str]:
        return {r for f in self.failures for r in f.requirements}

    def summary(self) -> str:
        verdict = "PASS" if self.passed else f"FAIL ({len(self.failures)} failure(s))"
        return (
            f"{self.target}: {verdict}; {self.cases_run} cases, {self.examples} stateful "
            f"examples, {self.evidence.total_steps} steps in {self.seconds:.1f} s"
        )


def _classify(error: BaseException) -> tuple[str, tuple[str, ...], str]:
    if isinstance(error, ConformanceFailure):
        return "nonconformance", error.requirements, error.message
    kind = getattr(error, "kind", None)
    if kind in ("crash", "hang"):
        return str(kind), ("SEED-RETURN",), f"the target {kind}ed: {error}"
    if isinstance(error, StepError):
        return "case-drift", (), str(error)
    detail = "".join(traceback.format_exception_only(type(error), error)).strip()
    return "target-error", ("SEED-RETURN",), f"the target raised {detail}"


def run_case(
    case: Case, factory: TargetFactory, profile: Profile, evidence: Evidence
) -> Failure | None:
    """Run one case on a fresh target; the failure, if any."""
    target = factory()
    driver = Driver(target, profile, evidence)
    try:
        for step in case.steps:
            driver.execute(step)
    except Exception as error:
        kind, requirements, message = _classify(error)
        return Failure(f"case:{case.id}", requirements or case.requirements, message,
                       list(driver.log), kind)
    finally:
        evidence.end_case()
        close = getattr(target, "close", None)
        if close is not None:
            # A target that fails to close is not news; the verdict is already made.
            with contextlib.suppress(Exception):
                close()
    return None


def run_conformance(
    target: TargetFactory | str = "sim",
    *,
    profile: Profile | None = None,
    examples: int = 200,
    steps_per_example: int = 40,
    seed: int | None = None,
    cases: bool = True,
    stateful: bool = True,
    progress: ProgressFn | None = None,
    target_options: dict[str, Any] | None = None,
) -> ConformanceReport:
    """Run the suite against ``target``: a factory of fresh targets, or a name such as
    ``"sim"``, ``"rust"`` or ``"native:./lib.so"`` (``target_options`` such as
    ``{"isolate": True, "timeout": 5.0}`` go to the adapter that resolves the name)."""
    profile = profile or Profile.default()
    if isinstance(target, str):
        name, factory = resolve_target(target, target_options)
    else:
        factory = target
        name = str(getattr(target, "name", None) or getattr(target, "__name__", repr(target)))
    probe = factory()
    capabilities = frozenset(getattr(probe, "capabilities", ()))
    name = str(getattr(probe, "name", name))
    close = getattr(probe, "close", None)
    if close is not None:
        close()
    evidence = Evidence()
    report = ConformanceReport(name, profile, seed, 0, evidence, capabilities=capabilities)
    started = time.perf_counter()

    if cases:
        catalog = load_cases()
        for number, case in enumerate(catalog, start=1):
            failure = run_case(case, factory, profile, evidence)
            report.cases_run += 1
            if failure is not None:
                report.failures.append(failure)
            if progress is not None:
                progress("cases", number, len(catalog))

    if stateful and examples > 0:
        state = RunState(evidence)
        if progress is not None:
            state.on_example = lambda n, _steps: progress("stateful", n, examples)
        machine = build_machine(factory, profile, state)
        test = get_state_machine_test(
            machine,
            settings=settings(
                max_examples=examples,
                stateful_step_count=steps_per_example,
                deadline=None,
                database=None,
                derandomize=seed is None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                print_blob=False,
                # One failure a run, the first found, shrunk: two distinct failures would
                # come back as an ExceptionGroup with no single minimal sequence to replay.
                report_multiple_bugs=False,
            ),
        )
        if seed is not None:
            test = hypothesis_seed(seed)(test)
        try:
            test()
        except Flaky as error:
            report.failures.append(
                Failure("stateful", ("SEED-RETURN",), f"the target is not deterministic: "
                        f"a failure did not reproduce ({error})", list(state.last_log),
                        "flaky")
            )
        except Exception as error:
            kind, requirements, message = _classify(error)
            report.failures.append(
                Failure("stateful", requirements, message, list(state.last_log), kind)
            )
        report.examples = state.examples
    report.seconds = time.perf_counter() - started
    return report


def uncovered_reason(requirement_id: str, report: ConformanceReport) -> str:
    """Why a requirement has no evidence in this run."""
    requirement = CATALOG.requirements[requirement_id]
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
