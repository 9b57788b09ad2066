"""Running the lattice on a target and checking every shape.

Two paths, one verdict:

* **per shape** (any target: ``sim``, ``rust``, ``native:PATH``, ``remote:...``): the shapes
  run through the target interface, checked by ``conformance.driver.Driver`` exactly like a
  send of the stateful run. A target is made per chunk of :data:`CHUNK` shapes with one open
  channel; each shape is a fresh packet (``allocate``), the ``send``, the host taking what
  is in the ring (``host_take``, which also checks that a rejected call emitted nothing),
  the host's completion of an accepted packet, and ``free``. So every send meets an idle
  packet, an open channel and an empty ring.
* **native batch** (``rust`` and ``native:PATH``, when ``adapters.native.sweep.run_shapes``
  exists): the library runs a whole batch of shapes itself, each on a fresh channel of
  :data:`~conformance.sweep.lattice.RING_DATA_SIZE` bytes and a fresh packet, and hands back
  ``(status, packet, completion calls)`` per shape; :mod:`.evaluate` checks them against the
  batch verdicts. Without that function, or for a profile the batch verdicts do not cover,
  the per-shape path runs.

Either way, a shape that does not conform is run again *alone* on a fresh target through the
driver: the failure it reports names the requirements, and its steps (create, open, allocate,
send, ...) are what the replay file holds. Failures are grouped by requirement in the report.
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from vmbspec.conformance.driver import Driver, Evidence, Step
from vmbspec.conformance.guard import TargetRaised, close_quietly
from vmbspec.conformance.runner import (
    Failure,
    InternalError,
    Problem,
    _classify,
    _make_target,
    _problem,
)
from vmbspec.conformance.steps import Limits
from vmbspec.conformance.sweep import evaluate
from vmbspec.conformance.sweep.lattice import (
    RING_DATA_SIZE,
    LatticeSpec,
    Shape,
    chain_length,
    shapes,
    sizes,
)
from vmbspec.conformance.targets import TargetFactory
from vmbspec.spec.batch import BatchRange, BatchVerdict, batch_supported
from vmbspec.spec.readings import Profile

#: Shapes per target on the per-shape path (the driver's model grows by a packet a shape).
CHUNK = 1000
#: Shapes per call of a native batch runner.
NATIVE_BATCH = 1 << 16
#: A chunk opens one channel and allocates a packet per shape.
_LIMITS = Limits(max_index=CHUNK + 8, max_channels=2, max_total_ring_bytes=2 * RING_DATA_SIZE)

NativeRunner = Callable[[str, int, Sequence[tuple[Any, ...]]], list[tuple[int, bytes | None, int]]]
ProgressFn = Callable[[int, int], None]


@dataclass
class ShapeFailure:
    """A shape that does not conform, with the failure its lone re-run reported."""

    shape: Shape
    failure: Failure


@dataclass
class SweepResult:
    """What a sweep found."""

    target: str
    profile: Profile
    lattice: LatticeSpec
    sizes: dict[int, int]
    path: str = "per-shape"
    shapes_run: int = 0
    failures: list[ShapeFailure] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    interrupted: bool = False
    #: The run stopped after this many failing shapes (``--max-failures``); None: it did not.
    stopped_after: int | None = None
    #: Why the run was cut short by the target ("agent unreachable after shape N: ..."), or "".
    stopped: str = ""
    seconds: float = 0.0
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def total(self) -> int:
        return sum(self.sizes.values())

    @property
    def passed(self) -> bool:
        return (not self.failures and not self.problems and not self.interrupted
                and not self.stopped)


def shape_step(shape: Shape, packet: int) -> Step:
    """The driver's ``send`` step of a shape."""
    mdl, offset, length, flags, buffer, buffer_length = shape
    return {
        "op": "send",
        "packet": packet,
        "buffer": None if buffer is None else buffer.hex(),
        "buffer_length": buffer_length,
        "mdl": None if mdl is None else [[bo, bc, list(pfns)] for bo, bc, pfns in mdl],
        "mdl_offset": offset,
        "mdl_length": length,
        "flags": flags,
    }


def _open(driver: Driver) -> None:
    driver.execute({"op": "create_channel", "ring_data_size": RING_DATA_SIZE})
    driver.execute({"op": "open", "channel": 0})


