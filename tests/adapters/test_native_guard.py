"""Guard pages around the MDLs and buffer of a send (issue 10, part 1).

The over-reading libraries are shims built here with gcc: they dlopen the real Rust core and
forward every function of the ABI to it, except that VmbPacketSendWithExternalMdl, when the
first MDL's ByteOffset is 0xFFF, first reads one PFN past the end of the last MDL's PFN array
(``OVERREAD_PFN``) or one byte past the buffer's BufferLength bytes (``OVERREAD_BUFFER``) and
throws the value away. What they emit is the core's, so without guard pages nothing sees the
over-read; with them (the default) it is a crash verdict naming the call and what was read
past, and the run goes on.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vmbspec.adapters.native import IsolatedTarget, NativeTarget, TargetCrashed
from vmbspec.adapters.native.guard import (
    GUARD_AVAILABLE,
    PAGE,
    Guarded,
    describe_address,
    place_buffer,
    place_mdl_chain,
)
from vmbspec.conformance import run_conformance
from vmbspec.conformance.cases import load_cases
from vmbspec.conformance.cli import main
from vmbspec.conformance.targets import UnknownTarget, resolve_target

pytestmark = pytest.mark.skipif(not GUARD_AVAILABLE, reason="guard pages need Linux")

TRIGGER = 0xFFF

#: Overrides VmbPacketSendWithExternalMdl; the shim forwards everything else to the core.
SHIM = r"""
NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, void *Buffer, uint32_t BufferLength,
                                      MDL *ExternalDataMdl, uint32_t MdlOffset,
                                      uint32_t MdlLength, uint32_t Flags)
{
    if (ExternalDataMdl != NULL && ExternalDataMdl->ByteOffset == 0xFFF) {
#ifdef OVERREAD_PFN
        MDL *last = ExternalDataMdl;
        while (last->Next != NULL) last = last->Next;
        uint64_t span = ((last->ByteOffset & 0xFFF) + (uint64_t)last->ByteCount + 0xFFF) >> 12;
        volatile uint64_t sink = MmGetMdlPfnArray(last)[span];  /* one PFN past the array */
        (void)sink;
#endif
#ifdef OVERREAD_BUFFER
        if (Buffer != NULL) {
            volatile uint8_t sink = ((const uint8_t *)Buffer)[BufferLength];  /* one past */
            (void)sink;
        }
#endif
    }
    return REAL(VmbPacketSendWithExternalMdl)(PacketObject, Buffer, BufferLength,
                                              ExternalDataMdl, MdlOffset, MdlLength, Flags);
}
"""


@pytest.fixture(scope="module")
def pfn_shim(build_shim: Callable[..., Path]) -> Path:
    return build_shim(SHIM, "OVERREAD_PFN", overrides=["VmbPacketSendWithExternalMdl"])


@pytest.fixture(scope="module")
def buffer_shim(build_shim: Callable[..., Path]) -> Path:
    return build_shim(SHIM, "OVERREAD_BUFFER", overrides=["VmbPacketSendWithExternalMdl"])


def _send(target: IsolatedTarget | NativeTarget, mdl: list[tuple[int, int, list[int]]],
          buffer: bytes = b"hello") -> int:
    channel = target.create_channel(0x4000)
    target.open_channel(channel)
    packet = target.allocate_packet(channel)
    assert packet is not None
    return target.send_with_external_mdl(packet, bytearray(buffer), len(buffer), mdl, 0, 1, 1)


# ---- the layout -----------------------------------------------------------------------------


def test_every_pfn_array_and_the_buffer_end_at_a_page_boundary() -> None:
    guarded = Guarded()
    chain = [(0xFFF, 2, [1, 2]), (0, 0x1000, [3]), (8, 0, [4])]
    first = place_mdl_chain(guarded, chain, "of a test")
    buffer = place_buffer(guarded, b"abc", 3, "of a test")
    assert (buffer + 3) % PAGE == 0
    address, ends = first, []
    for _, _, pfns in chain:
        region = next(r for r in guarded.regions if r.data_start <= address < r.data_end)
        ends.append(address + 0x30 + 8 * len(pfns) == region.data_end)
        address = int.from_bytes(ctypes.string_at(address, 8), "little")  # Next
    assert ends == [True, True, True] and address == 0
    guarded.release()
    assert guarded.regions == []


def _protection(address: int) -> str:
    """The permissions /proc/self/maps gives the page holding ``address``."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, permissions = line.split()[:2]
        start, end = (int(part, 16) for part in span.split("-"))
        if start <= address < end:
            return permissions
    return "unmapped"


