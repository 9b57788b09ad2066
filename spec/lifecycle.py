"""The lifecycle of a packet object and of its channel.

Theory of operation
-------------------
The transition relation is data: :data:`PACKET_TRANSITIONS` and :data:`CHANNEL_TRANSITIONS`
map ``(state, event)`` to the next state and the requirement IDs that justify the move. From
each table this module builds a python-statemachine class (:class:`PacketLifecycle`,
:class:`ChannelLifecycle`), which checks the definition when it is created (an initial state,
every state reachable, a path to a final state) and renders the Mermaid diagram in the README.
Firing an event is a lookup in the table (:func:`step_packet`, :func:`step_channel`); a miss
raises :class:`~spec.errors.SpecViolation` naming the requirement the caller broke, taken from
:data:`PACKET_EVENT_GUARDS` / :data:`CHANNEL_EVENT_GUARDS`.

What this module knows: which operations are legal in which state. What it does not know: the
arguments of a send (``spec.rules``), ring sizes, FIFO order and transaction ids (kept by the
caller, for example the conformance suite's model of a channel).

Packet states (KMCL design notes, reference §1; seed "represents the packet throughout the
lifetime of the transaction"):

* ``idle``: allocated by VmbPacketAllocate, never sent;
* ``queued``: accepted, waiting on the channel's FIFO queue (ring full, or the channel not open);
* ``in_ring``: written to the ring, awaiting the opposite endpoint's completion packet;
* ``completed``: its completion routine has run; reusable (KMCL-REUSE);
* ``freed``: released by VmbPacketFree (final).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from statemachine import State, StateMachine

from vmbspec.spec.errors import SpecViolation


class PacketState(Enum):
    IDLE = "idle"
    QUEUED = "queued"
    IN_RING = "in_ring"
    COMPLETED = "completed"
    FREED = "freed"


class PacketEvent(Enum):
    SEND_QUEUED = "send_queued"  # an accepted send that waits on the channel's queue
    SEND_TO_RING = "send_to_ring"  # an accepted send written to the ring at the call
    WRITTEN = "written"  # a queued packet reaches the ring
    COMPLETE = "complete"  # the opposite endpoint's completion arrives (routine runs)
    CANCEL = "cancel"  # the channel is disabled with the packet outstanding
    FREE = "free"  # VmbPacketFree


class ChannelState(Enum):
    NOT_OPEN = "not_open"
    OPEN = "open"
    DISABLED = "disabled"


class ChannelEvent(Enum):
    OPEN = "enable"  # VmbChannelEnable: the channel opens
    DISABLE = "disable"  # VmbChannelDisable: the channel closes


@dataclass(frozen=True)
class Move:
    """The target of a transition and the requirements that justify it."""

    target: Any
    requirements: tuple[str, ...]


P, E = PacketState, PacketEvent
#: (state, event) -> next state, for a packet object.
PACKET_TRANSITIONS: Mapping[tuple[PacketState, PacketEvent], Move] = {
    (P.IDLE, E.SEND_QUEUED): Move(P.QUEUED, ("SEED-ASSOCIATE", "KMCL-QUEUE-FULL")),
    (P.IDLE, E.SEND_TO_RING): Move(P.IN_RING, ("SEED-ASSOCIATE", "SEED-BUFFER")),
    (P.COMPLETED, E.SEND_QUEUED): Move(P.QUEUED, ("KMCL-REUSE", "KMCL-QUEUE-FULL")),
    (P.COMPLETED, E.SEND_TO_RING): Move(P.IN_RING, ("KMCL-REUSE", "SEED-BUFFER")),
    (P.QUEUED, E.WRITTEN): Move(P.IN_RING, ("KMCL-QUEUE-FULL", "KMCL-QUEUE-CLOSED")),
    (P.IN_RING, E.COMPLETE): Move(P.COMPLETED, ("SEED-WAIT", "KMCL-COMPLETION")),
    (P.QUEUED, E.CANCEL): Move(P.COMPLETED, ("READ-A12",)),
    (P.IN_RING, E.CANCEL): Move(P.COMPLETED, ("READ-A12",)),
    (P.IDLE, E.FREE): Move(P.FREED, ("SEED-PACKETOBJECT",)),
    (P.COMPLETED, E.FREE): Move(P.FREED, ("SEED-WAIT", "KMCL-REUSE")),
}

#: The requirement a caller breaks by firing an event where the table has no move.
PACKET_EVENT_GUARDS: Mapping[PacketEvent, tuple[str, str]] = {
    E.SEND_QUEUED: ("READ-A10", "only an idle or completed packet may be sent"),
    E.SEND_TO_RING: ("READ-A10", "only an idle or completed packet may be sent"),
    E.WRITTEN: ("KMCL-QUEUE-FULL", "only a queued packet can be written to the ring"),
    E.COMPLETE: ("SEED-WAIT", "only a packet in the ring awaits a completion packet"),
    E.CANCEL: ("READ-A12", "only an outstanding packet can be cancelled"),
    E.FREE: (
        "SEED-WAIT",
        "its resources cannot be released until a completion packet comes back",
    ),
}

#: READ-A10, contract violations a robust target survives: VmbPacketFree of a packet that is
#: still outstanding. The seed: the packet object "represents the packet throughout the
#: lifetime of the transaction", and its resources "cannot be released until a completion
#: packet comes back" (SEED-WAIT); so the free cannot take effect. A target that declares
#: ``robust-contract-violations`` ignores it: the packet stays where it was and is still
#: written, taken and completed exactly once. A target that does not declare it is never given
#: such a call (a real driver may bug-check).
CONTRACT_VIOLATIONS: Mapping[tuple[PacketState, PacketEvent], Move] = {
    (P.QUEUED, E.FREE): Move(P.QUEUED, ("READ-A10", "SEED-WAIT")),
    (P.IN_RING, E.FREE): Move(P.IN_RING, ("READ-A10", "SEED-WAIT")),
}

C, CE = ChannelState, ChannelEvent
#: (state, event) -> next state, for a channel.
CHANNEL_TRANSITIONS: Mapping[tuple[ChannelState, ChannelEvent], Move] = {
    (C.NOT_OPEN, CE.OPEN): Move(C.OPEN, ("KMCL-QUEUE-CLOSED",)),
    (C.NOT_OPEN, CE.DISABLE): Move(C.DISABLED, ("KMCL-QUEUE-CLOSED", "READ-A12")),
    (C.OPEN, CE.DISABLE): Move(C.DISABLED, ("KMCL-QUEUE-CLOSED", "READ-A12")),
}

CHANNEL_EVENT_GUARDS: Mapping[ChannelEvent, tuple[str, str]] = {
    CE.OPEN: ("KMCL-QUEUE-CLOSED", "only a channel that is not yet open can be opened"),
    CE.DISABLE: ("READ-A12", "a disabled channel cannot be disabled again"),
}


def step_packet(state: PacketState, event: PacketEvent) -> Move:
    """The move for ``event`` in ``state``; :class:`SpecViolation` where there is none."""
    move = PACKET_TRANSITIONS.get((state, event))
    if move is None:
        requirement, rule = PACKET_EVENT_GUARDS[event]
        raise SpecViolation(requirement, f"{event.value} on a {state.value} packet: {rule}")
    return move


def survive_violation(state: PacketState, event: PacketEvent) -> Move | None:
    """The move of a robust target for a contract violation (:data:`CONTRACT_VIOLATIONS`):
    the packet keeps its state. None when ``event`` in ``state`` is not such a violation."""
    return CONTRACT_VIOLATIONS.get((state, event))


def step_channel(state: ChannelState, event: ChannelEvent) -> Move:
    """The move for ``event`` in ``state``; :class:`SpecViolation` where there is none."""
    move = CHANNEL_TRANSITIONS.get((state, event))
    if move is None:
        requirement, rule = CHANNEL_EVENT_GUARDS[event]
        raise SpecViolation(requirement, f"{event.value} on a {state.value} channel: {rule}")
    return move


def _build_machine(
    name: str,
    doc: str,
    states: type[Enum],
    initial: Enum,
    finals: frozenset[Enum],
    table: Mapping[tuple[Any, Any], Move],
) -> type[StateMachine]:
    """A python-statemachine class whose states and transitions are exactly ``table``."""
    namespace: dict[str, Any] = {"__doc__": doc, "__module__": __name__}
    for member in states:
        namespace[member.value] = State(
            member.value.replace("_", " "),
            value=member,
            initial=member is initial,
            final=member in finals,
        )
    events: dict[str, Any] = {}
    for (source, event), move in table.items():
        transition = namespace[source.value].to(namespace[move.target.value])
        key = event.value
        events[key] = transition if key not in events else events[key] | transition
    namespace.update(events)
    metaclass: Any = type(StateMachine)
    machine: type[StateMachine] = metaclass(name, (StateMachine,), namespace)
    return machine


PacketLifecycle = _build_machine(
    "PacketLifecycle",
    "A VMBus packet object, from VmbPacketAllocate to VmbPacketFree.",
    PacketState,
    PacketState.IDLE,
    frozenset({PacketState.FREED}),
    PACKET_TRANSITIONS,
)

ChannelLifecycle = _build_machine(
    "ChannelLifecycle",
    "A VMBus channel as the sender sees it: not yet open, open, disabled.",
    ChannelState,
    ChannelState.NOT_OPEN,
    frozenset({ChannelState.DISABLED}),
    CHANNEL_TRANSITIONS,
)


def mermaid(machine: type[StateMachine]) -> str:
    """The Mermaid state diagram python-statemachine renders for ``machine``."""
    from statemachine.contrib.diagram import formatter

    rendered: str = formatter.render(machine, "mermaid")
    return rendered.rstrip("\n") + "\n"
