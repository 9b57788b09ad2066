"""The schema of a driver step, checked where steps enter from outside.

A step is the JSON-able dict the driver (``conformance.driver``) performs: the stateful run and
the case catalog build them, and a replay file or a recorded trace brings them in from outside.
This module is the one place that says what a well-formed step is, so that a bad one is refused
with a message naming the step and the field, before anything is called on a target:

======================  ========================================================================
op                      fields (``*`` required; the others have the default shown)
======================  ========================================================================
``create_channel``      ``ring_data_size*``: a multiple of 4096, 4096 .. :data:`MAX_RING_DATA_SIZE`
``open`` ``disable``    ``channel*``: the index of a channel created by an earlier step
``allocate``            ``channel*``
``host_take``           ``channel*``
``free``                ``packet*``: the index of a packet allocated by an earlier step
``mutate_buffer``       ``packet*``
``send``                ``packet*``; ``buffer`` (null): null, hex bytes or ``{"fill": 0..255}``;
                        ``buffer_length`` (0), ``mdl_offset`` (0), ``mdl_length`` (0),
                        ``flags`` (0): UINT32; ``mdl`` (null): null or
                        ``[[byte_offset, byte_count, [pfn, ...]], ...]``; ``expect``:
                        ``"accepted"`` or ``"rejected"`` (cases only)
``host_complete``       ``packet*``; ``status`` (0): a UINT32 NTSTATUS; ``data`` (""): hex bytes
======================  ========================================================================

An MDL is checked as ``spec.mdl.MdlSegment`` will check it (ByteOffset below 4096, ByteCount a
UINT32, exactly ``ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount)`` 64-bit PFNs); a
non-NULL buffer has exactly ``buffer_length`` bytes. Sizes are bounded so that a step cannot
make the suite allocate without limit: :data:`MAX_BUFFER_BYTES` of in-line buffer (twice the
largest packet the u16 ``length8`` can describe, so every larger buffer would be rejected
anyway), :data:`MAX_PFNS_PER_STEP` PFNs, :data:`MAX_MDLS` MDLs in a chain. A sequence
(:func:`check_steps`) holds at most :data:`MAX_STEPS` steps and :data:`MAX_CHANNELS` channels
with :data:`MAX_TOTAL_RING_BYTES` of rings between them, and refers only to channels and
packets that earlier steps made.

Errors are :class:`conformance.inputs.InputError` with the text ``WHERE: field X: what was
wrong``; the driver turns them into ``StepError``, the replay loader into ``ReplayFileError``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vmbspec.conformance.inputs import InputError, require_int, require_list, require_str
from vmbspec.spec.constants import PAGE_SIZE, UINT32_MAX, UINT64_MAX
from vmbspec.spec.mdl import ADDRESS_AND_SIZE_TO_SPAN_PAGES

#: Steps in one sequence (a shrunk failure has tens; a case at most a few tens).
MAX_STEPS = 10_000
#: Channels one sequence may create, and the ring bytes they may hold between them.
MAX_CHANNELS = 16
MAX_RING_DATA_SIZE = 1 << 24
MAX_TOTAL_RING_BYTES = 1 << 26
#: In-line buffer bytes of one send: twice the largest packet (0xFFFF * 8 bytes).
MAX_BUFFER_BYTES = 1 << 20
#: MDLs in one chain, and PFNs in the chain of one step (16 Ki PFNs describe 64 MiB).
MAX_MDLS = 64
MAX_PFNS_PER_STEP = 1 << 14
#: Bytes a host completion packet carries back.
MAX_COMPLETION_BYTES = 1 << 16
#: A channel or packet index: sequences hold at most MAX_STEPS steps, so at most this many.
MAX_INDEX = MAX_STEPS

EXPECTATIONS = ("accepted", "rejected")


@dataclass(frozen=True)
class Limits:
    """How many channels and packets a sequence may make. A generated or replayed sequence runs
    on a live target, so its size is bounded (:data:`SEQUENCE_LIMITS`); a recorded trace only
    replays results, allocates nothing per channel or packet, and may come from a driver that
    ran for hours (:data:`TRACE_LIMITS`)."""

    max_index: int = MAX_INDEX
    max_channels: int = MAX_CHANNELS
    max_total_ring_bytes: int = MAX_TOTAL_RING_BYTES


SEQUENCE_LIMITS = Limits()
TRACE_LIMITS = Limits(max_index=UINT64_MAX, max_channels=UINT64_MAX,
                      max_total_ring_bytes=UINT64_MAX)

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def _where(where: str, name: str) -> str:
    return f"{where}: field {name}"


def _index(step: Mapping[str, Any], name: str, where: str) -> int:
    """A channel or packet index (its bound, from the :class:`Limits`, is checked by
    :func:`check_step`)."""
    if name not in step:
        raise InputError(f"{_where(where, name)}: missing (a {step['op']!r} step needs it)")
    return require_int(step[name], _where(where, name), 0, UINT64_MAX)


def _u32(step: Mapping[str, Any], name: str, where: str) -> int:
    return require_int(step.get(name, 0), _where(where, name), 0, UINT32_MAX)


def _hex(value: Any, where: str, max_bytes: int) -> bytes:
    text = require_str(value, where, 2 * max_bytes + 2)
    if not _HEX.fullmatch(text):
        raise InputError(f"{where}: expected hex bytes (an even number of 0-9a-f digits), "
                         f"found {text[:40]!r}")
    if len(text) > 2 * max_bytes:
        raise InputError(f"{where}: {len(text) // 2} bytes (at most {max_bytes})")
    return bytes.fromhex(text)


def _check_ring_size(step: Mapping[str, Any], where: str) -> None:
    if "ring_data_size" not in step:
        raise InputError(f"{_where(where, 'ring_data_size')}: missing (a 'create_channel' step "
                         "needs it)")
    field = _where(where, "ring_data_size")
    size = require_int(step["ring_data_size"], field, PAGE_SIZE, MAX_RING_DATA_SIZE)
    if size % PAGE_SIZE:
        raise InputError(f"{field}: {size} is not a multiple of {PAGE_SIZE}")


def _check_buffer(step: Mapping[str, Any], where: str) -> None:
    field = _where(where, "buffer")
    value = step.get("buffer")
    length = _u32(step, "buffer_length", where)
    if value is None:
        return  # a NULL Buffer; any BufferLength (READ-A14 says what that means)
    if isinstance(value, dict):
        if set(value) != {"fill"}:
            raise InputError(f"{field}: an object buffer is {{\"fill\": F}} and nothing else")
        require_int(value["fill"], f"{field}.fill", 0, 0xFF)
        if length > MAX_BUFFER_BYTES:
            raise InputError(f"{_where(where, 'buffer_length')}: a buffer of {length} bytes "
                             f"(at most {MAX_BUFFER_BYTES} when the buffer is not null)")
        return
    if not isinstance(value, str):
        raise InputError(f"{field}: expected null, hex bytes or {{\"fill\": F}}, found "
                         f"{type(value).__name__}")
    data = _hex(value, field, MAX_BUFFER_BYTES)
    if len(data) != length:
        raise InputError(f"{field}: {len(data)} bytes, but buffer_length is {length}")


def _check_mdl(value: Any, where: str) -> None:
    """``[[byte_offset, byte_count, [pfn, ...]], ...]``, as spec.mdl.MdlSegment checks it."""
    if value is None:
        return  # a NULL ExternalDataMdl
    field = _where(where, "mdl")
    chain = require_list(value, field, MAX_MDLS)
    if not chain:
        raise InputError(f"{field}: an MDL chain has at least one MDL (null for no MDL)")
    pfns_left = MAX_PFNS_PER_STEP
    for number, segment in enumerate(chain):
        here = f"{field}[{number}]"
        entry = require_list(segment, here, 3)
        if len(entry) != 3:
            raise InputError(f"{here}: expected [byte_offset, byte_count, [pfn, ...]], found "
                             f"{len(entry)} items")
        byte_offset = require_int(entry[0], f"{here}.byte_offset", 0, PAGE_SIZE - 1)
        byte_count = require_int(entry[1], f"{here}.byte_count", 0, UINT32_MAX)
        expected = ADDRESS_AND_SIZE_TO_SPAN_PAGES(byte_offset, byte_count)
        if expected > pfns_left:
            raise InputError(f"{here}: byte_count {byte_count:#x} needs {expected} PFNs; a step "
                             f"carries at most {MAX_PFNS_PER_STEP}")
        pfns = require_list(entry[2], f"{here}.pfns", expected)
        if len(pfns) != expected:
            raise InputError(f"{here}.pfns: an MDL with byte_offset {byte_offset:#x} and "
                             f"byte_count {byte_count:#x} has exactly {expected} PFNs, not "
                             f"{len(pfns)} (MDL-PFNS)")
        for position, pfn in enumerate(pfns):
            require_int(pfn, f"{here}.pfns[{position}]", 0, UINT64_MAX)
        pfns_left -= expected


def _check_send(step: Mapping[str, Any], where: str) -> None:
    _index(step, "packet", where)
    _check_buffer(step, where)
    _check_mdl(step.get("mdl"), where)
    for name in ("mdl_offset", "mdl_length", "flags"):
        _u32(step, name, where)
    expect = step.get("expect")
    if expect is not None and expect not in EXPECTATIONS:
        raise InputError(f"{_where(where, 'expect')}: expected \"accepted\" or \"rejected\", "
                         f"found {str(expect)[:40]!r}")


def _check_host_complete(step: Mapping[str, Any], where: str) -> None:
    _index(step, "packet", where)
    _u32(step, "status", where)
    _hex(step.get("data", ""), _where(where, "data"), MAX_COMPLETION_BYTES)


def _check_channel_op(step: Mapping[str, Any], where: str) -> None:
    _index(step, "channel", where)


def _check_packet_op(step: Mapping[str, Any], where: str) -> None:
    _index(step, "packet", where)


#: op -> (its fields, the check of their values).
OPS: dict[str, tuple[frozenset[str], Callable[[Mapping[str, Any], str], None]]] = {
    "create_channel": (frozenset({"ring_data_size"}), _check_ring_size),
    "open": (frozenset({"channel"}), _check_channel_op),
    "disable": (frozenset({"channel"}), _check_channel_op),
    "allocate": (frozenset({"channel"}), _check_channel_op),
    "host_take": (frozenset({"channel"}), _check_channel_op),
    "free": (frozenset({"packet"}), _check_packet_op),
    "mutate_buffer": (frozenset({"packet"}), _check_packet_op),
    "send": (
        frozenset({"packet", "buffer", "buffer_length", "mdl", "mdl_offset", "mdl_length",
                   "flags", "expect"}),
        _check_send,
    ),
    "host_complete": (frozenset({"packet", "status", "data"}), _check_host_complete),
}


def check_step(step: Any, where: str, limits: Limits = SEQUENCE_LIMITS) -> str:
    """Check one step's shape and values; its op. ``where`` starts every error message."""
    if not isinstance(step, dict):
        raise InputError(f"{where}: a step is an object, found {type(step).__name__}")
    op = step.get("op")
    if not isinstance(op, str) or op not in OPS:
        shown = op[:40] if isinstance(op, str) else op
        raise InputError(f"{where}: field op: unknown step op {shown!r}; ops: "
                         f"{', '.join(OPS)}")
    fields, check = OPS[op]
    for name in step:
        if name != "op" and name not in fields:
            shown = name[:40] if isinstance(name, str) else name
            raise InputError(f"{where}: field {shown!r}: not a field of a {op!r} step "
                             f"(fields: {', '.join(sorted(fields))})")
    check(step, where)
    for name in ("channel", "packet"):
        if name in step:
            require_int(step[name], _where(where, name), 0, limits.max_index)
    return op


