"""Replay files from outside: malformed ones are refused with the file, step and field named;
steps that break a rule of the caller are a usage error, never the target's failure.

The last part is the malformed-input campaign: generated and mutated replay files through
``load_replay`` and ``replay_steps`` on the simulator. ``bench/malformed_replay.py`` runs the
same generators (:func:`replay_documents`, :func:`check_replay_document`) for 10,000 inputs.
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from vmbspec.adapters.sim import SimTarget
from vmbspec.conformance import run_conformance
from vmbspec.conformance.cli import main
from vmbspec.conformance.driver import Driver, StepError
from vmbspec.conformance.machine import mdl_chains
from vmbspec.conformance.replay import ReplayFileError, load_replay, replay_steps
from vmbspec.conformance.report import describe_step
from vmbspec.conformance.steps import MAX_STEPS, check_steps
from vmbspec.spec.readings import Profile

SETUP: list[dict[str, Any]] = [
    {"op": "create_channel", "ring_data_size": 65536},
    {"op": "open", "channel": 0},
    {"op": "allocate", "channel": 0},
]
SEND: dict[str, Any] = {
    "op": "send", "packet": 0, "buffer": "0102", "buffer_length": 2,
    "mdl": [[0, 4096, [5]]], "mdl_offset": 0, "mdl_length": 0, "flags": 1,
}


def write(tmp_path: Path, steps: Any, **extra: Any) -> Path:
    path = tmp_path / "replay.json"
    path.write_text(json.dumps({"vmbspec_replay": 1, **extra, "steps": steps}))
    return path


def send(**changes: Any) -> list[dict[str, Any]]:
    return [*SETUP, {**SEND, **changes}]


@pytest.mark.parametrize("index", [0, 1])
def test_the_replays_check_wrote_fail_on_wrap32_and_conform_on_sim(
    tmp_path: Path, index: int
) -> None:
    document = load_replay(write(tmp_path, FOUND_BY_CHECK[index]))
    assert replay_steps(document["steps"], SimTarget, Profile.default()).failure is None
    broken = replay_steps(document["steps"], lambda: SimTarget({"wrap32"}), Profile.default())
    assert broken.failure is not None and "SEED-MDLOFFSET" in broken.failure.requirements


def test_a_good_replay_loads_and_conforms_on_the_simulator(tmp_path: Path) -> None:
    steps = [*send(), {"op": "host_take", "channel": 0},
             {"op": "host_complete", "packet": 0, "status": 0, "data": "c0ffee"},
             {"op": "free", "packet": 0}]
    document = load_replay(write(tmp_path, steps))
    result = replay_steps(document["steps"], SimTarget, Profile.default())
    assert result.failure is None and result.steps_run == len(steps)


# ---------------------------------------------------------------------------------------------
# Wrong shapes and types: the reviewer's variants, each named by file, step and field
# ---------------------------------------------------------------------------------------------

BAD_STEPS: list[tuple[str, list[dict[str, Any]], str]] = [
    ("buffer_length string", send(buffer_length="x"), "step 4: field buffer_length"),
    ("buffer_length float", send(buffer_length=2.0), "step 4: field buffer_length"),
    ("buffer_length bool", send(buffer_length=True), "step 4: field buffer_length"),
    ("buffer_length negative", send(buffer_length=-1), "step 4: field buffer_length"),
    ("buffer_length > u32", send(buffer_length=2**32), "step 4: field buffer_length"),
    ("mdl pair", send(mdl=[[0, 1]]), "step 4: field mdl[0]"),
    ("mdl not a list", send(mdl="x"), "step 4: field mdl"),
    ("mdl empty", send(mdl=[]), "step 4: field mdl"),
    ("mdl pfns not a list", send(mdl=[[0, 1, 5]]), "step 4: field mdl[0].pfns"),
    ("mdl pfn string", send(mdl=[[0, 1, ["5"]]]), "step 4: field mdl[0].pfns[0]"),
    ("mdl pfn > u64", send(mdl=[[0, 1, [2**64]]]), "step 4: field mdl[0].pfns[0]"),
    ("mdl wrong pfn count", send(mdl=[[0, 4097, [5]]]), "step 4: field mdl[0].pfns"),
    ("mdl byte_offset 4096", send(mdl=[[4096, 1, [5]]]), "step 4: field mdl[0].byte_offset"),
    ("mdl byte_count null", send(mdl=[[0, None, []]]), "step 4: field mdl[0].byte_count"),
    ("mdl of a billion pages", send(mdl=[[0, 2**32 - 1, []]]), "step 4: field mdl[0]"),
    ("mdl_offset string", send(mdl_offset="0"), "step 4: field mdl_offset"),
    ("mdl_length list", send(mdl_length=[1]), "step 4: field mdl_length"),
    ("flags object", send(flags={"a": 1}), "step 4: field flags"),
    ("buffer number", send(buffer=7), "step 4: field buffer"),
    ("buffer odd hex", send(buffer="123", buffer_length=2), "step 4: field buffer"),
    ("buffer not hex", send(buffer="zz", buffer_length=1), "step 4: field buffer"),
    ("buffer length mismatch", send(buffer="01", buffer_length=2), "step 4: field buffer"),
    ("buffer fill string", send(buffer={"fill": "x"}), "step 4: field buffer.fill"),
    ("buffer 4 GiB fill", send(buffer={"fill": 1}, buffer_length=2**32 - 1),
     "step 4: field buffer_length"),
    ("packet string", send(packet="0"), "step 4: field packet"),
    ("packet negative", send(packet=-1), "step 4: field packet"),
    ("packet not allocated", send(packet=3), "step 4: field packet: no packet 3"),
    ("expect unknown", send(expect="maybe"), "step 4: field expect"),
    ("unknown field", send(buffer_lenght=2), "step 4: field 'buffer_lenght'"),
    ("unknown op", [{"op": "explode"}], "step 1: field op: unknown step op"),
    ("op missing", [{"channel": 0}], "step 1: field op"),
    ("step not an object", [7], "step 1: a step is an object"),
    ("channel missing", [SETUP[0], {"op": "open"}], "step 2: field channel: missing"),
    ("channel not created", [SETUP[0], {"op": "open", "channel": 1}],
     "step 2: field channel: no channel 1"),
    ("ring float", [{"op": "create_channel", "ring_data_size": 4096.0}],
     "step 1: field ring_data_size"),
    ("ring not pages", [{"op": "create_channel", "ring_data_size": 5000}],
     "step 1: field ring_data_size"),
    ("ring of 4 GiB", [{"op": "create_channel", "ring_data_size": 2**32 - 4096}],
     "step 1: field ring_data_size"),
    ("status string", [*send(), {"op": "host_complete", "packet": 0, "status": "ok"}],
     "step 5: field status"),
    ("data not hex", [*send(), {"op": "host_complete", "packet": 0, "data": "xyz"}],
     "step 5: field data"),
]


@pytest.mark.parametrize(("steps", "where"), [c[1:] for c in BAD_STEPS],
                         ids=[c[0] for c in BAD_STEPS])
def test_a_malformed_step_is_refused_naming_file_step_and_field(
    tmp_path: Path, steps: list[dict[str, Any]], where: str
) -> None:
    path = write(tmp_path, steps)
    with pytest.raises(ReplayFileError) as info:
        load_replay(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {where}"), message
    assert "\n" not in message


@pytest.mark.parametrize(("steps", "where"), [c[1:] for c in BAD_STEPS[:6]],
                         ids=[c[0] for c in BAD_STEPS[:6]])
def test_the_cli_reports_a_malformed_step_as_a_usage_error(
    tmp_path: Path, steps: list[dict[str, Any]], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(write(tmp_path, steps))]) == 2
    err = capsys.readouterr().err
    assert where in err and "Traceback" not in err


def test_the_driver_refuses_the_same_steps_before_calling_the_target() -> None:
    # Steps also reach the driver from cases, traces and the pytest plugin: the same schema.
    calls: list[str] = []

    class Recording(SimTarget):
        def send_with_external_mdl(self, *args: Any) -> int:
            calls.append("send")
            return super().send_with_external_mdl(*args)

    driver = Driver(Recording(), Profile.default())
    for step in SETUP:
        driver.execute(step)
    with pytest.raises(StepError, match=r"^step 4: field buffer_length: expected an integer"):
        driver.execute({**SEND, "buffer_length": "x"})
    assert calls == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"vmbspec_replay": 1, "steps": ' + "[" * 100_000 + "]" * 100_000 + "}",
         "nested deeper than"),
        ('{"vmbspec_replay": 1, "steps": [{"op": "create_channel", "ring_data_size": '
         + "9" * 5000 + "}]}", "an integer of 5000 digits"),
        ('{"vmbspec_replay": 1, "steps": [], "message": NaN}', "NaN is not a JSON number"),
        ('{"vmbspec_replay": 1, "steps": [', "not valid JSON"),
        ('[1, 2]', "not a vmbspec replay file"),
        ('{"vmbspec_replay": 1}', "field steps: missing"),
        ('{"vmbspec_replay": 1, "steps": {}}', "steps: expected an array"),
        ('{"vmbspec_replay": 1, "steps": [], "found_on": 5}', "field found_on"),
        ('{"vmbspec_replay": 1, "steps": [], "requirements": [1]}', r"field requirements\[0\]"),
    ],
    ids=["deep", "5000-digit int", "NaN", "truncated", "not an object", "no steps",
         "steps object", "found_on int", "requirement int"],
)
def test_unbounded_or_broken_documents_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "replay.json"
    path.write_text(text)
    with pytest.raises(ReplayFileError, match=message):
        load_replay(path)


def test_a_device_that_never_ends_is_refused_without_reading_it_all() -> None:
    with pytest.raises(ReplayFileError, match="larger than"):
        load_replay(Path("/dev/zero"))


def test_a_folder_or_binary_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match="is a folder"):
        load_replay(tmp_path)
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ReplayFileError, match="not UTF-8"):
        load_replay(path)


def test_a_sequence_is_bounded_in_steps_and_channels(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError, match="steps: an array of"):
        load_replay(write(tmp_path, [{"op": "host_take", "channel": 0}] * (MAX_STEPS + 1)))
    rings = [{"op": "create_channel", "ring_data_size": 1 << 24}] * 5
    with pytest.raises(ReplayFileError, match="step 5: more than"):
        load_replay(write(tmp_path, rings))


# ---------------------------------------------------------------------------------------------
# Steps that break a rule of the caller: a usage error, before the target is called
# ---------------------------------------------------------------------------------------------

TAKEN = [*send(), {"op": "host_take", "channel": 0}]
CALLER_RULES: list[tuple[str, list[dict[str, Any]], str]] = [
    ("open twice", [*SETUP, {"op": "open", "channel": 0}],
     r"step 4 \(open\): opening channel 0 breaks the caller's rule KMCL-QUEUE-CLOSED"),
    ("disable twice", [*SETUP, {"op": "disable", "channel": 0}, {"op": "disable", "channel": 0}],
     r"step 5 \(disable\): disabling channel 0 breaks the caller's rule READ-A12"),
    ("open after disable", [*SETUP, {"op": "disable", "channel": 0},
                            {"op": "open", "channel": 0}],
     r"step 5 \(open\): .* breaks the caller's rule KMCL-QUEUE-CLOSED"),
    ("free a packet in flight", [*TAKEN, {"op": "free", "packet": 0}],
     r"step 6 \(free\): freeing packet #0 breaks the caller's rule SEED-WAIT"),
    ("free twice", [*SETUP, {"op": "free", "packet": 0}, {"op": "free", "packet": 0}],
     r"step 5 \(free\): freeing packet #0 breaks the caller's rule SEED-WAIT"),
    ("complete a packet the host never took", [*send(), {"op": "host_complete", "packet": 0}],
     r"step 5 \(host_complete\): packet #0 has no transaction the host has taken"),
]


class _Fragile(SimTarget):
    """The simulator without robust-contract-violations, recording what it was asked."""

    capabilities = frozenset({"ring-bytes"})

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def open_channel(self, channel: int) -> None:
        self.calls.append("open")
        super().open_channel(channel)

    def disable_channel(self, channel: int) -> None:
        self.calls.append("disable")
        super().disable_channel(channel)

    def free_packet(self, packet: int) -> None:
        self.calls.append("free")
        super().free_packet(packet)

    def send_with_external_mdl(self, *args: Any) -> int:
        self.calls.append("send")
        return super().send_with_external_mdl(*args)


@pytest.mark.parametrize(("steps", "message"), [c[1:] for c in CALLER_RULES],
                         ids=[c[0] for c in CALLER_RULES])
def test_a_step_breaking_a_caller_rule_is_a_step_error_before_the_target_sees_it(
    steps: list[dict[str, Any]], message: str
) -> None:
    targets: list[_Fragile] = []

    def factory() -> _Fragile:
        targets.append(_Fragile())
        return targets[-1]

    with pytest.raises(StepError, match=message):
        replay_steps(steps, factory, Profile.default())
    before = replay_steps(steps[:-1], factory, Profile.default())
    assert before.failure is None
    # The refused step never reached the target: its calls are those of the steps before.
    assert targets[0].calls == targets[1].calls


def test_sending_a_packet_in_flight_is_refused_unless_the_target_is_robust() -> None:
    steps = [*TAKEN, dict(SEND)]
    with pytest.raises(StepError, match=r"step 6 \(send\): sending packet #0 breaks the "
                       r"caller's rule READ-A10"):
        replay_steps(steps, _Fragile, Profile.default())
    # The simulator declares robust-contract-violations: the suite checks that it rejects it.
    assert replay_steps(steps, SimTarget, Profile.default()).failure is None


def test_the_cli_reports_a_caller_rule_as_a_usage_error_not_a_failure_of_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, CALLER_RULES[0][1])
    assert main(["replay", str(path)]) == 2
    err = capsys.readouterr().err
    assert "breaks the caller's rule KMCL-QUEUE-CLOSED" in err
    assert "SpecViolation" not in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# The campaign: generated, mutated and random replay files
# ---------------------------------------------------------------------------------------------

#: Placeholders replaced in the JSON text: json.dumps cannot write these values.
BIG = "@@BIG@@"
DEEP = "@@DEEP@@"
FIELDS = ("op", "channel", "packet", "ring_data_size", "buffer", "buffer_length", "mdl",
          "mdl_offset", "mdl_length", "flags", "status", "data", "expect", "fill", "extra")

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)
bad_values = st.one_of(
    json_values,
    # Copied: a mutation must not change the shared list or build a cycle through it.
    st.sampled_from([BIG, DEEP, -1, 2**32, 2**64, 2**32 - 1, 4095, 4097, 0.5, True, "", "zz",
                     [], {}, [[0, 1]], {"fill": 1}, {"fill": 256}, "0" * 7]).map(copy.deepcopy),
)
u32s = st.one_of(st.sampled_from([0, 1, 0xFFF, 0x1000, 0xFFFF_F000, 0xFFFF_FFFF]),
                 st.integers(0, 0xFFFF_FFFF))


@st.composite
def valid_sends(draw: st.DrawFn, packets: int) -> dict[str, Any]:
    chain = draw(st.one_of(st.none(), mdl_chains()))
    kind = draw(st.sampled_from(["null", "fill", "hex"]))
    length = draw(st.integers(0, 64))
    buffer: Any = None
    if kind == "fill":
        buffer = {"fill": draw(st.integers(0, 255))}
    elif kind == "hex":
        buffer = draw(st.binary(min_size=length, max_size=length)).hex()
    return {
        "op": "send", "packet": draw(st.integers(0, packets - 1)), "buffer": buffer,
        "buffer_length": length,
        "mdl": None if chain is None else [[s.byte_offset, s.byte_count, list(s.pfns)]
                                           for s in chain.segments],
        "mdl_offset": draw(st.integers(0, 0x3000) | u32s),
        "mdl_length": draw(st.integers(0, 0x3000) | u32s),
        "flags": draw(st.sampled_from([0, 1, 2, 3, 4, 5, 7, 8, 0x11, 0x8000_0001])),
    }


@st.composite
def step_sequences(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Well-formed sequences: some conform, some break a caller rule."""
    steps: list[dict[str, Any]] = [
        {"op": "create_channel", "ring_data_size": draw(st.sampled_from([4096, 8192, 65536]))}
    ]
    if draw(st.booleans()):
        steps.append({"op": "open", "channel": 0})
    packets = draw(st.integers(1, 3))
    steps += [{"op": "allocate", "channel": 0} for _ in range(packets)]
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["send", "send", "send", "host_take", "host_take",
                                   "host_complete", "free", "disable", "open", "mutate_buffer"]))
        packet = draw(st.integers(0, packets - 1))
        if op == "send":
            steps.append(draw(valid_sends(packets)))
        elif op in ("host_take", "disable", "open"):
            steps.append({"op": op, "channel": 0})
        elif op == "host_complete":
            steps.append({"op": op, "packet": packet,
                          "status": draw(st.sampled_from([0, 0xC000_0001, 0x103])),
                          "data": draw(st.binary(max_size=8)).hex()})
        else:
            steps.append({"op": op, "packet": packet})
    return steps


