"""The spec's public constructors and functions, given values of any type.

Whatever a caller passes, the spec either builds the value or raises
:class:`~spec.errors.InvalidValue` (a ``SpecError``; :class:`~spec.errors.InvalidType` for a value
of the wrong type, also a ``TypeError``) naming the argument: never an ``AttributeError`` deep
inside, never a silent verdict on a nonsense value. The campaign at the end feeds arbitrary
values to each; ``bench/malformed_replay.py`` runs the same generators
(:data:`API_CALLS`, :func:`check_api_call`) for 10,000 inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbspec.spec.call import SendCall
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.errors import InvalidValue, SpecError
from vmbspec.spec.lifecycle import ChannelState, PacketState
from vmbspec.spec.mdl import (
    ADDRESS_AND_SIZE_TO_SPAN_PAGES,
    BYTE_OFFSET,
    ROUND_TO_PAGES,
    InvalidType,
    MdlChain,
    MdlSegment,
)
from vmbspec.spec.readings import PROFILES, READING_IDS, Profile, parse_profile
from vmbspec.spec.rules import SendContext, evaluate_send

CHAIN = MdlChain.of([MdlSegment.with_pages(0, 0x2000)])
CALL = SendCall(b"ab", 2, CHAIN, 0, 0, 1)
CONTEXT = SendContext.fresh()

# ---------------------------------------------------------------------------------------------
# The reviewer's examples (issue 9)
# ---------------------------------------------------------------------------------------------


def test_send_context_with_state_names_instead_of_states_names_the_argument() -> None:
    with pytest.raises(InvalidValue, match="packet is a PacketState, not str"):
        SendContext("idle", "open", 4096, 4096)  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match="channel is a ChannelState, not str"):
        SendContext(PacketState.IDLE, "open", 4096, 4096)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [-1, 0, 1.5, 4095, 5000, 2**32, 2**5000, True, None, "4096"])
def test_send_context_ring_size_is_whole_pages_and_a_uint32(size: Any) -> None:
    with pytest.raises(InvalidValue, match="ring_data_size"):
        SendContext(PacketState.IDLE, ChannelState.OPEN, size, 0)
    with pytest.raises(InvalidValue, match="ring_data_size"):
        SendContext.fresh(size)


@pytest.mark.parametrize("free", [-1, 0x1001, 1.0, None, True])
def test_send_context_ring_free_is_within_the_ring(free: Any) -> None:
    with pytest.raises(InvalidValue, match="ring_free"):
        SendContext(PacketState.IDLE, ChannelState.OPEN, 0x1000, free)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_send_context_flags_are_bools(value: Any) -> None:
    with pytest.raises(InvalidType, match="queue_empty"):
        SendContext(PacketState.IDLE, ChannelState.OPEN, 0x1000, 0x1000, value)
    with pytest.raises(InvalidType, match="open_channel"):
        SendContext.fresh(0x1000, open_channel=value)


def test_a_valid_context_still_builds() -> None:
    context = SendContext(PacketState.COMPLETED, ChannelState.DISABLED, 2**32 - 4096, 0, False)
    assert context.ring_free == 0
    assert SendContext.fresh(4096, open_channel=False).channel is ChannelState.NOT_OPEN


@pytest.mark.parametrize(
    ("name", "choices", "message"),
    [
        ("x", None, "choices are a mapping"),
        ("x", [("A4", "b")], "choices are a mapping"),
        ("x", {4: "b"}, "both strings"),
        ("x", {"A4": ["b"]}, "both strings"),
        ("x", {"A4": None}, "both strings"),
        (None, {}, "name is a non-empty string"),
        ("", {}, "name is a non-empty string"),
        (7, {}, "name is a non-empty string"),
    ],
)
def test_profile_arguments_are_checked(name: Any, choices: Any, message: str) -> None:
    with pytest.raises(InvalidType, match=message):
        Profile(name, choices)


@pytest.mark.parametrize("text", [None, 7, b"default", ["default"]])
def test_parse_profile_takes_a_string(text: Any) -> None:
    with pytest.raises(InvalidType, match="profile is written as a string"):
        parse_profile(text)


@pytest.mark.parametrize(("reading", "option"), [(["A4"], "b"), ("A4", None), (4, "b")])
def test_with_choice_takes_strings(reading: Any, option: Any) -> None:
    with pytest.raises(InvalidType, match="with_choice"):
        Profile.default().with_choice(reading, option)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("call", CONTEXT, Profile.default()), "call is a SendCall"),
        ((CALL, "context", Profile.default()), "context is a SendContext"),
        ((CALL, CONTEXT, "default"), "profile is a Profile"),
    ],
)
def test_evaluate_send_checks_its_arguments(args: tuple[Any, ...], name: str) -> None:
    with pytest.raises(InvalidType, match=name):
        evaluate_send(*args)


def test_wrong_types_are_both_invalid_value_and_type_error() -> None:
    # InvalidValue for "every caller mistake is a SpecError"; TypeError by Python convention.
    assert issubclass(InvalidType, InvalidValue) and issubclass(InvalidType, TypeError)
    with pytest.raises(InvalidType, match="BufferLength"):
        SendCall(None, "2", None, 0, 0, 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidType, match=r"MdlChain\.of takes an iterable"):
        MdlChain.of(5)  # type: ignore[arg-type]
    with pytest.raises(InvalidType, match="first_pfn"):
        MdlSegment.with_pages(0, 1, "x")  # type: ignore[arg-type]


def test_a_huge_integer_is_named_by_its_size_not_printed() -> None:
    # Python refuses to print an int of more than 4300 digits (ValueError): the message must
    # not try.
    with pytest.raises(InvalidValue, match=r"an integer of \d+ bits"):
        SendCall(None, 10**5000, None, 0, 0, 1)
    with pytest.raises(InvalidValue, match=r"an integer of \d+ bits"):
        MdlSegment(0, 10**5000, ())
    with pytest.raises(InvalidValue, match=r"an integer of \d+ bits"):
        SendContext(PacketState.IDLE, ChannelState.OPEN, 4096, -(10**5000))


# ---------------------------------------------------------------------------------------------
# The campaign: arbitrary values into every public constructor
# ---------------------------------------------------------------------------------------------

HUGE = 10**5000
anything = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.just(HUGE), st.just(-HUGE),
    st.floats(), st.just(math.nan), st.text(max_size=12), st.binary(max_size=12),
    st.builds(bytearray, st.binary(max_size=4)), st.lists(st.integers(), max_size=3),
    st.tuples(st.integers(), st.integers()), st.dictionaries(st.text(max_size=3),
                                                              st.text(max_size=3), max_size=3),
    st.sampled_from(PacketState), st.sampled_from(ChannelState), st.just(CHAIN),
    st.just(CHAIN.first), st.just(CALL), st.just(CONTEXT), st.sampled_from(list(PROFILES.values())),
    st.just(object()), st.just(st),
)
#: Values that can be a dict key.
hashable = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                     st.binary(max_size=4), st.tuples(st.integers()), st.sampled_from(PacketState))
u32s = st.one_of(st.sampled_from([0, 1, 0xFFF, 0x1000, 2**32 - 1, 2**32]), st.integers(-1, 2**33))


def plausible(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a value of the right type (so later checks are reached), sometimes anything.
    (``st.one_of`` would flatten ``anything`` and pick among its many branches equally.)"""
    return st.integers(0, 3).flatmap(lambda pick: anything if pick == 0 else valid)


