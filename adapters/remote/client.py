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
``"crash"`` when the connection closed, the reply was not JSON, had the wrong id, was not a
JSON-RPC response, had a result of the wrong shape or was over the size limit, or when the
agent reported that its backend crashed. The faulty connection is closed (a stdio agent is
killed) and the target refuses further calls; the next target from the factory reconnects.
An error reply (the agent answered, with a JSON-RPC error) is :class:`RemoteError`, which the
runner reports as a target error.

The in-line buffer crosses the connection as a copy of its bytes at the call, as it does for
an isolated native target; reading A11 allows a target to read them then.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Sequence
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
        super().__init__(f"{method}: agent error {code} ({name}): {message}")
        self.method = method
        self.code = code
        self.data = data


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
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = None
        if parts.scheme != "tcp" or not parts.hostname or port is None or parts.path not in (
            "", "/"
        ):
            raise ValueError(f"remote target {text!r}: expected remote:tcp://HOST:PORT or "
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
                address.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        except OSError as error:
            stderr.close()
            raise RemoteFault("crash", f"cannot start {address.command[0]!r}: {error}") from error
        assert process.stdin is not None and process.stdout is not None
        stream = MessageStream(read_fd=process.stdout.fileno(), write_fd=process.stdin.fileno())
        return cls(stream, process, stderr)

    def _stderr_tail(self) -> str:
        if self.stderr is None or self.stderr.closed:
            return ""
        try:
            self.stderr.seek(0)
            text = self.stderr.read()[-600:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return f"; agent stderr: {text}" if text else ""

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
            reply = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            raise self.fault("crash", f"the reply to {method} is not JSON: "
                             f"{line[:80]!r}") from None
        return self._unpack(method, request_id, reply)

    def _unpack(self, method: str, request_id: int, reply: Any) -> Any:
        if (
            not isinstance(reply, dict)
            or reply.get("jsonrpc") != "2.0"
            or ("result" in reply) == ("error" in reply)
        ):
            raise self.fault("crash", f"the reply to {method} is not a JSON-RPC 2.0 response: "
                             f"{json.dumps(reply)[:80]}")
        if reply.get("id") != request_id:
            error = reply.get("error")
            if reply.get("id") is None and isinstance(error, dict):
                # The agent could not read the request at all (parse error, too large).
                raise self.fault("crash", f"the agent could not read the {method} request: "
                                 f"{error.get('message')}")
            raise self.fault("crash", f"the reply to {method} has id {reply.get('id')!r}, "
                             f"expected {request_id}")
        if "error" in reply:
            error = reply["error"]
            if not isinstance(error, dict) or not isinstance(error.get("code"), int) or (
                not isinstance(error.get("message"), str)
            ):
                raise self.fault("crash", f"the error reply to {method} is malformed: "
                                 f"{json.dumps(error)[:80]}")
            data = error.get("data")
            if error["code"] == protocol.TARGET_FAULT and isinstance(data, dict) and (
                data.get("kind") in ("crash", "hang")
            ):
                raise self.fault(str(data["kind"]), f"{method}: {error['message']}")
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
            raise self.fault("crash", f"the {method} result lacks target and capabilities")
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
            if process.poll() is None and not graceful:
                process.kill()
            try:
                process.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=2.0)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        if self.stderr is not None:
            with contextlib.suppress(OSError):
                self.stderr.close()


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
    timeout = options.get("timeout")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"--timeout must be a positive number of seconds, not {timeout!r}")
    # An explicit --timeout bounds the handshake too, but leaves an agent time to start.
    factory = RemoteFactory(
        address,
        float(timeout) if timeout else DEFAULT_TIMEOUT,
        start_timeout=max(float(timeout), 5.0) if timeout else START_TIMEOUT,
    )
    try:
        factory.probe()
    except RemoteFault as error:
        raise ValueError(f"remote:{rest}: the agent did not shake hands: {error.detail}") \
            from None
    except RemoteError as error:
        raise ValueError(f"remote:{rest}: the agent refused the handshake: {error}") from None
    return factory.name, factory
