"""The malformed-input campaign for command-line values (generators in cli_campaign.py): every
drawn command line ends in status 0, 1 or 2, never an internal error, never a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from . import cli_campaign as campaign

argvs, stand_ins, verdict_of, run_one = (
    campaign.argvs, campaign.stand_ins, campaign.verdict_of, campaign.run_one)

FOLDER = Path(tempfile.mkdtemp(prefix="vmbspec-cli-campaign-"))


@pytest.fixture(autouse=True, scope="module")
def _stand_ins():  # type: ignore[no-untyped-def]
    with stand_ins():
        yield


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(argvs(FOLDER))
def test_no_command_line_value_ends_in_an_internal_error_or_a_traceback(
    argv: list[str],
) -> None:
    problem = verdict_of(argv)
    assert problem is None, problem


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--quiet", "--examples", "nan"],
        ["check", "--quiet", "--timeout", "inf"],
        ["prove", "--quiet", "--timeout", "nan"],
        ["replay", str(FOLDER), "--target", "sim"],
        ["trace", "check", "/dev/zero"],
        ["agent", "--quiet", "--max-connections", "1e308"],
    ],
)
def test_known_bad_values_are_usage_errors(argv: list[str]) -> None:
    status, err = run_one(argv)
    assert status == 2, err
    assert "Traceback" not in err
