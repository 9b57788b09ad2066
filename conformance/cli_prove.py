"""``vmbspec prove``: run the Z3 properties, or prove a user's bounds check.

    vmbspec prove [--json FILE] [--timeout SECONDS] [--quiet] [--extended] [--engine bv64]
    vmbspec prove --check MODULE:FUNCTION

Progress goes to stderr (one line per property as it finishes), the table to stdout. The exit
status is 0 when every property ends as expected (a proof proved, an expected counterexample
found and reproduced by the executable spec), 1 otherwise, and 2 for a bad ``--check``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from typing import Any

from vmbspec.conformance.cli_common import output_file, seconds

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_parser(subparsers: Any) -> None:
    """Register ``prove`` on the main CLI's subparsers."""
    parser = subparsers.add_parser(
        "prove",
        help="prove the arithmetic properties with Z3, or check your own bounds check",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", metavar="FILE", type=output_file,
                        help="also write the results as JSON")
    parser.add_argument(
        "--check", metavar="MODULE:FUNCTION",
        help="prove a bounds check written over spec.arith's Arith interface "
        "(see docs/prove-your-own-check.md)",
    )
    parser.add_argument(
        "--timeout", type=seconds, default=10.0, metavar="SECONDS",
        help="per-query solver timeout (default 10)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument(
        "--extended", action="store_true",
        help="also run the slow companions (P5 over 64-bit bit-vectors)",
    )
    parser.add_argument(
        "--engine", choices=("int", "bv64"), default=None,
        help="run every property over this engine (default: each property's own)",
    )
    parser.set_defaults(func=run)


def _load_check(spec: str) -> Any:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--check wants MODULE:FUNCTION, not {spec!r}")
    # A console script does not put the current folder on the path; a user's check module
    # usually sits there (`vmbspec prove --check mycheck:bound`).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # any import failure is the user's, reported in one line
        reason = f"{type(error).__name__}: {error}"
        raise ValueError(f"cannot import {module_name!r}: {reason}") from None
    func = module
    for part in attr.split("."):
        if not hasattr(func, part):
            raise ValueError(f"{module_name!r} has no attribute {attr!r}")
        func = getattr(func, part)
    if not callable(func):
        raise ValueError(f"{spec} is a {type(func).__name__}, not a function")
    return func


def _run_check(args: argparse.Namespace) -> int:
    from vmbspec.spec.proofs.check import CheckError, prove_check

    try:
        func = _load_check(args.check)
        result = prove_check(func, timeout_s=args.timeout)
    except (ValueError, CheckError) as error:
        print(f"vmbspec prove: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # the user's code misbehaving in a way we did not foresee
        print(f"vmbspec prove: error: the check failed: {type(error).__name__}: {error}",
              file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.check}: {result.describe()}")
    if args.json:
        data = {
            "check": args.check, "verdict": result.verdict, "seconds": round(result.seconds, 4),
            "detail": result.detail, "call": result.call, "values": result.values,
        }
        _write_json(args.json, data)
    return EXIT_OK if result.safe else EXIT_FAILED


def _write_json(path: str, data: object) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


def _table(results: list[Any]) -> str:
    rows = [("property", "requirements", "width", "result", "expected", "seconds")]
    for r in results:
        mark = "" if r.ok else "  <-- FAIL"
        rows.append((r.name, ",".join(r.requirements), r.width, r.status + mark, r.expected,
                     f"{r.seconds:.3f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``vmbspec prove`` with parsed arguments; returns the exit status."""
    if getattr(args, "check", None):
        return _run_check(args)
    from vmbspec.spec.proofs.properties import EXTENDED, PROPERTIES, run_properties

    properties = [*PROPERTIES, *(EXTENDED if getattr(args, "extended", False) else ())]
    quiet = getattr(args, "quiet", False)
    total = len(properties)
    done = 0

    def progress(result: Any) -> None:
        nonlocal done
        done += 1
        if not quiet:
            mark = "ok" if result.ok else "FAIL"
            print(f"[{done}/{total}] {result.name}: {result.status} ({result.seconds:.3f} s) "
                  f"{mark}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    results = run_properties(
        progress, timeout_s=getattr(args, "timeout", 10.0), properties=properties,
        engine=getattr(args, "engine", None),
    )
    elapsed = time.perf_counter() - started
    print(_table(results))
    failed = [r for r in results if not r.ok]
    for r in results:
        if r.counterexample is not None:
            cex = r.counterexample
            print(f"\n{r.name} counterexample ({cex.replay}):\n{cex.call}")
        if not r.ok and r.detail and r.counterexample is None:
            print(f"\n{r.name}: {r.status}: {r.detail}")
    print(f"\n{len(results) - len(failed)}/{len(results)} as expected in {elapsed:.2f} s")
    if getattr(args, "json", None):
        _write_json(args.json, {
            "seconds": round(elapsed, 4),
            "ok": not failed,
            "properties": [r.as_json() for r in results],
        })
    return EXIT_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m vmbspec.conformance.cli_prove``)."""
    parser = argparse.ArgumentParser(prog="vmbspec")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["prove", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
