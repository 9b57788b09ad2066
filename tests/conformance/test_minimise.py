"""The step-deletion pass: what it keeps, what it removes, and how it renumbers packets."""

from __future__ import annotations

from typing import Any

from vmbspec.conformance.minimise import (
    Invalid,
    merged,
    minimise,
    same,
    simpler,
    untaken,
    without,
)

SIGNATURE = ("conformance", ("SEED-WAIT",))


def alloc() -> dict[str, Any]:
    return {"op": "allocate", "channel": 0}


def send(packet: int, length: int = 0) -> dict[str, Any]:
    return {"op": "send", "packet": packet, "mdl_length": length}


def test_removing_an_allocation_removes_its_packet_and_renumbers_the_later_ones() -> None:
    steps = [alloc(), alloc(), send(0), send(1, 7), alloc(), send(2)]
    assert without(steps, 1) == [alloc(), send(0), alloc(), send(1)]
    assert without(steps, 0) == [alloc(), send(0, 7), alloc(), send(1)]
    assert without(steps, 2) == [alloc(), alloc(), send(1, 7), alloc(), send(2)]


def test_the_result_keeps_only_the_steps_the_failure_needs() -> None:
    # The "target" fails when some packet is sent with length 7 after a send of length 3.
    def run(candidate: list[Any]) -> Any:
        allocated = 0
        seen_three = False
        for step in candidate:
            if step["op"] == "allocate":
                allocated += 1
            elif step["packet"] >= allocated:
                return ("step-error", ())
            elif step["mdl_length"] == 3:
                seen_three = True
            elif step["mdl_length"] == 7 and seen_three:
                return SIGNATURE
        return None

    noise = [alloc(), send(0), alloc(), send(1), send(0, 3), alloc(), send(2), send(1)]
    steps = [*noise, alloc(), send(3, 7), send(2), alloc(), send(4)]
    assert run(steps) == SIGNATURE
    result, runs = minimise(steps, SIGNATURE, run)
    # Two packets stay: deleting steps cannot merge the 3 and the 7 onto one packet.
    assert result == [alloc(), send(0, 3), alloc(), send(1, 7)]
    assert 0 < runs < 200
    # 1-minimal: no single step (or packet's life) can go.
    assert all(run(without(result, i)) != SIGNATURE for i in range(len(result)))


def test_a_failure_that_changes_is_not_kept() -> None:
    steps = [alloc(), send(0, 3), send(0, 7)]
    # Every shorter list fails differently: nothing may go.
    result, _ = minimise(steps, SIGNATURE,
                         lambda c: SIGNATURE if c == steps else ("other", ("X",)))
    assert result == steps


def test_the_budget_bounds_the_runs() -> None:
    steps = [send(0)] * 50
    result, runs = minimise(steps, SIGNATURE, lambda c: None, max_runs=5)
    assert runs == 5 and result == steps


def test_a_step_made_invalid_by_a_removal_is_dropped_with_it() -> None:
    # The failure needs only the last send. Removing the first send alone makes the complete
    # after it invalid; removing the complete alone leaves the packet busy (another failure).
    # Only dropping the invalid step with the removed one gets to the minimum.
    done = {"op": "host_complete", "packet": 0, "status": 0, "data": ""}
    steps = [alloc(), send(0, 1), done, send(0, 7)]

    def run(candidate: list[Any]) -> Any:
        allocated = busy = False
        for index, step in enumerate(candidate):
            if step["op"] == "allocate":
                allocated = True
            elif not allocated:
                return Invalid(index)
            elif step["op"] == "host_complete":
                if not busy:
                    return Invalid(index)
                busy = False
            elif busy:
                return ("other", ("READ-A10",))
            elif step["mdl_length"] == 7:
                return SIGNATURE
            else:
                busy = True
        return None

    assert run(steps) == SIGNATURE
    result, _ = minimise(steps, SIGNATURE, run)
    assert result == [alloc(), send(0, 7)]


