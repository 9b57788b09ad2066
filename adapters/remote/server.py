"""The reference agent: serves any target over the remote protocol, and records traces.

Theory of operation
-------------------
An agent owns a *backend factory*: a callable returning a fresh object with the target
interface (``conformance/target.py``). The command line (``vmbspec agent``) resolves it from a
target name; this module never imports the spec or the suite.

Each connection (TCP) or the one pair of standard streams (stdio) is a :class:`Session`.
``initialize`` checks the protocol version and makes the first backend target; ``reset``
closes it and makes a fresh one (the client does that between cases instead of reconnecting);
``shutdown`` closes it and ends the session. Every target method is checked against
:data:`adapters.remote.protocol.METHODS` before the backend sees it.

Every line is read within the limits of :func:`adapters.remote.protocol.decode_message` (size,
depth, integer digits, no NaN); a line outside them, or anything else a request can get wrong,
is answered with a JSON-RPC error and the session goes on. A bug of the agent while handling a
request is an internal error (-32603) for that request, not the end of the session.

What the page calls the client's mistake is refused here, before the backend sees it, so that
every backend answers it the same way (-32602): params of the wrong shape or type
(:func:`adapters.remote.protocol.check_params`: only JSON integer literals, MDLs a Windows MDL
can describe, a buffer no shorter than its length, a ring of whole pages), and handles the
target never issued (:class:`IssuedHandles`, which also knows which transactions await a
completion, so a ``host_complete`` for any other changes nothing). A packet handle that was
issued and then freed goes to the backend: what it does with it is the driver's answer. What
the backend refuses after these checks is a target error (-32000); a backend call that crashed
or hung (an isolated backend's deadline) is a target fault (-32004), and the target stays
lost, every target method answered -32004, until ``reset`` or ``initialize``.

Each reply goes out as one line in one ``send`` (:meth:`MessageStream.write_line`), and TCP
connections have TCP_NODELAY (:meth:`TcpAgent.get_request`): a reply written in pieces meets
Nagle's algorithm and a delayed ACK, 40-200 ms a message.

TCP: every connection is served by a thread of its own, at most ``max_connections`` at once
(:data:`DEFAULT_MAX_CONNECTIONS`); one more is sent a "too many connections" error (-32005)
and closed. A connection that sends no complete request for ``idle_timeout`` seconds
(:data:`DEFAULT_IDLE_TIMEOUT`), or does not read its reply in that time, is sent an "idle
timeout" error (-32006, if it can take it) and closed, so a client that vanished without closing
cannot hold a place for ever. Standard input/output has neither: its one client started the
agent, and the end of the input ends it.

After every target method the agent drains the backend's completion-routine calls into a
buffer that ``completions`` hands over, so that a trace shows each completion right after the
call during which it happened, which is where a harness around a real driver would log it.

Recording (``trace=``): a JSON Lines file, one header line, then one line per event, written
and flushed as it happens so a crash still leaves a readable trace. ``docs/trace-format.md``
is the schema; ``vmbspec trace check`` replays it through the spec.

A harness for a real driver follows this file: the same loop, with each target method
forwarded to the driver (for example through DeviceIoControl) instead of to a Python object.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from vmbspec.adapters.remote import protocol
from vmbspec.adapters.remote.framing import (
    MAX_MESSAGE_BYTES,
    FrameClosed,
    FrameTimeout,
    FrameTooLarge,
    MessageStream,
)

BackendFactory = Callable[[], Any]

AGENT_NAME = "vmbspec-agent"
TRACE_VERSION = 1

#: TCP connections served at once; one more is refused (``--max-connections``).
DEFAULT_MAX_CONNECTIONS = 64
#: Seconds a TCP connection may stay without sending a whole request (``--idle-timeout``); the
#: client holds its connection between cases, so this is generous.
DEFAULT_IDLE_TIMEOUT = 600.0
#: The largest idle deadline accepted (one day).
MAX_IDLE_TIMEOUT = 86400.0
#: Seconds given to a refused or idle connection to take its last message.
_FAREWELL_SECONDS = 1.0
_FAREWELL_DRAIN = 64 * 1024


class TraceRecorder:
    """Writes trace events as JSON Lines; shared by every session of one agent."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: IO[str] = self.path.open("w", encoding="utf-8")  # closed by close()
        self._lock = threading.Lock()
        self._seq = 0
        self._sessions = 0
        self._write({
            "vmbspec_trace": TRACE_VERSION,
            "recorded_by": f"{AGENT_NAME} (adapters.remote.server)",
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        })

    def _write(self, document: dict[str, Any]) -> None:
        self._file.write(json.dumps(document, separators=(",", ":")) + "\n")
        self._file.flush()

    def new_session(self) -> int:
        with self._lock:
            self._sessions += 1
            return self._sessions

    def event(self, session: int, event: str, **fields: Any) -> None:
        with self._lock:
            if self._file.closed:
                return
            self._seq += 1
            self._write({"seq": self._seq, "session": session, "event": event, **fields})

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class IssuedHandles:
    """What the session's current target issued, and what the agent knows of each handle.

    The agent keeps this so that it can tell the client's mistakes from the driver's business
    (``docs/remote-protocol.md``, "Handles"): a handle the target never issued, or a packet
    handle passed as a channel, is invalid params (-32602) and never reaches the driver; a
    packet handle that was issued and then freed is still a handle, and what a call on it does
    is the driver's answer. It also knows which transactions the host took and has not yet
    completed, so that a ``host_complete`` for any other transaction changes nothing.
    Everything is forgotten when the target is (``reset``, ``initialize``), so a new target may
    issue the same values again.
    """

    NOT_OPEN, OPEN, DISABLED = "not open", "open", "disabled"

    def __init__(self) -> None:
        #: channel handle -> NOT_OPEN, OPEN or DISABLED.
        self.channels: dict[int, str] = {}
        #: packet handle -> whether it was freed since it was last allocated.
        self.packets: dict[int, bool] = {}
        #: channel handle -> transaction ids the host took and has not completed (a count
        #: each: a broken driver may give two outstanding transactions one id).
        self.awaiting: dict[int, Counter[int]] = {}

    def channel(self, handle: int) -> str:
        """The state of channel ``handle``; ValueError if the target never issued it."""
        state = self.channels.get(handle)
        if state is None:
            kind = " (a packet handle)" if handle in self.packets else ""
            raise ValueError(f"channel {handle}{kind} is no channel this target issued "
                             "(create_channel)")
        return state

    def packet(self, handle: int) -> None:
        """ValueError if the target never issued packet ``handle``."""
        if handle not in self.packets:
            kind = " (a channel handle)" if handle in self.channels else ""
            raise ValueError(f"packet {handle}{kind} is no packet this target issued "
                             "(allocate_packet)")

    def check(self, method: str, arguments: dict[str, Any]) -> None:
        """ValueError unless the handles of a call are ones the target issued, and the call
        is one the caller may make (a disabled channel is never opened again)."""
        if "packet" in arguments:
            self.packet(arguments["packet"])
        if "channel" in arguments:
            state = self.channel(arguments["channel"])
            if method == "open_channel" and state == self.DISABLED:
                raise ValueError(f"channel {arguments['channel']} is disabled; a disabled "
                                 "channel is never opened again")

    def is_awaiting(self, channel: int, transaction_id: int) -> bool:
        return self.awaiting.get(channel, Counter())[transaction_id] > 0

    def note(self, method: str, arguments: dict[str, Any], result: Any) -> None:
        """What a call that returned ``result`` changed."""
        channel: int = arguments.get("channel", 0)
        if method == "create_channel":
            self.channels[int(result)] = self.NOT_OPEN
            self.awaiting[int(result)] = Counter()
        elif method == "open_channel":
            self.channels[channel] = self.OPEN
        elif method == "disable_channel":
            self.channels[channel] = self.DISABLED
            self.awaiting[channel] = Counter()  # every transaction was cancelled
        elif method == "allocate_packet" and result is not None:
            self.packets[int(result)] = False
        elif method == "free_packet":
            self.packets[arguments["packet"]] = True
        elif method == "host_take_packet" and result is not None and len(result) >= 16:
            # A VMBus packet header: type, offset8, length8, flags (u16 each), then the u64
            # transaction id.
            self.awaiting[channel][int.from_bytes(bytes(result[8:16]), "little")] += 1
        elif method == "host_complete":
            self.awaiting[channel][arguments["transaction_id"]] -= 1
            self.awaiting[channel] += Counter()  # drops the ids at zero


