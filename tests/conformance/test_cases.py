"""The case catalog: loads, agrees with the spec, and covers what it claims."""

from __future__ import annotations

from vmbspec.conformance.cases import load_cases
from vmbspec.conformance.driver import Evidence
from vmbspec.conformance.runner import run_case
from vmbspec.conformance.targets import resolve_target
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.readings import Profile


def test_every_case_cites_known_requirements() -> None:
    cases = load_cases()
    assert len(cases) >= 40
    for case in cases:
        assert case.requirements, case.id
        CATALOG.require(*case.requirements)


def test_the_z3_boundary_vectors_are_part_of_the_catalog() -> None:
    ids = [c.id for c in load_cases()]
    assert any(i.startswith("z3:") for i in ids)


def test_every_case_passes_on_the_simulator_and_agrees_with_the_spec() -> None:
    # A case whose expected verdict the spec does not allow raises CaseDisagrees, which
    # run_case reports as a "case-drift" failure.
    _name, factory = resolve_target("sim")
    evidence = Evidence()
    failures = [run_case(c, factory, Profile.default(), evidence) for c in load_cases()]
    assert [f for f in failures if f is not None] == []
    assert evidence.steps["SEED-FORCE-BOUND"] > 0
