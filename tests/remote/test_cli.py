"""``vmbspec agent`` and ``--target remote:...``: mistakes are one-line errors, exit status 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["agent", "--listen", "pipe"], "--listen must be stdio or tcp://HOST:PORT"),
        (["agent", "--listen", "tcp://127.0.0.1"], "needs a port"),
        (["agent", "--backend", "nope"], "unknown target"),
        (["agent", "--backend", "remote:tcp://127.0.0.1:1"], "cannot be a remote target"),
        (["agent", "--trace", "/no/such/folder/t.jsonl"], "does not exist"),
        (["check", "--target", "remote:tcp://127.0.0.1"], "expected remote:tcp://HOST:PORT"),
        (["check", "--target", "remote:stdio:"], "needs a command"),
        (["check", "--target", "remote:stdio:/no/such/agent", "--timeout", "1"],
         "cannot start"),
    ],
)
def test_mistakes_are_one_line_errors(
    argv: list[str], words: str, vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert vmbspec([*argv, *(["--quiet", "--no-proofs"] if argv[0] == "check" else [])]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and "\n" not in error, error


def test_check_runs_through_remote_stdio_from_the_command_line(
    agent_command: Callable[..., str], vmbspec: Callable[..., int], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = vmbspec(["check", "--target", "remote:stdio:" + agent_command(), "--examples",
                      "5", "--quiet", "--no-proofs", "--json", str(tmp_path / "r.json")])
    assert status == 0
    assert "remote:sim: PASS" in capsys.readouterr().out
