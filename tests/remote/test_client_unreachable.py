"""An agent that wedges or dies mid-run over TCP: the run stops with one clear verdict.

The agent here (run as a script: ``python test_client_unreachable.py MODE AT``) serves the
simulator over TCP, one connection at a time, like a single-threaded harness. At the AT-th
target-method request of its life it does MODE:

- ``wedge``: stops everything (no more answers, no more accepted connections: the kernel's
  backlog takes a few connects, which then get no answer to ``initialize``), as a harness
  whose driver call never returns;
- ``die``: kills itself (SIGKILL), so later connections are refused.

It prints its port on its first line of output. The run (``vmbspec check`` in a subprocess,
bounded by a generous subprocess timeout) must then give the hang or crash verdict of the case
or sequence it happened in, try a bounded number of reconnections, stop with "agent
unreachable after the ... in ...", list what was not run, write every report and the replay
file, and exit 1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmbspec.adapters.remote.client import RECONNECT_ATTEMPTS
from vmbspec.adapters.remote.framing import MessageStream
from vmbspec.adapters.remote.protocol import METHODS, dumps
from vmbspec.adapters.remote.server import Session
from vmbspec.adapters.sim import SimTarget
from vmbspec.conformance import run_conformance
from vmbspec.conformance.cases import load_cases
from vmbspec.conformance.targets import resolve_target

TIMEOUT = 1.0
#: A generous bound on one whole run: the property tested is the outcome, not the speed.
RUN_LIMIT = 120


def serve(mode: str, at: int) -> None:
    """The misbehaving agent (see the module docstring)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=2)
    print(listener.getsockname()[1], flush=True)
    count = 0
    while True:
        connection, _ = listener.accept()
        stream = MessageStream(sock=connection)
        session = Session(SimTarget)
        try:
            while True:
                message = json.loads(stream.read_line(None))
                if message.get("method") in METHODS:
                    count += 1
                    if count == at:
                        if mode == "die":
                            os.kill(os.getpid(), signal.SIGKILL)
                        time.sleep(3600)
                reply = session.handle(message)
                if reply is not None:
                    stream.write_line(dumps(reply), None)
                if session.closing:
                    break
        except Exception:  # the client went away: serve the next one
            pass
        stream.close()


class Agents:
    """The agents a test started (killed at its end)."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, mode: str, at: int) -> str:
        """Starts the script's agent; its tcp:// address."""
        process = subprocess.Popen([sys.executable, __file__, mode, str(at)],
                                   stdout=subprocess.PIPE, text=True)
        self.started.append(process)
        assert process.stdout is not None
        port = int(process.stdout.readline())
        return f"tcp://127.0.0.1:{port}"

    def stop(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            if process.stdout is not None:
                process.stdout.close()


@pytest.fixture
def agents() -> Iterator[Agents]:
    started = Agents()
    yield started
    started.stop()


def _check(address: str, folder: Path, *extra: str) -> tuple[int, str, dict[str, Any]]:
    """``vmbspec check`` on the agent in a subprocess (bounded by :data:`RUN_LIMIT`), with
    every report asked for: its status, its output and the JSON report."""
    report = folder / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "vmbspec.conformance.cli", "check", "--target", "remote:" + address,
         "--timeout", str(TIMEOUT), "--no-proofs", "--quiet", "--json", str(report),
         "--report", str(folder / "report.md"), "--junit", str(folder / "report.xml"),
         "--replay-dir", str(folder), *extra],
        capture_output=True, text=True, timeout=RUN_LIMIT, cwd=folder, check=False,
    )
    return done.returncode, done.stdout + done.stderr, json.loads(report.read_text())


def _replays(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text())
            for path in sorted(folder.glob("vmbspec-failure-*.json"))]


@pytest.mark.parametrize(("mode", "kind"), [("wedge", "hang"), ("die", "crash")])
def test_an_agent_lost_in_a_case_stops_the_run_with_one_verdict(
    agents: Agents, tmp_path: Path, mode: str, kind: str
) -> None:
    status, output, document = _check(agents.start(mode, 60), tmp_path, "--examples", "20")
    assert status == 1, output[-3000:]
    # One failure, the case the agent was lost in; then the one verdict of the run.
    failures = document["failures"]
    assert [f["kind"] for f in failures] == [kind], failures
    lost_in = failures[0]["source"].removeprefix("case:")
    stopped = document["stopped"]
    assert stopped.startswith(f"agent unreachable after the {kind} in case {lost_in}: "), stopped
    assert f"did not answer {RECONNECT_ATTEMPTS} tries" in stopped
    # Every case after it, and the stateful run, are listed as not run; none was tried.
    not_run = document["not_run"]
    assert not_run[-1] == "stateful (20 examples)"
    assert len(not_run) > 20 and all(item.startswith("case:") for item in not_run[:-1])
    assert document["cases"] + len(not_run) - 1 == len(load_cases())
    assert document["examples"] == 0 and document["verdict"] == "FAIL"
    # The reports and the replay file are written and say so.
    markdown = (tmp_path / "report.md").read_text()
    assert "## The run was cut short" in markdown and stopped in markdown
    assert all(f"- {item}" in markdown for item in not_run)
    junit = ET.parse(tmp_path / "report.xml").getroot()
    assert junit.find("testcase[@classname='vmbspec.run']/failure") is not None
    (replay,) = _replays(tmp_path)
    assert replay["kind"] == kind and replay["steps"] == failures[0]["steps"]
    assert "the run was cut short: agent unreachable after" in output


def test_an_agent_lost_in_the_stateful_run_stops_it_with_the_failing_sequence_saved(
    agents: Agents, tmp_path: Path
) -> None:
    status, output, document = _check(agents.start("wedge", 120), tmp_path, "--no-cases",
                                      "--examples", "200")
    assert status == 1, output[-3000:]
    (failure,) = document["failures"]
    assert failure["kind"] == "hang" and failure["source"] == "stateful"
    assert "no answer to" in failure["message"] and failure["steps"]
    assert document["stopped"].startswith(
        "agent unreachable after the hang in the stateful run: "), document["stopped"]
    assert 0 < document["examples"] < 200
    assert document["not_run"] == ["the minimisation of the stateful run's failure"]
    (replay,) = _replays(tmp_path)
    assert replay["steps"] == failure["steps"]


def test_an_agent_gone_between_cases_is_one_verdict_without_a_failure(
    agents: Agents,
) -> None:
    address = agents.start("die", 10**9)  # never dies by itself: it is killed below
    _name, factory = resolve_target("remote:" + address, {"timeout": TIMEOUT})
    agents.stop()
    report = run_conformance(factory, examples=5)
    factory.close()  # type: ignore[attr-defined]
    assert report.failures == [] and report.cases_run == 0
    first = load_cases()[0].id
    assert report.stopped.startswith(f"agent unreachable in case {first}: "), report.stopped
    assert report.not_run[-1] == "stateful (5 examples)"
    assert report.verdict == "FAIL" and not report.passed


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
