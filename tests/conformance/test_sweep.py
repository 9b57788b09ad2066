"""vmbspec sweep: the lattice, the verdict on the simulator, each single-call bug found.

What runs here, honestly: the detection tests run the *reduced* lattice (``--quick``: ByteOffset
0 and 0xFFF, ByteCount around 0 and 1 page, chains of one MDL, 9,344 shapes) and stop at the
first failing shape (``--max-failures 1``); the passing run on ``sim`` is the reduced lattice
too. The full lattice for chains of one MDL (102,672 shapes) passes on ``sim`` in about 12 s
and is timed in bench/bench_sweep.py, not here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vmbspec.conformance import cli
from vmbspec.conformance.replay import load_replay, replay_steps
from vmbspec.conformance.sweep import lattice, run
from vmbspec.conformance.sweep.lattice import LatticeSpec
from vmbspec.conformance.targets import resolve_target
from vmbspec.spec import arith
from vmbspec.spec.arith import PY, ForcedBound, Segment
from vmbspec.spec.mdl import MdlChain, MdlSegment
from vmbspec.spec.readings import Profile

#: Each bug switch of the simulator that concerns single-call arithmetic, and a requirement
#: its failure must name.
SINGLE_CALL_BUGS = {
    "wrap32": "SEED-MDLLENGTH",
    "force-ignores-byteoffset": "SEED-SEND",
    "range-per-page": "WIRE-RANGE-CONTIGUOUS",
    "zero-length-range": "READ-A9",
    "extra-pfn": "WIRE-PFN-COUNT",
    "ignore-wait-flag": "SEED-WAIT-MUST",
}


def _sweep(argv: list[str], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    report = tmp_path / "sweep.json"
    status = cli.main(["sweep", "--quiet", "--json", str(report), "--replay-dir",
                       str(tmp_path), *argv])
    return status, json.loads(report.read_text()) if report.exists() else {}


# -- the lattice ------------------------------------------------------------------------------


def test_lattice_sizes_match_the_shapes_and_have_no_repeats() -> None:
    spec = LatticeSpec.quick(2)
    built = lattice.build(spec)
    assert {n: len(s) for n, s in built.items()} == lattice.sizes(spec)
    for shapes in built.values():
        assert len(set(shapes)) == len(shapes)


def test_every_mdl_is_well_formed() -> None:
    for shapes in lattice.build(LatticeSpec.quick(2)).values():
        for mdl, *_ in shapes[::97]:
            if mdl is not None:
                MdlChain(tuple(MdlSegment(bo, bc, pfns) for bo, bc, pfns in mdl))


def test_the_lattice_reaches_every_bound_the_spec_computes() -> None:
    """For each one-MDL chain: MdlOffset + MdlLength ends at, below and above the chain's
    ByteCount and both FORCE bounds, and past the u32 wrap point."""
    shapes = lattice.build(LatticeSpec(1))[1]
    ends: dict[tuple[int, int], set[int]] = {}
    for mdl, offset, length, *_ in shapes:
        assert mdl is not None
        ends.setdefault(mdl[0][:2], set()).add(offset + length)
    for bo in lattice.BYTE_OFFSET_CLASSES:
        assert any(key[0] == bo for key in ends)
    for (bo, bc), reached in ends.items():
        first = Segment(bo, bc)
        for bound in (bc, arith.forced_bound(PY, first, ForcedBound.PAGE_ROUNDED_SPAN),
                      arith.round_to_pages(PY, bc)):
            assert {bound - 1, bound, bound + 1} - {-1} <= reached, (bo, bc, bound)
        assert 1 << 32 in reached  # MdlOffset + MdlLength wraps to 0 in 32 bits
        if bc > 1:
            assert (1 << 32) + 1 in reached


def test_flags_cover_every_combination_and_an_outside_bit() -> None:
    assert sorted(lattice.flag_values()) == sorted([*range(8), *(f | 8 for f in range(8))])


def test_chains_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="chains of 1 to 3"):
        lattice.sizes(LatticeSpec(4))


# -- the verdicts -----------------------------------------------------------------------------


def test_sim_passes_the_reduced_lattice(tmp_path: Path) -> None:
    status, document = _sweep(["--target", "sim", "--quick"], tmp_path)
    assert status == 0
    assert document["verdict"] == "PASS"
    assert document["claim"] == ("all 9344 shapes of the reduced lattice for chains of at most "
                                 "1 MDL(s): pass")
    assert document["shapes_run"] == document["total"] == 9344


@pytest.mark.parametrize("bug", sorted(SINGLE_CALL_BUGS))
def test_each_single_call_bug_is_found(bug: str, tmp_path: Path) -> None:
    status, document = _sweep(["--target", f"sim:{bug}", "--quick", "--max-failures", "1"],
                              tmp_path)
    assert status == 1
    assert document["verdict"] == "FAIL"
    [group] = document["failures"]
    assert SINGLE_CALL_BUGS[bug] in group["requirements"]
    replay_file = group["shapes"][0]["replay_file"]
    replay = load_replay(Path(replay_file))
    steps = replay["steps"]
    profile = Profile.default()
    assert replay_steps(steps, resolve_target(f"sim:{bug}")[1], profile).failure is not None
    assert replay_steps(steps, resolve_target("sim")[1], profile).failure is None


def test_failures_are_grouped_and_reports_written(tmp_path: Path) -> None:
    markdown = tmp_path / "sweep.md"
    status, document = _sweep(["--target", "sim:force-ignores-byteoffset", "--quick",
                               "--report", str(markdown), "--replays-per-group", "2"],
                              tmp_path)
    assert status == 1
    for group in document["failures"]:
        files = [s["replay_file"] for s in group["shapes"] if s["replay_file"]]
        assert len(files) == min(2, group["count"])
    groups = {tuple(g["requirements"]): g["count"] for g in document["failures"]}
    assert any("SEED-FORCE-BOUND" in ids for ids in groups)
    assert sum(groups.values()) == len(document["failures"][0]["shapes"]) + sum(
        len(g["shapes"]) for g in document["failures"][1:])
    assert "do not conform" in markdown.read_text()


@pytest.mark.parametrize("argv", [["--chains", "4"], ["--chains", "x"], ["--max-failures", "0"],
                                  ["--json", "/no/such/folder/x.json"], ["--target", "bogus"],
                                  ["--target", "sim:nosuch"], ["--timeout", "nan"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["sweep", "--quiet", *argv]) == 2
    assert "Traceback" not in capsys.readouterr().err


# -- the native path and its fallback ---------------------------------------------------------


#: A small lattice for the native-path tests: ByteOffset 0xFFF, ByteCount around one page.
SMALL = LatticeSpec(1, (0xFFF,), (1,))


def test_native_target_without_batch_runner_falls_back_to_per_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run, "native_runner", lambda: None)
    _name, factory = resolve_target("rust")
    result = run.sweep("rust", factory, Profile.default(), SMALL)
    assert result.path == "per-shape"
    assert result.passed and result.shapes_run == result.total > 0


def test_native_batch_runner_results_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner that lies about one shape's status is caught; the shape, run alone through the
    target interface, conforms, so the failure says so (kind ``flaky``)."""
    real = run.native_runner()
    if real is None:
        pytest.skip("vmbspec.adapters.native.sweep.run_shapes is not available")
    _name, factory = resolve_target("rust")
    assert run.sweep("rust", factory, Profile.default(), SMALL).path == \
        "native-batch"

    lies = []

    def lying(library: str, ring: int, shapes: Any) -> Any:
        lies.append(shapes[0])
        results = real(library, ring, shapes)
        status = results[0][0]
        results[0] = (0xC000000D if status == 0 else 0, None, 0)
        return results

    monkeypatch.setattr(run, "native_runner", lambda: lying)
    result = run.sweep("rust", factory, Profile.default(), SMALL)
    assert result.path == "native-batch"
    assert [f.shape for f in result.failures] == lies  # the first shape of each batch
    assert {f.failure.kind for f in result.failures} == {"flaky"}


