"""Hand-written step sequences that catch the simulator's newer bug switches.

For each switch, a short sequence in the step format of ``conformance.steps`` (as in
``conformance/cases/*.cases.json``) that the correct simulator passes and the broken one fails,
at the step where the defect shows, with a failure naming a requirement the detection
self-test (``tests/conformance/test_detection.py``) expects for that switch. They do not depend
on the stateful generator finding the defect: they are the minimal evidence that the driver's
checks can see it at all.
"""

from __future__ import annotations

from typing import Any

import pytest

from vmbspec.adapters.sim import SimTarget
from vmbspec.conformance.replay import replay_steps
from vmbspec.conformance.steps import check_steps
from vmbspec.spec.readings import Profile

from .test_detection import EXPECTED

WAIT = 0x1
#: A one-page MDL of which the send uses all (MdlLength 0 means "to the end of the chain").
MDL = [[0, 8, [1]]]


def channel(size: int = 16384, *, packets: int) -> list[dict[str, Any]]:
    """Create and open channel 0 and allocate ``packets`` packets on it."""
    return [
        {"op": "create_channel", "ring_data_size": size},
        {"op": "open", "channel": 0},
        *({"op": "allocate", "channel": 0} for _ in range(packets)),
    ]


def inband(packet: int, total: int) -> dict[str, Any]:
    """A send of an in-band packet (no MDL) of ``total`` bytes on the ring."""
    length = total - 16  # the 16-byte descriptor, then the in-line buffer
    return {"op": "send", "packet": packet, "buffer": {"fill": packet}, "buffer_length": length,
            "flags": WAIT}


def gpa(packet: int) -> dict[str, Any]:
    return {"op": "send", "packet": packet, "buffer": "", "mdl": MDL, "flags": WAIT}


def take() -> dict[str, Any]:
    return {"op": "host_take", "channel": 0}


def complete(packet: int) -> dict[str, Any]:
    return {"op": "host_complete", "packet": packet, "status": 0, "data": ""}


# On a 4096-byte ring: a 2000-byte packet leaves 2088 bytes free, and a 2088-byte packet needs
# 2096 (itself, its trailer, and the byte that keeps the ring from filling), so it queues.
FILL_THEN_QUEUE = [*channel(4096, packets=3), inband(0, 2000), inband(1, 2088)]

#: name -> (switch, steps, the 1-based step at which the broken simulator fails).
SEQUENCES: dict[str, tuple[str, list[dict[str, Any]], int]] = {
    # A small send must wait behind the queued packet; the broken one writes it at once.
    "small-send-behind-queue": (
        "queue-overtaking",
        [*FILL_THEN_QUEUE, inband(2, 24), take(), take(), take()],
        len(FILL_THEN_QUEUE) + 1,
    ),
    # A free of a queued packet is ignored (READ-A10): it is written once the ring has room.
    "free-of-queued-packet": (
        "busy-free-honoured",
        [*FILL_THEN_QUEUE, {"op": "free", "packet": 1}, take(), take(), complete(1)],
        len(FILL_THEN_QUEUE) + 2,
    ),
    # A free of a packet in the ring is ignored: its completion still runs the routine.
    "free-of-packet-in-ring": (
        "busy-free-honoured",
        [*channel(packets=1), gpa(0), {"op": "free", "packet": 0}, take(), complete(0)],
        7,
    ),
    # A completed transaction is over: disable has nothing to cancel.
    "disable-after-completion": (
        "completion-left-outstanding",
        [*channel(packets=1), gpa(0), take(), complete(0), {"op": "disable", "channel": 0}],
        7,
    ),
    # After the first of two outstanding transactions completes, a new one needs a new id.
    "send-after-older-completion": (
        "txid-reuse",
        [*channel(packets=3), gpa(0), gpa(1), take(), take(), complete(0), gpa(2), take()],
        12,
    ),
}

PROFILE = Profile.default()


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_sequence_is_well_formed(name: str) -> None:
    _, steps, _ = SEQUENCES[name]
    assert check_steps(steps, name) is steps


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_correct_simulator_passes(name: str) -> None:
    _, steps, _ = SEQUENCES[name]
    result = replay_steps(steps, SimTarget, PROFILE)
    assert result.failure is None, result.failure
    assert result.steps_run == len(steps)


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_broken_simulator_fails_against_an_expected_requirement(name: str) -> None:
    bug, steps, failing_step = SEQUENCES[name]
    result = replay_steps(steps, lambda: SimTarget(bugs={bug}), PROFILE)
    assert result.failure is not None, f"sim:{bug} passed {name}"
    assert result.steps_run == failing_step, result.failure.message
    cited = set(result.failure.requirements)
    assert cited & EXPECTED[bug], f"sim:{bug} on {name}: {sorted(cited)}"


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_sequence_is_caught_by_its_own_switch_only(name: str) -> None:
    """The other new switches pass it: each sequence isolates one defect."""
    own, steps, _ = SEQUENCES[name]
    for bug in {switch for switch, _, _ in SEQUENCES.values()} - {own}:
        result = replay_steps(steps, lambda bug=bug: SimTarget(bugs={bug}), PROFILE)
        assert result.failure is None, (bug, result.failure)
