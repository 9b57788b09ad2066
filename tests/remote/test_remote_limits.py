"""The limits of the remote protocol, each with the fault it prevents (issue 9).

- the agent reads every line within bounds (depth, integer digits, no NaN) and answers a line
  outside them with a parse error, on stdio and TCP, and goes on serving;
- the TCP agent waits with poll/epoll, not select() (descriptors above 1,023), caps its
  connections with a clean refusal, and closes a connection idle past its deadline;
- the client turns a malformed reply (too deep, a wrong id...) into a ``crash`` fault naming
  the method, at the handshake (a one-line error) and mid-run (a crash verdict);
- ``--timeout`` is checked; ``remote:stdio:vmbspec ...`` works without an activated virtual
  environment; texts from the agent are cut before they reach a report.
"""

from __future__ import annotations

import fcntl
import json
import resource
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vmbspec.adapters.remote import protocol
from vmbspec.adapters.remote.client import RemoteError, RemoteFault, command_line
from vmbspec.adapters.remote.framing import MessageStream
from vmbspec.adapters.remote.server import TcpAgent
from vmbspec.adapters.sim import SimTarget
from vmbspec.conformance import cli_agent, run_conformance
from vmbspec.conformance.targets import UnknownTarget, resolve_target

DEEP = b"[" * 100_000 + b"]" * 100_000
INITIALIZE = protocol.request(1, "initialize", {"protocol": 1})
#: Lines outside the limits, and the words of the parse error each must get.
OUT_OF_BOUNDS = [
    (DEEP, "nested"),
    (b'{"jsonrpc":"2.0","id":2,"method":"create_channel","params":{"ring_data_size":'
     + b"9" * 5000 + b"}}", "digits"),
    (b'{"jsonrpc":"2.0","id":2,"method":"create_channel","params":{"ring_data_size":NaN}}',
     "NaN"),
    (b'{"jsonrpc":"2.0","id":2,"method":"create_channel","params":{"ring_data_size":1e999}}',
     "overflows"),
    (b"\xff\xfe{}", "UTF-8"),
]


def _read(stream: MessageStream, seconds: float = 20.0) -> dict:
    reply = json.loads(stream.read_line(time.monotonic() + seconds))
    assert isinstance(reply, dict)
    return reply


