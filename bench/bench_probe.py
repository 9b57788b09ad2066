"""How long ``vmbspec probe`` takes (issue 13: at most 10 s on the simulator).

Runs the command as a user does (a fresh process, wall clock), a few times per target, and
reads from its JSON report how the time splits: the probe runs themselves and the confirmation
check (the case catalog and 50 stateful examples). The Z3 search that found the probes
(``python -m vmbspec.spec.discriminate``) is timed apart: a probe run reads the stored
``conformance/probe/calls.json`` and does not need the solver.

Usage: ``.venv/bin/python bench/bench_probe.py [--runs N] [--out bench/results/probe.md]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VMBSPEC = str(Path(sys.executable).with_name("vmbspec"))
TARGETS = ("sim", "sim:A3=c+A5=b", "rust")
GOAL_SECONDS = 10.0


def _probe(target: str) -> dict[str, float | int | str]:
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "probe.json"
        command = [VMBSPEC, "probe", "--target", target, "--quiet", "--json", str(report)]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        document = json.loads(report.read_text())
    return {
        "wall": wall,
        "status": done.returncode,
        "probe": float(document["probe_seconds"]),
        "confirm": float(document["seconds"]) - float(document["probe_seconds"]),
        "runs": int(document["runs"]),
        "profile": str(document["profile"]),
    }


def _discriminate() -> tuple[float, str]:
    command = [sys.executable, "-m", "vmbspec.spec.discriminate"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    line = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    return wall, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/probe.md")
    args = parser.parse_args()
    rows = []
    worst_sim = 0.0
    for target in TARGETS:
        results = [_probe(target) for _ in range(args.runs)]
        walls = [float(r["wall"]) for r in results]
        if target.startswith("sim"):
            worst_sim = max(worst_sim, *walls)
        first = results[0]
        rows.append(
            f"| `{target}` | {statistics.median(walls):.2f} | {max(walls):.2f} | "
            f"{statistics.median(float(r['probe']) for r in results):.2f} | "
            f"{statistics.median(float(r['confirm']) for r in results):.2f} | "
            f"{first['runs']} | `{first['profile']}` | {first['status']} |"
        )
        print(rows[-1], flush=True)
    z3_wall, z3_line = _discriminate()
    print(f"vmbspec.spec.discriminate: {z3_wall:.2f} s ({z3_line})")
    verdict = "met" if worst_sim <= GOAL_SECONDS else "NOT met"
    lines = [
        "# `vmbspec probe`: time",
        "",
        "Command (each run a fresh process, wall clock, this shared 2-core machine):",
        "",
        "```sh",
        f".venv/bin/python bench/bench_probe.py --runs {args.runs}",
        "# which runs, per target:",
        "vmbspec probe --target TARGET --quiet --json probe.json",
        "```",
        "",
        f"Goal: at most {GOAL_SECONDS:.0f} s on the simulator: **{verdict}** (slowest simulator "
        f"run {worst_sim:.2f} s).",
        "",
        "| target | wall median (s) | wall max (s) | probe runs (s) | confirmation check (s) "
        "| probe runs | profile found | exit |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "The wall time includes starting Python and importing vmbspec (about 0.5 s). *Probe "
        "runs* is the inference itself: every probe of `conformance/probe/calls.json` on a "
        "fresh target under each candidate profile (every combination of the interacting "
        "readings' options, A1+A5+A9 and A2+A3), in passes until the base profile settles. "
        "*Confirmation check* is the short `check` under the profile found (the case catalog "
        "and 50 stateful examples), most of the time. `rust` is probed isolated (a worker "
        "process), as `vmbspec probe` does by default. An exit status other than 0 is "
        "explained by the probe's own output (for example a confirmation the case catalog "
        "could not judge).",
        "",
        "The Z3 search that found the probes is not part of a probe run (the probes are stored "
        "in `conformance/probe/calls.json`); timed apart:",
        "",
        "```sh",
        ".venv/bin/python -m vmbspec.spec.discriminate > /dev/null",
        "```",
        "",
        f"{z3_wall:.2f} s wall; its own account: `{z3_line}`",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
