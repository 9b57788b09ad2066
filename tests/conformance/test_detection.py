"""The detection self-test: every deliberately broken simulator is reported by the suite.

Each bug switch of ``adapters.sim`` imitates a real bug class (reference §6). A suite that
passes one of them has a hole; these tests fail if it does. The correct simulator must pass.
"""

from __future__ import annotations

import pytest

from vmbspec.adapters.sim import BUGS
from vmbspec.conformance import run_conformance
from vmbspec.conformance.replay import replay_steps
from vmbspec.conformance.targets import resolve_target
from vmbspec.spec.readings import Profile

#: The requirement each broken variant must be reported against (at least one of them).
EXPECTED = {
    "wrap32": {"SEED-MDLOFFSET", "SEED-MDLLENGTH"},
    "force-ignores-byteoffset": {"SEED-FORCE-BOUND", "READ-A3"},
    "double-completion": {"SEED-WAIT", "READ-A12"},
    "paged-not-copied": {"SEED-PAGED", "READ-A11"},
    "range-per-page": {"WIRE-RANGE-CONTIGUOUS"},
    "zero-length-range": {"READ-A9", "WIRE-RANGE-NONEMPTY"},
    "extra-pfn": {"WIRE-PFN-COUNT"},
    "ignore-wait-flag": {"SEED-WAIT-MUST", "READ-A4"},
    "ring-full": {"RING-NEVER-FULL", "KMCL-QUEUE-FULL", "RING-LAYOUT"},
    "cancel-skips-taken": {"READ-A12"},
    "queue-overtaking": {"KMCL-QUEUE-FULL", "RING-LAYOUT"},
    "busy-free-honoured": {"READ-A10", "SEED-WAIT", "KMCL-COMPLETION", "KMCL-QUEUE-FULL"},
    "completion-left-outstanding": {"READ-A12", "SEED-WAIT"},
    "txid-reuse": {"KMCL-COMPLETION"},
}


def test_every_bug_switch_has_an_expectation() -> None:
    assert set(EXPECTED) == set(BUGS)


def test_the_correct_simulator_conforms() -> None:
    report = run_conformance("sim", examples=150, seed=7)
    assert report.passed, [f.message for f in report.failures]
    assert report.cases_run > 0 and report.evidence.total_steps > 500


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_the_suite_reports_each_broken_simulator(bug: str) -> None:
    report = run_conformance(f"sim:{bug}", examples=60, seed=1)
    assert not report.passed, f"sim:{bug} passed the suite"
    cited = report.failing_requirements()
    assert cited & EXPECTED[bug], f"sim:{bug} reported against {sorted(cited)}"


@pytest.mark.parametrize("bug", sorted(EXPECTED))
def test_the_stateful_run_alone_finds_and_shrinks(bug: str) -> None:
    # No hand-written case: the generator alone must reach every switch. One seed here (the
    # default run's examples); bench/bench_detection.py runs five seeds per switch and
    # records how fast each is found and how short its minimal list is.
    report = run_conformance(f"sim:{bug}", cases=False, seed=1)
    assert not report.passed, f"the stateful run missed sim:{bug}"
    (failure,) = report.failures
    assert failure.source == "stateful"
    assert set(failure.requirements) & EXPECTED[bug], failure.requirements
    # Shrunk: a short list (the examples are over a hundred steps), which replays on a fresh
    # target to the same failure, and passes on the correct simulator.
    assert 3 <= len(failure.steps) <= 60, failure.steps
    factory = resolve_target(f"sim:{bug}")[1]
    replayed = replay_steps(failure.steps, factory, Profile.default())
    assert replayed.failure is not None
    assert replayed.failure.requirements == failure.requirements
    correct = replay_steps(failure.steps, resolve_target("sim")[1], Profile.default())
    assert correct.failure is None
