"""The probes of ``vmbspec probe`` come from the spec (``spec.discriminate``), and the file
``conformance/probe/calls.json`` is what the spec finds today.

Checked here: the file is up to date (recomputed: Z3 and the lattice, about 10 s); every probe
separates the pairs it claims (re-evaluated with ``evaluate_send``) and a tampered one is
caught; every pair of options of every multi-option reading of the catalog is separated or
listed as unobservable, the unobservable ones with no separating call in the lattice; the A1
and A3 pairs are separated by Z3's calls; an option added to a reading in the catalog is
searched with no new code; the Z3 search refuses a vacuous shape; on the simulator following
an option, a probe passes under that option and fails under the other of each pair; and
``vmbspec requirements --kind reading`` says which options cannot be told apart.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

import vmbspec.spec.discriminate as discriminate
import vmbspec.spec.readings as readings
from vmbspec.spec.catalog import CATALOG, Catalog
from vmbspec.spec.proofs import discriminate as z3_discriminate
from vmbspec.spec.rules import evaluate_send

ROOT = Path(__file__).resolve().parents[2]
CALLS = ROOT / "conformance" / "probe" / "calls.json"


def _saved() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(CALLS.read_text())
    return document


@pytest.fixture(scope="module")
def generated() -> dict[str, Any]:
    return discriminate.generate()


def _catalog_pairs() -> list[tuple[str, str, str]]:
    """Every (reading, x, y) of the catalog, computed here without spec.discriminate."""
    pairs = []
    for requirement in CATALOG.requirements.values():
        options = list(requirement.options or ())
        if requirement.kind == "reading" and len(options) > 1:
            reading = requirement.id.removeprefix("READ-")
            pairs += [(reading, x, y) for x, y in itertools.combinations(options, 2)]
    return pairs


def _separated(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    found = set()
    for probe in document["probes"]:
        for a, b in probe["separates"]:
            found |= {(probe["reading"], a, b), (probe["reading"], b, a)}
    return found


# -- the file ---------------------------------------------------------------------------------


def test_the_probe_file_is_up_to_date(generated: dict[str, Any]) -> None:
    assert _saved() == json.loads(discriminate.render(generated)), (
        f"regenerate: {discriminate.GENERATED_BY}"
    )


def test_the_probe_file_is_read_by_the_probe_loader() -> None:
    from vmbspec.conformance.probe.load import load_probes

    probes = load_probes(CALLS)
    assert len(probes.probes) == len(_saved()["probes"])
    assert probes.generated_by == discriminate.GENERATED_BY


def test_every_probe_separates_the_pairs_it_claims() -> None:
    probes = _saved()["probes"]
    assert probes
    for probe in probes:
        assert discriminate.verify_probe(probe) == [], probe["id"]


def test_a_probe_claiming_a_pair_it_does_not_separate_is_caught() -> None:
    probe = next(p for p in _saved()["probes"] if p["id"].startswith("A3:"))
    wrong = copy.deepcopy(probe)
    wrong["separates"] = [["a", "b"], ["c", "c"]]  # an option never differs from itself
    assert discriminate.verify_probe(wrong)
    changed = copy.deepcopy(probe)
    (send,) = [s for s in changed["steps"] if s["op"] == "send"]
    send["flags"] = discriminate.WAIT  # without FORCE_MDL_LENGTH, A3 changes nothing
    assert discriminate.verify_probe(changed)


def test_every_pair_of_every_reading_is_separated_or_unobservable() -> None:
    document = _saved()
    separated = _separated(document)
    hidden = {(u["reading"], *u["options"]) for u in document["unobservable"]}
    hidden |= {(r, y, x) for r, x, y in hidden}
    for reading, x, y in _catalog_pairs():
        assert (reading, x, y) in separated or (reading, x, y) in hidden, (reading, x, y)
    for reading, x, y in hidden:
        assert (reading, x, y) not in separated
        assert reading in {r for r, _, _ in _catalog_pairs()}


def test_unobservable_pairs_have_no_separating_call_in_the_lattice() -> None:
    calls = discriminate.lattice_calls()[::3]  # a third of the lattice, every shape kind
    context = discriminate.fresh_context()
    for entry in _saved()["unobservable"]:
        group = discriminate.Group((entry["reading"],))
        x, y = (group.profile((o,)) for o in entry["options"])
        for call in calls:
            assert discriminate.share_outcome(
                evaluate_send(call, context, x), evaluate_send(call, context, y)
            ), (entry, call.describe())
        assert entry["why"]


def test_the_arithmetic_readings_are_separated_by_z3_calls() -> None:
    """Z3 finds a separating call for every pair of options of A1, A2, A3 and A5; the saved
    probes separate every pair, with Z3's call unless another reading's option could fool it
    and the lattice has one that cannot (discriminate.find_group)."""
    from vmbspec.spec.proofs.discriminate import separating_call

    saved = {
        (p["reading"], a, b): p["source"] for p in _saved()["probes"] for a, b in p["separates"]
    }
    assert set(discriminate.ARITH_READINGS) == {"A1", "A2", "A3", "A5"}
    for reading in discriminate.ARITH_READINGS:
        for x, y in itertools.combinations(discriminate.reading_options(reading), 2):
            assert separating_call(reading, x, y) is not None, (reading, x, y)
            assert (reading, x, y) in saved, (reading, x, y)
    assert {r for (r, _, _), source in saved.items() if source == "z3"} >= {"A1", "A2", "A5"}


def test_the_joint_groups_cover_every_combination() -> None:
    document = _saved()
    for readings_ in discriminate.JOINT:
        key = "+".join(readings_)
        options = list(itertools.product(*(discriminate.reading_options(r) for r in readings_)))
        separated = {
            frozenset((a, b)) for p in document["probes"] if p["reading"] == key
            for a, b in p["separates"]
        }
        # Most joint pairs are separated; those that are not are truly the same verdicts on
        # the lattice (for example A1 (d) and (a) once A5 (b) or (c) uses the first MDL only).
        group = discriminate.Group(readings_)
        calls = discriminate.lattice_calls()[::7]
        context = discriminate.fresh_context()
        for x, y in itertools.combinations(options, 2):
            if frozenset(("+".join(x), "+".join(y))) in separated:
                continue
            px, py = group.profile(x), group.profile(y)
            assert all(
                discriminate.share_outcome(evaluate_send(c, context, px),
                                           evaluate_send(c, context, py))
                for c in calls
            ), (key, x, y)


# -- the search is generic --------------------------------------------------------------------


def test_an_option_added_to_a_reading_in_the_catalog_is_searched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # spec.rules treats any A9 option other than "no-range" as rejecting: an option added to
    # the catalog alone is then a second name of (reject), told from (no-range) by the search.
    requirement = CATALOG.reading("A9")
    extended = replace(
        requirement,
        options=MappingProxyType({**dict(requirement.options or {}), "reject-too": "again"}),
    )
    catalog = Catalog(
        MappingProxyType({**CATALOG.requirements, requirement.id: extended}), CATALOG.seed
    )
    monkeypatch.setattr(readings, "CATALOG", catalog)
    monkeypatch.setattr(discriminate, "CATALOG", catalog)
    group = discriminate.Group(("A9",))
    assert ("reject-too",) in group.options()
    judge = discriminate.Judge(discriminate.lattice_calls())
    found = discriminate.find_group(judge, group, None)
    pairs = {(item.pair[0][0], item.pair[1][0]) for item in found}
    assert ("no-range", "reject-too") in pairs
    assert ("reject", "reject-too") not in pairs  # the same verdicts: unobservable
    probes = discriminate.probes_of(judge, found)
    assert all(discriminate.verify_probe(p) == [] for p in probes)


def test_the_z3_search_finds_a_call_for_any_two_arithmetic_options() -> None:
    call = z3_discriminate.separating_call("A3", "a", "c")
    assert call is not None
    context = discriminate.fresh_context()
    default = readings.Profile.default()
    first, second = (evaluate_send(call, context, default.with_choice("A3", o)) for o in "ac")
    assert not discriminate.share_outcome(first, second)
    # Two names of the same option: nothing to find, in any shape.
    assert z3_discriminate.separating_call("A3", "a", "a") is None


def test_the_z3_search_refuses_a_vacuous_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    # An in-line buffer no ring can hold: no call of any shape is accepted.
    monkeypatch.setattr(z3_discriminate, "BUFFER_LENGTH", 0xFFFF_FFFF)
    with pytest.raises(z3_discriminate.VacuousSearch):
        z3_discriminate.search_shape("A1", "a", "b", False, 1)


def test_emissions_share_where_either_completion_bit_conforms() -> None:
    accepted = discriminate.Emission(6, (), 24, None, True)
    assert accepted.overlaps(replace(accepted, completion_requested=True))
    assert not accepted.overlaps(replace(accepted, waits_for_completion=False))
    unknown = replace(accepted, ranges=((1, 0, (None,)),))
    assert unknown.overlaps(replace(accepted, ranges=((1, 0, (0x1000,)),)))
    assert not unknown.overlaps(replace(accepted, ranges=((2, 0, (0x1000,)),)))


# -- on the simulator -------------------------------------------------------------------------


def _unsafe(probe: dict[str, Any], group: discriminate.Group, option: tuple[str, ...]) -> bool:
    """The option sends PFNs past the MDL's array here (A3 (b)/(d)): the simulator puts a
    poison PFN there, which the driver does not take for the spec's unknown PFN."""
    if not probe["separates"] or probe["source"] == "sequence":
        return False
    call = discriminate.call_of_steps(probe["steps"])
    verdict = evaluate_send(call, discriminate.fresh_context(), group.profile(option))
    return any(None in r.pfns for o in verdict.alternatives for r in getattr(o, "ranges", ()))


