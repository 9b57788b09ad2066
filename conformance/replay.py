"""Replay files: a failing step sequence, saved so it can be re-run on any target.

The format (JSON)::

    {"vmbspec_replay": 1, "found_on": "sim:wrap32", "profile": "default",
     "requirements": ["SEED-MDLOFFSET", ...], "message": "...", "steps": [{"op": ...}, ...]}

``steps`` are the driver's steps (``conformance.driver``), so a replay exercises exactly the
checks the suite made when it found the failure.

A replay file comes from outside (it may have been edited, truncated or written by hand), so
:func:`load_replay` reads it with the bounds of ``conformance.inputs`` (size, nesting, integer
length) and checks every step against the schema of ``conformance.steps``: a bad file is one
:class:`ReplayFileError` naming the file, the step and the field, never a traceback and never a
verdict against the target. Steps that are well formed but break a rule the caller must keep
(open a channel twice, free a packet in flight) are refused by the driver with ``StepError``,
before the target sees them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmbspec.conformance.driver import Driver, Evidence, Step, StepError
from vmbspec.conformance.inputs import InputError, parse_json, read_bytes, require_list, require_str
from vmbspec.conformance.runner import Failure, _classify
from vmbspec.conformance.steps import check_steps
from vmbspec.conformance.targets import TargetFactory
from vmbspec.spec.readings import Profile

FORMAT_VERSION = 1
#: A replay file is a few kilobytes; the step bounds of ``conformance.steps`` allow about this.
MAX_REPLAY_BYTES = 16 * 1024 * 1024
#: Characters in a text field (the message, a requirement ID).
MAX_TEXT = 1 << 20


class ReplayFileError(InputError):
    """A replay file that cannot be read or has the wrong shape (an ``InputError``, hence a
    ``ValueError``): the message names the file, the step and the field."""


def save_replay(path: Path, failure: Failure, target: str, profile: Profile) -> None:
    document = {
        "vmbspec_replay": FORMAT_VERSION,
        "found_on": target,
        "profile": profile.name,
        "source": failure.source,
        "kind": failure.kind,
        "requirements": list(failure.requirements),
        "message": failure.message,
        "steps": failure.steps,
    }
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def load_replay(path: Path) -> dict[str, Any]:
    """The replay file at ``path``, read with bounds (``conformance.inputs``) and every step
    checked against the step schema (``conformance.steps``) before any target is made.

    Raises :class:`ReplayFileError` with ``FILE: step N: field X: what was wrong``."""
    where = str(path)
    try:
        document = parse_json(read_bytes(path, "replay file", MAX_REPLAY_BYTES), where)
        if not isinstance(document, dict) or document.get("vmbspec_replay") != FORMAT_VERSION:
            raise InputError(f"{where}: not a vmbspec replay file (format {FORMAT_VERSION})")
        for name in ("found_on", "profile", "source", "kind", "message"):
            if name in document:
                require_str(document[name], f"{where}: field {name}", MAX_TEXT)
        if "requirements" in document:
            for position, requirement in enumerate(
                require_list(document["requirements"], f"{where}: field requirements", MAX_TEXT)
            ):
                require_str(requirement, f"{where}: field requirements[{position}]", MAX_TEXT)
        if "steps" not in document:
            raise InputError(f"{where}: field steps: missing (the list of steps to replay)")
        check_steps(document["steps"], where)
    except InputError as error:
        raise ReplayFileError(str(error)) from error
    return document


@dataclass
class ReplayResult:
    failure: Failure | None
    steps_run: int


def replay_steps(steps: list[Step], factory: TargetFactory, profile: Profile) -> ReplayResult:
    """Run ``steps`` on a fresh target; the failure it reproduces, if any."""
    target = factory()
    driver = Driver(target, profile, Evidence())
    try:
        for step in steps:
            driver.execute(step)
    except StepError:
        raise
    except Exception as error:
        kind, requirements, message = _classify(error)
        return ReplayResult(Failure("replay", requirements, message, list(driver.log), kind),
                            len(driver.log))
    finally:
        close = getattr(target, "close", None)
        if close is not None:
            close()
    return ReplayResult(None, len(driver.log))