@pytest.fixture
def stdio_agent() -> Iterator[MessageStream]:
    process = subprocess.Popen(
        [sys.executable, "-m", "vmbspec.conformance.cli_agent", "--backend", "sim", "--quiet"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    stream = MessageStream(read_fd=process.stdout.fileno(), write_fd=process.stdin.fileno(),
                           close_fds=False)
    yield stream
    stream.close()
    process.stdin.close()
    process.wait(10)
    process.stdout.close()


@pytest.fixture
def tcp_agent() -> Iterator[TcpAgent]:
    agent = TcpAgent(SimTarget, "127.0.0.1", 0, max_connections=4, idle_timeout=60).start()
    yield agent
    agent.stop()


def _connect(agent: TcpAgent) -> MessageStream:
    host, port = agent.server_address[:2]
    return MessageStream(sock=socket.create_connection((str(host), port), 10))


def _agent_goes_on_after_each_bad_line(stream: MessageStream) -> None:
    for line, words in OUT_OF_BOUNDS:
        stream.write_line(line)
        reply = _read(stream)
        assert reply["id"] is None and reply["error"]["code"] == protocol.PARSE_ERROR, reply
        assert words in reply["error"]["message"]
        stream.write_line(INITIALIZE)
        assert _read(stream)["result"]["protocol"] == 1


def test_the_stdio_agent_answers_lines_outside_the_limits_and_goes_on(
    stdio_agent: MessageStream,
) -> None:
    _agent_goes_on_after_each_bad_line(stdio_agent)


def test_a_tcp_session_answers_lines_outside_the_limits_and_goes_on(
    tcp_agent: TcpAgent,
) -> None:
    stream = _connect(tcp_agent)
    _agent_goes_on_after_each_bad_line(stream)
    stream.close()


def test_the_agent_answers_odd_but_readable_requests_without_dying(
    stdio_agent: MessageStream,
) -> None:
    # A lone surrogate in the method name used to make the reply unencodable.
    stdio_agent.write_line(b'{"jsonrpc":"2.0","id":3,"method":"\\ud800"}')
    assert _read(stdio_agent)["error"]["code"] == protocol.METHOD_NOT_FOUND
    # A batch over the limit is one invalid-request error, not 500 replies.
    stdio_agent.write_line(protocol.dumps([{"jsonrpc": "2.0", "id": 1, "method": "x"}] * 500))
    reply = _read(stdio_agent)
    assert reply["error"]["code"] == protocol.INVALID_REQUEST and "batch" in (
        reply["error"]["message"])
    # protocol true is not protocol 1 (not an integer: invalid params); an id of 300
    # characters is not echoed.
    stdio_agent.write_line(b'{"jsonrpc":"2.0","id":4,"method":"initialize",'
                           b'"params":{"protocol":true}}')
    assert _read(stdio_agent)["error"]["code"] == protocol.INVALID_PARAMS
    stdio_agent.write_line(protocol.dumps({"jsonrpc": "2.0", "id": "i" * 300,
                                           "method": "reset"}))
    reply = _read(stdio_agent)
    assert reply["id"] is None and reply["error"]["code"] == protocol.INVALID_REQUEST
    stdio_agent.write_line(INITIALIZE)
    assert _read(stdio_agent)["result"]["target"] == "sim"


def test_a_stream_on_a_descriptor_above_1023_still_waits_and_reads() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    high = 1500
    if hard != resource.RLIM_INFINITY and hard <= high:
        pytest.skip(f"the descriptor limit ({hard}) is too low for this test")
    if soft != resource.RLIM_INFINITY and soft <= high:
        resource.setrlimit(resource.RLIMIT_NOFILE, (high + 1, hard))
    left, right = socket.socketpair()
    try:
        far = socket.socket(fileno=fcntl.fcntl(right.fileno(), fcntl.F_DUPFD, high))
        assert far.fileno() >= high
        right.close()
        stream = MessageStream(sock=far)
        left.sendall(b'{"a":1}\n')
        assert stream.read_line(time.monotonic() + 5) == b'{"a":1}'
        stream.write_line(b'{"b":2}', time.monotonic() + 5)
        assert left.recv(100) == b'{"b":2}\n'
        stream.close()
    finally:
        left.close()
        if soft != resource.RLIM_INFINITY and soft <= high:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _wait_until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.02)


def test_the_tcp_agent_refuses_connections_over_its_cap_and_serves_again_after(
    tcp_agent: TcpAgent,
) -> None:
    held = [_connect(tcp_agent) for _ in range(4)]
    for stream in held:
        stream.write_line(INITIALIZE)
        assert _read(stream)["result"]["protocol"] == 1
    extra = _connect(tcp_agent)
    extra.write_line(INITIALIZE)
    refusal = _read(extra)
    assert refusal["id"] is None
    assert refusal["error"]["code"] == protocol.TOO_MANY_CONNECTIONS
    assert refusal["error"]["data"] == {"max_connections": 4}
    with pytest.raises(Exception, match="closed"):
        extra.read_line(time.monotonic() + 10)
    extra.close()
    assert tcp_agent.active_connections == 4
    held.pop().close()
    _wait_until(lambda: tcp_agent.active_connections == 3, "a place is freed")
    again = _connect(tcp_agent)
    again.write_line(INITIALIZE)
    assert _read(again)["result"]["protocol"] == 1
    for stream in [*held, again]:
        stream.close()


def test_the_client_reports_a_refused_connection_as_a_one_line_error(
    tcp_agent: TcpAgent,
) -> None:
    held = [_connect(tcp_agent) for _ in range(4)]
    _wait_until(lambda: tcp_agent.active_connections == 4, "four connections served")
    host, port = tcp_agent.server_address[:2]
    with pytest.raises(UnknownTarget, match="refused the connection at initialize") as caught:
        resolve_target(f"remote:tcp://{host}:{port}", {"timeout": 5.0})
    assert "\n" not in str(caught.value)
    for stream in held:
        stream.close()


def test_the_tcp_agent_closes_an_idle_connection_and_the_client_reconnects() -> None:
    agent = TcpAgent(SimTarget, "127.0.0.1", 0, idle_timeout=0.3).start()
    try:
        quiet = _connect(agent)
        notice = _read(quiet)  # sent nothing: told why, then closed
        assert notice["id"] is None and notice["error"]["code"] == protocol.IDLE_TIMEOUT
        with pytest.raises(Exception, match="closed"):
            quiet.read_line(time.monotonic() + 10)
        quiet.close()
        _wait_until(lambda: agent.active_connections == 0, "the idle one is gone")

        _name, factory = resolve_target("remote:" + agent.url, {"timeout": 5.0})
        _wait_until(lambda: agent.active_connections == 0, "the probe's connection idles out")
        target = factory()  # the factory's kept connection was closed meanwhile
        assert target.create_channel(4096) >= 1
        target.close()
        factory.close()  # type: ignore[attr-defined]
    finally:
        agent.stop()


@pytest.mark.parametrize(("argv", "words"), [
    (["--listen", "tcp://127.0.0.1:0", "--max-connections", "0"], "--max-connections"),
    (["--listen", "tcp://127.0.0.1:0", "--idle-timeout", "inf"], "--idle-timeout"),
    (["--listen", "tcp://127.0.0.1:0", "--idle-timeout", "-1"], "--idle-timeout"),
    (["--timeout", "nan"], "--timeout"),
])
def test_the_agent_refuses_bad_limits_as_usage_errors(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_agent.main(["--quiet", *argv]) == 2
    error = capsys.readouterr().err.strip()
    assert words in error and "\n" not in error


def _scripted_agent(answer: Callable[[dict, int], bytes]) -> tuple[str, threading.Event]:
    """A TCP agent on 127.0.0.1 that answers the N-th request of a connection with
    ``answer(request, N)``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(connection,), daemon=True).start()
        listener.close()

    def serve(connection: socket.socket) -> None:
        with connection, connection.makefile("rb") as reader:
            for number, line in enumerate(reader, 1):
                try:
                    connection.sendall(answer(json.loads(line), number) + b"\n")
                except OSError:
                    return

    threading.Thread(target=run, daemon=True).start()
    return f"tcp://127.0.0.1:{listener.getsockname()[1]}", stop


def _good(request: dict) -> bytes:
    if request["method"] in ("initialize", "reset"):
        result: object = {"protocol": 1, "agent": "fake", "target": "fake",
                          "capabilities": [], "max_message_bytes": 1 << 20, "methods": []}
    elif request["method"] == "completions":
        result = []
    else:
        result = 1
    return protocol.dumps(protocol.success(request["id"], result))


def _deep_reply(request: dict) -> bytes:
    return b'{"jsonrpc":"2.0","id":%d,"result":' % request["id"] + DEEP + b"}"


def test_a_deep_handshake_reply_is_a_one_line_error_not_a_traceback() -> None:
    url, stop = _scripted_agent(lambda request, _n: _deep_reply(request))
    try:
        with pytest.raises(UnknownTarget) as caught:
            resolve_target("remote:" + url, {"timeout": 5.0})
    finally:
        stop.set()
    text = str(caught.value)
    assert "initialize" in text and "nested" in text and "\n" not in text


def test_a_deep_reply_mid_run_is_a_crash_verdict_naming_the_method() -> None:
    url, stop = _scripted_agent(
        lambda request, n: _deep_reply(request) if request["method"] == "create_channel"
        else _good(request))
    try:
        _name, factory = resolve_target("remote:" + url, {"timeout": 5.0})
        report = run_conformance(factory, examples=0, stateful=False)
        factory.close()  # type: ignore[attr-defined]
    finally:
        stop.set()
    creating = [f for f in report.failures if "create_channel" in f.message]
    assert creating, [f.message for f in report.failures]
    for failure in creating:
        assert failure.kind == "crash", failure.message
        assert "nested" in failure.message


@pytest.mark.parametrize("timeout", [float("inf"), 1e308, float("nan"), -1.0, 0.0, 86401.0,
                                     True, "5"])
def test_a_bad_remote_timeout_is_a_usage_error_naming_it(timeout: object) -> None:
    with pytest.raises(UnknownTarget, match="--timeout must be"):
        resolve_target("remote:tcp://127.0.0.1:9", {"timeout": timeout})


def test_vmbspec_as_a_command_is_the_script_beside_the_interpreter(tmp_path: Path) -> None:
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    assert command_line(["vmbspec", "agent"], str(python)) == [
        str(python), "-m", "vmbspec.conformance.cli", "agent"]
    (python.parent / "vmbspec").write_text("#!/bin/sh\n")
    assert command_line(["vmbspec", "agent"], str(python)) == [
        str(python.parent / "vmbspec"), "agent"]
    assert command_line(["other", "vmbspec"], str(python)) == ["other", "vmbspec"]


AGENT_WORDS = "vmbspec agent --backend sim --listen stdio --quiet"


def test_remote_stdio_vmbspec_works_without_an_activated_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no virtual environment on it
    name, factory = resolve_target("remote:stdio:" + AGENT_WORDS, {"timeout": 10.0})
    assert name == "remote:sim"
    target = factory()
    assert target.create_channel(4096) >= 1
    target.close()
    factory.close()  # type: ignore[attr-defined]


def test_remote_stdio_vmbspec_falls_back_to_python_m_conformance_cli(tmp_path: Path) -> None:
    """In an environment without the ``vmbspec`` script (a virtual environment that shares
    this one's packages), the client runs ``python -m vmbspec.conformance.cli``."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs to run in a virtual environment, to make one sharing its packages")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text((Path(sys.prefix) / "pyvenv.cfg").read_text())
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    (venv / "lib" / site.parent.name / "site-packages").symlink_to(site)
    (venv / "bin" / "python").symlink_to(sys.executable)
    script = ("from vmbspec.conformance.targets import resolve_target\n"
              f"name, factory = resolve_target('remote:stdio:{AGENT_WORDS}', {{'timeout': 10}})\n"
              "target = factory(); print(name, target.create_channel(4096)); target.close()\n"
              "factory.close()\n")
    done = subprocess.run([str(venv / "bin" / "python"), "-c", script], capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
                          cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["remote:sim", "1"]
    assert not (venv / "bin" / "vmbspec").exists()


def test_error_texts_from_the_agent_are_cut_before_they_reach_a_report() -> None:
    huge = "E" * 1_500_000

    def answer(request: dict, _n: int) -> bytes:
        if request["method"] == "create_channel":
            return protocol.dumps(protocol.failure(request["id"], protocol.TARGET_ERROR, huge,
                                                   {"blob": huge}))
        if request["method"] == "open_channel":
            return protocol.dumps(protocol.failure(request["id"], protocol.TARGET_FAULT, huge,
                                                   {"kind": "crash"}))
        return _good(request)

    url, stop = _scripted_agent(answer)
    try:
        _name, factory = resolve_target("remote:" + url, {"timeout": 5.0})
        target = factory()
        with pytest.raises(RemoteError) as error:
            target.create_channel(4096)
        assert len(str(error.value)) < 1000 and "more characters left out" in str(error.value)
        assert len(json.dumps(error.value.data)) < 1000
        with pytest.raises(RemoteFault) as fault:
            target.open_channel(1)
        assert len(str(fault.value)) < 1000 and "left out" in str(fault.value)
        target.close()
        factory.close()  # type: ignore[attr-defined]
    finally:
        stop.set()


def test_the_agent_cuts_a_backend_error_text() -> None:
    class Loud:
        name = "loud"
        capabilities = ()

        def create_channel(self, ring_data_size: int) -> int:
            raise RuntimeError("L" * 1_000_000)

        def completions(self) -> list:
            return []

    agent = TcpAgent(Loud, "127.0.0.1", 0).start()
    try:
        stream = _connect(agent)
        stream.write_line(INITIALIZE)
        _read(stream)
        stream.write_line(protocol.request(2, "create_channel", {"ring_data_size": 4096}))
        message = _read(stream)["error"]["message"]
        assert len(message) < 1000 and "left out" in message
        stream.close()
    finally:
        agent.stop()


def test_a_command_with_a_nul_byte_is_a_clean_error() -> None:
    with pytest.raises(UnknownTarget, match="cannot start"):
        resolve_target("remote:stdio:" + shlex.join(["a\0b"]), {"timeout": 5.0})


def test_an_agent_dying_with_a_multi_line_stderr_is_a_one_line_error() -> None:
    command = shlex.join(["sh", "-c", "echo first >&2; echo second >&2; exit 3"])
    with pytest.raises(UnknownTarget) as caught:
        resolve_target("remote:stdio:" + command, {"timeout": 5.0})
    text = str(caught.value)
    assert "\n" not in text and "exit status 3" in text and "first | second" in text


def test_a_refused_handshake_with_a_multi_line_message_is_one_line() -> None:
    url, stop = _scripted_agent(lambda request, _n: protocol.dumps(protocol.failure(
        request["id"], protocol.UNSUPPORTED_VERSION, "line one\nline two")))
    try:
        with pytest.raises(UnknownTarget) as caught:
            resolve_target("remote:" + url, {"timeout": 5.0})
    finally:
        stop.set()
    assert "\n" not in str(caught.value) and "line one\\nline two" in str(caught.value)
