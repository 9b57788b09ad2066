"""What the malformed-input benchmarks share: loading a test module by path, and running one
generator and check for a number of inputs.

The bounded Hypothesis tests (``tests/...``) hold each interface's generator and the check of
its outcomes; a benchmark runs the same pair at scale. ``run_campaign`` draws in seeded rounds
until at least ``inputs`` inputs have run, so a run is repeatable; any exception the check
lets through is a *crash*, what the campaign looks for, kept with its last frames.
"""

from __future__ import annotations

import collections
import importlib.util
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent


def load_test_module(relative: str) -> ModuleType:
    """A test module, loaded by path (the tests are not a package)."""
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_campaign(
    strategy: st.SearchStrategy[Any], check: Callable[[Any], str], inputs: int
) -> tuple[collections.Counter[str], list[str], float]:
    """Run ``check`` on generated inputs until at least ``inputs`` have run: the outcomes it
    named, the crashes, and the seconds it took."""
    outcomes: collections.Counter[str] = collections.Counter()
    crashes: list[str] = []
    started = time.perf_counter()
    round_number = 0
    while sum(outcomes.values()) + len(crashes) < inputs:
        round_number += 1

        @seed(round_number)
        @settings(max_examples=inputs - sum(outcomes.values()) - len(crashes), deadline=None,
                  database=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def run(value: Any) -> None:
            try:
                outcomes[check(value)] += 1
            except Exception:  # any other outcome is what the campaign looks for
                crashes.append(traceback.format_exc(limit=-3))

        run()
    return outcomes, crashes, time.perf_counter() - started
