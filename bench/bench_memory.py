"""Memory of a long stateful run: resident set size sampled over time.

    python bench/bench_memory.py [--examples 100000] [--limit-mb 1024]
        [--out bench/results/memory.md]

Runs ``vmbspec check --target sim --no-proofs --no-cases --examples N --quiet`` in a child
process under an address-space limit (``RLIMIT_AS``, what ``ulimit -v`` sets), samples its RSS
from /proc every half second, and writes the peak, the samples at each tenth of the run and
the exit status to a Markdown file. A run that needs more memory than the limit fails with a
MemoryError (exit 3), which the table shows.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

VMBSPEC = Path(sys.executable).parent / "vmbspec"


def rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100_000)
    parser.add_argument("--limit-mb", type=int, default=1024)
    parser.add_argument("--out", default="bench/results/memory.md")
    args = parser.parse_args()
    limit = args.limit_mb * 1024 * 1024

    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [str(VMBSPEC), "check", "--target", "sim", "--no-proofs", "--no-cases",
               "--examples", str(args.examples), "--quiet", "--replay-dir", "/tmp"]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, preexec_fn=set_limit)
    samples: list[tuple[float, float]] = []
    while child.poll() is None:
        value = rss_mb(child.pid)
        if value is not None:
            samples.append((time.perf_counter() - started, value))
        time.sleep(0.5)
    output = child.stdout.read() if child.stdout else ""
    seconds = time.perf_counter() - started
    summary = next((line for line in output.splitlines() if line.startswith("sim:")), "?")
    peak = max((mb for _, mb in samples), default=0.0)
    lines = [
        "# Memory of a long stateful run",
        "",
        f"Command: `python bench/bench_memory.py --examples {args.examples} "
        f"--limit-mb {args.limit_mb}`, which runs `{' '.join(command[1:])}` under an "
        f"address-space limit of {args.limit_mb} MB (RLIMIT_AS, as `ulimit -v`).",
        "",
        f"- exit status: {child.returncode}",
        f"- summary line: `{summary}`",
        f"- wall time: {seconds:.0f} s",
        f"- peak RSS: {peak:.0f} MB",
        "",
        "| time (s) | RSS (MB) |",
        "|---:|---:|",
    ]
    if child.returncode != 0:
        lines[-3:-3] = ["", "Output (the run failed):", "", "```", output[-3000:], "```"]
    step = max(1, len(samples) // 10)
    for at, mb in samples[::step] + samples[-1:]:
        lines.append(f"| {at:.0f} | {mb:.0f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0 if child.returncode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