def test_a_fault_in_the_native_runner_is_a_crash_naming_the_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = run.native_runner()
    if real is None:
        pytest.skip("vmbspec.adapters.native.sweep.run_shapes is not available")

    class Fault(Exception):
        def __init__(self, results: list[Any]) -> None:
            super().__init__("fault")
            self.results = results
            self.fault = type("F", (), {"kind": "crash", "detail": "SIGSEGV reading past the "
                                        "PFN array of MDL 0", "guard": ("mdl", 0, "after")})()

    calls = {"n": 0}

    def faulting(library: str, ring: int, shapes: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Fault(real(library, ring, shapes[:5]))
        return real(library, ring, shapes)

    monkeypatch.setattr(run, "native_runner", lambda: faulting)
    _name, factory = resolve_target("rust")
    result = run.sweep("rust", factory, Profile.default(), SMALL)
    [failure] = result.failures
    assert failure.failure.kind == "crash"
    assert "outside the MDLs and buffer" in failure.failure.message
    assert failure.failure.steps[-1]["op"] == "send"
    assert result.shapes_run == result.total  # the run went on after the fault


def test_a_profile_the_batch_verdicts_do_not_cover_runs_shape_by_shape() -> None:
    """READ-A8 exact names a status per rule, which the batch verdicts do not: the Rust core
    is then swept through the target interface, and conforms."""
    from vmbspec.spec.readings import PROFILES

    _name, factory = resolve_target("rust")
    result = run.sweep("rust", factory, PROFILES["exact-status"], SMALL)
    assert result.path == "per-shape"
    assert result.passed and result.shapes_run == result.total


def test_progress_reports_the_time_left(capsys: pytest.CaptureFixture[str]) -> None:
    progress = run.Progress(quiet=False, every=0.0)
    progress(10, 40)
    progress(40, 40)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("sweep: 10/40 shapes (25.0%)") and "s left" in err[0]
    assert err[1].startswith("sweep: 40/40 shapes (100.0%)")


def test_batch_verdicts_of_lattice_shapes_equal_evaluate_send() -> None:
    """The expected outcomes the native path compares against are the spec's: on a sample of
    the lattice's own shapes, a result built from ``evaluate_send``'s verdict passes
    :func:`evaluate.compare` and one with the other kind of status does not."""
    import itertools
    import random

    from vmbspec.conformance.sweep import evaluate
    from vmbspec.conformance.sweep.lattice import RING_DATA_SIZE, shapes
    from vmbspec.spec import wire
    from vmbspec.spec.call import SendCall
    from vmbspec.spec.rules import SendContext, evaluate_send

    rng = random.Random(7)
    context = SendContext.fresh(RING_DATA_SIZE)
    by_length: dict[int, list[Any]] = {}
    for family in range(4):
        for shape in itertools.islice(shapes(LatticeSpec.quick(3), family), 0, None, 97):
            by_length.setdefault(lattice.chain_length(shape), []).append(shape)
    assert sorted(by_length) == [0, 1, 2, 3]
    for group in by_length.values():
        sample = rng.sample(group, min(400, len(group)))
        verdict = evaluate.verdicts(sample, RING_DATA_SIZE, Profile.default())
        assert verdict is not None
        results, wrong, both = [], [], []
        for lane, (mdl, offset, mdl_length, flags, buffer, buffer_length) in enumerate(sample):
            chain = None if mdl is None else MdlChain(tuple(MdlSegment(*m) for m in mdl))
            call = SendCall(buffer, buffer_length, chain, offset, mdl_length, flags)
            spec_verdict = evaluate_send(call, context)
            accepted = spec_verdict.accepted
            if accepted is not None and spec_verdict.rejected is not None:
                both.append(lane)  # a failure status conforms too (READ-A7 either)
            if accepted is None:
                results.append((0xC000000D, None, 0))
                wrong.append((0, None, 0))
                continue
            ranges = tuple(wire.GpaRange(r.byte_count, r.byte_offset, r.pfns)
                           for r in accepted.ranges)
            flag = 1 if accepted.completion_requested else 0
            packet = wire.encode_packet(wire.Packet(accepted.packet_type, flag, 7, ranges,
                                                    accepted.payload))
            results.append((0, packet, 0 if accepted.waits_for_completion else 1))
            wrong.append((0xC000000D, None, 0))
        assert evaluate.compare(verdict, sample, results) == []
        assert evaluate.compare(verdict, sample, wrong) == [
            lane for lane in range(len(sample)) if lane not in both]


def test_a_remote_target_is_swept_through_the_protocol() -> None:
    """The reference agent serving the simulator over standard input/output (a tiny lattice:
    ByteOffset 0xFFF, ByteCount around 0 pages; 1,392 shapes)."""
    import sys

    agent = "-m vmbspec.conformance.cli agent --backend sim --listen stdio"
    target = f"remote:stdio:{sys.executable} {agent}"
    _name, factory = resolve_target(target)
    tiny = LatticeSpec(1, (0xFFF,), (0,))
    result = run.sweep(target, factory, Profile.default(), tiny)
    assert result.path == "per-shape"
    assert result.passed and result.shapes_run == result.total == 1392


def test_ctrl_c_writes_the_reports_of_what_ran(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from vmbspec.conformance import cli_sweep

    class Interrupting:
        def __init__(self, quiet: bool) -> None:
            self.calls = 0

        def __call__(self, done: int, total: int) -> None:
            self.calls += 1
            if self.calls == 50:
                raise KeyboardInterrupt

    monkeypatch.setattr(cli_sweep, "Progress", Interrupting)
    status, document = _sweep(["--target", "sim", "--quick"], tmp_path)
    assert status == 130
    assert document["verdict"] == "INTERRUPTED"
    assert document["shapes_run"] == 50
    assert document["claim"] == "no verdict: interrupted after 50 of 9344 shapes"
