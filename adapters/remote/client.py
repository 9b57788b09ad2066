"""The client: a target behind the remote protocol (``--target remote:...``).

Theory of operation
-------------------
:func:`resolve` turns ``remote:tcp://HOST:PORT`` or ``remote:stdio:COMMAND`` into a
:class:`RemoteFactory`. Resolving performs the handshake once, so a wrong address or an agent
that does not answer is a one-line error before any case runs, and so the target's name and
capabilities are known without connecting again.

Each call of the factory returns a :class:`RemoteTarget`, which connects lazily: its first
method takes the factory's idle connection and sends ``reset`` (a fresh backend target), or
opens a new connection (TCP: connect; stdio: start the command) and sends ``initialize``.
Closing a healthy target hands its connection back for the next one; so a stdio agent is
started once per run, not once per case.

Every read has a deadline (``timeout`` seconds a call). A fault becomes :class:`RemoteFault`,
whose ``kind`` the runner turns into a verdict: ``"hang"`` when no answer came in time,
``"crash"`` when the connection closed, the reply was not JSON or broke a limit of
:func:`adapters.remote.protocol.decode_message` (too deep, an integer too long, NaN), had the
wrong id, was not a JSON-RPC response or was over the size limit, or when the agent reported
that its backend crashed. The message names the method and what was wrong with the reply. The
faulty connection is closed (a stdio agent is killed) and the target refuses further calls;
the next target from the factory reconnects.

Reconnecting is bounded: a target that needs a new connection (after a fault, or because the
idle one was dropped) tries :data:`RECONNECT_ATTEMPTS` times, pausing between tries, each try
bounded by the call timeout (TCP) or the start timeout (stdio: a process to start). When every
try fails, the factory is *unreachable* from then on: that target and every later one fail at
once with a fault of kind ``"unreachable"``, which the runner takes as the end of the run (one
verdict, the rest listed as not run) instead of a timeout per remaining case.

A reply that came in step but breaks the protocol's shapes (a result of the wrong type, ``""``
where ``null`` is expected, a packet with its ring trailer, a ring of the wrong size) is a
:class:`RemoteProtocolError`, kind ``"protocol-error"``, with a hint for the harness author;
so is an error reply the protocol has no room for (an error to ``send_with_external_mdl``,
whose every outcome is an NTSTATUS; ``method not found``; ``invalid params`` for a call the
suite builds only from handles the agent issued). The connection stays in use. Any other
well-formed error reply is :class:`RemoteError` of kind ``"target-error"`` (the driver
failed). Texts from the agent (error messages, data, its stderr, the target's name) are cut to
a few hundred characters (:func:`adapters.remote.protocol.clip`).

Messages name what the agent knows: ``packet handle 3`` is the target's handle, never the
index of a packet in a step list (which the suite's own messages name).

An idle connection kept between targets is dropped, not reused, when the agent has closed it
or said something on it meanwhile (an agent closes connections idle past its deadline).

``remote:stdio:vmbspec ...`` runs the ``vmbspec`` script beside the running interpreter, or
``python -m vmbspec.conformance.cli`` with it (a subprocess), so that it works without an activated
virtual environment and always runs the same vmbspec as the client.

The in-line buffer crosses the connection as a copy of its bytes at the call, as it does for
an isolated native target; reading A11 allows a target to read them then.

Each request is written in one ``send`` and TCP connections set ``TCP_NODELAY``: a request
written in pieces meets Nagle's algorithm and the peer's delayed ACK (tens of milliseconds a
message).
"""

from __future__ import annotations

import contextlib
import json
import math
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from vmbspec.adapters.remote import protocol
from vmbspec.adapters.remote.framing import (
    MAX_MESSAGE_BYTES,
    FrameClosed,
    FrameError,
    FrameTimeout,
    FrameTooLarge,
    MessageStream,
)

#: Seconds one call may take when the command line gives no ``--timeout``.
DEFAULT_TIMEOUT = 10.0
#: Seconds to connect (or start the command) and finish the handshake.
START_TIMEOUT = 30.0
#: The longest ``--timeout`` accepted: one day.
MAX_TIMEOUT = 86400.0
#: Tries at a new connection before the agent is declared unreachable, and the pauses
#: between them (seconds): an agent restarted by a supervisor gets a moment to come back.
RECONNECT_ATTEMPTS = 3
RECONNECT_PAUSES = (0.5, 1.0)
#: Most capabilities an agent may state, and characters in one.
_MAX_CAPABILITIES = 64
_MAX_CAPABILITY_CHARS = 100
#: The ring's control page, and the trailer after each packet in the ring (bytes).
_CONTROL_PAGE = 4096
_TRAILER = 8
_DESCRIPTOR = 16

