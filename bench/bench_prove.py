"""Time every Z3 property (several runs, median) and write bench/results/prove.md.

    PYTHONPATH=. python bench/bench_prove.py [--repeat N] [--no-write] [--bv64]

The goal (issue 3): the whole default set in at most 2 seconds on a 2-core machine. ``--bv64``
also times every property over the spec's 64-bit bit-vectors instead of exact integers, to
record what the integer engine saves.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import z3

from vmbspec.spec.proofs.properties import EXTENDED, PROPERTIES, Property, run_property

RESULTS = Path(__file__).resolve().parent / "results" / "prove.md"
GOAL_SECONDS = 2.0


def _time(prop: Property, repeat: int, timeout_s: float) -> tuple[str, list[float]]:
    statuses, seconds = set(), []
    for _ in range(repeat):
        result = run_property(prop, timeout_s)
        statuses.add(result.status if result.ok else f"{result.status} (FAIL)")
        seconds.append(result.seconds)
    return "/".join(sorted(statuses)), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--bv64", action="store_true", help="also time each property on bv64")
    args = parser.parse_args(argv)

    rows = []
    started = time.perf_counter()
    for prop in PROPERTIES:
        status, seconds = _time(prop, args.repeat, args.timeout)
        rows.append((prop.name, prop.width or prop.engine, status, seconds))
        print(f"{prop.name:10} {status:16} median {statistics.median(seconds):.3f} s",
              file=sys.stderr, flush=True)
    default_total = sum(statistics.median(s) for *_, s in rows)
    extra_rows = []
    for prop in EXTENDED:
        status, seconds = _time(prop, 1, args.timeout)
        extra_rows.append((prop.name, prop.engine, status, seconds))
        print(f"{prop.name:10} {status:16} {seconds[0]:.3f} s", file=sys.stderr, flush=True)
    if args.bv64:
        for prop in PROPERTIES:
            if prop.engine == "bv64" or prop.width:
                continue
            status, seconds = _time(replace(prop, engine="bv64"), 1, args.timeout)
            extra_rows.append((f"{prop.name} on bv64", "bv64", status, seconds))
            print(f"{prop.name} bv64 {status:16} {seconds[0]:.3f} s", file=sys.stderr, flush=True)
    wall = time.perf_counter() - started

    lines = [
        "# `vmbspec prove` timings",
        "",
        "Written by `bench/bench_prove.py`; each property runs in its own Z3 context (cover",
        "queries, then the claim shape by shape, then replay of any counterexample).",
        "",
        f"- machine: {platform.machine()}, nproc {os.cpu_count()}, {platform.system()} "
        f"{platform.release()}",
        f"- python {platform.python_version()}, z3 {z3.get_full_version()}",
        f"- repetitions: {args.repeat} (median; min and max shown)",
        "",
        "| property | width | result | median s | min s | max s |",
        "|---|---|---|---|---|---|",
    ]
    for name, width, status, seconds in rows:
        lines.append(
            f"| {name} | {width} | {status} | {statistics.median(seconds):.3f} | "
            f"{min(seconds):.3f} | {max(seconds):.3f} |"
        )
    verdict = "meets" if default_total <= GOAL_SECONDS else "misses"
    lines += [
        "",
        f"**Default set: {default_total:.2f} s** (sum of medians); the goal of "
        f"{GOAL_SECONDS:.0f} s: {verdict} it.",
        "",
    ]
    if extra_rows:
        lines += [
            "Slower companions (one run each): the same claims over the spec's 64-bit",
            "bit-vectors instead of exact integers.",
            "",
            "| property | width | result | s |",
            "|---|---|---|---|",
        ]
        for name, width, status, seconds in extra_rows:
            lines.append(f"| {name} | {width} | {status} | {seconds[0]:.3f} |")
        lines.append("")
    lines.append(f"Benchmark wall time: {wall:.1f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
