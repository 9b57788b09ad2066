"""The step-deletion pass: what it keeps, what it removes, and how it renumbers packets."""

from __future__ import annotations

from typing import Any

from vmbspec.conformance.minimise import Invalid, minimise, same, simpler, without

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
