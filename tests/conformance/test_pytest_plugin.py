"""The pytest plugin shipped with vmbspec: ``--vmb-target`` and the ``vmb_report`` fixture."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TEST = """
def test_conforms(vmb_report):
    assert vmb_report.passed, vmb_report.summary()
"""


def test_a_users_one_line_test_passes_on_a_conforming_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest("--vmb-target", "sim", "--vmb-examples", "10")
    result.assert_outcomes(passed=1)


def test_a_users_one_line_test_fails_on_a_broken_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest("--vmb-target", "sim:extra-pfn", "--vmb-examples", "5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL*"])


def test_an_unknown_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest("--vmb-target", "nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vmb-target: unknown target 'nosuch'*"])


@pytest.mark.parametrize(
    ("option", "value"),
    [("--vmb-examples", "-1"), ("--vmb-examples", "many"), ("--vmb-seed", "-5")],
)
def test_a_bad_count_or_seed_is_a_usage_error(
    pytester: pytest.Pytester, option: str, value: str
) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest(option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option}*"])
