"""The pytest plugin shipped with vmbspec: ``--vmb-target`` and the ``vmb_report`` fixture."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

USER_TEST = """
def test_conforms(vmb_report):
    assert vmb_report.passed, vmb_report.summary()
"""


def test_a_users_one_line_test_passes_on_a_conforming_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("--vmb-target", "sim", "--vmb-examples", "10")
    result.assert_outcomes(passed=1)


def test_a_users_one_line_test_fails_on_a_broken_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("--vmb-target", "sim:extra-pfn", "--vmb-examples", "5")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL*"])


def test_an_unknown_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("--vmb-target", "nosuch")
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
    result = pytester.runpytest_subprocess(option, value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option}*"])


# -- under pytest-xdist (`pytest -n 2`) --------------------------------------------------------
#
# `--dist loadfile` with two test files gives each of the two workers one file, so both
# workers run `vmb_report`; each test records its worker id, process and target in a file.

WORKER_TEST = """
import json, os

def test_conforms_{n}(vmb_report, vmb_target):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
    with open(f"seen-{{worker}}.json", "w") as out:
        json.dump({{"pid": os.getpid(), "target": vmb_target[0],
                   "report": vmb_report.target}}, out)
    assert vmb_report.passed, vmb_report.summary()
"""

# Every run goes through a subprocess: pytester's in-process runs restore sys.modules
# afterwards, which drops the multiprocessing modules xdist or --workers imported there, and a
# later import of them breaks pickling for ``--workers`` in the rest of the test session
# ("not the same object as multiprocessing.heap.BufferWrapper").
XDIST = ("-p", "xdist", "-n", "2", "--dist", "loadfile", "--vmb-examples", "5")


def _two_worker_files(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one=WORKER_TEST.format(n=1), test_two=WORKER_TEST.format(n=2))


def _seen(pytester: pytest.Pytester) -> dict[str, dict[str, object]]:
    return {
        path.stem.removeprefix("seen-"): json.loads(path.read_text())
        for path in pytester.path.glob("seen-*.json")
    }


def test_under_xdist_each_worker_runs_the_suite_on_its_own_target(
    pytester: pytest.Pytester,
) -> None:
    _two_worker_files(pytester)
    result = pytester.runpytest_subprocess(*XDIST, "--vmb-target", "sim")
    result.assert_outcomes(passed=2)
    seen = _seen(pytester)
    assert sorted(seen) == ["gw0", "gw1"]
    assert seen["gw0"]["pid"] != seen["gw1"]["pid"]
    assert {s["target"] for s in seen.values()} == {"sim"}


def test_under_xdist_a_broken_target_fails_naming_the_requirement(
    pytester: pytest.Pytester,
) -> None:
    _two_worker_files(pytester)
    result = pytester.runpytest_subprocess(*XDIST, "--vmb-target", "sim:wrap32")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*AssertionError: sim[[]wrap32[]]: FAIL*",
                                 "*failure 1 [[]SEED-MDLOFFSET*"])


def test_under_xdist_several_targets_go_one_to_each_worker(pytester: pytest.Pytester) -> None:
    _two_worker_files(pytester)
    result = pytester.runpytest_subprocess(*XDIST, "--vmb-target", "sim",
                                           "--vmb-target", "sim:wrap32")
    result.assert_outcomes(passed=1, failed=1)
    seen = _seen(pytester)
    assert {worker: s["target"] for worker, s in seen.items()} == {
        "gw0": "sim", "gw1": "sim:wrap32"}
    result.stdout.fnmatch_lines(["[[]gw1[]] *", "*AssertionError: sim[[]wrap32[]]: FAIL*",
                                 "*failure 1 [[]SEED-MDLOFFSET*"])


def test_more_targets_than_xdist_workers_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "1", "--vmb-target", "sim",
                                "--vmb-target", "sim:wrap32")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--vmb-target: 2 targets need at least 2 pytest-xdist*-n 2*"])


def test_under_xdist_an_unknown_target_stops_the_controller_with_one_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "--vmb-target", "nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vmb-target: unknown target 'nosuch'*"])
    assert "bringing up nodes" not in result.stdout.str()


def test_under_xdist_each_worker_writes_its_own_reports(pytester: pytest.Pytester) -> None:
    _two_worker_files(pytester)
    result = pytester.runpytest_subprocess(*XDIST, "--vmb-target", "sim",
                                           "--vmb-target", "sim:wrap32",
                                           "--vmb-json", "out.json", "--vmb-report", "out.md")
    result.assert_outcomes(passed=1, failed=1)
    assert not (pytester.path / "out.json").exists()
    assert not (pytester.path / "out.md").exists()
    reports = {worker: json.loads((pytester.path / f"out.{worker}.json").read_text())
               for worker in ("gw0", "gw1")}
    assert (reports["gw0"]["target"], reports["gw0"]["passed"]) == ("sim", True)
    assert (reports["gw1"]["target"], reports["gw1"]["passed"]) == ("sim[wrap32]", False)
    assert "sim[wrap32]" in (pytester.path / "out.gw1.md").read_text()
    result.stdout.fnmatch_lines(["vmbspec report: out.gw0.json", "vmbspec report: out.gw0.md",
                                 "vmbspec report: out.gw1.json", "vmbspec report: out.gw1.md"])


def test_without_xdist_several_targets_run_in_one_merged_report(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("--vmb-examples", "5", "--vmb-target", "sim",
                                "--vmb-target", "sim:wrap32")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: sim, sim[[]wrap32[]]: FAIL*",
                                 "*[[]SEED-MDLOFFSET*"])


def test_without_xdist_the_report_is_written_under_its_own_name(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("--vmb-examples", "5", "--vmb-json", "out.json")
    result.assert_outcomes(passed=1)
    assert json.loads((pytester.path / "out.json").read_text())["passed"] is True
    result.stdout.fnmatch_lines(["vmbspec report: out.json"])


def test_a_report_in_a_missing_folder_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TEST)
    result = pytester.runpytest_subprocess("-p", "xdist", "-n", "2",
                                           "--vmb-json", "nowhere/out.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --vmb-json: cannot write nowhere/out.json*"])
