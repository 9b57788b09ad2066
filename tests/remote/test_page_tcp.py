"""The page's TCP rule, on the reference agent: every reply is written in one send call, and
every accepted connection has TCP_NODELAY (``docs/remote-protocol.md``, "One write per
message, and TCP_NODELAY"). Without both, each message can wait 40-200 ms for a delayed ACK.

No timing is asserted: the tests count send calls, read the socket option, and check that on
127.0.0.1 each reply arrives whole in one recv.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

from vmbspec.adapters.remote import protocol
from vmbspec.adapters.remote.framing import MessageStream
from vmbspec.adapters.remote.server import Session, TcpAgent, serve_stream
from vmbspec.adapters.sim import SimTarget

REQUESTS = [
    ("initialize", {"protocol": 1}),
    ("create_channel", {"ring_data_size": 8192}),
    ("open_channel", {"channel": 1}),
    ("allocate_packet", {"channel": 1}),
    ("send_with_external_mdl", {"packet": 2, "buffer": "0102", "buffer_length": 2,
                                "mdl": [[16, 8192, [5, 6, 7]]], "mdl_offset": 0,
                                "mdl_length": 0, "flags": 1}),
    ("host_take_packet", {"channel": 1}),
    ("ring_bytes", {"channel": 1}),  # 24 KiB of reply: still one call
    ("free_packet", {"packet": 77}),  # an error reply
    ("completions", None),
]


class CountingSocket(socket.socket):
    """A socket that records what each send call carried."""

    sends: list[bytes]

    def send(self, data: Any, flags: int = 0) -> int:
        # Recorded before the bytes leave, so the peer cannot read them before they count.
        self.sends.append(bytes(data))
        sent = super().send(data, flags)
        self.sends[-1] = self.sends[-1][:sent]
        return sent


def test_each_reply_is_one_whole_line_in_one_send_call() -> None:
    agent_end, client_end = socket.socketpair()
    agent_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    counting = CountingSocket(agent_end.family, agent_end.type, agent_end.proto,
                              fileno=agent_end.detach())
    counting.sends = []
    thread = threading.Thread(target=serve_stream,
                              args=(MessageStream(sock=counting), Session(SimTarget)),
                              daemon=True)
    thread.start()
    client = MessageStream(sock=client_end)
    for number, (method, params) in enumerate(REQUESTS, 1):
        client.write_line(protocol.request(number, method, params))
        reply = json.loads(client.read_line(None))
        assert reply["id"] == number
        assert len(counting.sends) == number, f"the reply to {method} took several sends"
        assert counting.sends[-1].endswith(b"\n") and counting.sends[-1].count(b"\n") == 1
    client.close()
    thread.join(10)


def test_the_tcp_agent_sets_tcp_nodelay_on_every_connection() -> None:
    agent = TcpAgent(SimTarget, "127.0.0.1", 0)
    try:
        host, port = agent.server_address[:2]
        with socket.create_connection((str(host), port), 10):
            accepted, _address = agent.get_request()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        agent.server_close()


def test_on_loopback_each_small_reply_arrives_whole_in_one_recv() -> None:
    agent = TcpAgent(SimTarget, "127.0.0.1", 0, idle_timeout=60).start()
    try:
        host, port = agent.server_address[:2]
        with socket.create_connection((str(host), port), 10) as sock:
            sock.settimeout(20)
            for number, (method, params) in enumerate(REQUESTS, 1):
                if method == "ring_bytes":
                    continue  # larger than one segment: it may come in several recvs
                sock.sendall(protocol.request(number, method, params) + b"\n")
                data = sock.recv(1 << 16)
                assert data.endswith(b"\n") and data.count(b"\n") == 1, (method, data[:80])
                assert json.loads(data)["id"] == number
    finally:
        agent.stop()
