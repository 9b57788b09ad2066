"""Tests of spec.catalog: the shipped catalog, the consistency checks, and its seed coverage.

The last group reads the seed document itself and checks that every sentence of its prose is
listed under ``[[seed]]`` in ``spec/requirements.toml``, so that a rule sentence can never be
left without a requirement ID (or an explicit reason why it needs none).
"""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from vmbspec.spec.catalog import CATALOG, KINDS, Catalog, parse_catalog
from vmbspec.spec.errors import CatalogError

#: The seed page ships with the repository (docs/seed/SOURCE.md says where it comes from).
SEED_PATH = (
    Path(__file__).resolve().parents[2]
    / "docs"
    / "seed"
    / "FN_VMB_PACKET_SEND_WITH_EXTERNAL_MDL.txt"
)
#: The SHA-256 of the page the catalog was reviewed against (also in docs/seed/SOURCE.md).
SEED_SHA256 = "00e49e7d42adbef53c8b06f26c421b46e408379c538aa5696fc8249eef6e88c9"


# ---------------------------------------------------------------------------------------------
# The shipped catalog
# ---------------------------------------------------------------------------------------------


def test_shipped_catalog_loads_with_requirements_and_seed_sentences() -> None:
    assert isinstance(CATALOG, Catalog)
    assert len(CATALOG.requirements) > 20
    assert len(CATALOG.seed) > 10


def test_shipped_catalog_ids_are_unique_and_keyed_by_their_id() -> None:
    ids = CATALOG.ids()
    assert len(ids) == len(set(ids))
    for requirement_id, requirement in CATALOG.requirements.items():
        assert requirement.id == requirement_id
        assert requirement.kind in KINDS


def test_shipped_catalog_file_has_no_duplicate_ids() -> None:
    # parse_catalog would refuse duplicates; this reads the raw file, independently of it.
    import tomllib
    from importlib import resources

    text = resources.files("vmbspec.spec").joinpath("requirements.toml").read_text(encoding="utf-8")
    raw_ids = [entry["id"] for entry in tomllib.loads(text)["requirement"]]
    assert len(raw_ids) == len(set(raw_ids))
    assert set(raw_ids) == set(CATALOG.ids())


def test_require_returns_known_ids_and_raises_for_unknown_ones() -> None:
    assert CATALOG.require("SEED-WAIT", "READ-A4") == ("SEED-WAIT", "READ-A4")
    with pytest.raises(CatalogError, match="SEED-NOPE"):
        CATALOG.require("SEED-WAIT", "SEED-NOPE")
    with pytest.raises(CatalogError):
        CATALOG.require("read-a4")


def test_exactly_fourteen_readings_a1_to_a14() -> None:
    readings = sorted(
        (r.id for r in CATALOG.requirements.values() if r.kind == "reading"),
        key=lambda rid: int(rid.removeprefix("READ-A")),
    )
    assert readings == [f"READ-A{n}" for n in range(1, 15)]


def test_every_reading_has_options_a_default_among_them_and_a_reason() -> None:
    for n in range(1, 15):
        reading = CATALOG.reading(f"A{n}")
        assert reading.options, reading.id
        assert reading.default in reading.options, reading.id
        assert reading.why, reading.id


def test_reading_defaults_follow_the_reference_recommendations() -> None:
    # Reference §5 recommends (a) for A1-A6 and A4; the others name their option.
    expected = {"A1": "a", "A2": "a", "A3": "a", "A4": "a", "A5": "a", "A6": "a"}
    for key, option in expected.items():
        assert CATALOG.reading(key).default == option, key


def test_every_seed_sentence_is_covered_or_explained() -> None:
    for entry in CATALOG.seed:
        assert entry.covered_by or entry.informational, entry.sentence
        for requirement_id in entry.covered_by:
            assert requirement_id in CATALOG.requirements


def test_as_json_shows_reading_fields_only_for_readings() -> None:
    reading = CATALOG.requirements["READ-A4"].as_json()
    assert reading["default"] == "a" and "b" in reading["options"] and reading["why"]
    must = CATALOG.requirements["SEED-WAIT"].as_json()
    assert set(must) == {"id", "kind", "source", "text"}


# ---------------------------------------------------------------------------------------------
# parse_catalog refuses inconsistent catalogs
# ---------------------------------------------------------------------------------------------


def minimal() -> dict[str, Any]:
    return {
        "requirement": [
            {"id": "SEED-X", "kind": "MUST", "source": "seed", "text": "Do X."},
            {"id": "FACT-Y", "kind": "fact", "source": "ref", "text": "Y holds."},
            {
                "id": "READ-A1",
                "kind": "reading",
                "source": "ref",
                "text": "Ambiguous.",
                "default": "a",
                "why": "Because.",
                "options": {"a": "one", "b": "two"},
            },
        ],
        "seed": [
            {"sentence": "Do X.", "covered_by": ["SEED-X", "READ-A1"]},
            {"sentence": "Notice.", "informational": "no behaviour"},
        ],
    }


