"""What the subcommands of ``vmbspec`` share: the exit statuses, the usage error, the argument
types that validate command-line values, and the handling of an internal error."""

from __future__ import annotations

import argparse
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbspec.conformance.inputs import shorten
from vmbspec.spec.errors import InvalidValue
from vmbspec.spec.readings import Profile, parse_profile


class UsageError(Exception):
    """A mistake in how vmbspec was called; printed as one line, exit status 2."""


def _profile(text: str) -> Profile:
    try:
        return parse_profile(text)
    except InvalidValue as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def profile_argument(parser: Any) -> None:
    parser.add_argument(
        "--profile",
        type=_profile,
        default=Profile.default(),
        metavar="NAME[+A4=c...]",
        help="readings of the ambiguous sentences: a name from `vmbspec profiles`, with "
        "optional overrides (default: default)",
    )


# -- exit statuses ----------------------------------------------------------------------------

#: The target conforms (or the command did what was asked).
EXIT_OK = 0
#: The target does not conform (a failure naming the requirement it broke).
EXIT_FAILED = 1
#: A mistake in how vmbspec was called or in a file it was given; nothing was judged.
EXIT_USAGE = 2
#: A bug of vmbspec itself; never the target's failure. The traceback is saved to a file.
EXIT_INTERNAL = 3
#: Stopped by Ctrl-C (the reports asked for hold what ran before).
EXIT_INTERRUPTED = 130

#: The longest a single call to a target may be given: a day.
MAX_SECONDS = 86_400.0


# -- argument types: a bad value is an argparse error (one line, exit 2) ----------------------


def seconds(text: str) -> float:
    """A duration in seconds: a finite number, more than 0 and at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 < value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a number of seconds more than 0 and at most {MAX_SECONDS:.0f}"
        )
    return value


def count(low: int, high: int) -> Callable[[str], int]:
    """An integer in ``low..high``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number from {low} to {high}")
        return value

    parse.__name__ = "count"
    return parse


def seed(text: str) -> int:
    """A run's seed: an integer in 0..2**64-1."""
    return count(0, 2**64 - 1)(text)


def output_file(text: str) -> Path:
    """A file vmbspec will write: not a folder, in a folder that exists."""
    path = Path(text)
    if text == "" or path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: folder {folder} does not exist")
    return path


def output_folder(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not an existing folder")
    return path


# -- internal errors ---------------------------------------------------------------------------


def save_traceback(text: str, prefix: str = "vmbspec-internal-error-") -> Path | None:
    """Write ``text`` (a traceback) to a new file, here or else in the temporary folder; the
    path, or None when neither can be written."""
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            handle, name = tempfile.mkstemp(prefix=prefix, suffix=".txt", dir=folder)
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            return Path(name)
        except OSError:
            continue
    return None


def internal_error_message(command: str, error: BaseException, details: str) -> str:
    """The message for an internal error, naming the file that keeps the traceback."""
    path = save_traceback(details)
    where = f"the traceback is in {path}" if path else "the traceback could not be saved"
    summary = shorten(f"{type(error).__name__}: {error}", 300)
    return (f"vmbspec {command}: internal error (a bug of vmbspec, not a failure of the "
            f"target): {summary}; {where}. Please report it with that file.")


# -- what several subcommands share ------------------------------------------------------------


def target_switches(parser: Any) -> None:
    """The options that say how to run a target: isolation, the call timeout, guard pages."""
    isolate = parser.add_mutually_exclusive_group()
    isolate.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                         help="run a native target in a worker process, so a crash or hang "
                         "is a verdict (the default for native:PATH)")
    isolate.add_argument("--no-isolate", dest="isolate", action="store_false",
                         help="load a native target into this process")
    parser.add_argument("--timeout", type=seconds, default=None, metavar="SECONDS",
                        help="how long one call to an isolated or remote target may take")
    parser.add_argument("--no-guard", dest="guard", action="store_false", default=None,
                        help="native targets: no guard pages around the MDLs and buffer of a "
                        "send (by default a read past them is a crash verdict naming the call)")


def target_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of :func:`target_switches`, as the adapters' ``resolve`` takes them."""
    return {"isolate": args.isolate, "timeout": args.timeout, "guard": args.guard}


def remove_stale_replays(folder: Path, prefix: str) -> int:
    """Remove the replay files ``PREFIX-N.json`` an earlier run left in ``folder`` (only
    vmbspec replay files of that name), so every file there belongs to this run."""
    name = re.compile(re.escape(prefix) + r"-[0-9]+\.json")
    removed = 0
    for path in folder.glob(f"{prefix}-*.json"):
        if not name.fullmatch(path.name):
            continue
        try:
            with path.open("rb") as stream:
                head = stream.read(64)
            if b'"vmbspec_replay"' in head:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed
