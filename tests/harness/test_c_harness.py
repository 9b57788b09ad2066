"""The reference harness in C (``harness/c``): built with the strictest warnings, checked by
the suite over stdio and TCP as a user would, fed malformed lines, made to hang, and compared
with the reference agent (``vmbspec agent --backend rust``) request by request.

The harness forwards to the Rust core's C ABI (``adapters/rust/include/vmbcore.h``); a shim
library over that core (``hanging_core.c``) makes one driver call never return, to check that
the harness answers it with the hang error and keeps serving, on stdio and over TCP.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from vmbspec.adapters.rust.build import RustBuildError, build_library, library_path

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "harness" / "c"
INCLUDE = ROOT / "adapters" / "rust" / "include"
HERE = Path(__file__).resolve().parent
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
#: How long a test waits for one reply before it calls the harness wedged.
REPLY_SECONDS = 30.0
#: A ring size the hanging shim never opens (hanging_core.c, HANGING_RING).
HANGING_RING = 0x3000
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def _compiler() -> str:
    for name in ("gcc", "cc", "clang"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no C compiler (gcc, cc or clang) on PATH: the C harness cannot be built")


@pytest.fixture(scope="module")
def core() -> Path:
    """The Rust core's shared library (built if cargo is there and it is not)."""
    try:
        return library_path()
    except FileNotFoundError:
        if shutil.which("cargo") is None:
            pytest.skip("the Rust core is not built and cargo is not installed")
        try:
            return build_library(release=True)
        except RustBuildError as error:
            pytest.fail(f"building the Rust core failed: {error}")


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``vmbharness`` built from harness/c/src with -Werror into a temporary directory."""
    out = tmp_path_factory.mktemp("harness") / "vmbharness"
    sources = sorted(str(p) for p in (HARNESS / "src").glob("*.c"))
    command = [_compiler(), *WARNINGS, "-O2", f"-I{INCLUDE}", "-o", str(out), *sources,
               "-pthread", "-ldl"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def hanging_core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("hanging") / "libhanging.so"
    command = [_compiler(), *WARNINGS, "-shared", "-fPIC", f"-I{INCLUDE}", "-o", str(out),
               str(HERE / "hanging_core.c"), "-ldl"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command)}\n{result.stderr}"
    return out


# -- talking to a harness ---------------------------------------------------------------------


class Lines:
    """Request lines in, reply lines out, each read with a deadline (a wedged harness fails
    the test instead of hanging it)."""

    def __init__(self, write: Any, read_fd: int, close: Any) -> None:
        self._write = write
        self._fd = read_fd
        self._close = close
        self._buffer = b""
        self._selector = selectors.DefaultSelector()
        self._selector.register(read_fd, selectors.EVENT_READ)

    def send(self, line: bytes) -> None:
        self._write(line + b"\n")

    def reply(self, seconds: float = REPLY_SECONDS) -> Any:
        deadline = time.monotonic() + seconds
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0 and self._selector.select(left), "no reply: the harness is wedged"
            chunk = os.read(self._fd, 1 << 16)
            assert chunk, f"the harness closed the stream; it had sent {self._buffer[:200]!r}"
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, request_id: Any, method: str, params: Any = None) -> Any:
        request: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            request["params"] = params
        self.send(json.dumps(request).encode())
        reply = self.reply()
        assert reply.get("id") == request_id, reply
        return reply

    def close(self) -> None:
        self._selector.close()
        self._close()


def _stdio(command: list[str], env: dict[str, str] | None = None) -> tuple[Lines, Any]:
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, env=env)
    assert process.stdin is not None and process.stdout is not None
    stdin = process.stdin

    def write(data: bytes) -> None:
        stdin.write(data)
        stdin.flush()

    def close() -> None:
        stdin.close()
        try:
            process.wait(timeout=REPLY_SECONDS)
        finally:
            process.kill()
            process.stdout.close()  # type: ignore[union-attr]

    return Lines(write, process.stdout.fileno(), close), process


def _tcp(port: int) -> Lines:
    sock = socket.create_connection(("127.0.0.1", port), timeout=REPLY_SECONDS)
    return Lines(sock.sendall, sock.fileno(), sock.close)


@pytest.fixture
def listening(harness: Path, core: Path) -> Iterator[Any]:
    """``start(library, *options)`` -> the port of a harness listening on 127.0.0.1."""
    started: list[subprocess.Popen[bytes]] = []

    def start(library: Path = core, *options: str, env: dict[str, str] | None = None) -> int:
        process = subprocess.Popen(
            [str(harness), "--library", str(library), "--listen", "tcp://127.0.0.1:0",
             *options], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env)
        started.append(process)
        assert process.stderr is not None
        line = process.stderr.readline().decode()
        found = re.search(r"listening on tcp://127\.0\.0\.1:(\d+)", line)
        assert found, f"the harness did not say where it listens: {line!r}"
        return int(found.group(1))

    yield start
    for process in started:
        process.kill()
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _initialize(lines: Lines) -> dict[str, Any]:
    reply = lines.call(0, "initialize", {"protocol": 1})
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    return result


# -- the suite through the harness, as a user runs it -------------------------------------------


def _check(target: str, report: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmbspec.conformance.cli", "check", "--target", target,
         "--examples", "200", "--json", str(report)],
        capture_output=True, text=True, check=False, cwd=ROOT, timeout=600)


def _assert_passed(result: subprocess.CompletedProcess[str], report: Path) -> None:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    verdict = json.loads(report.read_text())
    assert verdict["verdict"] == "PASS" and verdict["passed"] is True, verdict["failures"]
    assert verdict["steps"] > 0 and verdict["cases"] > 0


def test_the_suite_passes_through_the_harness_on_stdio(harness: Path, core: Path,
                                                       tmp_path: Path) -> None:
    report = tmp_path / "stdio.json"
    result = _check(f"remote:stdio:{harness} --library {core}", report)
    _assert_passed(result, report)


def test_the_suite_passes_through_the_harness_over_tcp(listening: Any, tmp_path: Path) -> None:
    port = listening()
    report = tmp_path / "tcp.json"
    result = _check(f"remote:tcp://127.0.0.1:{port}", report)
    _assert_passed(result, report)


# -- malformed lines ----------------------------------------------------------------------------

#: (line, the error code the page gives it, whether the reply's id is null).
MALFORMED: list[tuple[bytes, int, bool]] = [
    (b"garbage", -32700, True),
    (b"\xff\xfe{}", -32700, True),  # not UTF-8
    (b'{"jsonrpc":"2.0","id":1,"method":"completions","params":{"\xed\xa0\x80":1}}', -32700,
     True),  # a surrogate encoded in UTF-8
    (b'{"jsonrpc":"2.0","id":1,"method":', -32700, True),
    (b"[" * 33 + b"]" * 33, -32700, True),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":'
     + b"4" * 41 + b"}}", -32700, True),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":NaN}}',
     -32700, True),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":1e999}}',
     -32700, True),
    (b"x" * (MAX_MESSAGE_BYTES + 1), -32003, True),
    (b"5", -32600, True),
    (b"[]", -32600, True),
    (b'{"jsonrpc":"1.0","id":1,"method":"completions"}', -32600, False),
    (b'{"jsonrpc":"2.0","id":true,"method":"completions"}', -32600, True),
    (b'{"jsonrpc":"2.0","id":1,"method":"completions","extra":0}', -32600, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"no_such_method"}', -32601, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"completions","params":[]}', -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"completions","params":{"x":1}}', -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{}}', -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":4096.0}}',
     -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":1e3}}',
     -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":true}}',
     -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":"4096"}}',
     -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":-4096}}',
     -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":4294967296}}',
     -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"create_channel","params":{"ring_data_size":100}}',
     -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"open_channel","params":{"channel":77}}', -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"free_packet","params":{"packet":18446744073709551615}}',
     -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"host_complete","params":{"channel":1,'
     b'"transaction_id":1,"status":0,"data":"0g"}}', -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocol":1.0}}', -32602, False),
    (b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocol":2}}', -32002, False),
]


def test_malformed_lines_get_the_documented_errors_and_the_harness_keeps_serving(
    harness: Path, core: Path
) -> None:
    lines, _ = _stdio([str(harness), "--library", str(core)])
    try:
        # Before initialize: a target method is -32001, and nothing else is broken by it.
        assert lines.call(1, "completions")["error"]["code"] == -32001
        assert lines.call(2, "reset", [])["error"]["code"] == -32001  # before its params
        _initialize(lines)
        for index, (line, code, null_id) in enumerate(MALFORMED):
            lines.send(line)
            reply = lines.reply()
            shown = line[:80]
            assert "error" in reply and reply["error"]["code"] == code, (shown, reply)
            assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
            assert (reply["id"] is None) == null_id, (shown, reply)
            # The harness still serves: a valid request afterwards works.
            assert lines.call(1000 + index, "completions")["result"] == [], shown
        # A notification gets no reply: the next reply is the next request's.
        lines.send(b'{"jsonrpc":"2.0","method":"completions"}')
        assert lines.call("after", "create_channel", {"ring_data_size": 4096})["result"] > 0
    finally:
        lines.close()


def test_integers_are_held_exactly_to_u64(harness: Path, core: Path) -> None:
    """u64 values survive (no double in between): the largest PFN and transaction id are
    accepted, one more is refused; a 30-digit id is echoed digit for digit."""
    lines, _ = _stdio([str(harness), "--library", str(core)])
    try:
        _initialize(lines)
        channel = lines.call(1, "create_channel", {"ring_data_size": 4096})["result"]
        lines.call(2, "open_channel", {"channel": channel})
        packet = lines.call(3, "allocate_packet", {"channel": channel})["result"]
        largest = 2**64 - 1
        send = {"packet": packet, "buffer": "", "buffer_length": 0,
                "mdl": [[0, 8, [largest]]], "mdl_offset": 0, "mdl_length": 8, "flags": 1}
        assert lines.call(4, "send_with_external_mdl", send)["result"] == 0
        taken = bytes.fromhex(lines.call(5, "host_take_packet", {"channel": channel})["result"])
        assert largest.to_bytes(8, "little") in taken  # the PFN reached the ring exactly
        send["mdl"] = [[0, 8, [largest + 1]]]
        assert lines.call(6, "send_with_external_mdl", send)["error"]["code"] == -32602
        huge = 123456789012345678901234567890
        lines.send(b'{"jsonrpc":"2.0","id":%d,"method":"completions"}' % huge)
        assert lines.reply()["id"] == huge
    finally:
        lines.close()


from . import malformed_harness as campaign  # noqa: E402

CAMPAIGN = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("transport", ["stdio", "tcp"])
def test_every_generated_malformed_request_gets_a_clean_reply(harness: Path, core: Path,
                                                             transport: str) -> None:
    """The remote protocol's malformed-request generators (tests/remote/malformed_inputs.py)
    against the C harness: well-formed replies, no internal error, and it goes on serving.
    ``bench/bench_harness.py --malformed N`` runs the same for 10,000 inputs and more."""
    live = campaign.HarnessUnderTest(harness, core, transport)
    requests = campaign.load_generators().requests

    @CAMPAIGN
    @given(requests)
    def one(line: bytes) -> None:
        live.exchange(line)

    try:
        one()
    finally:
        live.close()
    assert live.sent >= 250


# -- a driver call that never returns -------------------------------------------------------


def _hang_then_recover(lines: Lines) -> None:
    _initialize(lines)
    channel = lines.call(1, "create_channel", {"ring_data_size": HANGING_RING})["result"]
    reply = lines.call(2, "open_channel", {"channel": channel})
    assert reply["error"]["code"] == -32004 and reply["error"]["data"] == {"kind": "hang"}
    # The target's state is lost until reset: every target method says so, still promptly.
    reply = lines.call(3, "create_channel", {"ring_data_size": 4096})
    assert reply["error"]["code"] == -32004 and reply["error"]["data"] == {"kind": "hang"}
    assert "result" in lines.call(4, "reset")
    fresh = lines.call(5, "create_channel", {"ring_data_size": 4096})["result"]
    assert lines.call(6, "open_channel", {"channel": fresh})["result"] is None


def test_a_hung_driver_call_is_answered_as_a_hang_on_stdio(harness: Path, core: Path,
                                                          hanging_core: Path) -> None:
    env = {**os.environ, "VMBCORE_REAL": str(core)}
    lines, _ = _stdio([str(harness), "--library", str(hanging_core), "--call-timeout", "0.3"],
                      env)
    try:
        _hang_then_recover(lines)
    finally:
        lines.close()


def test_a_hung_driver_call_never_wedges_the_tcp_agent(listening: Any, core: Path,
                                                      hanging_core: Path) -> None:
    env = {**os.environ, "VMBCORE_REAL": str(core)}
    port = listening(hanging_core, "--call-timeout", "0.3", env=env)
    first = _tcp(port)
    try:
        _hang_then_recover(first)
        # Hang it again and, with that connection still open, serve another one.
        channel = first.call(7, "create_channel", {"ring_data_size": HANGING_RING})["result"]
        assert first.call(8, "open_channel", {"channel": channel})["error"]["code"] == -32004
        second = _tcp(port)
        try:
            _initialize(second)
            assert second.call(1, "create_channel", {"ring_data_size": 4096})["result"] > 0
        finally:
            second.close()
    finally:
        first.close()
    # After the client gave up on its connection, a new one is served as usual.
    third = _tcp(port)
    try:
        _initialize(third)
        assert third.call(1, "completions")["result"] == []
    finally:
        third.close()


# -- the same replies as the reference agent ----------------------------------------------------


def _script() -> list[tuple[str, dict[str, Any] | None]]:
    """A session exercising every method and the page's edge cases; "$C" and "$P" stand for
    the first channel and packet handles the target issues."""
    send = {"packet": "$P", "buffer": "0102", "buffer_length": 2, "mdl": [[16, 8192, [5, 6, 7]]],
            "mdl_offset": 0, "mdl_length": 0, "flags": 1}
    return [
        ("create_channel", {"ring_data_size": 8192}),
        ("create_channel", {"ring_data_size": 4097}),
        ("allocate_packet", {"channel": "$C"}),
        ("send_with_external_mdl", send),
        ("open_channel", {"channel": "$C"}),
        ("ring_bytes", {"channel": "$C"}),
        ("host_take_packet", {"channel": "$C"}),
        ("host_take_packet", {"channel": "$C"}),
        ("host_complete", {"channel": "$C", "transaction_id": 999, "status": 0, "data": ""}),
        ("send_with_external_mdl", {**send, "buffer": "01"}),
        ("send_with_external_mdl", {**send, "mdl": []}),
        ("send_with_external_mdl", {**send, "mdl": [[4096, 1, [1, 2]]]}),
        ("send_with_external_mdl", {**send, "mdl": [[0, 4097, [1]]]}),
        ("send_with_external_mdl", {**send, "mdl": None, "buffer": "", "buffer_length": 0}),
        ("send_with_external_mdl", {**send, "packet": "$C"}),
        ("open_channel", {"channel": "$P"}),
        ("disable_channel", {"channel": "$C"}),
        ("completions", None),
        ("open_channel", {"channel": "$C"}),
        ("host_take_packet", {"channel": "$C"}),
        ("free_packet", {"packet": "$P"}),
        ("free_packet", {"packet": "$P"}),
        ("send_with_external_mdl", {**send, "mdl": None, "buffer": None, "buffer_length": 0}),
        ("reset", {}),
        ("free_packet", {"packet": "$P"}),
        ("shutdown", {"x": 1}),
        ("reset", []),  # type: ignore[list-item]
        ("initialize", {"protocol": 1, "client": 5}),
        ("initialize", {}),
        ("completions", {}),
    ]


def _run_script(lines: Lines) -> list[Any]:
    """Replies with handles replaced by their names and names by placeholders."""
    _initialize(lines)
    handles: dict[str, int] = {}
    shown: list[Any] = []
    for index, (method, params) in enumerate(_script()):
        if isinstance(params, dict):
            params = {k: handles.get(v, 999_999) if isinstance(v, str) and v.startswith("$")
                      else v for k, v in params.items()}
        reply = lines.call(index, method, params)
        if "error" in reply:
            shown.append((method, "error", reply["error"]["code"]))
            continue
        result = reply["result"]
        if method == "create_channel":
            handles.setdefault("$C", result)
        elif method == "allocate_packet":
            handles.setdefault("$P", result)
        names = {value: name for name, value in handles.items()}
        if method in ("create_channel", "allocate_packet"):
            result = names.get(result, "a handle")
        elif method == "completions":
            result = [{**c, "packet": names.get(c["packet"], "a handle")} for c in result]
        elif method in ("reset", "initialize"):
            result = result["capabilities"]
        shown.append((method, "result", result))
    return shown


def test_the_replies_are_the_reference_agents_up_to_handles_and_names(harness: Path,
                                                                      core: Path) -> None:
    ours, _ = _stdio([str(harness), "--library", str(core)])
    reference, _ = _stdio([sys.executable, "-m", "vmbspec.conformance.cli", "agent",
                           "--backend", "rust", "--listen", "stdio"])
    try:
        expected = _run_script(reference)
        got = _run_script(ours)
    finally:
        ours.close()
        reference.close()
    assert got == expected


# -- the README's session by hand -------------------------------------------------------------


def _readme_session() -> list[tuple[str, dict[str, Any]]]:
    """The request and reply lines of harness/c/README.md, "By hand"."""
    text = (HARNESS / "README.md").read_text()
    block = text.split("### By hand", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines() if line.startswith("{")]
    assert len(lines) % 2 == 0 and lines, "the README's session lost its shape"
    return [(lines[i], json.loads(lines[i + 1])) for i in range(0, len(lines), 2)]


def _without_target_name(reply: dict[str, Any]) -> dict[str, Any]:
    """The reply with the target's name (it holds the library's path) left out."""
    result = reply.get("result")
    if isinstance(result, dict) and "target" in result:
        return {**reply, "result": {**result, "target": "(the library)"}}
    return reply


def test_the_readme_session_by_hand_is_what_the_harness_answers(harness: Path,
                                                               core: Path) -> None:
    lines, _ = _stdio([str(harness), "--library", str(core)])
    try:
        for request, expected in _readme_session():
            lines.send(request.encode())
            got = lines.reply()
            assert _without_target_name(got) == _without_target_name(expected), request
    finally:
        lines.close()
