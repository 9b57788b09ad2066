"""A harness that breaks the protocol's shapes is told so, with a hint; the driver is not blamed.

An agent here serves the simulator over TCP (in a thread) and rewrites some replies the way a
harness written from the page might get them wrong: ``""`` where ``null`` is expected, a
packet with its 8-byte ring trailer, a ring without its control page, a rejected send as an
error, a handle as a string. Each run must give failures of kind ``protocol-error``, blamed on
no requirement (not KMCL-QUEUE-FULL, not SEED-RETURN), whose message names the method and says
what the harness must do. The same agent without the rewrite conforms, so the rewrite is what
the failures are about.

Also here: the client's requests (one ``send`` each, ``TCP_NODELAY``), its bounded
reconnection, handles named as handles, and the reports' list of checks skipped for want of a
capability.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vmbspec.adapters.remote import client
from vmbspec.adapters.remote.framing import FrameError, MessageStream
from vmbspec.adapters.remote.protocol import TARGET_ERROR, TARGET_FAULT, dumps, failure
from vmbspec.adapters.remote.server import Session
from vmbspec.adapters.sim import SimTarget
from vmbspec.conformance import run_conformance
from vmbspec.conformance.report import describe_step, to_json, to_junit, to_markdown
from vmbspec.conformance.runner import ConformanceReport
from vmbspec.conformance.targets import resolve_target

#: reply rewrite: (request, reply) -> the reply the harness sends instead.
Rewrite = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]


def _same(_request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    return reply


class Agent:
    """The simulator behind the protocol on 127.0.0.1, every reply passed through
    ``rewrite``; one thread a connection."""

    def __init__(self, rewrite: Rewrite = _same) -> None:
        self.rewrite = rewrite
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return  # stopped
            self.connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        stream = MessageStream(sock=connection)
        session = Session(SimTarget)
        try:
            while not session.closing:
                request = json.loads(stream.read_line(None))
                reply = session.handle(request)
                if reply is not None:
                    stream.write_line(dumps(self.rewrite(request, reply)), None)
        except (FrameError, OSError, ValueError):
            pass
        stream.close()

    def stop(self) -> None:
        """Closes the listener and every connection: later connects are refused. (A shutdown
        first: on Linux, closing a socket another thread waits on in accept() leaves it
        listening until that accept returns.)"""
        for sock in (self.listener, *self.connections):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Rewrite], Agent]]:
    agents: list[Agent] = []

    def start(rewrite: Rewrite = _same) -> Agent:
        agents.append(Agent(rewrite))
        return agents[-1]

    yield start
    for agent in agents:
        agent.stop()


def _run(agent: Agent, examples: int = 0) -> ConformanceReport:
    _name, factory = resolve_target("remote:" + agent.address, {"timeout": 5.0})
    try:
        return run_conformance(factory, examples=examples, stateful=examples > 0)
    finally:
        factory.close()  # type: ignore[attr-defined]


def _result(method: str, change: Callable[[Any], Any]) -> Rewrite:
    """Rewrites the result of ``method`` (when there is one) with ``change``."""

    def rewrite(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        if request.get("method") == method and "result" in reply:
            return {**reply, "result": change(reply["result"])}
        return reply

    return rewrite


def _with_trailer(packet: str | None) -> str | None:
    # The trailer of a packet that started at offset 0x40: the offset in the high half.
    return None if packet is None else packet + (0x40 << 32).to_bytes(8, "little").hex()


def _rejection_as_error(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    status = reply.get("result")
    if request.get("method") == "send_with_external_mdl" and isinstance(status, int) and (
        status >= 0x8000_0000
    ):
        return failure(request["id"], TARGET_ERROR,
                       f"VmbPacketSendWithExternalMdl failed with NTSTATUS {status:#x}")
    return reply


#: name -> (rewrite, the method blamed, words of the hint)
BROKEN: dict[str, tuple[Rewrite, str, str]] = {
    "empty-string-for-null": (_result("free_packet", lambda _r: ""), "free_packet",
                              "result is null (JSON null"),
    "empty-packet-for-no-packet": (
        _result("host_take_packet", lambda r: "" if r is None else r), "host_take_packet",
        "a ring with no packet to take is null"),
    "packet-with-trailer": (_result("host_take_packet", _with_trailer), "host_take_packet",
                            "the packet was returned with its trailer"),
    "ring-without-control-page": (_result("ring_bytes", lambda r: r[2 * 4096:]),
                                  "ring_bytes", "the control page is missing"),
    "rejected-send-as-error": (_rejection_as_error, "send_with_external_mdl",
                               "a send the driver rejects is a result, not an error"),
    "handle-as-string": (_result("allocate_packet", str), "allocate_packet",
                         "a packet handle (a JSON integer literal)"),
}


def test_the_agent_conforms_without_a_rewrite(serve: Callable[[Rewrite], Agent]) -> None:
    report = _run(serve(_same), examples=20)
    assert report.passed, report.summary()


@pytest.mark.parametrize("broken", BROKEN)
def test_a_protocol_shape_fault_is_a_harness_protocol_error_with_a_hint(
    serve: Callable[[Rewrite], Agent], broken: str
) -> None:
    rewrite, method, hint = BROKEN[broken]
    report = _run(serve(rewrite))
    assert report.failures, report.summary()
    for found in report.failures:
        assert found.kind == "protocol-error", found.message
        assert found.requirements == (), found.requirements  # the driver is not blamed
        assert found.message.startswith(f"harness protocol error in {method}: ")
        assert hint in found.message and "docs/remote-protocol.md" in found.message
        assert "no verdict on the driver" in found.message
        assert "RemoteError" not in found.message and "RemoteProtocolError" not in (
            found.message)
    assert report.verdict == "FAIL" and report.failing_requirements() == set()
    # The reports say so too, and JUnit has a failing test for each.
    assert "Requirements: none (a protocol error of the harness" in to_markdown(report)
    junit = ET.fromstring(to_junit(report))
    assert len(junit.findall("testcase[@classname='vmbspec.target']/failure")) == len(
        report.failures)
    assert int(junit.get("failures", "0")) >= len(report.failures)


def test_an_error_for_a_driver_failure_is_still_a_target_error(
    serve: Callable[[Rewrite], Agent],
) -> None:
    def refuse_open(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        if request.get("method") == "open_channel":
            return failure(request["id"], TARGET_ERROR,
                           "VmbChannelEnable failed with NTSTATUS 0xc0000001")
        return reply

    report = _run(serve(refuse_open))
    assert report.failures
    for found in report.failures:
        assert found.kind == "target-error" and "SEED-RETURN" in found.requirements
        assert "open_channel: agent error -32000 (target error): VmbChannelEnable failed" in (
            found.message)
        assert "RemoteError" not in found.message


class _Counting:
    """A socket whose ``send`` calls are counted (what MessageStream uses of it)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.sent: list[bytes] = []

    def send(self, data: Any) -> int:
        self.sent.append(bytes(data))
        return self._sock.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_each_request_is_one_send_on_a_socket_without_nagle(
    serve: Callable[[Rewrite], Agent],
) -> None:
    agent = serve(_same)
    _name, factory = resolve_target("remote:" + agent.address, {"timeout": 5.0})
    target = factory()
    channel = target.create_channel(4096)
    connection = target._connection
    assert connection is not None and connection.stream.sock is not None
    sock = connection.stream.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    counting = _Counting(sock)
    connection.stream.sock = counting  # type: ignore[assignment]
    target.open_channel(channel)
    packet = target.allocate_packet(channel)
    assert packet is not None
    status = target.send_with_external_mdl(packet, bytearray(b"\x01" * 64), 64,
                                           ((0, 4096, (7,)),), 0, 4096, 1)
    assert status == 0
    assert target.host_take_packet(channel) is not None
    assert len(counting.sent) == 4  # open, allocate, send, host_take: one send each
    assert all(data.count(b"\n") == 1 and data.endswith(b"\n") for data in counting.sent)
    connection.stream.sock = sock
    target.close()
    factory.close()  # type: ignore[attr-defined]


