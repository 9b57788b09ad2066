"""The whole conformance suite through the remote adapter: stdio against the simulator,
TCP loopback against the Rust core."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from vmbspec.adapters.remote import TcpAgent
from vmbspec.conformance import run_conformance
from vmbspec.conformance.targets import resolve_target

EXAMPLES = 25


def _failures(report: object) -> list[str]:
    return [f"{f.source}: {f.kind} {f.message}" for f in report.failures]  # type: ignore[attr-defined]


def test_the_suite_passes_through_remote_stdio_against_the_simulator(
    agent_command: Callable[..., str],
) -> None:
    name, factory = resolve_target("remote:stdio:" + agent_command(), {"timeout": 10.0})
    assert name == "remote:sim"
    report = run_conformance(factory, examples=EXAMPLES)
    factory.close()  # type: ignore[attr-defined]
    assert report.passed, _failures(report)
    assert report.cases_run > 20 and report.examples >= EXAMPLES
    assert "ring-bytes" in report.capabilities


def _rust_factory() -> object:
    try:
        from vmbspec.adapters.native import RustTarget
        from vmbspec.adapters.rust.build import library_path

        library_path()
    except Exception as error:  # no cargo on this machine: skip
        pytest.skip(f"the Rust core is not built: {error}")
    return RustTarget


def test_the_suite_passes_through_tcp_loopback_against_the_rust_core() -> None:
    agent = TcpAgent(_rust_factory(), "127.0.0.1", 0).start()  # type: ignore[arg-type]
    try:
        name, factory = resolve_target("remote:" + agent.url, {"timeout": 10.0})
        assert name == "remote:rust"
        report = run_conformance(factory, examples=EXAMPLES)
        factory.close()  # type: ignore[attr-defined]
    finally:
        agent.stop()
    assert report.passed, _failures(report)
    assert report.cases_run > 20


def test_vmbspec_agent_serves_tcp_on_a_port_it_prints() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "vmbspec.conformance.cli_agent", "--backend", "sim",
         "--listen", "tcp://127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"listening on (tcp://127\.0\.0\.1:\d+)", line)
        assert match, line
        _name, factory = resolve_target("remote:" + match.group(1), {"timeout": 10.0})
        report = run_conformance(factory, examples=5, cases=False)
        factory.close()  # type: ignore[attr-defined]
        assert report.passed, _failures(report)
    finally:
        process.terminate()
        process.wait(10)


def test_a_stdio_agent_is_started_once_for_a_whole_run(
    agent_command: Callable[..., str],
) -> None:
    _name, factory = resolve_target("remote:stdio:" + agent_command(), {"timeout": 10.0})
    started = time.perf_counter()
    targets = [factory() for _ in range(5)]
    for target in targets:
        channel = target.create_channel(4096)
        assert channel >= 1
        target.close()
    connection = factory._idle[0]  # type: ignore[attr-defined]
    assert connection.process is not None and connection.process.poll() is None
    factory.close()  # type: ignore[attr-defined]
    assert connection.process is None
    assert time.perf_counter() - started < 30
