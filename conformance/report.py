"""Reports of a conformance run: per requirement, as a table, JSON, JUnit XML and Markdown.

Each requirement of the catalog gets one status:

* ``fail``: a failure cites it;
* ``pass``: steps of this run exercised it and nothing failed against it;
* ``uncovered``: nothing in this run exercised it; the reason says why (a rule for the caller,
  a capability the target lacks, a reading no call depended on).

Alongside, ``proved`` lists the Z3 properties that cover a requirement, when proofs were run,
and the coverage section lists the lifecycle transitions visited (against every transition of
the spec's tables), flag combinations and boundary classes hit.

Every report also says what the run did not do: the checks skipped because the target does
not declare a capability (``runner.CAPABILITY_CHECKS``), and, for a run cut short because
the target became unreachable, why and which cases (and whether the stateful run) were not
run. A step names packets and channels by their index in the step list (``packet #0``, the
first allocated), never by the target's handles, which the target's own messages use.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbspec.conformance.driver import Step
from vmbspec.conformance.runner import (
    ConformanceReport,
    describe_not_run,
    skipped_checks,
    uncovered_reason,
)
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.lifecycle import CHANNEL_TRANSITIONS, PACKET_TRANSITIONS


def requirement_rows(report: ConformanceReport) -> list[dict[str, Any]]:
    failing = report.failing_requirements()
    proved: dict[str, list[str]] = {}
    for proof in report.proofs:
        if proof.get("ok") and proof.get("status") == "proved":
            for requirement in proof.get("requirements", ()):
                proved.setdefault(requirement, []).append(str(proof.get("name")))
    rows = []
    for requirement in CATALOG.requirements.values():
        steps = report.evidence.steps[requirement.id]
        cases = report.evidence.cases[requirement.id]
        if requirement.id in failing:
            status, reason = "fail", ""
        elif steps:
            status, reason = "pass", ""
        else:
            status, reason = "uncovered", uncovered_reason(requirement.id, report)
        rows.append({
            "id": requirement.id,
            "kind": requirement.kind,
            "status": status,
            "steps": steps,
            "cases": cases,
            "proved": proved.get(requirement.id, []),
            "reason": reason,
        })
    return rows


def transition_coverage(report: ConformanceReport) -> dict[str, Any]:
    every = [f"packet:{s.value}--{e.value}" for s, e in PACKET_TRANSITIONS]
    every += [f"channel:{s.value}--{e.value}" for s, e in CHANNEL_TRANSITIONS]
    visited = report.evidence.transitions
    return {
        "visited": {name: visited[name] for name in every if visited[name]},
        "not_visited": [name for name in every if not visited[name]],
    }


def versions() -> dict[str, str]:
    """The versions that decide what a seeded run generates."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("vmbspec", "hypothesis"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "unknown"
    return found


def to_json(report: ConformanceReport) -> dict[str, Any]:
    rows = requirement_rows(report)
    return {
        "target": report.target,
        "profile": report.profile.as_json(),
        "seed": report.seed,
        "reproducible": report.reproducible,
        "steps_digest": report.steps_digest,
        "cases_ended_early": dict(report.evidence.ended_early),
        "workers": report.workers,
        "known_failures": list(report.known),
        "generation": report.generation,
        "shrink_seconds": report.shrink_seconds,
        "versions": versions(),
        "verdict": report.verdict,
        "passed": report.passed,
        "interrupted": report.interrupted,
        "stopped": report.stopped or None,
        "not_run": list(report.not_run),
        "skipped_for_capabilities": skipped_checks(report),
        "seconds": round(report.seconds, 3),
        "steps": report.evidence.total_steps,
        "cases": report.cases_run,
        "examples": report.examples,
        "examples_requested": report.examples_requested,
        "shrink_runs": report.shrink_runs,
        "capabilities": sorted(report.capabilities),
        "requirements": {
            row["id"]: {k: v for k, v in row.items() if k != "id"} for row in rows
        },
        "failures": [failure.as_json() for failure in report.failures],
        "problems": [problem.as_json() for problem in report.problems],
        "coverage": {
            "transitions": transition_coverage(report),
            "flag_combinations": dict(report.evidence.flag_combinations),
            "boundaries": dict(report.evidence.boundaries),
            "outcomes": dict(report.evidence.outcomes),
        },
        "proofs": report.proofs,
    }