#: The steps of replay files written by `vmbspec check --target sim:wrap32 --examples 100
#: --no-proofs` (a catalog case and a shrunk stateful sequence), as mutation seeds.
FOUND_BY_CHECK: list[list[dict[str, Any]]] = [
    [{"op": "create_channel", "ring_data_size": 65536}, {"op": "open", "channel": 0},
     {"op": "allocate", "channel": 0},
     {"op": "send", "packet": 0, "buffer": None, "buffer_length": 0,
      "mdl": [[256, 8192, [28672, 28673, 28674]]], "mdl_offset": 4294963200,
      "mdl_length": 8192, "flags": 1, "expect": "rejected"}],
    [{"op": "create_channel", "ring_data_size": 4096}, {"op": "allocate", "channel": 0},
     {"op": "open", "channel": 0},
     {"op": "send", "packet": 0, "buffer": {"fill": 0}, "buffer_length": 4032,
      "mdl": [[0, 1, [1]]], "mdl_offset": 1, "mdl_length": 4294967295, "flags": 1}],
]


def _mutate(document: dict[str, Any], data: st.DataObject) -> None:
    steps = document["steps"]
    if not isinstance(steps, list) or not steps:
        return
    kind = data.draw(st.sampled_from(["field", "field", "delete", "step", "mdl", "steps", "top"]))
    if kind == "steps":
        document["steps"] = data.draw(bad_values)
        return
    if kind == "top":
        key = data.draw(st.sampled_from(["vmbspec_replay", "found_on", "requirements",
                                         "message", "profile"]))
        document[key] = data.draw(bad_values)
        return
    index = data.draw(st.integers(0, len(steps) - 1))
    step = steps[index]
    if not isinstance(step, dict):
        return
    if kind == "step":
        steps[index] = data.draw(bad_values)
    elif kind == "delete" and step:
        step.pop(data.draw(st.sampled_from(sorted(step))), None)
    elif kind == "mdl" and isinstance(step.get("mdl"), list) and step["mdl"]:
        segment = step["mdl"][data.draw(st.integers(0, len(step["mdl"]) - 1))]
        if not isinstance(segment, list) or len(segment) != 3:
            return  # an earlier mutation replaced it
        where = data.draw(st.integers(0, 3))
        if where < 3:
            segment[where] = data.draw(bad_values)
        elif isinstance(segment[2], list) and segment[2]:
            segment[2][data.draw(st.integers(0, len(segment[2]) - 1))] = data.draw(bad_values)
    else:
        step[data.draw(st.sampled_from(FIELDS))] = data.draw(bad_values)


