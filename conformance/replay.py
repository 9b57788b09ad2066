"""Replay files: a failing step sequence, saved so it can be re-run on any target.

The format (JSON)::

    {"vmbspec_replay": 1, "found_on": "sim:wrap32", "profile": "default",
     "requirements": ["SEED-MDLOFFSET", ...], "message": "...", "steps": [{"op": ...}, ...]}

``steps`` are the driver's steps (``conformance.driver``), so a replay exercises exactly the
checks the suite made when it found the failure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance.driver import Driver, Evidence, Step, StepError
from conformance.runner import Failure, _classify
from conformance.targets import TargetFactory
from spec.readings import Profile

FORMAT_VERSION = 1


class ReplayFileError(ValueError):
    """A replay file that cannot be read or has the wrong shape."""


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
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise ReplayFileError(f"{path}: no such file") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReplayFileError(f"{path}: not a readable JSON replay file ({error})") from error
    if not isinstance(document, dict) or document.get("vmbspec_replay") != FORMAT_VERSION:
        raise ReplayFileError(f"{path}: not a vmbspec replay file (format {FORMAT_VERSION})")
    steps = document.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
        raise ReplayFileError(f"{path}: 'steps' must be a list of step objects")
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
