"""Each rule of ``docs/remote-protocol.md`` the reference agent had to change for, on both of
its built-in backends (the simulator and the Rust core, in process), through
:class:`adapters.remote.server.Session` with requests parsed as the agent parses a line.

Handles (never issued: -32602; issued then freed: the driver's answer), params (absent, ``{}``
or ``null``; unknown ones refused; ``client`` optional), integers (only JSON integer literals),
the send's edge cases, ``host_complete`` for a transaction not awaiting completion, a lost
target after a hang, ``ring_bytes`` only with the capability, ``reads-buffer-late`` never
declared, ``reset`` discarding completions, and backend failures as target errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from vmbspec.adapters.remote import protocol
from vmbspec.adapters.remote.server import Session
from vmbspec.adapters.sim import SimTarget

STATUS_INVALID_DEVICE_STATE = 0xC0000184
WAIT = 1  # VMBUS_CHANNEL_FORMAT_FLAG_WAIT_FOR_COMPLETION


def _rust() -> Any:
    from vmbspec.adapters.native import RustTarget

    return RustTarget()


BACKENDS: dict[str, Callable[[], Any]] = {"sim": SimTarget, "rust": _rust}


class Client:
    """A session driven with request lines, as the agent reads them off the wire."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.session = Session(factory)
        self.next_id = 0
        self.info = self.result("initialize", {"protocol": 1})

    def line(self, text: str) -> dict[str, Any]:
        reply = self.session.handle(protocol.decode_message(text.encode()))
        assert isinstance(reply, dict)
        return reply

    def ask(self, method: str, params: Any = None, *, absent: bool = False) -> dict[str, Any]:
        self.next_id += 1
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if not absent:
            request["params"] = params
        reply = self.line(json.dumps(request))
        assert reply["id"] == self.next_id
        return reply

    def result(self, method: str, params: Any = None) -> Any:
        reply = self.ask(method, params)
        assert "result" in reply, reply
        return reply["result"]

    def error(self, method: str, params: Any = None) -> int:
        reply = self.ask(method, params)
        assert "error" in reply, reply
        return int(reply["error"]["code"])

    def channel(self, size: int = 65536, *, open_it: bool = True) -> int:
        channel = int(self.result("create_channel", {"ring_data_size": size}))
        if open_it:
            self.result("open_channel", {"channel": channel})
        return channel

    def send(self, packet: int, **overrides: Any) -> Any:
        params = {"packet": packet, "buffer": "0102", "buffer_length": 2, "mdl": None,
                  "mdl_offset": 0, "mdl_length": 0, "flags": WAIT, **overrides}
        return self.ask("send_with_external_mdl", params)


@pytest.fixture(params=sorted(BACKENDS))
def client(request: pytest.FixtureRequest) -> Client:
    return Client(BACKENDS[request.param])


# -- handles ------------------------------------------------------------------------------------


def test_a_handle_never_issued_is_invalid_params_for_every_method(client: Client) -> None:
    channel = client.channel()
    packet = client.result("allocate_packet", {"channel": channel})
    never = 77
    assert never not in (channel, packet)
    for method, params in [
        ("open_channel", {"channel": never}),
        ("disable_channel", {"channel": never}),
        ("allocate_packet", {"channel": never}),
        ("host_take_packet", {"channel": never}),
        ("host_complete", {"channel": never, "transaction_id": 1, "status": 0, "data": ""}),
        ("ring_bytes", {"channel": never}),
        ("free_packet", {"packet": never}),
        ("open_channel", {"channel": packet}),  # a packet handle passed as a channel
        ("free_packet", {"packet": channel}),  # and the reverse
    ]:
        reply = client.ask(method, params)
        assert reply["error"]["code"] == protocol.INVALID_PARAMS, (method, reply)
        assert str(params.get("channel", params.get("packet"))) in reply["error"]["message"]
    reply = client.send(999)
    assert reply["error"]["code"] == protocol.INVALID_PARAMS and "999" in (
        reply["error"]["message"])


def test_a_freed_packet_is_still_a_handle_the_driver_answers_for(client: Client) -> None:
    assert "robust-contract-violations" in client.info["capabilities"]
    channel = client.channel()
    packet = client.result("allocate_packet", {"channel": channel})
    assert client.result("free_packet", {"packet": packet}) is None
    assert client.result("free_packet", {"packet": packet}) is None  # again: nothing changes
    assert client.send(packet) == {"jsonrpc": "2.0", "id": client.next_id,
                                   "result": STATUS_INVALID_DEVICE_STATE}
    assert client.result("completions") == []