#: Where the page says each thing a protocol error is about.
PAGE = "docs/remote-protocol.md"


class RemoteFault(Exception):
    """The agent crashed or hung (``kind`` is ``"crash"`` or ``"hang"``), and its state is
    lost; or it cannot be reached any more (``"unreachable"``: see :class:`RemoteFactory`).
    ``calls`` lists the calls made on that connection, the fatal one last."""

    def __init__(self, kind: str, detail: str, calls: Sequence[str] = ()) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail
        self.calls = list(calls)

    def __str__(self) -> str:
        if not self.calls:
            return self.detail
        return f"{self.detail} (after {len(self.calls)} call(s); last call {self.calls[-1]})"


#: Error codes that mean the agent and the client disagree about the protocol (a harness
#: bug), not that the driver failed; with the hint for the harness author.
_PROTOCOL_CODES = {
    protocol.PARSE_ERROR: "the client writes each request as one JSON line; an agent that "
    "cannot read one misreads the framing",
    protocol.INVALID_REQUEST: "the client sends JSON-RPC 2.0 requests as the page shows them",
    protocol.METHOD_NOT_FOUND: "an agent serves every target method of the page (ring_bytes "
    "only with the capability ring-bytes)",
    protocol.INVALID_PARAMS: "the client sends each method the params the page lists, with "
    "values it allows, and only handles the agent issued since the last reset (a freed "
    "packet's handle stays valid: the driver answers for it)",
    protocol.NOT_INITIALIZED: "the client sent initialize (or reset) first: the agent lost "
    "the session",
    protocol.MESSAGE_TOO_LARGE: "an agent's max_message_bytes must hold the suite's largest "
    "request (a send with its buffer and MDL chain, a few KiB; the reference agent takes 8 MiB)",
    protocol.INTERNAL_ERROR: "the agent reports a bug of its own while handling the request, "
    "not a failure of the driver",
}


class RemoteError(RuntimeError):
    """The agent answered with a JSON-RPC error. ``kind`` is ``"target-error"`` (the driver
    failed, -32000 and the codes the page leaves to the agent) or ``"protocol-error"`` (the
    agent and the client disagree about the protocol: see :data:`_PROTOCOL_CODES`)."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        name = protocol.ERROR_NAMES.get(code, "error")
        text = f"{method}: agent error {code} ({name}): {protocol.clip(message)}"
        hint = _error_hint(method, code)
        super().__init__(f"{text}; {hint}" if hint else text)
        self.method = method
        self.code = code
        self.data = protocol.clip_data(data)
        self.kind = "protocol-error" if hint else "target-error"


def _error_hint(method: str, code: int) -> str:
    """Why an error reply ``code`` to ``method`` is a protocol error (empty: it is not)."""
    hint = _PROTOCOL_CODES.get(code)
    if hint is None and method == "send_with_external_mdl":
        hint = ("a send the driver rejects is a result, not an error: reply with the NTSTATUS "
                "VmbPacketSendWithExternalMdl returned, as an unsigned integer (3221225485 "
                "for STATUS_INVALID_PARAMETER 0xC000000D)")
    return f"{hint} ({PAGE})" if hint else ""


class RemoteProtocolError(RemoteError):
    """A reply that came in step but is not what the protocol says ``method`` returns (a
    result of the wrong type, ``""`` where ``null`` is expected, a packet with its trailer):
    a bug of the harness, with a hint. The connection is still usable."""

    def __init__(self, method: str, problem: str, hint: str) -> None:
        RuntimeError.__init__(self, f"{method}: {problem}; {hint} ({PAGE})")
        self.method = method
        self.code = 0
        self.data = None
        self.kind = "protocol-error"


# -- addresses ------------------------------------------------------------------------------


class Address:
    """Where an agent is: ``tcp://HOST:PORT`` or ``stdio:COMMAND``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.host = ""
        self.port = 0
        self.command: list[str] = []
        if text.startswith("stdio:"):
            try:
                self.command = shlex.split(text.removeprefix("stdio:"))
            except ValueError as error:
                raise ValueError(f"remote:{text}: cannot split the command: {error}") from None
            if not self.command:
                raise ValueError("remote:stdio: needs a command, e.g. "
                                 "remote:stdio:vmbspec agent --backend sim --listen stdio")
            self.kind = "stdio"
            return
        if not text.startswith("tcp:"):
            raise ValueError(f"remote target {text[:80]!r}: expected remote:tcp://HOST:PORT or "
                             "remote:stdio:COMMAND")
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in (
            "", "/"
        ):
            raise ValueError(f"remote target {text[:80]!r}: expected remote:tcp://HOST:PORT or "
                             "remote:stdio:COMMAND")
        self.kind = "tcp"
        self.host = parts.hostname
        self.port = port


