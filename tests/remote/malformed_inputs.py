"""Malformed remote-protocol traffic and the checks on what each side makes of it.

Shared by ``tests/remote/test_remote_malformed.py`` (a few hundred inputs per interface, in the
test suite) and ``bench/malformed_remote.py`` (at least 10,000 per interface), which load this
file by its path.

Two interfaces, two kinds of input:

* **requests to the agent** (:data:`requests`): one line of random bytes, random JSON, a valid
  request mutated (a parameter of each wrong type, one missing or extra, a bad envelope), deep
  nesting, integers of hundreds of digits, ``NaN``, lone surrogates, batches, truncations.
  :class:`AgentUnderTest` sends it to a live agent (stdio or TCP), then a valid ``initialize``,
  and :meth:`AgentUnderTest.exchange` checks that every reply is a well-formed JSON-RPC response
  (an internal error counts as a failure: it is a bug of the agent) and that the
  ``initialize`` still gets its result;
* **replies to the client** (:data:`replies`): a method and the line a fake agent answers it
  with: garbage, wrong ids, results of the wrong kind, odd error objects, deep nesting, huge
  integers. :func:`client_outcome` makes the client read it and returns what became of it: a
  result, a ``crash``/``hang`` fault or an agent error, each a verdict the suite can give;
  anything else raises :class:`Unexpected`.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from typing import Any

from hypothesis import strategies as st

from vmbspec.adapters.remote import protocol
from vmbspec.adapters.remote.client import (
    Address,
    Connection,
    RemoteError,
    RemoteFactory,
    RemoteFault,
    RemoteTarget,
)
from vmbspec.adapters.remote.framing import MessageStream
from vmbspec.adapters.remote.server import TcpAgent
from vmbspec.adapters.sim import SimTarget

U32 = 0xFFFF_FFFF
U64 = 0xFFFF_FFFF_FFFF_FFFF
#: Methods a fuzzed request may name (``shutdown`` would end the session under test).
REQUEST_METHODS = ["initialize", "reset", *protocol.METHODS, "nope", ""]
#: The longest message the client under test may write or read in one exchange.
_LIMIT = 1 << 20


class Unexpected(AssertionError):
    """A side answered a malformed input other than cleanly."""


# -- building blocks ------------------------------------------------------------------------

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
#: One value of each wrong type a parameter may be given.
wrong_values = st.sampled_from(
    [None, True, False, -1, 1.5, 0.0, "x", "zz", "", [], {}, [1, 2], {"a": 1}, 2**64, 2**32,
     -(2**63), "0" * 9, [[0, 0, []]], [[0, 0]], [[-1, 0, [0]]]]
) | json_values

_hex = st.binary(max_size=24).map(bytes.hex)
_mdl = st.lists(
    st.tuples(st.integers(0, U32), st.integers(0, U32),
              st.lists(st.integers(0, U64), max_size=3)).map(list),
    min_size=1, max_size=3,
)
_VALID: dict[str, Any] = {
    "u32": st.integers(0, U32) | st.sampled_from([0, 1, 4096, 0x1000_0000, U32]),
    "u64": st.integers(0, U64),
    "handle": st.integers(1, 6) | st.integers(0, U64),
    "hex": _hex,
    "hex?": st.none() | _hex,
    "mdl?": st.none() | _mdl,
}
#: Ring sizes: valid ones stay small (the simulator allocates what is asked, up to 256 MiB).
_RING_SIZES = st.sampled_from([0, 4095, 4096, 8192, 65536, 1 << 20, (1 << 28) + 4096, U32])


@st.composite
def valid_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A request the agent accepts as a request (its handles may name nothing)."""
    method = draw(st.sampled_from(REQUEST_METHODS[:-2]))
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": draw(st.integers(1, 10**6)),
                               "method": method}
    if method == "initialize":
        request["params"] = {"protocol": 1}
    elif method in protocol.METHODS:
        spec, _ = protocol.METHODS[method]
        params = {}
        for name, kind in spec.items():
            params[name] = draw(_RING_SIZES if name == "ring_data_size" else _VALID[kind])
        request["params"] = params
    return request


def _tame(request: Any) -> Any:
    """Keeps a mutated create_channel from asking the simulator for a huge ring."""
    if isinstance(request, dict) and request.get("method") == "create_channel":
        params = request.get("params")
        if isinstance(params, dict):
            size = params.get("ring_data_size")
            if isinstance(size, int) and not isinstance(size, bool) and (
                (1 << 20) < size <= (1 << 28)
            ):
                params["ring_data_size"] = (1 << 28) + 4096
    return request


