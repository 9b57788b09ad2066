"""Malformed-input campaign for the native sweep runner at scale (issue 10, part 3).

Runs the generators of ``tests/adapters/test_native_sweep.py`` on its two interfaces:

1. shapes as Python values (``adapters.native.sweep.encode_shape``, what ``run_shapes`` checks
   before anything runs): every part possibly malformed (wrong types, out-of-range integers,
   bools, tuples of the wrong length, too many MDLs, buffers shorter than BufferLength). Each
   input ends ``encoded`` or ``refused`` with a ValueError naming the problem;
2. encoded batches for ``vmbsweep_run`` (called in this process on the Rust core): valid
   batches, then mangled (bytes flipped, cut, inserted, a field set to an extreme) or noise,
   with valid and invalid ring sizes. Each input ends ``ok``, ``results-full`` or
   ``bad-shape``, with records that decode and, for an unmangled batch, one per shape.

Anything else (another exception, a code outside those, records that do not decode, a
crash of this process) counts as a crash. Writes bench/results/malformed-sweep-native.md.

Run: ``PYTHONPATH=. python bench/malformed_sweep_native.py [--examples N] [--no-write]``.
"""

from __future__ import annotations

import argparse
import collections
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "adapters"))

import test_native_sweep as campaign  # noqa: E402  (the shared generators)

from vmbspec.adapters.rust.build import library_path  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "malformed-sweep-native.md"
COMMAND = "PYTHONPATH=. python bench/malformed_sweep_native.py"


class Tally:
    def __init__(self) -> None:
        self.inputs = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.crashes: list[str] = []
        self.seconds = 0.0

    def judge(self, run: Callable[[], str]) -> None:
        self.inputs += 1
        try:
            self.outcomes[run()] += 1
        except Exception:  # counted and reported; the campaign goes on
            self.outcomes["crash"] += 1
            if len(self.crashes) < 5:
                self.crashes.append(traceback.format_exc(limit=3))


def campaign_of(strategy: st.SearchStrategy[Any], judge: Callable[[Any], None],
                examples: int) -> float:
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(value: Any) -> None:
        judge(value)

    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    values = Tally()
    values.seconds = campaign_of(
        campaign.python_shapes(),
        lambda shape: values.judge(lambda: campaign.check_python_shape(shape)),
        args.examples,
    )
    print(f"python shapes: {values.inputs} inputs, {dict(values.outcomes)}", file=sys.stderr)

    runner = campaign.InProcessRunner(str(library_path()))
    batches = Tally()
    batches.seconds = campaign_of(
        st.tuples(campaign.encoded_batches(), st.sampled_from(campaign.CAMPAIGN_RINGS)),
        lambda drawn: batches.judge(lambda: runner.check(drawn[0][0], drawn[0][1], drawn[1])),
        args.examples,
    )
    print(f"encoded batches: {batches.inputs} inputs, {dict(batches.outcomes)}", file=sys.stderr)

    rows = (("shapes as Python values (`encode_shape`)", values, ("encoded", "refused")),
            ("encoded batches (`vmbsweep_run`, in process, Rust core)", batches,
             ("ok", "results-full", "bad-shape")))
    lines = [
        "# Malformed inputs to the native sweep runner",
        "",
        f"Written by `bench/malformed_sweep_native.py` (`{COMMAND}"
        + ("" if args.examples == 10_000 else f" --examples {args.examples}") + "`).",
        "",
        f"- machine: {platform.machine()}, Python {platform.python_version()}, hypothesis "
        f"{hypothesis.__version__}",
        "- generators: `tests/adapters/test_native_sweep.py` (the tests run 300 of each)",
        "- outcomes: Python shapes end `encoded` or `refused` (a ValueError naming the "
        "problem); encoded batches end `ok`, `results-full` or `bad-shape` with records that "
        "decode (one per shape for an unmangled batch). Anything else is a crash",
        "",
        "| interface | inputs | crashes | outcomes | seconds |",
        "|---|---|---|---|---|",
    ]
    for label, tally, names in rows:
        outcomes = ", ".join(f"{name} {tally.outcomes[name]}" for name in names)
        lines.append(f"| {label} | {tally.inputs} | {tally.outcomes['crash']} | {outcomes} | "
                     f"{tally.seconds:.1f} |")
    for tally in (values, batches):
        for crash in tally.crashes:
            lines += ["", "```", crash.strip(), "```"]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.write_text(text)
    return 1 if values.outcomes["crash"] or batches.outcomes["crash"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