def test_the_pages_around_each_region_are_inaccessible_and_named() -> None:
    guarded = Guarded()
    first = place_mdl_chain(guarded, [(0, 0x3000, [1, 2, 3])], "of a test")
    (region,) = guarded.regions
    assert _protection(first).startswith("rw")
    assert _protection(region.data_end).startswith("---")  # right after the PFN array
    assert _protection(region.data_start - 1).startswith("---")  # before the header's page
    assert describe_address(region.data_end + 8) == (
        f"at {region.data_end + 8:#x}, in a guard page: 0x8 bytes past the end of "
        "MDL 0 of the chain (3 PFN slots) of a test"
    )
    assert "bytes before the page holding MDL 0" in describe_address(region.data_start - 1)
    guarded.release()
    assert "released" in describe_address(region.data_end)  # pooled, not reused yet


def _labelled(target: NativeTarget) -> list[str]:
    """The labels of the guarded regions the target's outstanding sends hold."""
    return [
        region.label or "released"
        for keep in target._keepalive.values()
        for item in keep
        if isinstance(item, Guarded)
        for region in item.regions
    ]


def test_guarded_memory_lives_until_the_completion_and_no_longer(rust_core: Path) -> None:
    target = NativeTarget(rust_core)
    channel = target.create_channel(0x4000)
    target.open_channel(channel)
    packet = target.allocate_packet(channel)
    assert packet is not None
    # Rejected (no WAIT_FOR_COMPLETION with an MDL): released at once, nothing kept.
    assert target.send_with_external_mdl(packet, bytearray(b"x"), 1, [(0, 1, [1])], 0, 1, 0)
    assert _labelled(target) == []
    assert target.send_with_external_mdl(packet, bytearray(b"x"), 1, [(0, 1, [1])], 0, 1, 1) == 0
    assert _labelled(target) == [
        f"the in-line buffer (0x1 bytes) of the send on packet {packet:#x}",
        f"MDL 0 of the chain (1 PFN slot) of the send on packet {packet:#x}",
    ]
    kept = [item for keep in target._keepalive.values() for item in keep]
    taken = target.host_take_packet(channel)
    assert taken is not None
    target.host_complete(channel, int.from_bytes(taken[8:16], "little"), 0, b"")
    assert [c[0] for c in target.completions()] == [packet]
    assert target._keepalive == {}
    assert all(isinstance(item, Guarded) and item.regions == [] for item in kept)
    target.close()


@pytest.mark.parametrize("guard", ["yes", 1, "false"], ids=repr)
def test_a_guard_option_that_is_no_boolean_is_refused(rust_core: Path, guard: object) -> None:
    with pytest.raises(UnknownTarget, match="guard option must be"):
        resolve_target(f"native:{rust_core}", {"guard": guard})
    with pytest.raises(TypeError, match="guard must be"):
        NativeTarget(rust_core, guard=guard)  # type: ignore[arg-type]


# ---- isolated: a crash naming the call and what was read past ---------------------------


def test_a_read_past_the_last_pfn_array_is_a_crash_naming_the_call_and_the_mdl(
    pfn_shim: Path,
) -> None:
    with IsolatedTarget(pfn_shim, timeout=10) as target:
        with pytest.raises(TargetCrashed) as caught:
            _send(target, [(TRIGGER, 1, [5]), (0, 0x1000, [6])])
        error = caught.value
        assert error.kind == "crash"
        assert error.calls[-1][0] == "send_with_external_mdl"
        text = str(error)
        assert "send_with_external_mdl faulted" in text
        assert "outside the MDLs and buffer the call described" in text
        assert "0x0 bytes past the end of MDL 1 of the chain (1 PFN slot)" in text
        assert "(the worker was killed by SIGSEGV)" in text
        # The run goes on: a fresh worker serves the next call.
        assert _send(target, [(0, 0x1000, [6])]) == 0
        assert target.restarts == 1


