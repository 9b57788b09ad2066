"""A verdict you can trust: what is the target's failure, what is vmbspec's, and what the user
asked wrongly; exit statuses; reports written whatever happens; runs that repeat.

Exit statuses: 0 conforms, 1 does not, 2 usage error, 3 internal error, 130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from vmbspec.adapters.sim import SimTarget
from vmbspec.conformance import runner
from vmbspec.conformance.cli import main
from vmbspec.conformance.guard import GuardedTarget, TargetRaised
from vmbspec.conformance.runner import (
    DEFAULT_EXAMPLES,
    SuiteUsageError,
    batch_seed,
    run_conformance,
)

VMBSPEC = Path(sys.executable).parent / "vmbspec"
QUICK = ["--quiet", "--no-proofs"]


# -- blame at the target boundary ---------------------------------------------------------------


class Raising(SimTarget):
    """A target whose send raises: the target's failure, named by method."""

    def send_with_external_mdl(self, *args: Any) -> int:
        raise RuntimeError("driver exploded")


class WrongStatus(SimTarget):
    """A target whose send returns a string: the target's failure, not a TypeError of ours."""

    def send_with_external_mdl(self, *args: Any) -> Any:
        super().send_with_external_mdl(*args)
        return "STATUS_SUCCESS"


class BadCompletions(SimTarget):
    def completions(self) -> Any:
        calls = super().completions()
        return [(packet, status) for packet, status, _data in calls] or calls


class Incomplete:
    """An adapter that lacks most of the interface."""

    name = "incomplete"
    capabilities = frozenset({"ring-bytes"})

    def create_channel(self, size: int) -> int:
        return 0


def test_a_target_that_raises_is_a_target_error_naming_the_method() -> None:
    report = run_conformance(Raising, examples=0)
    assert report.failures and not report.problems
    failure = report.failures[0]
    assert failure.kind == "target-error"
    assert "send_with_external_mdl" in failure.message and "driver exploded" in failure.message


@pytest.mark.parametrize("factory", [WrongStatus, BadCompletions])
def test_a_target_returning_the_wrong_shape_is_its_failure_not_ours(factory: Any) -> None:
    report = run_conformance(factory, examples=0)
    assert report.failures and not report.problems
    assert {f.kind for f in report.failures} == {"target-error"}
    assert "returned" in report.failures[0].message


def test_the_guard_passes_a_conforming_target_through_unchanged() -> None:
    guarded = GuardedTarget(SimTarget())
    channel = guarded.create_channel(4096)
    assert guarded.completions() == []
    with pytest.raises(TargetRaised, match="ring data size") as info:
        GuardedTarget(Raising()).create_channel(-1)  # the simulator refuses a bad size
    assert info.value.method == "create_channel" and info.value.kind == "target-error"
    assert isinstance(channel, int)


def test_an_adapter_lacking_methods_is_one_usage_error_naming_them() -> None:
    with pytest.raises(SuiteUsageError) as info:
        run_conformance(Incomplete, examples=0)
    text = str(info.value)
    for method in ("open_channel", "send_with_external_mdl", "completions", "ring_bytes"):
        assert method in text


