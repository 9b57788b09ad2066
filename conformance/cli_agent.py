"""``vmbspec agent``: serve a target over the remote protocol (``docs/remote-protocol.md``).

The backend is resolved here, with the same names as ``--target`` (``sim``, ``sim:BUG``,
``rust``, ``native:PATH``); the agent itself (``adapters.remote.server``) only receives a
factory, so it stays independent of the spec and the suite. Runs standalone too:
``python -m vmbspec.conformance.cli_agent --backend sim --listen stdio``.

Every number on the command line is checked here, so a wrong one is a usage error (exit
status 2) naming the option: ``--timeout`` (finite, above 0, at most a day),
``--max-connections`` and ``--idle-timeout`` (TCP: how many connections at once, and how long
one may stay silent; ``adapters.remote.server.check_limits``).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vmbspec.adapters.remote.server import DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS
from vmbspec.conformance.cli_common import UsageError
from vmbspec.conformance.targets import UnknownTarget, resolve_target

#: The longest ``--timeout`` for one call to an isolated backend: one day.
MAX_TIMEOUT = 86400.0


def run_agent(args: argparse.Namespace) -> int:
    from vmbspec.adapters.remote.server import check_limits, log_listening, parse_listen, serve

    if args.backend.startswith("remote:"):
        raise UsageError("--backend cannot be a remote target (an agent serving an agent)")
    try:
        parse_listen(args.listen)
        check_limits(args.max_connections, args.idle_timeout)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if args.timeout is not None and not (
        math.isfinite(args.timeout) and 0 < args.timeout <= MAX_TIMEOUT
    ):
        raise UsageError(f"--timeout must be a number of seconds above 0 and at most "
                         f"{MAX_TIMEOUT:g}, not {args.timeout!r}")
    if args.trace is not None and not Path(args.trace).parent.exists():
        raise UsageError(f"cannot write {args.trace}: folder {Path(args.trace).parent} "
                         "does not exist")
    options: dict[str, Any] = {"isolate": args.isolate, "timeout": args.timeout,
                               "guard": args.guard}
    try:
        _name, factory = resolve_target(args.backend, options)
    except UnknownTarget as error:
        raise UsageError(str(error)) from error
    listening = None if args.quiet else log_listening
    return serve(factory, args.listen, trace=args.trace, on_listening=listening,
                 max_connections=args.max_connections, idle_timeout=args.idle_timeout)


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", default="sim", metavar="TARGET",
                        help="the target to serve: sim (default), sim:BUG[,BUG], sim:A5=b, rust, "
                        "native:PATH")
    parser.add_argument("--listen", default="stdio", metavar="stdio|tcp://HOST:PORT",
                        help="standard input/output (default) or a TCP address; port 0 picks "
                        "a free port, printed on stderr")
    parser.add_argument("--trace", metavar="FILE.jsonl", default=None,
                        help="record every call, packet and completion (docs/trace-format.md)")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        metavar="N",
                        help="TCP: serve at most N connections at once; one more is sent a "
                        "'too many connections' error and closed (default "
                        f"{DEFAULT_MAX_CONNECTIONS})")
    parser.add_argument("--idle-timeout", type=float, default=DEFAULT_IDLE_TIMEOUT,
                        metavar="SECONDS",
                        help="TCP: close a connection that sends no request for this long "
                        f"(default {DEFAULT_IDLE_TIMEOUT:g})")
    parser.add_argument("--quiet", action="store_true",
                        help="do not print the listening address on stderr")
    isolate = parser.add_mutually_exclusive_group()
    isolate.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                         help="run a native backend in a worker process")
    isolate.add_argument("--no-isolate", dest="isolate", action="store_false",
                         help="load a native backend into the agent")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="how long one call to an isolated backend may take")
    parser.add_argument("--no-guard", dest="guard", action="store_false", default=None,
                        help="native backends: no guard pages around the MDLs and buffer of "
                        "a send")
    parser.set_defaults(func=run_agent)


def add_parser(subparsers: Any) -> None:
    agent = subparsers.add_parser(
        "agent",
        help="serve a target over the remote protocol (the reference agent)",
        description="Serve a backend target over the remote protocol: JSON-RPC 2.0, one "
        "message a line, on stdio or TCP (docs/remote-protocol.md). The template a harness "
        "around a real driver follows. Run the suite through it with --target "
        "remote:tcp://HOST:PORT or remote:stdio:COMMAND.",
    )
    _configure(agent)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vmbspec agent")
    _configure(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (UsageError, OSError) as error:
        print(f"vmbspec agent: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
