"""Malformed-input campaign on the remote protocol, both ways, bounded in time.

(a) Requests to a live agent, over stdio and over TCP: random bytes, random JSON, valid
requests with one thing wrong (each parameter given each wrong type), deep nesting, integers
of thousands of digits, NaN, lone surrogates, batches. Each must get well-formed JSON-RPC
replies (never an internal error), and the agent must still answer a valid ``initialize``.

(b) Replies to the client: a fake agent answers each method with generated garbage. Each must
become a result, a ``crash``/``hang`` fault or an agent error naming the method, never another
exception.

The generators and checks are in ``malformed_inputs.py``; ``bench/malformed_remote.py`` runs
them for 10,000 inputs per interface.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings

from . import malformed_inputs as inputs

CAMPAIGN = settings(max_examples=250, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", params=["stdio", "tcp"])
def live_agent(request: pytest.FixtureRequest) -> Iterator[object]:
    agent = inputs.AgentUnderTest(request.param)
    yield agent
    agent.close()


def test_every_malformed_request_gets_a_well_formed_reply_and_the_agent_goes_on(
    live_agent: object,
) -> None:
    @CAMPAIGN
    @given(inputs.requests)
    def one(line: bytes) -> None:
        live_agent.exchange(line)  # type: ignore[attr-defined]

    one()
    assert live_agent.sent >= 250  # type: ignore[attr-defined]


@CAMPAIGN
@given(inputs.replies)
def test_every_malformed_reply_is_a_clean_verdict(pair: tuple[str, bytes]) -> None:
    method, line = pair
    outcomes = ("result", "crash", "hang", "target-error", "protocol-error")
    assert inputs.client_outcome(method, line) in outcomes


@pytest.mark.parametrize(("method", "line", "outcome"), [
    ("initialize", b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 5000 + b"]" * 5000 + b"}",
     "crash"),
    ("create_channel", b'{"jsonrpc":"2.0","id":1,"result":' + b"[" * 5000 + b"]" * 5000 + b"}",
     "crash"),
    ("create_channel", b'{"jsonrpc":"2.0","id":true,"result":1}', "crash"),
    ("create_channel", b'{"jsonrpc":"2.0","id":1,"result":NaN}', "crash"),
    ("create_channel", b'{"jsonrpc":"2.0","id":1,"result":' + b"7" * 5000 + b"}", "crash"),
    ("completions", b'{"jsonrpc":"2.0","id":1,"result":[{"packet":1}]}', "protocol-error"),
    ("create_channel", b'{"jsonrpc":"2.0","id":1,"error":{"code":true,"message":"x"}}',
     "crash"),
    ("create_channel", b'{"jsonrpc":"2.0","id":1,"error":{"code":-32000,"message":"x"}}',
     "target-error"),
    ("create_channel", b'{"jsonrpc":"2.0","id":1,"result":1}', "result"),
])
def test_known_malformed_replies(method: str, line: bytes, outcome: str) -> None:
    """Fixed examples of the campaign's shapes; the deep ones raised RecursionError before."""
    assert inputs.client_outcome(method, line) == outcome


WRONG = [True, False, -1, 1.5, "x", [], {}, 2**64, None, [[0, 0]], "0" * 7]
BASELINE = {"u32": 0, "u64": 0, "handle": 1, "hex": "", "hex?": None, "mdl?": None}


def test_every_parameter_of_every_method_refuses_every_wrong_type() -> None:
    """Exhaustive, beside the random campaign: each parameter given each wrong value is an
    invalid-params error naming that parameter, and the session goes on."""
    from vmbspec.adapters.remote import protocol
    from vmbspec.adapters.remote.server import Session
    from vmbspec.adapters.sim import SimTarget

    session = Session(SimTarget)
    assert "result" in session.handle(
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocol": 1}})
    checked = 0
    for method, (spec, _kind) in protocol.METHODS.items():
        for name, kind in spec.items():
            for wrong in WRONG:
                if wrong is None and kind.endswith("?"):
                    continue  # null is a valid value of an optional kind
                params = {p: BASELINE[k] for p, k in spec.items()}
                params[name] = wrong
                reply = session.handle({"jsonrpc": "2.0", "id": 1, "method": method,
                                        "params": params})
                assert reply["error"]["code"] == protocol.INVALID_PARAMS, (method, name, wrong)
                assert name in reply["error"]["message"], reply
                checked += 1
    assert checked > 150
    assert session.handle({"jsonrpc": "2.0", "id": 2, "method": "completions"})["result"] == []
