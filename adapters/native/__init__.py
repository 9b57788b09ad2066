"""Targets backed by a shared library that exports the KMCL-shaped C ABI of ``vmbcore.h``.

Theory of operation
-------------------
:class:`NativeTarget` (:mod:`.inprocess`) loads a library with :mod:`ctypes` in this process and
provides the suite's target interface (``conformance/target.py``, structurally: nothing here
imports the ``spec`` or ``conformance`` packages). It lays MDL chains out in ctypes memory
exactly as Windows x64 does (:mod:`.abi`: header of 0x30 bytes, PFN array right after it,
chained through ``Next``), passes the caller's ``bytearray`` itself as ``Buffer`` (so a target
that reads the buffer late sees later changes, reading A11), and keeps both alive until the
packet's completion routine runs. One ctypes completion routine, registered on every packet at
allocation, records ``(packet handle, status, bytes)``.

Guard pages (:mod:`.guard`, on by default where the platform allows, ``guard=False`` or
``--no-guard`` to turn them off): each MDL of a send and its in-line buffer then live in a
mapping of their own, with every PFN array and the buffer's ``BufferLength`` bytes ending right
before an inaccessible page and an inaccessible page before each, so a library that reads one
PFN or one byte past what the call describes faults. The buffer is then a copy made at the
call. A SIGSEGV/SIGBUS handler names the MDL or buffer the faulting address is past: in a
worker the parent gets it as a ``crash`` verdict naming the call and the run goes on; in
process the fault ends the process after that line and a hint to run the target isolated.

:class:`RustTarget` is a :class:`NativeTarget` on the library built from ``adapters/rust``.

:class:`IsolatedTarget` (:mod:`.isolated`) runs a :class:`NativeTarget` in a worker process
(:mod:`.worker`, speaking length-prefixed pickles of plain values over pipes, :mod:`.protocol`)
and forwards every call. When the worker dies (segfault, abort, a panic that aborts) or does
not answer within ``timeout`` seconds, the call raises :class:`TargetCrashed` with kind
``"crash"`` or ``"hang"`` and the calls made on that target; the next call starts a fresh
worker (the old state is gone: the suite starts a fresh case). Isolation has one visible
difference: the in-line buffer crosses the process boundary as a copy of its bytes at the
call, so a target that reads the buffer late sees the bytes as they were at the call (which
reading A11 allows).

Workers are pooled: by default every :class:`IsolatedTarget` on one library file talks to the
same worker process, which keeps one :class:`NativeTarget` per target id on one loaded copy of
the library. The suite makes a fresh target per case and per stateful example (hundreds a
run); a process start for each would cost more than the run itself. The consequence: targets
on one library are not isolated from each other, only from this process. A library with global
state (a counter, a cache, a leak, a corrupted heap) carries it from one target to the next,
as it would in process, and when one target crashes or hangs the worker every other live
target on that library loses its state too (its next call raises :class:`TargetCrashed`).
``IsolatedTarget(..., shared=False)`` gives a target a worker of its own.

Nothing a library returns is trusted. Every length is checked against the capacity the adapter
gave and the largest ring the ABI allows (64 MiB of data) before a byte is read or allocated;
every handle against the live ones; every completion-routine call against the bytes the host
sent and bounds on pending calls and bytes. An impossible value raises :class:`ImpossibleResult`, a
``crash`` naming the function (in the worker too, which is then replaced). Bad arguments to
the constructors and to :func:`resolve` raise TypeError or ValueError at once
(:mod:`.arguments`). The worker's replies cross as plain values only (no class or function can
be named in them), at most :data:`MAX_REPLY_BYTES` long, of the shape each method returns;
anything else is a crash.

:func:`resolve` (:mod:`.names`) turns the ``--target`` names ``rust`` and ``native:PATH`` into
factories (``conformance/targets.py``).

The package uses only the standard library, so the worker process needs nothing else.
"""

from __future__ import annotations

from .abi import (
    COMPLETION_ROUTINE,
    DEFAULT_CAPABILITIES,
    MAX_PENDING_COMPLETION_BYTES,
    MAX_PENDING_COMPLETIONS,
    MAX_RING_BYTES,
    MAX_RING_DATA_SIZE,
    MDL_HEADER_SIZE,
    PAGE_SIZE,
    STATUS_BUFFER_TOO_SMALL,
    STATUS_INVALID_PARAMETER,
    STATUS_SUCCESS,
    LibraryError,
    MdlChainArg,
    MdlHeader,
    build_mdl_chain,
    load_library,
    span_pages,
)
from .arguments import MAX_TIMEOUT, check_seconds
from .errors import ImpossibleResult, TargetCrashed, TargetError
from .guard import GUARD_AVAILABLE, GuardError
from .inprocess import NativeTarget, RustTarget
from .isolated import DEFAULT_START_TIMEOUT, DEFAULT_TIMEOUT, IsolatedTarget, shutdown_workers
from .names import resolve
from .protocol import MAX_REPLY_BYTES, ProtocolError

__all__ = [
    "COMPLETION_ROUTINE",
    "DEFAULT_CAPABILITIES",
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "GUARD_AVAILABLE",
    "MAX_PENDING_COMPLETIONS",
    "MAX_PENDING_COMPLETION_BYTES",
    "MAX_REPLY_BYTES",
    "MAX_RING_BYTES",
    "MAX_RING_DATA_SIZE",
    "MAX_TIMEOUT",
    "MDL_HEADER_SIZE",
    "PAGE_SIZE",
    "STATUS_BUFFER_TOO_SMALL",
    "STATUS_INVALID_PARAMETER",
    "STATUS_SUCCESS",
    "GuardError",
    "ImpossibleResult",
    "IsolatedTarget",
    "LibraryError",
    "MdlChainArg",
    "MdlHeader",
    "NativeTarget",
    "ProtocolError",
    "RustTarget",
    "TargetCrashed",
    "TargetError",
    "build_mdl_chain",
    "check_seconds",
    "load_library",
    "resolve",
    "shutdown_workers",
    "span_pages",
]