def test_a_bug_of_vmbspec_is_a_problem_not_a_failure_and_exit_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmbspec.conformance import driver

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("a bug in the oracle")

    monkeypatch.setattr(driver, "evaluate_send", broken)
    monkeypatch.chdir(tmp_path)
    status = main(["check", *QUICK, "--examples", "5", "--json", "r.json", "--report", "r.md",
                   "--replay-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 3
    assert "internal error" in err and "not a failure of the target" in err
    saved = sorted(tmp_path.glob("vmbspec-internal-error-*.txt"))
    assert saved and "a bug in the oracle" in saved[0].read_text()
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["failures"] == [] and document["problems"]
    assert document["verdict"] == "ERROR" and document["passed"] is False
    assert "Problems of vmbspec" in (tmp_path / "r.md").read_text()
    assert not list(tmp_path.glob("vmbspec-failure-*.json"))


def test_an_uncaught_error_outside_the_run_is_exit_3_with_the_traceback_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vmbspec.conformance import cli

    def broken(args: Any) -> int:
        raise ZeroDivisionError("oops")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_profiles", broken)
    assert main(["profiles"]) == 3
    err = capsys.readouterr().err
    assert "ZeroDivisionError: oops" in err and "Traceback" not in err
    (saved,) = tmp_path.glob("vmbspec-internal-error-*.txt")
    assert "Traceback" in saved.read_text()
    assert str(saved) in err


# -- command-line values ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--timeout", "inf"],
        ["check", "--timeout", "nan"],
        ["check", "--timeout", "1e308"],
        ["check", "--timeout", "-1"],
        ["check", "--examples", "-1"],
        ["check", "--examples", "1e3"],
        ["check", "--steps", "0"],
        ["check", "--seed", "-3"],
        ["check", "--seed", str(2**64)],
        ["check", "--json", "."],
        ["check", "--junit", "/nonexistent-folder/j.xml"],
        ["check", "--replay-dir", "/nonexistent-folder"],
        ["replay", "x.json", "--timeout", "inf"],
        ["prove", "--timeout", "nan"],
        ["prove", "--timeout", "inf"],
        ["prove", "--timeout", "-1"],
        ["prove", "--json", "."],
    ],
)
def test_bad_command_line_values_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "error: argument" in err and "Traceback" not in err


def test_every_report_is_written_on_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # /dev/full accepts the open and fails the write: the JUnit and Markdown reports still
    # come, the verdict is printed, and the status says a report is missing.
    status = main(["check", *QUICK, "--examples", "3", "--json", "/dev/full",
                   "--junit", str(tmp_path / "j.xml"), "--report", str(tmp_path / "r.md")])
    captured = capsys.readouterr()
    assert status == 2
    assert "cannot write /dev/full" in captured.err
    assert (tmp_path / "j.xml").read_text().startswith("<testsuite")
    assert "verdict: **PASS**" in (tmp_path / "r.md").read_text()
    assert "sim: PASS" in captured.out


def test_a_failure_wins_over_a_report_that_could_not_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["check", *QUICK, "--target", "sim:wrap32", "--examples", "0",
                   "--json", "/dev/full", "--replay-dir", str(tmp_path)])
    assert status == 1
    assert "cannot write /dev/full" in capsys.readouterr().err


def test_requirements_into_a_closed_pipe_is_quiet() -> None:
    result = subprocess.run(
        f"'{VMBSPEC}' requirements --json | head -c 10", shell=True,
        capture_output=True, text=True, check=False,
    )
    assert result.stdout == "{\n  \"requi"
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_sim_help_lists_one_switch_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--target", "sim:help"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) > 10
    assert any(line.strip().startswith("wrap32 ") for line in lines)


def test_prove_check_finds_a_module_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mybound_here.py").write_text("VALUE = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["prove", "--check", "mybound_here:VALUE"]) == 2
    err = capsys.readouterr().err
    assert "not a function" in err and "cannot import" not in err


# -- what a run counts and repeats ----------------------------------------------------------------


def test_one_default_number_of_examples_everywhere() -> None:
    import inspect

    from vmbspec.conformance import cli_check, pytest_plugin

    default = inspect.signature(run_conformance).parameters["examples"].default
    assert default == DEFAULT_EXAMPLES == 1000
    options: dict[str, Any] = {}

    class Group:
        def addoption(self, name: str, **kwargs: Any) -> None:
            options[name] = kwargs.get("default")

    class Parser:
        def getgroup(self, *args: Any) -> Group:
            return Group()

    pytest_plugin.pytest_addoption(Parser())  # type: ignore[arg-type]
    assert int(options["--vmb-examples"]) == DEFAULT_EXAMPLES
    parser = __import__("argparse").ArgumentParser()
    cli_check.add_parser(parser.add_subparsers())
    assert parser.parse_args(["check"]).examples == DEFAULT_EXAMPLES


@pytest.mark.parametrize(
    "kwargs",
    [{"examples": -1}, {"examples": 1.5}, {"steps_per_example": 0}, {"seed": -1},
     {"seed": "x"}, {"examples": True}, {"profile": "default"}],
)
def test_run_conformance_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SuiteUsageError):
        run_conformance("sim", cases=False, **kwargs)


