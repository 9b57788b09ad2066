"""The malformed-input campaigns of vmbspec sweep at scale: 10,000 inputs per interface.

    .venv/bin/python bench/malformed_sweep.py [--inputs N] [--out FILE.md]

Runs the generators of tests/conformance/test_sweep_inputs.py: command lines of ``vmbspec
sweep`` with drawn option values (the sweep replaced by a stand-in), and native batch runner
results drawn as garbage on a tiny lattice of the Rust core. A crash is any exception out of a
call, an exit status other than 0, 1 or 2 on the command line, or a printed traceback.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings


def _campaign_module() -> Any:
    path = Path(__file__).resolve().parent.parent / "tests/conformance/test_sweep_inputs.py"
    spec = importlib.util.spec_from_file_location("vmbspec_sweep_campaign", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _settings(inputs: int) -> settings:
    return settings(max_examples=inputs, deadline=None, database=None,
                    phases=[Phase.generate], suppress_health_check=list(HealthCheck))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("bench/results/malformed-sweep.md"))
    args = parser.parse_args()
    campaign = _campaign_module()
    from vmbspec.conformance import cli_sweep

    rows = []
    outcomes: collections.Counter[str] = collections.Counter()
    crashes: list[str] = []
    cli_sweep.sweep = campaign.stand_in
    folder = Path(tempfile.mkdtemp(prefix="vmbspec-sweep-campaign-"))

    @seed(10)
    @_settings(args.inputs)
    @given(argv=campaign.argvs())
    def command_lines(argv: list[str]) -> None:
        try:
            status, err = campaign.run_cli(argv, folder)
        except BaseException as error:
            crashes.append(f"{argv!r}: {type(error).__name__}: {error}")
            return
        outcomes[f"exit {status}"] += 1
        if status not in (0, 1, 2) or "Traceback" in err:
            crashes.append(f"{argv!r}: exit {status}")

    started = time.perf_counter()
    command_lines()
    rows.append(("`vmbspec sweep` command-line values", sum(outcomes.values()) + len(crashes),
                 len(crashes), time.perf_counter() - started, dict(outcomes)))

    results: collections.Counter[str] = collections.Counter()
    runner_crashes: list[str] = []

    @seed(11)
    @_settings(args.inputs)
    @given(values=campaign.RESULTS, whole=campaign.st.booleans())
    def runner_results(values: Any, whole: bool) -> None:
        try:
            result = campaign.check_runner(values, whole)
        except BaseException as error:
            runner_crashes.append(f"{values!r:.80}: {type(error).__name__}: {error}")
            return
        results["internal error (problem)" if result.problems else
                "failure of the target" if result.failures else "pass"] += 1

    started = time.perf_counter()
    runner_results()
    rows.append(("native batch runner results", sum(results.values()) + len(runner_crashes),
                 len(runner_crashes), time.perf_counter() - started, dict(results)))
    crashes += runner_crashes

    lines = ["# Malformed inputs: vmbspec sweep", "",
             f"Command: `.venv/bin/python bench/malformed_sweep.py --inputs {args.inputs}` "
             f"({platform.python_implementation()} {platform.python_version()}).", "",
             "| interface | inputs | crashes | seconds | outcomes |", "|---|---:|---:|---:|---|"]
    for name, inputs, crashed, seconds, seen in rows:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()))
        lines.append(f"| {name} | {inputs} | {crashed} | {seconds:.0f} | {shown} |")
    if crashes:
        lines += ["", "Crashes:", ""] + [f"- {c}" for c in crashes[:20]]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines), file=sys.stderr)
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
