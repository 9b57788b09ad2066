"""What the subcommands of ``vmbspec`` share: the usage error and the --profile option."""

from __future__ import annotations

import argparse
from typing import Any

from spec.errors import InvalidValue
from spec.readings import Profile, parse_profile


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
