"""Newline-delimited JSON over a byte stream, with a size limit and a deadline on every read.

Theory of operation
-------------------
One message is one JSON text, UTF-8, written on one line and ended by a line feed (``\\n``).
Compact JSON never contains a raw line feed (inside strings it is escaped as ``\\n``), so a
reader finds message boundaries without parsing. A carriage return before the line feed is
tolerated and blank lines are skipped, so a person can type requests into an agent by hand.

A message may be at most :data:`MAX_MESSAGE_BYTES` bytes, not counting the line feed. That
limit is what keeps a broken peer from making the reader buffer without end; it is sized for
the largest thing the suite moves: a raw ring of 1 MiB of data plus its 4 KiB control page,
hex-encoded (2 x 1,052,672 bytes) inside a reply, with room to spare.

:class:`MessageStream` works on any selectable file descriptor: a pipe pair (stdio) or a
socket. Every read and write takes a deadline (``time.monotonic()`` seconds, or None for no
limit); past it the call raises :class:`FrameTimeout`. The other failures are
:class:`FrameClosed` (end of stream, or a reset) and :class:`FrameTooLarge`. Malformed JSON is
the caller's business: :meth:`MessageStream.read_line` returns the raw bytes of one line
(:func:`adapters.remote.protocol.decode_message` reads it within bounds).

Each message is written as one buffer (:meth:`MessageStream.write_line`); TCP connections
should also set ``TCP_NODELAY`` (the client and the reference agent do): see
``docs/remote-protocol.md`` on why a message written in pieces costs tens of milliseconds.

Waiting uses :mod:`selectors` (``poll`` where there is one), not ``select()``, whose
descriptor sets end at 1,023: an agent with many connections, or a client in a process with
many open files, would otherwise fail with "filedescriptor out of range in select()".
The stream uses only the standard library so that any harness can copy it.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time

#: The most bytes of one message, not counting its line feed: 8 MiB (see the module docstring).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

_CHUNK = 64 * 1024

#: poll(2) needs no descriptor of its own and has no limit on descriptor numbers; epoll or
#: kqueue (DefaultSelector) otherwise.
_Selector: type[selectors.BaseSelector] = getattr(
    selectors, "PollSelector", selectors.DefaultSelector
)


class FrameError(Exception):
    """The stream cannot deliver a message."""


class FrameTimeout(FrameError):
    """No complete message (or no room to write one) before the deadline."""


class FrameClosed(FrameError):
    """The other side closed the stream (or it was reset)."""


class FrameTooLarge(FrameError):
    """A line longer than the limit: the stream is no longer usable as a sequence of messages
    unless the rest of the line is skipped (:meth:`MessageStream.skip_line`)."""


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FrameTimeout("deadline passed")
    return remaining


class MessageStream:
    """Line-framed messages over a socket, or over a read descriptor and a write descriptor."""

    def __init__(
        self,
        *,
        sock: socket.socket | None = None,
        read_fd: int | None = None,
        write_fd: int | None = None,
        max_bytes: int = MAX_MESSAGE_BYTES,
        close_fds: bool = True,
    ) -> None:
        """``close_fds=False``: :meth:`close` leaves the descriptors open, for their owner
        (file objects of a child process's pipes) to close exactly once."""
        if sock is None and (read_fd is None or write_fd is None):
            raise ValueError("a MessageStream needs a socket or both a read and a write fd")
        self.sock = sock
        self.read_fd = sock.fileno() if sock is not None else read_fd
        self.write_fd = sock.fileno() if sock is not None else write_fd
        self.max_bytes = max_bytes
        self.close_fds = close_fds
        self._buffer = bytearray()
        self._eof = False
        #: A too-long line was refused before its end arrived: skip_line drops the rest.
        self._in_long_line = False
        if sock is not None:
            sock.setblocking(False)
        else:
            assert read_fd is not None and write_fd is not None
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
        assert self.read_fd is not None and self.write_fd is not None
        self._readable = _Selector()
        self._readable.register(self.read_fd, selectors.EVENT_READ)
        self._writable = _Selector()
        self._writable.register(self.write_fd, selectors.EVENT_WRITE)

    # -- raw I/O ------------------------------------------------------------------------------

    def _recv(self) -> bytes | None:
        """Some bytes, b"" at end of stream, None when nothing is there yet."""
        try:
            if self.sock is not None:
                return self.sock.recv(_CHUNK)
            assert self.read_fd is not None
            return os.read(self.read_fd, _CHUNK)
        except (BlockingIOError, InterruptedError):
            return None
        except (ConnectionError, OSError) as error:
            raise FrameClosed(f"the stream failed: {error}") from error

    def _fill(self, deadline: float | None) -> None:
        """Reads at least one more byte into the buffer, or raises."""
        while True:
            remaining = _remaining(deadline)
            if not self._readable.select(remaining):
                raise FrameTimeout("no data before the deadline")
            chunk = self._recv()
            if chunk is None:
                continue
            if not chunk:
                self._eof = True
                raise FrameClosed("the other side closed the stream")
            self._buffer += chunk
            return

    def write_line(self, data: bytes, deadline: float | None = None) -> None:
        """Writes ``data`` and a line feed; ``data`` must not contain one. The message and its
        line feed go out as one buffer, in one ``send`` when the socket's buffer takes it
        (more only for a message larger than that buffer): a message written in pieces
        waits, on TCP without ``TCP_NODELAY``, for the ACK of its first piece (Nagle), which
        the other side delays (tens of milliseconds a message)."""
        if b"\n" in data:
            raise ValueError("a framed message cannot contain a raw line feed")
        if len(data) > self.max_bytes:
            raise FrameTooLarge(f"a {len(data)}-byte message exceeds the {self.max_bytes}-byte "
                                "limit")
        view = memoryview(data + b"\n")
        assert self.write_fd is not None
        while view:
            remaining = _remaining(deadline)
            if not self._writable.select(remaining):
                raise FrameTimeout("the other side is not reading")
            try:
                if self.sock is not None:
                    sent = self.sock.send(view)
                else:
                    sent = os.write(self.write_fd, view)
            except (BlockingIOError, InterruptedError):
                continue
            except (ConnectionError, OSError) as error:
                raise FrameClosed(f"the stream failed: {error}") from error
            view = view[sent:]

    def read_line(self, deadline: float | None = None) -> bytes:
        """The next non-blank line, without its line feed (and carriage return)."""
        while True:
            end = self._buffer.find(b"\n")
            while end < 0:
                if len(self._buffer) > self.max_bytes:
                    self._in_long_line = True
                    raise FrameTooLarge(
                        f"a message longer than the {self.max_bytes}-byte limit"
                    )
                if self._eof:
                    raise FrameClosed("the other side closed the stream")
                self._fill(deadline)
                end = self._buffer.find(b"\n")
            line = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            if len(line) > self.max_bytes + 1:  # +1: a carriage return is not counted
                raise FrameTooLarge(f"a {len(line)}-byte message exceeds the "
                                    f"{self.max_bytes}-byte limit")
            line = line.rstrip(b"\r")
            if line.strip():
                return line

    def pending(self) -> bool:
        """Whether something is waiting to be read (a line, or the end of the stream): on a
        connection that should be quiet, the sign that the other side gave up on it."""
        return bool(self._buffer) or self._eof or bool(self._readable.select(0))

    def skip_line(self, deadline: float | None = None) -> None:
        """Discards the rest of a line refused with FrameTooLarge (nothing if it was whole)."""
        if not self._in_long_line:
            return
        self._in_long_line = False
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                del self._buffer[:end + 1]
                return
            self._buffer.clear()
            self._fill(deadline)

    def close(self) -> None:
        for selector in (self._readable, self._writable):
            with contextlib.suppress(OSError, ValueError):
                selector.close()
        if not self.close_fds:
            return
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            return
        for fd in {self.read_fd, self.write_fd}:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