class Connection:
    """One connection to an agent; every request waits at most ``timeout`` seconds."""

    def __init__(self, stream: MessageStream, process: subprocess.Popen[bytes] | None = None,
                 stderr: IO[bytes] | None = None) -> None:
        self.stream = stream
        self.process = process
        self.stderr = stderr
        self.next_id = 1
        self.max_bytes = MAX_MESSAGE_BYTES
        self.healthy = True
        self.calls: list[str] = []

    @classmethod
    def open(cls, address: Address, timeout: float) -> Connection:
        if address.kind == "tcp":
            try:
                sock = socket.create_connection((address.host, address.port), timeout=timeout)
            except OSError as error:
                raise RemoteFault(
                    "crash", f"cannot connect to tcp://{address.host}:{address.port}: {error}"
                ) from error
            # One write a request (MessageStream.write_line) and no Nagle delay: a request
            # must not wait for the ACK of the one before (see the module docstring).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return cls(MessageStream(sock=sock))
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by Connection.close
        try:
            process = subprocess.Popen(
                command_line(address.command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=stderr,
            )
        except (OSError, ValueError) as error:  # ValueError: a NUL byte in the command
            stderr.close()
            raise RemoteFault("crash", f"cannot start {address.command[0][:80]!r}: "
                              f"{error}") from error
        assert process.stdin is not None and process.stdout is not None
        # The pipes' file objects own the descriptors: closed once, in close().
        stream = MessageStream(read_fd=process.stdout.fileno(), write_fd=process.stdin.fileno(),
                               close_fds=False)
        return cls(stream, process, stderr)

    def _stderr_tail(self) -> str:
        if self.stderr is None or self.stderr.closed:
            return ""
        try:
            self.stderr.seek(0)
            self.stderr.seek(0, 2)
            size = self.stderr.tell()
            self.stderr.seek(max(0, size - protocol.MAX_TEXT))
            lines = self.stderr.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            return ""
        text = " | ".join(line.strip() for line in lines if line.strip())
        if not text:
            return ""
        cut = f" ({size - protocol.MAX_TEXT} earlier bytes left out)" if (
            size > protocol.MAX_TEXT) else ""
        return f"; agent stderr{cut}: {text}"

    def _exit_detail(self) -> str:
        if self.process is None:
            return ""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=1.0)
        code = self.process.poll()
        state = "still running" if code is None else f"exit status {code}"
        return f" (agent {state}{self._stderr_tail()})"

    def fault(self, kind: str, detail: str) -> RemoteFault:
        """Closes the connection and returns the exception describing why."""
        self.healthy = False
        if kind == "crash":
            detail += self._exit_detail()
        self.close(graceful=False)
        return RemoteFault(kind, detail, self.calls)

    def call(self, method: str, params: dict[str, Any] | None, timeout: float) -> Any:
        """The result of ``method``; RemoteError for an error reply, RemoteFault for a fault."""
        if not self.healthy:
            raise RemoteFault("crash", "the connection to the agent was lost earlier",
                              self.calls)
        request_id = self.next_id
        self.next_id += 1
        self.calls.append(_show_call(method, params))
        deadline = time.monotonic() + timeout
        data = protocol.request(request_id, method, params)
        if len(data) > self.max_bytes:
            raise RemoteError(method, protocol.MESSAGE_TOO_LARGE,
                              f"the request would be {len(data)} bytes, over the agent's "
                              f"{self.max_bytes}-byte limit")
        try:
            self.stream.write_line(data, deadline)
            line = self.stream.read_line(deadline)
        except FrameTimeout:
            raise self.fault("hang", f"no answer to {method} within {timeout:g} s") from None
        except FrameClosed:
            raise self.fault("crash", f"the agent closed the connection during {method}") \
                from None
        except FrameTooLarge as error:
            raise self.fault("crash", f"the reply to {method} is oversized: {error}") from None
        except FrameError as error:  # pragma: no cover - every subclass is handled above
            raise self.fault("crash", f"{method}: {error}") from None
        try:
            reply = protocol.decode_message(line)
        except protocol.MessageError as error:
            raise self.fault("crash", f"the reply to {method} is unusable: {error}: "
                             f"{protocol.excerpt(line)}") from None
        return self._unpack(method, request_id, reply, line)

    def _unpack(self, method: str, request_id: int, reply: Any, line: bytes) -> Any:
        if (
            not isinstance(reply, dict)
            or reply.get("jsonrpc") != "2.0"
            or ("result" in reply) == ("error" in reply)
            or not set(reply) <= {"jsonrpc", "id", "result", "error"}
        ):
            raise self.fault("crash", f"the reply to {method} is not a JSON-RPC 2.0 response: "
                             f"{protocol.excerpt(line)}")
        reply_id = reply.get("id")
        error: Any = reply.get("error")
        if reply_id is None and _is_error_object(error):
            # The agent could not read the request at all (parse error, too large), or
            # refused the connection, or closed it as idle.
            raise self.fault("crash", _unaddressed(method, error))
        if type(reply_id) is not int or reply_id != request_id:
            raise self.fault("crash", f"the reply to {method} has id {reply_id!r:.40}, "
                             f"expected {request_id}")
        if "error" in reply:
            if not _is_error_object(error):
                raise self.fault("crash", f"the error reply to {method} is malformed (not "
                                 "{code: integer, message: string, data?}): "
                                 f"{protocol.excerpt(line)}")
            data = error.get("data")
            if error["code"] == protocol.TARGET_FAULT and isinstance(data, dict) and (
                data.get("kind") in ("crash", "hang")
            ):
                raise self.fault(str(data["kind"]),
                                 f"{method}: {protocol.clip(error['message'])}")
            raise RemoteError(method, error["code"], error["message"], data)
        return reply["result"]

    def handshake(self, timeout: float) -> dict[str, Any]:
        info = self.call("initialize", {"protocol": protocol.PROTOCOL_VERSION,
                                        "client": "vmbspec"}, timeout)
        return self._target_info("initialize", info)

    def reset(self, timeout: float) -> dict[str, Any]:
        return self._target_info("reset", self.call("reset", None, timeout))

    def _target_info(self, method: str, info: Any) -> dict[str, Any]:
        if not isinstance(info, dict) or not isinstance(info.get("target"), str) or not (
            isinstance(info.get("capabilities"), list)
            and all(isinstance(c, str) for c in info["capabilities"])
        ):
            raise self.fault("crash", f"the result of {method} is malformed: it needs target "
                             "(a string) and capabilities (an array of strings)")
        capabilities = info["capabilities"]
        if len(capabilities) > _MAX_CAPABILITIES or any(
            len(c) > _MAX_CAPABILITY_CHARS for c in capabilities
        ):
            raise self.fault("crash", f"the result of {method} is malformed: more than "
                             f"{_MAX_CAPABILITIES} capabilities, or one longer than "
                             f"{_MAX_CAPABILITY_CHARS} characters")
        info["target"] = protocol.clip(info["target"], 100)
        limit = info.get("max_message_bytes")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            # What we send must fit the agent's limit; what we read must fit ours.
            self.max_bytes = min(limit, MAX_MESSAGE_BYTES)
        return info

    def close(self, graceful: bool = True) -> None:
        if graceful and self.healthy:
            with contextlib.suppress(RemoteFault, RemoteError):
                self.call("shutdown", None, 2.0)
        self.healthy = False
        self.stream.close()
        process, self.process = self.process, None
        if process is not None:
            if process.stdin is not None:
                with contextlib.suppress(OSError):
                    process.stdin.close()  # the end of its input: an agent exits
            if process.poll() is None and not graceful:
                process.kill()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=2.0)
            if process.stdout is not None:
                with contextlib.suppress(OSError):
                    process.stdout.close()
        if self.stderr is not None:
            with contextlib.suppress(OSError):
                self.stderr.close()