def test_each_probe_passes_under_the_simulators_option_and_fails_under_the_other() -> None:
    from vmbspec.conformance.replay import replay_steps
    from vmbspec.conformance.targets import resolve_target

    runs = 0
    for probe in _saved()["probes"]:
        group = discriminate.group_of(probe["reading"])
        for a, b in probe["separates"]:
            for x, y in ((a, b), (b, a)):
                own, other = tuple(x.split("+")), tuple(y.split("+"))
                if _unsafe(probe, group, own):
                    continue
                target = "sim:" + "+".join(
                    f"{r}={o}" for r, o in zip(group.readings, own, strict=True)
                )
                _, factory = resolve_target(target)
                assert replay_steps(probe["steps"], factory, group.profile(own)).failure is None, (
                    probe["id"], target
                )
                failure = replay_steps(probe["steps"], factory, group.profile(other)).failure
                assert failure is not None, (probe["id"], target, y)
                runs += 1
    assert runs > 100


def test_sequence_probes_show_a_target_taking_the_wider_options_freedom() -> None:
    # They separate no pair, yet a simulator that uses the freedom of the wider option (reads
    # a queued buffer late, cancels with another error status, completes a no-wait packet when
    # written) is consistent with that option only; one keeping the narrower is consistent with
    # both.
    from vmbspec.conformance.replay import replay_steps
    from vmbspec.conformance.targets import resolve_target

    sequences = {p["reading"]: p for p in _saved()["probes"] if p["source"] == "sequence"}
    assert set(sequences) == {"A4", "A8", "A11", "A12"}
    expected = {
        ("A4", "a"): {"a", "b"}, ("A4", "b"): {"b"}, ("A4", "c"): {"c"},
        ("A11", "call-or-write"): {"call-or-write"},
        ("A11", "at-call"): {"call-or-write", "at-call"},
        ("A12", "cancel"): {"cancel", "any-error"}, ("A12", "any-error"): {"any-error"},
        ("A8", "exact"): {"any-error", "exact"},
    }
    for (reading, option), consistent in expected.items():
        _, factory = resolve_target(f"sim:{reading}={option}")
        group = discriminate.Group((reading,))
        found = {
            o for o in discriminate.reading_options(reading)
            if replay_steps(sequences[reading]["steps"], factory, group.profile((o,))).failure
            is None
        }
        assert found == consistent, (reading, option, found)


