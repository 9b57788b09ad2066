"""The page's "A session, by hand", replayed against the reference agent, so the page cannot
drift from the agent.

The lines are read from ``docs/remote-protocol.md`` itself: the command after ``$``, then
requests and replies alternating. Against the command as written (``--backend sim``) every reply
must be the documented one exactly. Against ``--backend rust`` (what the page tells a harness
author to compare with) the replies must be the same up to handle values, names, error messages
and capabilities: handles and transaction ids are mapped from what the Rust core issued.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmbspec.adapters.remote import protocol

PAGE = Path(__file__).resolve().parents[2] / "docs" / "remote-protocol.md"


def _session_block() -> tuple[list[str], list[tuple[dict[str, Any], dict[str, Any]]]]:
    """``(command words, [(request, documented reply), ...])`` from the page."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("## A session, by hand"):]
    block = section.split("```")[1].strip("\n").splitlines()
    assert block[0].startswith("$ "), block[0]
    command = shlex.split(block[0][2:])
    lines = block[1:]
    assert lines and len(lines) % 2 == 0, "requests and replies must alternate"
    pairs = [(json.loads(lines[i]), json.loads(lines[i + 1])) for i in range(0, len(lines), 2)]
    return command, pairs


COMMAND, PAIRS = _session_block()


class Agent:
    """``vmbspec agent`` on stdio, as the page's command line runs it."""

    def __init__(self, words: list[str]) -> None:
        assert words[:2] == ["vmbspec", "agent"], words
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vmbspec.conformance.cli_agent", *words[2:], "--quiet"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )

    def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request, separators=(",", ":")) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line.endswith("\n"), f"no reply to {request}"
        reply = json.loads(line)
        assert isinstance(reply, dict)
        return reply

    def close(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        code = self.process.wait(20)
        self.process.stdout.close()
        return code


@pytest.fixture
def agent_on(request: pytest.FixtureRequest) -> Iterator[Any]:
    agents: list[Agent] = []

    def start(words: list[str]) -> Agent:
        agents.append(Agent(words))
        return agents[-1]

    yield start
    for agent in agents:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.close()


def test_the_page_holds_a_session_that_covers_what_it_promises() -> None:
    methods = [request["method"] for request, _ in PAIRS]
    assert COMMAND[:2] == ["vmbspec", "agent"] and "stdio" in COMMAND
    assert methods[0] == "initialize" and methods[-1] == "shutdown"
    assert "client" not in PAIRS[0][0]["params"], "the page shows client as optional"
    assert {"completions", "free_packet", "host_take_packet", "host_complete", "reset"} <= set(
        methods)
    assert any("params" not in request for request, _ in PAIRS), "params absent somewhere"
    for request, reply in PAIRS:
        assert request["jsonrpc"] == "2.0" and reply["jsonrpc"] == "2.0"
        assert reply["id"] == request["id"]
        assert ("result" in reply) != ("error" in reply)
        if request["method"] in protocol.METHODS and "result" in reply:
            protocol.check_result(request["method"], reply["result"])  # the documented kind


def test_every_reply_of_the_page_is_what_the_agent_answers(agent_on: Any) -> None:
    agent = agent_on(COMMAND)
    for request, documented in PAIRS:
        assert agent.ask(request) == documented, request["method"]
    assert agent.close() == 0  # shutdown ends a stdio agent


def test_the_documented_reply_shapes() -> None:
    replies = {request["id"]: (request, reply) for request, reply in PAIRS}
    first = PAIRS[0][1]["result"]
    assert set(first) == {"protocol", "agent", "target", "capabilities", "max_message_bytes",
                          "methods"}
    assert first["protocol"] == 1 and first["max_message_bytes"] == 8 * 1024 * 1024
    assert first["methods"] == [*protocol.SESSION_METHODS, *protocol.METHODS]
    assert "reads-buffer-late" not in first["capabilities"]
    for request, reply in replies.values():
        method = request["method"]
        if method == "send_with_external_mdl":
            assert isinstance(reply["result"], int), "a rejected send is a result"
        if method == "host_take_packet":
            packet = bytes.fromhex(reply["result"])
            assert len(packet) % 8 == 0 and int.from_bytes(packet[4:6], "little") * 8 == len(
                packet), "the packet without its trailer"
        if "error" in reply:
            assert reply["error"]["code"] == protocol.INVALID_PARAMS
    freed_send = [reply["result"] for request, reply in PAIRS
                  if request["method"] == "send_with_external_mdl"
                  and request["params"]["buffer"] == ""]
    assert freed_send == [0xC0000184]


def _translate(value: Any, handles: dict[int, int]) -> Any:
    if isinstance(value, dict):
        return {k: (handles.get(v, v) if k in ("channel", "packet") and isinstance(v, int)
                    else _translate(v, handles)) for k, v in value.items()}
    if isinstance(value, list):
        return [_translate(v, handles) for v in value]
    return value


def test_the_rust_backend_gives_the_same_replies_up_to_handles_and_names(
    agent_on: Any,
) -> None:
    words = [w if w != "sim" else "rust" for w in COMMAND]
    agent = agent_on(words)
    handles: dict[int, int] = {}  # the page's (the simulator's) handle -> the Rust core's
    transactions: dict[int, int] = {}  # likewise for transaction ids
    ignored = ("agent", "target", "capabilities")
    for request, documented in PAIRS:
        method = request["method"]
        if method in ("reset", "initialize"):
            handles.clear()
            transactions.clear()
        sent = dict(request)
        if isinstance(request.get("params"), dict):
            sent["params"] = _translate(request["params"], handles)
            if method == "host_complete":
                ours = request["params"]["transaction_id"]
                sent["params"]["transaction_id"] = transactions.get(ours, ours)
        reply = agent.ask(sent)
        assert ("result" in reply) == ("result" in documented), (request, reply)
        if "error" in documented:
            assert reply["error"]["code"] == documented["error"]["code"], request
            continue
        result, expected = reply["result"], documented["result"]
        if method in ("create_channel", "allocate_packet") and expected is not None:
            handles[expected] = result
        elif method == "host_take_packet" and expected is not None:
            mine, theirs = bytes.fromhex(result), bytes.fromhex(expected)
            transactions[int.from_bytes(theirs[8:16], "little")] = int.from_bytes(
                mine[8:16], "little")
            assert mine[:8] + mine[16:] == theirs[:8] + theirs[16:], "the same packet"
        elif method in ("initialize", "reset"):
            assert {k: v for k, v in result.items() if k not in ignored} == {
                k: v for k, v in expected.items() if k not in ignored}
        elif method == "completions":
            assert result == _translate(expected, handles)
        else:
            assert result == expected, request
    assert agent.close() == 0