def _is_error_object(error: Any) -> bool:
    return (
        isinstance(error, dict)
        and type(error.get("code")) is int
        and isinstance(error.get("message"), str)
        and set(error) <= {"code", "message", "data"}
    )


def _unaddressed(method: str, error: dict[str, Any]) -> str:
    """What an error reply with id null to ``method`` means."""
    code, text = error["code"], protocol.clip(error["message"])
    if code == protocol.TOO_MANY_CONNECTIONS:
        return f"the agent refused the connection at {method}: {text}"
    if code == protocol.IDLE_TIMEOUT:
        return f"the agent closed the connection as idle before {method}: {text}"
    name = protocol.ERROR_NAMES.get(code, "error")
    return f"the agent could not read the {method} request: error {code} ({name}): {text}"


def command_line(command: Sequence[str], interpreter: str | None = None) -> list[str]:
    """The argv to run for ``remote:stdio:COMMAND``: a first word ``vmbspec`` is the script
    beside ``interpreter`` (the running Python), or that Python with ``-m vmbspec.conformance.cli``
    (a subprocess: this adapter imports nothing from the suite)."""
    words = list(command)
    if not words or words[0] != "vmbspec":
        return words
    python = Path(interpreter or sys.executable)
    script = python.parent / "vmbspec"
    if script.is_file():
        return [str(script), *words[1:]]
    return [str(python), "-m", "vmbspec.conformance.cli", *words[1:]]


