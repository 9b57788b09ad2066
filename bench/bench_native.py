"""Benchmark of the native targets (issue 5, item 6), written to bench/results/native.md.

Measures, on this machine:

1. stateful steps per second (``run_conformance(..., cases=False)``, one fixed seed, so every
   target runs the same call sequences) against the simulator, the Rust core in process, the
   Rust core isolated in the shared worker (``--target rust --isolate``), both with guard
   pages (the default) and without (``--no-guard``), and isolated with a worker per target
   (``IsolatedTarget(shared=False)``, what the shared worker saves);
2. the core's raw speed: send + host take + host complete cycles per second through ctypes
   (the bare ABI calls, then the same cycle through ``NativeTarget`` and ``IsolatedTarget``,
   with and without guard pages), and from Rust with no Python at all
   (``cargo run --release --example raw_loop``).

Run: ``PYTHONPATH=. python bench/bench_native.py [--examples N] [--repeat R] [--no-write]``.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis

from vmbspec.adapters.native import (
    COMPLETION_ROUTINE,
    IsolatedTarget,
    NativeTarget,
    RustTarget,
    build_mdl_chain,
    load_library,
    shutdown_workers,
)
from vmbspec.adapters.rust.build import CRATE_DIR, MANIFEST, TARGET_DIR, build_library
from vmbspec.adapters.sim import SimTarget
from vmbspec.conformance import run_conformance

RESULTS = Path(__file__).resolve().parent / "results" / "native.md"
SEED = 20240611
WAIT = 0x1
#: The one-page MDL and 8-byte buffer every raw cycle sends (MdlOffset 0, MdlLength 0x100).
CHAIN = ((0, 0x1000, (0x1234,)),)


def _version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not found"


# ---- stateful steps per second --------------------------------------------------------------


def stateful(factory: Callable[[], Any], examples: int, repeat: int) -> tuple[float, int, float]:
    """(median steps/s, steps of one run, median seconds) over ``repeat`` runs."""
    rates, seconds, steps = [], [], 0
    for _ in range(repeat):
        report = run_conformance(factory, examples=examples, seed=SEED, cases=False)
        assert report.passed, report.summary()
        steps = report.evidence.total_steps
        rates.append(steps / report.seconds)
        seconds.append(report.seconds)
    return statistics.median(rates), steps, statistics.median(seconds)


# ---- raw cycles per second ------------------------------------------------------------------


def raw_ctypes(path: Path, cycles: int) -> float:
    """Bare ctypes calls: send, take, complete (its routine runs), on one packet."""
    lib = load_library(path)
    completed = [0]

    def on_complete(_packet: Any, _status: int, _buffer: Any, _length: int) -> None:
        completed[0] += 1

    routine = COMPLETION_ROUTINE(on_complete)
    channel = ctypes.c_void_p()
    assert lib.vmbcore_channel_create(0x10000, ctypes.byref(channel)) == 0
    assert lib.vmbcore_channel_open(channel) == 0
    packet = lib.VmbPacketAllocate(channel)
    lib.VmbPacketSetCompletionRoutine(packet, routine)
    mdl, _keep = build_mdl_chain(CHAIN)
    buffer = ctypes.create_string_buffer(b"payload!", 8)
    out = (ctypes.c_uint8 * 0x1000)()
    out_pointer = ctypes.cast(out, ctypes.POINTER(ctypes.c_uint8))
    length = ctypes.c_uint32()
    length_ref = ctypes.byref(length)
    send, take = lib.VmbPacketSendWithExternalMdl, lib.vmbcore_host_take_packet
    complete = lib.vmbcore_host_complete
    started = time.perf_counter()
    for _ in range(cycles):
        send(packet, buffer, 8, mdl, 0, 0x100, WAIT)
        take(channel, out_pointer, 0x1000, length_ref)
        complete(channel, int.from_bytes(bytes(out[8:16]), "little"), 0, None, 0)
    seconds = time.perf_counter() - started
    assert completed[0] == cycles
    lib.vmbcore_channel_destroy(channel)
    return cycles / seconds


def adapter_cycles(target: NativeTarget | IsolatedTarget, cycles: int) -> float:
    """The same cycle through the target interface the suite uses."""
    channel = target.create_channel(0x10000)
    target.open_channel(channel)
    packet = target.allocate_packet(channel)
    assert packet is not None
    buffer = bytearray(b"payload!")
    started = time.perf_counter()
    for _ in range(cycles):
        target.send_with_external_mdl(packet, buffer, 8, CHAIN, 0, 0x100, WAIT)
        taken = target.host_take_packet(channel)
        assert taken is not None
        target.host_complete(channel, int.from_bytes(taken[8:16], "little"), 0, b"")
        target.completions()
    seconds = time.perf_counter() - started
    target.close()
    return cycles / seconds


def rust_loop(cycles: int) -> tuple[float, str]:
    """cycles/s of ``examples/raw_loop.rs`` (release), and its output line."""
    cargo = shutil.which("cargo")
    if cargo is None:
        return float("nan"), "cargo not found"
    build = [cargo, "build", "--offline", "--release", "--example", "raw_loop",
             "--manifest-path", str(MANIFEST), "--target-dir", str(TARGET_DIR)]
    subprocess.run(build, capture_output=True, check=True)
    binary = TARGET_DIR / "release" / "examples" / "raw_loop"
    line = subprocess.run([str(binary), str(cycles)], capture_output=True, text=True,
                          check=True).stdout.strip()
    match = re.search(r"cycles_per_second=(\d+)", line)
    return (float(match.group(1)) if match else float("nan")), line


# ---- the report -----------------------------------------------------------------------------


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=20_000, help="raw cycles through Python")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)

    library = build_library()

    fresh_worker = args.examples // 4
    targets: list[tuple[str, str, Callable[[], Any], int]] = [
        ("sim", "simulator (`--target sim`)", SimTarget, args.examples),
        ("rust", "Rust core in process (`--target rust`), guard pages", RustTarget,
         args.examples),
        ("rust-no-guard", "Rust core in process, `--no-guard`",
         lambda: RustTarget(guard=False), args.examples),
        ("rust-isolated", "Rust core isolated, shared worker (`--target rust --isolate`), "
         "guard pages", lambda: IsolatedTarget(library, name="rust (isolated)"), args.examples),
        ("rust-isolated-no-guard", "Rust core isolated, shared worker, `--no-guard`",
         lambda: IsolatedTarget(library, name="rust (isolated)", guard=False), args.examples),
        ("rust-fresh-worker", "Rust core isolated, a worker per target (`shared=False`)",
         lambda: IsolatedTarget(library, shared=False), fresh_worker),
    ]
    # Runs alternate between the targets (one run of each, ``repeat`` rounds), so that a slow
    # spell of this shared machine weighs on every row alike (guards vs --no-guard above all).
    runs: dict[str, list[tuple[float, int, float]]] = {key: [] for key, *_ in targets}
    for _round in range(args.repeat):
        for key, _label, factory, examples in targets:
            runs[key].append(stateful(factory, examples, 1))
    shutdown_workers()
    stateful_rows = []
    for key, label, _factory, examples in targets:
        rate = statistics.median(r[0] for r in runs[key])
        steps = runs[key][0][1]
        seconds = statistics.median(r[2] for r in runs[key])
        stateful_rows.append((key, label, examples, steps, seconds, rate))
        say(f"{key:22} {examples:4} examples {steps:6} steps {seconds:6.2f} s "
            f"{rate:8.0f} steps/s")

    raw_rows = []
    rate = raw_ctypes(library, args.cycles)
    raw_rows.append(("bare ctypes calls (`load_library`)", rate))
    say(f"ctypes raw        {rate:10.0f} cycles/s")
    for guard in (True, False):
        what = "guard pages" if guard else "`--no-guard`"
        rate = adapter_cycles(NativeTarget(library, guard=guard), args.cycles)
        raw_rows.append((f"`NativeTarget` methods, in process, {what}", rate))
        say(f"NativeTarget      {rate:10.0f} cycles/s guard={guard}")
        rate = adapter_cycles(IsolatedTarget(library, guard=guard), args.cycles // 4)
        raw_rows.append((f"`IsolatedTarget` methods, shared worker, {what}", rate))
        say(f"IsolatedTarget    {rate:10.0f} cycles/s guard={guard}")
        shutdown_workers()
    rust_rate, rust_line = rust_loop(1_000_000)
    raw_rows.append(("Rust, no Python (`cargo run --release --example raw_loop`)", rust_rate))
    say(f"Rust raw_loop     {rust_rate:10.0f} cycles/s ({rust_line})")

    machine = (
        f"- machine: {platform.machine()}, nproc {os.cpu_count()}, "
        f"{platform.system()} {platform.release()}\n"
        f"- python {platform.python_version()}, hypothesis {hypothesis.__version__}, "
        f"{_version(['rustc', '--version'])}, {_version(['cargo', '--version'])}\n"
        f"- library: `{Path(library).relative_to(CRATE_DIR.parent.parent)}` (release build)\n"
        f"- stateful runs: seed {SEED}, {args.examples} examples of up to 40 steps (a quarter of "
        f"that for the worker-per-target row), median of {args.repeat} runs taken in "
        f"alternation (one of each target per round); raw cycles: "
        f"{args.cycles} (a quarter isolated), the Rust loop 1,000,000\n"
        "- figures from one run on a machine other jobs may share: treat differences under "
        "about 20% as noise"
    )
    rates = {r[0]: r[5] for r in stateful_rows}
    rust_steps = rates["rust"]
    raw = dict(raw_rows)
    guard_cost = [
        f"stateful run {where}: {rates[on]:,.0f} steps/s with guards, {rates[off]:,.0f} "
        f"without ({100 * (rates[on] / rates[off] - 1):+.0f}%)"
        for where, on, off in (("in process", "rust", "rust-no-guard"),
                               ("isolated", "rust-isolated", "rust-isolated-no-guard"))
    ]
    raw_on = raw["`NativeTarget` methods, in process, guard pages"]
    raw_off = raw["`NativeTarget` methods, in process, `--no-guard`"]
    guard_cost.append(
        f"raw `NativeTarget` cycle: {1e6 / raw_on:.1f} µs with guards, {1e6 / raw_off:.1f} µs "
        f"without ({1e6 / raw_on - 1e6 / raw_off:+.1f} µs for the two guarded regions of a send)"
    )
    lines = [
        "# Native targets: speed",
        "",
        "Written by `bench/bench_native.py` (`PYTHONPATH=. python bench/bench_native.py`).",
        "",
        machine,
        "",
        "## Stateful steps per second",
        "",
        "Steps are `report.evidence.total_steps` of `run_conformance(target, cases=False)`: every",
        "step is one call the driver makes and checks against the spec (plus the target's",
        "`completions()` and, for `ring-bytes` targets, `ring_bytes()` after it). The same seed",
        "generates the same sequences on every target, so the step counts match.",
        "",
        "| target | examples | steps | seconds | steps/s | vs in process |",
        "|---|---|---|---|---|---|",
    ]
    for _key, label, examples, steps, seconds, rate in stateful_rows:
        lines.append(f"| {label} | {examples} | {steps} | {seconds:.2f} | {rate:,.0f} | "
                     f"{rate / rust_steps:.2f}x |")
    lines += [
        "",
        "## Raw cycles per second",
        "",
        "A cycle is `VmbPacketSendWithExternalMdl` (8-byte buffer, one MDL of one page,",
        "MdlLength 0x100) + `vmbcore_host_take_packet` + `vmbcore_host_complete` (whose",
        "completion routine runs) on one packet: three ABI calls and one callback.",
        "",
        "| path | cycles/s | ABI calls/s |",
        "|---|---|---|",
    ]
    for label, rate in raw_rows:
        lines.append(f"| {label} | {rate:,.0f} | {3 * rate:,.0f} |")
    lines += [
        "",
        "## Guard pages",
        "",
        "With guard pages (the default for native targets, `adapters/native/guard.py`) every",
        "send maps its MDLs and buffer against inaccessible pages, from a pool of regions",
        "reused from send to send; `--no-guard` passes ctypes heap memory as before. Measured",
        "in the same run:",
        "",
        *(f"- {line}" for line in guard_cost),
        "",
        "A send places its buffer and each MDL in a pooled region (a few microseconds of",
        "Python: copying, zeroing what an earlier send left, the header); only a region",
        "larger than 16 pages (a PFN array of more than about 8,000 slots, a buffer over",
        "64 KiB) costs a fresh mapping, two `mprotect` calls and an `munmap`. Sends are a",
        "small share of a stateful run's steps and a step costs hundreds of microseconds of",
        "Hypothesis and oracle, so on stateful runs the difference is within this machine's",
        "run-to-run noise; it shows on the raw cycle, which is mostly the send.",
        "",
        "## Reading the figures",
        "",
        "- The Rust core is not the bottleneck of a conformance run: its own cycle costs about a",
        "  microsecond, while a checked stateful step costs milliseconds in Hypothesis's",
        "  generation and the oracle (`spec/`, the driver's model). The in-process Rust target",
        "  is faster than the simulator only because the simulator's own work is Python too.",
        "- Isolation adds a pipe round trip (pickle, two context switches, tens of microseconds)",
        "  to every call: a large factor on raw cycles, a few percent on a stateful run. A worker",
        "  per target adds a Python start and a library load to every example and cuts the",
        "  stateful rate several times, which is why `IsolatedTarget` shares one worker per",
        "  library.",
        "- A hang costs the `--timeout` (default 10 s) each time it happens, minimisation",
        "  included: the step-deletion pass re-runs shorter sequences (at most 400 runs, 60 s).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        say(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
