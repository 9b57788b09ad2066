"""The ``--target`` names ``rust`` and ``native:PATH``, resolved to factories of targets
(``conformance/targets.py`` calls :func:`resolve`), with their options checked: a bad one is a
ValueError the command line reports as a usage error."""

from __future__ import annotations

import os
from typing import Any

from .abi import load_library
from .arguments import check_guard, check_seconds
from .errors import TargetCrashed, TargetError
from .inprocess import NativeTarget, RustTarget
from .isolated import DEFAULT_START_TIMEOUT, DEFAULT_TIMEOUT, IsolatedTarget, shared_worker


def _probe_isolated(path: str, start_timeout: float, guard: bool) -> None:
    """Starts the shared worker of ``path`` (so it loads the library); ValueError if it
    cannot. The worker stays up for the targets that follow."""
    worker = shared_worker(path, start_timeout, guard)
    try:
        worker.new_id()
    except TargetError as error:
        raise ValueError(str(error)) from None
    except TargetCrashed as error:
        raise ValueError(f"loading {path} in a worker process failed: {error.detail}") from None


def resolve(spec: str, options: dict[str, Any]) -> tuple[str, Any]:
    """``(display name, factory)`` for ``rust`` and ``native:PATH`` (``conformance.targets``).

    * ``rust``: the built Rust core, in this process; ``options["isolate"] is True`` runs it in
      a worker process instead.
    * ``native:PATH``: the library at PATH, in a worker process unless
      ``options["isolate"] is False``.

    Isolated targets share one worker process per library (:class:`IsolatedTarget` with
    ``shared=True``): the suite makes a fresh target for every case and example, hundreds a run,
    and a process start each would cost more than the run. Each target has its own channels and
    packets in that process, but they share one instance of the library: a library with global
    state (a counter, a cache, a leak) carries it from one case to the next, exactly as it does
    in process. The worker is replaced only after a crash or hang. ``options["timeout"]`` is how
    long one call may take (default :data:`DEFAULT_TIMEOUT`) before it counts as a hang.

    ``options["guard"]`` (True or unset: guard pages where the platform allows; False: none,
    ``--no-guard``) lays every send's MDLs and buffer against guard pages (:mod:`.guard`). A
    read past them is a ``crash`` verdict naming the call in a worker; in process it ends the
    process, after a message on stderr saying which MDL or buffer was read past and to run
    the target isolated.

    Raises ValueError with a message for the user when the library is missing, is not a shared
    library, or lacks part of the ABI, or when ``timeout`` is not a finite number of seconds
    in (0, :data:`MAX_TIMEOUT`], ``isolate`` is not True, False or None, or ``guard`` is not
    True, False or None (or True where guard pages are not available).
    """
    kind, separator, rest = spec.partition(":")
    isolate = options.get("isolate")
    if isolate is not None and not isinstance(isolate, bool):
        raise ValueError(f"the isolate option must be true, false or unset, not {isolate!r}")
    timeout = options.get("timeout")
    guard_option = options.get("guard")
    if guard_option is not None and not isinstance(guard_option, bool):
        raise ValueError(f"the guard option must be true, false or unset, not {guard_option!r}")
    try:
        timeout = DEFAULT_TIMEOUT if timeout is None else check_seconds("the timeout", timeout)
    except TypeError as error:  # a usage error all the same
        raise ValueError(str(error)) from None
    guard = check_guard(guard_option)

    if kind == "rust":
        if separator:
            raise ValueError(f"target {spec!r}: `rust` takes no argument")
        from vmbspec.adapters.rust.build import library_path

        try:
            path = str(library_path())
        except FileNotFoundError as error:
            raise ValueError(str(error)) from None
        if isolate is True:
            _probe_isolated(path, DEFAULT_START_TIMEOUT, guard)
            name = "rust (isolated)"
            return name, lambda: IsolatedTarget(path, timeout, name=name, guard=guard)
        load_library(path)  # LibraryError (a ValueError) names what is wrong
        return "rust", lambda: RustTarget(guard=guard)

    if kind != "native" or not separator:
        raise ValueError(f"target {spec!r}: expected `rust` or `native:PATH`")
    if not rest:
        raise ValueError("native:PATH needs the path of a shared library after the colon")
    path = os.path.abspath(os.path.expanduser(rest))
    if not os.path.exists(path):
        raise ValueError(f"native:{rest}: no such file {path}")
    if not os.path.isfile(path):
        raise ValueError(f"native:{rest}: {path} is not a file")
    name = f"native:{rest}"
    if isolate is False:
        load_library(path)
        return name, lambda: NativeTarget(path, name=name, guard=guard)
    _probe_isolated(path, DEFAULT_START_TIMEOUT, guard)
    return name, lambda: IsolatedTarget(path, timeout, name=name, guard=guard)
