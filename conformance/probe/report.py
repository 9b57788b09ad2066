"""What ``vmbspec probe`` found, as text (the terminal), JSON and Markdown.

Per reading with more than one option: the options the target is consistent with and the
verdict ("follows (b)", "cannot tell (a) from (c) by observation" with why, "follows no
documented reading" with the call, what the target did and what each option allows, or the
crash of the target on a probe call), the probes run with their outcome per option; then the
confirmation check and the profile string to pass to ``vmbspec check --profile``.
"""

from __future__ import annotations

from typing import Any

from vmbspec.conformance.cli_common import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK
from vmbspec.conformance.probe.infer import UNSAFE, ProbeResult, ReadingResult
from vmbspec.conformance.report import versions

FORMAT_VERSION = 1

_MARK = {"follows": "ok", "cannot-tell": "ok", "none": "FAIL", "crash": "FAIL",
         "unsafe": "UNSAFE"}


def exit_status(result: ProbeResult) -> int:
    """0 every reading follows a documented safe option and the confirmation passed; 1 a
    reading follows none or an unsafe one, the target crashed or became unreachable, or the
    confirmation failed; 3 the confirmation could not judge (an error of vmbspec's own)."""
    confirmation = result.confirmation
    if (not all(r.ok for r in result.readings) or result.stopped
            or (confirmation is not None and confirmation.verdict == "FAIL")):
        return EXIT_FAILED
    if confirmation is not None and not confirmation.passed:
        return EXIT_INTERNAL
    return EXIT_OK


def _confirmation_line(result: ProbeResult) -> str:
    report = result.confirmation
    if report is None:
        return "not confirmed (the probe stopped before the check)" if result.stopped else \
            "not confirmed (no check was asked for)"
    head = f"check --profile {result.profile.name}: {report.verdict}"
    tried = "".join(
        f"\n    (also checked --profile {name}: FAIL: {_first_failure(summary)})"
        for name, summary in result.rejected_profiles)
    if report.passed:
        return f"{head} ({report.cases_run} cases, {report.examples} stateful examples){tried}"
    lines = report.summary().splitlines()[1:4]
    return head + "".join(f"\n    {line.strip()}" for line in lines) + tried


def _first_failure(summary: str) -> str:
    lines = summary.splitlines()
    return lines[1].strip() if len(lines) > 1 else lines[0] if lines else ""


def _consistent(reading: ReadingResult) -> str:
    return ", ".join(reading.consistent) or "none"


def _joint_groups(result: ProbeResult) -> str:
    groups = dict.fromkeys(r.group for r in result.readings if len(r.group) > 1)
    return ", ".join("+".join(group) for group in groups)


def _verdict(result: ProbeResult, status: int) -> str:
    """Why the exit status is what it is, in a line."""
    if status == EXIT_OK:
        return "every reading follows a documented safe option, and the check confirms it"
    if status == EXIT_INTERNAL:
        return "the confirmation could not judge (an error of vmbspec, not of the target)"
    reasons = []
    for kind, words in (("none", "follows no documented reading"),
                        ("crash", "crashed or hung on a probe call"),
                        ("unsafe", "follows an UNSAFE option")):
        readings = [f"READ-{r.reading}" for r in result.readings if r.verdict == kind]
        if readings:
            reasons.append(f"{', '.join(readings)}: {words}")
    if result.stopped:
        reasons.append("probing stopped")
    if result.confirmation is not None and result.confirmation.verdict == "FAIL":
        reasons.append(f"the check under {result.profile.name} failed")
    return "; ".join(reasons) or "the target does not conform"


