"""Readings of the ambiguous sentences, and profiles that choose among them.

Each ambiguity A1-A14 of reference §5 is a requirement of kind ``reading`` in the catalog
(``READ-A1`` ... ``READ-A14``), with its options, the default the spec takes and the argument
for it. A :class:`Profile` picks one option per reading. The default profile takes every
default; the named profiles in :data:`PROFILES` switch single readings so that a target that
follows another reading can be identified and still checked. A profile can also be written as
``NAME+A4=c+A8=exact`` (see :func:`parse_profile`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from vmbspec.spec.arith import ArithReadings, ChainUse, ForcedBound, Origin, ZeroLength
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.errors import InvalidType, InvalidValue

READING_IDS: tuple[str, ...] = tuple(f"A{n}" for n in range(1, 15))


def _options(key: str) -> Mapping[str, str]:
    options = CATALOG.reading(key).options
    assert options is not None  # the catalog refuses a reading without options
    return options


def _shown(value: object) -> str:
    """A value from a caller, for a message: its type, and its text when that is short."""
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, (bool, float, type(None))) or (
        isinstance(value, int) and value.bit_length() <= 64
    ):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__


def _defaults() -> dict[str, str]:
    return {key: str(CATALOG.reading(key).default) for key in READING_IDS}


@dataclass(frozen=True)
class Profile:
    """One option for each reading A1-A14; validated against the catalog."""

    name: str
    choices: Mapping[str, str] = field(default_factory=_defaults)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidType(
                f"a profile's name is a non-empty string, not {_shown(self.name)}"
            )
        if not isinstance(self.choices, Mapping):
            raise InvalidType(
                "a profile's choices are a mapping of reading to option ({'A4': 'c'}), "
                f"not {type(self.choices).__name__}"
            )
        merged = _defaults()
        for key, option in self.choices.items():
            if not isinstance(key, str) or not isinstance(option, str):
                raise InvalidType(
                    f"a profile's choices map a reading name to an option name, both strings; "
                    f"found {_shown(key)}: {_shown(option)}"
                )
            if key not in merged:
                raise InvalidValue(f"unknown reading {key!r}; readings are A1..A14")
            options = _options(key)
            if option not in options:
                raise InvalidValue(
                    f"reading {key} has no option {option!r}; options: {', '.join(options)}"
                )
            merged[key] = option
        object.__setattr__(self, "choices", MappingProxyType(merged))

    @classmethod
    def default(cls) -> Profile:
        return cls("default")

    def with_choice(self, reading: str, option: str) -> Profile:
        if not isinstance(reading, str) or not isinstance(option, str):
            raise InvalidType(
                f"with_choice takes a reading and an option, both strings; found "
                f"{_shown(reading)}, {_shown(option)}"
            )
        name = f"{self.name}+{reading}={option}"
        return Profile(name, {**self.choices, reading: option})

    def __getitem__(self, reading: str) -> str:
        return self.choices[reading]

    def differs_from_default(self) -> dict[str, str]:
        defaults = _defaults()
        return {k: v for k, v in self.choices.items() if defaults[k] != v}

    @property
    def arith(self) -> ArithReadings:
        """The readings that change arithmetic, in the form ``spec.arith`` takes."""
        return ArithReadings(
            zero_length=ZeroLength(self.choices["A1"]),
            forced_bound=ForcedBound(self.choices["A3"]),
            origin=Origin(self.choices["A2"]),
            chain_use=ChainUse(self.choices["A5"]),
        )

    def as_json(self) -> dict[str, object]:
        return {"name": self.name, "readings": dict(self.choices)}


#: Named profiles: the default and one switch each for the readings a real target may take.
PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "default": Profile("default"),
        "exact-status": Profile("exact-status", {"A8": "exact"}),
        "flags-ignored": Profile("flags-ignored", {"A7": "ignore"}),
        "flags-rejected": Profile("flags-rejected", {"A7": "reject"}),
        "wait-caller-rule": Profile("wait-caller-rule", {"A4": "b"}),
        "wait-implicit": Profile("wait-implicit", {"A4": "c"}),
        "zero-length-first-mdl": Profile("zero-length-first-mdl", {"A1": "d"}),
        "zero-length-offset-zero": Profile("zero-length-offset-zero", {"A1": "c"}),
        "chain-first-mdl": Profile("chain-first-mdl", {"A5": "c"}),
        "force-clamp": Profile("force-clamp", {"A3": "c"}),
        "buffer-at-call": Profile("buffer-at-call", {"A11": "at-call"}),
        "unsafe-force-bytecount": Profile("unsafe-force-bytecount", {"A3": "b"}),
    }
)


def parse_profile(text: str) -> Profile:
    """``default``, a name from :data:`PROFILES`, or ``NAME+A4=c+A8=exact``."""
    if not isinstance(text, str):
        raise InvalidType(f"a profile is written as a string, not {type(text).__name__}")
    name, *overrides = text.strip().split("+")
    if name not in PROFILES:
        raise InvalidValue(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
    profile = PROFILES[name]
    for override in overrides:
        reading, sep, option = override.partition("=")
        if not sep:
            raise InvalidValue(f"profile override {override!r} is not of the form A4=c")
        profile = profile.with_choice(reading.strip(), option.strip())
    return profile
