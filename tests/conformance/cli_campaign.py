"""The malformed-input campaign for command-line values, shared by the test and the bench.

Every subcommand of ``vmbspec`` is called in process with Hypothesis-drawn values for its
options and arguments: numbers of every form (``nan``, ``inf``, ``1e308``, ``-0``, 40-digit
integers), arbitrary text, paths that are folders, devices (``/dev/full``, ``/dev/zero``),
missing or full of garbage. The expensive parts (the stateful run, the Z3 properties, serving
the protocol) are replaced by stand-ins that return at once, so the campaign exercises what
the command line does with a value: parse it, check it, and report. The claim checked for every
call: the exit status is 0, 1 or 2 (never 3, an internal error), and no traceback is printed.

Values never name something that would act outside the process: targets are ``sim``,
``rust``, ``native:`` paths and ``remote:tcp://127.0.0.1:...`` (no ``remote:stdio:`` command
lines), and ``prove --check`` modules have names no installed module has.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from vmbspec.conformance import cli, cli_check, cli_sweep
from vmbspec.conformance.driver import Evidence
from vmbspec.conformance.runner import ConformanceReport
from vmbspec.conformance.sweep.run import SweepResult

NUMBERS = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e308", "-0", "0", "1", "-1", "0x10", "1_000",
                     "9" * 40, "4.5", " 3", "", "1e-320", "true", "None", "２"]),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
TEXT = st.text(max_size=40)


def paths(folder: Path) -> st.SearchStrategy[str]:
    garbage = folder / "garbage.json"
    if not garbage.exists():
        garbage.write_bytes(b"\xff\xfe{[not json" * 10)
    nested = folder / "nested.json"
    if not nested.exists():
        nested.write_text("[" * 5000 + "]" * 5000)
    return st.one_of(
        st.sampled_from([
            "/dev/full", "/dev/zero", "/dev/null", "/", ".", "", str(folder),
            str(folder / "missing" / "x.json"), str(garbage), str(nested), "/proc/self/mem",
            str(folder / "out.json"),
        ]),
        TEXT.map(lambda name: str(folder / name.replace("\x00", ""))),
    )


TARGETS = st.one_of(
    st.sampled_from(["sim", "rust", "sim:help", "sim:wrap32", "sim:", "native:",
                     "remote:", "remote:tcp://", "remote:tcp://127.0.0.1:0", "remote:stdio:",
                     ":", "SIM", "sim:wrap32,nosuch"]),
    TEXT.map(lambda text: f"sim:{text}"),
    TEXT.map(lambda text: f"native:/nonexistent/{text}"),
    st.integers(-5, 70000).map(lambda port: f"remote:tcp://127.0.0.1:{port}"),
)
PROFILES = st.one_of(
    st.sampled_from(["default", "default+A4=c", "default+A4=z", "+", "default+", "x+A1=b",
                     "default+A99=a", "default+A4=c+A4=b", ""]),
    TEXT,
)


def _option(name: str, values: st.SearchStrategy[str]) -> st.SearchStrategy[list[str]]:
    return values.map(lambda value: [name, value])


def argvs(folder: Path) -> st.SearchStrategy[list[str]]:
    """Whole command lines, each with one to three drawn options."""
    files = paths(folder)
    check_options = st.one_of(
        _option("--target", TARGETS), _option("--profile", PROFILES),
        _option("--examples", NUMBERS), _option("--steps", NUMBERS),
        _option("--seed", NUMBERS), _option("--timeout", NUMBERS),
        _option("--json", files), _option("--junit", files), _option("--report", files),
        _option("--replay-dir", files),
    )
    check = st.lists(check_options, min_size=1, max_size=3).map(
        lambda parts: ["check", "--quiet", *[word for part in parts for word in part]]
    )
    replay = st.tuples(files, st.lists(st.one_of(
        _option("--profile", PROFILES), _option("--timeout", NUMBERS),
    ), max_size=2)).map(
        lambda drawn: ["replay", drawn[0], "--target", "sim",
                       *[word for part in drawn[1] for word in part]]
    )
    module = TEXT.map(lambda text: f"zz_no_such_module_{text}")
    prove = st.lists(st.one_of(
        _option("--timeout", NUMBERS), _option("--json", files),
        _option("--engine", st.sampled_from(["int", "bv64", "z3", ""])),
        _option("--check", st.one_of(module, module.map(lambda m: f"{m}:f"),
                                     st.sampled_from([":", "a:", ":b", "json:loads"]))),
    ), min_size=1, max_size=3).map(
        lambda parts: ["prove", "--quiet", *[word for part in parts for word in part]]
    )
    requirements = _option("--kind", st.one_of(TEXT, st.sampled_from(["MUST", "reading"]))).map(
        lambda part: ["requirements", *part]
    )
    agent = st.lists(st.one_of(
        _option("--backend", TARGETS),
        _option("--listen", st.one_of(
            st.sampled_from(["stdio", "tcp://", "tcp://127.0.0.1:", "tcp://127.0.0.1:99999",
                             "tcp://[::1]:x", "udp://127.0.0.1:1"]),
            TEXT.map(lambda text: f"tcp://127.0.0.1:{text}"))),
        _option("--timeout", NUMBERS), _option("--max-connections", NUMBERS),
        _option("--idle-timeout", NUMBERS), _option("--trace", files),
    ), min_size=1, max_size=3).map(
        lambda parts: ["agent", "--quiet", *[word for part in parts for word in part]]
    )
    trace = st.tuples(files, st.lists(st.one_of(
        _option("--suppress", files), _option("--json", files), _option("--profile", PROFILES),
    ), max_size=2)).map(
        lambda drawn: ["trace", "check", drawn[0], *[word for part in drawn[1] for word in part]]
    )
    sweep = st.lists(st.one_of(
        _option("--target", TARGETS), _option("--chains", NUMBERS),
        _option("--max-failures", NUMBERS), _option("--replays-per-group", NUMBERS),
        _option("--timeout", NUMBERS), _option("--profile", PROFILES),
        _option("--json", files), _option("--report", files), _option("--replay-dir", files),
    ), min_size=1, max_size=3).map(
        lambda parts: ["sweep", "--quiet", *[word for part in parts for word in part]]
    )
    return st.one_of(check, replay, prove, requirements, agent, trace, sweep)


def _quick_report(target: Any, **kwargs: Any) -> ConformanceReport:
    return ConformanceReport("stand-in", kwargs["profile"], kwargs.get("seed"), 0, Evidence())


def _quick_sweep(target: str, factory: Any, profile: Any, lattice: Any, *args: Any,
                 **kwargs: Any) -> SweepResult:
    return SweepResult(target, profile, lattice, {1: 0})


@contextlib.contextmanager
def stand_ins() -> Iterator[None]:
    """Replace the long-running parts by stand-ins that return at once."""
    from vmbspec.adapters.remote import server
    from vmbspec.spec.proofs import properties

    saved = (cli_check.run_conformance, properties.run_properties, server.serve,
             cli_sweep.sweep)
    cli_check.run_conformance = _quick_report  # type: ignore[assignment]
    properties.run_properties = lambda *args, **kwargs: []  # type: ignore[assignment]
    server.serve = lambda *args, **kwargs: 0  # type: ignore[assignment]
    cli_sweep.sweep = _quick_sweep  # type: ignore[assignment]
    try:
        yield
    finally:
        (cli_check.run_conformance, properties.run_properties, server.serve,
         cli_sweep.sweep) = saved


def run_one(argv: list[str]) -> tuple[int, str]:
    """``vmbspec ARGV`` in process: its exit status and what it wrote to stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(argv)
    return status, err.getvalue()


def verdict_of(argv: list[str]) -> str | None:
    """None when the call behaved (status 0, 1 or 2, no traceback); else what went wrong."""
    status, err = run_one(argv)
    if status not in (0, 1, 2):
        return f"exit status {status} for {argv!r}: {err[-500:]}"
    if "Traceback (most recent call last)" in err:
        return f"a traceback for {argv!r}: {err[-500:]}"
    return None
