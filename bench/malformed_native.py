"""Malformed-result campaign for the native-library adapter at scale (issue 9, item 4).

Runs the generator of ``tests/adapters/test_native_malformed.py``: a shim over the Rust core
that overwrites one to three of the library's results (statuses, lengths, handles, the
completion routine's Length, status and call count) with drawn values, then one scenario
through every function of the ABI on a fresh target. ``--examples`` inputs each in process
(``NativeTarget``) and isolated (``IsolatedTarget`` in its shared worker). Each input ends as
``ok``, a ``crash`` verdict naming a function of the ABI, or a ``target-error`` (a harness call
failed with a status); anything else (an exception from inside the adapter, a crash verdict
naming no function, a NULL channel accepted) is counted as an adapter crash. Writes
bench/results/malformed-native.md.

Run: ``PYTHONPATH=. python bench/malformed_native.py [--examples N] [--no-write]``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "adapters"))

import test_native_malformed as campaign  # noqa: E402  (the shared generator and shim)

from vmbspec.adapters.native import IsolatedTarget, NativeTarget, shutdown_workers  # noqa: E402
from vmbspec.adapters.rust.build import library_path  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "malformed-native.md"
COMMAND = "PYTHONPATH=. python bench/malformed_native.py"

Lies = list[tuple[str, int]]
Maker = Callable[[], NativeTarget | IsolatedTarget]


class Tally:
    def __init__(self) -> None:
        self.inputs = 0
        self.outcomes: collections.Counter[str] = collections.Counter()
        self.lies: collections.Counter[str] = collections.Counter()
        self.crashes: list[str] = []
        self.seconds = 0.0

    def judge(self, control: campaign.Control, make: Maker, lies: Lies) -> None:
        self.inputs += 1
        self.lies.update(knob for knob, _ in lies)
        try:
            result = campaign.run_lies(control, make, lies)
            if campaign._must_crash(lies) and result != "crash":
                raise AssertionError(f"{result} where a crash verdict was due")
            self.outcomes[result] += 1
        except Exception:
            self.outcomes["adapter crash"] += 1
            if len(self.crashes) < 5:
                self.crashes.append(f"lies {lies!r}\n{traceback.format_exc(limit=6)}")


def run(control: campaign.Control, make: Maker, examples: int) -> Tally:
    tally = Tally()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(lies=campaign.LIES)
    def body(lies: Lies) -> None:
        tally.judge(control, make, lies)

    start = time.perf_counter()
    body()
    tally.seconds = time.perf_counter() - start
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000,
                        help="inputs per way of running the library (default 10000)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        liar = campaign.build_liar(Path(directory), library_path())
        try:
            tallies = {
                "in process (`NativeTarget`)": run(
                    liar.control, lambda: NativeTarget(liar.library), args.examples),
                "isolated (`IsolatedTarget`, shared worker)": run(
                    liar.control, lambda: IsolatedTarget(liar.library, timeout=10),
                    args.examples),
            }
        finally:
            shutdown_workers()
    text = report(tallies, args.examples)
    print(text)
    if not args.no_write:
        RESULTS.write_text(text, encoding="utf-8")
        print(f"written to {RESULTS.relative_to(ROOT)}")
    return 1 if any(t.outcomes["adapter crash"] for t in tallies.values()) else 0


def report(tallies: dict[str, Tally], examples: int) -> str:
    command = COMMAND if examples == 10_000 else f"{COMMAND} --examples {examples}"
    lines = [
        "# Malformed results from a native library",
        "",
        f"Written by `bench/malformed_native.py` (`{command}`).",
        "",
        f"- machine: {platform.machine()}, Python {platform.python_version()}, "
        f"hypothesis {hypothesis.__version__}",
        "- generator: `tests/adapters/test_native_malformed.py` (the test runs 300 in process "
        "and 150 isolated): a shim over the Rust core overwrites 1 to 3 results (statuses, "
        "`out_length`s, channel and packet handles, the completion routine's Length, status "
        "and number of calls) with drawn values, boundary values first; each input runs one "
        "scenario through every function of the ABI on a fresh target",
        "- outcomes: `ok`; `crash`, a crash-class verdict naming the function (the library "
        "returned an impossible value); `target-error`, a harness call failed with a status. "
        "An adapter crash is anything else: an exception from inside the adapter, a crash "
        "verdict naming no function, a NULL channel accepted",
        "",
        "| run | inputs | adapter crashes | ok | crash verdicts | target errors | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, tally in tallies.items():
        o = tally.outcomes
        lines.append(f"| {name} | {tally.inputs} | {o['adapter crash']} | {o['ok']} | "
                     f"{o['crash']} | {o['target-error']} | {tally.seconds:.1f} |")
    lines += ["", "Lies told (inputs with each knob set):", ""]
    knobs = collections.Counter[str]()
    for tally in tallies.values():
        knobs.update(tally.lies)
    lines.append(", ".join(f"{knob} {count}" for knob, count in sorted(knobs.items())))
    for name, tally in tallies.items():
        for crash in tally.crashes:
            lines += ["", f"Adapter crash ({name}):", "", "```", crash.rstrip(), "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