def _text(document: Any, data: st.DataObject, corrupt: bool = True) -> bytes:
    text = json.dumps(document)
    text = text.replace(json.dumps(BIG), data.draw(st.sampled_from(
        ["9" * 5000, "-" + "1" * 41, "1" * 40, "1e400", "-0"])), 1)
    text = text.replace(json.dumps(DEEP), "[" * 100_000 + "]" * 100_000, 1)
    raw = text.encode()
    cut = data.draw(st.sampled_from(["none", "none", "none", "truncate", "byte"]))
    if not corrupt or cut == "none" or not raw:
        return raw
    if cut == "truncate":
        return raw[: data.draw(st.integers(0, len(raw)))]
    position = data.draw(st.integers(0, len(raw) - 1))
    return raw[:position] + bytes([data.draw(st.integers(0, 255))]) + raw[position + 1:]


@st.composite
def replay_documents(draw: st.DrawFn) -> bytes:
    """The bytes of a replay file: valid, mutated, random JSON or random bytes."""
    data = draw(st.data())
    kind = draw(st.sampled_from(["valid", "valid", "mutated", "mutated", "mutated", "json",
                                 "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        document: Any = draw(json_values | st.fixed_dictionaries(
            {"vmbspec_replay": st.just(1), "steps": st.lists(json_values, max_size=4)}))
        return _text(document, data)
    steps = draw(step_sequences())
    if draw(st.integers(0, 3)) == 0:
        steps = json.loads(json.dumps(draw(st.sampled_from(FOUND_BY_CHECK))))
        steps += draw(step_sequences())[1:]  # then some more steps on channel 0
    document = {"vmbspec_replay": 1, "found_on": "sim:wrap32", "profile": "default",
                "message": "m", "requirements": ["SEED-MDLOFFSET"], "steps": steps}
    if kind == "valid":
        return _text(document, data, corrupt=False)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 3]))):
        _mutate(document, data)
    return _text(document, data)


