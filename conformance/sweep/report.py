"""The sweep's claim and its failures: text for the terminal, JSON and Markdown.

The claim is one sentence: ``all N shapes of the lattice for chains of at most K MDLs: pass``
when every shape conformed, else the failing shapes grouped by the requirements they broke,
each group with its count, its first shapes and the replay files written for them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vmbspec.conformance.replay import save_replay
from vmbspec.conformance.report import write_each
from vmbspec.conformance.sweep.lattice import Shape
from vmbspec.conformance.sweep.run import ShapeFailure, SweepResult, describe

#: Replay files written per group of failures (every failing shape is listed in the JSON).
REPLAYS_PER_GROUP = 3
#: Failing shapes shown per group in the text and Markdown reports.
SHOWN_PER_GROUP = 5


def describe_shape(shape: Shape) -> str:
    """The shape as a C-like call, for reports."""
    return describe(shape)


def shape_json(shape: Shape) -> dict[str, Any]:
    mdl, offset, length, flags, buffer, buffer_length = shape
    return {
        "mdl": None if mdl is None else [[bo, bc, list(pfns)] for bo, bc, pfns in mdl],
        "mdl_offset": offset,
        "mdl_length": length,
        "flags": flags,
        "buffer": None if buffer is None else buffer.hex(),
        "buffer_length": buffer_length,
    }


def groups(result: SweepResult) -> dict[tuple[str, ...], list[ShapeFailure]]:
    """Failing shapes by the requirements their failure names, largest group first."""
    found: dict[tuple[str, ...], list[ShapeFailure]] = {}
    for failure in result.failures:
        found.setdefault(failure.failure.requirements, []).append(failure)
    return dict(sorted(found.items(), key=lambda item: -len(item[1])))


def verdict(result: SweepResult) -> str:
    if result.failures or result.stopped:
        return "FAIL"
    if result.problems:
        return "ERROR"
    if result.interrupted:
        return "INTERRUPTED"
    return "PASS"


def claim(result: SweepResult) -> str:
    """The one-sentence claim of the run."""
    chains = result.lattice.chains
    kind = "" if result.lattice.is_full else "reduced "
    if verdict(result) == "PASS":
        return (f"all {result.total} shapes of the {kind}lattice for chains of at most "
                f"{chains} MDL(s): pass")
    if result.failures:
        stopped = (f"; stopped after {result.stopped_after} failing shape(s)"
                   if result.stopped_after is not None else "")
        if result.stopped:
            stopped = f"; the run was cut short: {result.stopped}"
        return (f"{len(result.failures)} of the {result.shapes_run} shapes run (of "
                f"{result.total} in the {kind}lattice for chains of at most {chains} MDL(s)) "
                f"do not conform, in {len(groups(result))} group(s) of requirements{stopped}")
    if result.stopped:
        return (f"the run was cut short after {result.shapes_run} of {result.total} shapes: "
                f"{result.stopped}")
    if result.problems:
        return (f"no verdict: vmbspec hit an internal error after {result.shapes_run} of "
                f"{result.total} shapes")
    return f"no verdict: interrupted after {result.shapes_run} of {result.total} shapes"


def save_replays(result: SweepResult, folder: Path,
                 per_group: int = REPLAYS_PER_GROUP) -> list[str]:
    """Write replay files for the first ``per_group`` failures of each group; the lines of
    any error."""
    errors = []
    number = 0
    for failures in groups(result).values():
        for failure in failures[:per_group]:
            if not failure.failure.steps:
                continue
            number += 1
            path = folder / f"vmbspec-sweep-failure-{number}.json"
            try:
                save_replay(path, failure.failure, result.target, result.profile)
            except OSError as error:
                errors.append(f"could not save replay file {path}: {error.strerror or error}")
            else:
                failure.failure.replay_file = str(path)
    return errors


def to_json(result: SweepResult) -> dict[str, Any]:
    return {
        "vmbspec_sweep": 1,
        "target": result.target,
        "profile": result.profile.as_json(),
        "lattice": result.lattice.describe(),
        "sizes": {str(k): v for k, v in sorted(result.sizes.items())},
        "total": result.total,
        "shapes_run": result.shapes_run,
        "stopped": result.stopped,
        "path": result.path,
        "seconds": round(result.seconds, 3),
        "verdict": verdict(result),
        "claim": claim(result),
        "failures": [
            {
                "requirements": list(requirements),
                "count": len(failures),
                "shapes": [
                    {"shape": shape_json(f.shape), "call": describe_shape(f.shape),
                     "kind": f.failure.kind, "message": f.failure.message,
                     "replay_file": f.failure.replay_file}
                    for f in failures
                ],
            }
            for requirements, failures in groups(result).items()
        ],
        "problems": [p.as_json() for p in result.problems],
    }


def _size_lines(result: SweepResult) -> list[str]:
    names = {0: "NULL MDL / NULL buffer family"}
    return [f"{names.get(k, f'chains of {k} MDL(s)')}: {v} shapes"
            for k, v in sorted(result.sizes.items())]


def to_text(result: SweepResult) -> str:
    lines = [f"vmbspec sweep on {result.target}, profile {result.profile.name}: "
             f"{verdict(result)}", f"  {result.lattice.describe()}"]
    lines += [f"  {line}" for line in _size_lines(result)]
    lines.append(f"  {result.shapes_run} shapes run ({result.path}) in {result.seconds:.1f} s")
    lines.append(claim(result))
    for requirements, failures in groups(result).items():
        lines.append(f"\n[{', '.join(requirements)}]: {len(failures)} shape(s)")
        for failure in failures[:SHOWN_PER_GROUP]:
            lines.append(f"  {describe_shape(failure.shape)}")
            lines.append(f"    {failure.failure.kind}: {failure.failure.message}")
            if failure.failure.replay_file:
                lines.append(f"    replay: vmbspec replay {failure.failure.replay_file} "
                             f"--target {result.target}")
        if len(failures) > SHOWN_PER_GROUP:
            lines.append(f"  ... and {len(failures) - SHOWN_PER_GROUP} more (in the JSON report)")
    for problem in result.problems:
        lines.append(f"vmbspec problem ({problem.kind}): {problem.message}")
    return "\n".join(lines)


def to_markdown(result: SweepResult) -> str:
    lines = [f"# vmbspec sweep: {result.target}", "",
             f"**{verdict(result)}**: {claim(result)}.", "",
             f"- profile: `{result.profile.name}`",
             f"- {result.lattice.describe()}",
             f"- {result.shapes_run} shapes run ({result.path}) in {result.seconds:.1f} s", "",
             "| lattice part | shapes |", "|---|---:|"]
    names = {0: "NULL MDL / NULL buffer family"}
    lines += [f"| {names.get(k, f'chains of {k} MDL(s)')} | {v} |"
              for k, v in sorted(result.sizes.items())]
    for requirements, failures in groups(result).items():
        lines += ["", f"## {', '.join(requirements)}: {len(failures)} shape(s)", ""]
        for failure in failures[:SHOWN_PER_GROUP]:
            replay = (f" (replay: `vmbspec replay {failure.failure.replay_file}`)"
                      if failure.failure.replay_file else "")
            lines.append(f"- `{describe_shape(failure.shape)}`: {failure.failure.kind}, "
                         f"{failure.failure.message}{replay}")
    for problem in result.problems:
        lines += ["", f"vmbspec problem ({problem.kind}): {problem.message}"]
    return "\n".join(lines) + "\n"


def write_outputs(result: SweepResult, json_path: Path | None,
                  markdown_path: Path | None) -> list[str]:
    """Write each report asked for, each on its own; the lines of those that failed."""
    return write_each((
        (json_path, lambda: json.dumps(to_json(result), indent=1) + "\n"),
        (markdown_path, lambda: to_markdown(result)),
    ))
