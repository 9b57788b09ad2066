"""Reading the probes: ``conformance/probe/calls.json``, checked where it enters.

The file is written by ``python -m vmbspec.spec.discriminate --write conformance/probe/calls.json``
(the Z3 search for the arithmetic readings, the lattice and the lifecycle sequences for the
others). Its shape::

    {"generated_by": "python -m vmbspec.spec.discriminate --write conformance/probe/calls.json",
     "probes": [{"id": "A3:a|c:z3-1", "reading": "A3", "separates": [["a", "c"]],
                 "source": "z3", "why": "one line", "steps": [...]}],
     "unobservable": [{"reading": "A11", "options": ["call-or-write", "at-call"],
                       "why": "..."}]}

A probe's ``reading`` is one reading (``"A3"``) or interacting readings joined by ``+``
(``"A1+A5"``, whose options are then written joined the same way, ``"b+a"``); its ``steps``
are a complete sequence in the step format of ``conformance.steps`` (``vmbspec replay`` runs
them). The file may be edited by hand or come from another version, so it is read with the
bounds of ``conformance.inputs`` and every field is checked here: a bad file is one
:class:`ProbeFileError` naming the file, the probe and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmbspec.conformance.driver import Step
from vmbspec.conformance.inputs import (
    InputError,
    load_json_file,
    require_dict,
    require_list,
    require_str,
)
from vmbspec.conformance.steps import check_steps
from vmbspec.spec.catalog import CATALOG

#: Where the probes live (beside this module, not under conformance/cases/).
CALLS_PATH = Path(__file__).with_name("calls.json")
#: The file is tens of kilobytes; a few megabytes is far more than any search writes.
MAX_CALLS_BYTES = 8 * 1024 * 1024
#: Probes in one file, and characters in a text field.
MAX_PROBES = 10_000
MAX_TEXT = 4096


class ProbeFileError(InputError):
    """``calls.json`` cannot be read or has the wrong shape (an ``InputError``): the message
    names the file, the probe and the field."""


@dataclass(frozen=True)
class Probe:
    """One discriminating call or sequence."""

    id: str
    #: The readings it is about: ``("A3",)``, or ``("A1", "A5")`` for a joint key.
    readings: tuple[str, ...]
    #: Option pairs (joint options as tuples, one option per reading) whose verdicts for these
    #: steps have no outcome in common.
    separates: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    source: str
    why: str
    steps: tuple[Step, ...]

    @property
    def key(self) -> str:
        return "+".join(self.readings)


@dataclass(frozen=True)
class Unobservable:
    """Options of a reading that no observation at the interface tells apart."""

    reading: str
    options: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class ProbeSet:
    probes: tuple[Probe, ...]
    unobservable: tuple[Unobservable, ...]
    generated_by: str
    path: str


def reading_options(reading: str) -> tuple[str, ...]:
    """The options of ``reading`` (``"A3"``) in the catalog's order."""
    return tuple(CATALOG.reading(reading).options or ())


def _readings(value: Any, where: str) -> tuple[str, ...]:
    text = require_str(value, where, 64)
    readings = tuple(part.strip() for part in text.split("+"))
    for reading in readings:
        if f"READ-{reading}" not in CATALOG.requirements:
            raise InputError(f"{where}: unknown reading {reading!r} (readings are A1..A14)")
    if len(set(readings)) != len(readings):
        raise InputError(f"{where}: {text!r} names a reading twice")
    return readings


def _joint_option(value: Any, readings: tuple[str, ...], where: str) -> tuple[str, ...]:
    text = require_str(value, where, 256)
    options = tuple(part.strip() for part in text.split("+"))
    if len(options) != len(readings):
        raise InputError(f"{where}: {text!r} is not one option for each of "
                         f"{'+'.join(readings)}")
    for reading, option in zip(readings, options, strict=True):
        if option not in reading_options(reading):
            raise InputError(f"{where}: reading {reading} has no option {option!r}; its "
                             f"options: {', '.join(reading_options(reading))}")
    return options


def _probe(value: Any, where: str) -> Probe:
    item = require_dict(value, where)
    for name in ("id", "reading", "steps"):
        if name not in item:
            raise InputError(f"{where}: field {name}: missing")
    ident = require_str(item["id"], f"{where}: field id", 200)
    where = f"{where} ({ident})"
    readings = _readings(item["reading"], f"{where}: field reading")
    separates = []
    pairs = require_list(item.get("separates", []), f"{where}: field separates", 1000)
    for number, pair in enumerate(pairs):
        at = f"{where}: field separates[{number}]"
        pair = require_list(pair, at, 2)
        if len(pair) != 2:
            raise InputError(f"{at}: a pair of options, not {len(pair)} item(s)")
        first, second = (_joint_option(option, readings, at) for option in pair)
        separates.append((first, second))
    steps = check_steps(item["steps"], where)
    return Probe(
        id=ident,
        readings=readings,
        separates=tuple(separates),
        source=require_str(item.get("source", ""), f"{where}: field source", 64),
        why=require_str(item.get("why", ""), f"{where}: field why", MAX_TEXT),
        steps=tuple(steps),
    )


def _unobservable(value: Any, where: str) -> Unobservable:
    item = require_dict(value, where)
    if "reading" not in item:
        raise InputError(f"{where}: field reading: missing")
    readings = _readings(item["reading"], f"{where}: field reading")
    if len(readings) != 1:
        raise InputError(f"{where}: field reading: one reading, not {'+'.join(readings)}")
    options = tuple(
        _joint_option(option, readings, f"{where}: field options[{number}]")[0]
        for number, option in enumerate(
            require_list(item.get("options", []), f"{where}: field options", 64)
        )
    )
    why = require_str(item.get("why", ""), f"{where}: field why", MAX_TEXT)
    return Unobservable(readings[0], options, why)


def parse_probes(document: Any, where: str) -> ProbeSet:
    """The :class:`ProbeSet` of a parsed ``calls.json``; :class:`ProbeFileError` if wrong."""
    try:
        root = require_dict(document, where)
        if "probes" not in root:
            raise InputError(f"{where}: field probes: missing (the list of probes)")
        probes = tuple(
            _probe(item, f"{where}: probes[{number}]")
            for number, item in enumerate(
                require_list(root["probes"], f"{where}: field probes", MAX_PROBES)
            )
        )
        seen: set[str] = set()
        for probe in probes:
            if probe.id in seen:
                raise InputError(f"{where}: probe id {probe.id!r} is given twice")
            seen.add(probe.id)
        unobservable = tuple(
            _unobservable(item, f"{where}: unobservable[{number}]")
            for number, item in enumerate(
                require_list(root.get("unobservable", []), f"{where}: field unobservable",
                             1000)
            )
        )
        generated_by = require_str(root.get("generated_by", ""),
                                   f"{where}: field generated_by", MAX_TEXT)
    except ProbeFileError:
        raise
    except InputError as error:
        raise ProbeFileError(str(error)) from error
    return ProbeSet(probes, unobservable, generated_by, where)


def load_probes(path: Path | str = CALLS_PATH) -> ProbeSet:
    """The probes of ``path`` (default :data:`CALLS_PATH`), read with bounds and checked."""
    where = str(path)
    if not Path(path).exists():
        raise ProbeFileError(
            f"{where}: no probes (write them with `python -m vmbspec.spec.discriminate --write "
            f"{CALLS_PATH.relative_to(CALLS_PATH.parents[2])}`)"
        )
    try:
        document = load_json_file(Path(path), "probe file", MAX_CALLS_BYTES)
    except InputError as error:
        raise ProbeFileError(str(error)) from error
    return parse_probes(document, where)