#: Capabilities a backend may have that a target behind this protocol never has: the buffer
#: of a send is the agent's copy, made at the call, so no later change of the caller's buffer
#: can reach the driver (``docs/remote-protocol.md``, "Capabilities").
NOT_OVER_THE_WIRE = frozenset({"reads-buffer-late"})


class Session:
    """One client's conversation with the agent: a backend target at a time."""

    def __init__(self, factory: BackendFactory, recorder: TraceRecorder | None = None) -> None:
        self.factory = factory
        self.recorder = recorder
        self.target: Any = None
        self.trace_session = 0
        self.pending: list[tuple[int, int, bytes]] = []
        self.closing = False
        self.initialized = False
        self.handles = IssuedHandles()
        self.capabilities: frozenset[str] = frozenset()
        #: "crash" or "hang" once the target faulted: its state is lost until a new target.
        self.lost: str | None = None

    # -- the target's life --------------------------------------------------------------

    def _new_target(self) -> dict[str, Any]:
        self._close_target()
        try:
            self.target = self.factory()
        except Exception as error:
            raise _RpcError(protocol.TARGET_ERROR,
                            f"the backend could not make a target: {error}") from error
        self.pending = []
        self.handles = IssuedHandles()
        self.lost = None
        name = str(getattr(self.target, "name", "target"))
        self.capabilities = frozenset(
            str(c) for c in getattr(self.target, "capabilities", ())) - NOT_OVER_THE_WIRE
        capabilities = sorted(self.capabilities)
        if self.recorder is not None:
            self.trace_session = self.recorder.new_session()
            self.recorder.event(self.trace_session, "start", target=name,
                                capabilities=capabilities)
        return {"target": name, "capabilities": capabilities}

    def _close_target(self) -> None:
        target, self.target = self.target, None
        if target is None:
            return
        close = getattr(target, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()
        if self.recorder is not None:
            self.recorder.event(self.trace_session, "end")

    def close(self) -> None:
        self._close_target()

    # -- dispatch -----------------------------------------------------------------------

    def handle(self, message: Any) -> Any:
        """The reply to one parsed JSON message (None for a notification)."""
        if isinstance(message, list):
            if not message:
                return protocol.failure(None, protocol.INVALID_REQUEST, "an empty batch")
            if len(message) > protocol.MAX_BATCH:
                return protocol.failure(None, protocol.INVALID_REQUEST,
                                        f"a batch of {len(message)} requests (at most "
                                        f"{protocol.MAX_BATCH})")
            replies = [self.handle_one(item) for item in message]
            return [r for r in replies if r is not None] or None
        return self.handle_one(message)

    def handle_one(self, message: Any) -> dict[str, Any] | None:
        """The reply to one request; a bug of the agent is an internal error, not an end."""
        try:
            return self._handle_one(message)
        except Exception as error:
            return protocol.failure(_request_id(message), protocol.INTERNAL_ERROR,
                                    protocol.clip(f"the agent failed: "
                                                  f"{type(error).__name__}: {error}"))

    def _handle_one(self, message: Any) -> dict[str, Any] | None:
        request_id = _request_id(message)
        if (
            not isinstance(message, dict)
            or message.get("jsonrpc") != "2.0"
            or not isinstance(message.get("method"), str)
            or not (set(message) <= {"jsonrpc", "id", "method", "params"})
            or ("id" in message and message["id"] is not None and request_id is None)
        ):
            return protocol.failure(request_id, protocol.INVALID_REQUEST,
                                    "not a JSON-RPC 2.0 request object")
        if "id" not in message:
            return None  # a notification: this protocol has none, and it is never answered
        try:
            result = self.dispatch(message["method"], message.get("params"))
        except _RpcError as error:
            return protocol.failure(request_id, error.code, error.message, error.data)
        return protocol.success(request_id, result)

    def dispatch(self, method: str, params: Any) -> Any:
        if method == "initialize":
            return self._initialize(params)
        if method == "shutdown":
            _invalid_params(protocol.named_params, method, params, ())
            self.closing = True
            self._close_target()
            return None
        if method == "reset":
            self._require_initialized()
            _invalid_params(protocol.named_params, method, params, ())
            return self._new_target()
        if method not in protocol.METHODS:
            raise _RpcError(protocol.METHOD_NOT_FOUND, f"no method {method!r}")
        self._require_initialized()
        if method not in self.methods():
            raise _RpcError(protocol.METHOD_NOT_FOUND,
                            f"no method {method!r}: the target does not declare ring-bytes")
        arguments = _invalid_params(protocol.check_params, method, params)
        if self.lost is not None:
            raise _RpcError(protocol.TARGET_FAULT,
                            f"the target was lost after a {self.lost} in an earlier call; "
                            "send reset (or initialize) for a fresh one", {"kind": self.lost})
        _invalid_params(self.handles.check, method, arguments)
        try:
            return self._call_target(method, params, arguments)
        except _RpcError as error:
            if error.code == protocol.TARGET_FAULT:
                self.lost = str((error.data or {}).get("kind", "crash"))
            raise

    def methods(self) -> list[str]:
        """What ``initialize`` lists: every method this agent answers for the current target
        (``ring_bytes`` only with the capability ring-bytes)."""
        return [*protocol.SESSION_METHODS, *(
            m for m in protocol.METHODS if m != "ring_bytes" or "ring-bytes" in self.capabilities
        )]

    def _require_initialized(self) -> None:
        if not self.initialized or self.target is None:
            raise _RpcError(protocol.NOT_INITIALIZED, "call initialize first")

    def _initialize(self, params: Any) -> dict[str, Any]:
        params = _invalid_params(protocol.named_params, "initialize", params,
                                 ("protocol", "client"), ("protocol",))
        version = params["protocol"]
        if type(version) is not int:
            raise _RpcError(protocol.INVALID_PARAMS, f"protocol must be a JSON integer, not "
                            f"{json.dumps(version)[:40]}")
        if "client" in params and not isinstance(params["client"], str):
            raise _RpcError(protocol.INVALID_PARAMS, "client must be a string")
        if version != protocol.PROTOCOL_VERSION:
            raise _RpcError(protocol.UNSUPPORTED_VERSION,
                            f"protocol version {version!r:.40} is not supported",
                            {"supported": [protocol.PROTOCOL_VERSION]})
        info = self._new_target()
        self.initialized = True
        return {
            "protocol": protocol.PROTOCOL_VERSION,
            "agent": AGENT_NAME,
            **info,
            "max_message_bytes": MAX_MESSAGE_BYTES,
            "methods": self.methods(),
        }

    def _call_target(self, method: str, raw: Any, arguments: dict[str, Any]) -> Any:
        target = self.target
        if method == "completions":
            calls, self.pending = self.pending, []
            self._drain()
            calls += self.pending
            self.pending = []
            return protocol.encode_value("completions", calls)
        if method == "host_complete" and not self.handles.is_awaiting(
            arguments["channel"], arguments["transaction_id"]
        ):
            return None  # no transaction awaits it: nothing happens, as on the real host
        values = list(arguments.values())
        if method == "send_with_external_mdl" and values[1] is not None:
            values[1] = bytearray(values[1])  # the interface passes the caller's bytearray
        try:
            result = getattr(target, method)(*values)
        except Exception as error:
            reply = self._error_for(error)
            self._record("error", method=method, params=raw,
                         error={"code": reply.code, "message": reply.message})
            raise reply from error
        self.handles.note(method, arguments, result)
        _, kind = protocol.METHODS[method]
        encoded = protocol.encode_value(kind, result)
        if method == "host_take_packet":
            self._record("packet", channel=arguments["channel"], bytes=encoded)
        elif method == "host_complete":
            self._record("host_complete", **raw)
        elif method != "ring_bytes":
            self._record("call", method=method, params=raw, result=encoded)
        if method != "ring_bytes":
            self._drain()
        return encoded

    def _drain(self) -> None:
        """Moves the backend's completion-routine calls into the buffer (and the trace)."""
        try:
            calls = list(self.target.completions())
        except Exception as error:
            raise self._error_for(error) from error
        for packet, status, data in calls:
            self._record("completion", packet=int(packet), status=int(status),
                         data=bytes(data).hex())
        self.pending.extend((int(p), int(s), bytes(d)) for p, s, d in calls)

    def _record(self, event: str, **fields: Any) -> None:
        if self.recorder is not None:
            self.recorder.event(self.trace_session, event, **fields)

    @staticmethod
    def _error_for(error: Exception) -> _RpcError:
        """The reply to a backend call that raised: a fault (-32004) if it crashed or hung,
        else a target error (-32000). Never invalid params: the agent has checked everything
        the page calls the client's mistake before the call, so what the backend refuses
        after that is the target's failure (a ring it cannot make, say)."""
        kind = getattr(error, "kind", None)
        text = protocol.clip(str(error))
        if kind in ("crash", "hang"):
            return _RpcError(protocol.TARGET_FAULT, f"the backend {kind}ed: {text}",
                             {"kind": kind})
        return _RpcError(protocol.TARGET_ERROR, f"{type(error).__name__}: {text}")


def _invalid_params(check: Callable[..., Any], *args: Any) -> Any:
    """``check(*args)``, its ValueError answered as invalid params (-32602)."""
    try:
        return check(*args)
    except ValueError as error:
        raise _RpcError(protocol.INVALID_PARAMS, str(error)) from error


def _request_id(message: Any) -> int | str | None:
    """The id to answer ``message`` with: its own if it is a usable one, else null."""
    request_id = message.get("id") if isinstance(message, dict) else None
    if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
        return None
    if isinstance(request_id, str) and len(request_id) > protocol.MAX_ID_CHARS:
        return None
    return request_id


def _deadline(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds


def serve_stream(stream: MessageStream, session: Session,
                 idle_timeout: float | None = None) -> None:
    """Answers requests on ``stream`` until the client closes it or says ``shutdown``, or
    sends no whole request (or reads no reply) for ``idle_timeout`` seconds (None: no limit)."""
    try:
        while not session.closing:
            try:
                line = stream.read_line(_deadline(idle_timeout))
            except FrameTooLarge as error:
                _reply(stream, protocol.failure(None, protocol.MESSAGE_TOO_LARGE, str(error),
                                                {"max_message_bytes": stream.max_bytes}),
                       idle_timeout)
                stream.skip_line(_deadline(idle_timeout))
                continue
            except FrameTimeout:
                _say_goodbye(stream, protocol.failure(
                    None, protocol.IDLE_TIMEOUT,
                    f"no request for {idle_timeout:g} s: the agent closes this connection"))
                return
            try:
                message = protocol.decode_message(line)
            except protocol.MessageError as error:
                _reply(stream, protocol.failure(None, protocol.PARSE_ERROR, str(error)),
                       idle_timeout)
                continue
            reply = session.handle(message)
            if reply is not None:
                _reply(stream, reply, idle_timeout)
    except (FrameClosed, FrameTimeout):
        pass
    finally:
        session.close()


def _reply(stream: MessageStream, reply: Any, timeout: float | None = None) -> None:
    data = protocol.dumps(reply)
    if len(data) > stream.max_bytes:
        request_id = reply.get("id") if isinstance(reply, dict) else None
        data = protocol.dumps(protocol.failure(
            request_id, protocol.MESSAGE_TOO_LARGE,
            f"the reply would be {len(data)} bytes, over the {stream.max_bytes}-byte limit",
            {"max_message_bytes": stream.max_bytes},
        ))
    stream.write_line(data, _deadline(timeout))


def _say_goodbye(stream: MessageStream, message: dict[str, Any]) -> None:
    """A last error line (id null) for a connection about to be closed, if it takes it."""
    with contextlib.suppress(FrameClosed, FrameTimeout):
        stream.write_line(protocol.dumps(message), _deadline(_FAREWELL_SECONDS))


# -- listening ------------------------------------------------------------------------------


def parse_listen(listen: str) -> tuple[str, int] | None:
    """None for ``stdio``; ``(host, port)`` for ``tcp://HOST:PORT``. ValueError otherwise."""
    if listen == "stdio":
        return None
    parts = urlsplit(listen)
    if parts.scheme != "tcp" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"--listen must be stdio or tcp://HOST:PORT, not {listen!r}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {listen!r}") from None
    if port is None:
        raise ValueError(f"--listen {listen!r} needs a port (0 picks a free one)")
    return parts.hostname, port


def check_limits(max_connections: Any, idle_timeout: Any) -> None:
    """ValueError naming the option unless both are sensible."""
    if isinstance(max_connections, bool) or not isinstance(max_connections, int) or not (
        1 <= max_connections <= 100_000
    ):
        raise ValueError(f"--max-connections must be an integer from 1 to 100000, not "
                         f"{max_connections!r:.40}")
    if isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)) or not (
        math.isfinite(idle_timeout) and 0 < idle_timeout <= MAX_IDLE_TIMEOUT
    ):
        raise ValueError(f"--idle-timeout must be a number of seconds above 0 and at most "
                         f"{MAX_IDLE_TIMEOUT:g}, not {idle_timeout!r:.40}")


