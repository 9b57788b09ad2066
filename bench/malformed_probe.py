"""Malformed-input campaign at scale: probe files (``vmbspec probe --calls FILE``) and the
command line of ``vmbspec probe``.

Runs the generator and check of ``tests/conformance/test_probe_inputs.py`` (the stored
``conformance/probe/calls.json`` mutated: wrong types, huge integers, deep nesting, missing and
unknown keys, unknown readings and options, bad steps; random JSON; random bytes) for at least
``--inputs`` inputs (10,000 by default). Allowed outcomes: the file loads (its first probe is
then run on the simulator and gives an outcome) or one ``ProbeFileError`` line naming the
file; anything else is counted as a crash.

Run: ``python bench/malformed_probe.py [--inputs N] [--write bench/results/malformed-probe.md]``.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from campaigns import load_test_module, run_campaign

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs (default 10000)")
    parser.add_argument("--write", metavar="FILE", help="write the results as Markdown")
    args = parser.parse_args(argv)
    all_crashes: list[str] = []
    module = load_test_module("tests/conformance/test_probe_inputs.py")
    interfaces = [
        ("probe files: `load_probes` (+ the first probe on `sim`)", module.probe_documents(),
         module.check_probe_document),
        ("`vmbspec probe` command lines (the inference stood in)", module.probe_argvs(),
         module.check_probe_argv),
    ]
    rows = []
    for title, strategy, check in interfaces:
        outcomes, crashes, seconds = run_campaign(strategy, check, args.inputs)
        total = sum(outcomes.values()) + len(crashes)
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))
        rows.append(f"| {title} | {total} | {shown} | {len(crashes)} | {seconds:.1f} |")
        print(f"{title}: {total} inputs ({shown}), {len(crashes)} crashes, {seconds:.1f} s")
        for crash in crashes[:3]:
            print(crash)
        all_crashes.extend(crashes)
    if args.write:
        command = " ".join(["python bench/malformed_probe.py", *(argv or sys.argv[1:])])
        lines = [
            "# Malformed-input campaign: probe files",
            "",
            f"Command: `{command}` (from the repository root, with the project's virtual "
            "environment).",
            "",
            f"Machine: {platform.machine()}, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
            "A crash is any outcome other than the allowed ones: for probe files a file that "
            "loads (its first probe then run on the simulator, giving an outcome) or one "
            "`ProbeFileError` line naming the file; for command lines exit status 0, 1 or 2 "
            "with no traceback. Generators: `tests/conformance/test_probe_inputs.py` (the "
            "stored `conformance/probe/calls.json` mutated, random JSON, random bytes; command "
            "lines of `vmbspec probe` with values drawn as in `cli_campaign.py`, the inference "
            "stood in by one made once on the simulator), generation phase only, seeds 1, 2, "
            "...",
            "",
            "| interface | inputs | outcomes | crashes | seconds |",
            "|---|---:|---|---:|---:|",
            *rows,
            "",
        ]
        Path(args.write).write_text("\n".join(lines), encoding="utf-8")
    return 0 if not all_crashes else 1


if __name__ == "__main__":
    raise SystemExit(main())
