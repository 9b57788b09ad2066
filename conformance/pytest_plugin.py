"""pytest plugin: ``--vmb-target``, ``--vmb-profile``, ``--vmb-examples``, ``--vmb-seed`` and two
fixtures.

Installed with vmbspec (entry point ``pytest11``), so in any project::

    # test_my_driver.py
    def test_conforms(vmb_report):
        assert vmb_report.passed, vmb_report.summary()

    $ pytest --vmb-target native:./libmydriver.so

``vmb_target`` is the ``(name, factory)`` of the chosen target; ``vmb_report`` runs the whole
suite once per session against it and returns the :class:`conformance.runner.ConformanceReport`.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from conformance.cli_common import count
from conformance.cli_common import seed as seed_value
from conformance.runner import DEFAULT_EXAMPLES, DEFAULT_SEED
from conformance.targets import UnknownTarget, resolve_target
from spec.errors import InvalidValue
from spec.readings import parse_profile


def _examples(text: str) -> int:
    try:
        return count(0, 10**9)(text)
    except argparse.ArgumentTypeError as error:
        raise pytest.UsageError(f"--vmb-examples: {error}") from None


def _seed(text: str) -> int:
    try:
        return seed_value(text)
    except argparse.ArgumentTypeError as error:
        raise pytest.UsageError(f"--vmb-seed: {error}") from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vmbspec", "VmbPacketSendWithExternalMdl conformance")
    group.addoption("--vmb-target", default="sim",
                    help="target for the vmb_report fixture: sim, rust, native:PATH, ...")
    group.addoption("--vmb-profile", default="default", help="profile of readings")
    group.addoption("--vmb-examples", default=str(DEFAULT_EXAMPLES),
                    help="stateful examples for the vmb_report fixture "
                    f"(default {DEFAULT_EXAMPLES}, as `vmbspec check`)")
    group.addoption("--vmb-seed", default=str(DEFAULT_SEED),
                    help=f"seed of the stateful run (default {DEFAULT_SEED})")


_TARGET = pytest.StashKey[tuple[str, Any]]()


def pytest_configure(config: pytest.Config) -> None:
    # Resolved once, before collection, so a bad name stops the session with one line.
    option = config.getoption("--vmb-target", default=None)
    if option is None:
        return
    try:
        config.stash[_TARGET] = resolve_target(str(option))
    except UnknownTarget as error:
        raise pytest.UsageError(f"--vmb-target: {error}") from error
    # Checked before collection too, so a bad value stops the session with one line.
    _examples(str(config.getoption("--vmb-examples")))
    _seed(str(config.getoption("--vmb-seed")))


@pytest.fixture(scope="session")
def vmb_target(pytestconfig: pytest.Config) -> tuple[str, Any]:
    return pytestconfig.stash[_TARGET]


@pytest.fixture(scope="session")
def vmb_report(pytestconfig: pytest.Config, vmb_target: tuple[str, Any]) -> Any:
    from conformance.runner import run_conformance

    try:
        profile = parse_profile(str(pytestconfig.getoption("--vmb-profile")))
    except InvalidValue as error:
        raise pytest.UsageError(f"--vmb-profile: {error}") from error
    _name, factory = vmb_target
    return run_conformance(
        factory,
        profile=profile,
        examples=_examples(str(pytestconfig.getoption("--vmb-examples"))),
        seed=_seed(str(pytestconfig.getoption("--vmb-seed"))),
    )
