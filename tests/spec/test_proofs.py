"""The Z3 model: properties, cover checks, replay, boundary vectors, prove-your-own-check, CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
import z3

from vmbspec.conformance import cli_prove
from vmbspec.spec.arith import PY, ForcedBound, Segment, fits_ring, plan_external
from vmbspec.spec.constants import RING_TRAILER_SIZE
from vmbspec.spec.proofs import examples
from vmbspec.spec.proofs.boundaries import (
    BOUNDS,
    NOT_REPRESENTABLE,
    POSITIONS,
    check_case,
    find_case,
)
from vmbspec.spec.proofs.check import prove_check
from vmbspec.spec.proofs.properties import (
    PROPERTIES,
    PY_INTS,
    Property,
    concrete_inputs,
    plain_rule,
    property_named,
    replay,
    run_properties,
    run_property,
    with_unreachable_premise,
)
from vmbspec.spec.proofs.z3arith import Z3Arith, Z3IntArith

ROOT = Path(__file__).resolve().parents[2]
BOUNDARIES = ROOT / "conformance" / "cases" / "boundaries.json"


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return {r.name: r for r in run_properties()}


# -- the properties ---------------------------------------------------------------------------


def test_every_property_ends_as_expected(results: dict[str, Any]) -> None:
    failing = {n: (r.status, r.detail) for n, r in results.items() if not r.ok}
    assert not failing


def test_p1_to_p8_are_all_there_with_requirements_and_sentences() -> None:
    names = {p.name for p in PROPERTIES}
    assert {"P1", "P2", "P3", "P4", "P5", "P5-naive", "P6", "P7-b", "P8"} <= names
    for prop in PROPERTIES:
        assert prop.requirements and prop.sentence


@pytest.mark.parametrize("name", ["P5-naive", "P7-b", "P7-d"])
def test_counterexamples_are_replayed_by_the_executable_spec(
    results: dict[str, Any], name: str
) -> None:
    cex = results[name].counterexample
    assert cex is not None and cex.replayed
    assert "VmbPacketSendWithExternalMdl(" in cex.call and "MDL[0]" in cex.call


def test_a3b_counterexample_names_a_pfn_past_the_array(results: dict[str, Any]) -> None:
    cex = results["P7-b"].counterexample
    assert cex is not None and "past the PFN array" in cex.call


def test_every_cover_goal_was_checked(results: dict[str, Any]) -> None:
    assert "length exceeds ByteCount" in results["P1"].covers
    assert "a range in every MDL" in results["P3"].covers
    assert "premise reachable (no FORCE, 3 MDLs)" in results["P6"].covers


def test_an_unreachable_premise_is_caught_as_vacuous() -> None:
    result = run_property(with_unreachable_premise(property_named("P1")))
    assert result.status == "vacuous"
    assert not result.ok


def test_a_deliberately_wrong_claim_yields_a_counterexample() -> None:
    """P1 over the unsafe reading A3 (b) is P7-b: expecting a proof of it must fail."""
    from dataclasses import replace

    wrong = replace(property_named("P7-b"), expected="proved")
    result = run_property(wrong)
    assert result.status == "counterexample" and not result.ok


def test_replay_rejects_an_input_that_is_not_a_counterexample() -> None:
    inputs = concrete_inputs({"mdl0.ByteCount": 0x1000, "MdlLength": 0x10, "Flags": 3})
    reproduced, why = replay(property_named("P7-b"), inputs)
    assert not reproduced and "NOT reproduced" in why


def test_p5_over_64_bit_words_agrees_with_the_integer_engine() -> None:
    """The bridge: the bit-vector obligations (BVAddNoOverflow ...) hold for one MDL."""
    from dataclasses import replace

    from vmbspec.spec.proofs.properties import Shape

    prop = replace(property_named("P5"), engine="bv64", shapes=(Shape(True, 1), Shape(False, 1)))
    assert run_property(prop, timeout_s=60).status == "proved"


# -- the arithmetic adapters ------------------------------------------------------------------


def test_z3arith_records_guarded_obligations() -> None:
    a = Z3Arith(z3.Context())
    x, y = a.uint("x"), a.uint("y")
    a.cases(a.ule(y, x), lambda: a.sub(x, y), lambda: a.lit(0))
    (obligation,) = a.obligations
    solver = z3.Solver(ctx=a.ctx)
    solver.add(z3.Not(obligation.as_bool()))
    assert solver.check() == z3.unsat  # the guard makes the subtraction exact


def test_z3arith_unguarded_subtraction_can_wrap() -> None:
    a = Z3Arith(z3.Context())
    a.sub(a.uint("x"), a.uint("y"))
    solver = z3.Solver(ctx=a.ctx)
    solver.add(z3.Not(a.no_wrap()))
    assert solver.check() == z3.sat


def test_int_engine_masks_match_python() -> None:
    a = Z3IntArith(z3.Context())
    for value in (0, 1, 0xFFF, 0x1000, 0x1234_5678, 0xFFFF_FFFF):
        for mask in (0xFFF, ~0xFFF, ~7, 0xFFFF_FFFF, 0x2):
            got = z3.simplify(a.band(a.lit(value), mask)).as_long()
            assert got == PY.band(value, mask), (value, mask)


def test_plain_rule_agrees_with_the_spec_on_samples() -> None:
    for bo, bc, off, length, forced in [
        (0x100, 0xF00, 0, 0x1000, True),
        (0x100, 0xF00, 0, 0xF01, True),
        (0, 0, 0, 0, False),
        (0xFFF, 1, 1, 0, False),
    ]:
        spec = plan_external(PY, [Segment(bo, bc)], off, length, forced).in_bounds
        assert spec == plain_rule(PY_INTS, [(bo, bc)], off, length, forced)


def test_fits_ring_matches_spec_rules() -> None:
    """fits_ring restates READ-A13 as spec.rules applies it; the two must agree."""
    rules = pytest.importorskip("vmbspec.spec.rules")
    from vmbspec.spec.call import SendCall
    from vmbspec.spec.mdl import MdlChain, MdlSegment

    for ring, buffer_length in [(0x1000, 4033), (0x1000, 4041), (0x1000, 4049), (0x2000, 8)]:
        chain = MdlChain.of([MdlSegment.with_pages(0, 1)])
        call = SendCall(bytes(buffer_length), buffer_length, chain, 0, 1, 1)
        verdict = rules.evaluate_send(call, rules.SendContext.fresh(ring))
        plan = plan_external(PY, [Segment(0, 1)], 0, 1, False)
        from vmbspec.spec.arith import packet_size

        size = packet_size(PY, plan.ranges, buffer_length)
        assert (verdict.accepted is not None) == fits_ring(PY, size.data_offset, size.total, ring)
        assert size.total + RING_TRAILER_SIZE >= ring or verdict.accepted is not None


# -- boundary vectors -------------------------------------------------------------------------


def _saved_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads(BOUNDARIES.read_text())
    return cases


def test_every_saved_boundary_case_is_where_it_says() -> None:
    for case in _saved_cases():
        assert check_case(case) == [], case["id"]


def test_the_boundary_file_covers_every_bound_and_position() -> None:
    ids = {case["id"] for case in _saved_cases()}
    for bound in BOUNDS:
        for position in POSITIONS:
            if (bound.name, position) not in NOT_REPRESENTABLE:
                assert f"{bound.name}-{position}" in ids


def test_boundary_cases_have_the_fields_the_suite_reads() -> None:
    keys = {"id", "requirements", "bound", "position", "mdl", "mdl_offset", "mdl_length",
            "flags", "buffer_length", "ring_data_size", "expected"}
    for case in _saved_cases():
        assert keys <= case.keys()
        assert case["expected"] in ("accept", "reject")


def test_the_force_bound_outside_case_catches_reading_a3b() -> None:
    (case,) = [c for c in _saved_cases() if c["id"] == "force-bound-outside"]
    bo, bc, _ = case["mdl"][0]
    unsafe = plan_external(
        PY, [Segment(bo, bc)], case["mdl_offset"], case["mdl_length"], True,
        readings=__import__("vmbspec.spec.arith", fromlist=["ArithReadings"]).ArithReadings(
            forced_bound=ForcedBound.ROUNDED_BYTECOUNT
        ),
    )
    assert case["expected"] == "reject" and unsafe.in_bounds


def test_a_freshly_found_case_is_checkable() -> None:
    case = find_case(BOUNDS[0], "outside")
    assert case is not None and check_case(case) == []


def test_a_tampered_case_is_detected() -> None:
    case = dict(_saved_cases()[0])
    case["mdl_length"] += 1
    assert check_case(case)


# -- prove your own check ---------------------------------------------------------------------


def test_doc_example_overflow_safe_check_is_equivalent() -> None:
    assert prove_check(examples.overflow_safe_check).verdict == "equivalent"


def test_doc_example_naive_32bit_check_is_unsafe_with_a_concrete_call() -> None:
    result = prove_check(examples.naive_32bit_check)
    assert result.verdict == "unsafe" and result.values is not None
    assert result.values["MdlOffset"] + result.values["MdlLength"] > 0xFFFF_FFFF
    assert "VmbPacketSendWithExternalMdl(" in result.call


def test_a_stricter_check_is_reported_as_safe_but_stricter() -> None:
    def no_zero_length(a: Any, bo: Any, bc: Any, off: Any, length: Any, forced: bool) -> Any:
        return a.all_of(a.not_(a.eq(length, a.lit(0))),
                        examples.overflow_safe_check(a, bo, bc, off, length, forced))

    assert prove_check(no_zero_length).verdict == "safe-but-stricter"


def test_the_doc_shows_exactly_the_example_functions() -> None:
    doc = (ROOT / "docs" / "prove-your-own-check.md").read_text()
    source = (ROOT / "spec" / "proofs" / "examples.py").read_text()
    for line in ("end32 = a.band(a.add(mdl_offset, length), 0xFFFFFFFF)",
                 "return a.all_of(a.ult(a.lit(0), length), a.ule(mdl_offset, bound), "
                 "a.ule(length, room))"):
        assert line in doc
        assert line.replace("0xFFFFFFFF", "UINT32_MASK") in source or line in source


# -- the CLI ----------------------------------------------------------------------------------


def _args(**overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {"json": None, "check": None, "timeout": 10.0, "quiet": True,
                              "extended": False, "engine": None}
    values.update(overrides)
    return argparse.Namespace(**values)


def test_cli_json_lists_each_property(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "prove.json"
    assert cli_prove.run(_args(json=str(out))) == 0
    data = json.loads(out.read_text())
    names = [p["name"] for p in data["properties"]]
    assert {"P1", "P2", "P3", "P4", "P5", "P6", "P7-b", "P8"} <= set(names)
    for entry in data["properties"]:
        assert {"name", "requirements", "status", "expected", "seconds"} <= entry.keys()
        assert entry["status"] in ("proved", "counterexample", "unknown", "vacuous")
    table = capsys.readouterr().out
    assert "property" in table and "P8" in table


@pytest.mark.parametrize(
    "check",
    ["no.such.module:f", "vmbspec.spec.proofs.examples:missing",
     "vmbspec.spec.proofs.examples:UINT32_MASK", "not-a-spec",
     "tests.spec.test_proofs:raising_check"],
)
def test_cli_bad_check_is_one_line_and_exit_2(
    check: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_prove.run(_args(check=check)) == 2
    err = capsys.readouterr().err
    assert err.startswith("vmbspec prove: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def raising_check(a: Any, *args: Any) -> Any:
    raise RuntimeError("this check is broken")


def test_cli_check_exit_status_follows_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_prove.run(_args(check="vmbspec.spec.proofs.examples:overflow_safe_check")) == 0
    assert cli_prove.run(_args(check="vmbspec.spec.proofs.examples:naive_32bit_check")) == 1
    assert "unsafe" in capsys.readouterr().out


def test_cli_fails_when_an_expected_result_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import replace

    import vmbspec.spec.proofs.properties as properties

    wrong: tuple[Property, ...] = (replace(property_named("P7-b"), expected="proved"),)
    monkeypatch.setattr(properties, "PROPERTIES", wrong)
    assert cli_prove.run(_args()) == 1
