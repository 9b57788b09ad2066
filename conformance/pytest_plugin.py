"""pytest plugin: ``--vmb-target``, ``--vmb-profile``, ``--vmb-examples``, ``--vmb-seed``,
``--vmb-json`` and ``--vmb-report``, and two fixtures.

Installed with vmbspec (entry point ``pytest11``), so in any project::

    # test_my_driver.py
    def test_conforms(vmb_report):
        assert vmb_report.passed, vmb_report.summary()

    $ pytest --vmb-target native:./libmydriver.so

``vmb_target`` is the ``(name, factory)`` of the chosen target; ``vmb_report`` runs the whole
suite once per session against it and returns the :class:`conformance.runner.ConformanceReport`;
``--vmb-json FILE`` and ``--vmb-report FILE.md`` write that report as ``vmbspec check --json``
and ``--report`` do.

Under pytest-xdist (``pytest -n N``) each worker is a pytest session of its own: it resolves
its own target, and a worker whose tests use ``vmb_report`` runs the suite once, with the same
seed, so a test's verdict does not depend on the worker it landed on. ``--vmb-target`` may be
given several times (one per guest, say): worker ``gwI`` runs on target ``I mod count``, and
``-n`` must be at least the count. Reports are kept one per worker, not merged: each is a
whole run of its own against its own target, and a merged one would add up steps of the same
seed twice and hide which guest failed. A worker writes ``FILE`` with its id before the
suffix (``report.gw0.json``, ``report.gw1.json``), so no two processes write the same file;
the controller writes none and lists the workers' files at the end of the session.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from vmbspec.conformance.cli_common import count, output_file
from vmbspec.conformance.cli_common import seed as seed_value
from vmbspec.conformance.runner import DEFAULT_EXAMPLES, DEFAULT_SEED
from vmbspec.conformance.targets import UnknownTarget, resolve_target
from vmbspec.spec.errors import InvalidValue
from vmbspec.spec.readings import parse_profile

MAX_TARGETS = 1024  # as `vmbspec check --workers`

_TARGET = pytest.StashKey[tuple[str, Any]]()
_TEXTS = pytest.StashKey[list[str]]()
_WRITTEN = pytest.StashKey[list[str]]()


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


def _profile(config: pytest.Config) -> Any:
    try:
        return parse_profile(str(config.getoption("--vmb-profile")))
    except InvalidValue as error:
        raise pytest.UsageError(f"--vmb-profile: {error}") from error


def _output(option: str, text: str | None) -> Path | None:
    if text is None:
        return None
    try:
        return output_file(text)
    except argparse.ArgumentTypeError as error:
        raise pytest.UsageError(f"{option}: {error}") from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vmbspec", "VmbPacketSendWithExternalMdl conformance")
    group.addoption("--vmb-target", action="append", default=None,
                    help="target for the vmb_report fixture: sim, rust, native:PATH, ... "
                    "(default sim); several times under pytest -n: worker gwI runs on the "
                    "I-th mod their count")
    group.addoption("--vmb-profile", default="default", help="profile of readings")
    group.addoption("--vmb-examples", default=str(DEFAULT_EXAMPLES),
                    help="stateful examples for the vmb_report fixture "
                    f"(default {DEFAULT_EXAMPLES}, as `vmbspec check`)")
    group.addoption("--vmb-seed", default=str(DEFAULT_SEED),
                    help=f"seed of the stateful run (default {DEFAULT_SEED})")
    group.addoption("--vmb-json", metavar="FILE", default=None,
                    help="write the vmb_report as JSON (under pytest -n: FILE with the "
                    "worker id before the suffix, one per worker)")
    group.addoption("--vmb-report", metavar="FILE.md", default=None,
                    help="write the vmb_report as Markdown (under pytest -n: one per worker)")


def worker_id(config: pytest.Config) -> str | None:
    """The pytest-xdist worker id (``gw0``, ``gw1``, ...) of this process, ``None`` in the
    controller or without xdist."""
    # Not PYTEST_XDIST_WORKER: a pytest session started inside a worker (pytester) inherits it.
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, dict) and "workerid" in workerinput:
        return str(workerinput["workerid"])
    return None


def _xdist_workers(config: pytest.Config) -> int:
    """How many xdist workers the controller starts (0: none, or this is a worker)."""
    if worker_id(config) is not None or not config.pluginmanager.hasplugin("xdist"):
        return 0
    number = getattr(config.option, "numprocesses", None)
    if getattr(config.option, "dist", "no") == "no" or not isinstance(number, int):
        return 0
    return number


def _worker_index(config: pytest.Config) -> int | None:
    """The number of this xdist worker (``gw3`` is 3), ``None`` outside a worker."""
    worker = worker_id(config)
    if worker is None:
        return None
    digits = worker.removeprefix("gw")
    if not digits.isdigit():
        raise pytest.UsageError(f"--vmb-target: unexpected pytest-xdist worker id {worker!r}")
    return int(digits)


def _check_target_count(config: pytest.Config, texts: list[str]) -> None:
    if len(texts) > MAX_TARGETS:
        raise pytest.UsageError(f"--vmb-target: at most {MAX_TARGETS} targets, not {len(texts)}")
    workers = _xdist_workers(config)
    if 0 < workers < len(texts):
        raise pytest.UsageError(
            f"--vmb-target: {len(texts)} targets need at least {len(texts)} pytest-xdist "
            f"workers (a worker runs on one target): give -n {len(texts)} or more"
        )


def pytest_configure(config: pytest.Config) -> None:
    # Resolved once, before collection, so a bad name stops the session with one line: in
    # the controller (which starts no run) as in each xdist worker, which keeps its own.
    options = config.getoption("--vmb-target", default=None)
    if options is None and not hasattr(config.option, "vmb_target"):
        return  # the plugin's options are not registered (-p no:vmbspec)
    texts = [str(text) for text in (options or ["sim"])]
    _check_target_count(config, texts)
    resolved = []
    for text in texts:
        try:
            resolved.append(resolve_target(text))
        except UnknownTarget as error:
            raise pytest.UsageError(f"--vmb-target: {error}") from error
    index = _worker_index(config)
    config.stash[_TEXTS] = texts
    config.stash[_TARGET] = resolved[0 if index is None else index % len(resolved)]
    config.stash[_WRITTEN] = []
    # Checked before collection too, so a bad value stops the session with one line.
    _examples(str(config.getoption("--vmb-examples")))
    _seed(str(config.getoption("--vmb-seed")))
    _profile(config)
    _output("--vmb-json", config.getoption("--vmb-json"))
    _output("--vmb-report", config.getoption("--vmb-report"))


def report_path(path: Path, worker: str | None) -> Path:
    """Where this process writes a report asked for as ``path``: under an xdist worker, the
    worker id before the suffix (``out.json`` -> ``out.gw1.json``), so workers never share a
    file."""
    if worker is None:
        return path
    return path.with_name(f"{path.stem}.{worker}{path.suffix}")


def _write_reports(config: pytest.Config, report: Any) -> None:
    from vmbspec.conformance.report import write_outputs

    worker = worker_id(config)
    paths = {
        option: None if path is None else report_path(path, worker)
        for option in ("--vmb-json", "--vmb-report")
        for path in [_output(option, config.getoption(option))]
    }
    errors = write_outputs(report, json_path=paths["--vmb-json"],
                           markdown_path=paths["--vmb-report"])
    if errors:
        pytest.fail("vmbspec: " + "; ".join(errors), pytrace=False)
    config.stash[_WRITTEN].extend(str(path) for path in paths.values() if path is not None)


@pytest.fixture(scope="session")
def vmb_target(pytestconfig: pytest.Config) -> tuple[str, Any]:
    return pytestconfig.stash[_TARGET]


@pytest.fixture(scope="session")
def vmb_report(pytestconfig: pytest.Config, vmb_target: tuple[str, Any]) -> Any:
    from vmbspec.conformance.runner import SuiteUsageError, run_conformance

    profile = _profile(pytestconfig)
    texts = pytestconfig.stash[_TEXTS]
    several = worker_id(pytestconfig) is None and len(texts) > 1
    _name, factory = vmb_target
    try:
        report = run_conformance(
            texts if several else factory,  # without xdist: all the targets, one process each
            profile=profile,
            examples=_examples(str(pytestconfig.getoption("--vmb-examples"))),
            seed=_seed(str(pytestconfig.getoption("--vmb-seed"))),
            workers=len(texts) if several else 1,
        )
    except SuiteUsageError as error:
        raise pytest.UsageError(f"--vmb-target: {error}") from error
    _write_reports(pytestconfig, report)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker hands the paths of the reports it wrote to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if isinstance(workeroutput, dict) and _WRITTEN in session.config.stash:
        written: list[str] = session.config.stash[_WRITTEN]
        workeroutput["vmb_reports"] = list(written)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, in the controller: a worker ended; keep the paths of its reports."""
    config = node.config
    paths = getattr(node, "workeroutput", {}).get("vmb_reports", [])
    if _WRITTEN in config.stash and isinstance(paths, list):
        written: list[str] = config.stash[_WRITTEN]
        written.extend(str(path) for path in paths)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The reports written, by this process or (under xdist) by each worker."""
    if worker_id(config) is not None or _WRITTEN not in config.stash:
        return
    written: list[str] = config.stash[_WRITTEN]
    for path in sorted(written):
        terminalreporter.write_line(f"vmbspec report: {path}")
