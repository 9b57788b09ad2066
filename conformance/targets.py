"""Target names on the command line, resolved to factories of target objects.

* ``sim``: the built-in simulator (``adapters.sim.SimTarget``);
* ``sim:BUG[,BUG...]``: a deliberately broken simulator, for seeing what a failure looks like
  (``vmbspec check --target sim:wrap32``); ``--target sim:help`` lists the switches;
* ``rust``: the Rust core (``adapters.native``);
* ``native:PATH``: any shared library exporting the KMCL-shaped ABI (``adapters.native``);
* ``remote:...``: a target behind the remote agent protocol (``adapters.remote``).

Each kind other than ``sim`` is resolved by a function ``resolve(rest, options)`` in the adapter
module named in :data:`RESOLVERS`, which returns ``(display name, factory)`` and raises
``ValueError`` with a message for the user when ``rest`` names nothing it can run. ``options``
carries command-line switches such as ``isolate``. Each factory returns a fresh target: one per
stateful case, so cases cannot leak state.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

TargetFactory = Callable[[], Any]

#: kind -> the module whose ``resolve(rest, options)`` builds targets of that kind.
RESOLVERS: dict[str, str] = {
    "rust": "adapters.native",
    "native": "adapters.native",
    "remote": "adapters.remote",
}


class UnknownTarget(ValueError):
    """A target name that names nothing vmbspec can run."""


def _resolve_sim(rest: str) -> tuple[str, TargetFactory]:
    from adapters.sim import BUGS, SimTarget

    bugs = frozenset(b for b in rest.split(",") if b) if rest else frozenset()
    if "help" in bugs or not bugs <= BUGS.keys():
        width = max(len(name) for name in BUGS)
        listing = "\n".join(f"  {name:<{width}}  {what}" for name, what in BUGS.items())
        unknown = sorted(bugs - BUGS.keys() - {"help"})
        prefix = f"unknown simulator bug(s) {', '.join(unknown)}. " if unknown else ""
        raise UnknownTarget(f"{prefix}Bug switches (--target sim:BUG[,BUG]):\n{listing}")
    name = "sim" if not bugs else f"sim:{','.join(sorted(bugs))}"
    return name, lambda: SimTarget(bugs=bugs)


def resolve_target(
    spec: str, options: Mapping[str, Any] | None = None
) -> tuple[str, TargetFactory]:
    """``(display name, factory)`` for a ``--target`` value."""
    kind, _, rest = spec.partition(":")
    if kind == "sim":
        return _resolve_sim(rest)
    module_name = RESOLVERS.get(kind)
    if module_name is None:
        raise UnknownTarget(
            f"unknown target {spec!r}; targets: sim, sim:BUG[,BUG], rust, native:PATH, "
            "remote:stdio:COMMAND, remote:tcp://HOST:PORT"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownTarget(f"targets of kind {kind!r} are not available: {error}") from error
    resolve = getattr(module, "resolve", None)
    if resolve is None:
        raise UnknownTarget(f"targets of kind {kind!r} are not available yet")
    try:
        name, factory = resolve(spec, dict(options or {}))
    except ValueError as error:
        raise UnknownTarget(str(error)) from error
    return str(name), factory