# -- vmbspec requirements ---------------------------------------------------------------------


def test_requirements_say_which_options_cannot_be_told_apart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from vmbspec.conformance.cli import main

    assert main(["requirements", "--kind", "reading"]) == 0
    out = capsys.readouterr().out
    assert "cannot tell (either) from (ignore) by observation" in out
    assert "cannot tell (call-or-write) from (at-call) by observation" in out
    assert main(["requirements", "--kind", "reading", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    notes = {r["id"]: r.get("unobservable") for r in document["requirements"]}
    assert notes["READ-A12"] and notes["READ-A12"][0]["options"] == ["cancel", "any-error"]
    assert notes["READ-A3"] == []
    assert "READ-A13" in notes and notes["READ-A13"] is None  # one option: nothing to tell


def test_only_the_declared_interacting_readings_can_fool_a_probe() -> None:
    # A probe of reading R may be fooled by a target that also follows another option of a
    # reading S (its verdicts under (x, S=o) and (y) then share an outcome) only where S is
    # declared to interact with R (spec.discriminate.JOINT): the probe infers those jointly.
    judge = discriminate.Judge([])
    checked = 0
    for probe in _saved()["probes"]:
        if not probe["separates"]:
            continue
        group = discriminate.group_of(probe["reading"])
        index = judge.add(discriminate.call_of_steps(probe["steps"]))
        partners = discriminate.interacting(group.readings)
        for a, b in probe["separates"]:
            x, y = (group.profile(tuple(o.split("+"))) for o in (a, b))
            sx, sy = judge.signature(index, x), judge.signature(index, y)
            for reading, option in discriminate.neighbours(group):
                if reading in partners:
                    continue
                nx = judge.signature(index, x.with_choice(reading, option))
                ny = judge.signature(index, y.with_choice(reading, option))
                assert not discriminate.signatures_share(nx, ny), (probe["id"], reading, option)
                assert not discriminate.signatures_share(nx, sy), (probe["id"], reading, option)
                assert not discriminate.signatures_share(ny, sx), (probe["id"], reading, option)
                checked += 1
    assert checked > 1000
    assert discriminate.interacting(("A9",)) == {"A1", "A5"}
