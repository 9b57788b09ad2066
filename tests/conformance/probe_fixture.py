"""A small hand-made probe document for the tests of ``vmbspec probe`` (never shipped as
``conformance/probe/calls.json``: the real one is written by
``python -m vmbspec.spec.discriminate``).
One or two probes a reading, each a complete step sequence, hand-derived from the catalog's
wording of the options."""

from __future__ import annotations

from typing import Any

RING = 65536
MDL_1 = [[0, 0x20, [0x10]]]
CHAIN = [[0, 0x10, [0x10]], [0, 0x10, [0x20]]]


def _send(**fields: Any) -> list[dict[str, Any]]:
    """Open a channel, send packet 0 with ``fields``, the host takes and completes it."""
    send = {"op": "send", "packet": 0, "flags": 1, **fields}
    return [
        {"op": "create_channel", "ring_data_size": RING},
        {"op": "open", "channel": 0},
        {"op": "allocate", "channel": 0},
        send,
        {"op": "host_take", "channel": 0},
        {"op": "host_complete", "packet": 0, "status": 0},
    ]


def _probe(ident: str, reading: str, pairs: list[list[str]], steps: list[dict[str, Any]],
           why: str = "hand-made") -> dict[str, Any]:
    return {"id": ident, "reading": reading, "separates": pairs, "source": "sequence",
            "why": why, "steps": steps}


def fixture() -> dict[str, Any]:
    probes = [
        _probe("A1:rest", "A1", [["a", "b"], ["a", "c"]],
               _send(mdl=MDL_1, mdl_offset=0x10, mdl_length=0)),
        _probe("A1:chain", "A1+A5", [["a+a", "d+a"]],
               _send(mdl=CHAIN, mdl_offset=0x8, mdl_length=0)),
        _probe("A2:origin", "A2", [["a", "b"]],
               _send(mdl=[[0x10, 0x20, [0x10]]], mdl_offset=0x10, mdl_length=0x10)),
        _probe("A3:bound", "A3", [["a", "b"], ["a", "c"], ["a", "d"], ["b", "c"], ["c", "d"]],
               _send(mdl=[[1, 1, [0x10]]], mdl_offset=4094, mdl_length=2, flags=3)),
        _probe("A3:far", "A3", [["b", "d"]],
               _send(mdl=[[1, 1, [0x10]]], mdl_offset=0x2000, mdl_length=1, flags=3)),
        _probe("A4:no-wait", "A4", [["a", "b"], ["a", "c"], ["b", "c"]],
               _send(mdl=MDL_1, mdl_length=8, flags=0)),
        _probe("A5:short", "A5", [["a", "b"]], _send(mdl=CHAIN, mdl_length=8)),
        _probe("A5:long", "A5", [["a", "b"], ["a", "c"]], _send(mdl=CHAIN, mdl_length=0x18)),
        _probe("A6:null", "A6", [["a", "b"]], _send(buffer="00" * 8, buffer_length=8)),
        _probe("A7:bit3", "A7", [["ignore", "reject"]],
               _send(mdl=MDL_1, mdl_length=8, flags=9)),
        _probe("A9:zero", "A9", [["reject", "no-range"]],
               _send(mdl=[[0, 0, []]], mdl_length=0)),
        _probe("A12:disable", "A12", [],
               [{"op": "create_channel", "ring_data_size": RING}, {"op": "open", "channel": 0},
                {"op": "allocate", "channel": 0},
                {"op": "send", "packet": 0, "flags": 1, "mdl": MDL_1, "mdl_length": 8},
                {"op": "disable", "channel": 0}]),
    ]
    return {"generated_by": "tests/conformance/probe_fixture.py (hand-made)", "probes": probes,
            "unobservable": [{"reading": "A8", "options": ["any-error", "exact"],
                              "why": "hand-made: the fixture has no status probe"}]}
