"""The whole suite on native targets: the Rust core conforms, in process and isolated; a
library that segfaults or hangs on one input is a failing verdict naming that input, and the
run goes on; a failure found on one target replays on another.

The misbehaving libraries are shims built here with gcc: they dlopen the real Rust core and
forward every function of the ABI to it, except that VmbPacketSendWithExternalMdl segfaults
(or spins forever) when the first MDL's ByteOffset is 0xFFF and MdlLength is 0. Nothing in
the suite knows that input; it reaches it on its own (ByteOffset 0xFFF is one of the
generator's edges and the catalog's byteoffset-fff case, MdlLength 0 one of its lengths).
Everything else the shims do is the core's behaviour, so any other verdict would be news.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vmbspec.adapters import native
from vmbspec.conformance import run_conformance
from vmbspec.conformance.cases import load_cases
from vmbspec.conformance.cli import main
from vmbspec.conformance.runner import ConformanceReport, Failure
from vmbspec.conformance.targets import UnknownTarget, resolve_target

TRIGGER_BYTE_OFFSET = 0xFFF
SEED = 20240611

#: Overrides VmbPacketSendWithExternalMdl; the shim forwards everything else to the core.
SHIM = r"""
NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, void *Buffer, uint32_t BufferLength,
                                      MDL *ExternalDataMdl, uint32_t MdlOffset,
                                      uint32_t MdlLength, uint32_t Flags)
{
    if (ExternalDataMdl != NULL && ExternalDataMdl->ByteOffset == 0xFFF && MdlLength == 0) {
#ifdef CRASH
        volatile int *volatile p = NULL; *p = 1;
#endif
#ifdef HANG
        volatile int spin = 1; while (spin) { }
#endif
    }
    return REAL(VmbPacketSendWithExternalMdl)(PacketObject, Buffer, BufferLength,
                                              ExternalDataMdl, MdlOffset, MdlLength, Flags);
}
"""


@pytest.fixture(scope="module")
def crashing_shim(build_shim: Callable[..., Path]) -> Path:
    return build_shim(SHIM, "CRASH", overrides=["VmbPacketSendWithExternalMdl"])


@pytest.fixture(scope="module")
def hanging_shim(build_shim: Callable[..., Path]) -> Path:
    return build_shim(SHIM, "HANG", overrides=["VmbPacketSendWithExternalMdl"])


def _explain(report: ConformanceReport) -> str:
    lines = [report.summary()]
    for failure in report.failures:
        lines.append(f"{failure.kind} {failure.source} {failure.requirements}: {failure.message}")
        lines.extend(f"    {step}" for step in failure.steps)
    return "\n".join(lines)


def _is_trigger(step: dict[str, Any]) -> bool:
    mdl = step.get("mdl") or [[None]]
    return (
        step.get("op") == "send"
        and mdl[0][0] == TRIGGER_BYTE_OFFSET
        and step.get("mdl_length") == 0
    )


def _check_misbehaviour_reported(report: ConformanceReport, kind: str) -> list[Failure]:
    """Every failure is ``kind`` at the trigger and names it, and the catalog ran to its end
    (the run went on after each one); returns the stateful run's failures (0 or 1)."""
    assert report.cases_run == len(load_cases())  # the run went on after each crash
    assert report.failures, _explain(report)
    for failure in report.failures:
        assert failure.kind == kind, _explain(report)
        assert failure.requirements == ("SEED-RETURN",)
        assert _is_trigger(failure.steps[-1]), _explain(report)
        # The message names the fatal call and its input.
        assert "send_with_external_mdl(" in failure.message
        assert "((0xfff, " in failure.message
    return [f for f in report.failures if f.source == "stateful"]


