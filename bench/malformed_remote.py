"""Malformed-input campaign on the remote protocol, at scale: the generators of
``tests/remote/malformed_inputs.py`` (the same as ``tests/remote/test_remote_malformed.py``),
run for many more inputs, with the figures written to ``bench/results/malformed-remote.md``.

    .venv/bin/python bench/malformed_remote.py [--inputs N] [--out FILE]

Interfaces:

* agent requests over stdio (a ``vmbspec agent`` child process) and over TCP (an agent on
  127.0.0.1): each input line must get well-formed JSON-RPC replies, no internal error, and a
  valid ``initialize`` after it must still succeed;
* client replies: a fake agent answers one method with a generated line; the client must make
  a result, a crash/hang fault or an agent error of it, naming the method.

A *crash* here is any input for which that does not hold (the campaign's failure); it must
be 0. Inputs are counted as they are tried; the run is derandomized, so it is repeatable.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings

ROOT = Path(__file__).resolve().parent.parent


def _load_inputs() -> ModuleType:
    path = ROOT / "tests" / "remote" / "malformed_inputs.py"
    spec = importlib.util.spec_from_file_location("vmbspec_remote_malformed_inputs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Tally:
    def __init__(self, name: str) -> None:
        self.name = name
        self.tried = 0
        self.crashes: list[str] = []
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.seconds = 0.0


def _campaign(strategy: Any, examples: int, check: Callable[[Any], str], tally: Tally) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(value: Any) -> None:
        tally.tried += 1
        try:
            tally.outcomes[check(value)] += 1
        except AssertionError as error:  # inputs.Unexpected: counted, the run goes on
            tally.crashes.append(str(error)[:300])

    started = time.perf_counter()
    one()
    tally.seconds = time.perf_counter() - started


def run(examples: int) -> list[Tally]:
    inputs = _load_inputs()
    tallies = []
    for transport in ("stdio", "tcp"):
        tally = Tally(f"agent requests ({transport})")
        agent = inputs.AgentUnderTest(transport)

        def exchange(line: bytes, agent: Any = agent) -> str:
            replies = agent.exchange(line)
            return "replied" if replies else "no reply (notification or blank)"

        try:
            _campaign(inputs.requests, examples, exchange, tally)
        finally:
            agent.close()
        tallies.append(tally)
        print(f"{tally.name}: {tally.tried} inputs, {len(tally.crashes)} crashes, "
              f"{tally.seconds:.1f} s", flush=True)
    tally = Tally("client replies")
    _campaign(inputs.replies, examples, lambda pair: inputs.client_outcome(*pair), tally)
    tallies.append(tally)
    print(f"{tally.name}: {tally.tried} inputs, {len(tally.crashes)} crashes, "
          f"{tally.seconds:.1f} s", flush=True)
    return tallies


def write(tallies: list[Tally], out: Path, command: str) -> None:
    lines = [
        "# Malformed-input campaign: remote protocol",
        "",
        "Generated inputs sent to a live agent (requests) and to the client (replies from a "
        "fake agent), with the generators of `tests/remote/malformed_inputs.py`. A crash is an "
        "input that did not end in a well-formed reply (agent; an internal error counts) and a "
        "live agent afterwards, or, for the client, in a result, a crash/hang fault or an "
        "agent error naming the method.",
        "",
        "| interface | inputs tried | crashes | seconds | outcomes |",
        "|---|---:|---:|---:|---|",
    ]
    for tally in tallies:
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(tally.outcomes.items()))
        lines.append(f"| {tally.name} | {tally.tried:,} | {len(tally.crashes)} | "
                     f"{tally.seconds:.1f} | {outcomes} |")
    lines += ["", f"Command: `{command}`", "",
              f"Machine: {platform.machine()}, Python {platform.python_version()}, "
              f"{time.strftime('%Y-%m-%d', time.gmtime())} (a shared 2-core machine; the "
              "seconds include Hypothesis's own generation)."]
    crashes = [c for t in tallies for c in t.crashes]
    if crashes:
        lines += ["", "## Crashes (first 20)", ""] + [f"- `{c}`" for c in crashes[:20]]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000,
                        help="inputs per interface (default 10000)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                        "malformed-remote.md")
    args = parser.parse_args(argv)
    if args.inputs < 1:
        parser.error("--inputs must be at least 1")
    tallies = run(args.inputs)
    shown = ["bench/malformed_remote.py"] + (
        [f"--inputs {args.inputs}"] if args.inputs != 10_000 else [])
    write(tallies, args.out, ".venv/bin/python " + " ".join(shown))
    print(f"wrote {args.out}")
    return 1 if any(t.crashes for t in tallies) else 0


if __name__ == "__main__":
    raise SystemExit(main())