def test_reconnection_is_bounded_and_an_unreachable_agent_is_not_tried_again(
    serve: Callable[[Rewrite], Agent], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client, "RECONNECT_PAUSES", (0.0,))
    opened: list[str] = []
    real_open = client.Connection.open.__func__  # type: ignore[attr-defined]

    def counted_open(cls: type[client.Connection], address: client.Address,
                     timeout: float) -> client.Connection:
        opened.append(address.text)
        connection: client.Connection = real_open(cls, address, timeout)
        return connection

    agent = serve(_same)
    _name, factory = resolve_target("remote:" + agent.address, {"timeout": 2.0})
    agent.stop()
    monkeypatch.setattr(client.Connection, "open", classmethod(counted_open))
    target = factory()
    with pytest.raises(client.RemoteFault) as fault:
        target.create_channel(4096)
    assert fault.value.kind == "unreachable"
    assert f"did not answer {client.RECONNECT_ATTEMPTS} tries" in str(fault.value)
    assert len(opened) == client.RECONNECT_ATTEMPTS
    target.close()
    with pytest.raises(client.RemoteFault, match="did not answer"):
        factory().create_channel(4096)
    assert len(opened) == client.RECONNECT_ATTEMPTS  # not tried again
    factory.close()  # type: ignore[attr-defined]


def test_messages_tell_handles_from_step_indices(serve: Callable[[Rewrite], Agent]) -> None:
    def crash_on_take(request: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        if request.get("method") == "host_take_packet":
            return failure(request["id"], TARGET_FAULT, "the host side crashed",
                           {"kind": "crash"})
        return reply

    report = _run(serve(crash_on_take))
    assert report.failures
    for found in report.failures:
        # The target's handle in the agent's call, the step list's index in the steps.
        assert found.kind == "crash" and "last call host_take_packet(channel handle " in (
            found.message), found.message
        assert "channel #0" in "\n".join(describe_step(step) for step in found.steps)
    assert describe_step({"op": "free", "packet": 0}) == "VmbPacketFree(packet #0)"
    assert client._show_call("free_packet", {"packet": 3}) == "free_packet(packet handle 3)"
    assert client._show_call("create_channel", {"ring_data_size": 4096}) == (
        "create_channel(ring_data_size=0x1000)")


def test_the_reports_list_the_checks_skipped_for_want_of_a_capability() -> None:
    class Plain(SimTarget):
        capabilities = frozenset({"ring-bytes"})

    report = run_conformance(Plain, examples=10)
    assert report.passed, report.summary()
    skipped = to_json(report)["skipped_for_capabilities"]
    assert set(skipped) == {"robust-contract-violations", "reads-buffer-late"}
    assert "READ-A10" in skipped["robust-contract-violations"]
    assert skipped["reads-buffer-late"].startswith("nothing")
    markdown = to_markdown(report)
    assert "## Checks skipped for want of a capability" in markdown
    assert "- `robust-contract-violations` (not declared): no call breaks" in markdown
    # The summary names only what was skipped.
    assert "without robust-contract-violations: " in report.summary()
    assert "without reads-buffer-late" not in report.summary()
    full = run_conformance(SimTarget, examples=0, stateful=False, cases=False)
    assert to_json(full)["skipped_for_capabilities"] == {}
    assert "for want of a capability" not in to_markdown(full)