def test_remaining_steps_are_made_plainer_where_the_failure_allows() -> None:
    big = {"op": "send", "packet": 0, "buffer": {"fill": 9}, "buffer_length": 300}
    done = {"op": "host_complete", "packet": 0, "status": 0xC0000001, "data": "abcd"}
    steps = [alloc(), big, done]

    def run(candidate: list[Any]) -> Any:
        # Fails while the buffer is at least 8 bytes and a completion follows a send.
        ops = [s["op"] for s in candidate]
        if "send" in ops and "host_complete" in ops and candidate[1].get("buffer_length", 0) >= 8:
            return SIGNATURE
        return None

    result, _ = minimise(steps, SIGNATURE, run)
    assert result[1] == {"op": "send", "packet": 0, "buffer": {"fill": 0}, "buffer_length": 8}
    assert result[2] == {"op": "host_complete", "packet": 0, "status": 0, "data": ""}
    assert list(simpler({"op": "open", "channel": 0})) == []


def test_the_same_failure_without_a_busy_free_names_the_rest_alone() -> None:
    led = ("conformance", ("READ-A10", "READ-A12", "SEED-WAIT"))
    assert same(("conformance", ("READ-A12", "SEED-WAIT")), led)
    assert same(led, led)
    assert not same(("conformance", ("READ-A12",)), led)
    assert not same(("conformance", ("READ-A12", "SEED-WAIT")), SIGNATURE)
    assert not same(Invalid(0), SIGNATURE) and not same(None, SIGNATURE)


# ---- merging sends and removing a take with the send it took --------------------------------


def filled(packet: int, length: int) -> dict[str, Any]:
    return {"op": "send", "packet": packet, "buffer": {"fill": 3}, "buffer_length": length}


def take() -> dict[str, Any]:
    return {"op": "host_take", "channel": 0}


def ring_of(length: int) -> int:
    """A stand-in for the spec's size: 32 bytes of header, the buffer padded to 8, a trailer."""
    return 32 + -(-length // 8) * 8 + 8


def size(step: Any) -> int | None:
    return ring_of(step["buffer_length"]) if step.get("op") == "send" else None


def test_a_merged_send_moves_its_ring_bytes_onto_the_nearest_send_before_it() -> None:
    steps = [alloc(), filled(0, 10), alloc(), filled(1, 24), take()]
    assert merged(steps, 3, size) == [alloc(), filled(0, 10 + ring_of(24)), alloc(), take()]
    # Padding stays: 10 pads to 16, so the merged packet is the sum of the two.
    assert ring_of(10 + ring_of(24)) == ring_of(10) + ring_of(24)
    assert merged(steps, 1, size) is None  # no send before it
    assert merged(steps, 4, size) is None  # not a send
    explicit = [alloc(), {**filled(0, 2), "buffer": "abcd"}, filled(0, 8)]
    assert merged(explicit, 2, size) is None  # bytes given one by one are not invented


def test_a_take_goes_with_the_send_it_took_in_ring_order() -> None:
    steps = [alloc(), alloc(), filled(0, 8), filled(1, 16), take(), take()]
    assert untaken(steps, 4, size) == [alloc(), alloc(), filled(1, 16), take()]
    assert untaken(steps, 5, size) == [alloc(), alloc(), filled(0, 8), take()]
    assert untaken([alloc(), take(), filled(0, 8)], 1, size) is None  # nothing to take yet
    on_other_channel = [alloc(), {"op": "allocate", "channel": 1}, filled(1, 8), take()]
    assert untaken(on_other_channel, 3, size) is None


def test_a_failure_that_needs_a_ring_filled_to_the_byte_shrinks_to_one_send() -> None:
    # The "target" fails when the ring holds exactly 512 bytes: no single deletion keeps that.
    def run(candidate: list[Any]) -> Any:
        held: list[int] = []
        allocated = 0
        for step in candidate:
            if step["op"] == "allocate":
                allocated += 1
            elif step["op"] == "host_take":
                if held:
                    held.pop(0)
            elif step["packet"] >= allocated:
                return Invalid(candidate.index(step))
            else:
                held.append(ring_of(step["buffer_length"]))
                if sum(held) == 512:
                    return SIGNATURE
        return None

    last = 512 - ring_of(100) - ring_of(60) - ring_of(0)  # with sends 1 and 2: 512 bytes
    steps = [alloc(), filled(0, 0), take(), alloc(), filled(1, 100), alloc(),
             filled(2, 60), alloc(), filled(3, last)]
    assert run(steps) == SIGNATURE
    # Deletions alone keep every send that fills the ring: three packets.
    assert len(minimise(steps, SIGNATURE, run)[0]) == 6
    result, _ = minimise(steps, SIGNATURE, run, size=size)
    assert [step["op"] for step in result] == ["allocate", "send"]
    assert ring_of(result[1]["buffer_length"]) == 512