def run_one(driver: Driver, shape: Shape) -> None:
    """One shape on the driver's open channel 0: a fresh packet, the send, the host side."""
    packet = len(driver.packets)
    driver.execute({"op": "allocate", "channel": 0})
    driver.execute(shape_step(shape, packet))
    driver.execute({"op": "host_take", "channel": 0})
    if driver.packets[packet].transaction_id is not None:
        driver.execute({"op": "host_complete", "packet": packet})
    if driver.sendable(driver.packets[packet]):
        driver.execute({"op": "free", "packet": packet})


_close = close_quietly


def run_alone(shape: Shape, factory: TargetFactory, profile: Profile) -> Failure | None:
    """The shape on a fresh target, from channel creation on: its failure, if any, with the
    steps a replay file keeps. An error of vmbspec's own raises ``InternalError``."""
    try:
        target = factory()
    except Exception as error:
        return Failure("sweep", ("SEED-RETURN",), f"creating the target failed: {error}", [],
                       "target-error")
    driver = Driver(target, profile, Evidence(), _LIMITS)
    try:
        _open(driver)
        run_one(driver, shape)
    except Exception as error:
        kind, requirements, message = _classify(error)
        return Failure("sweep", requirements, message, list(driver.log), kind)
    finally:
        _close(target)
    return None


def _failure_of(shape: Shape, factory: TargetFactory, profile: Profile,
                chunk_error: BaseException | None, chunk_log: list[Step]) -> Failure:
    """The failure of a shape found failing: its lone run's, or where the shape conforms alone
    (the failure needed the shapes before it on the same target), the chunk's."""
    alone = run_alone(shape, factory, profile)
    if alone is not None:
        return alone
    if chunk_error is not None:
        kind, requirements, message = _classify(chunk_error)
        return Failure("sweep", requirements,
                       f"{message} (only after the shapes before it on the same target)",
                       chunk_log, kind)
    return Failure("sweep", ("SEED-RETURN",), "the native batch runner's result did not "
                   "conform, but the shape conforms when run alone through the target "
                   "interface", [], "flaky")


class _Enough(Exception):
    """``--max-failures`` failing shapes were found."""


def _unreachable(error: BaseException) -> bool:
    """The error says the target can no longer be reached (a remote agent's fault of kind
    ``unreachable``), here or in what it wraps."""
    seen: BaseException | None = error
    while seen is not None:
        if getattr(seen, "kind", None) == "unreachable":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _add_failure(result: SweepResult, failure: ShapeFailure, limit: int | None) -> None:
    result.failures.append(failure)
    if limit is not None and len(result.failures) >= limit:
        result.stopped_after = limit
        raise _Enough


def run_per_shape(
    shapes: Iterator[Shape], factory: TargetFactory, result: SweepResult,
    progress: ProgressFn, max_failures: int | None = None,
) -> None:
    """The per-shape path (see the module)."""
    pending = next(shapes, None)
    while pending is not None:
        try:
            target = _make_target(factory)
        except TargetRaised as error:
            kind, requirements, message = _classify(error)
            failure = Failure("sweep", requirements, message, [], kind)
            result.failures.append(ShapeFailure(pending, failure))
            return  # no target to go on with
        driver = Driver(target, result.profile, result.evidence, _LIMITS)
        try:
            _open(driver)
            for _ in range(CHUNK):
                if pending is None:
                    break
                shape, pending = pending, next(shapes, None)
                result.shapes_run += 1
                try:
                    run_one(driver, shape)
                except Exception as error:
                    _classify(error)  # an error of vmbspec's own raises InternalError here
                    failure = _failure_of(shape, factory, result.profile, error,
                                          list(driver.log))
                    if failure.kind == "unreachable" or _unreachable(error):
                        # A remote agent lost for good (conformance.runner does the same):
                        # one verdict, not a failure per remaining shape.
                        if failure.kind != "unreachable":
                            result.failures.append(ShapeFailure(shape, failure))
                        result.stopped = (f"agent unreachable after shape {result.shapes_run} "
                                          f"({describe(shape)}): {failure.message}")
                        return
                    _add_failure(result, ShapeFailure(shape, failure), max_failures)
                    break  # the target's state is unknown: a fresh one for the next shape
                finally:
                    progress(result.shapes_run, result.total)
        finally:
            _close(target)


