"""Tests of spec.readings: profiles choose one option per reading, validated by the catalog."""

from __future__ import annotations

import pytest

from vmbspec.spec.arith import ArithReadings, ForcedBound, ZeroLength
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.errors import InvalidValue
from vmbspec.spec.readings import PROFILES, READING_IDS, Profile, parse_profile


def catalog_defaults() -> dict[str, str]:
    return {
        r.id.removeprefix("READ-"): r.default
        for r in CATALOG.requirements.values()
        if r.kind == "reading"
    }


def test_reading_ids_are_a1_to_a14() -> None:
    assert tuple(f"A{n}" for n in range(1, 15)) == READING_IDS


def test_default_profile_takes_every_catalog_default() -> None:
    profile = Profile.default()
    assert profile.name == "default"
    assert dict(profile.choices) == catalog_defaults()
    assert profile.differs_from_default() == {}


def test_profile_fills_unnamed_readings_with_defaults() -> None:
    profile = Profile("p", {"A4": "c"})
    assert profile["A4"] == "c"
    assert {k: v for k, v in profile.choices.items() if k != "A4"} == {
        k: v for k, v in catalog_defaults().items() if k != "A4"
    }
    assert profile.differs_from_default() == {"A4": "c"}


@pytest.mark.parametrize("key", ["A15", "A0", "READ-A4", "a4", ""])
def test_unknown_reading_is_rejected_with_a_clear_message(key: str) -> None:
    with pytest.raises(InvalidValue, match=r"unknown reading .*readings are A1\.\.A14"):
        Profile("p", {key: "a"})


def test_unknown_option_is_rejected_naming_the_options() -> None:
    with pytest.raises(InvalidValue, match=r"reading A4 has no option 'z'; options: a, b, c"):
        Profile("p", {"A4": "z"})


def test_profile_choices_are_read_only() -> None:
    profile = Profile.default()
    with pytest.raises(TypeError):
        profile.choices["A4"] = "b"  # type: ignore[index]


def test_parse_profile_applies_overrides_in_order() -> None:
    profile = parse_profile("default+A4=c+A8=exact")
    assert profile["A4"] == "c" and profile["A8"] == "exact"
    assert profile.differs_from_default() == {"A4": "c", "A8": "exact"}
    assert profile.name == "default+A4=c+A8=exact"


def test_parse_profile_starts_from_a_named_profile() -> None:
    profile = parse_profile(" exact-status+A7=reject ")
    assert profile.differs_from_default() == {"A8": "exact", "A7": "reject"}
    assert parse_profile("default+A4=a+A4=b")["A4"] == "b"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense", "unknown profile 'nonsense'"),
        ("default+A4", "not of the form A4=c"),
        ("default+A99=a", "unknown reading 'A99'"),
        ("default+A4=q", "has no option 'q'"),
    ],
)
def test_parse_profile_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message):
        parse_profile(text)


# Each named profile and the single switch it makes, from the module's intent.
EXPECTED_SWITCHES = {
    "default": {},
    "exact-status": {"A8": "exact"},
    "flags-ignored": {"A7": "ignore"},
    "flags-rejected": {"A7": "reject"},
    "wait-caller-rule": {"A4": "b"},
    "wait-implicit": {"A4": "c"},
    "zero-length-first-mdl": {"A1": "d"},
    "zero-length-offset-zero": {"A1": "c"},
    "chain-first-mdl": {"A5": "c"},
    "force-clamp": {"A3": "c"},
    "buffer-at-call": {"A11": "at-call"},
    "unsafe-force-bytecount": {"A3": "b"},
}


def test_named_profiles_are_valid_and_switch_what_their_name_says() -> None:
    assert set(PROFILES) == set(EXPECTED_SWITCHES)
    for name, profile in PROFILES.items():
        assert profile.name == name
        assert profile.differs_from_default() == EXPECTED_SWITCHES[name], name
        for key, option in profile.choices.items():
            assert option in CATALOG.reading(key).options
        assert parse_profile(name) == profile


ZERO = {
    "a": ZeroLength.REST_AFTER_OFFSET,
    "b": ZeroLength.BYTECOUNT_FROM_OFFSET,
    "c": ZeroLength.ERROR_UNLESS_OFFSET_ZERO,
    "d": ZeroLength.FIRST_MDL_ONLY,
}
FORCED = {
    "a": ForcedBound.PAGE_ROUNDED_SPAN,
    "b": ForcedBound.ROUNDED_BYTECOUNT,
    "c": ForcedBound.SILENT_CLAMP,
    "d": ForcedBound.NOT_ENFORCED,
}


@pytest.mark.parametrize("a1", sorted(ZERO))
@pytest.mark.parametrize("a3", sorted(FORCED))
def test_arith_maps_a1_and_a3_to_the_arith_readings(a1: str, a3: str) -> None:
    assert set(CATALOG.reading("A1").options) == set(ZERO)
    assert set(CATALOG.reading("A3").options) == set(FORCED)
    profile = Profile("p", {"A1": a1, "A3": a3})
    assert profile.arith == ArithReadings(zero_length=ZERO[a1], forced_bound=FORCED[a3])


def test_default_profile_arith_is_the_default_arith_readings() -> None:
    assert Profile.default().arith == ArithReadings()


def test_with_choice_names_the_switch_and_keeps_the_rest() -> None:
    profile = PROFILES["exact-status"].with_choice("A4", "b")
    assert profile.name == "exact-status+A4=b"
    assert profile.differs_from_default() == {"A8": "exact", "A4": "b"}


def test_as_json_lists_every_reading() -> None:
    data = PROFILES["wait-implicit"].as_json()
    assert data["name"] == "wait-implicit"
    readings = data["readings"]
    assert isinstance(readings, dict)
    assert set(readings) == set(READING_IDS) and readings["A4"] == "c"
