"""Malformed-input campaign at scale: command-line values of every ``vmbspec`` subcommand.

Runs the generator of ``tests/conformance/test_cli_malformed.py`` (``cli_campaign.py``) for
``--inputs`` command lines (10,000 by default) and counts every call whose exit status was not
0, 1 or 2, or that printed a traceback, as a crash. The long-running parts (the stateful run,
the Z3 properties, serving the protocol) are stand-ins, as in the test.

Run: ``python bench/malformed_cli.py [--inputs N] [--write bench/results/malformed-cli.md]``.
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

from hypothesis import HealthCheck, Phase, given, seed, settings

ROOT = Path(__file__).resolve().parent.parent


def _load_campaign():  # type: ignore[no-untyped-def]
    path = ROOT / "tests" / "conformance" / "cli_campaign.py"
    spec = importlib.util.spec_from_file_location("vmbspec_cli_campaign", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--write", default=None, metavar="FILE.md")
    args = parser.parse_args()
    campaign = _load_campaign()
    folder = Path(tempfile.mkdtemp(prefix="vmbspec-cli-bench-"))
    commands: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[int] = collections.Counter()
    crashes: list[str] = []

    @seed(20261130)
    @settings(max_examples=args.inputs, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(campaign.argvs(folder))
    def one(argv: list[str]) -> None:
        commands[argv[0]] += 1
        status, err = campaign.run_one(argv)
        statuses[status] += 1
        if status not in (0, 1, 2) or "Traceback (most recent call last)" in err:
            crashes.append(f"{argv!r}: status {status}: {err[-300:]}")

    started = time.perf_counter()
    with campaign.stand_ins():
        one()
    seconds = time.perf_counter() - started
    total = sum(commands.values())
    lines = [
        "# Malformed command-line values",
        "",
        f"Command: `python bench/malformed_cli.py --inputs {args.inputs}` "
        f"(Python {platform.python_version()}, seed 20261130).",
        "",
        "| interface | inputs | crashes | seconds |",
        "|---|---:|---:|---:|",
        f"| command-line values | {total} | {len(crashes)} | {seconds:.1f} |",
        "",
        "Command lines per subcommand: "
        + ", ".join(f"{name} {count}" for name, count in sorted(commands.items())) + ".",
        "",
        "Exit statuses: " + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())) + ".",
        "",
        "A crash is an exit status other than 0, 1 or 2, or a traceback on standard error.",
    ]
    if crashes:
        lines += ["", "## Crashes", ""] + [f"- {c}" for c in crashes[:50]]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