@st.composite
def mutated_requests(draw: st.DrawFn) -> Any:
    """A valid request with one thing wrong."""
    request = draw(valid_requests())
    params = request.get("params")
    how = draw(st.sampled_from(["param", "drop", "extra", "params", "envelope", "id",
                                "method", "key"]))
    if how == "param" and params:
        name = draw(st.sampled_from(sorted(params)))
        params[name] = draw(wrong_values)
    elif how == "drop" and params:
        del params[draw(st.sampled_from(sorted(params)))]
    elif how == "extra":
        request.setdefault("params", {})[draw(st.text(max_size=8))] = draw(json_values)
    elif how == "params":
        request["params"] = draw(wrong_values)
    elif how == "envelope":
        request["jsonrpc"] = draw(st.sampled_from(["1.0", "2", 2.0, None, ""]))
    elif how == "id":
        request["id"] = draw(st.sampled_from([None, True, 1.5, [1], {}, "x" * 300, -1, 2**64])
                             | st.text(max_size=10))
    elif how == "method":
        request["method"] = draw(st.sampled_from(REQUEST_METHODS) | st.text(max_size=12)
                                 | wrong_values)
    elif how == "key":
        request[draw(st.text(max_size=6))] = draw(json_values)
    return _tame(request)


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8",
                                                                                "surrogatepass")


def _deep(depth: int, inner: bytes = b"0") -> bytes:
    return b"[" * depth + inner + b"]" * depth


#: A template with a slot (``@``) where a raw literal goes.
_SLOTS = [
    b'{"jsonrpc":"2.0","id":@,"method":"create_channel","params":{"ring_data_size":4096}}',
    b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":@}}',
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocol":@}}',
    b'{"jsonrpc":"2.0","id":1,"method":"free_packet","params":{"packet":@}}',
    b'{"jsonrpc":"2.0","id":1,"method":@}',
    b'{"jsonrpc":@,"id":1,"method":"completions"}',
    b'{"jsonrpc":"2.0","id":1,"method":"completions","params":@}',
    b"[@]",
    b"@",
]
_LITERALS = st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400",
                             b'"\\ud800"', b'"\\udfff\\ud800"', b"0.5", b"true", b"null",
                             b"1" * 41, b"-" + b"9" * 500, b"9" * 5000, b"1" * 20]) | st.builds(
    lambda n: b"7" * n, st.integers(1, 6000)) | st.integers(2, 3000).map(_deep) | st.integers(
    2, 200).map(lambda n: b"{\"a\":" * n + b"0" + b"}" * n)


@st.composite
def slotted(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from(_SLOTS)).replace(b"@", draw(_LITERALS))


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    line = _dump(draw(valid_requests()))
    return line[:draw(st.integers(0, max(0, len(line) - 1)))]


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    items = draw(st.lists(valid_requests() | mutated_requests() | json_values, max_size=6))
    if draw(st.booleans()):
        items = items * draw(st.integers(17, 40))  # over the batch limit, sometimes
    return _dump([_tame(item) for item in items])


#: One line (without its line feed, though it may hold some) an agent may receive.
requests = st.one_of(
    st.binary(max_size=200),
    json_values.map(_dump),
    valid_requests().map(_dump),
    mutated_requests().map(_dump),
    slotted(),
    truncated(),
    batches(),
    st.integers(2, 5000).map(lambda n: _deep(n)),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
)


# -- the agent side ---------------------------------------------------------------------------


def check_response(reply: Any, where: str, who: str, only_rpc_members: bool = False) -> None:
    """``reply`` is a JSON-RPC 2.0 response (with no other member, if ``only_rpc_members``)
    whose error, if any, is well formed and not an internal error of ``who``."""
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0" or "id" not in reply or (
        ("result" in reply) == ("error" in reply)
    ) or (only_rpc_members and not set(reply) <= {"jsonrpc", "id", "result", "error"}):
        raise Unexpected(f"{where}: not a JSON-RPC 2.0 response: {str(reply)[:200]}")
    if "error" in reply:
        error = reply["error"]
        if not isinstance(error, dict) or type(error.get("code")) is not int or not isinstance(
            error.get("message"), str
        ):
            raise Unexpected(f"{where}: a malformed error object: {str(error)[:200]}")
        if error["code"] == protocol.INTERNAL_ERROR:
            raise Unexpected(f"{where}: {who} failed inside: {error['message'][:300]}")


