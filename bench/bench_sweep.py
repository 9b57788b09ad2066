"""Benchmark of ``vmbspec sweep``: lattice sizes, the spec's batch verdicts against the per-call
evaluation, and whole sweeps, measured side by side in one run on this machine.

    .venv/bin/python bench/bench_sweep.py [--out bench/results/sweep.md] [--no-rust]

Figures:

* the lattice size per chain length (``conformance.sweep.lattice.sizes``);
* shapes per second of the verdict computation: ``spec.batch.evaluate_batch`` over the arrays
  of the chains-of-2 lattice (1.26 million shapes, in parts of 65,536 as the sweep does), and
  ``spec.rules.evaluate_send`` call by call on a sample of the same shapes (SendCall objects
  built beforehand, so only the evaluation is timed); also the batch including the
  conversion of shape tuples to arrays;
* the first failing shape the full chains-of-1 lattice finds on each single-call bug switch
  of the simulator;
* the wall time of the sweep on ``sim`` (per shape, through the driver) for chains of 1 MDL,
  and on the Rust core (``rust``: the native batch runner when it is there) for chains of at
  most 1, 2 and 3 MDLs.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

from vmbspec.conformance.sweep import evaluate, run
from vmbspec.conformance.sweep.lattice import RING_DATA_SIZE, LatticeSpec, shapes, sizes
from vmbspec.conformance.targets import resolve_target
from vmbspec.spec.batch import evaluate_batch
from vmbspec.spec.call import SendCall
from vmbspec.spec.mdl import MdlChain, MdlSegment
from vmbspec.spec.readings import Profile
from vmbspec.spec.rules import SendContext, evaluate_send

PART = 1 << 16
#: The simulator's bug switches that concern single-call arithmetic.
DETECTED_BUGS = ("wrap32", "force-ignores-byteoffset", "range-per-page", "zero-length-range",
                 "extra-pfn", "ignore-wait-flag")


def _call(shape: tuple) -> SendCall:
    mdl, offset, length, flags, buffer, buffer_length = shape
    chain = None if mdl is None else MdlChain(tuple(MdlSegment(*m) for m in mdl))
    return SendCall(buffer, buffer_length, chain, offset, length, flags)


def bench_verdicts(profile: Profile) -> dict[str, float]:
    group = list(shapes(LatticeSpec(2), 2))
    started = time.perf_counter()
    batches = [evaluate.call_batch(group[i:i + PART]) for i in range(0, len(group), PART)]
    convert = time.perf_counter() - started
    started = time.perf_counter()
    for batch in batches:
        evaluate_batch(batch, RING_DATA_SIZE, profile)
    batch_seconds = time.perf_counter() - started
    sample = random.Random(0).sample(group, 20_000)
    calls = [_call(s) for s in sample]
    context = SendContext.fresh(RING_DATA_SIZE)
    started = time.perf_counter()
    for call in calls:
        evaluate_send(call, context, profile)
    python_seconds = time.perf_counter() - started
    return {
        "shapes": len(group),
        "batch_per_s": len(group) / batch_seconds,
        "batch_with_conversion_per_s": len(group) / (batch_seconds + convert),
        "python_sample": len(sample),
        "python_per_s": len(sample) / python_seconds,
    }


def bench_sweep(target: str, chains: int, profile: Profile) -> tuple[float, run.SweepResult]:
    _name, factory = resolve_target(target)
    started = time.perf_counter()
    result = run.sweep(target, factory, profile, LatticeSpec(chains))
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("bench/results/sweep.md"))
    parser.add_argument("--no-rust", action="store_true")
    args = parser.parse_args()
    profile = Profile.default()
    lines = ["# vmbspec sweep: lattice, batch verdicts, sweep times", "",
             f"Command: `.venv/bin/python bench/bench_sweep.py` "
             f"({platform.python_implementation()} {platform.python_version()}, "
             f"{os.cpu_count()} cores, {platform.machine()}; a shared machine, runs vary).", "",
             "## Lattice size", "", "| chains of at most | NULL family | 1 MDL | 2 MDLs | "
             "3 MDLs | total |", "|---|---:|---:|---:|---:|---:|"]
    for chains in (1, 2, 3):
        counts = sizes(LatticeSpec(chains))
        cells = [str(counts.get(n, "")) for n in range(4)]
        lines.append(f"| {chains} | {' | '.join(cells)} | {sum(counts.values())} |")
        print(f"lattice chains {chains}: {counts}", file=sys.stderr)
    figures = bench_verdicts(profile)
    print(f"verdicts: {figures}", file=sys.stderr)
    goal = "met" if figures["batch_per_s"] >= 1_000_000 else "NOT met"
    lines += ["", "## Verdict computation (spec side)", "",
              "| evaluation | shapes | shapes/s |", "|---|---:|---:|",
              f"| `spec.batch.evaluate_batch` (NumPy, parts of {PART}) | {figures['shapes']} | "
              f"{figures['batch_per_s']:,.0f} |",
              f"| the same, with the conversion of shape tuples to arrays | {figures['shapes']} "
              f"| {figures['batch_with_conversion_per_s']:,.0f} |",
              f"| `spec.rules.evaluate_send`, call by call (random sample) | "
              f"{figures['python_sample']} | {figures['python_per_s']:,.0f} |", "",
              f"Goal of at least 1,000,000 shapes/s for the verdict computation: **{goal}** "
              f"({figures['batch_per_s'] / figures['python_per_s']:.0f} times the per-call "
              "evaluation). Chains of 2 MDLs, default profile.", "",
              "## Sweeps", "", "| target | chains of at most | shapes | path | verdict | "
              "wall time |", "|---|---:|---:|---|---|---:|"]
    runs = [("sim", 1)] + ([] if args.no_rust else [("rust", 1), ("rust", 2), ("rust", 3)])
    for target, chains in runs:
        seconds, result = bench_sweep(target, chains, profile)
        verdict = "pass" if result.passed else f"FAIL ({len(result.failures)})"
        print(f"sweep {target} chains {chains}: {seconds:.1f} s {result.path} {verdict}",
              file=sys.stderr)
        lines.append(f"| `{target}` | {chains} | {result.total} | {result.path} | {verdict} | "
                     f"{seconds:.1f} s |")
    lines += ["", "## Detection", "", "Each single-call bug switch of the simulator, the full "
              "lattice for chains of 1 MDL, stopped at the first failing shape "
              "(`vmbspec sweep --target sim:BUG --max-failures 1`):", "",
              "| target | shapes run to the first failure | requirements named | wall time |",
              "|---|---:|---|---:|"]
    for bug in DETECTED_BUGS:
        _name, factory = resolve_target(f"sim:{bug}")
        started = time.perf_counter()
        result = run.sweep(f"sim:{bug}", factory, profile, LatticeSpec(1), max_failures=1)
        seconds = time.perf_counter() - started
        named = ", ".join(result.failures[0].failure.requirements) if result.failures else \
            "NOT FOUND"
        print(f"detect {bug}: {named} after {result.shapes_run} shapes", file=sys.stderr)
        lines.append(f"| `sim:{bug}` | {result.shapes_run} | {named} | {seconds:.1f} s |")
    lines += ["", "The same sweeps from the command line: `vmbspec sweep --target sim --chains 1`,"
              " `vmbspec sweep --target rust --chains 2` (and `--chains 3`). `sim` runs shape "
              "by shape through the driver; `rust` uses `adapters.native.sweep.run_shapes` "
              "(native code, guard pages) with the results checked against the batch verdicts.",
              ""]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
