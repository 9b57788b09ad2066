"""Profiles end to end: cases judged under the active profile, failures naming the reading.

The simulator follows the default option of every reading. Checked under a profile that picks
another option, it must fail (it is not that implementation), the failure must name the
reading where it deviates, and no case may be reported as having drifted from the spec: a
case's ``expect`` verdicts are written for the default profile and are only consulted there.
"""

from __future__ import annotations

import pytest

from vmbspec.conformance import run_conformance
from vmbspec.conformance.cases import load_cases
from vmbspec.spec.readings import Profile, parse_profile


@pytest.mark.parametrize("override", ["A1=b", "A3=c", "A4=c", "A5=b", "A6=b"])
def test_the_default_simulator_under_another_option_fails_naming_that_reading(
    override: str,
) -> None:
    report = run_conformance("sim", profile=parse_profile(f"default+{override}"), examples=20,
                             seed=1)
    assert not report.problems, [p.message for p in report.problems]  # no case drift
    assert not report.passed
    reading = f"READ-{override.split('=')[0]}"
    first = report.failures[0]
    # The failure is led by the readings under which the target's answer is right: the one
    # the profile switched is among them (another may explain the same call: a rejection of
    # MdlOffset 0 with ByteOffset 0x100 is also what A2 (b) does).
    leading = []
    for requirement in first.requirements:
        if not requirement.startswith("READ-"):
            break
        leading.append(requirement)
    assert reading in leading, (first.requirements, first.message)
    assert "not the active profile" in first.message


def test_case_expectations_are_consulted_only_under_the_profile_they_were_written_for() -> None:
    cases = {case.id: case for case in load_cases()}
    wait_missing = cases["wait-missing"]
    assert wait_missing.expectations_hold(Profile.default())
    assert not wait_missing.expectations_hold(parse_profile("default+A4=c"))


def test_the_unsafe_force_case_tells_reading_a3_b_from_a() -> None:
    case = {c.id: c for c in load_cases()}["force-bytecount-rounding-is-unsafe"]
    from vmbspec.conformance.driver import chain_from_json
    from vmbspec.spec.call import SendCall
    from vmbspec.spec.rules import SendContext, evaluate_send

    (send,) = [s for s in case.steps if s["op"] == "send"]
    call = SendCall(None, 0, chain_from_json(send["mdl"]), send["mdl_offset"],
                    send["mdl_length"], send["flags"])
    default = evaluate_send(call, SendContext.fresh(), Profile.default())
    unsafe = evaluate_send(call, SendContext.fresh(), parse_profile("default+A3=b"))
    assert default.accepted is None
    assert unsafe.accepted is not None and "MDL-PFNS" in unsafe.accepted.unsafe


def test_a_case_that_needs_its_own_verdict_ends_early_under_another_profile() -> None:
    # null-mdl-inband completes the packet its send made; under A6 (b) that send is rejected,
    # so the case ends at the completion: recorded, neither a failure nor a drift.
    report = run_conformance("sim:A6=b", profile=parse_profile("default+A6=b"), examples=5,
                             seed=1)
    assert report.passed, [f.message for f in report.failures] + [p.message for p in
                                                                  report.problems]
    assert "null-mdl-inband" in report.evidence.ended_early
    assert "has no transaction the host has taken" in report.evidence.ended_early[
        "null-mdl-inband"]
    # Under the profile the case was written for, the same step error would be a drift.
    assert "null-mdl-inband" not in run_conformance("sim", examples=5).evidence.ended_early
