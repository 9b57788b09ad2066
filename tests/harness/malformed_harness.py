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
import re
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from vmbspec.adapters.remote.framing import MessageStream

HERE = Path(__file__).resolve().parent


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


#: The checks are the agent campaign's (tests/remote/malformed_inputs.py), so the harness is
#: held to what the reference agent is held to, and to JSON-RPC's members only.
Unexpected = load_generators().Unexpected


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
        return load_generators().exchange_checked(
            self.stream, line, f"probe-{self.sent}-zq", "the harness", timeout,
            only_rpc_members=True,
        )

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