def test_the_examples_counted_are_the_examples_generated() -> None:
    seen: list[int] = []
    report = run_conformance(
        "sim", examples=120, cases=False, progress=lambda _phase, n, _total: seen.append(n)
    )
    assert report.passed and report.shrink_runs == 0
    assert seen[-1] == report.examples >= 120
    assert f"{report.examples} stateful examples" in report.summary()


def test_shrinking_reruns_are_counted_apart_from_examples() -> None:
    report = run_conformance("sim:wrap32", examples=300, cases=False, seed=1)
    assert report.failures
    assert report.examples <= 300 + runner.BATCH_EXAMPLES
    assert report.shrink_runs > 0


def test_the_same_seed_generates_the_same_run_and_batches_differ() -> None:
    def logged(seed: int) -> list[str]:
        report = run_conformance("sim", examples=30, cases=False, seed=seed)
        return [json.dumps(sorted(report.evidence.transitions.items())),
                str(report.evidence.total_steps)]

    assert logged(7) == logged(7)
    assert logged(7) != logged(8)
    assert len({batch_seed(0, b) for b in range(100)}) == 100


def test_summary_names_each_failure_and_its_requirements() -> None:
    report = run_conformance("sim:wrap32", examples=0)
    text = report.summary()
    assert "FAIL" in text
    first = report.failures[0]
    assert f"[{', '.join(first.requirements)}]" in text and first.message in text


def test_a_rerun_leaves_only_its_own_replay_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "vmbspec-failure-9.json").write_text('{"vmbspec_replay": 1, "steps": []}')
    (tmp_path / "vmbspec-failure-notes.json").write_text("{}")  # not ours by name: kept
    assert main(["check", *QUICK, "--target", "sim:wrap32", "--examples", "0",
                 "--replay-dir", str(tmp_path), "--json", str(tmp_path / "r.json")]) == 1
    assert not (tmp_path / "vmbspec-failure-9.json").exists()
    assert (tmp_path / "vmbspec-failure-notes.json").exists()
    document = json.loads((tmp_path / "r.json").read_text())
    files = [f["replay_file"] for f in document["failures"]]
    assert files and all(Path(f).is_file() for f in files)
    assert "replay: vmbspec replay" in capsys.readouterr().out


# -- Ctrl-C -----------------------------------------------------------------------------------


