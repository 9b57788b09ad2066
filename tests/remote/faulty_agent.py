"""A remote agent that misbehaves on purpose, for the fault tests (run as a script).

    faulty_agent.py MODE AT [--once FLAG_FILE]

Serves the simulator over stdio like ``vmbspec agent`` does, except at the AT-th target-method
request of a session (counted from initialize/reset), where it does MODE:

- ``malformed``: answers with a line that is not JSON;
- ``wrong-id``: answers with another request's id;
- ``oversized``: answers with a line over the 8 MiB message limit;
- ``close``: exits, closing the connection in the middle of the case;
- ``silent``: never answers (sleeps until killed);
- ``silent-start``: never answers anything, not even initialize.

With ``--once FLAG_FILE`` the fault fires only while FLAG_FILE does not exist (it is created
when the fault fires), so exactly one case of a run meets it.
"""

from __future__ import annotations

import json
import os
import sys
import time

from vmbspec.adapters.remote.framing import MAX_MESSAGE_BYTES
from vmbspec.adapters.remote.protocol import METHODS, dumps
from vmbspec.adapters.remote.server import Session
from vmbspec.adapters.sim import SimTarget


def main(argv: list[str]) -> int:
    mode, at = argv[0], int(argv[1])
    flag = argv[3] if len(argv) > 3 and argv[2] == "--once" else None
    out = sys.stdout.buffer
    session = Session(SimTarget)
    count = 0
    for line in sys.stdin.buffer:
        if mode == "silent-start":
            time.sleep(3600)
        message = json.loads(line)
        method = message.get("method")
        if method in ("initialize", "reset"):
            count = 0
        elif method in METHODS:
            count += 1
        armed = flag is None or not os.path.exists(flag)
        if count == at and method in METHODS and armed:
            if flag is not None:
                open(flag, "w").close()
            if mode == "close":
                return 0
            if mode == "silent":
                time.sleep(3600)
            if mode == "malformed":
                out.write(b"{this is not json\n")
            elif mode == "wrong-id":
                reply = session.handle(message)
                reply["id"] = message["id"] + 1000
                out.write(dumps(reply) + b"\n")
            elif mode == "oversized":
                out.write(b'{"jsonrpc":"2.0","id":' + str(message["id"]).encode()
                          + b',"result":"' + b"0" * (MAX_MESSAGE_BYTES + 16) + b'"}\n')
            out.flush()
            continue
        reply = session.handle(message)
        if reply is not None:
            out.write(dumps(reply) + b"\n")
            out.flush()
        if session.closing:
            break
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
