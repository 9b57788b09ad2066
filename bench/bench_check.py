"""Benchmark of the conformance run on the simulator.

Measures, on this machine, in one run:

1. stateful speed against the simulator (``run_conformance(..., cases=False)``): driver
   steps per second and rule calls per second, beside a *floor* measured in the same run
   and with the same settings (batches, steps per example, seed): a trivial
   RuleBasedStateMachine with as many rules as the real one, no arguments and no work. The
   runs alternate (floor, real, floor, real, ...) and the medians are compared, so a loaded
   machine slows both;
2. how deep the generated examples go (the report's ``generation``: the share of examples
   with an accepted send, sends per example, completions before disable, packets queued
   behind a full ring, FIFO order tested);
3. where the stateful run's time goes (cProfile) and the oracle alone;
4. the wall time of the default ``vmbspec check`` (cases, proofs, 1000 stateful examples) and
   whether every requirement was exercised.

Run: ``python bench/bench_check.py [--examples N] [--write bench/results/check.md]``.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test, initialize, rule

from vmbspec.conformance import run_conformance
from vmbspec.conformance.machine import RunState, build_machine
from vmbspec.conformance.runner import _stateful_settings, batch_seed
from vmbspec.spec.call import SendCall
from vmbspec.spec.mdl import MdlChain, MdlSegment
from vmbspec.spec.rules import SendContext, evaluate_send

STEPS_PER_EXAMPLE = 40


def stateful(examples: int) -> dict[str, Any]:
    started = time.perf_counter()
    report = run_conformance("sim", examples=examples, cases=False)
    seconds = time.perf_counter() - started
    assert report.passed, report.summary()
    generation = report.generation
    rule_calls = generation["rule_calls_per_example"] * generation["examples"]
    return {
        "seconds": seconds,
        "steps": report.evidence.total_steps,
        "steps_per_s": report.evidence.total_steps / seconds,
        "rules_per_s": rule_calls / seconds,
        "generation": generation,
    }


def rule_count() -> int:
    machine = build_machine(lambda: None, None, RunState(None))  # type: ignore[arg-type]
    return len(machine.setup_state().rules)


def trivial_machine(rules: int) -> tuple[type[RuleBasedStateMachine], list[int]]:
    """A machine with ``rules`` rules and one initialize rule, none with arguments or work."""
    calls = [0]

    def make(index: int) -> Any:
        def body(self: Any) -> None:
            calls[0] += 1

        body.__name__ = f"rule_{index}"
        return rule()(body)

    namespace: dict[str, Any] = {f"rule_{i}": make(i) for i in range(rules)}
    namespace["start"] = initialize()(lambda self: None)
    return type("Trivial", (RuleBasedStateMachine,), namespace), calls


def floor(examples: int, rules: int) -> dict[str, float]:
    """The trivial machine under the runner's own settings, batches and seeds."""
    machine, calls = trivial_machine(rules)
    started = time.perf_counter()
    done, batch = 0, 0
    while done < examples:
        size = min(500, examples - done)
        test = get_state_machine_test(
            machine, settings=_stateful_settings(size, STEPS_PER_EXAMPLE)
        )
        hypothesis_seed(batch_seed(0, batch))(test)()
        done += size
        batch += 1
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rules_per_s": calls[0] / seconds, "rule_calls": calls[0]}


def profile_shares(examples: int) -> dict[str, float]:
    profiler = cProfile.Profile()
    profiler.enable()
    run_conformance("sim", examples=examples, cases=False)
    profiler.disable()
    stats = pstats.Stats(profiler)
    shares: collections.Counter[str] = collections.Counter()
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if "hypothesis" in filename:
            key = "hypothesis"
        elif "/spec/" in filename or "conformance/driver" in filename:
            key = "oracle (spec + driver)"
        elif "adapters/sim" in filename:
            key = "target (sim)"
        elif "conformance/" in filename:
            key = "suite (machine, runner)"
        else:
            key = "other (stdlib)"
        shares[key] += tottime
    total = sum(shares.values())
    return {key: value / total for key, value in shares.most_common()}


def oracle_rate(calls: int = 20000) -> float:
    chain = MdlChain((MdlSegment.with_pages(0x100, 0x2000), MdlSegment.with_pages(0x10, 0x800)))
    context = SendContext.fresh()
    inputs = [
        SendCall(None, 0, chain, offset, length, flags)
        for offset, length, flags in (
            (0, 0, 1), (0x100, 0x1000, 1), (0, 0x2F00, 3), (0xFFFFF000, 0x2000, 1),
            (0x1F00, 0x200, 1), (0, 0, 0x13),
        )
    ]
    started = time.perf_counter()
    for index in range(calls):
        evaluate_send(inputs[index % len(inputs)], context)
    return calls / (time.perf_counter() - started)


