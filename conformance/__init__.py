"""The conformance suite: runs against any target through an adapter, with the spec as oracle.

The one public entry point is :func:`run_conformance`::

    from vmbspec.conformance import run_conformance
    report = run_conformance(MyTarget)   # or "sim", "rust", "native:./libx.so"
    assert report.passed, report.summary()
"""

from vmbspec.conformance.runner import ConformanceReport, Failure, run_conformance

__all__ = ["ConformanceReport", "Failure", "run_conformance"]