segments_ = st.builds(MdlSegment.with_pages, st.integers(0, 0xFFF), st.integers(0, 0x5000))
chains = st.builds(MdlChain.of, st.lists(segments_, min_size=1, max_size=3))
pfn_tuples = st.lists(st.integers(-1, 2**64), max_size=4).map(tuple)
readings_ = st.sampled_from([f"A{n}" for n in range(0, 16)])
#: Every (reading, option) pair the catalog allows.
VALID_CHOICES = sorted(
    (key, option) for key in READING_IDS for option in CATALOG.reading(key).options or {}
)
valid_choices = st.sampled_from(VALID_CHOICES)
options = st.sampled_from(["a", "b", "c", "d", "exact", "any-error", "ignore", "reject",
                           "at-call", "cancel", "no-range", "z"])
profile_texts = st.one_of(
    st.sampled_from(list(PROFILES)),
    st.builds(lambda n, r, o: f"{n}+{r}={o}", st.sampled_from(list(PROFILES)), readings_, options),
    st.text(max_size=20),
)
contexts = st.builds(SendContext.fresh, st.sampled_from([4096, 0x10000]))

#: Each public constructor or function of spec.call, spec.mdl, spec.readings and spec.rules,
#: with a strategy for its arguments.
API_CALLS: dict[str, tuple[Callable[..., Any], st.SearchStrategy[tuple[Any, ...]]]] = {
    "SendCall": (SendCall, st.tuples(
        plausible(st.none() | st.binary(max_size=8)), plausible(u32s),
        plausible(st.none() | chains), plausible(u32s), plausible(u32s), plausible(u32s))),
    "MdlSegment": (MdlSegment, st.tuples(plausible(st.integers(-1, 0x1000)), plausible(u32s),
                                         plausible(pfn_tuples))),
    "MdlSegment.with_pages": (MdlSegment.with_pages, st.tuples(
        plausible(st.integers(-1, 0x1000)), plausible(st.integers(-1, 0x10000)),
        plausible(st.integers(-1, 2**64)))),
    "MdlChain": (MdlChain, st.tuples(plausible(st.lists(segments_, max_size=2).map(tuple)))),
    "MdlChain.of": (MdlChain.of, st.tuples(plausible(
        st.lists(segments_, min_size=1, max_size=2) | st.lists(plausible(segments_),
                                                                max_size=2)))),
    "BYTE_OFFSET": (BYTE_OFFSET, st.tuples(plausible(st.integers(-1, 2**65)))),
    "ROUND_TO_PAGES": (ROUND_TO_PAGES, st.tuples(plausible(u32s))),
    "ADDRESS_AND_SIZE_TO_SPAN_PAGES": (ADDRESS_AND_SIZE_TO_SPAN_PAGES, st.tuples(
        plausible(st.integers(-1, 2**65)), plausible(u32s))),
    "SendContext": (SendContext, st.tuples(
        plausible(st.sampled_from(PacketState)), plausible(st.sampled_from(ChannelState)),
        plausible(st.sampled_from([4096, 8192, 0x10000]) | u32s), plausible(u32s),
        plausible(st.booleans()))),
    "SendContext.fresh": (SendContext.fresh, st.tuples(
        plausible(st.sampled_from([4096, 0x10000]) | u32s))),
    "Profile": (Profile, st.tuples(
        plausible(st.text(max_size=8)),
        plausible(st.lists(valid_choices, max_size=3).map(dict)
                  | st.dictionaries(readings_ | hashable, plausible(options), max_size=3)))),
    "parse_profile": (parse_profile, st.tuples(plausible(profile_texts))),
    "Profile.with_choice": (Profile.default().with_choice, st.one_of(
        valid_choices, st.tuples(plausible(readings_), plausible(options)))),
    "evaluate_send": (evaluate_send, st.tuples(
        plausible(st.just(CALL)), plausible(contexts),
        plausible(st.sampled_from(list(PROFILES.values()))))),
}

api_inputs = st.sampled_from(sorted(API_CALLS)).flatmap(
    lambda name: st.tuples(st.just(name), API_CALLS[name][1])
)


def check_api_call(name: str, args: tuple[Any, ...]) -> str:
    """Call one API with ``args``: it returns, or raises a SpecError with a one-line message."""
    function = API_CALLS[name][0]
    try:
        function(*args)
    except SpecError as error:
        message = str(error)
        assert message and "\n" not in message, message
        return "refused"
    return "built"


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(api_inputs)
def test_campaign_any_value_builds_or_raises_a_spec_error(
    case: tuple[str, tuple[Any, ...]],
) -> None:
    check_api_call(*case)


@pytest.mark.parametrize("name", sorted(API_CALLS))
def test_campaign_reaches_both_outcomes_for_each_api(name: str) -> None:
    seen: set[str] = set()

    @settings(max_examples=60, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(API_CALLS[name][1])
    def run(args: tuple[Any, ...]) -> None:
        seen.add(check_api_call(name, args))

    run()
    assert seen == {"built", "refused"}
