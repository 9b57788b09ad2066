"""Channels and packet objects: the life of a transaction after the send call accepted it.

A packet object moves through these states (KMCL header design notes; docs/target-behaviour.md
"Packet objects" and "Completion")::

    IDLE --send--> QUEUED --written--> IN_RING --host takes--> TAKEN --host completes--> COMPLETED
      |     \\________written at the call_____^                                         |
      |                                                                                 |
      +--free--> FREED <--free-- COMPLETED <--disable (STATUS_CANCELLED), from QUEUED/IN_RING/TAKEN
                                 COMPLETED --send--> (as from IDLE: packets are reusable)

The transitions are the table :data:`TRANSITIONS`; a move that is not in it is a defect of the
simulator and raises. Whether a *caller's* request is allowed (send of a queued packet, say) is
decided before any move, in :mod:`adapters.sim.send`, from :data:`SENDABLE` and
:data:`FREEABLE`.

A channel is NOT_OPEN, then OPEN, then DISABLED for good. It owns the outgoing ring, the FIFO
queue of packets waiting for room (or for the open), the packets in the ring in ring order, and
the packets the host has taken, by transaction id. Queued packets leave the queue strictly in
order: a later packet never overtakes an earlier one, even if it would fit.

How the bug switches of :mod:`adapters.sim.bugs` that live here stay inside the table (each
marked ``BUG:`` in the code), so that a broken variant never trips the simulator's own
assertions and its ring always decodes:

- ``busy-free-honoured``: a free of a QUEUED packet takes it out of the queue as ``cancel``
  then ``free`` (no completion call); a free of a packet IN_RING or TAKEN only marks it
  :attr:`Packet.freed_while_busy`. Its bytes stay in the ring and the host may take and
  complete it as usual; when it completes (or is cancelled) it passes through COMPLETED to
  FREED without a completion-routine call: the packet is gone.
- ``completion-left-outstanding``: a completed packet's handle is also kept in
  :attr:`Channel.stale`, a list apart from the packets; disable calls the completion routine
  for each stale handle (STATUS_CANCELLED) without moving any packet.
- ``txid-reuse``: two packets may carry one id. The host's table :attr:`Channel.taken` is keyed
  by id, so the later packet taken replaces the earlier one there: a completion of that id
  completes the later packet, and the earlier one stays TAKEN for good (never completed, not
  cancelled at disable, as a real driver that lost it).

Two reading switches of :mod:`adapters.sim.readings` live here:

- A4 (b): a packet sent without WAIT_FOR_COMPLETION (its layout asks for no completion)
  completes when it is written: IN_RING --done--> COMPLETED, one completion-routine call with
  STATUS_SUCCESS, and the packet object is free to be sent again at once. Its bytes are still
  in the ring, so the channel keeps a *detached* copy of the transaction there
  (:attr:`Packet.detached`) that the host takes and may complete like any other; a detached
  transaction's completion or cancellation calls nobody. Its id stays in use until then, so a
  host completion can never reach another transaction.
- A12 (any-error): disable cancels with STATUS_UNSUCCESSFUL instead of STATUS_CANCELLED.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from vmbspec.adapters.sim.consts import (
    STATUS_CANCELLED,
    STATUS_SUCCESS,
    STATUS_UNSUCCESSFUL,
    TRAILER_SIZE,
    U64_MAX,
)
from vmbspec.adapters.sim.readings import Readings
from vmbspec.adapters.sim.ring import Ring, RingCorrupt
from vmbspec.adapters.sim.wire import PacketLayout


class PacketState(enum.Enum):
    IDLE = "idle"
    QUEUED = "queued"
    IN_RING = "in ring"
    TAKEN = "taken by the host, awaiting completion"
    COMPLETED = "completed"
    FREED = "freed"


class ChannelState(enum.Enum):
    NOT_OPEN = "not yet open"
    OPEN = "open"
    DISABLED = "disabled"


_S = PacketState
#: state -> event -> next state.
TRANSITIONS: dict[PacketState, dict[str, PacketState]] = {
    _S.IDLE: {"queue": _S.QUEUED, "write": _S.IN_RING, "free": _S.FREED},
    _S.QUEUED: {"write": _S.IN_RING, "cancel": _S.COMPLETED},
    _S.IN_RING: {"take": _S.TAKEN, "cancel": _S.COMPLETED, "done": _S.COMPLETED},
    _S.TAKEN: {"complete": _S.COMPLETED, "cancel": _S.COMPLETED},
    _S.COMPLETED: {"queue": _S.QUEUED, "write": _S.IN_RING, "free": _S.FREED},
    _S.FREED: {},
}
SENDABLE = frozenset({_S.IDLE, _S.COMPLETED})
FREEABLE = frozenset({_S.IDLE, _S.COMPLETED})
OUTSTANDING = frozenset({_S.QUEUED, _S.IN_RING, _S.TAKEN})

#: Called for each completion-routine call: (packet handle, status, data).
CompletionSink = Callable[[int, int, bytes], None]


@dataclass(eq=False)
class Packet:
    """A packet object. While outstanding it carries what the send call fixed."""

    handle: int
    channel: Channel
    state: PacketState = PacketState.IDLE
    transaction_id: int | None = None
    layout: PacketLayout | None = None
    #: The in-line payload as it was at the call.
    payload_at_call: bytes = b""
    #: The caller's buffer, when it may be read again at write time (not paged, reading A11).
    late_buffer: bytearray | None = None
    #: BUG busy-free-honoured: freed while in the ring or taken; its completion calls nobody.
    freed_while_busy: bool = False
    #: Reading A4 (b): the ring's copy of a transaction that completed when it was written;
    #: not a packet object of the caller, and its completion calls nobody.
    detached: bool = False

    def move(self, event: str) -> None:
        try:
            self.state = TRANSITIONS[self.state][event]
        except KeyError:
            raise AssertionError(
                f"packet {self.handle}: no transition {event!r} from {self.state.value}"
            ) from None

    def payload_now(self) -> bytes:
        """The payload to write now: re-read the caller's buffer if it is still allowed to."""
        assert self.layout is not None
        length = self.layout.payload_length
        if self.late_buffer is not None and len(self.late_buffer) >= length:
            return bytes(self.late_buffer[:length])
        # The buffer shrank under us: C would read stale memory; the bytes at the call are
        # the one defensible choice.
        return self.payload_at_call


