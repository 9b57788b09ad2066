"""Tests of spec.call: SendCall validates every argument on construction."""

from __future__ import annotations

import pytest

from vmbspec.spec.call import SendCall
from vmbspec.spec.constants import SendFlags
from vmbspec.spec.errors import InvalidValue
from vmbspec.spec.mdl import MdlChain, MdlSegment

UINT32_FIELDS = {
    "buffer_length": "BufferLength",
    "mdl_offset": "MdlOffset",
    "mdl_length": "MdlLength",
    "flags": "Flags",
}


def make(**overrides: object) -> SendCall:
    args: dict[str, object] = {
        "buffer": None,
        "buffer_length": 0,
        "mdl": MdlChain.of([MdlSegment.with_pages(0, 0x1000)]),
        "mdl_offset": 0,
        "mdl_length": 0,
        "flags": 1,
    }
    args.update(overrides)
    return SendCall(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", UINT32_FIELDS)
@pytest.mark.parametrize("value", [0, 1, 0xFFFF_FFFF])
def test_uint32_fields_accept_their_whole_range(field: str, value: int) -> None:
    call = make(**{field: value})
    assert getattr(call, field) == value


@pytest.mark.parametrize("field", UINT32_FIELDS)
@pytest.mark.parametrize("value", [-1, 2**32, 2**64])
def test_uint32_fields_reject_values_outside_uint32_naming_the_field(
    field: str, value: int
) -> None:
    with pytest.raises(InvalidValue, match=UINT32_FIELDS[field]):
        make(**{field: value})


@pytest.mark.parametrize("field", UINT32_FIELDS)
@pytest.mark.parametrize("value", [True, False, 1.0, "1", None])
def test_uint32_fields_reject_non_ints_including_bool(field: str, value: object) -> None:
    with pytest.raises(TypeError, match=UINT32_FIELDS[field]):
        make(**{field: value})


def test_buffer_length_must_match_the_buffer() -> None:
    assert make(buffer=b"abc", buffer_length=3).buffer == b"abc"
    with pytest.raises(InvalidValue, match="BufferLength 4"):
        make(buffer=b"abc", buffer_length=4)
    with pytest.raises(InvalidValue, match="BufferLength 2"):
        make(buffer=b"abc", buffer_length=2)


def test_null_buffer_may_have_any_length() -> None:
    # Buffer NULL with BufferLength > 0 is a rule violation (READ-A14), not a malformed value.
    assert make(buffer=None, buffer_length=5).buffer_length == 5


@pytest.mark.parametrize("buffer", [bytearray(b"ab"), "ab", [1, 2], memoryview(b"ab")])
def test_buffer_must_be_bytes_or_none(buffer: object) -> None:
    with pytest.raises(TypeError, match="Buffer"):
        make(buffer=buffer, buffer_length=2)


@pytest.mark.parametrize(
    "mdl", [MdlSegment.with_pages(0, 1), (MdlSegment.with_pages(0, 1),), "mdl"]
)
def test_mdl_must_be_a_chain_or_none(mdl: object) -> None:
    with pytest.raises(TypeError, match="ExternalDataMdl"):
        make(mdl=mdl)


def test_null_mdl_is_allowed() -> None:
    assert make(mdl=None).mdl is None


def test_has_reads_single_flags() -> None:
    call = make(flags=SendFlags.WAIT_FOR_COMPLETION | SendFlags.PAGED_BUFFER)
    assert call.has(SendFlags.WAIT_FOR_COMPLETION)
    assert call.has(SendFlags.PAGED_BUFFER)
    assert not call.has(SendFlags.FORCE_MDL_LENGTH)


def test_describe_renders_the_c_call() -> None:
    text = make(buffer=b"ab", buffer_length=2, mdl_offset=0x10, flags=3).describe()
    assert text == (
        "VmbPacketSendWithExternalMdl(Packet, <2 bytes>, 0x2, "
        "[{ByteOffset=0x0, ByteCount=0x1000}], 0x10, 0x0, 0x3)"
    )
    assert "NULL, 0x0, NULL" in make(mdl=None).describe()
