"""Target names on the command line, resolved to factories of target objects.

* ``sim``: the built-in simulator (``adapters.sim.SimTarget``);
* ``sim:BUG[,BUG...]``: a deliberately broken simulator, for seeing what a failure looks like
  (``vmbspec check --target sim:wrap32``); the switches are listed by ``--target sim:help``;
* ``rust``: the Rust core, in process (``adapters.native.RustTarget``);
* ``native:PATH``: any shared library exporting the KMCL-shaped ABI, run in a worker process
  so that a crash or a hang becomes a verdict (``adapters.native.IsolatedTarget``).

Each factory returns a fresh target: one per stateful case, so cases cannot leak state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TargetFactory = Callable[[], Any]


class UnknownTarget(ValueError):
    """A target name that names nothing vmbspec can run."""


def resolve_target(spec: str) -> tuple[str, TargetFactory]:
    """``(display name, factory)`` for a ``--target`` value."""
    kind, _, rest = spec.partition(":")
    if kind == "sim":
        from adapters.sim import BUGS, SimTarget

        bugs = frozenset(b for b in rest.split(",") if b) if rest else frozenset()
        if "help" in bugs or not bugs <= BUGS.keys():
            listing = "; ".join(f"{name}: {what}" for name, what in BUGS.items())
            unknown = sorted(bugs - BUGS.keys() - {"help"})
            prefix = f"unknown simulator bug(s) {', '.join(unknown)}. " if unknown else ""
            raise UnknownTarget(f"{prefix}Bug switches: {listing}")
        name = "sim" if not bugs else f"sim:{','.join(sorted(bugs))}"
        return name, lambda: SimTarget(bugs=bugs)
    if kind == "rust" and not rest:
        try:
            from adapters.native import RustTarget
        except ImportError as error:  # pragma: no cover - depends on the Rust core's presence
            raise UnknownTarget(f"the Rust core is not available: {error}") from error
        return "rust", RustTarget
    if kind == "native" and rest:
        try:
            from adapters.native import IsolatedTarget
        except ImportError as error:  # pragma: no cover
            raise UnknownTarget(f"the native adapter is not available: {error}") from error
        path = rest
        return f"native:{path}", lambda: IsolatedTarget(path)
    raise UnknownTarget(
        f"unknown target {spec!r}; targets: sim, sim:BUG[,BUG], rust, native:PATH"
    )