def default_check() -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "r.json"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "vmbspec.conformance.cli", "check", "--quiet",
             "--json", str(out)],
            check=True, stdout=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
        import json

        document = json.loads(out.read_text())
    statuses = collections.Counter(r["status"] for r in document["requirements"].values())
    return seconds, statuses["pass"], statuses["uncovered"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--write", metavar="FILE", help="write the results as Markdown")
    args = parser.parse_args()

    rules = rule_count()
    stateful(20)  # warm up imports and caches
    floor(20, rules)
    real_runs, floor_runs = [], []
    for _ in range(3):
        floor_runs.append(floor(args.examples, rules))
        real_runs.append(stateful(args.examples))
    steps_rate = statistics.median(r["steps_per_s"] for r in real_runs)
    rules_rate = statistics.median(r["rules_per_s"] for r in real_runs)
    floor_rate = statistics.median(r["rules_per_s"] for r in floor_runs)
    generation = real_runs[0]["generation"]
    shares = profile_shares(min(args.examples, 150))
    oracle = oracle_rate()
    check_seconds, passed, uncovered = default_check()
    share = generation["share_of_examples"]
    lines = [
        "# Benchmark: the conformance run on the simulator",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.machine()}; measured {time.strftime('%Y-%m-%d')}. Command: "
        f"`python bench/bench_check.py --examples {args.examples} --write "
        "bench/results/check.md`.",
        "",
        "## Speed, against a floor measured in the same run",
        "",
        f"The floor is a RuleBasedStateMachine with the same number of rules ({rules}, plus one "
        "initialize rule), no arguments and no work, run with the runner's own settings, "
        f"batches and seeds ({args.examples} examples of up to {STEPS_PER_EXAMPLE} rule calls). "
        "Floor and real runs alternate, three of each; medians.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| floor: rule calls per second | {floor_rate:.0f} | |",
        f"| vmbspec on sim: driver steps per second | {steps_rate:.0f} | 3,000 |",
        f"| vmbspec on sim: rule calls per second | {rules_rate:.0f} | |",
        f"| floor rule calls / vmbspec driver steps (per second) | "
        f"{floor_rate / steps_rate:.2f}x | within 1.5x |",
        f"| floor rule calls / vmbspec rule calls (per second) | "
        f"{floor_rate / rules_rate:.2f}x | |",
        f"| oracle alone: `evaluate_send` calls per second | {oracle:.0f} | |",
        "",
        "A vmbspec rule is a piece of work of several calls (a send and the host's takes; ring "
        f"pressure; the host's takes and completions): {generation['steps_per_example']} driver "
        f"steps per example from {generation['rule_calls_per_example']} rule calls.",
        "",
        "## Depth of the generated examples",
        "",
        f"From the first of the three runs ({generation['examples']} examples, the report's "
        "`generation`).",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| examples with at least one accepted send | {share['accepted-send']:.1%} | 90% |",
        f"| sends per example (accepted) | {generation['sends_per_example']} "
        f"({generation['accepted_sends_per_example']}) | several |",
        f"| examples reaching a completion before any disable | "
        f"{share['completion-before-disable']:.1%} | |",
        f"| examples that disable the channel | {share['disable']:.1%} | |",
        f"| examples that complete a packet, then disable | "
        f"{share['completion-then-disable']:.1%} | |",
        f"| examples that queue a packet behind a full ring | "
        f"{share['queued-behind-full-ring']:.1%} | |",
        f"| examples where a packet that would fit waits behind queued ones (FIFO tested) | "
        f"{share['fifo-order-tested']:.1%} | |",
        f"| examples that free a busy packet (robust targets, READ-A10) | "
        f"{share['busy-free']:.1%} | |",
        "",
        "## The default check",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| default `vmbspec check` wall time (cases, proofs, 1000 examples) | "
        f"{check_seconds:.1f} s | 30 s |",
        f"| requirements exercised by the default check | {passed} pass, {uncovered} "
        f"uncovered (each with a reason) | all exercised or explained |",
        "",
        "Where the stateful run's time goes (cProfile, own time):",
        "",
    ]
    lines += [f"- {key}: {value:.0%}" for key, value in shares.items()]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
