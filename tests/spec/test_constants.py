"""Tests of spec.constants: the NTSTATUS macros and the values the reference tabulates."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vmbspec.spec.constants import (
    NT_ERROR,
    NT_SUCCESS,
    VMBUS_CHANNEL_FORMAT_FLAGS,
    NtStatus,
    SendFlags,
    status_name,
)

# Reference §2, copied by hand: name, value, NT_SUCCESS, NT_ERROR.
REFERENCE_STATUSES = [
    ("STATUS_SUCCESS", 0x00000000, True, False),
    ("STATUS_PENDING", 0x00000103, True, False),
    ("STATUS_BUFFER_OVERFLOW", 0x80000005, False, False),  # a warning: neither
    ("STATUS_UNSUCCESSFUL", 0xC0000001, False, True),
    ("STATUS_INVALID_PARAMETER", 0xC000000D, False, True),
    ("STATUS_INSUFFICIENT_RESOURCES", 0xC000009A, False, True),
    ("STATUS_NOT_SUPPORTED", 0xC00000BB, False, True),
    ("STATUS_INVALID_PARAMETER_1", 0xC00000EF, False, True),
    ("STATUS_INVALID_PARAMETER_2", 0xC00000F0, False, True),
    ("STATUS_INVALID_PARAMETER_3", 0xC00000F1, False, True),
    ("STATUS_CANCELLED", 0xC0000120, False, True),
    ("STATUS_INVALID_DEVICE_STATE", 0xC0000184, False, True),
    ("STATUS_DEVICE_REMOVED", 0xC00002B6, False, True),
]


@pytest.mark.parametrize(("name", "value", "success", "error"), REFERENCE_STATUSES)
def test_ntstatus_values_and_severity_match_the_reference(
    name: str, value: int, success: bool, error: bool
) -> None:
    assert NtStatus[name] == value
    assert NT_SUCCESS(value) is success
    assert NT_ERROR(value) is error


def test_every_named_status_is_in_the_reference_table() -> None:
    assert {s.name for s in NtStatus} == {name for name, *_ in REFERENCE_STATUSES}


def test_buffer_overflow_is_neither_success_nor_error() -> None:
    status = NtStatus.STATUS_BUFFER_OVERFLOW
    assert not NT_SUCCESS(status)
    assert not NT_ERROR(status)


@given(st.integers(0, 0xFFFF_FFFF))
def test_nt_success_is_the_sign_of_the_int32(status: int) -> None:
    (signed,) = struct.unpack("<i", struct.pack("<I", status))
    assert NT_SUCCESS(status) is (signed >= 0)


@given(st.integers(0, 0xFFFF_FFFF))
def test_nt_error_is_severity_three_and_excludes_success(status: int) -> None:
    severity = (status & 0xC000_0000) // 0x4000_0000
    assert NT_ERROR(status) is (severity == 3)
    assert not (NT_ERROR(status) and NT_SUCCESS(status))


def test_informational_and_warning_severities_are_neither_success_nor_error_correctly() -> None:
    assert NT_SUCCESS(0x4000_0000) and not NT_ERROR(0x4000_0000)
    assert not NT_SUCCESS(0x8000_0000) and not NT_ERROR(0x8000_0000)
    assert NT_ERROR(0xFFFF_FFFF) and not NT_SUCCESS(0xFFFF_FFFF)


@pytest.mark.parametrize("macro", [NT_SUCCESS, NT_ERROR])
@pytest.mark.parametrize("bad", [-1, 0x1_0000_0000, -0x8000_0000])
def test_ntstatus_macros_reject_values_outside_32_bits(macro, bad: int) -> None:
    with pytest.raises(ValueError, match="32-bit"):
        macro(bad)


@pytest.mark.parametrize("macro", [NT_SUCCESS, NT_ERROR])
@pytest.mark.parametrize("bad", [True, False, "0", 0.0, None, b"\x00"])
def test_ntstatus_macros_reject_non_int_types(macro, bad: object) -> None:
    with pytest.raises(TypeError, match="NTSTATUS is an int"):
        macro(bad)


def test_status_name_names_known_values_and_formats_unknown_ones() -> None:
    assert status_name(0xC0000120) == "STATUS_CANCELLED"
    assert status_name(0) == "STATUS_SUCCESS"
    assert status_name(0xC0001234) == "0xc0001234"


def test_send_flags_match_the_reference_and_the_documented_mask() -> None:
    assert int(SendFlags.WAIT_FOR_COMPLETION) == 0x1
    assert int(SendFlags.FORCE_MDL_LENGTH) == 0x2
    assert int(SendFlags.PAGED_BUFFER) == 0x4
    combined = 0
    for flag in SendFlags:
        combined |= int(flag)
    assert VMBUS_CHANNEL_FORMAT_FLAGS == combined == 0x7
