"""Benchmark: stateful steps per second with 1 and 2 workers, side by side in one run.

The same examples (the same count, seed and batches) run in one process and split over two
(``check --workers 2``, conformance.workers), alternating, and the driver steps per second of
each are compared; the steps digests must be equal (the same examples). The time is the whole
run as a user waits for it: with 2 workers it includes starting the worker processes, merging
their results, and the parent's own check of the target.

The machine is shared (other jobs run on it): the load average before and after each run is
recorded, since a busy core takes from the 2-worker run what the 1-worker run never needed.

Run: ``python bench/bench_workers.py --examples 4000 --rounds 1 --write bench/results/workers.md``
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vmbspec.conformance.runner import run_conformance


def _spin(count: int) -> int:
    total = 0
    for value in range(count):
        total += value
    return total


def ceiling(count: int = 20_000_000) -> float:
    """What the machine gives two processes right now: the same pure-Python loop twice in
    one process, then once in each of two processes at the same time; the speed-up."""
    started = time.perf_counter()
    _spin(count)
    _spin(count)
    alone = time.perf_counter() - started
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.map(_spin, [1, 1])  # started and warm before the clock runs
        started = time.perf_counter()
        pool.map(_spin, [count, count])
        together = time.perf_counter() - started
    return alone / together


def measure(workers: int, examples: int, seed: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    report = run_conformance("sim", examples=examples, seed=seed, cases=False, workers=workers)
    seconds = time.perf_counter() - started
    if not report.passed:
        raise SystemExit(f"the run did not pass: {report.summary()}")
    return {
        "workers": workers,
        "seconds": seconds,
        "steps": report.evidence.total_steps,
        "examples": report.examples,
        "steps_per_second": report.evidence.total_steps / seconds,
        "digest": report.steps_digest,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="pairs of runs (1 worker, then 2), medians taken")
    parser.add_argument("--write", type=Path, help="the Markdown file to write")
    args = parser.parse_args()
    runs: list[dict[str, Any]] = []
    ceilings: list[float] = []
    for round_number in range(args.rounds):
        ceilings.append(ceiling())
        print(f"round {round_number + 1}: two processes of a CPU loop ran "
              f"{ceilings[-1]:.2f}x one", flush=True)
        for workers in (1, 2):
            run = measure(workers, args.examples, args.seed)
            runs.append(run)
            print(f"round {round_number + 1}, {workers} worker(s): {run['steps']} steps in "
                  f"{run['seconds']:.1f} s = {run['steps_per_second']:.0f} steps/s "
                  f"(load {run['load_before']:.2f} -> {run['load_after']:.2f})", flush=True)
    one = statistics.median(r["steps_per_second"] for r in runs if r["workers"] == 1)
    two = statistics.median(r["steps_per_second"] for r in runs if r["workers"] == 2)
    digests = {r["digest"] for r in runs}
    ratio = two / one
    print(f"1 worker {one:.0f} steps/s, 2 workers {two:.0f} steps/s: {ratio:.2f}x; "
          f"digests equal: {len(digests) == 1}")
    if args.write:
        args.write.write_text(render(args, runs, one, two, ratio, len(digests) == 1,
                                     ceilings))


def render(args: argparse.Namespace, runs: list[dict[str, Any]], one: float, two: float,
           ratio: float, same: bool, ceilings: list[float]) -> str:
    command = (f"python bench/bench_workers.py --examples {args.examples} --seed {args.seed} "
               f"--rounds {args.rounds} --write {args.write}")
    rows = "\n".join(
        f"| {r['workers']} | {r['examples']} | {r['steps']} | {r['seconds']:.1f} | "
        f"{r['steps_per_second']:.0f} | {r['load_before']:.2f} -> {r['load_after']:.2f} |"
        for r in runs
    )
    verdict = "met" if ratio >= 1.8 else "not met"
    shown_ceilings = ", ".join(f"{c:.2f}x" for c in ceilings)
    of_ceiling = ratio / statistics.median(ceilings)
    return f"""# Benchmark: stateful steps per second, 1 worker and 2 workers

Machine: {os.cpu_count()} cores (shared with other jobs), Python {platform.python_version()},
{platform.machine()}; measured {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}.
Command: `{command}`.

The same run (target sim, {args.examples} stateful examples, seed {args.seed}, no cases) in
one process and split over two (`check --workers 2`), alternating; the time is the whole run,
worker start-up and merging included. The load average (1 minute) before and after each run
says how busy the machine was: other jobs run here. Before each pair of runs, the machine's
own ceiling is measured: the same pure-Python loop twice in one process, then once in each of
two processes at once (2.0x on two idle cores; less when other jobs hold a core).

| workers | examples | driver steps | seconds | steps/s | load average |
|---|---|---|---|---|---|
{rows}

| measure | value | goal |
|---|---|---|
| 1 worker: driver steps per second (median) | {one:.0f} | |
| 2 workers: driver steps per second (median) | {two:.0f} | |
| ratio | {ratio:.2f}x | 1.8x ({verdict}) |
| the machine's ceiling: two CPU loops at once vs one after the other (per round) \
| {shown_ceilings} | 2.0x when idle |
| ratio / median ceiling (what the workers make of the cores they get) | {of_ceiling:.2f} | |
| steps digest of every run equal (the same examples) | {"yes" if same else "NO"} | yes |
"""


if __name__ == "__main__":
    main()
