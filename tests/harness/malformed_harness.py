"""The malformed-request campaign against the C harness (``harness/c``), shared by
``tests/harness/test_c_harness.py`` (a few hundred inputs per transport) and
``bench/bench_harness.py --malformed N`` (10,000 or more), which load this file by its path.

The inputs are the remote protocol's own generators (``tests/remote/malformed_inputs.py``,
``requests``: random bytes, random JSON, valid requests with one thing wrong, deep nesting,
integers of thousands of digits, NaN, lone surrogates, batches, truncations). Each line goes
to a live harness over the Rust core, on stdio or over TCP, followed by a valid
``initialize``: every reply must be a well-formed JSON-RPC 2.0 response, none an internal
error (-32603, a bug of the harness), and the ``initialize`` must still succeed. Anything else
(a reply that is not JSON, no reply, a closed stream) raises :class:`Unexpected`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from vmbspec.adapters.remote.framing import MessageStream

HERE = Path(__file__).resolve().parent
INTERNAL_ERROR = -32603


def load_generators() -> ModuleType:
    """``tests/remote/malformed_inputs.py`` (its ``requests`` strategy)."""
    name = "vmbspec_remote_malformed_inputs"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, HERE.parent / "remote" / "malformed_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Unexpected(AssertionError):
    """The harness answered a malformed line other than cleanly."""


def _check(reply: Any, where: str) -> None:
    if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0" or "id" not in reply or (
        ("result" in reply) == ("error" in reply)
    ) or not set(reply) <= {"jsonrpc", "id", "result", "error"}:
        raise Unexpected(f"{where}: not a JSON-RPC 2.0 response: {str(reply)[:200]}")
    if "error" in reply:
        error = reply["error"]
        if not isinstance(error, dict) or type(error.get("code")) is not int or not isinstance(
            error.get("message"), str
        ):
            raise Unexpected(f"{where}: a malformed error object: {str(error)[:200]}")
        if error["code"] == INTERNAL_ERROR:
            raise Unexpected(f"{where}: the harness failed inside: {error['message'][:300]}")


class HarnessUnderTest:
    """A live C harness over ``library``: a child process on stdio, or listening on TCP."""

    def __init__(self, binary: Path, library: Path, transport: str) -> None:
        self.sent = 0
        self.sock: socket.socket | None = None
        command = [str(binary), "--library", str(library)]
        if transport == "stdio":
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert self.process.stdin is not None and self.process.stdout is not None
            self.stream = MessageStream(read_fd=self.process.stdout.fileno(),
                                        write_fd=self.process.stdin.fileno(), close_fds=False)
            return
        self.process = subprocess.Popen([*command, "--listen", "tcp://127.0.0.1:0"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        assert self.process.stderr is not None
        found = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)",
                          self.process.stderr.readline().decode())
        if not found:
            self.close()
            raise Unexpected("the harness did not say where it listens")
        self.sock = socket.create_connection(("127.0.0.1", int(found.group(1))), 10)
        # As the suite's client does: a line and the probe after it leave at once, instead of
        # the probe waiting for the ACK of a line that gets no reply (a notification).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream = MessageStream(sock=self.sock)

    def exchange(self, line: bytes, timeout: float = 30.0) -> list[Any]:
        """Sends ``line`` (each piece of it between line feeds as a line), then a valid
        initialize; checks every reply; returns the replies to ``line``."""
        self.sent += 1
        probe = f"probe-{self.sent}-zq"
        deadline = time.monotonic() + timeout
        try:
            for piece in line.split(b"\n"):
                self.stream.write_line(piece, deadline)
            self.stream.write_line(json.dumps({"jsonrpc": "2.0", "id": probe,
                                               "method": "initialize",
                                               "params": {"protocol": 1}}).encode(), deadline)
            replies: list[Any] = []
            while True:
                raw = self.stream.read_line(deadline)
                try:
                    reply = json.loads(raw)
                except ValueError as error:
                    raise Unexpected(f"a line that is not JSON: {raw[:200]!r}") from error
                if isinstance(reply, dict) and reply.get("id") == probe:
                    _check(reply, "the valid initialize after it")
                    if "result" not in reply:
                        raise Unexpected(f"the valid initialize failed: {reply}")
                    return replies
                for item in reply if isinstance(reply, list) and reply else [reply]:
                    _check(item, "a reply")
                replies.append(reply)
        except Unexpected as error:
            raise Unexpected(f"{error} (after {line[:200]!r})") from None
        except Exception as error:  # the harness died, hung or broke the framing
            raise Unexpected(f"{type(error).__name__}: {error} after {line[:200]!r}") from error

    def close(self) -> None:
        if hasattr(self, "stream"):
            self.stream.close()
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()
        if self.sock is not None:
            self.process.kill()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
