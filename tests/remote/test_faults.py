"""Each fault of an agent becomes a clear verdict within the timeout; the run goes on with a
fresh connection, or stops cleanly with its report written."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vmbspec.conformance import run_conformance
from vmbspec.conformance.targets import UnknownTarget, resolve_target

TIMEOUT = 1.5

#: mode -> (verdict kind, words the message must contain)
FAULTS = {
    "malformed": ("crash", "not JSON"),
    "wrong-id": ("crash", "has id"),
    "oversized": ("crash", "oversized"),
    "close": ("crash", "closed the connection"),
    "silent": ("hang", "no answer"),
}


@pytest.mark.parametrize("mode", FAULTS)
def test_a_fault_in_one_case_is_a_verdict_and_the_run_continues(
    mode: str, tmp_path: Path, faulty_command: Callable[..., str]
) -> None:
    flag = tmp_path / "fired"
    _name, factory = resolve_target("remote:stdio:" + faulty_command(mode, 3, flag),
                                    {"timeout": TIMEOUT})
    started = time.monotonic()
    report = run_conformance(factory, examples=0, stateful=False)
    factory.close()  # type: ignore[attr-defined]
    assert flag.exists()
    assert time.monotonic() - started < 60
    kind, words = FAULTS[mode]
    assert len(report.failures) == 1, [f.message for f in report.failures]
    failure = report.failures[0]
    assert failure.kind == kind and words in failure.message, failure.message
    assert failure.source.startswith("case:") and failure.steps
    # Every other case ran, on a fresh connection, and passed.
    assert report.cases_run > 20


def test_a_fault_in_the_stateful_run_stops_it_cleanly_with_the_report_written(
    tmp_path: Path, faulty_command: Callable[..., str], vmbspec: Callable[..., int]
) -> None:
    out = tmp_path / "report.json"
    status = vmbspec([
        "check", "--target", "remote:stdio:" + faulty_command("close", 6),
        "--timeout", str(TIMEOUT), "--examples", "5", "--no-cases", "--quiet", "--no-proofs",
        "--json", str(out), "--replay-dir", str(tmp_path),
    ])
    assert status == 1
    document = json.loads(out.read_text())
    kinds = {f["kind"] for f in document["failures"]}
    assert kinds == {"crash"}


def test_an_agent_that_never_answers_is_a_one_line_error_within_the_timeout(
    faulty_command: Callable[..., str], vmbspec: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    status = vmbspec(["check", "--target", "remote:stdio:" + faulty_command("silent-start", 0),
                      "--timeout", "1", "--quiet", "--no-proofs"])
    assert status == 2
    assert time.monotonic() - started < 20
    error = capsys.readouterr().err.strip()
    assert "did not shake hands" in error and "\n" not in error


def _loopback_server(behaviour: Callable[[socket.socket], None]) -> tuple[str, threading.Event]:
    """A TCP server on 127.0.0.1 that answers the handshake, then does ``behaviour``."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(connection,), daemon=True).start()
        listener.close()

    def serve(connection: socket.socket) -> None:
        with connection:
            reader = connection.makefile("rb")
            request = json.loads(reader.readline())
            result = {"protocol": 1, "target": "fake", "capabilities": [],
                      "max_message_bytes": 1 << 20}
            connection.sendall(json.dumps(
                {"jsonrpc": "2.0", "id": request["id"], "result": result}).encode() + b"\n")
            reader.readline()
            behaviour(connection)

    threading.Thread(target=run, daemon=True).start()
    return f"tcp://127.0.0.1:{listener.getsockname()[1]}", stop


def _silent(connection: socket.socket) -> None:
    time.sleep(3 * TIMEOUT)


def _hang_up(connection: socket.socket) -> None:
    connection.shutdown(socket.SHUT_RDWR)


@pytest.mark.parametrize(("behaviour", "kind"), [(_silent, "hang"), (_hang_up, "crash")])
def test_tcp_faults_are_verdicts_and_the_next_target_reconnects(
    behaviour: Callable[[socket.socket], None], kind: str
) -> None:
    url, stop = _loopback_server(behaviour)
    try:
        _name, factory = resolve_target("remote:" + url, {"timeout": TIMEOUT})
        for _ in range(2):  # the second target gets a fresh connection and the same verdict
            target = factory()
            started = time.monotonic()
            with pytest.raises(Exception) as caught:
                target.create_channel(4096)
            assert getattr(caught.value, "kind", None) == kind
            assert time.monotonic() - started < TIMEOUT + 3
            target.close()
    finally:
        stop.set()


def test_an_unreachable_agent_is_a_one_line_target_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UnknownTarget, match="cannot connect"):
        resolve_target(f"remote:tcp://127.0.0.1:{port}", {"timeout": 1.0})
