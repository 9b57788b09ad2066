"""Probe files from outside (``vmbspec probe --calls FILE``): a malformed one is refused with
one ``ProbeFileError`` naming the file, the probe and the field, never a traceback. And the
command line of ``vmbspec probe``: drawn values (the generators of ``cli_campaign.py``) end in
status 0, 1 or 2, never an internal error or a traceback.

The malformed-input campaign: the stored ``conformance/probe/calls.json`` mutated (wrong
types, huge integers, deep nesting, missing and unknown keys, unknown readings and options,
bad steps), random JSON and random bytes, through ``load_probes``; a file that loads has its
first probe run on the simulator, which must give an outcome. ``bench/malformed_probe.py``
runs the same generators (:func:`probe_documents`, :func:`check_probe_document`) for 10,000.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbspec.adapters.sim import SimTarget
from vmbspec.conformance import cli_probe
from vmbspec.conformance.probe.infer import ProbeResult, ProbeRunner, infer_readings
from vmbspec.conformance.probe.load import CALLS_PATH, ProbeFileError, load_probes
from vmbspec.spec.readings import Profile

BASE: dict[str, Any] = json.loads(CALLS_PATH.read_text())
SMALL: dict[str, Any] = {**BASE, "probes": BASE["probes"][:3]}

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4),
    max_leaves=12,
)
_ODD = st.sampled_from([None, -1, 2**64, 10**40, "", "A99", "a+b+c", [], {}, 1.5, True,
                        "x" * 5000, [[[[[[[[]]]]]]]]])
_FIELDS = ("id", "reading", "separates", "source", "why", "steps")


def _deep(levels: int) -> Any:
    value: Any = []
    for _ in range(levels):
        value = [value]
    return value


@st.composite
def _mutated(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(SMALL)
    probe = document["probes"][draw(st.integers(0, len(document["probes"]) - 1))]
    how = draw(st.sampled_from(["field", "drop", "extra", "step", "separates", "top", "deep"]))
    if how == "field":
        probe[draw(st.sampled_from(_FIELDS))] = draw(_ODD | _JSON)
    elif how == "drop":
        probe.pop(draw(st.sampled_from(_FIELDS)), None)
    elif how == "extra":
        probe[draw(st.text(max_size=6))] = draw(_JSON)
    elif how == "step":
        steps = probe["steps"]
        step = steps[draw(st.integers(0, len(steps) - 1))]
        step[draw(st.sampled_from(["op", "channel", "packet", "mdl", "flags", "mdl_offset",
                                   "ring_data_size", "buffer", "buffer_length"]))] = \
            draw(_ODD | _JSON)
    elif how == "separates":
        probe["separates"] = [[draw(st.text(max_size=6) | _ODD),
                               draw(st.text(max_size=6) | _ODD)]]
    elif how == "top":
        document[draw(st.sampled_from(["probes", "unobservable", "generated_by"]))] = \
            draw(_ODD | _JSON)
    else:
        probe["steps"] = _deep(draw(st.integers(60, 200)))
    return document


def probe_documents() -> st.SearchStrategy[Any]:
    """Valid, mutated and random probe documents, and random bytes."""
    return st.one_of(st.just(SMALL), _mutated(), _JSON, st.binary(max_size=64))


def check_probe_document(document: Any) -> str:
    """Write ``document`` to a file and load it; the outcome's name. Anything but a loaded
    file or a ``ProbeFileError`` raises (the campaign counts that as a crash)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "calls.json"
        if isinstance(document, bytes):
            path.write_bytes(document)
        else:
            path.write_text(json.dumps(document))
        try:
            probes = load_probes(path)
        except ProbeFileError as error:
            assert str(error).startswith(str(path)), error
            assert "\n" not in str(error)
            return "refused"
    if probes.probes:
        outcome = ProbeRunner(SimTarget).run(probes.probes[0], Profile.default())
        return f"loaded, first probe {outcome.kind}"
    return "loaded, no probe"


def test_the_stored_probes_load_and_each_names_its_readings() -> None:
    probes = load_probes()
    assert len(probes.probes) >= 10
    assert all(probe.readings and probe.steps for probe in probes.probes)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(probe_documents())
def test_malformed_probe_files_are_refused_cleanly(document: Any) -> None:
    assert check_probe_document(document)


# -- the command line ----------------------------------------------------------------------------


def _load_campaign() -> ModuleType:
    """cli_campaign.py beside this file (tests/ is no package; bench/ loads it the same way)."""
    name = "vmbspec_cli_campaign"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).with_name("cli_campaign.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_CAMPAIGN = _load_campaign()
_FOLDER = Path(tempfile.mkdtemp(prefix="vmbspec-probe-campaign-"))


def probe_argvs(folder: Path = _FOLDER) -> st.SearchStrategy[list[str]]:
    """``vmbspec probe`` command lines with one to four drawn options."""
    files = _CAMPAIGN.paths(folder)
    numbers = _CAMPAIGN.NUMBERS
    option = st.one_of(
        st.tuples(st.just("--target"), _CAMPAIGN.TARGETS),
        st.tuples(st.sampled_from(["--examples", "--seed", "--timeout"]), numbers),
        st.tuples(st.sampled_from(["--calls", "--json", "--report"]), files),
        st.sampled_from([("--isolate",), ("--no-isolate",), ("--no-guard",), ("--bogus",)]),
    )
    return st.lists(option, min_size=1, max_size=4).map(
        lambda parts: ["probe", "--quiet", *[word for part in parts for word in part]])


_CANNED: list[ProbeResult] = []


def _quick_inference(*_args: Any, **_kwargs: Any) -> ProbeResult:
    """The inference stood in by one made once on the simulator (a campaign is about the
    command line's values, not about targets)."""
    if not _CANNED:
        _CANNED.append(infer_readings(SimTarget, load_probes(), target="sim", confirm=False))
    return _CANNED[0]


@contextlib.contextmanager
def quick_probe() -> Iterator[None]:
    saved = cli_probe.infer_readings
    cli_probe.infer_readings = _quick_inference  # type: ignore[assignment]
    try:
        yield
    finally:
        cli_probe.infer_readings = saved  # type: ignore[assignment]


def check_probe_argv(argv: list[str]) -> str:
    """Run ``vmbspec ARGV`` (the inference stood in); its exit status, or raise if it was an
    internal error or a traceback."""
    with quick_probe():
        status, err = _CAMPAIGN.run_one(argv)
    assert status in (0, 1, 2), f"exit {status} for {argv!r}: {err[-500:]}"
    assert "Traceback (most recent call last)" not in err, err[-500:]
    return f"exit {status}"


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(probe_argvs())
def test_malformed_probe_command_lines_end_cleanly(argv: list[str]) -> None:
    assert check_probe_argv(argv)