def check_timeout(timeout: Any) -> float | None:
    """``--timeout`` for a remote target: None, or a finite number of seconds above 0 and at
    most :data:`MAX_TIMEOUT`; ValueError with the reason otherwise."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not (
        math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT
    ):
        raise ValueError(f"--timeout must be a number of seconds above 0 and at most "
                         f"{MAX_TIMEOUT:g} for a remote target, not {timeout!r:.40}")
    return float(timeout)


#: Parameters that are the target's handles: shown as such, apart from sizes and flags.
_HANDLE_PARAMS = ("channel", "packet")


def _show_call(method: str, params: dict[str, Any] | None) -> str:
    """``free_packet(packet handle 3)``: a call as a message shows it, handles named as the
    target's handles (never to be read as the index of a packet in a step list)."""
    shown = ", ".join(
        f"{k} handle {v}" if k in _HANDLE_PARAMS and isinstance(v, int)
        else f"{k}={v:#x}" if isinstance(v, int) and not isinstance(v, bool)
        else f"{k}={json.dumps(v)[:40]}"
        for k, v in (params or {}).items()
    )
    return f"{method}({shown})"


# -- the factory and the target -------------------------------------------------------------


class RemoteFactory:
    """Makes :class:`RemoteTarget` objects on one agent, reusing a healthy connection, and
    reconnecting a bounded number of times (see the module docstring)."""

    def __init__(self, address: Address, timeout: float = DEFAULT_TIMEOUT,
                 start_timeout: float = START_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.name = f"remote:{address.text}"
        self.capabilities: frozenset[str] = frozenset()
        #: Set when every try at a new connection failed: why. From then on no target of
        #: this factory tries again.
        self.unreachable: str | None = None
        # A one-slot list, so that the finalizer can close the idle connection (an agent
        # process) without keeping the factory alive.
        self._idle: list[Connection] = []
        weakref.finalize(self, _close_idle, self._idle)

    def probe(self) -> None:
        """Connects and shakes hands, keeping the connection for the first target."""
        connection = Connection.open(self.address, self.start_timeout)
        info = connection.handshake(self.start_timeout)
        self.name = f"remote:{info['target']}"
        self.capabilities = frozenset(info["capabilities"])
        self.release(connection)

    def acquire(self) -> Connection:
        if self.unreachable is not None:
            raise RemoteFault("unreachable", self.unreachable)
        connection = self._idle.pop() if self._idle else None
        if connection is not None and connection.healthy and connection.stream.pending():
            # Something arrived on a connection nobody asked anything: the agent closed it
            # (idle deadline) or broke it. Start afresh rather than read that as a reply.
            connection.close(graceful=False)
            connection = None
        if connection is not None and connection.healthy:
            connection.reset(self.timeout)
            connection.calls = []
            return connection
        return self._reconnect()

    def _reconnect(self) -> Connection:
        """A new connection, shaken hands with, in at most :data:`RECONNECT_ATTEMPTS` tries;
        else the factory is unreachable from now on (RemoteFault of that kind)."""
        started = time.monotonic()
        # TCP: the agent is running, a connect and a handshake take a call's time at most;
        # stdio: a process starts.
        budget = self.timeout if self.address.kind == "tcp" else self.start_timeout
        last = ""
        for attempt in range(RECONNECT_ATTEMPTS):
            if attempt:
                time.sleep(RECONNECT_PAUSES[min(attempt, len(RECONNECT_PAUSES)) - 1])
            try:
                connection = Connection.open(self.address, budget)
            except RemoteFault as fault:
                last = fault.detail
                continue
            try:
                connection.handshake(budget)
            except RemoteFault as fault:
                last = fault.detail
                continue
            except RemoteError:
                connection.close(graceful=False)
                raise
            connection.calls = []
            return connection
        self.unreachable = (
            f"the agent at {self.address.text[:120]} did not answer {RECONNECT_ATTEMPTS} tries "
            f"to connect and shake hands over {time.monotonic() - started:.1f} s (each "
            f"bounded by {budget:g} s); the last: {last}"
        )
        _close_idle(self._idle)
        raise RemoteFault("unreachable", self.unreachable)

    def release(self, connection: Connection) -> None:
        if not connection.healthy:
            connection.close(graceful=False)
            return
        while self._idle:
            self._idle.pop().close()
        self._idle.append(connection)

    def close(self) -> None:
        """Ends the idle connection (a stdio agent exits); later targets reconnect."""
        _close_idle(self._idle)

    def __call__(self) -> RemoteTarget:
        return RemoteTarget(self)


def _close_idle(slot: list[Connection]) -> None:
    while slot:
        slot.pop().close()


#: What a result of each kind must be, for the hint of a protocol error.
_RESULT_HINTS = {
    "none": "this method's result is null (JSON null: not \"\", 0, {} or true)",
    "handle": "a handle is a JSON integer literal in 0..2**64-1 (not a string, not 1.0)",
    "handle?": "the result is a packet handle (a JSON integer literal), or null when "
    "VmbPacketAllocate returned NULL",
    "u32": "the result is the NTSTATUS as an unsigned 32-bit JSON integer literal (3221225485 "
    "for 0xC000000D; not negative, not a string, not a float)",
    "hex": "bytes are a string of hex digits, two a byte",
    "hex?": "the result is the packet's bytes as hex, without the 8-byte ring trailer, or null "
    "when the ring holds no packet",
    "completions": "the result is an array of {packet, status, data} objects, one per "
    "completion-routine call since the last completions, oldest first",
}


class RemoteTarget:
    """The target interface over the remote protocol; see the module docstring."""

    def __init__(self, factory: RemoteFactory) -> None:
        self.factory = factory
        self.name = factory.name
        self.capabilities = factory.capabilities
        self._connection: Connection | None = None
        self._closed = False
        #: ring_data_size of each channel this target created, by handle.
        self._ring_sizes: dict[int, int] = {}

    def _call(self, method: str, **params: Any) -> Any:
        if self._closed:
            raise RemoteFault("crash", f"{method} on a closed remote target")
        if self._connection is None:
            self._connection = self.factory.acquire()
        connection = self._connection
        spec, kind = protocol.METHODS[method]
        encoded = {name: protocol.encode_value(spec[name], value)
                   for name, value in params.items()}
        result = connection.call(method, encoded, self.factory.timeout)
        try:
            return protocol.check_result(method, result)
        except ValueError as error:
            shown = protocol.clip(json.dumps(result), 60)
            raise RemoteProtocolError(
                method, f"the reply {shown} is not a result of this method: {error}",
                _RESULT_HINTS[kind],
            ) from None

    def create_channel(self, ring_data_size: int) -> int:
        channel = int(self._call("create_channel", ring_data_size=ring_data_size))
        self._ring_sizes[channel] = ring_data_size
        return channel

    def open_channel(self, channel: int) -> None:
        self._call("open_channel", channel=channel)

    def disable_channel(self, channel: int) -> None:
        self._call("disable_channel", channel=channel)

    def allocate_packet(self, channel: int) -> int | None:
        packet = self._call("allocate_packet", channel=channel)
        return None if packet is None else int(packet)

    def free_packet(self, packet: int) -> None:
        self._call("free_packet", packet=packet)

    def send_with_external_mdl(
        self,
        packet: int,
        buffer: bytearray | None,
        buffer_length: int,
        mdl: Sequence[tuple[int, int, Sequence[int]]] | None,
        mdl_offset: int,
        mdl_length: int,
        flags: int,
    ) -> int:
        return int(self._call(
            "send_with_external_mdl",
            packet=packet,
            buffer=None if buffer is None else bytes(buffer),
            buffer_length=buffer_length,
            mdl=mdl,
            mdl_offset=mdl_offset,
            mdl_length=mdl_length,
            flags=flags,
        ))

    def host_take_packet(self, channel: int) -> bytes | None:
        data = self._call("host_take_packet", channel=channel)
        if data is None:
            return None
        data = bytes(data)
        problem = _packet_shape_problem(data)
        if problem:
            raise RemoteProtocolError(
                "host_take_packet", f"on channel handle {channel}, {problem}",
                _RESULT_HINTS["hex?"],
            )
        return data

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        self._call("host_complete", channel=channel, transaction_id=transaction_id,
                   status=status, data=bytes(data))

    def completions(self) -> list[tuple[int, int, bytes]]:
        return list(self._call("completions"))

    def ring_bytes(self, channel: int) -> bytes:
        data = bytes(self._call("ring_bytes", channel=channel))
        size = self._ring_sizes.get(channel)
        if size is not None and len(data) != _CONTROL_PAGE + size:
            missing = " (the control page is missing)" if len(data) == size else ""
            raise RemoteProtocolError(
                "ring_bytes", f"channel handle {channel} was created with a {size}-byte ring, "
                f"but the reply holds {len(data)} bytes{missing}",
                f"the result is the {_CONTROL_PAGE}-byte control page then the whole data "
                f"area, {_CONTROL_PAGE + size} bytes in all, as hex",
            )
        return data

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            self.factory.release(connection)


def _packet_shape_problem(data: bytes) -> str:
    """What makes ``data`` something other than one packet as a harness should return it: no
    bytes at all, or a packet followed by its 8-byte ring trailer (the descriptor's length8
    counts 8 bytes fewer, and the last 8 have the trailer's zero low half). Empty: neither."""
    if not data:
        return 'the reply is "" (a packet of no bytes): a ring with no packet to take is null'
    if len(data) < _DESCRIPTOR + _TRAILER:
        return ""
    length = int.from_bytes(data[4:6], "little") * 8  # length8, in 8-byte units
    trailer = int.from_bytes(data[-_TRAILER:], "little")
    if length >= _DESCRIPTOR and len(data) == length + _TRAILER and trailer & 0xFFFF_FFFF == 0:
        return (f"the reply holds {len(data)} bytes, 8 more than the packet's length8 says "
                f"({length}), and its last 8 bytes read as a ring trailer (start offset "
                f"{trailer >> 32:#x}): the packet was returned with its trailer")
    return ""


def resolve(spec: str, options: dict[str, Any]) -> tuple[str, RemoteFactory]:
    """``remote:tcp://HOST:PORT`` or ``remote:stdio:COMMAND`` -> (display name, factory).
    Shakes hands with the agent once; ValueError with a one-line reason when it cannot."""
    rest = spec.removeprefix("remote:")
    address = Address(rest)
    timeout = check_timeout(options.get("timeout"))
    # An explicit --timeout bounds the handshake too, but leaves an agent time to start.
    factory = RemoteFactory(
        address,
        timeout if timeout is not None else DEFAULT_TIMEOUT,
        start_timeout=max(timeout, 5.0) if timeout is not None else START_TIMEOUT,
    )
    shown = protocol.clip(rest, 120)
    try:
        factory.probe()
    except RemoteFault as error:
        raise ValueError(f"remote:{shown}: the agent did not shake hands: {error.detail}") \
            from None
    except RemoteError as error:
        raise ValueError(f"remote:{shown}: the agent refused the handshake: {error}") from None
    return factory.name, factory
