"""Every reading option the simulator follows passes the check under the profile with that
option, and fails the default profile naming the reading (issue 13, points 0 and 3).

The simulator's catalog (``adapters.sim.READINGS``) and the spec's readings
(``spec.readings``) are written apart; an option is in the matrix when both name it and it is
not the spec's default. Where the default profile allows the option's behaviour too (A7
``either`` allows ignoring and rejecting, A8 ``any-error`` allows the exact statuses, A11
``call-or-write`` allows reading at the call), the option's simulator must pass the default
profile as well; everywhere else it must fail it, and a failure must name ``READ-<reading>``:
a target that deviates exactly there is told so.
"""

from __future__ import annotations

import pytest

from vmbspec.adapters.sim import READINGS
from vmbspec.conformance import run_conformance
from vmbspec.conformance.runner import ConformanceReport
from vmbspec.spec.readings import Profile, parse_profile

DEFAULT = Profile.default()

#: Options whose behaviour the default profile's option allows as well.
DEFAULT_ALLOWS = {("A7", "ignore"), ("A7", "reject"), ("A8", "exact"), ("A11", "at-call")}

OPTIONS = [
    (reading, option)
    for reading, options in READINGS.items()
    for option in options
    if option != DEFAULT[reading]
]
#: Options on interacting readings, together.
JOINT = [(("A3", "c"), ("A5", "b")), (("A1", "d"), ("A9", "no-range"))]


def _run(target: str, profile: Profile) -> ConformanceReport:
    return run_conformance(target, profile=profile, examples=40, seed=1)


def _why(report: ConformanceReport) -> str:
    lines = [f"{f.source} {list(f.requirements[:6])}: {f.message[:300]}" for f in report.failures]
    lines += [f"{p.source} {p.kind}: {p.message[:300]}" for p in report.problems]
    return "\n".join(lines[:6]) or report.stopped or "interrupted"


def test_matrix_covers_every_non_default_option_the_spec_names() -> None:
    named = {(r, o) for r, o in OPTIONS}
    assert {("A1", "b"), ("A2", "b"), ("A3", "d"), ("A4", "b"), ("A12", "any-error")} <= named
    for reading, option in named:
        parse_profile(f"default+{reading}={option}")  # the spec knows the option


@pytest.mark.parametrize(("reading", "option"), OPTIONS, ids=[f"{r}={o}" for r, o in OPTIONS])
def test_option_passes_its_own_profile(reading: str, option: str) -> None:
    report = _run(f"sim:{reading}={option}", parse_profile(f"default+{reading}={option}"))
    assert report.passed, _why(report)


@pytest.mark.parametrize(("reading", "option"), OPTIONS, ids=[f"{r}={o}" for r, o in OPTIONS])
def test_option_against_the_default_profile(reading: str, option: str) -> None:
    report = _run(f"sim:{reading}={option}", DEFAULT)
    if (reading, option) in DEFAULT_ALLOWS:
        assert report.passed, _why(report)
        return
    assert not report.passed
    named = {requirement for failure in report.failures for requirement in failure.requirements}
    assert f"READ-{reading}" in named, _why(report)


@pytest.mark.parametrize("pair", JOINT, ids=["+".join(f"{r}={o}" for r, o in p) for p in JOINT])
def test_joint_options_pass_their_profile(pair: tuple[tuple[str, str], ...]) -> None:
    items = "+".join(f"{r}={o}" for r, o in pair)
    report = _run(f"sim:{items}", parse_profile(f"default+{items}"))
    assert report.passed, _why(report)
