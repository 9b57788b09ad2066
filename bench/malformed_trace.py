"""Malformed-input campaign for ``vmbspec trace check`` at scale (issue 9, item 5).

Runs the generators of ``tests/remote/test_trace_malformed.py`` (random JSON lines and
mutations of a trace recorded from the simulator; random TOML and mutations of valid
suppression files) for ``--examples`` inputs per interface, calls the checking functions
directly, and counts what each input came to: an input error, a verdict, or a crash (any
other exception, or a multi-line error message). Writes bench/results/malformed-trace.md.

Run: ``PYTHONPATH=. python bench/malformed_trace.py [--examples N] [--no-write]``.
"""

from __future__ import annotations

import argparse
import collections
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import hypothesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "remote"))

import test_trace_malformed as campaign  # noqa: E402  (the shared generators)

RESULTS = ROOT / "bench" / "results" / "malformed-trace.md"
COMMAND = "PYTHONPATH=. python bench/malformed_trace.py"


class Tally:
    def __init__(self) -> None:
        self.inputs = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.crashes: list[str] = []
        self.seconds = 0.0

    def judge(self, judge: Callable[[str], str], text: str) -> None:
        self.inputs += 1
        try:
            self.outcomes[judge(text)] += 1
        except Exception:
            self.outcomes["crash"] += 1
            if len(self.crashes) < 5:
                self.crashes.append(f"input {text[:200]!r}\n{traceback.format_exc(limit=4)}")


def run(strategy: st.SearchStrategy[str], judge: Callable[[str], str], examples: int) -> Tally:
    tally = Tally()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(text=strategy)
    def body(text: str) -> None:
        tally.judge(judge, text)

    start = time.perf_counter()
    body()
    tally.seconds = time.perf_counter() - start
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000,
                        help="inputs per interface (default 10000)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        seeds = campaign.record_sessions(Path(directory))
    seed_events = campaign.parse_trace(campaign.render(campaign.assemble(seeds[:8])), "seed")
    tallies = {
        "trace (JSON Lines)": run(campaign.trace_inputs(seeds), campaign.judge_trace,
                                  args.examples),
        "suppression file (TOML)": run(
            campaign.suppression_inputs(seed_events),
            lambda text: campaign.judge_suppressions(text, seed_events), args.examples),
    }
    text = report(tallies, len(seeds), len(seed_events), args.examples)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")
        print(f"written to {RESULTS.relative_to(ROOT)}")
    return 1 if any(t.outcomes["crash"] for t in tallies.values()) else 0


def report(tallies: dict[str, Tally], sessions: int, seed_events: int, examples: int) -> str:
    command = COMMAND if examples == 10_000 else f"{COMMAND} --examples {examples}"
    lines = [
        "# Malformed input to `vmbspec trace check`",
        "",
        f"Written by `bench/malformed_trace.py` (`{command}`).",
        "",
        f"- machine: {platform.machine()}, Python {platform.python_version()}, "
        f"hypothesis {hypothesis.__version__}",
        "- generators: `tests/remote/test_trace_malformed.py` (the test runs 300 per "
        "interface); seeds: "
        f"{sessions} sessions of a trace the reference agent recorded while the suite ran "
        f"against the simulator; suppression files are checked against a {seed_events}-event "
        "trace of 8 of them",
        "- each input is passed to the checking function (`parse_trace` + `check_trace` + the "
        "reports; `parse_suppressions` + `check_trace`); a crash is any exception other than "
        "`InputError`, or an error message that is not one line",
        "",
        "| interface | inputs | crashes | input errors | conforms | does not conform "
        "| invalid trace | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, tally in tallies.items():
        o = tally.outcomes
        lines.append(f"| {name} | {tally.inputs} | {o['crash']} | {o['input-error']} | "
                     f"{o['conforms']} | {o['does-not-conform']} | {o['invalid-trace']} | "
                     f"{tally.seconds:.1f} |")
    for name, tally in tallies.items():
        for crash in tally.crashes:
            lines += ["", f"Crash ({name}):", "", "```", crash.rstrip(), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
