"""Deliberate defects for the conformance suite's detection self-test.

A suite that passes a correct target proves little; it must also fail targets that carry the
bug classes seen in real VMBus code (reference §6). Each name below switches on one small
defect *inside the real code path* of the simulator (never a separate fake), so that a broken
variant differs from the correct one by exactly that defect. ``SimTarget(bugs=...)`` takes a set
of these names; the default is the empty set, a target with no known defect.

The catalog is data: the name, then a sentence saying what goes wrong and which real bug it
imitates. ``check_bugs`` refuses a name that is not in it, so a typo cannot silently build a
correct target that the self-test then "fails to detect".
"""

from __future__ import annotations

from collections.abc import Iterable

#: name -> what the switch breaks (and the real bug it imitates).
BUGS: dict[str, str] = {
    "wrap32": "the bounds check computes (MdlOffset + MdlLength) & 0xFFFFFFFF <= limit, so a "
    "sum past 2^32 wraps to a small value and an out-of-bounds sub-buffer is accepted "
    "(Linux hv_netvsc hardening, OpenVMM PR 4145); what it then emits is whatever the range "
    "walk makes of it: no range for a chain, poison PFNs past the array with FORCE",
    "force-ignores-byteoffset": "with FORCE_MDL_LENGTH the bound is ROUND_TO_PAGES(ByteCount) "
    "instead of ROUND_TO_PAGES(ByteOffset + ByteCount) - ByteOffset; when ByteOffset != 0 the "
    "range can run into the page after the MDL and reads one PFN past its array (reading A3 b)",
    "double-completion": "the completion routine is called twice for each completion, both for "
    "a host completion and for the cancellation at disable",
    "paged-not-copied": "PAGED_BUFFER is ignored: a queued packet's in-line payload is read "
    "from the caller's buffer when it is written to the ring, not copied at the call",
    "range-per-page": "one GPA range per page instead of one per MDL touched (Linux netvsc "
    "2025, kernel bugzilla 217503)",
    "zero-length-range": "a resolved external length of 0 is accepted and emitted as a range "
    "with byte_count 0 (OpenVMM PR 621/802 EmptyByteCount)",
    "extra-pfn": "each range carries one unused PFN after the ones it needs (Linux storvsc "
    '"Don\'t pass unused PFNs")',
    "ignore-wait-flag": "a send without WAIT_FOR_COMPLETION is accepted (reading A4 a says "
    "reject it)",
    "ring-full": "a packet fits when total + 8 <= free, so the ring can be filled completely "
    "and then looks empty (write_index == read_index)",
    "cancel-skips-taken": "disable cancels queued and in-ring packets but forgets those the "
    "host has taken and not yet completed: they never get a completion call",
    "queue-overtaking": "a new packet is written straight to the ring whenever it fits, even "
    "while older packets wait in the FIFO queue, so a small send overtakes a packet queued "
    "behind a full ring (a send path that checks only ring space, not the queue: "
    "KMCL-QUEUE-FULL)",
    "busy-free-honoured": "VmbPacketFree of an outstanding packet is honoured instead of "
    "ignored (reading A10): a queued packet is dropped and never written; one in the ring or "
    "taken by the host stays there, but its completion runs no completion routine (the external "
    "buffer freed before the transaction completes, reference §6)",
    "completion-left-outstanding": "a host completion runs the completion routine but leaves "
    "the transaction on the channel's pending list, so disable cancels it again: a second "
    "call, with STATUS_CANCELLED, for a packet already completed (a request never unlinked "
    "from the driver's pending list)",
    "txid-reuse": "a new send's transaction id is 1 + the number of transactions outstanding "
    "on the channel, so once an earlier one completes a new packet can carry the id of one "
    "still outstanding (an id derived from a slot count, KMCL-COMPLETION)",
}


def check_bugs(bugs: Iterable[str]) -> frozenset[str]:
    """The bug names as a frozenset; ValueError names every unknown one."""
    if isinstance(bugs, str):
        raise ValueError(f"bugs must be a collection of names, not the string {bugs!r}")
    chosen = frozenset(bugs)
    unknown = sorted(chosen - BUGS.keys())
    if unknown:
        raise ValueError(f"unknown bug switch(es) {unknown}; known: {sorted(BUGS)}")
    return chosen