def test_busy_packets_on_a_robust_target_a_free_is_ignored_a_send_is_a_status(
    client: Client,
) -> None:
    channel = client.channel(open_it=False)  # not open: the send is queued
    packet = client.result("allocate_packet", {"channel": channel})
    assert client.send(packet)["result"] == 0
    assert client.send(packet)["result"] == STATUS_INVALID_DEVICE_STATE  # queued
    assert client.result("free_packet", {"packet": packet}) is None  # ignored
    client.result("open_channel", {"channel": channel})
    taken = bytes.fromhex(client.result("host_take_packet", {"channel": channel}))
    assert client.send(packet)["result"] == STATUS_INVALID_DEVICE_STATE  # in flight
    transaction = int.from_bytes(taken[8:16], "little")
    client.result("host_complete", {"channel": channel, "transaction_id": transaction,
                                    "status": 0, "data": "ab"})
    assert client.result("completions") == [{"packet": packet, "status": 0, "data": "ab"}]


def test_a_disabled_channel_is_never_opened_again(client: Client) -> None:
    channel = client.channel()
    client.result("disable_channel", {"channel": channel})
    assert client.error("open_channel", {"channel": channel}) == protocol.INVALID_PARAMS
    assert client.result("host_take_packet", {"channel": channel}) is None


def test_handles_are_forgotten_and_may_come_again_after_a_reset() -> None:
    client = Client(SimTarget)
    channel = client.channel()
    client.result("reset")
    assert client.error("open_channel", {"channel": channel}) == protocol.INVALID_PARAMS
    assert client.channel() == channel  # the simulator issues 1 again


# -- params and integers ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["completions", "reset", "shutdown"])
def test_params_may_be_absent_empty_or_null_for_methods_without_any(method: str) -> None:
    for how in ("absent", {}, None):
        client = Client(SimTarget)
        reply = client.ask(method, how, absent=how == "absent")
        assert "result" in reply, (how, reply)
    client = Client(SimTarget)
    assert client.error(method, {"x": 1}) == protocol.INVALID_PARAMS
    assert client.error(method, []) == protocol.INVALID_PARAMS


def test_initialize_client_is_optional_and_checked() -> None:
    fresh = Session(SimTarget)
    for params, code in [
        ({"protocol": 1}, None),
        ({"protocol": 1, "client": "by hand"}, None),
        ({"protocol": 1, "client": 5}, protocol.INVALID_PARAMS),
        ({"protocol": 1, "colour": "blue"}, protocol.INVALID_PARAMS),
        ({}, protocol.INVALID_PARAMS),
        (None, protocol.INVALID_PARAMS),
        ({"protocol": 2}, protocol.UNSUPPORTED_VERSION),
    ]:
        reply = fresh.handle({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                              "params": params})
        assert (reply.get("error") or {}).get("code") == code, (params, reply)


@pytest.mark.parametrize("literal", ["4096.0", "1e3", "4.096e3", "true", '"4096"', "[4096]"])
def test_only_json_integer_literals_are_integers(literal: str) -> None:
    client = Client(SimTarget)
    reply = client.line('{"jsonrpc":"2.0","id":5,"method":"create_channel",'
                        f'"params":{{"ring_data_size":{literal}}}}}')
    assert reply["error"]["code"] == protocol.INVALID_PARAMS
    assert "ring_data_size" in reply["error"]["message"]
    reply = Session(SimTarget).handle(protocol.decode_message(
        f'{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocol":{literal}}}}}'
        .replace("4096", "1").replace("4.096e3", "1.0e0").encode()))
    assert reply["error"]["code"] == protocol.INVALID_PARAMS, literal


def test_a_ring_size_is_a_positive_multiple_of_a_page_and_the_rest_is_the_driver_s(
    client: Client,
) -> None:
    for size in (0, 4095, 4097):
        assert client.error("create_channel", {"ring_data_size": size}) == (
            protocol.INVALID_PARAMS)
    # A ring neither backend can make: the target's failure, not the client's mistake.
    assert client.error("create_channel", {"ring_data_size": 0xFFFF_F000}) == (
        protocol.TARGET_ERROR)


# -- the send's parameters --------------------------------------------------------------------


def test_the_send_s_edge_cases(client: Client) -> None:
    channel = client.channel()
    packet = client.result("allocate_packet", {"channel": channel})
    refused = [
        {"buffer": "01", "buffer_length": 2},  # hex shorter than buffer_length
        {"buffer": "01 02"},  # hex is two digits a byte, nothing else
        {"buffer": "0x0102"},
        {"buffer": "010"},
        {"mdl": []},
        {"mdl": [[4096, 1, [5]]]},  # ByteOffset >= 4096
        {"mdl": [[0x10, 0x2000, [5, 6]]]},  # fewer PFNs than the span (3)
        {"mdl": [[0, 0x1000, [5, 6]]]},  # more
    ]
    for overrides in refused:
        reply = client.send(packet, **overrides)
        assert reply["error"]["code"] == protocol.INVALID_PARAMS, (overrides, reply)
    # A buffer longer than buffer_length: the driver is told buffer_length.
    assert client.send(packet, buffer="010203", buffer_length=2)["result"] == 0
    taken = bytes.fromhex(client.result("host_take_packet", {"channel": channel}))
    assert taken[-8:] == bytes.fromhex("0102000000000000")
    complete = {"channel": channel, "transaction_id": int.from_bytes(taken[8:16], "little"),
                "status": 0, "data": ""}
    client.result("host_complete", complete)
    # A NULL buffer with a length is the driver's to reject: a status, not an error.
    status = client.send(packet, buffer=None, buffer_length=1)["result"]
    assert status >= 0x8000_0000


