"""Tests of spec.lifecycle: the transition tables, the guards, the machines built from them,
and the Mermaid diagrams checked into the README."""

from __future__ import annotations

import itertools
from collections import deque
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from statemachine import StateMachine
from statemachine.exceptions import TransitionNotAllowed

from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.errors import SpecViolation
from vmbspec.spec.lifecycle import (
    CHANNEL_TRANSITIONS,
    PACKET_TRANSITIONS,
    ChannelEvent,
    ChannelLifecycle,
    ChannelState,
    Move,
    PacketEvent,
    PacketLifecycle,
    PacketState,
    mermaid,
    step_channel,
    step_packet,
)

P, E = PacketState, PacketEvent
C, CE = ChannelState, ChannelEvent

# The legal moves, written from docs/target-behaviour.md ("Packet objects", "Channel",
# "Completion"), not copied from the module.
EXPECTED_PACKET_MOVES = {
    (P.IDLE, E.SEND_QUEUED): P.QUEUED,
    (P.IDLE, E.SEND_TO_RING): P.IN_RING,
    (P.COMPLETED, E.SEND_QUEUED): P.QUEUED,  # KMCL-REUSE
    (P.COMPLETED, E.SEND_TO_RING): P.IN_RING,
    (P.QUEUED, E.WRITTEN): P.IN_RING,
    (P.IN_RING, E.COMPLETE): P.COMPLETED,
    (P.QUEUED, E.CANCEL): P.COMPLETED,  # disable: one completion call per outstanding packet
    (P.IN_RING, E.CANCEL): P.COMPLETED,
    (P.IDLE, E.FREE): P.FREED,
    (P.COMPLETED, E.FREE): P.FREED,
}
EXPECTED_CHANNEL_MOVES = {
    (C.NOT_OPEN, CE.OPEN): C.OPEN,
    (C.NOT_OPEN, CE.DISABLE): C.DISABLED,
    (C.OPEN, CE.DISABLE): C.DISABLED,
}
#: The requirement an illegal event breaks.
EXPECTED_PACKET_GUARD = {
    E.SEND_QUEUED: "READ-A10",
    E.SEND_TO_RING: "READ-A10",
    E.WRITTEN: "KMCL-QUEUE-FULL",
    E.COMPLETE: "SEED-WAIT",
    E.CANCEL: "READ-A12",
    E.FREE: "SEED-WAIT",
}
EXPECTED_CHANNEL_GUARD = {CE.OPEN: "KMCL-QUEUE-CLOSED", CE.DISABLE: "READ-A12"}

PACKET_PAIRS = list(itertools.product(PacketState, PacketEvent))
CHANNEL_PAIRS = list(itertools.product(ChannelState, ChannelEvent))


def pair_id(pair: tuple[Enum, Enum]) -> str:
    return f"{pair[0].value}-{pair[1].value}"


# ---------------------------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------------------------


def test_packet_table_has_exactly_the_documented_moves() -> None:
    assert {k: m.target for k, m in PACKET_TRANSITIONS.items()} == EXPECTED_PACKET_MOVES


def test_channel_table_has_exactly_the_documented_moves() -> None:
    assert {k: m.target for k, m in CHANNEL_TRANSITIONS.items()} == EXPECTED_CHANNEL_MOVES


def test_every_move_cites_known_requirements() -> None:
    for move in [*PACKET_TRANSITIONS.values(), *CHANNEL_TRANSITIONS.values()]:
        assert move.requirements
        CATALOG.require(*move.requirements)


@pytest.mark.parametrize(("pair", "target"), EXPECTED_PACKET_MOVES.items(), ids=str)
def test_step_packet_follows_each_legal_move(
    pair: tuple[PacketState, PacketEvent], target: PacketState
) -> None:
    move = step_packet(*pair)
    assert isinstance(move, Move)
    assert move.target is target


@pytest.mark.parametrize(("pair", "target"), EXPECTED_CHANNEL_MOVES.items(), ids=str)
def test_step_channel_follows_each_legal_move(
    pair: tuple[ChannelState, ChannelEvent], target: ChannelState
) -> None:
    assert step_channel(*pair).target is target


def test_completion_and_reuse_moves_cite_their_sentences() -> None:
    assert "SEED-WAIT" in step_packet(P.IN_RING, E.COMPLETE).requirements
    assert "KMCL-REUSE" in step_packet(P.COMPLETED, E.SEND_TO_RING).requirements
    assert "READ-A12" in step_packet(P.QUEUED, E.CANCEL).requirements


ILLEGAL_PACKET = [p for p in PACKET_PAIRS if p not in EXPECTED_PACKET_MOVES]
ILLEGAL_CHANNEL = [p for p in CHANNEL_PAIRS if p not in EXPECTED_CHANNEL_MOVES]


@pytest.mark.parametrize("pair", ILLEGAL_PACKET, ids=pair_id)
def test_illegal_packet_event_raises_naming_the_requirement(
    pair: tuple[PacketState, PacketEvent],
) -> None:
    state, event = pair
    with pytest.raises(SpecViolation) as info:
        step_packet(state, event)
    assert info.value.requirement == EXPECTED_PACKET_GUARD[event]
    assert str(info.value).startswith(f"[{EXPECTED_PACKET_GUARD[event]}]")
    assert state.value in info.value.message


@pytest.mark.parametrize("pair", ILLEGAL_CHANNEL, ids=pair_id)
def test_illegal_channel_event_raises_naming_the_requirement(
    pair: tuple[ChannelState, ChannelEvent],
) -> None:
    state, event = pair
    with pytest.raises(SpecViolation) as info:
        step_channel(state, event)
    assert info.value.requirement == EXPECTED_CHANNEL_GUARD[event]


