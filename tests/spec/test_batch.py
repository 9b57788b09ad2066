"""vmbspec.spec.batch: the NumPy evaluation of spec.arith agrees with spec.rules.evaluate_send.

Random samples of single calls on a fresh idle packet of an open channel (the sweep's
context), drawn around the page and u32 boundaries, are evaluated both ways and compared
outcome by outcome: which statuses conform and, for an accepted call, the packet summary.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from vmbspec.spec.arith import PY, round_to_pages
from vmbspec.spec.batch import NpArith, batch_from_calls, batch_supported, evaluate_batch
from vmbspec.spec.call import SendCall
from vmbspec.spec.constants import NtStatus, PacketType
from vmbspec.spec.errors import ArithmeticWrap, InvalidValue
from vmbspec.spec.mdl import MdlChain, MdlSegment
from vmbspec.spec.readings import PROFILES, Profile
from vmbspec.spec.rules import Accepted, Rejected, SendContext, evaluate_send

RING = 0x4000
U32 = 0xFFFF_FFFF
AROUND = (0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2001, 0x3000)


def _value(rng: random.Random, anchors: list[int]) -> int:
    choice = rng.random()
    if choice < 0.6:
        base = rng.choice(anchors)
        return min(U32, max(0, base + rng.choice((-1, 0, 0, 1))))
    if choice < 0.8:
        return min(U32, (1 << 32) - rng.choice(anchors) + rng.choice((-1, 0, 1)))
    return rng.randrange(0, 0x4000)


def _random_call(rng: random.Random, chain_length: int) -> tuple[SendCall, tuple]:
    segments = []
    for index in range(chain_length):
        bo = rng.choice((0, 1, 8, 0x7FF, 0xFF8, 0xFFF, rng.randrange(0x1000)))
        bc = max(0, rng.choice(AROUND) - rng.choice((0, bo)) + rng.choice((-1, 0, 1)))
        segments.append(MdlSegment.with_pages(bo, bc, 0x100000 * (index + 1)))
    chain = MdlChain(tuple(segments)) if segments else None
    anchors = [0]
    if chain is not None:
        first = chain.first
        anchors += [chain.byte_count, first.byte_count,
                    round_to_pages(PY, first.byte_count),
                    round_to_pages(PY, first.byte_offset + first.byte_count) - first.byte_offset]
    if chain is None and rng.random() < 0.7:
        offset = length = 0
    else:
        offset, length = _value(rng, anchors), _value(rng, anchors)
    flags = rng.randrange(8) | (rng.choice((0, 0, 0, 0x8, 0x100)))
    buffer_length = rng.choice((0, 0, 4, 16, 0x3FF0, 0x4000))
    buffer = None if rng.random() < 0.2 else bytes(buffer_length)
    if buffer is None and rng.random() < 0.5:
        buffer_length = 0
    call = SendCall(buffer, buffer_length, chain, offset, length, flags)
    shape = (None if chain is None else tuple((s.byte_offset, s.byte_count) for s in segments),
             offset, length, flags, buffer is None, buffer_length)
    return call, shape


def _compare(calls: list[SendCall], shapes: list[tuple], profile: Profile) -> int:
    verdicts = evaluate_batch(batch_from_calls(shapes), RING, profile)
    context = SendContext.fresh(RING)
    accepted_seen = 0
    for lane, call in enumerate(calls):
        verdict = evaluate_send(call, context, profile)
        where = f"lane {lane}: {call.describe()} under {profile.name}: {verdict.describe()}"
        accepted = verdict.accepted
        rejections = [o for o in verdict.alternatives if isinstance(o, Rejected)]
        assert bool(verdicts.accept[lane]) == (accepted is not None), where
        assert bool(verdicts.reject[lane]) == bool(rejections), where
        overflow = any(r.statuses.allows(NtStatus.STATUS_BUFFER_OVERFLOW) for r in rejections)
        assert bool(verdicts.overflow_ok[lane]) == overflow, where
        if accepted is None:
            continue
        accepted_seen += 1
        assert isinstance(accepted, Accepted)
        assert verdicts.packet_type(lane) is accepted.packet_type, where
        assert int(verdicts.total[lane]) == accepted.total, where
        assert int(verdicts.data_offset[lane]) == accepted.data_offset, where
        want_flag = -1 if accepted.completion_requested is None else int(
            accepted.completion_requested)
        assert int(verdicts.completion_requested[lane]) == want_flag, where
        assert bool(verdicts.completes_at_send[lane]) == (not accepted.waits_for_completion)
        got = []
        assert call.mdl is not None or not accepted.ranges
        for term in verdicts.ranges:
            if not term.present[lane]:
                continue
            assert call.mdl is not None
            pfns = call.mdl.segments[term.mdl_index].pfns
            first, count = int(term.first_pfn[lane]), int(term.pfn_count[lane])
            got.append((term.mdl_index, int(term.byte_offset[lane]), int(term.byte_count[lane]),
                        tuple(pfns[i] if i < len(pfns) else None
                              for i in range(first, first + count))))
        want = [(r.mdl_index, r.byte_offset, r.byte_count, r.pfns) for r in accepted.ranges]
        assert got == want, where
        assert bool(verdicts.past_array[lane]) == any(None in r.pfns for r in accepted.ranges)
    return accepted_seen


@pytest.mark.parametrize("chain_length", [0, 1, 2, 3])
@pytest.mark.parametrize("profile_name", sorted(PROFILES))
def test_batch_equals_evaluate_send(chain_length: int, profile_name: str) -> None:
    profile = PROFILES[profile_name]
    if batch_supported(profile, chain_length) is not None:
        pytest.skip(batch_supported(profile, chain_length))
    rng = random.Random(f"{profile_name}:{chain_length}")
    drawn = [_random_call(rng, chain_length) for _ in range(300)]
    accepted = _compare([c for c, _ in drawn], [s for _, s in drawn], profile)
    assert accepted > 0  # the sample reaches accepted calls, not only rejections


@pytest.mark.parametrize("override", ["A1=b", "A1=c", "A1=d", "A3=d", "A4=c", "A6=b",
                                      "A9=no-range", "A7=ignore", "A2=b", "A5=b", "A5=c",
                                      "A2=b+A9=no-range", "A2=b+A1=c", "A5=b+A1=d"])
def test_batch_equals_evaluate_send_other_readings(override: str) -> None:
    profile = Profile.default()
    for choice in override.split("+"):
        reading, option = choice.split("=")
        profile = profile.with_choice(reading, option)
    for chain_length in (0, 1, 2):
        rng = random.Random(f"{override}:{chain_length}")
        drawn = [_random_call(rng, chain_length) for _ in range(200)]
        _compare([c for c, _ in drawn], [s for _, s in drawn], profile)


def test_unsupported_profiles_are_refused() -> None:
    exact = PROFILES["exact-status"]
    assert batch_supported(exact, 1) is not None
    shapes = [(((0, 1),), 0, 0, 1, True, 0)]
    with pytest.raises(InvalidValue, match="READ-A8"):
        evaluate_batch(batch_from_calls(shapes), RING, exact)
    # READ-A2 and READ-A5 are spec.arith's (ArithReadings.origin, .chain_use): evaluated here.
    assert batch_supported(Profile.default().with_choice("A2", "b"), 1) is None
    assert batch_supported(PROFILES["chain-first-mdl"], 2) is None


def test_a_wrap_is_raised_only_in_live_lanes() -> None:
    live = np.array([True, False])
    a = NpArith(live)
    big = np.array([1, 0xFFFF_FFFF_FFFF_FFFF], dtype=np.uint64)
    assert list(a.add(big, a.lit(1))) == [2, 0]  # lane 1 wraps, but it is not live
    with pytest.raises(ArithmeticWrap, match="lane 1"):
        NpArith(np.array([True, True])).add(big, a.lit(1))
    small = np.array([5, 0], dtype=np.uint64)
    # cases: the subtract is evaluated only where its guard holds.
    chosen = a.cases(a.ule(a.lit(1), small), lambda: a.sub(small, a.lit(1)), lambda: a.lit(0))
    assert list(chosen) == [4, 0]
    with pytest.raises(ArithmeticWrap):
        NpArith(np.array([True, True])).sub(small, a.lit(1))


def test_packet_types_of_null_mdl() -> None:
    verdicts = evaluate_batch(batch_from_calls([(None, 0, 0, 1, False, 4),
                                                (None, 1, 0, 1, False, 4)]), RING,
                              Profile.default())
    assert verdicts.packet_type(0) is PacketType.DATA_INBAND
    assert list(verdicts.accept) == [True, False]