@dataclass(eq=False)
class Channel:
    handle: int
    ring: Ring
    on_complete: CompletionSink
    bugs: frozenset[str] = frozenset()
    readings: Readings = field(default_factory=Readings)
    state: ChannelState = ChannelState.NOT_OPEN
    queue: deque[Packet] = field(default_factory=deque)
    in_ring: deque[Packet] = field(default_factory=deque)
    taken: dict[int, Packet] = field(default_factory=dict)
    #: Host completions that matched no taken transaction (ignored, counted for diagnosis).
    stray_completions: int = 0
    #: BUG completion-left-outstanding: handles of completed packets left on the pending list.
    stale: list[int] = field(default_factory=list)
    _next_transaction_id: int = 1

    # -- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        if self.state is ChannelState.DISABLED:
            raise ValueError(f"channel {self.handle} is disabled and cannot be opened again")
        self.state = ChannelState.OPEN
        self.pump()

    def disable(self) -> None:
        """Close for good: each outstanding packet gets one completion, STATUS_CANCELLED
        (STATUS_UNSUCCESSFUL with reading A12 any-error)."""
        if self.state is ChannelState.DISABLED:
            return
        self.state = ChannelState.DISABLED
        taken = list(self.taken.values())
        if "cancel-skips-taken" in self.bugs:
            taken = []  # BUG: forgets the packets the host holds.
        outstanding = [*self.queue, *self.in_ring, *taken]
        outstanding.sort(key=lambda p: p.transaction_id or 0)
        self.queue.clear()
        self.in_ring.clear()
        self.taken.clear()
        self.ring.pending_send_size = 0
        status = STATUS_UNSUCCESSFUL if self.readings["A12"] == "any-error" else STATUS_CANCELLED
        for packet in outstanding:
            self._complete(packet, "cancel", status, b"")
        stale, self.stale = self.stale, []
        for handle in stale:
            # BUG completion-left-outstanding: "cancels" a transaction that already completed.
            self.on_complete(handle, STATUS_CANCELLED, b"")

    # -- transaction ids ----------------------------------------------------------------------

    def _outstanding_ids(self) -> set[int]:
        packets = [*self.queue, *self.in_ring, *self.taken.values()]
        return {p.transaction_id for p in packets if p.transaction_id is not None}

    def new_transaction_id(self) -> int:
        """A u64 id unique among the channel's outstanding transactions."""
        if "txid-reuse" in self.bugs:
            # BUG: an id from the count of outstanding transactions, not from the ids in use.
            return 1 + len(self.queue) + len(self.in_ring) + len(self.taken)
        in_use = self._outstanding_ids()
        candidate = self._next_transaction_id
        while candidate in in_use:
            candidate = candidate + 1 if candidate < U64_MAX else 1
        self._next_transaction_id = candidate + 1 if candidate < U64_MAX else 1
        return candidate

    # -- sending ------------------------------------------------------------------------------

    def submit(self, packet: Packet) -> None:
        """An accepted packet: written now if the channel is open, nothing waits and it fits;
        queued otherwise (KMCL-QUEUE-FULL, KMCL-QUEUE-CLOSED)."""
        assert packet.layout is not None
        assert self.state is not ChannelState.DISABLED
        nothing_waits = not self.queue or "queue-overtaking" in self.bugs  # BUG: skips it
        if (
            self.state is ChannelState.OPEN
            and nothing_waits
            and self.ring.fits(packet.layout.total)
        ):
            self._write(packet, packet.payload_at_call)
            return
        packet.move("queue")
        self.queue.append(packet)
        self._update_pending_send_size()

    def free_busy(self, packet: Packet) -> None:
        """BUG busy-free-honoured: VmbPacketFree of an outstanding packet, honoured.

        A queued packet leaves the queue as if cancelled, then is freed, with no completion
        call, and the queue moves on (its head may have changed). A packet in the ring or taken
        is only marked: its bytes stay where they are; :meth:`_complete` frees it instead of
        calling the completion routine."""
        if packet.freed_while_busy:
            return
        if packet.state is PacketState.QUEUED:
            self.queue.remove(packet)
            packet.move("cancel")
            _forget_send(packet)
            packet.move("free")
            self.pump()
            return
        assert packet.state in OUTSTANDING
        packet.freed_while_busy = True

    def _write(self, packet: Packet, payload: bytes) -> None:
        assert packet.layout is not None and packet.transaction_id is not None
        self.ring.write(packet.layout.encode(packet.transaction_id, payload))
        packet.move("write")
        packet.late_buffer = None
        if packet.layout.completion_requested:
            self.in_ring.append(packet)
            return
        # Reading A4 (b): no completion asked for; the transaction is over once in the ring.
        self.in_ring.append(
            Packet(
                packet.handle,
                self,
                PacketState.IN_RING,
                packet.transaction_id,
                packet.layout,
                detached=True,
            )
        )
        packet.move("done")
        _forget_send(packet)
        self.on_complete(packet.handle, STATUS_SUCCESS, b"")

    def pump(self) -> None:
        """Write queued packets, in order, while the channel is open and the head fits."""
        while self.state is ChannelState.OPEN and self.queue:
            head = self.queue[0]
            assert head.layout is not None
            if not self.ring.fits(head.layout.total):
                break
            self.queue.popleft()
            self._write(head, head.payload_now())
        self._update_pending_send_size()

    def _update_pending_send_size(self) -> None:
        """Tell the reader how much room the queue's head waits for (0: nothing waits)."""
        wanted = 0
        if self.state is ChannelState.OPEN and self.queue:
            head_layout = self.queue[0].layout
            assert head_layout is not None
            wanted = head_layout.total + TRAILER_SIZE
        self.ring.pending_send_size = wanted

    # -- host side ----------------------------------------------------------------------------

    def host_take(self) -> bytes | None:
        if self.state is ChannelState.DISABLED:
            return None
        data = self.ring.read()
        if data is None:
            return None
        if not self.in_ring:
            raise RingCorrupt(f"channel {self.handle}: ring had a packet nobody wrote")
        packet = self.in_ring.popleft()
        written_id = int.from_bytes(data[8:16], "little")
        if written_id != packet.transaction_id:
            raise RingCorrupt(
                f"channel {self.handle}: ring holds transaction {written_id:#x}, expected "
                f"{packet.transaction_id}"
            )
        packet.move("take")
        # With txid-reuse, a second packet of the same id replaces the first here (see above).
        self.taken[written_id] = packet
        self.pump()
        return data

    def host_complete(self, transaction_id: int, status: int, data: bytes) -> None:
        if self.state is ChannelState.DISABLED:
            return  # completions after disable are ignored
        packet = self.taken.pop(transaction_id, None)
        if packet is None:
            self.stray_completions += 1
            return
        self._complete(packet, "complete", status, data)
        if "completion-left-outstanding" in self.bugs and not packet.detached:
            self.stale.append(packet.handle)  # BUG: never unlinked from the pending list.

    def _complete(self, packet: Packet, event: str, status: int, data: bytes) -> None:
        packet.move(event)
        _forget_send(packet)
        if packet.detached:
            return  # reading A4 (b): completed when written; nobody to call now.
        if packet.freed_while_busy:
            # BUG busy-free-honoured: the packet was freed under the transaction; nobody to call.
            packet.freed_while_busy = False
            packet.move("free")
            return
        self.on_complete(packet.handle, status, data)
        if "double-completion" in self.bugs:
            self.on_complete(packet.handle, status, data)  # BUG: the routine runs twice.


def _forget_send(packet: Packet) -> None:
    """Drop what the send call fixed: the transaction is over."""
    packet.transaction_id = None
    packet.layout = None
    packet.payload_at_call = b""
    packet.late_buffer = None