def native_library(target: str) -> str | None:
    """The shared library a ``rust`` or ``native:PATH`` target loads, else None."""
    kind, _, rest = target.partition(":")
    if kind == "rust" and not rest:
        from vmbspec.adapters.rust.build import library_path

        return str(library_path())
    if kind == "native" and rest:
        return os.path.abspath(os.path.expanduser(rest))
    return None


def native_runner() -> NativeRunner | None:
    """``adapters.native.sweep.run_shapes`` if that module provides it, else None."""
    try:
        native_sweep = importlib.import_module("vmbspec.adapters.native.sweep")
    except ImportError:
        return None
    runner = getattr(native_sweep, "run_shapes", None)
    return runner if callable(runner) else None


def _checked_results(results: Any, count: int) -> list[evaluate.Result]:
    """The runner's results, checked for shape before they are judged."""
    if not isinstance(results, list) or len(results) != count:
        raise InternalError(f"the native batch runner returned {type(results).__name__} "
                            f"of {len(results) if isinstance(results, list) else '?'} "
                            f"results for {count} shapes")
    for position, item in enumerate(results):
        if not (isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], int)
                and 0 <= item[0] <= 0xFFFF_FFFF
                and (item[1] is None or isinstance(item[1], bytes))
                and isinstance(item[2], int) and item[2] >= 0):
            raise InternalError(f"the native batch runner's result {position} is not "
                                f"(status, bytes or None, calls): {str(item)[:80]}")
    return results


def _fault_failure(shape: Shape, fault: Any) -> Failure:
    """The failure of a shape the native runner reported as a fault (a read past a guard page,
    a crash, a hang): a verdict of its own, with the steps of the shape alone for the replay
    file (not run here: the shape may bring this process down)."""
    kind = str(getattr(fault, "kind", "crash"))
    detail = str(getattr(fault, "detail", fault))
    guard = getattr(fault, "guard", None)
    message = f"{describe(shape)}: the target {kind}ed in the native sweep runner: {detail}"
    if guard is not None:
        message += (" (the target touched memory outside the MDLs and buffer the call "
                    "described)")
    steps = [{"op": "create_channel", "ring_data_size": RING_DATA_SIZE},
             {"op": "open", "channel": 0}, {"op": "allocate", "channel": 0},
             shape_step(shape, 0)]
    return Failure("sweep", ("SEED-RETURN", "MDL-PFNS") if guard else ("SEED-RETURN",),
                   message, steps, "hang" if kind == "hang" else "crash")


def describe(shape: Shape) -> str:
    mdl, offset, length, flags, buffer, buffer_length = shape
    chain = "NULL" if mdl is None else "[" + ", ".join(
        f"{{ByteOffset={bo:#x}, ByteCount={bc:#x}}}" for bo, bc, _ in mdl) + "]"
    shown = "NULL" if buffer is None else f"<{len(buffer)} bytes>"
    return (f"VmbPacketSendWithExternalMdl(Packet, {shown}, {buffer_length:#x}, {chain}, "
            f"{offset:#x}, {length:#x}, {flags:#x})")


def _run_batch(
    runner: NativeRunner, library: str, part: Sequence[Shape], result: SweepResult,
    max_failures: int | None,
) -> list[evaluate.Result | None]:
    """The runner's results for ``part``; None for a shape that faulted (recorded as a
    failure), the runner resumed after it."""
    results: list[evaluate.Result | None] = []
    while len(results) < len(part):
        rest = part[len(results):]
        try:
            results += _checked_results(runner(library, RING_DATA_SIZE, rest), len(rest))
        except InternalError:
            raise
        except Exception as error:
            fault = getattr(error, "fault", None)
            before = getattr(error, "results", None)
            if fault is None or not isinstance(before, list) or len(before) >= len(rest):
                detail = f"{type(error).__name__}: {error}"
                raise InternalError(f"the native batch runner failed: {detail}") from error
            results += _checked_results(before, len(before))
            shape = part[len(results)]
            results.append(None)
            _add_failure(result, ShapeFailure(shape, _fault_failure(shape, fault)),
                         max_failures)
    return results