def _stateful_finds(spec: str, kind: str, **options: Any) -> tuple[Failure, ConformanceReport]:
    """The stateful run alone reaches the trigger: whether a given seed's examples reach one
    input is chance, so up to three seeds are tried (each run is deterministic)."""
    report = None
    for seed in (SEED, SEED + 1, SEED + 2):
        report = run_conformance(
            _factory(spec, **options), examples=60, seed=seed, cases=False
        )
        if report.failures:
            (failure,) = report.failures
            assert failure.kind == kind and _is_trigger(failure.steps[-1]), _explain(report)
            return failure, report
    raise AssertionError(f"three stateful runs missed the trigger: {report and _explain(report)}")


def _check_shrunk(failure: Failure, report: ConformanceReport) -> None:
    """Shrunk to the setup and the fatal send: nothing else the host or driver did stays.
    (At best create, allocate, open, send; the generator's packet picks can leave a few
    spare allocations.)"""
    ops = [step["op"] for step in failure.steps]
    assert ops.count("send") == 1, _explain(report)
    assert set(ops) <= {"create_channel", "allocate", "open", "send"}, _explain(report)
    assert len(ops) <= 8, _explain(report)


def _factory(spec: str, **options: Any) -> Callable[[], Any]:
    _name, factory = resolve_target(spec, options)
    return factory


# ---- the Rust core conforms ---------------------------------------------------------------


def test_the_rust_core_conforms(rust_core: Path) -> None:
    report = run_conformance("rust", examples=100, seed=SEED)
    assert report.passed, _explain(report)
    assert report.target == "rust"
    assert report.cases_run == len(load_cases())
    assert report.evidence.total_steps > 1000


def test_the_rust_core_conforms_isolated(rust_core: Path) -> None:
    name, factory = resolve_target("rust", {"isolate": True, "timeout": None})
    report = run_conformance(factory, examples=30, seed=SEED)
    assert report.passed, _explain(report)
    assert name == report.target == "rust (isolated)"


# ---- a crash and a hang are verdicts ------------------------------------------------------


def test_a_library_that_segfaults_on_one_input_fails_with_that_input_shrunk(
    crashing_shim: Path,
) -> None:
    report = run_conformance(f"native:{crashing_shim}", examples=0, seed=SEED)
    _check_misbehaviour_reported(report, "crash")
    failure, stateful = _stateful_finds(f"native:{crashing_shim}", "crash")
    assert "SIGSEGV" in failure.message
    _check_shrunk(failure, stateful)


def test_a_library_that_hangs_on_one_input_fails_after_the_timeout(hanging_shim: Path) -> None:
    # Each hang costs the timeout (also while shrinking), so keep it short.
    report = run_conformance(_factory(f"native:{hanging_shim}", timeout=0.5), examples=0)
    _check_misbehaviour_reported(report, "hang")
    failure, stateful = _stateful_finds(f"native:{hanging_shim}", "hang", timeout=0.5)
    assert "no answer within 0.5 s" in failure.message
    _check_shrunk(failure, stateful)