def describe_step(step: Step) -> str:
    """One readable line for a step of a failing sequence. ``packet #N`` and ``channel #N``
    are indices in the step list (the Nth allocated or created, from 0), not handles."""
    op = step.get("op")
    if op == "send":
        buffer = step.get("buffer")
        shown = "NULL" if buffer is None else f"<{step.get('buffer_length', 0)} bytes>"
        mdl = step.get("mdl")
        chain = "NULL" if mdl is None else "[" + ", ".join(
            f"{{ByteOffset={bo:#x}, ByteCount={bc:#x}}}" for bo, bc, _ in mdl
        ) + "]"
        return (
            f"VmbPacketSendWithExternalMdl(packet #{step.get('packet')}, {shown}, "
            f"{step.get('buffer_length', 0):#x}, {chain}, {step.get('mdl_offset', 0):#x}, "
            f"{step.get('mdl_length', 0):#x}, {step.get('flags', 0):#x})"
        )
    if op == "create_channel":
        return f"create channel with a {step.get('ring_data_size')}-byte ring"
    if op == "allocate":
        return f"VmbPacketAllocate(channel #{step.get('channel')})"
    if op == "free":
        return f"VmbPacketFree(packet #{step.get('packet')})"
    if op == "open":
        return f"open channel #{step.get('channel')}"
    if op == "disable":
        return f"disable channel #{step.get('channel')}"
    if op == "host_take":
        return f"host takes the next packet of channel #{step.get('channel')}"
    if op == "host_complete":
        return (
            f"host completes packet #{step.get('packet')}'s transaction with status "
            f"{int(step.get('status', 0)):#010x} and {len(step.get('data', '')) // 2} bytes"
        )
    if op == "mutate_buffer":
        return f"caller changes the in-line buffer of packet #{step.get('packet')}"
    return json.dumps(step)


def _not_done_markdown(report: ConformanceReport) -> list[str]:
    """The Markdown sections of what the run did not do: cut short, capabilities lacking."""
    lines: list[str] = []
    if report.stopped:
        lines += ["## The run was cut short", "", report.stopped, "",
                  f"Not run: {describe_not_run(report.not_run)}.", ""]
        lines += [f"- {item}" for item in report.not_run]
        if report.not_run:
            lines.append("")
    skipped = skipped_checks(report)
    if skipped:
        lines += ["## Checks skipped for want of a capability", ""]
        lines += [f"- `{name}` (not declared): {checks}" for name, checks in skipped.items()]
        lines.append("")
    return lines


def to_markdown(report: ConformanceReport) -> str:
    rows = requirement_rows(report)
    lines = [
        f"# vmbspec conformance report: {report.target}",
        "",
        f"- verdict: **{report.verdict}**"
        + (" (the run was interrupted: this report holds what ran before)"
           if report.interrupted else ""),
        f"- profile: `{report.profile.name}`"
        + (f" ({', '.join(f'{k}={v}' for k, v in report.profile.differs_from_default().items())})"
           if report.profile.differs_from_default() else ""),
        f"- {report.cases_run} catalog cases, {report.examples} stateful examples, "
        f"{report.evidence.total_steps} steps, {report.seconds:.1f} s"
        + (f", seed {report.seed}" if report.seed is not None else ""),
        f"- capabilities: {', '.join(sorted(report.capabilities)) or 'none'}",
    ]
    if report.stopped:
        lines.append(f"- **run cut short**: {report.stopped}")
    lines.append("")
    if report.failures:
        lines += ["## Failures", ""]
        for number, failure in enumerate(report.failures, start=1):
            blamed = ", ".join(failure.requirements) or (
                "none (a protocol error of the harness, not a verdict on the driver)"
                if failure.kind == "protocol-error" else "-"
            )
            lines += [
                f"### {number}. {failure.source} ({failure.kind})",
                "",
                f"Requirements: {blamed}",
                "",
                f"{failure.message}",
                "",
            ]
            if failure.replay_file:
                lines += [f"Replay: `vmbspec replay {failure.replay_file}`", ""]
            lines += ["Minimal steps:", ""]
            lines += [f"{i}. {describe_step(s)}" for i, s in enumerate(failure.steps, start=1)]
            lines.append("")
    if report.problems:
        lines += ["## Problems of vmbspec (not the target's)", ""]
        lines += [f"- {p.source} ({p.kind}): {p.message}" for p in report.problems]
        lines.append("")
    lines += _not_done_markdown(report)
    lines += [
        "## Requirements",
        "",
        "| requirement | kind | status | steps | cases | proved | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['id']} | {row['kind']} | {row['status']} | {row['steps']} | "
            f"{row['cases']} | {', '.join(row['proved'])} | {row['reason']} |"
        )
    coverage = transition_coverage(report)
    lines += ["", "## Coverage of the spec", "", "Lifecycle transitions visited:", ""]
    lines += [f"- `{name}`: {count}" for name, count in coverage["visited"].items()]
    if coverage["not_visited"]:
        lines += ["", "Not visited: " + ", ".join(f"`{n}`" for n in coverage["not_visited"])]
    lines += ["", "Flag combinations:", ""]
    lines += [f"- `{k}`: {v}" for k, v in sorted(report.evidence.flag_combinations.items())]
    lines += ["", "Boundary classes:", ""]
    lines += [f"- `{k}`: {v}" for k, v in sorted(report.evidence.boundaries.items())]
    return "\n".join(lines) + "\n"


