"""Targets behind the remote protocol, and the reference agent that serves any target over it.

The protocol is JSON-RPC 2.0, one message a line, over standard input/output or TCP
(``docs/remote-protocol.md``). A harness beside a real driver implements the agent's side in
any language; vmbspec's client is :class:`RemoteTarget`.

- :mod:`adapters.remote.framing` newline-delimited messages with a size limit and deadlines;
- :mod:`adapters.remote.protocol` methods, parameters, results, error codes, as data, and
  :func:`~adapters.remote.protocol.decode_message`, which reads a line within bounds (depth,
  integer digits, no NaN) on both sides;
- :mod:`adapters.remote.client` :func:`resolve` (``--target remote:...``), the factory, the
  target, and how faults become ``crash``/``hang`` verdicts;
- :mod:`adapters.remote.server` the reference agent, :func:`serve` (TCP: a cap on connections
  and an idle deadline), and the trace recorder.

Like every adapter it imports neither ``spec`` nor ``conformance``.
"""

from vmbspec.adapters.remote.client import (
    RemoteError,
    RemoteFactory,
    RemoteFault,
    RemoteTarget,
    resolve,
)
from vmbspec.adapters.remote.framing import MAX_MESSAGE_BYTES
from vmbspec.adapters.remote.protocol import PROTOCOL_VERSION
from vmbspec.adapters.remote.server import Session, TcpAgent, TraceRecorder, serve

__all__ = [
    "MAX_MESSAGE_BYTES",
    "PROTOCOL_VERSION",
    "RemoteError",
    "RemoteFactory",
    "RemoteFault",
    "RemoteTarget",
    "Session",
    "TcpAgent",
    "TraceRecorder",
    "resolve",
    "serve",
]