def run_native(
    groups: dict[int, Iterator[Shape]], library: str, runner: NativeRunner,
    factory: TargetFactory, result: SweepResult, progress: ProgressFn,
    max_failures: int | None = None,
) -> None:
    """The native batch path, :data:`NATIVE_BATCH` shapes at a time: the batch verdicts of a
    part, the runner's results for it, the comparison."""
    for group in groups.values():
        while chunk := list(itertools.islice(group, NATIVE_BATCH)):
            by_length: dict[int, list[Shape]] = {}
            for shape in chunk:
                by_length.setdefault(chain_length(shape), []).append(shape)
            for part in by_length.values():
                _run_part(part, library, runner, factory, result, max_failures)
            progress(result.shapes_run, result.total)


def _run_part(
    part: list[Shape], library: str, runner: NativeRunner, factory: TargetFactory,
    result: SweepResult, max_failures: int | None,
) -> None:
    """Shapes whose chains have one length: verdicts, results, comparison."""
    verdict = evaluate.verdicts(part, RING_DATA_SIZE, result.profile)
    assert verdict is not None  # the caller checked native_supported
    results = _run_batch(runner, library, part, result, max_failures)
    lanes = [i for i, r in enumerate(results) if r is not None]
    picked = _select(verdict, np.asarray(lanes, dtype=np.int64))
    got = [r for r in results if r is not None]
    failing = evaluate.compare(picked, [part[i] for i in lanes], got)
    result.shapes_run += len(part)
    for position in failing:
        shape = part[lanes[position]]
        failure = _failure_of(shape, factory, result.profile, None, [])
        _add_failure(result, ShapeFailure(shape, failure), max_failures)


def native_supported(profile: Profile, lattice: LatticeSpec) -> bool:
    """The batch verdicts cover this profile for every chain length of the lattice."""
    return all(batch_supported(profile, n) is None for n in range(lattice.chains + 1))


def _select(verdict: BatchVerdict, lanes: np.ndarray) -> BatchVerdict:
    """The lanes ``lanes`` of a batch verdict."""
    changes = {f.name: getattr(verdict, f.name)[lanes] for f in fields(verdict)
               if f.name != "ranges"}
    ranges = tuple(
        BatchRange(r.present[lanes], r.mdl_index, r.byte_offset[lanes], r.byte_count[lanes],
                   r.first_pfn[lanes], r.pfn_count[lanes])
        for r in verdict.ranges
    )
    return replace(verdict, ranges=ranges, **changes)


class Progress:
    """Progress on stderr: shapes done, elapsed time and an estimate of the time left."""

    def __init__(self, quiet: bool, every: float = 2.0) -> None:
        self.quiet = quiet
        self.every = every
        self.started = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        now = time.perf_counter()
        if now - self.last < self.every and done < total:
            return
        self.last = now
        elapsed = now - self.started
        left = elapsed / done * (total - done) if done else 0.0
        print(f"sweep: {done}/{total} shapes ({100 * done / total:.1f}%), {elapsed:.1f} s, "
              f"about {left:.0f} s left", file=sys.stderr, flush=True)


def sweep(
    target: str, factory: TargetFactory, profile: Profile, lattice: LatticeSpec,
    progress: ProgressFn | None = None, use_native: bool = True,
    max_failures: int | None = None,
) -> SweepResult:
    """Build the lattice and run it on ``target`` (see the module)."""
    result = SweepResult(target, profile, lattice, sizes(lattice))
    groups = {n: shapes(lattice, n) for n in range(lattice.chains + 1)}
    report = progress or (lambda done, total: None)
    started = time.perf_counter()
    try:
        library = native_library(target) if use_native else None
        runner = native_runner() if library is not None else None
        if library is not None and runner is not None and native_supported(profile, lattice):
            result.path = "native-batch"
            run_native(groups, library, runner, factory, result, report, max_failures)
        else:
            result.path = "per-shape"
            run_per_shape(itertools.chain.from_iterable(groups.values()), factory, result,
                          report, max_failures)
    except _Enough:
        pass
    except KeyboardInterrupt:
        result.interrupted = True
    except InternalError as error:
        result.problems.append(_problem("sweep", error))
    finally:
        result.seconds = time.perf_counter() - started
    return result