def test_minimal_catalog_parses() -> None:
    catalog = parse_catalog(minimal())
    assert catalog.ids() == ("SEED-X", "FACT-Y", "READ-A1")
    assert catalog.reading("A1").options == {"a": "one", "b": "two"}
    assert [s.covered_by for s in catalog.seed] == [("SEED-X", "READ-A1"), ()]


def mutated(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(minimal())
    change(data)
    return data


def _duplicate(d: dict[str, Any]) -> None:
    d["requirement"].append(dict(d["requirement"][1]))


def _unknown_kind(d: dict[str, Any]) -> None:
    d["requirement"][1]["kind"] = "SHOULD"


def _no_options(d: dict[str, Any]) -> None:
    del d["requirement"][2]["options"]


def _empty_options(d: dict[str, Any]) -> None:
    d["requirement"][2]["options"] = {}


def _bad_default(d: dict[str, Any]) -> None:
    d["requirement"][2]["default"] = "z"


def _no_why(d: dict[str, Any]) -> None:
    del d["requirement"][2]["why"]


def _options_on_fact(d: dict[str, Any]) -> None:
    d["requirement"][1]["options"] = {"a": "x"}


def _empty_text(d: dict[str, Any]) -> None:
    d["requirement"][0]["text"] = "  "


def _no_source(d: dict[str, Any]) -> None:
    del d["requirement"][1]["source"]


def _uncovered_seed(d: dict[str, Any]) -> None:
    d["seed"].append({"sentence": "Orphan."})


def _unknown_citation(d: dict[str, Any]) -> None:
    d["seed"][0]["covered_by"] = ["SEED-X", "SEED-GHOST"]


def _untied_seed_requirement(d: dict[str, Any]) -> None:
    d["requirement"].append({"id": "SEED-Z", "kind": "MUST", "source": "seed", "text": "Z."})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_duplicate, "duplicate requirement ID FACT-Y"),
        (_unknown_kind, "kind 'SHOULD' is not one of"),
        (_no_options, "READ-A1: a reading needs its options"),
        (_empty_options, "READ-A1: a reading needs its options"),
        (_bad_default, "default 'z' is not one of its options"),
        (_no_why, "'why' must be a non-empty string"),
        (_options_on_fact, "only readings have options"),
        (_empty_text, "'text' must be a non-empty string"),
        (_no_source, "'source' must be a non-empty string"),
        (_uncovered_seed, "'Orphan.'.*no requirement and no reason"),
        (_unknown_citation, "unknown requirement SEED-GHOST"),
        (_untied_seed_requirement, "SEED-Z is not tied to any sentence of the seed"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] or None,
)
def test_parse_catalog_rejects_an_inconsistent_catalog(change: Any, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(mutated(change))


def test_non_seed_requirement_need_not_be_tied_to_a_seed_sentence() -> None:
    # FACT-Y is cited by no seed sentence in minimal(); only SEED-* requirements must be.
    assert "FACT-Y" in parse_catalog(minimal()).requirements


# ---------------------------------------------------------------------------------------------
# The seed document against the catalog's [[seed]] list
# ---------------------------------------------------------------------------------------------

#: Lines of the Parameters .. Remarks part that are not prose, and why:
#: * the section headings themselves ("Parameters", "Return Value", "Remarks");
#: * "Important", the label of a call-out box inside Remarks (no sentence of its own);
#: * "Value Meaning", the column titles of the flag table;
#: * the parameter names standing alone on a line (PacketObject, Buffer, ...): sub-headings,
#:   taken from the Syntax block below rather than typed in, so a renamed parameter is noticed;
#: * the flag names in the first column of the table (VMBUS_CHANNEL_FORMAT_FLAG_...): labels,
#:   their meaning is the prose on the following lines.
#: Everything else between "Parameters" and "Requirements" must be listed sentence by sentence.
#: The Syntax block (C code), the "Requirements" table (client version, header name) and
#: "See Also" (a link) come before or after that part and are no prose of the function.
HEADINGS = {"Parameters", "Return Value", "Remarks", "Important"}
TABLE_HEADER = "Value Meaning"
FLAG_NAME = re.compile(r"VMBUS_CHANNEL_FORMAT_FLAG_[A-Z_]+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def seed_lines() -> list[str]:
    if not SEED_PATH.is_file():
        pytest.fail(
            f"the seed document is missing: expected it at {SEED_PATH} "
            "(docs/seed/ in the repository)"
        )
    return [line.strip() for line in SEED_PATH.read_text(encoding="utf-8").splitlines()]


def test_seed_page_is_the_one_the_catalog_was_reviewed_against() -> None:
    digest = hashlib.sha256(SEED_PATH.read_bytes()).hexdigest()
    assert digest == SEED_SHA256, (
        "docs/seed/ holds a different seed page: review spec/requirements.toml against the new "
        "text, then update SEED_SHA256 here and in docs/seed/SOURCE.md"
    )
    source = (SEED_PATH.parent / "SOURCE.md").read_text(encoding="utf-8")
    assert SEED_SHA256 in source


def section(lines: list[str], start: str, stop: str) -> list[str]:
    assert start in lines and stop in lines, f"the seed lost its {start!r} or {stop!r} heading"
    return lines[lines.index(start) + 1 : lines.index(stop)]


def parameter_names(lines: list[str]) -> set[str]:
    syntax = "\n".join(section(lines, "Syntax", "Parameters"))
    names = set(re.findall(r"^\s*(?:__\w+\s+)?\w+\s+(\w+)\s*[,)]", syntax, re.MULTILINE))
    assert names == {
        "PacketObject", "Buffer", "BufferLength", "ExternalDataMdl",
        "MdlOffset", "MdlLength", "Flags",
    }, names
    return names


def sentences(prose_lines: list[str]) -> list[str]:
    return [s for line in prose_lines for s in SENTENCE_END.split(line) if s]


def rule_prose(lines: list[str]) -> list[str]:
    excluded = HEADINGS | parameter_names(lines) | {TABLE_HEADER}
    body = section(lines, "Parameters", "Requirements")
    return [
        line
        for line in body
        if line and line not in excluded and not FLAG_NAME.fullmatch(line)
    ]


def catalog_sentences() -> set[str]:
    return {entry.sentence for entry in CATALOG.seed}


def test_sentence_splitter_splits_after_a_full_stop_only() -> None:
    assert sentences(["Flags. The following are pertinent flags:"]) == [
        "Flags.",
        "The following are pertinent flags:",
    ]
    assert sentences(["Provided by the Vmbkmcl.sys bus driver."]) == [
        "Provided by the Vmbkmcl.sys bus driver."
    ]


def test_every_sentence_of_parameters_flags_return_value_and_remarks_is_in_the_catalog() -> None:
    lines = seed_lines()
    found = sentences(rule_prose(lines))
    # Not vacuous: each part of the document contributed sentences.
    for part, stop in [
        ("Parameters", "Return Value"),
        ("Return Value", "Remarks"),
        ("Remarks", "Requirements"),
    ]:
        part_lines = set(section(lines, part, stop))
        assert any(s in line for s in found for line in part_lines), part
    assert any("page boundary" in s for s in found)  # the flag table's prose is included
    missing = [s for s in found if s not in catalog_sentences()]
    assert not missing, (
        "seed sentences without a [[seed]] entry in spec/requirements.toml: "
        + "; ".join(repr(s) for s in missing)
    )


def test_every_sentence_of_the_summary_and_notice_is_in_the_catalog() -> None:
    lines = seed_lines()
    intro = [line for line in lines[1 : lines.index("Syntax")] if line]
    # The publication notice is wrapped in [ ]; the brackets are not part of its sentences.
    prose = [line.removeprefix("[").removesuffix("]") for line in intro]
    found = sentences(prose)
    assert len(found) == 4
    missing = [s for s in found if s not in catalog_sentences()]
    assert not missing, missing


def test_every_catalog_seed_sentence_occurs_verbatim_in_the_seed() -> None:
    text = " ".join(seed_lines())
    stale = [s for s in catalog_sentences() if s not in text]
    assert not stale, f"[[seed]] sentences not in the seed document: {stale}"


def test_every_rule_sentence_of_the_seed_is_covered_by_a_requirement_id() -> None:
    by_sentence = {entry.sentence: entry for entry in CATALOG.seed}
    rule_sentences = [
        s for s in sentences(rule_prose(seed_lines())) if s in by_sentence
    ]
    uncovered = [
        s
        for s in rule_sentences
        if not by_sentence[s].covered_by and not by_sentence[s].informational
    ]
    assert not uncovered
    # The normative sentences (every MUST of the flag table) carry a SEED-* ID.
    for needle in ("must be set", "page boundary", "only the first MDL", "must be copied"):
        (entry,) = [by_sentence[s] for s in rule_sentences if needle in s]
        assert any(rid.startswith("SEED-") for rid in entry.covered_by), needle


def test_covered_by_written_as_a_string_is_refused_with_a_clear_message() -> None:
    data = minimal()
    data["seed"][0]["covered_by"] = "SEED-X"
    with pytest.raises(CatalogError, match="must be a list of requirement IDs"):
        parse_catalog(data)