def check_replay_document(raw: bytes, folder: Path) -> str:
    """Load and replay ``raw`` on the simulator. Only these outcomes are allowed: refused by
    the loader (``ReplayFileError``), refused by the driver (``StepError``) or a replay that
    conforms (the simulator conforms, so any failure would blame it wrongly)."""
    path = folder / "replay.json"
    path.write_bytes(raw)
    try:
        document = load_replay(path)
    except ReplayFileError as error:
        message = str(error)
        assert message.startswith(f"{path}: ") and "\n" not in message, message
        return "refused by the loader"
    for step in document["steps"]:
        describe_step(step)  # what `vmbspec replay` prints before running them
    try:
        result = replay_steps(document["steps"], SimTarget, Profile.default())
    except StepError as error:
        assert "\n" not in str(error), str(error)
        return "refused by the driver"
    assert result.failure is None, result.failure
    return "conforms"


@pytest.fixture(scope="module")
def folder() -> Any:
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(raw=replay_documents())
def test_campaign_replay_files_give_a_clean_error_or_a_clean_result(
    raw: bytes, folder: Path
) -> None:
    check_replay_document(raw, folder)


def test_the_generated_sequences_reach_every_outcome(folder: Path) -> None:
    # A campaign whose inputs are all refused at the first byte would prove little.
    seen: set[str] = set()

    @seed(9)
    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(replay_documents())
    def run(raw: bytes) -> None:
        seen.add(check_replay_document(raw, folder))

    run()
    assert seen == {"refused by the loader", "refused by the driver", "conforms"}


def test_check_steps_accepts_what_the_stateful_run_and_the_cases_produce() -> None:
    from vmbspec.conformance.cases import load_cases

    for case in load_cases():
        check_steps(list(case.steps), case.id)


@pytest.mark.parametrize("factory", [SimTarget, _Fragile], ids=["robust sim", "fragile sim"])
def test_the_stateful_run_and_the_cases_never_break_a_caller_rule(factory: Any) -> None:
    # What the suite generates itself must pass the step schema and the caller's rules: a
    # StepError there would be reported as the suite's problem, never as the target's.
    report = run_conformance(factory, examples=60, seed=3)
    assert report.passed, report.summary()
    assert not getattr(report, "problems", None)
