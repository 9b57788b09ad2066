"""The shared failure store (``--db``): a failure one ``check`` finds is replayed first by the
next, wherever it runs; ``replay --db`` lists and replays the store.

A directory store, and a real Redis server (the Debian ``redis-server``) started on
127.0.0.1 by a fixture, shared by two ``check`` processes on different targets. Without
``redis-server`` the Redis test is skipped on a workstation, and fails in CI (``CI`` set).
"""

from __future__ import annotations

import json
import os
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
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from vmbspec.conformance.cli import main
from vmbspec.conformance.exampledb import (
    FAILURES_KEY,
    DatabaseError,
    failure_id,
    open_database,
    parse_redis_url,
    parse_value,
)
from vmbspec.conformance.inputs import InputError

QUICK = ["--quiet", "--no-proofs"]
VMBSPEC = Path(sys.executable).parent / "vmbspec"


def _check(tmp_path: Path, db: str, target: str, *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "r.json"
    status = main(["check", *QUICK, "--target", target, "--db", db, "--no-cases",
                   "--replay-dir", str(tmp_path), "--json", str(out), *extra])
    return status, json.loads(out.read_text())


def test_a_failure_stored_by_one_check_is_replayed_first_by_the_next(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "db")
    status, first = _check(tmp_path, db, "sim:wrap32", "--examples", "30")
    assert status == 1 and first["known_failures"] == []
    found = first["failures"][0]
    stored_id = failure_id(found["steps"])

    # Listed by replay --db, with its kind, requirements and target.
    capsys.readouterr()
    assert main(["replay", "--db", db]) == 0
    listing = capsys.readouterr().out
    assert "1 failure(s) stored" in listing and stored_id in listing and "wrap32" in listing

    # A conforming target: the known failure is replayed and passes; the run goes on.
    status, second = _check(tmp_path, db, "sim", "--examples", "5")
    assert status == 0 and second["verdict"] == "PASS"
    assert [(k["id"], k["result"]) for k in second["known_failures"]] == [(stored_id, "passes")]

    # The buggy target again, with no generation at all: the known failure alone fails it,
    # reported like a case (source known:<id>), and it is not stored twice.
    status, third = _check(tmp_path, db, "sim:wrap32,zero-length-range", "--examples", "0")
    assert status == 1
    assert third["failures"][0]["source"] == f"known:{stored_id}"
    assert third["failures"][0]["steps"] == found["steps"]
    capsys.readouterr()
    assert main(["replay", "--db", db]) == 0
    assert "1 failure(s) stored" in capsys.readouterr().out

    # replay --db --all: exit 1 while a stored failure fails on the target, 0 once none does.
    assert main(["replay", "--db", db, "--all", "--target", "sim:wrap32"]) == 1
    assert main(["replay", "--db", db, "--all", "--target", "sim"]) == 0


def test_the_default_store_is_vmbspec_db_and_none_switches_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VMBSPEC_DB")
    monkeypatch.chdir(tmp_path)
    assert main(["check", *QUICK, "--target", "sim:wrap32", "--examples", "10",
                 "--no-cases"]) == 1
    assert list(DirectoryBasedExampleDatabase(tmp_path / ".vmbspec" / "db").fetch(FAILURES_KEY))
    out = tmp_path / "r.json"
    assert main(["check", *QUICK, "--db", "none", "--examples", "0", "--no-cases",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["known_failures"] == []


def test_an_unreadable_value_is_skipped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "db"
    DirectoryBasedExampleDatabase(db).save(FAILURES_KEY, b"{not json")
    status, report = _check(tmp_path, str(db), "sim", "--examples", "0")
    assert status == 0 and report["known_failures"] == []
    assert "skipped:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("db", "message"),
    [
        ("ftp://somewhere", "unknown kind of store"),
        ("redis://127.0.0.1", "expected redis://HOST:PORT[/N]"),
        ("redis://127.0.0.1:70000", "expected redis://HOST:PORT[/N]"),
        ("redis://127.0.0.1:6379/x", "database number"),
        ("", "empty"),
    ],
)
def test_a_bad_db_is_a_usage_error_in_one_line(
    db: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", *QUICK, "--db", db, "--examples", "0", "--no-cases"]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1 and "Traceback" not in error


def test_a_file_is_not_a_store_and_an_unreachable_redis_is_said_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["check", *QUICK, "--db", str(file), "--examples", "0"]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert main(["replay", "--db", f"redis://127.0.0.1:{_free_port()}"]) == 2
    assert "cannot reach the Redis server" in capsys.readouterr().err


def test_replay_needs_a_file_or_a_store(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay"]) == 2
    assert main(["replay", "--all"]) == 2
    assert main(["replay", "--db", "none"]) == 2
    assert "replay" in capsys.readouterr().err


# -- stored values come from outside: a clean error or a failure, never a crash ---------------

_VALUE = {
    "vmbspec_failure": 1, "kind": "nonconformance", "requirements": ["SEED-MDLOFFSET"],
    "message": "m", "target": "sim", "profile": "default", "vmbspec": "0.1.0",
    "source": "stateful",
    "steps": [{"op": "create_channel", "ring_data_size": 4096}, {"op": "allocate",
                                                                 "channel": 0}],
}


def _mutations() -> st.SearchStrategy[bytes]:
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                       st.text(max_size=20), st.lists(st.integers(), max_size=3))
    edited = st.tuples(st.sampled_from([*_VALUE, "id", "steps.0", "steps.1.channel"]),
                       leaves).map(_edit)
    return st.one_of(st.binary(max_size=200), edited,
                     st.text(max_size=200).map(lambda t: t.encode()))


def _edit(change: tuple[str, Any]) -> bytes:
    document: dict[str, Any] = json.loads(json.dumps(_VALUE))
    document["id"] = failure_id(document["steps"])
    field, value = change
    if field.startswith("steps."):
        _, index, *rest = field.split(".")
        if rest:
            document["steps"][int(index)][rest[0]] = value
        else:
            document["steps"][int(index)] = value
    else:
        document[field] = value
    return json.dumps(document).encode()


def test_a_well_formed_value_reads_back() -> None:
    stored = parse_value(_edit(("message", "m")), "v")
    assert stored.steps == _VALUE["steps"] and stored.requirements == ("SEED-MDLOFFSET",)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(_mutations())
def test_a_malformed_value_is_a_clean_input_error(raw: bytes) -> None:
    try:
        parse_value(raw, "stored failure 1")
    except InputError as error:
        assert str(error).startswith("stored failure 1")


def _redis_urls() -> st.SearchStrategy[str]:
    host = st.one_of(st.just("127.0.0.1"), st.text(max_size=12), st.just("[::1]"))
    port = st.one_of(st.integers(-5, 70000).map(str), st.text(max_size=6))
    path = st.one_of(st.just(""), st.integers(-3, 70000).map(lambda n: f"/{n}"),
                     st.text(max_size=8).map(lambda t: "/" + t))
    extra = st.sampled_from(["", "?x=1", "#f", "/0/1", "@"])
    return st.builds(lambda h, p, q, e: f"redis://{h}:{p}{q}{e}", host, port, path, extra)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_redis_urls())
def test_a_malformed_redis_address_is_a_clean_usage_error(text: str) -> None:
    try:
        host, port, number = parse_redis_url(text)
    except DatabaseError as error:
        assert str(error).startswith(f"--db {text}")
    else:
        assert host and 1 <= port <= 65535 and 0 <= number <= 65535


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.text(max_size=30).map(lambda t: "x\x00" + t) | st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz+.-", max_size=10).map(lambda t: "ftp" + t + "://x"))
def test_a_malformed_directory_or_scheme_is_a_clean_usage_error(text: str) -> None:
    with pytest.raises(DatabaseError):
        open_database(text)


# -- one Redis server, two check processes on different targets --------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on 127.0.0.1 and a free port, for this test only."""
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed: CI must install it (.ci/run: "
                        "apt-get install -y redis-server)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        for _attempt in range(200):  # until it accepts connections (a bounded wait)
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if process.poll() is not None:
                    pytest.fail(f"redis-server exited with {process.returncode}")
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not accept connections")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _check_process(tmp_path: Path, name: str, target: str, db: str,
                   *extra: str) -> tuple[int, dict[str, Any]]:
    folder = tmp_path / name
    folder.mkdir()
    result = subprocess.run(
        [str(VMBSPEC), "check", *QUICK, "--target", target, "--db", db, "--no-cases",
         "--json", "r.json", *extra],
        cwd=folder, capture_output=True, text=True, timeout=300,
    )
    return result.returncode, json.loads((folder / "r.json").read_text())


def test_two_check_processes_on_different_targets_share_a_failure_through_redis(
    redis_url: str, tmp_path: Path
) -> None:
    status, first = _check_process(tmp_path, "a", "sim:wrap32", redis_url, "--examples", "30")
    assert status == 1
    stored_id = failure_id(first["failures"][0]["steps"])

    # Another machine, another target: it replays the failure found by the first, before
    # generating anything (here nothing: --examples 0), and fails on it.
    status, second = _check_process(tmp_path, "b", "sim:zero-length-range,wrap32", redis_url,
                                     "--examples", "0")
    assert status == 1
    assert second["failures"][0]["source"] == f"known:{stored_id}"
    assert second["known_failures"][0]["found_on"] == first["target"]

    # A conforming target replays it too, and passes.
    status, third = _check_process(tmp_path, "c", "rust", redis_url, "--examples", "0")
    assert status == 0
    assert [(k["id"], k["result"]) for k in third["known_failures"]] == [(stored_id, "passes")]
