"""``vmbspec check --workers N``: N processes give the run one process gives.

The batches of the stateful run and their seeds do not depend on the number of workers, so
the examples generated are the same set; merged in batch order, the per-requirement counts,
the generation depth, the verdict, the first failure (minimised once, in the parent) and the
``steps_digest`` equal a single process's. Small batches (``batch_examples``) make a short run
span several batches, hence both workers.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vmbspec.conformance import workers as workers_module
from vmbspec.conformance.cli import main
from vmbspec.conformance.driver import Evidence
from vmbspec.conformance.runner import ConformanceReport, SuiteUsageError, run_conformance
from vmbspec.conformance.targets import resolve_target
from vmbspec.spec.readings import Profile

QUICK = ["--quiet", "--no-proofs"]
VMBSPEC = Path(sys.executable).parent / "vmbspec"


def _counts(report: ConformanceReport) -> dict[str, Any]:
    evidence = report.evidence
    return {
        "verdict": report.verdict,
        "examples": report.examples,
        "shrink_runs": report.shrink_runs,
        "steps_digest": report.steps_digest,
        "cases_run": report.cases_run,
        "total_steps": evidence.total_steps,
        "steps": dict(evidence.steps),
        "cases": dict(evidence.cases),
        "transitions": dict(evidence.transitions),
        "flag_combinations": dict(evidence.flag_combinations),
        "boundaries": dict(evidence.boundaries),
        "outcomes": dict(evidence.outcomes),
        "generation": report.generation,
        "failures": [(f.source, f.kind, f.requirements, f.message, f.steps)
                     for f in report.failures],
    }


def test_two_workers_give_the_digest_counts_and_verdict_of_one() -> None:
    runs = {
        n: run_conformance("sim", examples=60, batch_examples=15, seed=5, workers=n)
        for n in (1, 2)
    }
    one, two = _counts(runs[1]), _counts(runs[2])
    assert one["verdict"] == "PASS" and one["examples"] >= 60 and one["cases_run"] > 0
    assert len(one["steps_digest"]) == 64
    assert two == one
    assert runs[2].workers == 2 and runs[1].workers == 1


def test_the_digest_depends_on_the_batches_not_on_the_workers() -> None:
    # Another seed, another digest: the equality above is not a constant.
    a = run_conformance("sim", examples=20, batch_examples=10, seed=1, cases=False, workers=2)
    b = run_conformance("sim", examples=20, batch_examples=10, seed=2, cases=False, workers=2)
    assert a.steps_digest != b.steps_digest


def test_a_failure_found_by_two_workers_is_the_minimal_failure_one_finds() -> None:
    # paged-not-copied first fails at about the 25th example: in batch 2 of 10-example
    # batches, a batch of worker 0, while worker 1 runs batches 1 and 3.
    runs = {
        n: run_conformance("sim:paged-not-copied", examples=60, batch_examples=10, seed=0,
                           cases=False, workers=n)
        for n in (1, 2)
    }
    one, two = _counts(runs[1]), _counts(runs[2])
    assert one["verdict"] == "FAIL" and one["examples"] > 20
    assert len(one["failures"]) == 1 and one["failures"][0][0] == "stateful"
    assert two == one


def test_the_case_catalog_is_split_and_its_failures_come_in_catalog_order() -> None:
    runs = {n: run_conformance("sim:wrap32", examples=0, workers=n) for n in (1, 3)}
    assert len(runs[1].failures) >= 2
    assert _counts(runs[3]) == _counts(runs[1])


def test_several_targets_one_per_worker(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    status = main(["check", *QUICK, "--target", "sim", "--target", "rust", "--workers", "2",
                   "--examples", "20", "--batch-examples", "10", "--json", str(out)])
    document = json.loads(out.read_text())
    assert status == 0 and document["verdict"] == "PASS"
    names = [name.strip() for name in document["target"].split(",")]
    assert len(names) == 2 and names[0].startswith("sim") and "rust" in names[1].lower()
    assert document["workers"] == 2 and document["examples"] >= 20


def test_a_failure_on_one_of_several_targets_is_the_run_s(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    status = main(["check", *QUICK, "--target", "sim", "--target", "sim:paged-not-copied",
                   "--workers", "2", "--examples", "60", "--batch-examples", "10",
                   "--no-cases", "--json", str(out), "--replay-dir", str(tmp_path)])
    document = json.loads(out.read_text())
    assert status == 1 and document["failures"][0]["source"] == "stateful"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "0"], "--workers"),
        (["--workers", "many"], "--workers"),
        (["--target", "sim", "--target", "sim"], "need at least 2 workers"),
    ],
)
def test_bad_worker_arguments_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", *QUICK, "--examples", "1", *argv]) == 2
    assert message in capsys.readouterr().err


def test_a_factory_cannot_go_to_other_processes() -> None:
    _name, factory = resolve_target("sim")
    with pytest.raises(SuiteUsageError, match="a factory object cannot be sent"):
        run_conformance(factory, examples=1, workers=2)


def test_an_error_of_vmbspec_in_a_worker_is_an_internal_error_with_its_traceback() -> None:
    # The parent resolved "sim"; the worker is given a target text it cannot resolve: its
    # exception comes back as a problem of the run (the command line's exit 3), traceback
    # included.
    report = ConformanceReport("sim", Profile.default(), 0, 0, Evidence())
    workers_module.run_parallel(
        report, ["sim:no-such-bug"], {}, [resolve_target("sim")], cases=False, stateful=True,
        examples=10, steps_per_example=10, seed=0, progress=None, workers=2,
        batch_examples=5,
    )
    assert report.problems and report.problems[0].kind == "internal-error"
    assert "Traceback" in report.problems[0].details
    assert "no-such-bug" in report.problems[0].details
    assert report.verdict == "ERROR"


def test_ctrl_c_stops_every_worker_and_writes_the_partial_report(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    process = subprocess.Popen(
        [str(VMBSPEC), "check", "--no-proofs", "--no-cases", "--workers", "2",
         "--examples", "1000000", "--json", str(out), "--replay-dir", str(tmp_path)],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path,
    )
    assert process.stderr is not None
    # The first progress line comes once a worker has generated examples.
    for line in process.stderr:
        if line.startswith("stateful:"):
            break
    process.send_signal(signal.SIGINT)
    _rest = process.communicate(timeout=120)
    assert process.returncode == 130
    document = json.loads(out.read_text())
    assert document["interrupted"] is True and document["verdict"] == "INTERRUPTED"
    assert 0 < document["examples"] < 1000000
    assert document["workers"] == 2
    # No worker outlived the run.
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True)
    assert children.stdout == b""