def test_free_of_a_packet_in_the_ring_breaks_seed_wait() -> None:
    with pytest.raises(SpecViolation, match=r"^\[SEED-WAIT\]") as info:
        step_packet(P.IN_RING, E.FREE)
    assert info.value.requirement == "SEED-WAIT"


def test_send_of_a_queued_packet_breaks_read_a10() -> None:
    for event in (E.SEND_QUEUED, E.SEND_TO_RING):
        with pytest.raises(SpecViolation) as info:
            step_packet(P.QUEUED, event)
        assert info.value.requirement == "READ-A10"


def test_nothing_leaves_a_freed_packet_or_a_disabled_channel() -> None:
    for event in PacketEvent:
        with pytest.raises(SpecViolation):
            step_packet(P.FREED, event)
    for channel_event in ChannelEvent:
        with pytest.raises(SpecViolation):
            step_channel(C.DISABLED, channel_event)


# ---------------------------------------------------------------------------------------------
# The python-statemachine classes agree with the tables
# ---------------------------------------------------------------------------------------------


def shortest_paths(table: Any, initial: Enum) -> dict[Enum, list[Enum]]:
    """Event sequences from ``initial`` to every reachable state, by breadth-first search."""
    paths: dict[Enum, list[Enum]] = {initial: []}
    todo = deque([initial])
    while todo:
        state = todo.popleft()
        for (source, event), target in table.items():
            if source is state and target not in paths:
                paths[target] = [*paths[state], event]
                todo.append(target)
    return paths


PACKET_PATHS = shortest_paths(EXPECTED_PACKET_MOVES, P.IDLE)
CHANNEL_PATHS = shortest_paths(EXPECTED_CHANNEL_MOVES, C.NOT_OPEN)


def test_every_state_is_reachable_from_the_initial_state() -> None:
    assert set(PACKET_PATHS) == set(PacketState)
    assert set(CHANNEL_PATHS) == set(ChannelState)


def machine_in(cls: type[StateMachine], state: Enum, how: str, paths: dict[Enum, list[Enum]]):
    """An instance of ``cls`` in ``state``: driven there by events, or started there."""
    if how == "start_value":
        machine = cls(start_value=state)
    else:
        machine = cls()
        for event in paths[state]:
            machine.send(event.value)
    assert machine.current_state_value is state
    return machine


def check_machine_agrees(
    cls: type[StateMachine],
    expected: dict[Any, Enum],
    pair: tuple[Enum, Enum],
    how: str,
    paths: dict[Enum, list[Enum]],
) -> None:
    state, event = pair
    machine = machine_in(cls, state, how, paths)
    if pair in expected:
        machine.send(event.value)
        assert machine.current_state_value is expected[pair]
    else:
        with pytest.raises(TransitionNotAllowed):
            machine.send(event.value)
        assert machine.current_state_value is state


@pytest.mark.parametrize("how", ["path", "start_value"])
@pytest.mark.parametrize("pair", PACKET_PAIRS, ids=pair_id)
def test_packet_machine_fires_exactly_the_table_moves(
    pair: tuple[PacketState, PacketEvent], how: str
) -> None:
    check_machine_agrees(PacketLifecycle, EXPECTED_PACKET_MOVES, pair, how, PACKET_PATHS)


@pytest.mark.parametrize("how", ["path", "start_value"])
@pytest.mark.parametrize("pair", CHANNEL_PAIRS, ids=pair_id)
def test_channel_machine_fires_exactly_the_table_moves(
    pair: tuple[ChannelState, ChannelEvent], how: str
) -> None:
    check_machine_agrees(ChannelLifecycle, EXPECTED_CHANNEL_MOVES, pair, how, CHANNEL_PATHS)


def test_machines_have_the_enum_states_initial_and_final() -> None:
    for cls, states, initial, final in [
        (PacketLifecycle, PacketState, P.IDLE, {P.FREED}),
        (ChannelLifecycle, ChannelState, C.NOT_OPEN, {C.DISABLED}),
    ]:
        assert {s.value for s in cls.states} == set(states)
        assert cls.initial_state.value is initial
        assert {s.value for s in cls.states if s.final} == final
        assert cls().current_state_value is initial


def test_machine_events_are_the_table_events() -> None:
    assert {e.id for e in PacketLifecycle.events} == {e.value for e in PacketEvent}
    assert {e.id for e in ChannelLifecycle.events} == {e.value for e in ChannelEvent}


# ---------------------------------------------------------------------------------------------
# Mermaid: the README shows the diagrams of the running definition
# ---------------------------------------------------------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def test_mermaid_renders_every_transition() -> None:
    diagram = mermaid(PacketLifecycle)
    assert diagram.startswith("stateDiagram-v2") and diagram.endswith("\n")
    assert "[*] --> idle" in diagram
    arrows = [line for line in diagram.splitlines() if "-->" in line and "[*]" not in line]
    assert len(arrows) == len(EXPECTED_PACKET_MOVES)
    channel_arrows = [
        line for line in mermaid(ChannelLifecycle).splitlines()
        if "-->" in line and "[*]" not in line
    ]
    assert len(channel_arrows) == len(EXPECTED_CHANNEL_MOVES)


@pytest.mark.parametrize("machine", [PacketLifecycle, ChannelLifecycle], ids=lambda m: m.__name__)
def test_readme_diagram_has_not_drifted_from_the_machine(machine: type[StateMachine]) -> None:
    assert README.is_file(), f"{README} is missing; it must show the lifecycle diagrams"
    fenced = f"```mermaid\n{mermaid(machine)}```"
    assert fenced in README.read_text(encoding="utf-8"), (
        f"README.md does not contain the current diagram of {machine.__name__}; "
        f"regenerate it with spec.lifecycle.mermaid({machine.__name__}):\n{fenced}"
    )
