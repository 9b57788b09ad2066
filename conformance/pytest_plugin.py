"""pytest plugin: ``--vmb-target``, ``--vmb-profile``, ``--vmb-examples`` and two fixtures.

Installed with vmbspec (entry point ``pytest11``), so in any project::

    # test_my_driver.py
    def test_conforms(vmb_report):
        assert vmb_report.passed, vmb_report.summary()

    $ pytest --vmb-target native:./libmydriver.so

``vmb_target`` is the ``(name, factory)`` of the chosen target; ``vmb_report`` runs the whole
suite once per session against it and returns the :class:`conformance.runner.ConformanceReport`.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.targets import UnknownTarget, resolve_target
from spec.errors import InvalidValue
from spec.readings import parse_profile


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vmbspec", "VmbPacketSendWithExternalMdl conformance")
    group.addoption("--vmb-target", default="sim",
                    help="target for the vmb_report fixture: sim, rust, native:PATH, ...")
    group.addoption("--vmb-profile", default="default", help="profile of readings")
    group.addoption("--vmb-examples", type=int, default=100,
                    help="stateful examples for the vmb_report fixture (default 100)")


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
        factory, profile=profile, examples=int(pytestconfig.getoption("--vmb-examples"))
    )
