"""Shared set-up of the whole test suite.

``vmbspec check`` keeps every failure it finds in a store (``conformance.exampledb``; by
default ``.vmbspec/db`` in the current directory) and replays the store's failures first. In
the test suite each test gets a store of its own, empty, so that no test sees the failures of
another (and the checkout stays clean): ``VMBSPEC_DB`` names the default store, and
subprocesses inherit it.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _a_failure_store_per_test(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMBSPEC_DB", str(tmp_path / "vmbspec-db"))
