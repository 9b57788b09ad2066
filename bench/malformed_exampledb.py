"""Malformed-input campaign at scale: the failure store's two inputs from outside.

Runs the generators of the bounded Hypothesis tests of ``tests/conformance/test_exampledb.py``
for at least ``--inputs`` inputs per interface (10,000 by default), and counts every input
whose outcome was not one of the allowed ones as a crash:

* stored values (``conformance.exampledb.parse_value``: what another machine, another version
  or a hand put under the store's key): random bytes, random text, and a valid value with one
  field (or one step's field) replaced by a value of any type. Allowed: a ``StoredFailure``
  or an ``InputError``;
* ``--db`` values (``parse_redis_url`` for ``redis://`` ones; ``open_database`` for the rest,
  in a temporary directory, since a directory store is created): random text, and
  ``redis://`` URLs with random hosts, ports, paths and extras. Allowed: a store, None
  (``none``), or a ``DatabaseError``.

Run: ``python bench/malformed_exampledb.py [--inputs N] [--write FILE.md]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaigns import load_test_module, run_campaign  # noqa: E402

from vmbspec.conformance.exampledb import (  # noqa: E402 - after the path is set
    DatabaseError,
    open_database,
    parse_redis_url,
    parse_value,
)
from vmbspec.conformance.inputs import InputError  # noqa: E402


def check_value(raw: bytes) -> str:
    try:
        parse_value(raw, "stored failure 1")
    except InputError:
        return "refused"
    return "read"


def check_db(text: str) -> str:
    try:
        if text.startswith("redis://"):
            parse_redis_url(text)
            return "a Redis address"
        store = open_database(text)
    except DatabaseError:
        return "refused"
    return "none" if store is None else "a directory store"


def db_texts() -> st.SearchStrategy[str]:
    host = st.one_of(st.just("127.0.0.1"), st.text(max_size=12), st.just("[::1]"))
    port = st.one_of(st.integers(-5, 70000).map(str), st.text(max_size=6))
    path = st.one_of(st.just(""), st.integers(-3, 70000).map(lambda n: f"/{n}"),
                     st.text(max_size=8).map(lambda t: "/" + t))
    extra = st.sampled_from(["", "?x=1", "#f", "/0/1"])
    url = st.builds(lambda h, p, q, e: f"redis://{h}:{p}{q}{e}", host, port, path, extra)
    return st.one_of(url, st.text(max_size=40), st.sampled_from(["none", "", "ftp://x"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=10_000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    tests = load_test_module("tests/conformance/test_exampledb.py")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            for name, strategy, check in (
                ("stored values: `parse_value`", tests._mutations(), check_value),
                ("`--db` values: `open_database` / `parse_redis_url`", db_texts(), check_db),
            ):
                outcomes, crashes, seconds = run_campaign(strategy, check, args.inputs)
                count = sum(outcomes.values()) + len(crashes)
                shown = ", ".join(f"{key}: {value}" for key, value in sorted(outcomes.items()))
                rows.append(f"| {name} | {count} | {shown} | {len(crashes)} | {seconds:.1f} |")
                print(rows[-1], flush=True)
                for crash in crashes[:3]:
                    print(crash, file=sys.stderr)
        finally:
            os.chdir(here)
    if args.write:
        args.write.write_text(
            "# Malformed-input campaign: the failure store (`--db`)\n\n"
            f"Command: `python bench/malformed_exampledb.py --inputs {args.inputs} --write "
            f"{args.write}` (from the repository root, with the project's virtual "
            "environment).\n\n"
            f"Machine: {platform.machine()}, Python {platform.python_version()}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
            "A crash is any outcome other than the allowed ones: for a stored value a "
            "`StoredFailure` or an `InputError` (the value is skipped with a warning); for a "
            "`--db` value a store, none, or a `DatabaseError` (a usage error, exit 2). "
            "Generators: those of `tests/conformance/test_exampledb.py` and `db_texts` here; "
            "generation phase only, seeds 1, 2, ...\n\n"
            "| interface | inputs | outcomes | crashes | seconds |\n"
            "|---|---:|---|---:|---:|\n" + "\n".join(rows) + "\n"
        )


if __name__ == "__main__":
    main()
