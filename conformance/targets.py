"""Target names on the command line, resolved to factories of target objects.

* ``sim``: the built-in simulator (``adapters.sim.SimTarget``);
* ``sim:BUG[,BUG...]``: a deliberately broken simulator, for seeing what a failure looks like
  (``vmbspec check --target sim:wrap32``); ``--target sim:help`` lists the switches;
* ``sim:A5=b[+A3=c...]``: a simulator that follows other options of the readings of the
  documentation (``adapters.sim.readings``), correctly; items are separated by ``,`` or ``+``,
  an item with ``=`` is a reading option and anything else a bug switch, so they mix:
  ``sim:wrap32,A5=b``;
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
    "rust": "vmbspec.adapters.native",
    "native": "vmbspec.adapters.native",
    "remote": "vmbspec.adapters.remote",
}


class UnknownTarget(ValueError):
    """A target name that names nothing vmbspec can run."""


def _sim_help(prefix: str) -> str:
    from vmbspec.adapters.sim import BUGS, READINGS, SIM_DEFAULTS

    width = max(len(name) for name in BUGS)
    bugs = "\n".join(f"  {name:<{width}}  {what}" for name, what in BUGS.items())
    readings = "\n".join(
        f"  {key}={'|'.join(options)}  (without a switch: {SIM_DEFAULTS[key]})"
        for key, options in READINGS.items()
    )
    return (
        f"{prefix}Bug switches (--target sim:BUG[,BUG]):\n{bugs}\n"
        f"Reading options (--target sim:A5=b[+A3=c]; mix with bugs: sim:wrap32,A5=b):\n"
        f"{readings}"
    )


def _sim_items(rest: str) -> tuple[frozenset[str], dict[str, str]]:
    """The bug switches and reading options of ``sim:ITEM[,+]ITEM...``."""
    from vmbspec.adapters.sim import BUGS, READINGS

    bugs: set[str] = set()
    readings: dict[str, str] = {}
    for item in (piece.strip() for piece in rest.replace("+", ",").split(",")):
        if not item:
            continue
        if item == "help":
            raise UnknownTarget(_sim_help(""))
        reading, sep, option = item.partition("=")
        if not sep:
            if item not in BUGS:
                raise UnknownTarget(_sim_help(f"unknown simulator bug {item!r}. "))
            bugs.add(item)
            continue
        reading, option = reading.strip(), option.strip()
        options = READINGS.get(reading)
        if options is None:
            raise UnknownTarget(
                f"unknown reading {reading!r} in sim:{rest}; the simulator's readings: "
                + ", ".join(f"{key}={'|'.join(opts)}" for key, opts in READINGS.items())
            )
        if option not in options:
            raise UnknownTarget(
                f"reading {reading} has no option {option!r} the simulator follows (in "
                f"sim:{rest}); its options: {', '.join(options)}"
            )
        if readings.get(reading, option) != option:
            raise UnknownTarget(
                f"reading {reading} is given twice in sim:{rest} ({readings[reading]} and "
                f"{option})"
            )
        readings[reading] = option
    return frozenset(bugs), readings


def _resolve_sim(rest: str) -> tuple[str, TargetFactory]:
    from vmbspec.adapters.sim import SimTarget

    bugs, readings = _sim_items(rest)
    ordered = sorted(readings, key=lambda key: int(key[1:]))
    items = [*sorted(bugs), *(f"{key}={readings[key]}" for key in ordered)]
    name = "sim" if not items else f"sim:{','.join(items)}"
    return name, lambda: SimTarget(bugs=bugs, readings=readings)


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
            f"unknown target {spec!r}; targets: sim, sim:BUG[,BUG], sim:A5=b[+A3=c], rust, "
            "native:PATH, "
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