def render_text(result: ProbeResult, target_arg: str = "") -> str:
    """The terminal's text: a table, the explanations, the confirmation and the profile."""
    lines = [
        f"vmbspec probe: {result.target}: {result.runs} probe runs in {result.passes} "
        f"pass(es), {result.probe_seconds:.1f} s (probes: {result.calls})",
        "",
    ]
    width = max((len(_consistent(r)) for r in result.readings), default=10)
    width = max(width, len("consistent"))
    lines.append(f"{'reading':<9} {'consistent':<{width}}  verdict")
    for reading in result.readings:
        lines.append(f"READ-{reading.reading:<4} {_consistent(reading):<{width}}  "
                     f"{reading.text}")
        for why in reading.why:
            lines.append(f"{'':<9} {'':<{width}}    - {why}")
    joint = _joint_groups(result)
    if joint:
        lines += ["", f"inferred jointly: {joint} (every combination of their options, on "
                  "every probe of any of them)"]
    if result.stopped:
        lines += ["", f"probing stopped: {result.stopped}"]
    unsafe = result.unsafe
    if unsafe:
        named = ", ".join(f"{r}={o} (Z3 counterexample {UNSAFE[(r, o)]})" for r, o in unsafe)
        lines += ["", f"UNSAFE: the target follows {named}: a range may run past the MDL's "
                  "PFN array. Not adopted silently: exit status 1."]
    lines += ["", f"confirmation: {_confirmation_line(result)}"]
    status = exit_status(result)
    verdict = _verdict(result, status)
    target = f" --target {target_arg}" if target_arg else ""
    lines += [
        f"verdict: {verdict} (exit {status})",
        f"profile: {result.profile.name}",
        f"  vmbspec check{target} --profile {result.profile.name}",
    ]
    return "\n".join(lines)


def to_json(result: ProbeResult) -> dict[str, Any]:
    confirmation = result.confirmation
    return {
        "vmbspec_probe": FORMAT_VERSION,
        "target": result.target,
        "probes": result.calls,
        "profile": result.profile.name,
        "readings": [reading.as_json() for reading in result.readings],
        "unsafe": [f"{r}={o}" for r, o in result.unsafe],
        "stopped": result.stopped,
        "confirmation": None if confirmation is None else {
            "profile": result.profile.name,
            "verdict": confirmation.verdict,
            "passed": confirmation.passed,
            "cases": confirmation.cases_run,
            "examples": confirmation.examples,
            "summary": confirmation.summary(),
            "also_checked": [{"profile": name, "verdict": "FAIL", "summary": summary}
                             for name, summary in result.rejected_profiles],
        },
        "runs": result.runs,
        "passes": result.passes,
        "seconds": round(result.seconds, 3),
        "probe_seconds": round(result.probe_seconds, 3),
        "exit_status": exit_status(result),
        "versions": versions(),
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(result: ProbeResult, target_arg: str = "") -> str:
    status = exit_status(result)
    confirmation = "; ".join(line.strip() for line in _confirmation_line(result).splitlines())
    lines = [
        f"# vmbspec probe: {result.target}",
        "",
        f"Profile found: `{result.profile.name}` (exit status {status}). "
        f"Confirmation: {_cell(confirmation)}.",
        "",
        f"{result.runs} probe runs in {result.passes} pass(es), {result.probe_seconds:.1f} s; "
        f"probes from `{result.calls}`.",
        "",
        "| reading | consistent options | verdict | |",
        "|---|---|---|---|",
    ]
    for reading in result.readings:
        lines.append(f"| READ-{reading.reading} | {_consistent(reading)} | "
                     f"{_cell(reading.text)} | {_MARK[reading.verdict]} |")
    if result.stopped:
        lines += ["", f"Probing stopped: {_cell(result.stopped)}"]
    for reading in result.readings:
        lines += ["", f"## READ-{reading.reading}: {_cell(reading.text)}", ""]
        lines += [f"- {_cell(why)}" for why in reading.why]
        if reading.why:
            lines.append("")
        if not reading.probes:
            lines.append("No probe.")
            continue
        lines += ["| probe | source | outcome per option |", "|---|---|---|"]
        for record in reading.probes:
            by_kind: dict[str, list[str]] = {}
            for label, outcome in record.outcomes.items():
                by_kind.setdefault(outcome.kind, []).append(label)
            outcomes = "; ".join(f"{kind}: {', '.join(labels)}"
                                 for kind, labels in by_kind.items())
            if record.fault is not None:
                outcomes = f"**{record.fault.kind}**: {record.fault.line()}"
            lines.append(f"| `{_cell(record.probe.id)}` | {record.probe.source} | "
                         f"{_cell(outcomes)} |")
    target = f" --target {target_arg}" if target_arg else ""
    lines += ["", "To check against it:", "", "```sh",
              f"vmbspec check{target} --profile {result.profile.name}", "```", ""]
    return "\n".join(lines)