def _start_long_check(folder: Path, *reports: str) -> subprocess.Popen[str]:
    """A long ``vmbspec check``, returned once its stateful run is under way (its progress
    says so), so a signal lands in the run and not in Python's start-up."""
    # SIGINT back to its default in the child: a shell running this in the background has
    # set it to "ignore", which the child would inherit (and Python then ignores Ctrl-C).
    child = subprocess.Popen(
        [str(VMBSPEC), "check", "--examples", "1000000", "--no-proofs", *reports],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert child.stderr is not None
    for line in child.stderr:
        if line.startswith("stateful"):
            break
    time.sleep(0.5)
    assert child.poll() is None
    return child



def test_ctrl_c_writes_a_partial_report_marked_interrupted_and_exits_130(
    tmp_path: Path,
) -> None:
    child = _start_long_check(
        tmp_path, "--json", "r.json", "--report", "r.md", "--junit", "j.xml")
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["interrupted"] is True and document["verdict"] == "INTERRUPTED"
    assert document["passed"] is False
    assert "INTERRUPTED" in (tmp_path / "r.md").read_text()
    assert "interrupted" in (tmp_path / "j.xml").read_text()
    assert "INTERRUPTED" in out and "Traceback" not in err


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    child = _start_long_check(tmp_path, "--json", "r.json")
    child.terminate()
    _out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert json.loads((tmp_path / "r.json").read_text())["interrupted"] is True


# -- reproducible -----------------------------------------------------------------------------

CONSTANTS_MODULE = """
# A local module full of integer constants: Hypothesis would mix them into its draws.
VALUES = [{values}]
"""


def test_the_same_command_generates_the_same_steps_whatever_else_is_loaded(
    tmp_path: Path,
) -> None:
    values = ", ".join(str(v) for v in [0xFFF, 0x1000, 0x1001, 0xFFFFFFFF, 17, 4095, 12345,
                                         0x7FFFFFFF, 3, 0x2000, 999, 0x41] * 3)
    (tmp_path / "lots_of_constants.py").write_text(CONSTANTS_MODULE.format(values=values))
    script = (
        "import sys, json\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "if sys.argv[2] == 'extra': import lots_of_constants\n"
        "from vmbspec.conformance.runner import run_conformance\n"
        "r = run_conformance('sim', examples=150, cases=False, seed=11)\n"
        "print(json.dumps([r.steps_digest, r.examples, r.reproducible]))\n"
    )

    def digest(extra: str) -> list[Any]:
        result = subprocess.run([sys.executable, "-c", script, str(tmp_path), extra],
                                capture_output=True, text=True, check=True)
        return list(json.loads(result.stdout.strip().splitlines()[-1]))

    plain = digest("none")
    assert plain[2] is True and len(plain[0]) == 64
    assert digest("extra") == plain


def test_the_json_report_records_the_seed_and_versions(tmp_path: Path) -> None:
    assert main(["check", *QUICK, "--examples", "5", "--seed", "42", "--no-cases",
                 "--json", str(tmp_path / "r.json")]) == 0
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["seed"] == 42 and document["reproducible"] is True
    assert set(document["versions"]) == {"vmbspec", "hypothesis"}
    assert len(document["steps_digest"]) == 64


def test_a_valid_call_refused_names_the_rules_whose_conditions_it_met() -> None:
    # sim:force-ignores-byteoffset computes the FORCE_MDL_LENGTH bound without ByteOffset, so
    # it refuses a call that sits exactly at the right bound: the failure names that bound.
    report = run_conformance("sim:force-ignores-byteoffset", examples=0)
    (failure,) = [f for f in report.failures if f.source == "case:force-bound-at"]
    assert "SEED-FORCE-BOUND" in failure.requirements and "READ-A3" in failure.requirements
    # Led by the readings under which the refusal is right (A3 (b) is what this switch
    # does), then the most specific rule met: the bound, before those every call meets.
    assert failure.requirements[:3] == ("READ-A2", "READ-A3", "SEED-FORCE-BOUND")
    assert "reading A3 (b" in failure.message
    assert not any(r.startswith(("WIRE-", "RING-")) for r in failure.requirements)
    assert "the spec expects it accepted" in failure.message


class _SignalsFromAFinalizer(SimTarget):
    """Sends itself SIGINT from inside a ``__del__`` after a few sends: Python swallows an
    exception raised there ("Exception ignored in ..."), as it does in Hypothesis's gc
    callback, where a real Ctrl-C was once lost and the run went on."""

    sends = 0

    def send_with_external_mdl(self, *args: Any) -> int:
        type(self).sends += 1
        if type(self).sends == 30:

            class Finalizer:
                def __del__(self) -> None:
                    signal.raise_signal(signal.SIGINT)
                    sum(range(1000))  # bytecode, where the signal's handler runs

            Finalizer()
        return super().send_with_external_mdl(*args)


def test_ctrl_c_is_not_lost_where_python_swallows_exceptions() -> None:
    report = run_conformance(_SignalsFromAFinalizer, examples=2000, cases=False)
    assert report.interrupted and report.verdict == "INTERRUPTED"
    assert report.examples < 2000


def test_ctrl_c_during_the_replay_of_a_failing_example_is_an_interruption_not_flakiness(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Hypothesis reports a re-run of a failing example cut short by Ctrl-C as Flaky; that is
    # the user's interruption, never "the target is not deterministic".
    from hypothesis.errors import Flaky

    from vmbspec.conformance import interrupt

    def replay_cut_short(*_args: Any, **_kwargs: Any) -> None:
        interrupt.request()
        raise Flaky("Inconsistent results from replaying a failing test case!")

    monkeypatch.setattr(runner, "_run_batches", replay_cut_short)
    report = run_conformance("sim", examples=5, cases=False)
    assert report.interrupted and report.verdict == "INTERRUPTED"
    assert not report.failures
    assert not interrupt.requested()  # the request ends with the run