class TcpAgent(socketserver.ThreadingTCPServer):
    """An agent listening on TCP; one session per connection, each in its own thread, at most
    ``max_connections`` at once, each closed after ``idle_timeout`` seconds without a request."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, factory: BackendFactory, host: str, port: int,
                 recorder: TraceRecorder | None = None, *,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS,
                 idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        check_limits(max_connections, idle_timeout)
        self.factory = factory
        self.recorder = recorder
        self.max_connections = max_connections
        self.idle_timeout = float(idle_timeout)
        self._count_lock = threading.Lock()
        self._active = 0
        super().__init__((host, port), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        """An accepted connection, with TCP_NODELAY set: each reply goes out in one send
        (:func:`_reply`), and without Nagle's algorithm it leaves at once instead of waiting for
        the ACK of the previous one (which the client may delay by 40-200 ms)."""
        sock, address = super().get_request()
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address

    @property
    def active_connections(self) -> int:
        """Connections being served now."""
        with self._count_lock:
            return self._active

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count_lock:
            admitted = self._active < self.max_connections
            if admitted:
                self._active += 1
        if not admitted:
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._leave()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._leave()

    def _leave(self) -> None:
        with self._count_lock:
            self._active -= 1

    def _refuse(self, sock: socket.socket) -> None:
        """Tells a connection over the cap why it is closed, and closes it, without waiting
        (this runs in the thread that accepts connections). What the client already sent is
        read and dropped first; if its request arrives later, the client still finds the
        refusal before the reset."""
        refusal = protocol.dumps(protocol.failure(
            None, protocol.TOO_MANY_CONNECTIONS,
            f"the agent already serves {self.max_connections} connections; try again later",
            {"max_connections": self.max_connections},
        ))
        try:
            sock.setblocking(False)
            sock.send(refusal + b"\n")  # a new connection's send buffer takes it whole
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(_FAREWELL_DRAIN):
                pass
        except OSError:  # BlockingIOError: nothing more to drop now
            pass
        finally:
            sock.close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"tcp://{host!s}:{port}"

    def start(self) -> TcpAgent:
        """Serves in a background thread (for tests and embedding); stop with ``stop``."""
        threading.Thread(target=self.serve_forever, name="vmbspec-agent", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(socketserver.BaseRequestHandler):
    server: TcpAgent

    def handle(self) -> None:
        stream = MessageStream(sock=self.request)
        serve_stream(stream, Session(self.server.factory, self.server.recorder),
                     self.server.idle_timeout)


def serve(
    factory: BackendFactory,
    listen: str,
    *,
    trace: str | os.PathLike[str] | None = None,
    on_listening: Callable[[str], None] | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
) -> int:
    """Serves ``factory``'s targets on ``listen`` (``stdio`` or ``tcp://HOST:PORT``) until
    the input ends (stdio) or the process is interrupted (TCP). Returns an exit status.
    ``max_connections`` and ``idle_timeout`` apply to TCP (see the module docstring)."""
    address = parse_listen(listen)
    check_limits(max_connections, idle_timeout)
    recorder = TraceRecorder(trace) if trace is not None else None
    try:
        if address is None:
            # Private copies of the protocol's streams; anything the backend prints goes to
            # stderr, so it cannot corrupt a reply.
            read_fd, write_fd = os.dup(0), os.dup(1)
            os.dup2(2, 1)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.close(devnull)
            if on_listening is not None:
                on_listening("stdio")
            serve_stream(MessageStream(read_fd=read_fd, write_fd=write_fd), Session(
                factory, recorder))
            return 0
        host, port = address
        with TcpAgent(factory, host, port, recorder, max_connections=max_connections,
                      idle_timeout=idle_timeout) as agent:
            if on_listening is not None:
                on_listening(agent.url)
            with contextlib.suppress(KeyboardInterrupt):
                agent.serve_forever()
        return 0
    finally:
        if recorder is not None:
            recorder.close()


def log_listening(url: str) -> None:
    """The default ``on_listening``: one line on stderr, which tests and scripts can read."""
    print(f"vmbspec agent: listening on {url}", file=sys.stderr, flush=True)