def exchange_checked(
    stream: MessageStream, line: bytes, probe: str, who: str, timeout: float,
    only_rpc_members: bool = False,
) -> list[Any]:
    """Sends ``line`` (each piece of it between line feeds as a line), then a valid initialize
    with id ``probe``; checks every reply (:func:`check_response`); returns the replies to
    ``line``. Raises :class:`Unexpected` for a bad reply, or when ``who`` died, hung, broke
    the framing or did not answer the initialize."""
    deadline = time.monotonic() + timeout
    try:
        for piece in line.split(b"\n"):
            stream.write_line(piece, deadline)
        stream.write_line(protocol.dumps({"jsonrpc": "2.0", "id": probe, "method": "initialize",
                                          "params": {"protocol": 1}}), deadline)
        replies: list[Any] = []
        while True:
            raw = stream.read_line(deadline)
            try:
                reply = json.loads(raw)
            except ValueError as error:
                raise Unexpected(f"{who} wrote a line that is not JSON: {raw[:200]!r}") from error
            if isinstance(reply, dict) and reply.get("id") == probe:
                check_response(reply, "the valid initialize after it", who, only_rpc_members)
                if "result" not in reply:
                    raise Unexpected(f"the valid initialize failed: {reply}")
                return replies
            for item in reply if isinstance(reply, list) and reply else [reply]:
                check_response(item, "a reply", who, only_rpc_members)
            replies.append(reply)
    except Unexpected as error:
        raise Unexpected(f"{error} (after {line[:200]!r})") from None
    except Exception as error:  # it died, hung or broke the framing
        raise Unexpected(f"{type(error).__name__}: {error} after {line[:200]!r}") from error


