"""Fixtures for the adapters' tests: the simulator's, and the native adapter's (the Rust
core's library, and shims over it built with gcc).

The packet decoder here is written independently of ``adapters/sim/wire.py`` (straight from
reference §4), so that an encoder bug is not mirrored by a decoder sharing its code. It is
strict: anything inconsistent raises ValueError.
"""

from __future__ import annotations

import functools
import json
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmbspec.adapters.rust.build import CRATE_DIR, build_library, library_path
from vmbspec.adapters.sim import SimTarget


@dataclass(frozen=True)
class Decoded:
    type: int
    data_offset8: int
    length8: int
    flags: int
    transaction_id: int
    ranges: list[tuple[int, int, tuple[int, ...]]]  # (byte_count, byte_offset, pfns)
    payload: bytes  # from data_offset8 * 8 to the end (includes the zero padding)


def decode(packet: bytes) -> Decoded:
    if len(packet) < 16 or len(packet) % 8:
        raise ValueError(f"{len(packet)} bytes is not a packet")
    ptype, off8, len8, flags, tid = struct.unpack_from("<HHHHQ", packet)
    if len8 * 8 != len(packet):
        raise ValueError(f"length8 {len8} but {len(packet)} bytes")
    ranges: list[tuple[int, int, tuple[int, ...]]] = []
    if ptype == 9:
        reserved, count = struct.unpack_from("<II", packet, 16)
        if reserved:
            raise ValueError("reserved is not 0")
        pos = 24
        for _ in range(count):
            byte_count, byte_offset = struct.unpack_from("<II", packet, pos)
            n = -(-(byte_offset + byte_count) // 4096)
            pfns = struct.unpack_from(f"<{n}Q", packet, pos + 8)
            ranges.append((byte_count, byte_offset, tuple(pfns)))
            pos += 8 + 8 * n
        if pos != off8 * 8:
            raise ValueError(f"ranges end at {pos}, data_offset8 says {off8 * 8}")
    elif ptype == 6:
        if off8 != 2:
            raise ValueError(f"in-band packet with data_offset8 {off8}")
    else:
        raise ValueError(f"unexpected packet type {ptype}")
    return Decoded(ptype, off8, len8, flags, tid, ranges, bytes(packet[off8 * 8 :]))


@pytest.fixture
def sim() -> Iterator[SimTarget]:
    target = SimTarget()
    yield target
    target.close()


@pytest.fixture
def decoder() -> Callable[[bytes], Decoded]:
    return decode


@pytest.fixture
def open_channel(sim: SimTarget) -> Callable[[int], int]:
    """Create and open a channel of the given ring data size."""

    def make(size: int = 8192) -> int:
        channel = sim.create_channel(size)
        sim.open_channel(channel)
        return channel

    return make


# ---- shims over the Rust core, built with gcc ------------------------------------------------
#
# A shim is a C library that dlopens the real Rust core and forwards every function of the ABI
# to it, except the few a test overrides to misbehave. The source of a shim is
# ``SHIM_PREAMBLE`` (``real``, ``REAL``) + the test's body (its overrides, and anything they
# need) + the forwarding function of every function of ``SHIM_FORWARDS`` it does not override.

SHIM_PREAMBLE = r"""
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include "vmbcore.h"

static void *core;

static void *real(const char *name)
{
    if (core == NULL) {
        core = dlopen(CORE_PATH, RTLD_NOW | RTLD_LOCAL);
        if (core == NULL) { fprintf(stderr, "shim: %s\n", dlerror()); abort(); }
    }
    void *function = dlsym(core, name);
    if (function == NULL) { fprintf(stderr, "shim: %s\n", dlerror()); abort(); }
    return function;
}

#define REAL(name) ((__typeof__(&name))real(#name))
"""

#: The forwarding definition of each function of the ABI, by name.
SHIM_FORWARDS = {
    "VmbPacketAllocate": (
        "VMBPACKET VmbPacketAllocate(VMBCHANNEL Channel) "
        "{ return REAL(VmbPacketAllocate)(Channel); }\n"
    ),
    "VmbPacketFree": "void VmbPacketFree(VMBPACKET Packet) { REAL(VmbPacketFree)(Packet); }\n",
    "VmbPacketSetCompletionRoutine": r"""
void VmbPacketSetCompletionRoutine(VMBPACKET Packet, PFN_VMB_PACKET_COMPLETION_ROUTINE Routine)
{ REAL(VmbPacketSetCompletionRoutine)(Packet, Routine); }
""",
    "VmbPacketSendWithExternalMdl": r"""
NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, void *Buffer, uint32_t BufferLength,
                                      MDL *ExternalDataMdl, uint32_t MdlOffset,
                                      uint32_t MdlLength, uint32_t Flags)
{
    return REAL(VmbPacketSendWithExternalMdl)(PacketObject, Buffer, BufferLength,
                                              ExternalDataMdl, MdlOffset, MdlLength, Flags);
}
""",
    "vmbcore_channel_create": r"""
NTSTATUS vmbcore_channel_create(uint32_t size, VMBCHANNEL *out)
{ return REAL(vmbcore_channel_create)(size, out); }
""",
    "vmbcore_channel_open": (
        "NTSTATUS vmbcore_channel_open(VMBCHANNEL c) { return REAL(vmbcore_channel_open)(c); }\n"
    ),
    "vmbcore_channel_disable": (
        "NTSTATUS vmbcore_channel_disable(VMBCHANNEL c) "
        "{ return REAL(vmbcore_channel_disable)(c); }\n"
    ),
    "vmbcore_channel_destroy": (
        "void vmbcore_channel_destroy(VMBCHANNEL c) { REAL(vmbcore_channel_destroy)(c); }\n"
    ),
    "vmbcore_host_take_packet": r"""
NTSTATUS vmbcore_host_take_packet(VMBCHANNEL c, uint8_t *out, uint32_t cap, uint32_t *len)
{ return REAL(vmbcore_host_take_packet)(c, out, cap, len); }
""",
    "vmbcore_host_complete": r"""
NTSTATUS vmbcore_host_complete(VMBCHANNEL c, uint64_t t, NTSTATUS s, const uint8_t *d, uint32_t n)
{ return REAL(vmbcore_host_complete)(c, t, s, d, n); }
""",
    "vmbcore_channel_ring_bytes": r"""
NTSTATUS vmbcore_channel_ring_bytes(VMBCHANNEL c, uint8_t *out, uint32_t cap, uint32_t *len)
{ return REAL(vmbcore_channel_ring_bytes)(c, out, cap, len); }
""",
}


def shim_source(body: str, overrides: Iterable[str]) -> str:
    """The C text of a shim: the preamble, ``body`` (which defines every function named in
    ``overrides``), then the forwarding of the others."""
    overridden = set(overrides)
    unknown = overridden - SHIM_FORWARDS.keys()
    if unknown:
        raise ValueError(f"not functions of the ABI: {sorted(unknown)}")
    missing = [function for function in overridden if f" {function}(" not in body]
    if missing:
        raise ValueError(f"the body does not define {sorted(missing)}")
    forwards = [text for function, text in SHIM_FORWARDS.items() if function not in overridden]
    return SHIM_PREAMBLE + body + "".join(forwards)


def compile_library(
    source: str,
    library: Path,
    *,
    defines: Sequence[str] = (),
    core: Path | None = None,
    std: str = "gnu11",
) -> Path:
    """Compiles the C text ``source`` into the shared library ``library`` (skips the test when
    gcc is missing), against the Rust core's header. With ``core``, the library may dlopen it:
    ``CORE_PATH`` names it and libdl is linked. Each of ``defines`` is given as ``-D``."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    path = library.with_suffix(".c")
    path.write_text(source)
    command = ["gcc", f"-std={std}", "-O0", "-Wall", "-Werror", "-shared", "-fPIC"]
    command += [f"-D{define}" for define in defines]
    if core is not None:
        command.append(f"-DCORE_PATH={json.dumps(str(core.resolve()))}")
    command += [f"-I{CRATE_DIR / 'include'}", str(path), "-o", str(library)]
    if core is not None:
        command.append("-ldl")
    subprocess.run(command, check=True, capture_output=True)
    return library


@pytest.fixture(scope="session")
def rust_core() -> Path:
    """The Rust core's library; built if cargo is there and it is not."""
    try:
        return library_path()
    except FileNotFoundError:
        if shutil.which("cargo") is None:
            pytest.skip("the Rust core is not built and cargo is not installed")
        return build_library()


def _build_shim_over(
    core: Path,
    folders: pytest.TempPathFactory,
    body: str,
    variant: str,
    *,
    overrides: Iterable[str],
    defines: Sequence[str] = (),
) -> Path:
    """Builds the shim of ``body`` (see :func:`shim_source`) over ``core`` with ``variant`` and
    then ``defines`` defined, as ``libshim_<variant>.so`` in a fresh folder."""
    library = folders.mktemp("shim") / f"libshim_{variant.lower()}.so"
    source = shim_source(body, overrides)
    return compile_library(source, library, defines=[variant, *defines], core=core)


@pytest.fixture(scope="session")
def build_shim(rust_core: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``build_shim(body, variant, *, overrides, defines=())``: see :func:`_build_shim_over`."""
    return functools.partial(_build_shim_over, rust_core, tmp_path_factory)


@pytest.fixture(scope="session")
def compile_c() -> Callable[..., Path]:
    """:func:`compile_library`, for a library that does not need the Rust core."""
    return compile_library
