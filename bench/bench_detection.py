"""Benchmark: does the stateful run alone find every broken simulator, on every seed?

For each bug switch of ``adapters.sim`` and each of five seeds, runs the default stateful run
(``run_conformance("sim:BUG", cases=False, examples=N, seed=S)``: no hand-written case helps)
and records whether it failed, after how many examples, the requirements it named, the length
of the minimal step list (all steps, and the driver's calls alone: without the host's
``host_take`` / ``host_complete``), and the seconds from the first failure to that list.

Goals (issue 11): every switch found on 5 of 5 seeds; median minimal length at most 4 calls;
each shrink at most 30 s.

Run: ``python bench/bench_detection.py [--examples 1000] [--seeds 1,2,3,4,5]
[--write bench/results/detection.md]``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

from vmbspec.adapters.sim import BUGS
from vmbspec.conformance import run_conformance

HOST_OPS = frozenset({"host_take", "host_complete"})


def measure(bug: str, seed: int, examples: int) -> dict[str, object]:
    started = time.perf_counter()
    report = run_conformance(f"sim:{bug}", examples=examples, cases=False, seed=seed)
    seconds = time.perf_counter() - started
    if report.passed:
        return {"found": False, "examples": report.examples, "seconds": seconds}
    failure = report.failures[0]
    return {
        "found": True,
        "examples": report.examples,
        "requirements": failure.requirements,
        "steps": len(failure.steps),
        "calls": sum(1 for s in failure.steps if s.get("op") not in HOST_OPS),
        "shrink": report.shrink_seconds,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seeds", default="1,2,3,4,5")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    results: list[dict[str, object]] = []
    for bug in sorted(BUGS):
        runs = [measure(bug, seed, args.examples) for seed in seeds]
        results += runs
        found = [r for r in runs if r["found"]]
        named = sorted({rid for r in found for rid in r["requirements"][:2]})  # type: ignore[attr-defined]
        rows.append(
            f"| `{bug}` | {len(found)}/{len(runs)} | "
            f"{', '.join(str(r['examples']) if r['found'] else 'missed' for r in runs)} | "
            f"{', '.join(str(r['steps']) for r in found)} | "
            f"{', '.join(str(r['calls']) for r in found)} | "
            f"{max((float(r['shrink']) for r in found), default=0.0):.2f} | "  # type: ignore[arg-type]
            f"{', '.join(named)} |"
        )
        print(rows[-1], flush=True)
    found = [r for r in results if r["found"]]
    steps = [int(r["steps"]) for r in found]  # type: ignore[call-overload]
    calls = [int(r["calls"]) for r in found]  # type: ignore[call-overload]
    shrinks = [float(r["shrink"]) for r in found]  # type: ignore[arg-type]
    lines = [
        "# Benchmark: the stateful run alone against every broken simulator",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}; measured "
        f"{date.today().isoformat()}.",
        "",
        f"Command: `python bench/bench_detection.py --examples {args.examples} --seeds "
        f"{args.seeds}` (each run: `run_conformance('sim:BUG', cases=False, "
        f"examples={args.examples}, seed=S)`, no hand-written case).",
        "",
        "| switch | found | examples to the failure, per seed | minimal steps | minimal calls "
        "(without host steps) | slowest shrink (s) | first requirements named |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"- found: {len(found)} of {len(results)} runs ({len(BUGS)} switches x {len(seeds)} "
        "seeds); goal: all",
        f"- minimal list: median {statistics.median(steps) if steps else 0} steps, "
        f"{statistics.median(calls) if calls else 0} calls without the host's steps; range "
        f"{min(steps, default=0)}-{max(steps, default=0)} steps; goal: median at most 4 calls",
        f"- shrink (first failure to minimal list): median "
        f"{statistics.median(shrinks) if shrinks else 0:.2f} s, slowest "
        f"{max(shrinks, default=0):.2f} s; goal: each at most 30 s",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        args.write.write_text(text)
    return 0 if len(found) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
