"""`vmbspec sweep` against a remote agent that wedges: one verdict, not a failure per shape."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_client_unreachable import RUN_LIMIT, TIMEOUT, Agents


@pytest.fixture
def agents() -> Iterator[Agents]:
    started = Agents()
    yield started
    started.stop()


def test_a_sweep_stops_when_the_agent_is_lost(agents: Agents, tmp_path: Path) -> None:
    address = agents.start("wedge", 40)
    report = tmp_path / "sweep.json"
    done = subprocess.run(
        [sys.executable, "-m", "vmbspec.conformance.cli", "sweep", "--target", "remote:" + address,
         "--timeout", str(TIMEOUT), "--quick", "--quiet", "--json", str(report),
         "--replay-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=RUN_LIMIT, cwd=tmp_path, check=False,
    )
    assert done.returncode == 1, (done.stdout + done.stderr)[-3000:]
    document = json.loads(report.read_text())
    assert document["verdict"] == "FAIL"
    assert document["stopped"].startswith("agent unreachable after shape "), document["stopped"]
    # The shape the agent hung in, at most: not one failure per remaining shape.
    assert len(document["failures"]) <= 1, document["failures"]
    assert document["shapes_run"] < document["total"]