def test_a_crash_found_by_check_replays_and_conforms_on_the_rust_core(
    crashing_shim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"native:{crashing_shim}"
    status = main(["check", "--target", target, "--examples", "20", "--seed", str(SEED),
                   "--quiet", "--no-proofs", "--replay-dir", str(tmp_path)])
    output = capsys.readouterr().out
    assert status == 1
    assert "crash" in output and "SIGSEGV" in output
    replays = sorted(tmp_path.glob("vmbspec-failure-*.json"))
    assert replays
    for replay in replays:
        document = json.loads(replay.read_text())
        assert document["kind"] == "crash" and _is_trigger(document["steps"][-1])
        # The same steps crash the shim again, and conform on the real core.
        assert main(["replay", str(replay), "--target", target]) == 1
        assert main(["replay", str(replay), "--target", "rust"]) == 0
        assert main(["replay", str(replay), "--target", "rust", "--isolate"]) == 0
    assert "PASS: the sequence conforms on rust" in capsys.readouterr().out


# ---- target names -------------------------------------------------------------------------


def test_isolated_targets_share_one_worker_per_library(rust_core: Path) -> None:
    factory = _factory(f"native:{rust_core}")
    first, second = factory(), factory()
    try:
        assert first.create_channel(4096) != second.create_channel(4096)
        assert first._worker is second._worker
        assert first._worker.generation == second._worker.generation
    finally:
        first.close()
        second.close()


def test_a_crash_costs_the_other_targets_on_the_worker_their_state(crashing_shim: Path) -> None:
    factory = _factory(f"native:{crashing_shim}")
    bystander, culprit = factory(), factory()
    try:
        bystander.create_channel(4096)
        channel = culprit.create_channel(4096)
        packet = culprit.allocate_packet(channel)
        with pytest.raises(native.TargetCrashed) as crashed:
            culprit.send_with_external_mdl(packet, None, 0, ((0xFFF, 1, (5,)),), 0, 0, 1)
        assert crashed.value.kind == "crash"
        with pytest.raises(native.TargetCrashed, match="another target"):
            bystander.create_channel(4096)
        # Both go on, each on the fresh worker.
        assert bystander.create_channel(4096) and culprit.create_channel(4096)
        assert culprit.restarts == 1 and bystander.restarts == 0
    finally:
        bystander.close()
        culprit.close()


def test_rust_is_in_process_unless_isolated(rust_core: Path) -> None:
    name, factory = resolve_target("rust", {"isolate": None, "timeout": None})
    target = factory()
    target.close()
    assert name == "rust" and isinstance(target, native.NativeTarget)
    name, factory = resolve_target("rust", {"isolate": True, "timeout": 2.5})
    target = factory()
    target.close()
    assert isinstance(target, native.IsolatedTarget) and target.timeout == 2.5


def test_native_is_isolated_unless_told_otherwise(rust_core: Path) -> None:
    _name, factory = resolve_target(f"native:{rust_core}", {"isolate": None, "timeout": 3})
    target = factory()
    target.close()
    assert isinstance(target, native.IsolatedTarget) and target.timeout == 3
    _name, factory = resolve_target(f"native:{rust_core}", {"isolate": False, "timeout": None})
    target = factory()
    target.close()
    assert isinstance(target, native.NativeTarget)


@pytest.mark.parametrize("isolate", [None, False])
def test_a_path_that_is_no_usable_library_is_refused_with_a_reason(
    tmp_path: Path, isolate: bool | None
) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a library\n")
    with pytest.raises(UnknownTarget, match="no such file"):
        resolve_target(f"native:{tmp_path / 'missing.so'}", {"isolate": isolate})
    with pytest.raises(UnknownTarget, match=r"cannot load .*notes\.txt as a shared library"):
        resolve_target(f"native:{text}", {"isolate": isolate})
    with pytest.raises(UnknownTarget, match="is not a file"):
        resolve_target(f"native:{tmp_path}", {"isolate": isolate})
    with pytest.raises(UnknownTarget, match="needs the path"):
        resolve_target("native:", {"isolate": isolate})


def test_a_library_without_the_abi_is_refused_naming_what_is_missing(tmp_path: Path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    source = tmp_path / "other.c"
    source.write_text("int VmbPacketAllocate(void) { return 0; }\n")
    library = tmp_path / "libother.so"
    subprocess.run(["gcc", "-shared", "-fPIC", str(source), "-o", str(library)], check=True)
    with pytest.raises(UnknownTarget, match=r"does not export the vmbcore\.h ABI") as refused:
        resolve_target(f"native:{library}", {})
    assert "VmbPacketSendWithExternalMdl" in str(refused.value)
    assert "VmbPacketAllocate," not in str(refused.value)


def test_a_bad_timeout_is_refused(rust_core: Path) -> None:
    with pytest.raises(UnknownTarget, match="timeout"):
        resolve_target("rust", {"isolate": True, "timeout": 0})
