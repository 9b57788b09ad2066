"""The spec's verdicts for a whole lattice at once, and a batch of results checked against them.

:func:`verdicts` groups the shapes by chain length and evaluates each group with
``spec.batch.evaluate_batch`` (``spec.arith`` over NumPy arrays). :func:`compare` checks a
batch of results from a native batch runner, ``(status, packet or None, completion calls)``
per shape, against them: the status against the allowed outcomes (vectorised), and for each
accepted shape the packet, decoded strictly by ``spec.wire`` and compared field by field with
the predicted summary, as the driver's ``host_take`` check does. It returns the lanes that do
not conform; the sweep re-runs those shape by shape through the driver to name the
requirements and write replay files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vmbspec.conformance.sweep.lattice import Shape, chain_length
from vmbspec.spec import wire
from vmbspec.spec.batch import BatchVerdict, CallBatch, batch_supported, evaluate_batch
from vmbspec.spec.constants import NtStatus
from vmbspec.spec.errors import WireFormatError
from vmbspec.spec.readings import Profile

Result = tuple[int, bytes | None, int]


def call_batch(shapes: Sequence[Shape]) -> CallBatch:
    """The arrays of a group of shapes whose chains have the same length."""
    n = len(shapes)
    length = chain_length(shapes[0])
    if any(chain_length(s) != length for s in shapes):
        raise ValueError("a call batch holds shapes of one chain length")

    def column(index: int) -> np.ndarray:
        return np.fromiter((s[index] for s in shapes), dtype=np.uint64, count=n)

    byte_offsets = tuple(
        np.fromiter((s[0][i][0] for s in shapes if s[0] is not None), dtype=np.uint64, count=n)
        for i in range(length)
    )
    byte_counts = tuple(
        np.fromiter((s[0][i][1] for s in shapes if s[0] is not None), dtype=np.uint64, count=n)
        for i in range(length)
    )
    return CallBatch(
        byte_offsets=byte_offsets,
        byte_counts=byte_counts,
        mdl_offset=column(1),
        mdl_length=column(2),
        flags=column(3),
        buffer_length=column(5),
        buffer_null=np.fromiter((s[4] is None for s in shapes), dtype=np.bool_, count=n),
    )


def verdicts(
    shapes: Sequence[Shape], ring_data_size: int, profile: Profile
) -> BatchVerdict | None:
    """The batch verdicts of ``shapes`` (one chain length), or None where the profile needs
    the per-call evaluation (``spec.batch.batch_supported``)."""
    if not shapes:
        return None
    length = 0 if shapes[0][0] is None else len(shapes[0][0])
    if batch_supported(profile, length) is not None:
        return None
    return evaluate_batch(call_batch(shapes), ring_data_size, profile)


def _status_ok(verdict: BatchVerdict, statuses: np.ndarray) -> np.ndarray:
    success = statuses == NtStatus.STATUS_SUCCESS
    error = (statuses >> np.uint64(30)) == 3
    overflow = statuses == NtStatus.STATUS_BUFFER_OVERFLOW
    rejected_ok = verdict.reject & (error | (overflow & verdict.overflow_ok))
    return np.where(success, verdict.accept, rejected_ok)


def _packet_conforms(verdict: BatchVerdict, lane: int, shape: Shape, data: bytes) -> bool:
    try:
        decoded = wire.decode_packet(data)
    except WireFormatError:
        return False
    if decoded.type != verdict.packet_type(lane):
        return False
    wanted_flag = int(verdict.completion_requested[lane])
    if wanted_flag >= 0 and int(decoded.completion_requested) != wanted_flag:
        return False
    if decoded.data_offset != int(verdict.data_offset[lane]) or (
        decoded.total_size != int(verdict.total[lane])
    ):
        return False
    mdl = shape[0]
    wanted = []
    for term in verdict.ranges:
        if not term.present[lane]:
            continue
        assert mdl is not None
        pfns = mdl[term.mdl_index][2]
        first, count = int(term.first_pfn[lane]), int(term.pfn_count[lane])
        wanted.append((int(term.byte_count[lane]), int(term.byte_offset[lane]),
                       tuple(pfns[i] if i < len(pfns) else None
                             for i in range(first, first + count))))
    actual = [(r.byte_count, r.byte_offset, tuple(r.pfns)) for r in decoded.ranges]
    if actual != wanted:
        return False
    payload = shape[4] or b""
    try:
        return decoded.payload(len(payload)) == payload
    except WireFormatError:
        return False


def compare(
    verdict: BatchVerdict, shapes: Sequence[Shape], results: Sequence[Result]
) -> list[int]:
    """The lanes whose result does not conform (see the module)."""
    statuses = np.fromiter((r[0] for r in results), dtype=np.uint64, count=len(results))
    calls = np.fromiter((r[2] for r in results), dtype=np.int64, count=len(results))
    emitted = np.fromiter((r[1] is not None for r in results), dtype=np.bool_,
                          count=len(results))
    success = statuses == NtStatus.STATUS_SUCCESS
    bad = ~_status_ok(verdict, statuses)
    # A rejected call emits nothing and calls no completion routine; an accepted one emits
    # its packet, and without WAIT_FOR_COMPLETION completes once in the ring (READ-A4 (b)).
    bad |= ~success & (emitted | (calls != 0))
    bad |= success & ~emitted
    bad |= success & (calls != np.where(verdict.completes_at_send, 1, 0))
    failing = set(np.flatnonzero(bad).tolist())
    for lane in np.flatnonzero(success & ~bad).tolist():
        packet = results[lane][1]
        assert packet is not None
        if not _packet_conforms(verdict, lane, shapes[lane], packet):
            failing.add(lane)
    return sorted(failing)