class AgentUnderTest:
    """A live agent, over stdio (a child process) or TCP (a thread on 127.0.0.1)."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.process: subprocess.Popen[bytes] | None = None
        self.agent: TcpAgent | None = None
        self.sent = 0
        if transport == "stdio":
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vmbspec.conformance.cli_agent", "--backend", "sim",
                 "--quiet"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
            assert self.process.stdin is not None and self.process.stdout is not None
            self.stream = MessageStream(read_fd=self.process.stdout.fileno(),
                                        write_fd=self.process.stdin.fileno(), close_fds=False)
        else:
            self.agent = TcpAgent(SimTarget, "127.0.0.1", 0).start()
            host, port = self.agent.server_address[:2]
            self.stream = MessageStream(sock=socket.create_connection((str(host), port), 10))

    def exchange(self, line: bytes, timeout: float = 30.0) -> list[Any]:
        """Sends ``line``, then a valid initialize; checks every reply; returns the replies to
        ``line``. Raises :class:`Unexpected` for a bad reply or no answer to the initialize."""
        self.sent += 1
        return exchange_checked(self.stream, line, f"probe-{self.sent}-zq", "the agent", timeout)

    def close(self) -> None:
        self.stream.close()
        if self.process is not None:
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.agent is not None:
            self.agent.stop()


# -- the client side --------------------------------------------------------------------------

#: Valid arguments for each method the client sends.
CLIENT_CALLS: dict[str, tuple[Any, ...]] = {
    "initialize": (),
    "create_channel": (4096,),
    "open_channel": (1,),
    "disable_channel": (1,),
    "allocate_packet": (1,),
    "free_packet": (2,),
    "send_with_external_mdl": (2, bytearray(b"\x01\x02"), 2, [(0, 4096, [5])], 0, 0, 1),
    "host_take_packet": (1,),
    "host_complete": (1, 7, 0, b"\xaa"),
    "completions": (),
    "ring_bytes": (1,),
}
_GOOD_RESULTS: dict[str, Any] = {
    "initialize": {"protocol": 1, "agent": "fake", "target": "fake", "capabilities": [],
                   "max_message_bytes": 1 << 20, "methods": []},
    "create_channel": 1, "open_channel": None, "disable_channel": None, "allocate_packet": 2,
    "free_packet": None, "send_with_external_mdl": 0, "host_take_packet": "00ff",
    "host_complete": None, "completions": [{"packet": 2, "status": 0, "data": "aa"}],
    "ring_bytes": "00" * 16,
}
_ids = st.sampled_from([1, 1, 1, 2, 0, None, True, 1.0, "1", [1], -1, 2**70])


@st.composite
def _results(draw: st.DrawFn, method: str) -> Any:
    good = _GOOD_RESULTS[method]
    if method == "initialize" and draw(st.booleans()):
        result = dict(good)
        key = draw(st.sampled_from([*sorted(result), "extra"]))
        result[key] = draw(wrong_values | st.lists(st.text(max_size=200), max_size=80))
        return result
    return draw(st.sampled_from([good]) | wrong_values)


@st.composite
def _error_objects(draw: st.DrawFn) -> Any:
    code = draw(st.sampled_from([-32602, -32000, -32004, -32700, -32005, -32006, 5])
                | wrong_values)
    message = draw(st.text(max_size=40) | st.integers(1, 200_000).map(lambda n: "e" * n)
                   | wrong_values)
    error: dict[str, Any] = {"code": code, "message": message}
    if draw(st.booleans()):
        error["data"] = draw(st.sampled_from([{"kind": "crash"}, {"kind": "hang"},
                                              {"kind": "odd"}, "d" * 5000]) | wrong_values)
    if draw(st.booleans()):
        return draw(wrong_values)
    return error


@st.composite
def reply_lines(draw: st.DrawFn, method: str) -> bytes:
    shape = draw(st.sampled_from(["result", "error", "raw", "json", "slot", "deep", "cut",
                                  "envelope"]))
    if shape in ("result", "error", "envelope", "cut"):
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": draw(_ids)}
        if shape == "error":
            reply["error"] = draw(_error_objects())
        else:
            reply["result"] = draw(_results(method))
        if shape == "envelope":
            key = draw(st.sampled_from(["jsonrpc", "id", "result", "error", "x"]))
            if draw(st.booleans()):
                reply.pop(key, None)
            else:
                reply[key] = draw(wrong_values)
        line = _dump(reply)
        if shape == "cut":
            line = line[:draw(st.integers(0, max(0, len(line) - 1)))]
        return line
    if shape == "raw":
        return draw(st.binary(max_size=120))
    if shape == "json":
        return _dump(draw(json_values))
    if shape == "deep":
        return b'{"jsonrpc":"2.0","id":1,"result":' + _deep(draw(st.integers(30, 4000))) + b"}"
    return (b'{"jsonrpc":"2.0","id":1,"result":@}').replace(b"@", draw(_LITERALS))


#: ``(method, reply line)``: what a fake agent answers to one method.
replies = st.sampled_from(sorted(CLIENT_CALLS)).flatmap(
    lambda method: st.tuples(st.just(method), reply_lines(method))
)


class _OneConnection(RemoteFactory):
    def __init__(self, connection: Connection) -> None:
        super().__init__(Address("tcp://127.0.0.1:9"), timeout=1.0)
        self.connection = connection

    def acquire(self) -> Connection:
        return self.connection


def client_outcome(method: str, line: bytes) -> str:
    """What the client makes of ``line`` as the reply to ``method``: ``"result"``,
    ``"crash"``/``"hang"`` (a fault), ``"target-error"`` (an agent error) or
    ``"protocol-error"`` (a reply of the wrong shape: the harness's fault); raises
    :class:`Unexpected` for anything else, or a message that does not name the method, or one
    too long to print."""
    mine, theirs = socket.socketpair()
    connection = Connection(MessageStream(sock=mine, max_bytes=_LIMIT))
    try:
        theirs.sendall(line + b"\n")
        theirs.shutdown(socket.SHUT_WR)  # a blank line is then a closed connection
        try:
            if method == "initialize":
                connection.handshake(1.0)
            else:
                target = RemoteTarget(_OneConnection(connection))
                getattr(target, method)(*CLIENT_CALLS[method])
        except RemoteFault as fault:
            _check_text(str(fault), method, line)
            if fault.kind not in ("crash", "hang"):
                raise Unexpected(f"a fault of kind {fault.kind!r}") from fault
            return fault.kind
        except RemoteError as error:
            _check_text(str(error), method, line)
            return error.kind  # "target-error", or "protocol-error" for a wrong-shaped reply
        except Exception as error:
            raise Unexpected(f"{method} <- {line[:200]!r}: {type(error).__name__}: "
                             f"{str(error)[:300]}") from error
        return "result"
    finally:
        connection.close(graceful=False)
        theirs.close()


def _check_text(text: str, method: str, line: bytes) -> None:
    if method not in text:
        raise Unexpected(f"{method} <- {line[:200]!r}: the message does not name the method: "
                         f"{text[:300]}")
    if len(text) > 2000:
        raise Unexpected(f"{method} <- {line[:200]!r}: a message of {len(text)} characters")
