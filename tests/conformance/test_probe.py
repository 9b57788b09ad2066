"""``vmbspec probe`` (issue 13, points 1 and 4): the reading a target follows, told by probes.

The matrix: for every reading and every option the simulator can follow
(``adapters.sim.READINGS``), the probe of ``sim:<that option>`` reports a set of options that
contains it and leaves out every option the probes say they tell apart from it (each probe's
``separates``, as combinations of the group's options for interacting readings); pairs of
non-default options on interacting readings are inferred too. The Rust core is probed through
isolation; a target that crashes on a probe call gets the crash as that reading's verdict and
the probe goes on; ``check --profile probe`` checks against the profile the probe found.

The probes are ``conformance/probe/calls.json`` (written by
``python -m vmbspec.spec.discriminate``); until it exists, a small hand-made fixture
(``probe_fixture.py``) stands in.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from vmbspec.adapters.sim import READINGS, SIM_DEFAULTS, SimTarget
from vmbspec.conformance.cli import main
from vmbspec.conformance.probe.infer import (
    UNSAFE,
    ProbeResult,
    infer_readings,
    probed_readings,
    reading_groups,
)
from vmbspec.conformance.probe.load import (
    CALLS_PATH,
    ProbeFileError,
    ProbeSet,
    load_probes,
    parse_probes,
)
from vmbspec.conformance.probe.report import exit_status, render_text, to_json, to_markdown
from vmbspec.conformance.targets import resolve_target
from vmbspec.spec.readings import Profile

sys.path.insert(0, str(Path(__file__).parent))
from probe_fixture import fixture

PROBES: ProbeSet = load_probes() if CALLS_PATH.exists() else parse_probes(fixture(), "fixture")
PROBED = set(probed_readings())

#: Every (reading, option) the simulator follows on a reading with more than one option.
OPTIONS = [(r, o) for r, options in READINGS.items() if r in PROBED for o in options]
#: Non-default options of interacting readings, together.
JOINT = ["A3=c+A5=b", "A1=d+A9=no-range", "A2=b+A3=c", "A1=c+A5=c"]


def _probe(target: str) -> ProbeResult:
    name, factory = resolve_target(target)
    return infer_readings(factory, PROBES, target=name, confirm=False)


def _sim_choices(items: str) -> dict[str, str]:
    """What ``sim:ITEMS`` follows on every probed reading (its defaults, then the items)."""
    choices = {r: SIM_DEFAULTS[r] for r in PROBED}
    for item in items.split("+"):
        reading, _, option = item.partition("=")
        choices[reading] = option
    return choices


def _separated(choices: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """(probe id, combination) for every combination a probe separates from ``choices``: the
    probe's readings at the other side of a pair whose one side is what the target follows.
    A probe's pairs hold with every reading outside its key at the default (the spec's search
    judged them so), so only a target at the default there is held to them."""
    found = []
    defaults = Profile.default().choices
    for probe in PROBES.probes:
        group = next(g for g in reading_groups(probed_readings()) if probe.readings[0] in g)
        if any(choices[r] != defaults[r] for r in group if r not in probe.readings):
            continue
        own = tuple(choices[r] for r in probe.readings)
        for first, second in probe.separates:
            for mine, other in ((first, second), (second, first)):
                if mine == own:
                    found.append((probe.id, {**choices,
                                             **dict(zip(probe.readings, other, strict=True))}))
    return found


def _check_inferred(result: ProbeResult, choices: dict[str, str]) -> None:
    by_reading = {r.reading: r for r in result.readings}
    for reading, option in choices.items():
        assert option in by_reading[reading].consistent, (reading, option, render_text(result))
    for probe_id, other in _separated(choices):
        for group in reading_groups(probed_readings()):
            combo = {r: other[r] for r in group}
            if combo == {r: choices[r] for r in group}:
                continue
            consistent = by_reading[group[0]].combinations
            assert combo not in consistent, (
                f"probe {probe_id} separates {combo} from what the target follows, yet the "
                f"probe found it consistent\n{render_text(result)}")


@pytest.mark.parametrize(("reading", "option"), OPTIONS, ids=[f"{r}={o}" for r, o in OPTIONS])
def test_matrix_single_option(reading: str, option: str) -> None:
    result = _probe(f"sim:{reading}={option}")
    _check_inferred(result, _sim_choices(f"{reading}={option}"))
    if (reading, option) in UNSAFE:
        assert exit_status(result) == 1
        assert "UNSAFE" in render_text(result)
        assert f"{reading}={option}" in to_json(result)["unsafe"]


@pytest.mark.parametrize("items", JOINT)
def test_matrix_joint_options(items: str) -> None:
    result = _probe(f"sim:{items}")
    _check_inferred(result, _sim_choices(items))


def test_the_probe_of_the_simulator_names_the_default_profile_and_confirms_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["probe", "--quiet", "--json", str(tmp_path / "p.json"),
                   "--report", str(tmp_path / "p.md"), "--examples", "10"]
                  + (["--calls", str(_fixture_file(tmp_path))] if not CALLS_PATH.exists()
                     else []))
    out = capsys.readouterr().out
    document = json.loads((tmp_path / "p.json").read_text())
    assert status == 0, out
    assert document["profile"] == "default" and document["exit_status"] == 0
    assert document["confirmation"]["passed"] is True
    assert "profile: default\n" in out
    assert {r["reading"] for r in document["readings"]} == {f"READ-{r}" for r in PROBED}
    markdown = (tmp_path / "p.md").read_text()
    assert "# vmbspec probe: sim" in markdown and "`default`" in markdown


def _fixture_file(tmp_path: Path) -> Path:
    path = tmp_path / "calls.json"
    path.write_text(json.dumps(fixture()))
    return path


def test_the_rust_core_is_probed_through_isolation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls = [] if CALLS_PATH.exists() else ["--calls", str(_fixture_file(tmp_path))]
    status = main(["probe", "--target", "rust", "--quiet", "--examples", "10",
                   "--json", str(tmp_path / "rust.json"), *calls])
    out = capsys.readouterr().out
    document = json.loads((tmp_path / "rust.json").read_text())
    assert status == 0, out
    assert document["target"].startswith("rust") and "isolated" in document["target"]
    assert document["profile"] == "default", out
    assert document["confirmation"]["passed"] is True


class _CrashesOnForce(SimTarget):
    """A simulator whose every send with FORCE_MDL_LENGTH crashes or hangs (as an isolated
    target's worker says: an exception whose ``kind`` is "crash" or "hang")."""

    kind = "crash"

    def send_with_external_mdl(self, *args: Any) -> int:
        if args[-1] & 0x2:
            error = RuntimeError(f"{self.kind}: segfault in VmbPacketSendWithExternalMdl")
            error.kind = self.kind  # type: ignore[attr-defined]
            raise error
        result: int = super().send_with_external_mdl(*args)
        return result


class _HangsOnForce(_CrashesOnForce):
    kind = "hang"


@pytest.mark.parametrize(("factory", "word"), [(_CrashesOnForce, "crashed"),
                                               (_HangsOnForce, "hung")])
def test_a_crash_on_a_probe_call_is_that_readings_verdict_and_the_probe_goes_on(
    factory: type[SimTarget], word: str
) -> None:
    result = infer_readings(factory, PROBES, target="crashes-on-force", confirm=False)
    by_reading = {r.reading: r for r in result.readings}
    crashed = by_reading["A3"]
    assert crashed.verdict == "crash" and crashed.consistent == ()
    assert f"{word} on a probe call" in crashed.text
    assert "VmbPacketSendWithExternalMdl(" in crashed.text
    assert any("segfault" in why for why in crashed.why)
    # The readings without FORCE probes are inferred as on the plain simulator.
    assert by_reading["A6"].consistent == ("a",) and by_reading["A6"].verdict == "follows"
    assert by_reading["A7"].ok and by_reading["A12"].ok
    assert exit_status(result) == 1
    text = render_text(result)
    assert "READ-A3" in text and word in text
    assert "crash" in to_markdown(result)


def test_check_with_profile_probe_checks_against_the_profile_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not CALLS_PATH.exists():
        monkeypatch.setattr("vmbspec.conformance.cli_probe.CALLS_PATH", _fixture_file(tmp_path))
        monkeypatch.setattr("vmbspec.conformance.probe.load.CALLS_PATH", _fixture_file(tmp_path))
    monkeypatch.setenv("VMBSPEC_DB", str(tmp_path / "db"))  # its own failure store
    status = main(["check", "--target", "sim:A9=no-range", "--profile", "probe", "--quiet",
                   "--no-proofs", "--examples", "20", "--replay-dir", str(tmp_path),
                   "--json", str(tmp_path / "check.json")])
    out = capsys.readouterr().out
    assert "profile: default+A9=no-range" in out
    report = json.loads((tmp_path / "check.json").read_text())
    assert report["profile"]["name"] == "default+A9=no-range", report["profile"]
    assert status == 0, out


def test_a_bad_probe_file_is_a_usage_error_naming_the_probe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = fixture()
    document["probes"][1]["separates"] = [["a+a", "q+a"]]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    assert main(["probe", "--calls", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "A1:chain" in err and "'q'" in err
    with pytest.raises(ProbeFileError, match="unknown reading"):
        parse_probes({"probes": [{"id": "x", "reading": "A99", "steps": []}]}, "doc")
    with pytest.raises(ProbeFileError, match="step 1"):
        parse_probes({"probes": [{"id": "x", "reading": "A1", "steps": [{"op": "fly"}]}]},
                     "doc")


class _CancelsOneWithCancelled(SimTarget):
    """Follows A12 any-error, except that a channel closed with one packet outstanding
    cancels it with STATUS_CANCELLED: the probe (one packet) cannot tell (cancel) from
    (any-error); the check of the default profile (several packets) can."""

    def __init__(self) -> None:
        super().__init__(readings={"A12": "any-error"})
        self._closing = False

    def disable_channel(self, channel: int) -> None:
        super().disable_channel(channel)
        self._closing = True

    def completions(self) -> list[tuple[int, int, bytes]]:
        calls = list(super().completions())
        if self._closing:
            self._closing = False
            if sum(status == 0xC0000001 for _, status, _ in calls) == 1:
                calls = [(p, 0xC0000120 if s == 0xC0000001 else s, d) for p, s, d in calls]
        return calls


def test_a_failed_confirmation_tries_the_options_the_probes_left_open() -> None:
    result = infer_readings(_CancelsOneWithCancelled, PROBES, target="cancels-one")
    a12 = {r.reading: r for r in result.readings}["A12"]
    assert a12.consistent == ("cancel", "any-error")
    assert result.profile.name == "default+A12=any-error"
    assert result.confirmation is not None and result.confirmation.passed
    assert [name for name, _ in result.rejected_profiles] == ["default"]
    assert a12.chosen == "any-error" and any("check under default failed" in w for w in a12.why)
    assert exit_status(result) == 0
    assert "also checked --profile default: FAIL" in render_text(result)


#: A library over the Rust core that reads one PFN past the MDL's array on every send with
#: FORCE_MDL_LENGTH: with guard pages, a crash in the worker process.
_OVERREAD_ON_FORCE = r"""
NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, void *Buffer, uint32_t BufferLength,
                                      MDL *ExternalDataMdl, uint32_t MdlOffset,
                                      uint32_t MdlLength, uint32_t Flags)
{
    if (ExternalDataMdl != NULL && (Flags & 0x2)) {
        uint64_t span = ((ExternalDataMdl->ByteOffset & 0xFFF)
                         + (uint64_t)ExternalDataMdl->ByteCount + 0xFFF) >> 12;
        volatile uint64_t sink = MmGetMdlPfnArray(ExternalDataMdl)[span];
        (void)sink;
    }
    return REAL(VmbPacketSendWithExternalMdl)(PacketObject, Buffer, BufferLength,
                                              ExternalDataMdl, MdlOffset, MdlLength, Flags);
}
"""


def _adapters_conftest() -> Any:
    """tests/adapters/conftest.py (its shim builder), loaded by path: tests is no package."""
    import importlib.util

    path = Path(__file__).parents[1] / "adapters" / "conftest.py"
    spec = importlib.util.spec_from_file_location("vmbspec_adapters_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_a_native_library_that_crashes_on_probe_calls_is_probed_through_isolation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    helpers = _adapters_conftest()
    from vmbspec.adapters.native import GUARD_AVAILABLE
    from vmbspec.adapters.rust.build import library_path

    if not GUARD_AVAILABLE:
        pytest.skip("guard pages need Linux")
    source = helpers.shim_source(_OVERREAD_ON_FORCE, ["VmbPacketSendWithExternalMdl"])
    library = helpers.compile_library(source, tmp_path / "liboverread.so", core=library_path())
    status = main(["probe", "--target", f"native:{library}", "--quiet", "--examples", "5",
                   "--json", str(tmp_path / "native.json")])
    out = capsys.readouterr().out
    document = json.loads((tmp_path / "native.json").read_text())
    by_reading = {r["reading"]: r for r in document["readings"]}
    assert status == 1, out
    assert by_reading["READ-A3"]["verdict"] == "crash", out
    assert "crashed on a probe call" in by_reading["READ-A3"]["text"]
    assert any("PFN" in why or "MDL" in why for why in by_reading["READ-A3"]["why"]), out
    assert by_reading["READ-A6"]["verdict"] == "follows"  # the probe went on
    assert by_reading["READ-A7"]["verdict"] in ("follows", "cannot-tell")


def test_a_target_that_follows_no_documented_reading_is_told_so_with_each_option() -> None:
    # zero-length-range: a resolved length of 0 is sent as a range of 0 bytes, which neither
    # option of READ-A9 allows (reject: rejected; no-range: a packet with no range).
    result = _probe("sim:zero-length-range")
    a9 = {r.reading: r for r in result.readings}["A9"]
    assert a9.verdict == "none" and a9.consistent == ()
    assert a9.text.startswith("follows no documented reading")
    assert [why.split(")")[0] for why in a9.why] == ["(reject", "(no-range"]
    assert "returned STATUS_SUCCESS; allowed: any NT_ERROR status" in a9.why[0]
    assert "VmbPacketSendWithExternalMdl(" in a9.why[0] and "WIRE-RANGE-NONEMPTY" in a9.why[1]
    assert exit_status(result) == 1
    document = to_json(result)
    entry = next(r for r in document["readings"] if r["reading"] == "READ-A9")
    assert entry["verdict"] == "none" and entry["consistent"] == []
    assert any(p["outcomes"] for p in entry["probes"])
    assert "FAIL" in to_markdown(result)