def to_junit(report: ConformanceReport) -> str:
    rows = requirement_rows(report)
    failures_by_id: dict[str, list[str]] = {}
    for failure in report.failures:
        for requirement in failure.requirements:
            text = failure.message + "\n" + "\n".join(describe_step(s) for s in failure.steps)
            failures_by_id.setdefault(requirement, []).append(text)
    unblamed = sum(1 for failure in report.failures if not failure.requirements)
    cut = 1 if report.stopped and not report.interrupted else 0
    suite = ET.Element(
        "testsuite",
        name=f"vmbspec:{report.target}",
        tests=str(len(rows) + unblamed + cut + len(report.problems)
                  + (1 if report.interrupted else 0)),
        failures=str(sum(1 for r in rows if r["status"] == "fail") + unblamed + cut),
        skipped=str(sum(1 for r in rows if r["status"] == "uncovered")),
        time=f"{report.seconds:.3f}",
        errors=str(len(report.problems) + (1 if report.interrupted else 0)),
    )
    for row in rows:
        case = ET.SubElement(suite, "testcase", classname="vmbspec.requirements", name=row["id"])
        if row["status"] == "fail":
            element = ET.SubElement(case, "failure", message=f"{row['id']} failed")
            element.text = "\n\n".join(failures_by_id.get(row["id"], []))
        elif row["status"] == "uncovered":
            ET.SubElement(case, "skipped", message=row["reason"])
    for number, problem in enumerate(report.problems, start=1):
        case = ET.SubElement(suite, "testcase", classname="vmbspec.problems",
                             name=f"problem-{number}")
        element = ET.SubElement(case, "error", message=f"{problem.kind} in {problem.source}")
        element.text = problem.message
    for number, failure in enumerate(report.failures, start=1):
        if failure.requirements:
            continue  # reported under the requirements it names
        # A failure blamed on no requirement (a harness's protocol error): a test of its own.
        case = ET.SubElement(suite, "testcase", classname="vmbspec.target",
                             name=f"failure-{number}")
        element = ET.SubElement(case, "failure", message=f"{failure.kind} in {failure.source}")
        element.text = failure.message + "\n" + "\n".join(
            describe_step(s) for s in failure.steps)
    if report.interrupted:
        case = ET.SubElement(suite, "testcase", classname="vmbspec.run", name="complete")
        ET.SubElement(case, "error", message="the run was interrupted before it finished")
    elif report.stopped:
        case = ET.SubElement(suite, "testcase", classname="vmbspec.run", name="complete")
        element = ET.SubElement(case, "failure", message="the run was cut short")
        element.text = f"{report.stopped}\nNot run: {describe_not_run(report.not_run)}"
    return ET.tostring(suite, encoding="unicode")


#: A report file to write: its path (None: not asked for) and what renders its text.
ReportFile = tuple[Path | None, Callable[[], str]]


def write_each(files: tuple[ReportFile, ...]) -> list[str]:
    """Write each report asked for, each on its own: a path that cannot be written costs
    only that report. Returns one line per report that could not be written."""
    errors = []
    for path, render in files:
        if path is None:
            continue
        try:
            path.write_text(render(), encoding="utf-8")
        except OSError as error:
            errors.append(f"cannot write {path}: {error.strerror or error}")
    return errors


def write_outputs(
    report: ConformanceReport,
    json_path: Path | None = None,
    junit_path: Path | None = None,
    markdown_path: Path | None = None,
) -> list[str]:
    """The reports of ``vmbspec check`` (see :func:`write_each`)."""
    return write_each((
        (json_path, lambda: json.dumps(to_json(report), indent=2) + "\n"),
        (junit_path, lambda: to_junit(report) + "\n"),
        (markdown_path, lambda: to_markdown(report)),
    ))


def table(report: ConformanceReport) -> str:
    """The final table printed by ``vmbspec check``."""
    rows = requirement_rows(report)
    width = max(len(r["id"]) for r in rows)
    lines = [f"{'requirement':<{width}}  {'status':<9}  {'steps':>6}  {'cases':>5}  note"]
    for row in rows:
        note = row["reason"] or ("proved: " + ", ".join(row["proved"]) if row["proved"] else "")
        lines.append(
            f"{row['id']:<{width}}  {row['status']:<9}  {row['steps']:>6}  {row['cases']:>5}  "
            f"{note}"
        )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    lines.append("")
    lines.append(", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(lines)
