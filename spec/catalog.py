"""The requirement catalog (``spec/requirements.toml``), loaded and checked.

Like python-statemachine refusing a machine with unreachable states, the catalog refuses to
load when it is inconsistent: a duplicate ID, an entry without a quoted sentence or source, a
kind it does not know, a reading without options or with a default that is not an option, or a
seed sentence that is neither covered by known IDs nor marked informational. Rules elsewhere in
``spec/`` cite IDs through :meth:`Catalog.require`, which fails on an unknown ID, so a rule
cannot cite a requirement that does not exist.

The file is package data; reading it is the only file access in ``spec/``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

from vmbspec.spec.errors import CatalogError

KINDS = ("MUST", "fact", "contract", "reading")


@dataclass(frozen=True)
class Requirement:
    id: str
    kind: str
    source: str
    text: str
    default: str | None = None
    why: str | None = None
    options: Mapping[str, str] | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "text": self.text,
        }
        if self.kind == "reading":
            data["default"] = self.default
            data["options"] = dict(self.options or {})
            data["why"] = self.why
        return data


@dataclass(frozen=True)
class SeedSentence:
    sentence: str
    covered_by: tuple[str, ...]
    informational: str | None


@dataclass(frozen=True)
class Catalog:
    requirements: Mapping[str, Requirement]
    seed: tuple[SeedSentence, ...]

    def require(self, *ids: str) -> tuple[str, ...]:
        """``ids`` unchanged, after checking that each is in the catalog."""
        for requirement_id in ids:
            if requirement_id not in self.requirements:
                raise CatalogError(f"unknown requirement ID {requirement_id!r}")
        return ids

    def reading(self, key: str) -> Requirement:
        """The reading ``A1`` .. ``A14``."""
        return self.requirements[f"READ-{key}"]

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self.requirements.values())

    def ids(self) -> tuple[str, ...]:
        return tuple(self.requirements)


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(f"{where}: '{key}' must be a non-empty string")
    return value


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    """Build and check a catalog from the parsed TOML document."""
    requirements: dict[str, Requirement] = {}
    for index, entry in enumerate(data.get("requirement", [])):
        where = f"requirement #{index + 1}"
        requirement_id = _text(entry, "id", where)
        where = f"requirement {requirement_id}"
        if requirement_id in requirements:
            raise CatalogError(f"duplicate requirement ID {requirement_id}")
        kind = _text(entry, "kind", where)
        if kind not in KINDS:
            raise CatalogError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
        options = entry.get("options")
        default = entry.get("default")
        if kind == "reading":
            if not isinstance(options, dict) or not options:
                raise CatalogError(f"{where}: a reading needs its options")
            if default not in options:
                raise CatalogError(f"{where}: default {default!r} is not one of its options")
            _text(entry, "why", where)
        elif options is not None or default is not None:
            raise CatalogError(f"{where}: only readings have options and a default")
        requirements[requirement_id] = Requirement(
            id=requirement_id,
            kind=kind,
            source=_text(entry, "source", where),
            text=_text(entry, "text", where),
            default=default,
            why=entry.get("why"),
            options=MappingProxyType(dict(options)) if options else None,
        )
    seed: list[SeedSentence] = []
    for index, entry in enumerate(data.get("seed", [])):
        where = f"seed sentence #{index + 1}"
        sentence = _text(entry, "sentence", where)
        raw_covered = entry.get("covered_by", [])
        if not isinstance(raw_covered, list) or not all(isinstance(i, str) for i in raw_covered):
            raise CatalogError(f"{where}: 'covered_by' must be a list of requirement IDs")
        covered = tuple(raw_covered)
        informational = entry.get("informational")
        if not covered and not informational:
            raise CatalogError(f"{where} ({sentence!r}) has no requirement and no reason")
        for requirement_id in covered:
            if requirement_id not in requirements:
                raise CatalogError(f"{where} cites unknown requirement {requirement_id}")
        seed.append(SeedSentence(sentence, covered, informational))
    cited = {rid for s in seed for rid in s.covered_by}
    for requirement in requirements.values():
        if requirement.id.startswith("SEED-") and requirement.id not in cited:
            raise CatalogError(f"{requirement.id} is not tied to any sentence of the seed")
    return Catalog(MappingProxyType(requirements), tuple(seed))


def load_catalog() -> Catalog:
    text = resources.files("vmbspec.spec").joinpath("requirements.toml").read_text(encoding="utf-8")
    return parse_catalog(tomllib.loads(text))


CATALOG = load_catalog()