def test_a_read_past_the_buffer_is_a_crash_naming_the_buffer(buffer_shim: Path) -> None:
    with IsolatedTarget(buffer_shim, timeout=10) as target:
        with pytest.raises(TargetCrashed) as caught:
            _send(target, [(TRIGGER, 2, [1, 2])], b"hello")
        text = str(caught.value)
        assert caught.value.kind == "crash"
        assert "send_with_external_mdl faulted" in text
        assert "0x0 bytes past the end of the in-line buffer (0x5 bytes)" in text


def test_without_guard_pages_the_over_read_goes_unseen(pfn_shim: Path, rust_core: Path) -> None:
    mdl = [(TRIGGER, 1, [5]), (0, 0x1000, [6])]
    with IsolatedTarget(pfn_shim, timeout=10, guard=False) as target:
        assert _send(target, mdl) == 0
        assert target.restarts == 0


def _replay_file(folder: Path, mdl: list[list[object]]) -> Path:
    steps = [
        {"op": "create_channel", "ring_data_size": 0x4000},
        {"op": "open", "channel": 0},
        {"op": "allocate", "channel": 0},
        {"op": "send", "packet": 0, "buffer": "68656c6c6f", "buffer_length": 5,
         "mdl": mdl, "mdl_length": 1, "flags": 1},
    ]
    path = folder / "overread.json"
    path.write_text(json.dumps({"vmbspec_replay": 1, "steps": steps}))
    return path


def test_replay_reports_the_over_read_and_no_guard_hides_it(
    pfn_shim: Path, buffer_shim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    replay = str(_replay_file(tmp_path, [[TRIGGER, 2, [1, 2]]]))
    for shim, what in ((pfn_shim, "MDL 0 of the chain (2 PFN slots)"),
                       (buffer_shim, "the in-line buffer (0x5 bytes)")):
        assert main(["replay", replay, "--target", f"native:{shim}"]) == 1
        output = capsys.readouterr().out
        assert "FAIL at step 4 (crash)" in output
        assert "send_with_external_mdl" in output and what in output
        assert main(["replay", replay, "--target", f"native:{shim}", "--no-guard"]) == 0
        assert "PASS" in capsys.readouterr().out


def test_the_catalog_goes_on_after_each_over_read(pfn_shim: Path) -> None:
    report = run_conformance(f"native:{pfn_shim}", examples=0)
    assert report.cases_run == len(load_cases())
    assert report.failures
    for failure in report.failures:
        assert failure.kind == "crash", failure.message
        assert "outside the MDLs and buffer the call described" in failure.message
        assert failure.steps[-1]["op"] == "send"
        assert failure.steps[-1]["mdl"][0][0] == TRIGGER


# ---- in process: the fault ends the process, with a message saying what to do ------------


def test_in_process_the_fault_names_the_mdl_and_says_to_isolate(pfn_shim: Path) -> None:
    program = (
        "import sys; from vmbspec.adapters.native import NativeTarget\n"
        "from tests.adapters.test_native_guard import _send\n"
        f"_send(NativeTarget({str(pfn_shim)!r}), [({TRIGGER}, 1, [5])])\n"
        "print('not reached')\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=root, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert "not reached" not in result.stdout
    assert "past the end of MDL 0 of the chain (1 PFN slot)" in result.stderr
    assert "run the target isolated" in result.stderr


# ---- the Rust core never faults: the whole default check with guards on -----------------


@pytest.mark.parametrize("isolation", ["--no-isolate", "--isolate"])
def test_the_rust_core_passes_the_default_check_with_guards(
    rust_core: Path, isolation: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = "rust" if isolation == "--no-isolate" else f"native:{rust_core}"
    _name, factory = resolve_target(target, {"isolate": isolation == "--isolate"})
    made = factory()
    assert made.guard is True  # guards are on by default
    made.close()
    status = main(["check", "--target", target, isolation, "--quiet", "--no-proofs",
                   "--replay-dir", str(tmp_path)])
    assert status == 0, capsys.readouterr().out