def test_an_empty_buffer_is_a_pointer_not_null() -> None:
    seen: list[Any] = []

    class Recorder(SimTarget):
        def send_with_external_mdl(self, packet: int, buffer: Any, *rest: Any) -> int:
            seen.append(buffer)
            return int(super().send_with_external_mdl(packet, buffer, *rest))

    client = Client(Recorder)
    channel = client.channel()
    packet = client.result("allocate_packet", {"channel": channel})
    assert client.send(packet, buffer="", buffer_length=0)["result"] == 0
    assert client.send(packet, buffer=None, buffer_length=0)["result"] == (
        STATUS_INVALID_DEVICE_STATE)  # still in the ring: the buffer did not matter
    assert seen[0] is not None and len(seen[0]) == 0 and seen[1] is None


# -- host_complete, completions, reset -------------------------------------------------------


def test_a_completion_for_no_awaiting_transaction_changes_nothing(client: Client) -> None:
    channel = client.channel(open_it=False)
    complete = {"channel": channel, "transaction_id": 1, "status": 0, "data": "aa"}
    assert client.result("host_complete", complete) is None  # before anything was taken
    client.result("open_channel", {"channel": channel})
    packet = client.result("allocate_packet", {"channel": channel})
    assert client.send(packet)["result"] == 0
    taken = bytes.fromhex(client.result("host_take_packet", {"channel": channel}))
    complete["transaction_id"] = int.from_bytes(taken[8:16], "little")
    assert client.result("host_complete", complete) is None
    assert client.result("host_complete", complete) is None  # a second time
    assert client.result("completions") == [{"packet": packet, "status": 0, "data": "aa"}]
    assert client.send(packet)["result"] == 0
    taken = bytes.fromhex(client.result("host_take_packet", {"channel": channel}))
    client.result("disable_channel", {"channel": channel})  # cancels it
    complete["transaction_id"] = int.from_bytes(taken[8:16], "little")
    assert client.result("host_complete", complete) is None
    calls = client.result("completions")
    assert len(calls) == 1 and calls[0]["packet"] == packet and calls[0]["status"] >= 0xC0000000


def test_reset_discards_completions_not_handed_over(client: Client) -> None:
    channel = client.channel()
    packet = client.result("allocate_packet", {"channel": channel})
    assert client.send(packet)["result"] == 0
    taken = bytes.fromhex(client.result("host_take_packet", {"channel": channel}))
    client.result("host_complete", {"channel": channel, "status": 0, "data": "",
                                    "transaction_id": int.from_bytes(taken[8:16], "little")})
    client.result("reset")
    assert client.result("completions") == []


# -- capabilities, methods, faults -----------------------------------------------------------


def test_reads_buffer_late_is_never_declared_over_the_wire() -> None:
    assert "reads-buffer-late" in SimTarget.capabilities
    client = Client(SimTarget)
    assert client.info["capabilities"] == ["ring-bytes", "robust-contract-violations"]
    assert client.result("reset")["capabilities"] == client.info["capabilities"]


class _Plain:
    """A backend without ring-bytes whose create_channel fails, or hangs once told to."""

    name = "plain"
    capabilities = frozenset({"robust-contract-violations"})
    hang = False

    def create_channel(self, ring_data_size: int) -> int:
        if _Plain.hang:
            error = RuntimeError("vmbcore_channel_create did not return in 2 s")
            error.kind = "hang"  # type: ignore[attr-defined]
            raise error
        raise ValueError("no memory for the ring")

    def completions(self) -> list[Any]:
        return []


def test_ring_bytes_only_with_the_capability() -> None:
    client = Client(_Plain)
    assert "ring_bytes" not in client.info["methods"]
    assert client.error("ring_bytes", {"channel": 1}) == protocol.METHOD_NOT_FOUND


def test_a_backend_failure_is_a_target_error_and_a_hang_loses_the_target(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = Client(_Plain)
    assert client.error("create_channel", {"ring_data_size": 4096}) == protocol.TARGET_ERROR
    monkeypatch.setattr(_Plain, "hang", True)
    reply = client.ask("create_channel", {"ring_data_size": 4096})
    assert reply["error"]["code"] == protocol.TARGET_FAULT
    assert reply["error"]["data"] == {"kind": "hang"}
    monkeypatch.setattr(_Plain, "hang", False)
    reply = client.ask("completions")  # the target is lost until a reset
    assert reply["error"]["code"] == protocol.TARGET_FAULT and "lost" in (
        reply["error"]["message"])
    assert reply["error"]["data"] == {"kind": "hang"}
    client.result("reset")
    assert client.result("completions") == []