def check_steps(steps: Any, where: str) -> list[dict[str, Any]]:
    """Check a sequence: every step, the bounds of the whole, and that each channel or
    packet a step names was made by an earlier step. Returns ``steps``."""
    sequence = require_list(steps, f"{where}: steps", MAX_STEPS)
    channels = 0
    ring_bytes = 0
    packets = 0
    for number, step in enumerate(sequence, start=1):
        here = f"{where}: step {number}"
        op = check_step(step, here)
        if op == "create_channel":
            channels += 1
            ring_bytes += step["ring_data_size"]
            if channels > MAX_CHANNELS or ring_bytes > MAX_TOTAL_RING_BYTES:
                raise InputError(f"{here}: more than {MAX_CHANNELS} channels or "
                                 f"{MAX_TOTAL_RING_BYTES} bytes of rings in one sequence")
        elif "channel" in OPS[op][0] and step["channel"] >= channels:
            raise InputError(f"{here}: field channel: no channel {step['channel']} "
                             f"({channels} created by the steps before)")
        elif "packet" in OPS[op][0] and step["packet"] >= packets:
            raise InputError(f"{here}: field packet: no packet {step['packet']} "
                             f"({packets} allocated by the steps before)")
        if op == "allocate":
            packets += 1
    return sequence


__all__ = [
    "MAX_BUFFER_BYTES",
    "MAX_CHANNELS",
    "MAX_COMPLETION_BYTES",
    "MAX_INDEX",
    "MAX_MDLS",
    "MAX_PFNS_PER_STEP",
    "MAX_RING_DATA_SIZE",
    "MAX_STEPS",
    "MAX_TOTAL_RING_BYTES",
    "OPS",
    "check_step",
    "check_steps",
]
