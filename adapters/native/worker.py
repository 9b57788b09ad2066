"""The worker process of an :class:`~adapters.native.IsolatedTarget`: it loads the library,
keeps one :class:`~adapters.native.NativeTarget` per target id and answers one request at a
time over its pipes (:mod:`.protocol`). Started by :mod:`.isolated` as
``python -c "...main(LIBRARY)"``; uses only the standard library and this package."""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

from .abi import LibraryError, load_library
from .errors import ImpossibleResult
from .guard import install_fault_handler
from .inprocess import NativeTarget
from .protocol import FORWARDED, read_message, write_message


def fault_reporter(fd: int) -> Any:
    """The guard fault handler's reporter in a worker: the line goes to the parent as a
    ``("fault", line)`` reply on ``fd`` (one write, well below a pipe's atomic size), and the
    parent turns it into a crash verdict naming the call; then the process dies of the
    signal."""

    def report(line: str) -> None:
        payload = pickle.dumps(("fault", line[:1000]), protocol=pickle.HIGHEST_PROTOCOL)
        os.write(fd, struct.pack("<I", len(payload)) + payload)

    return report


def main(path: str, mode: str = "guard") -> int:
    """The worker loop: one request ``(target id, method, args)``, one reply, until
    ``shutdown`` or end of input. A target is created on the first call naming its id.
    ``mode`` is ``"guard"`` (MDLs and buffers against guard pages, a fault reported to the
    parent before the process dies) or ``"no-guard"``."""
    # Private copies of the protocol pipes; the library's own stdout goes to stderr.
    requests = os.dup(0)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    guard = mode == "guard"
    # No faulthandler: its traceback would always show this loop; the calls say more. With
    # guards, the guard's handler reports the faulting address to the parent.
    if guard:
        install_fault_handler(fault_reporter(replies.fileno()))
    try:
        library = load_library(path)
    except LibraryError as error:  # its message names the path and what is wrong
        write_message(replies, ("error", str(error)))
        return 1
    except Exception as error:
        write_message(replies, ("error", f"{type(error).__name__}: {error}"))
        return 1
    write_message(replies, ("ready", None))
    targets: dict[int, NativeTarget] = {}
    while True:
        ok, message = read_message(requests, None)
        if not ok:
            break
        target_id, method, args = message
        if method == "shutdown":
            break
        try:
            if method == "close":
                closing = targets.pop(target_id, None)
                if closing is not None:
                    closing.close()
                result = None
            elif method not in FORWARDED:
                raise AttributeError(f"the worker does not forward {method!r}")
            else:
                target = targets.get(target_id)
                if target is None:
                    target = targets[target_id] = NativeTarget(path, library=library, guard=guard)
                if method == "send_with_external_mdl" and args[1] is not None:
                    args = (args[0], bytearray(args[1]), *args[2:])
                result = getattr(target, method)(*args)
            reply: tuple[str, Any] = ("ok", result)
        except ImpossibleResult as error:
            reply = ("impossible", error.detail)
        except Exception as error:
            # By name: the parent rebuilds the few it knows (protocol.rebuild_error).
            reply = ("error", (type(error).__name__, str(error)))
        write_message(replies, reply)
    for target in targets.values():
        target.close()
    return 0
