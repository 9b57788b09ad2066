"""Targets in a worker process (:class:`IsolatedTarget`): a crash or hang of the library is a
:class:`TargetCrashed` verdict with the calls that led to it, and the next call runs on a
fresh worker. Workers are pooled, one per library file (see the package docstring)."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from typing import IO, Any

from .abi import DEFAULT_CAPABILITIES, MdlChainArg
from .arguments import (
    check_capabilities,
    check_guard,
    check_name,
    check_path,
    check_seconds,
)
from .boot import ROOT, boot_code
from .errors import MAX_KEPT_CALLS, ImpossibleResult, TargetCrashed, TargetError
from .protocol import (
    MAX_ERROR_TEXT,
    MAX_REPLY_BYTES,
    ProtocolError,
    check_result,
    read_message,
    rebuild_error,
    unpack_reply,
    write_message,
)

#: What the worker process runs: ``python -c _BOOT ROOT LIBRARY GUARD``.
_BOOT = boot_code("worker", "main", "*sys.argv[2:4]")

#: Seconds one call to an isolated target may take before it counts as a hang.
DEFAULT_TIMEOUT = 10.0
#: Seconds a worker may take to start and load its library.
DEFAULT_START_TIMEOUT = 30.0


def describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "the worker stopped answering"
    if returncode < 0:
        try:
            return f"the worker was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"the worker was killed by signal {-returncode}"
    return f"the worker exited with status {returncode}"


class _Worker:
    """One worker process for one library, serving any number of :class:`IsolatedTarget`
    objects, each under its own id. ``generation`` changes when a process starts or stops, so
    that a target can tell that the process holding its handles has gone."""

    def __init__(self, path: str, start_timeout: float, guard: bool = False) -> None:
        self.path = path
        self.start_timeout = start_timeout
        self.guard = guard
        self.generation = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._next_id = 0
        self._lock = threading.Lock()
        self.last_stderr = ""

    def new_id(self) -> int:
        """Starts the process if none is running; a fresh target id in it."""
        if self._process is None or self._process.poll() is not None:
            self.stop()
            self._start()
        self._next_id += 1
        return self._next_id

    def _start(self) -> None:
        # Closed by stop(), which outlives this function.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, ROOT, self.path,
             "guard" if self.guard else "no-guard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._process = process
        self.generation += 1
        assert process.stdout is not None
        try:
            ok, ready = read_message(
                process.stdout.fileno(), time.monotonic() + self.start_timeout, MAX_REPLY_BYTES
            )
        except (TimeoutError, ProtocolError):
            ok, ready = False, None
        if not ok:
            detail = self.stop()
            raise TargetCrashed(
                "crash", f"the worker failed to start: {detail}", [], self.last_stderr
            )
        if ready != ("ready", None):
            self.stop()
            said = ready[1] if isinstance(ready, tuple) and len(ready) == 2 else ready
            raise TargetError(
                f"the worker could not load {self.path}: {str(said)[:MAX_ERROR_TEXT]}"
            )

    def request(self, message: tuple[Any, ...], timeout: float) -> tuple[bool, Any]:
        """One request and its reply: ``(True, reply)``, or ``(False, None)`` if the worker
        died. Raises TimeoutError when no reply comes within ``timeout`` seconds, and
        ProtocolError for a reply longer than :data:`MAX_REPLY_BYTES` or not plain values."""
        with self._lock:
            process = self._process
            if process is None:
                return False, None
            assert process.stdin is not None and process.stdout is not None
            try:
                write_message(process.stdin, message)
                return read_message(
                    process.stdout.fileno(), time.monotonic() + timeout, MAX_REPLY_BYTES
                )
            except (TimeoutError, ProtocolError):
                raise
            except OSError:  # a broken pipe: the worker is gone
                return False, None

    def _stderr_tail(self) -> str:
        """The last 1000 bytes the worker wrote to stderr."""
        if self._stderr is None:
            return ""
        try:
            size = self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, size - 1000))
            return self._stderr.read(1000).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def stop(self, grace: float = 0.0) -> str:
        """Kills the process (if alive after ``grace`` seconds) and returns how it ended; keeps
        the end of its stderr in ``last_stderr``."""
        process, self._process = self._process, None
        if process is None:
            return "no worker"
        self.generation += 1  # the targets attached to this process lose their handles
        if grace > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        detail = describe_exit(process.returncode)
        self.last_stderr = self._stderr_tail()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return detail

    def shutdown(self) -> None:
        """Asks the process to exit (closing its targets), then makes sure it has."""
        process = self._process
        if process is not None and process.poll() is None and process.stdin is not None:
            try:
                write_message(process.stdin, (0, "shutdown", ()))
                process.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()


#: The shared workers: one per library file (its real path and modification time, so that a
#: rebuilt library gets a new worker) and guard mode.
_POOL: dict[tuple[str, int | None, bool], _Worker] = {}
_POOL_LOCK = threading.Lock()


def shared_worker(path: str, start_timeout: float, guard: bool = False) -> _Worker:
    real = os.path.realpath(path)
    try:
        stamp: int | None = os.stat(real).st_mtime_ns
    except OSError:
        stamp = None
    with _POOL_LOCK:
        worker = _POOL.get((real, stamp, guard))
        if worker is None:
            worker = _POOL[(real, stamp, guard)] = _Worker(path, start_timeout, guard)
        return worker


def shutdown_workers() -> None:
    """Stops every shared worker. They end with this process anyway (their input pipe
    closes); this is for callers that want them gone sooner."""
    with _POOL_LOCK:
        workers = list(_POOL.values())
        _POOL.clear()
    for worker in workers:
        worker.shutdown()


atexit.register(shutdown_workers)


class IsolatedTarget:
    """A :class:`NativeTarget` in a worker process; see the module docstring.

    ``shared=True`` (the default) runs the target in the pooled worker of its library, next to
    other targets on that library; ``shared=False`` gives it a worker of its own, started on
    its first call and stopped by :meth:`close` (a fresh library instance, at the cost of a
    process start per target).

    ``guard`` (default: where the platform allows) lays the MDLs and buffer of every send
    against guard pages in the worker (:mod:`.guard`): a read past them is a ``crash`` naming
    the call, the faulting address and the MDL or buffer read past.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        timeout: float = DEFAULT_TIMEOUT,
        *,
        name: str | None = None,
        capabilities: frozenset[str] = DEFAULT_CAPABILITIES,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        shared: bool = True,
        guard: bool | None = None,
    ) -> None:
        self.path = check_path(path)
        self.guard = check_guard(guard)
        self.timeout = check_seconds("timeout", timeout)
        start_timeout = check_seconds("start_timeout", start_timeout)
        self.name = check_name(name) or f"native:{self.path}"
        self.capabilities = check_capabilities(capabilities)
        if not isinstance(shared, bool):
            raise TypeError(f"shared must be True or False, not {shared!r}")
        self.shared = shared
        self._worker = (
            shared_worker(self.path, start_timeout, self.guard)
            if shared
            else _Worker(self.path, start_timeout, self.guard)
        )
        self._id: int | None = None
        self._generation = 0
        #: The calls since the worker started (the last MAX_KEPT_CALLS), and how many in all.
        self._calls: deque[tuple[str, tuple[Any, ...]]] = deque(maxlen=MAX_KEPT_CALLS)
        self._call_count = 0
        #: How many times a crash or hang of this target stopped its worker.
        self.restarts = 0

    def _lost(self, kind: str, what: str | None, grace: float = 0.0) -> TargetCrashed:
        """Stops the worker after a crash or hang of this target (giving it ``grace`` seconds
        to die by itself, as after a fault it reported); the exception to raise."""
        detail = self._worker.stop(grace)
        self._id = None
        self.restarts += 1
        message = detail if what is None else f"{what} ({detail})"
        return TargetCrashed(
            kind, message, list(self._calls), self._worker.last_stderr, self._call_count
        )

    def _impossible(self, detail: str) -> ImpossibleResult:
        """Stops the worker after its library returned something impossible (its memory may
        be corrupt, so nothing more is asked of it); the exception to raise."""
        self._worker.stop()
        self._id = None
        self.restarts += 1
        return ImpossibleResult(
            detail, list(self._calls), self._worker.last_stderr, self._call_count
        )

    def _call(self, method: str, *args: Any) -> Any:
        worker = self._worker
        if self._id is not None and worker.generation != self._generation:
            # Another target on the shared worker crashed or hung it: our handles went too.
            calls, total, self._id = list(self._calls), self._call_count, None
            self._calls.clear()
            self._call_count = 0
            raise TargetCrashed(
                "crash",
                "the shared worker was restarted after another target on it crashed or hung; "
                "this target's state is lost",
                calls,
                total=total,
            )
        if self._id is None:
            self._id = worker.new_id()
            self._generation = worker.generation
            self._calls.clear()
            self._call_count = 0
        self._calls.append((method, args))
        self._call_count += 1
        try:
            ok, reply = worker.request((self._id, method, args), self.timeout)
            if not ok:
                raise self._lost("crash", None)
            kind, value = unpack_reply(reply)
            if kind == "ok":
                return check_result(method, value)
        except TimeoutError:
            raise self._lost("hang", f"no answer within {self.timeout:g} s") from None
        except ProtocolError as error:
            raise self._lost("crash", f"the worker's reply was malformed: {error}") from None
        if kind == "impossible":
            raise self._impossible(value)
        if kind == "fault":
            # The worker dies of the signal right after reporting it.
            raise self._lost("crash", f"{method} faulted: {value}", grace=2.0)
        raise rebuild_error(*value)

    # -- the target interface -----------------------------------------------------------

    def create_channel(self, ring_data_size: int) -> int:
        return int(self._call("create_channel", ring_data_size))

    def open_channel(self, channel: int) -> None:
        self._call("open_channel", channel)

    def disable_channel(self, channel: int) -> None:
        self._call("disable_channel", channel)

    def allocate_packet(self, channel: int) -> int | None:
        packet = self._call("allocate_packet", channel)
        return None if packet is None else int(packet)

    def free_packet(self, packet: int) -> None:
        self._call("free_packet", packet)

    def send_with_external_mdl(
        self,
        packet: int,
        buffer: bytearray | None,
        buffer_length: int,
        mdl: MdlChainArg | None,
        mdl_offset: int,
        mdl_length: int,
        flags: int,
    ) -> int:
        # A copy of the bytes at the call crosses the process boundary (see the docstring).
        data = None if buffer is None else bytes(buffer)
        chain = None if mdl is None else tuple((bo, bc, tuple(pfns)) for bo, bc, pfns in mdl)
        return int(
            self._call(
                "send_with_external_mdl",
                packet,
                data,
                buffer_length,
                chain,
                mdl_offset,
                mdl_length,
                flags,
            )
        )

    def host_take_packet(self, channel: int) -> bytes | None:
        data = self._call("host_take_packet", channel)
        return None if data is None else bytes(data)

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        self._call("host_complete", channel, transaction_id, status, bytes(data))

    def completions(self) -> list[tuple[int, int, bytes]]:
        return list(self._call("completions"))

    def ring_bytes(self, channel: int) -> bytes:
        return bytes(self._call("ring_bytes", channel))

    def close(self) -> None:
        """Releases the target's handles in the worker. A crash or hang while doing so stops
        the worker (the next target gets a fresh one) and is not reported: the suite has its
        verdict by then."""
        target_id, self._id = self._id, None
        worker = self._worker
        if target_id is not None and worker.generation == self._generation:
            ok, reply = False, None
            with contextlib.suppress(TimeoutError):
                ok, reply = worker.request((target_id, "close", ()), min(self.timeout, 5.0))
            faulted = isinstance(reply, tuple) and reply[:1] == ("fault",)
            if not ok or faulted:
                worker.stop(grace=2.0 if faulted else 0.0)
        if not self.shared:
            worker.shutdown()

    def __enter__(self) -> IsolatedTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "shared", True):
            self._worker.stop()
