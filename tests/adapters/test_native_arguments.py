"""Bad arguments to the native adapter are refused where they enter, with a message saying what
was wrong: the resolver's options (a usage error, exit 2, on the command line), the public
constructors, and the worker's replies (a malformed one is a crash of the target, never an
exception from inside the adapter)."""

from __future__ import annotations

import math
import os
import pickle
import struct
from pathlib import Path

import pytest

from vmbspec.adapters.native import IsolatedTarget, NativeTarget, TargetError, protocol
from vmbspec.conformance.cli import main
from vmbspec.conformance.targets import UnknownTarget, resolve_target

BAD_TIMEOUTS = [math.inf, -math.inf, math.nan, 0, -1, 0.0, 86_400.5, 1e300, True, "5", [5]]


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
@pytest.mark.parametrize("spec", ["rust", "native"])
def test_the_resolver_refuses_a_timeout_that_is_no_finite_positive_number(
    rust_core: Path, spec: str, timeout: object
) -> None:
    name = "rust" if spec == "rust" else f"native:{rust_core}"
    with pytest.raises(UnknownTarget, match="timeout must be"):
        resolve_target(name, {"isolate": True, "timeout": timeout})


@pytest.mark.parametrize("timeout", [0.001, 1, 2.5, 86_400])
def test_the_resolver_takes_a_sane_timeout(rust_core: Path, timeout: float) -> None:
    _name, factory = resolve_target(f"native:{rust_core}", {"timeout": timeout})
    target = factory()
    target.close()
    assert target.timeout == timeout


@pytest.mark.parametrize("isolate", ["yes", 1, 0, "false", [True]], ids=repr)
def test_the_resolver_refuses_an_isolate_that_is_no_boolean(
    rust_core: Path, isolate: object
) -> None:
    with pytest.raises(UnknownTarget, match="isolate option must be"):
        resolve_target(f"native:{rust_core}", {"isolate": isolate})


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_check_with_an_impossible_timeout_is_a_usage_error(
    rust_core: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command line may refuse the value itself (argparse exits) or leave it to the resolver.
    try:
        status = main(["check", "--target", f"native:{rust_core}", "--timeout", value,
                       "--examples", "0", "--quiet", "--no-proofs"])
    except SystemExit as exit_:
        status = exit_.code
    captured = capsys.readouterr()
    assert status == 2, captured.out + captured.err
    assert "timeout" in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({"timeout": math.inf}, ValueError, "timeout must be a finite"),
        ({"timeout": math.nan}, ValueError, "timeout must be a finite"),
        ({"timeout": 0}, ValueError, "timeout must be a finite"),
        ({"timeout": "10"}, TypeError, "timeout must be a number"),
        ({"start_timeout": -5}, ValueError, "start_timeout must be a finite"),
        ({"shared": "no"}, TypeError, "shared must be True or False"),
        ({"name": 42}, TypeError, "name must be a str"),
        ({"capabilities": "ring-bytes"}, TypeError, "capabilities must be a set of str"),
        ({"capabilities": {1, 2}}, TypeError, "capabilities must be a set of str"),
    ],
)
def test_isolated_target_refuses_bad_arguments_at_construction(
    rust_core: Path, arguments: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        IsolatedTarget(rust_core, **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", [None, 42, b"/lib.so", ""], ids=repr)
def test_the_constructors_refuse_a_path_that_is_no_path(path: object) -> None:
    for make in (IsolatedTarget, NativeTarget):
        with pytest.raises((TypeError, ValueError), match="library path must be"):
            make(path)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": b"x"}, "name must be a str"),
        ({"capabilities": None}, "capabilities must be a set of str"),
        ({"library": "libc.so.6"}, "library must be a ctypes.CDLL"),
    ],
)
def test_native_target_refuses_bad_arguments_at_construction(
    rust_core: Path, arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        NativeTarget(rust_core, **arguments)  # type: ignore[arg-type]


# ---- the worker's replies -------------------------------------------------------------------


def _pipe_with(data: bytes) -> int:
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    return read


def _framed(payload: bytes) -> bytes:
    return struct.pack("<I", len(payload)) + payload


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(struct.pack("<I", 0xFFFF_FFFF), id="4-GiB-length"),
        pytest.param(_framed(b"\x80\x05garbage"), id="garbage"),
        pytest.param(_framed(pickle.dumps(os.system)), id="names-a-function"),
        pytest.param(_framed(pickle.dumps(TargetError("x"))), id="names-a-class"),
    ],
)
def test_a_reply_too_long_or_not_plain_values_is_a_protocol_error(data: bytes) -> None:
    fd = _pipe_with(data)
    try:
        with pytest.raises(protocol.ProtocolError):
            protocol.read_message(fd, None, protocol.MAX_REPLY_BYTES)
    finally:
        os.close(fd)


def test_a_plain_reply_is_read() -> None:
    fd = _pipe_with(_framed(pickle.dumps(("ok", [(1, 2, b"x")]))))
    try:
        assert protocol.read_message(fd, None, protocol.MAX_REPLY_BYTES) == (
            True, ("ok", [(1, 2, b"x")])
        )
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("method", "value"),
    [
        ("create_channel", 0),
        ("create_channel", "0x10"),
        ("allocate_packet", -1),
        ("send_with_external_mdl", 2**32),
        ("host_take_packet", b""),
        ("completions", [(1, 2)]),
        ("completions", [(1, 2**32, b"")]),
        ("ring_bytes", None),
        ("open_channel", 1),
    ],
)
def test_a_result_of_the_wrong_kind_is_a_protocol_error(method: str, value: object) -> None:
    with pytest.raises(protocol.ProtocolError, match=method):
        protocol.check_result(method, value)


@pytest.mark.parametrize(
    "reply", ["ok", ("ok",), ("error", "text"), ("error", ("A", 1)), ("impossible", 3), None]
)
def test_a_reply_of_the_wrong_shape_is_a_protocol_error(reply: object) -> None:
    with pytest.raises(protocol.ProtocolError, match="wrong shape"):
        protocol.unpack_reply(reply)


@pytest.mark.parametrize("name", ["UnicodeDecodeError", "SystemExit", "MemoryError", "Nonsense"])
def test_an_unexpected_worker_exception_becomes_a_target_error(name: str) -> None:
    rebuilt = protocol.rebuild_error(name, "what it said")
    assert isinstance(rebuilt, TargetError)
    assert name in str(rebuilt) and "what it said" in str(rebuilt)
