"""The framing and the JSON-RPC layer: round trips, limits, deadlines, the agent's errors."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from vmbspec.adapters.remote import protocol
from vmbspec.adapters.remote.client import Address, Connection, RemoteError, RemoteFault
from vmbspec.adapters.remote.framing import FrameClosed, FrameTimeout, FrameTooLarge, MessageStream
from vmbspec.adapters.remote.server import Session, TcpAgent, parse_listen, serve_stream
from vmbspec.adapters.sim import SimTarget


def _pair(max_bytes: int = 1 << 20) -> tuple[MessageStream, MessageStream]:
    a, b = socket.socketpair()
    return MessageStream(sock=a, max_bytes=max_bytes), MessageStream(sock=b, max_bytes=max_bytes)


def test_lines_round_trip_skipping_blank_lines_and_carriage_returns() -> None:
    left, right = _pair()
    left.write_line(b'{"a":1}')
    assert right.sock is not None and left.sock is not None
    left.sock.sendall(b"\r\n\n" + b'{"b":2}\r\n')
    assert right.read_line(time.monotonic() + 1) == b'{"a":1}'
    assert right.read_line(time.monotonic() + 1) == b'{"b":2}'


def test_a_read_past_its_deadline_times_out() -> None:
    _left, right = _pair()
    started = time.monotonic()
    with pytest.raises(FrameTimeout):
        right.read_line(time.monotonic() + 0.2)
    assert time.monotonic() - started < 2


def test_a_line_over_the_limit_is_refused_without_reading_it_all() -> None:
    left, right = _pair(max_bytes=64)
    assert left.sock is not None
    left.sock.sendall(b"x" * 200)
    with pytest.raises(FrameTooLarge):
        right.read_line(time.monotonic() + 1)
    with pytest.raises(FrameTooLarge):
        left.write_line(b"y" * 65)


def test_end_of_stream_is_closed_not_a_timeout() -> None:
    left, right = _pair()
    left.close()
    with pytest.raises(FrameClosed):
        right.read_line(time.monotonic() + 1)


def _session() -> Session:
    session = Session(SimTarget)
    reply = session.handle({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                            "params": {"protocol": protocol.PROTOCOL_VERSION}})
    assert reply["result"]["target"] == "sim"
    return session


def _error(reply: dict) -> int:
    return int(reply["error"]["code"])


def test_the_handshake_states_version_capabilities_and_limit() -> None:
    reply = Session(SimTarget).handle({"jsonrpc": "2.0", "id": 7, "method": "initialize",
                                       "params": {"protocol": 1}})
    result = reply["result"]
    assert reply["id"] == 7 and result["protocol"] == 1
    assert "ring-bytes" in result["capabilities"]
    assert result["max_message_bytes"] == 8 * 1024 * 1024
    assert "send_with_external_mdl" in result["methods"]


def test_the_agent_answers_each_mistake_with_its_json_rpc_error() -> None:
    fresh = Session(SimTarget)
    assert _error(fresh.handle({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                                "params": {"protocol": 99}})) == protocol.UNSUPPORTED_VERSION
    assert _error(fresh.handle({"jsonrpc": "2.0", "id": 1, "method": "completions"})) == (
        protocol.NOT_INITIALIZED)
    session = _session()
    assert _error(session.handle({"jsonrpc": "2.0", "id": 2, "method": "nope"})) == (
        protocol.METHOD_NOT_FOUND)
    assert _error(session.handle({"id": 2, "method": "completions"})) == (
        protocol.INVALID_REQUEST)
    assert _error(session.handle({"jsonrpc": "2.0", "id": 3, "method": "create_channel",
                                  "params": {"ring_data_size": -1}})) == protocol.INVALID_PARAMS
    assert _error(session.handle({"jsonrpc": "2.0", "id": 4, "method": "open_channel",
                                  "params": {"channel": 999}})) == protocol.INVALID_PARAMS
    assert session.handle({"jsonrpc": "2.0", "method": "completions"}) is None  # notification


def test_a_batch_gets_one_reply_per_request_in_order() -> None:
    session = _session()
    replies = session.handle([
        {"jsonrpc": "2.0", "id": 10, "method": "create_channel",
         "params": {"ring_data_size": 4096}},
        {"jsonrpc": "2.0", "id": 11, "method": "completions"},
    ])
    assert [r["id"] for r in replies] == [10, 11]
    assert replies[1]["result"] == []


def test_a_send_and_its_packet_round_trip_through_the_protocol() -> None:
    session = _session()

    def call(method: str, **params: object) -> object:
        reply = session.handle({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert "result" in reply, reply
        return reply["result"]

    channel = call("create_channel", ring_data_size=65536)
    call("open_channel", channel=channel)
    packet = call("allocate_packet", channel=channel)
    status = call("send_with_external_mdl", packet=packet, buffer="0102", buffer_length=2,
                  mdl=[[0x10, 0x2000, [5, 6, 7]]], mdl_offset=0, mdl_length=0, flags=1)
    assert status == 0
    data = bytes.fromhex(str(call("host_take_packet", channel=channel)))
    assert int.from_bytes(data[0:2], "little") == 9  # GPA direct
    transaction = int.from_bytes(data[8:16], "little")
    call("host_complete", channel=channel, transaction_id=transaction, status=0, data="aa")
    assert call("completions") == [{"packet": packet, "status": 0, "data": "aa"}]


def test_the_agent_refuses_an_oversized_request_and_keeps_serving() -> None:
    client, agent = _pair(max_bytes=200)
    thread = threading.Thread(target=serve_stream, args=(agent, Session(SimTarget)),
                              daemon=True)
    thread.start()
    assert client.sock is not None
    client.sock.sendall(b"{" + b" " * 300 + b"}\n")
    deadline = time.monotonic() + 5
    first = json.loads(client.read_line(deadline))
    assert first["error"]["code"] == protocol.MESSAGE_TOO_LARGE and first["id"] is None
    client.write_line(protocol.request(2, "initialize", {"protocol": 1}))
    assert json.loads(client.read_line(deadline))["id"] == 2
    client.sock.sendall(b"not json\n")
    assert json.loads(client.read_line(deadline))["error"]["code"] == protocol.PARSE_ERROR
    client.close()
    thread.join(5)


def test_a_client_connection_raises_remote_error_for_an_error_reply() -> None:
    agent = TcpAgent(SimTarget, "127.0.0.1", 0).start()
    try:
        connection = Connection.open(Address(agent.url), 5)
        connection.handshake(5)
        with pytest.raises(RemoteError, match="invalid params"):
            connection.call("open_channel", {"channel": 12345}, 5)
        assert connection.call("completions", None, 5) == []
        connection.close()
        with pytest.raises(RemoteFault):
            connection.call("completions", None, 5)
    finally:
        agent.stop()


@pytest.mark.parametrize("text", ["tcp://127.0.0.1", "udp://127.0.0.1:5", "stdio:", "x"])
def test_bad_addresses_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError, match="remote"):
        Address(text)


@pytest.mark.parametrize("text", ["tcp://127.0.0.1", "pipe", "tcp://:80"])
def test_bad_listen_values_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)
