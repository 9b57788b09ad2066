"""The case catalog: data files of step lists with the verdict inside.

A case is ``{"id", "requirements", "description", "steps"}`` and optionally ``"profile"``; a
send step may carry ``"expect": "accepted" | "rejected"``, the verdict the case's author (or
the Z3 model) expects under the default profile, or under the readings the case pins
(``"profile": {"A3": "b"}``, the others at their defaults). The driver always checks the
target against the spec *under the active profile*: that is the oracle. The expectations are
a check of the catalog itself: under the profile they were written for, the spec must agree
with them, so a case whose verdict drifts from the spec is reported rather than ignored; under
any other profile the spec's verdict for that profile stands, and they are not consulted.

Two kinds of file live in ``conformance/cases/``:

* ``*.cases.json``: hand-written cases, one or more per requirement;
* ``boundaries.json``: the Z3 boundary vectors (``spec.proofs.boundaries``), each an input at,
  just inside or just outside one bound, converted here into a case.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from vmbspec.conformance.driver import Step, StepError
from vmbspec.spec.errors import InvalidType, InvalidValue
from vmbspec.spec.readings import Profile

PFN_BASE = 0x5_0000


@dataclass(frozen=True)
class Case:
    id: str
    requirements: tuple[str, ...]
    description: str
    steps: tuple[Step, ...]
    source: str
    #: The profile the case's ``expect`` verdicts were written for.
    profile: Profile = field(default_factory=Profile.default)

    def expectations_hold(self, active: Profile) -> bool:
        """The case's ``expect`` verdicts apply under ``active``: it picks the same options as
        the profile they were written for."""
        return dict(active.choices) == dict(self.profile.choices)


def _case_from_json(entry: dict[str, Any], source: str) -> Case:
    try:
        pins = entry.get("profile", {})
        profile = Profile.default()
        for reading, option in dict(pins).items():
            profile = profile.with_choice(reading, option)
        return Case(
            id=str(entry["id"]),
            requirements=tuple(entry.get("requirements", ())),
            description=str(entry.get("description", "")),
            steps=tuple(entry["steps"]),
            source=source,
            profile=profile,
        )
    except (KeyError, TypeError, ValueError, InvalidType, InvalidValue) as error:
        raise StepError(f"{source}: malformed case {entry!r:.80}: {error}") from error


def _pfns(count: int, base: int) -> list[int]:
    return list(range(base, base + count))


def boundary_case(entry: dict[str, Any], source: str) -> Case:
    """A Z3 boundary vector as a case: a channel, a packet, the send, the host taking it."""
    try:
        mdl = entry.get("mdl")
        chain = None if mdl is None else [
            [int(bo), int(bc), _pfns(int(n), PFN_BASE + 0x100 * i)]
            for i, (bo, bc, n) in enumerate(mdl)
        ]
        buffer_length = int(entry.get("buffer_length", 0))
        steps: list[Step] = [
            {"op": "create_channel", "ring_data_size": int(entry.get("ring_data_size", 0x10000))},
            {"op": "open", "channel": 0},
            {"op": "allocate", "channel": 0},
            {
                "op": "send",
                "packet": 0,
                "buffer": ("5a" * buffer_length) if buffer_length else None,
                "buffer_length": buffer_length,
                "mdl": chain,
                "mdl_offset": int(entry["mdl_offset"]),
                "mdl_length": int(entry["mdl_length"]),
                "flags": int(entry.get("flags", 1)),
                "expect": {"accept": "accepted", "reject": "rejected"}[entry["expected"]],
            },
            {"op": "host_take", "channel": 0},
        ]
        return Case(
            id=f"z3:{entry['id']}",
            requirements=tuple(entry.get("requirements", ())),
            description=f"{entry.get('bound', '?')}: {entry.get('position', '?')}",
            steps=tuple(steps),
            source=source,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise StepError(f"{source}: malformed boundary vector {entry!r:.80}: {error}") from error


def load_file(path: Path | Any, name: str) -> list[Case]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StepError(f"{name} is not valid JSON: {error}") from error
    if name.endswith(".cases.json"):
        return [_case_from_json(entry, name) for entry in document["cases"]]
    entries = document["cases"] if isinstance(document, dict) else document
    return [boundary_case(entry, name) for entry in entries]


def load_cases() -> list[Case]:
    """Every case shipped in ``conformance/cases/``, in file order."""
    folder = resources.files("vmbspec.conformance").joinpath("cases")
    cases: list[Case] = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            cases += load_file(entry, entry.name)
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise StepError(f"duplicate case id {case.id}")
        seen.add(case.id)
    return cases
