"""Malformed-input campaign at scale: replay files, the wire decoders and the spec's API.

Runs the generators and checks of the bounded Hypothesis tests, for at least ``--inputs``
inputs per interface (10,000 by default), and counts every input whose outcome was not one
of the allowed ones as a crash:

* replay files (``tests/conformance/test_replay_inputs.py``): valid, mutated (wrong types,
  huge integers, deep nesting, missing and unknown keys, truncated or corrupted text), random
  JSON and random bytes, through ``load_replay`` and ``replay_steps`` on the simulator. Allowed:
  ``ReplayFileError``, ``StepError``, or a replay that conforms;
* the wire decoders (``tests/spec/test_wire.py``): arbitrary, plausible and mutated packets,
  trailers, control pages and corrupted rings. Allowed: a decoded value or ``WireFormatError``;
* the spec's public constructors and functions (``tests/spec/test_api_inputs.py``): values of
  any type. Allowed: a value or a ``SpecError`` (``InvalidValue``).

Run: ``python bench/malformed_replay.py [--inputs N] [--write bench/results/malformed-replay.md]``.
"""

from __future__ import annotations

import argparse
import collections
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from campaigns import load_test_module, run_campaign
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent


class Tally:
    def __init__(self) -> None:
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.crashes: list[str] = []

    @property
    def inputs(self) -> int:
        return sum(self.outcomes.values()) + len(self.crashes)


def campaign(
    strategy: st.SearchStrategy[Any], check: Callable[[Any], str], inputs: int
) -> tuple[Tally, float]:
    """Run ``check`` on generated inputs until at least ``inputs`` have run."""
    tally = Tally()
    tally.outcomes, tally.crashes, seconds = run_campaign(strategy, check, inputs)
    return tally, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000,
                        help="inputs per interface (default 10000)")
    parser.add_argument("--write", metavar="FILE", help="write the results as Markdown")
    args = parser.parse_args(argv)

    replay = load_test_module("tests/conformance/test_replay_inputs.py")
    wire = load_test_module("tests/spec/test_wire.py")
    api = load_test_module("tests/spec/test_api_inputs.py")
    rows = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        interfaces: list[tuple[str, st.SearchStrategy[Any], Callable[[Any], str]]] = [
            ("replay files: `load_replay` + `replay_steps` on `sim`", replay.replay_documents(),
             lambda raw: replay.check_replay_document(raw, folder)),
            ("wire decoders: `decode_packet`, `decode_trailer`, `decode_ring_control`, "
             "`read_ring`", wire.wire_inputs, lambda case: wire.check_wire_input(*case)),
            ("spec API: 14 public constructors and functions", api.api_inputs,
             lambda case: api.check_api_call(*case)),
        ]
        for title, strategy, check in interfaces:
            tally, seconds = campaign(strategy, check, args.inputs)
            rows.append((title, tally, seconds))
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))
            print(f"{title}: {tally.inputs} inputs ({outcomes}), {len(tally.crashes)} crashes, "
                  f"{seconds:.1f} s")
            for crash in tally.crashes[:3]:
                print(crash)
    if args.write:
        Path(args.write).write_text(markdown(rows, argv), encoding="utf-8")
    return 0 if all(not tally.crashes for _, tally, _ in rows) else 1


def markdown(rows: list[tuple[str, Tally, float]], argv: list[str] | None) -> str:
    command = " ".join(["python bench/malformed_replay.py", *(argv or sys.argv[1:])])
    lines = [
        "# Malformed-input campaign: replay files, wire decoders, spec API",
        "",
        f"Command: `{command}` (from the repository root, with the project's virtual "
        "environment).",
        "",
        f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python "
        f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "A crash is any outcome other than the allowed ones: for replay files "
        "`ReplayFileError`, `StepError` or a replay that conforms on the (conforming) "
        "simulator; for the wire decoders a decoded value or `WireFormatError`; for the spec "
        "API a value or `SpecError`. Generators: the bounded Hypothesis tests "
        "(`tests/conformance/test_replay_inputs.py`, `tests/spec/test_wire.py`, "
        "`tests/spec/test_api_inputs.py`), generation phase only, seeds 1, 2, ...",
        "",
        "| interface | inputs | outcomes | crashes | seconds |",
        "|---|---:|---|---:|---:|",
    ]
    for title, tally, seconds in rows:
        outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(tally.outcomes.items()))
        lines.append(f"| {title} | {tally.inputs} | {outcomes} | {len(tally.crashes)} | "
                     f"{seconds:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
