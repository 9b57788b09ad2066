"""``vmbspec probe``: which reading of the documentation does a target follow?

Runs the discriminating calls and sequences of ``conformance/probe/calls.json`` on fresh
targets and reports, per reading with more than one option, the options the target is
consistent with (``conformance.probe.infer``), confirms the profile found by a short check and
prints it as the ``--profile`` value for ``vmbspec check``. ``vmbspec check --profile probe``
runs this first and checks against the profile found (:func:`probe_profile`).

Native targets are probed in a worker process (``rust`` too, unless ``--no-isolate``): some
probes ask for a range past an MDL's PFN array, which a library following an unsafe reading
reads, and with guard pages that is a ``crash`` verdict naming the call, not the end of the run.

Exit statuses: 0 every reading follows a documented safe option and the confirmation passed;
1 some reading follows none (or the target crashed on a probe call), an unsafe option, or the
confirmation failed; 2 a usage error; 3 an internal error of vmbspec.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vmbspec.conformance.cli_common import (
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    count,
    output_file,
    target_options,
    target_switches,
)
from vmbspec.conformance.cli_common import seed as seed_value
from vmbspec.conformance.probe.infer import CONFIRM_EXAMPLES, ProbeResult, infer_readings
from vmbspec.conformance.probe.load import CALLS_PATH, load_probes
from vmbspec.conformance.probe.report import exit_status, render_text, to_json, to_markdown
from vmbspec.conformance.runner import DEFAULT_SEED, InternalError
from vmbspec.conformance.targets import UnknownTarget, resolve_target
from vmbspec.spec.errors import InvalidValue
from vmbspec.spec.readings import Profile, parse_profile

#: The ``--profile`` value of ``vmbspec check`` that runs the probe first.
PROBE_PROFILE = "probe"


def probe_options(target: str, options: dict[str, Any]) -> dict[str, Any]:
    """The target options for probing: the Rust core isolated unless told otherwise."""
    if target.partition(":")[0] == "rust" and options.get("isolate") is None:
        return {**options, "isolate": True}
    return options


def probe_target(
    target: str,
    options: dict[str, Any],
    *,
    calls: Path = CALLS_PATH,
    examples: int = CONFIRM_EXAMPLES,
    seed: int = DEFAULT_SEED,
    quiet: bool = False,
) -> ProbeResult:
    """Probe the target named ``target``; :class:`UsageError` for a bad name or probe file."""
    probes = load_probes(calls)
    try:
        name, factory = resolve_target(target, probe_options(target, options))
    except UnknownTarget as error:
        raise UsageError(str(error)) from error

    def progress(what: str) -> None:
        if not quiet:
            print(f"probe: {what}", file=sys.stderr, flush=True)

    result = infer_readings(factory, probes, target=name, confirm_examples=examples,
                            seed=seed, progress=progress)
    if result.confirmation is not None and result.confirmation.problems:
        problem = result.confirmation.problems[0]
        if problem.kind == "internal-error":
            raise InternalError(f"the confirmation check: {problem.message}")
    return result


def _write(path: Path | None, text: str, errors: list[str]) -> None:
    if path is None:
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        errors.append(f"could not write {path}: {error.strerror or error}")


def run_probe(args: argparse.Namespace) -> int:
    result = probe_target(args.target, target_options(args), calls=args.calls,
                          examples=args.examples, seed=args.seed, quiet=args.quiet)
    errors: list[str] = []
    _write(args.json, json.dumps(to_json(result), indent=1) + "\n", errors)
    _write(args.report, to_markdown(result, args.target), errors)
    print(render_text(result, args.target))
    for line in errors:
        print(f"vmbspec probe: {line}", file=sys.stderr)
    status = exit_status(result)
    return EXIT_USAGE if status == EXIT_OK and errors else status


def profile_or_probe(text: str) -> Profile | str:
    """A ``--profile`` value of ``vmbspec check``: a profile, or ``probe``."""
    if text.strip() == PROBE_PROFILE:
        return PROBE_PROFILE
    try:
        return parse_profile(text)
    except InvalidValue as error:
        raise argparse.ArgumentTypeError(
            f"{error} (or `{PROBE_PROFILE}`: probe the target first)") from error


def accept_probe_profile(parser: argparse.ArgumentParser) -> None:
    """Let ``parser``'s ``--profile`` take ``probe`` too."""
    for action in parser._actions:
        if action.dest == "profile":
            action.type = profile_or_probe
            action.help = (action.help or "") + f"; `{PROBE_PROFILE}`: run `vmbspec probe` " \
                "first and check against the profile it finds"


def probe_profile(args: argparse.Namespace) -> tuple[Profile, int]:
    """For ``check --profile probe``: probe the target, print what was found, and return the
    profile with the probe's exit status (the check's status is the worse of the two)."""
    result = probe_target(args.target, target_options(args), seed=args.seed,
                          quiet=getattr(args, "quiet", False))
    print(render_text(result, args.target))
    print()
    return result.profile, exit_status(result)


def add_parser(subparsers: Any) -> None:
    probe = subparsers.add_parser(
        "probe",
        help="tell which reading of the documentation a target follows",
        description="Run the spec's discriminating calls on a target and report, per reading "
        "with more than one option, the options it is consistent with; confirm the profile "
        "found by a short check and print it for `vmbspec check --profile`.",
    )
    probe.add_argument("--target", default="sim",
                       help="sim (default), sim:A5=b[+A3=c], rust (isolated unless "
                       "--no-isolate), native:PATH, remote:stdio:COMMAND, remote:tcp://HOST:PORT")
    probe.add_argument("--json", metavar="FILE", type=output_file,
                       help="write the machine-readable report")
    probe.add_argument("--report", metavar="FILE.md", type=output_file,
                       help="write the Markdown report")
    probe.add_argument("--calls", metavar="FILE", type=Path, default=CALLS_PATH,
                       help="the probes (default: conformance/probe/calls.json, written by "
                       "python -m vmbspec.spec.discriminate)")
    probe.add_argument("--examples", type=count(0, 100_000), default=CONFIRM_EXAMPLES,
                       help="stateful examples of the confirmation check, after the case "
                       f"catalog (default {CONFIRM_EXAMPLES})")
    probe.add_argument("--seed", type=seed_value, default=DEFAULT_SEED,
                       help="seed of the confirmation check")
    probe.add_argument("--quiet", action="store_true", help="no progress lines")
    target_switches(probe)
    probe.set_defaults(func=run_probe)
