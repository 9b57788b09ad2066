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
wrong id, was not a JSON-RPC response, had a result of the wrong shape or was over the size
limit, or when the agent reported that its backend crashed. The message names the method and
what was wrong with the reply. The faulty connection is closed (a stdio agent is killed) and
the target refuses further calls; the next target from the factory reconnects. A well-formed
error reply (the agent answered, with a JSON-RPC error) is :class:`RemoteError`, which the
runner reports as a target error. Texts from the agent (error messages, data, its stderr, the
target's name) are cut to a few hundred characters (:func:`adapters.remote.protocol.clip`).

An idle connection kept between targets is dropped, not reused, when the agent has closed it
or said something on it meanwhile (an agent closes connections idle past its deadline).

``remote:stdio:vmbspec ...`` runs the ``vmbspec`` script beside the running interpreter, or
``python -m conformance.cli`` with it (a subprocess), so that it works without an activated
virtual environment and always runs the same vmbspec as the client.

The in-line buffer crosses the connection as a copy of its bytes at the call, as it does for
an isolated native target; reading A11 allows a target to read them then.
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

from adapters.remote import protocol
from adapters.remote.framing import (
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
#: Most capabilities an agent may state, and characters in one.
_MAX_CAPABILITIES = 64
_MAX_CAPABILITY_CHARS = 100


class RemoteFault(Exception):
    """The agent crashed or hung (``kind`` is ``"crash"`` or ``"hang"``); its state is lost.
    ``calls`` lists the calls made on that connection, the fatal one last."""

    def __init__(self, kind: str, detail: str, calls: Sequence[str] = ()) -> None:
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail
        self.calls = list(calls)

    def __str__(self) -> str:
        last = f"; last call {self.calls[-1]}" if self.calls else ""
        return f"{self.detail} (after {len(self.calls)} call(s){last})"


class RemoteError(RuntimeError):
    """The agent answered with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str, data: Any = None) -> None:
        name = protocol.ERROR_NAMES.get(code, "error")
        super().__init__(f"{method}: agent error {code} ({name}): {protocol.clip(message)}")
        self.method = method
        self.code = code
        self.data = protocol.clip_data(data)


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
    beside ``interpreter`` (the running Python), or that Python with ``-m conformance.cli``
    (a subprocess: this adapter imports nothing from the suite)."""
    words = list(command)
    if not words or words[0] != "vmbspec":
        return words
    python = Path(interpreter or sys.executable)
    script = python.parent / "vmbspec"
    if script.is_file():
        return [str(script), *words[1:]]
    return [str(python), "-m", "conformance.cli", *words[1:]]


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


def _show_call(method: str, params: dict[str, Any] | None) -> str:
    shown = ", ".join(
        f"{k}={v:#x}" if isinstance(v, int) and not isinstance(v, bool)
        else f"{k}={json.dumps(v)[:40]}"
        for k, v in (params or {}).items()
    )
    return f"{method}({shown})"


# -- the factory and the target -------------------------------------------------------------


class RemoteFactory:
    """Makes :class:`RemoteTarget` objects on one agent, reusing a healthy connection."""

    def __init__(self, address: Address, timeout: float = DEFAULT_TIMEOUT,
                 start_timeout: float = START_TIMEOUT) -> None:
        self.address = address
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.name = f"remote:{address.text}"
        self.capabilities: frozenset[str] = frozenset()
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
        connection = Connection.open(self.address, self.start_timeout)
        connection.handshake(self.start_timeout)
        connection.calls = []
        return connection

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


class RemoteTarget:
    """The target interface over the remote protocol; see the module docstring."""

    def __init__(self, factory: RemoteFactory) -> None:
        self.factory = factory
        self.name = factory.name
        self.capabilities = factory.capabilities
        self._connection: Connection | None = None
        self._closed = False

    def _call(self, method: str, **params: Any) -> Any:
        if self._closed:
            raise RemoteFault("crash", f"{method} on a closed remote target")
        if self._connection is None:
            self._connection = self.factory.acquire()
        connection = self._connection
        spec, _kind = protocol.METHODS[method]
        encoded = {name: protocol.encode_value(spec[name], value)
                   for name, value in params.items()}
        result = connection.call(method, encoded, self.factory.timeout)
        try:
            return protocol.check_result(method, result)
        except ValueError as error:
            raise connection.fault("crash", f"malformed reply: {error}") from None

    def create_channel(self, ring_data_size: int) -> int:
        return int(self._call("create_channel", ring_data_size=ring_data_size))

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
        return None if data is None else bytes(data)

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        self._call("host_complete", channel=channel, transaction_id=transaction_id,
                   status=status, data=bytes(data))

    def completions(self) -> list[tuple[int, int, bytes]]:
        return list(self._call("completions"))

    def ring_bytes(self, channel: int) -> bytes:
        return bytes(self._call("ring_bytes", channel=channel))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        connection, self._connection = self._connection, None
        if connection is not None:
            self.factory.release(connection)


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
