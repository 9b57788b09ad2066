"""Helpers for the remote-protocol tests: agent commands and the CLI with the new commands."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent


def _agent_command(*extra: str, backend: str = "sim") -> str:
    """``remote:stdio:`` command running the reference agent on ``backend``."""
    return shlex.join([sys.executable, "-m", "vmbspec.conformance.cli_agent", "--backend", backend,
                       "--quiet", *extra])


def _faulty_command(mode: str, at: int, once: Path | None = None) -> str:
    args = [sys.executable, str(HERE / "faulty_agent.py"), mode, str(at)]
    if once is not None:
        args += ["--once", str(once)]
    return shlex.join(args)


@pytest.fixture
def agent_command() -> Callable[..., str]:
    """``agent_command(*extra, backend="sim")``: a ``remote:stdio:`` command for the agent."""
    return _agent_command


@pytest.fixture
def faulty_command() -> Callable[..., str]:
    """``faulty_command(mode, at, once=None)``: the misbehaving agent (faulty_agent.py)."""
    return _faulty_command


@pytest.fixture
def vmbspec(monkeypatch: pytest.MonkeyPatch) -> Callable[..., int]:
    """``conformance.cli.main`` with the agent and trace subcommands registered."""
    from vmbspec.conformance import cli, cli_agent, cli_trace

    original = cli._subcommand_modules

    def modules() -> list[Any]:
        present = original()
        return present + [m for m in (cli_agent, cli_trace) if m not in present]

    monkeypatch.setattr(cli, "_subcommand_modules", modules)
    return cli.main
