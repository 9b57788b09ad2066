"""Ctrl-C and SIGTERM during a run, taken at a safe point.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when the signal
arrives. Inside a run that can be a garbage-collector callback (Hypothesis installs one to time
its runs) or a ``__del__``, where Python prints the exception as "ignored" and carries on: the
interrupt is lost and a run of a million examples goes on for hours with its reports unwritten.

So during a run the signals only *ask* to stop (:func:`deferred`); the suite's own code calls
:func:`check` between steps and raises ``KeyboardInterrupt`` there, where it travels up to the
runner, which writes the partial report. A second Ctrl-C raises at once, for a run stuck in a
call that never returns.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_requested = False


def requested() -> bool:
    return _requested


def request() -> None:
    """Ask the run to stop at its next safe point, as a first Ctrl-C does (a worker process
    is asked this way by its parent: conformance.workers)."""
    global _requested
    _requested = True


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a stop was asked for (call it at safe points only)."""
    if _requested:
        raise KeyboardInterrupt


def _ask_to_stop(_signal: int, _frame: FrameType | None) -> None:
    global _requested
    if _requested:  # the second time: now, wherever we are
        raise KeyboardInterrupt
    _requested = True


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """During the body, SIGINT and SIGTERM set the stop request instead of raising (only in the
    main thread, the one signals are delivered to; elsewhere nothing changes)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(number)
        if handler is signal.SIG_IGN:  # started in the background on purpose: leave it
            continue
        previous[number] = handler
        signal.signal(number, _ask_to_stop)
    _requested = False
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _requested = False
