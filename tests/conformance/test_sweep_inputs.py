"""Malformed inputs of vmbspec sweep: command-line values, and what a native batch runner hands
back. Bounded Hypothesis campaigns (bench/malformed_sweep.py runs the same generators for
10,000 inputs each).

* Command line: ``vmbspec sweep`` with drawn values for every option (the sweep itself replaced
  by a stand-in, so only parsing, checking and reporting run): the exit status is 0, 1 or 2,
  never 3, and no traceback is printed.
* Runner results: a runner returning drawn garbage (wrong lengths, wrong types, statuses out of
  range, random packet bytes, completion counts) on a tiny lattice of the Rust core: the sweep
  ends with a verdict (failures of the target) or an internal error of vmbspec (problems),
  never an exception.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbspec.conformance import cli, cli_sweep
from vmbspec.conformance.sweep import run
from vmbspec.conformance.sweep.lattice import LatticeSpec
from vmbspec.spec.readings import Profile

NUMBERS = st.one_of(
    st.sampled_from(["nan", "inf", "-1", "0", "1", "2", "3", "4", "9" * 40, "", "0x2", "1e3",
                     " 2", "２"]),
    st.integers(-(2**40), 2**40).map(str),
)
TEXT = st.text(max_size=30).map(lambda t: t.replace("\x00", ""))
PATHS = st.one_of(
    st.sampled_from(["/dev/full", "/dev/null", "/", ".", "", "/no/such/folder/x.json",
                     "/proc/self/mem"]),
    TEXT,
)
TARGETS = st.one_of(st.sampled_from(["sim", "sim:wrap32", "sim:", "sim:help", "bogus",
                                     "native:", "native:/no/such.so", ":", "remote:"]),
                    TEXT.map(lambda t: f"sim:{t}"))
PROFILES = st.one_of(st.sampled_from(["default", "exact-status", "default+A4=c", "nosuch",
                                      "default+A4", "default+A99=x", ""]), TEXT)

OPTIONS: dict[str, st.SearchStrategy[str]] = {
    "--chains": NUMBERS, "--max-failures": NUMBERS, "--timeout": NUMBERS, "--json": PATHS,
    "--report": PATHS, "--replay-dir": PATHS, "--replays-per-group": NUMBERS,
    "--target": TARGETS, "--profile": PROFILES,
}
FLAGS = ["--quick", "--quiet", "--per-shape", "--isolate", "--no-isolate"]


@st.composite
def argvs(draw: Any) -> list[str]:
    argv = ["sweep"]
    for option in draw(st.lists(st.sampled_from(sorted(OPTIONS)), max_size=5)):
        argv += [option, draw(OPTIONS[option])]
    argv += draw(st.lists(st.sampled_from(FLAGS), max_size=3))
    if draw(st.booleans()):
        argv.append(draw(TEXT))  # a stray argument
    return argv


def stand_in(target: str, factory: Any, profile: Profile, lattice: LatticeSpec,
             progress: Any = None, use_native: bool = True, max_failures: Any = None
             ) -> run.SweepResult:
    """The sweep, replaced: nothing runs; the result passes."""
    return run.SweepResult(target, profile, lattice, {0: 0})


def run_cli(argv: list[str], folder: Path) -> tuple[int, str]:
    """One command line, in ``folder``; its exit status and standard error."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.chdir(folder):
        status = cli.main(argv)
    return status, err.getvalue()


def check_cli(argv: list[str], folder: Path) -> None:
    status, err = run_cli(argv, folder)
    assert status in (0, 1, 2), (argv, status, err)
    assert "Traceback" not in err, (argv, err)


RESULT_ITEMS = st.one_of(
    st.tuples(st.sampled_from([0, 0xC000000D, 0x80000005, 0x103, 2**32, -1]),
              st.one_of(st.none(), st.binary(max_size=80)), st.integers(-1, 3)),
    st.tuples(st.integers(), st.none()),
    st.sampled_from([None, "0", 0, b"", (0.0, None, 0), (True, None, 0), [0, None, 0]]),
)
RESULTS = st.one_of(
    st.lists(RESULT_ITEMS, max_size=4),
    st.sampled_from([None, "results", {}, ()]),
)
#: A tiny lattice: ByteOffset 0xFFF, ByteCount 0 or 1.
TINY = LatticeSpec(1, (0xFFF,), (0,))


def check_runner(results: Any, whole: bool) -> run.SweepResult:
    """A sweep of the Rust core whose runner hands back ``results`` (padded to the batch with
    the real results when ``whole``, so the shapes are well formed but the values garbage)."""
    real = run.native_runner()
    assert real is not None

    def garbage(library: str, ring: int, shapes: Any) -> Any:
        if not whole or not isinstance(results, list):
            return results
        padded = list(results[: len(shapes)])
        return padded + real(library, ring, shapes[len(padded):])

    from vmbspec.conformance.targets import resolve_target

    _name, factory = resolve_target("rust")
    original = run.native_runner
    run.native_runner = lambda: garbage  # type: ignore[assignment]
    try:
        result = run.sweep("rust", factory, Profile.default(), TINY, max_failures=2)
    finally:
        run.native_runner = original  # type: ignore[assignment]
    assert result.path == "native-batch"
    assert result.failures or result.problems or result.passed
    return result


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(argv=argvs())
def test_sweep_command_line_values(argv: list[str], tmp_path_factory: Any,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_sweep, "sweep", stand_in)
    check_cli(argv, tmp_path_factory.mktemp("cli"))


@pytest.mark.skipif(run.native_runner() is None, reason="no native batch runner")
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(results=RESULTS, whole=st.booleans())
def test_native_runner_results(results: Any, whole: bool) -> None:
    check_runner(results, whole)
