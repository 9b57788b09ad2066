"""``vmbspec check --workers N``: one run split over N processes, with one process's results.

The stateful run is made of batches (``conformance.runner``: :data:`BATCH_EXAMPLES` examples
each, batch ``b`` seeded ``batch_seed(seed, b)``, each a Hypothesis test run of its own). With
N workers, batch ``b`` runs in worker ``b mod N``, and case ``i`` of the catalog in worker
``i mod N``. The batches and their seeds are those of a single-process run, so the examples
generated are the same set; the parent merges the results in batch order (and the cases in
catalog order), so the per-requirement counts, the coverage, the generation depth and the
``steps_digest`` (a digest over per-batch digests, computed the same way in one process) equal
a single-process run's.

* Processes are started with the ``spawn`` context: each worker resolves its own target from
  the target *text* (``conformance.targets.resolve_target``), so nothing unpicklable crosses.
  Worker ``i`` uses target ``i mod len(targets)`` (``--target`` given several times: one
  ``remote:tcp://...`` per guest, say).
* The first failure in batch order wins. When a worker reports a failure in batch ``b``, the
  others skip every batch after ``b`` at their next batch boundary (batches before ``b`` still
  run: one of them may hold an earlier failure, and their counts belong to the run). The
  failure is minimised once, in the parent, on the target of the worker that found it, from
  the failing batch's last log.
* Ctrl-C (or SIGTERM) in the parent sets a shared stop event; each worker (which ignores
  SIGINT itself) turns it into the suite's own stop request (``conformance.interrupt``), ends
  its batch at the next step and sends what it did: the partial report is merged and the run
  is marked interrupted. An exception of vmbspec's own in a worker comes back with its
  traceback as a problem of the run (exit 3, the traceback saved, as in one process).
"""

from __future__ import annotations

import collections
import multiprocessing
import queue as queue_module
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from vmbspec.conformance import interrupt
from vmbspec.conformance.cases import load_cases
from vmbspec.conformance.driver import Evidence
from vmbspec.conformance.machine import RunState
from vmbspec.conformance.runner import (
    ConformanceReport,
    Failure,
    InternalError,
    Problem,
    ProgressFn,
    _problem,
    _run_stateful,
    _unreachable_reason,
    batch_sizes,
    combine_digests,
    minimise_into,
    run_case,
)
from vmbspec.conformance.targets import TargetFactory, resolve_target
from vmbspec.spec.readings import Profile

#: How long the parent waits for the workers to send what they did after a stop, before it
#: ends them (a worker stuck in a call that never returns).
STOP_GRACE_SECONDS = 30.0
#: A worker reports its progress every this many examples (and at the end of each batch).
PROGRESS_EVERY = 10


@dataclass
class WorkerJob:
    """What one worker is to do: picklable, so only texts and numbers."""

    index: int
    target: str
    options: dict[str, Any]
    profile_name: str
    profile_choices: dict[str, str]
    cases: list[int]
    batches: list[tuple[int, int]]
    steps_per_example: int
    seed: int


@dataclass
class BatchResult:
    """One batch's share of the report, as the worker that ran it saw it."""

    batch: int
    evidence: Evidence
    examples: int
    shrink_runs: int
    depth: collections.Counter[str]
    digest: str
    failures: list[Failure] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    stopped: str = ""
    not_run: list[str] = field(default_factory=list)
    to_minimise: bool = False
    shrink_seconds: float = 0.0
    reproducible: bool = True
    interrupted: bool = False

    @property
    def ends_run(self) -> bool:
        """The stateful run stops at this batch (as it would in one process)."""
        return bool(self.failures or self.problems or self.stopped or self.interrupted)


# ---------------------------------------------------------------------------------------------
# The worker process
# ---------------------------------------------------------------------------------------------


def _watch_stop(stop: Any) -> None:
    """In a worker: the parent's stop event becomes the suite's own stop request, taken
    between steps like Ctrl-C in one process. It polls: a process that ended while waiting
    on a multiprocessing Event would leave the parent's ``set()`` waiting for it forever."""
    while not stop.is_set():
        time.sleep(0.05)
    interrupt.request()


def worker_main(job: WorkerJob, results: Any, stop: Any, limit: Any) -> None:
    """The body of worker ``job.index``: its cases, then its batches; every result goes to
    ``results``, then ``("done", index)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; see the docstring
    threading.Thread(target=_watch_stop, args=(stop,), daemon=True).start()
    try:
        profile = Profile(job.profile_name, job.profile_choices)
        _name, factory = resolve_target(job.target, job.options)
        if _run_cases(job, factory, profile, results):
            _run_batches(job, factory, profile, results, limit)
    except BaseException:  # a bug of vmbspec: the parent reports it
        results.put(("error", job.index, traceback.format_exc()))
    finally:
        results.put(("done", job.index, None))


def _run_cases(job: WorkerJob, factory: TargetFactory, profile: Profile, results: Any) -> bool:
    """The worker's cases; False when its target became unreachable (it stops there)."""
    if not job.cases:
        return True
    catalog = load_cases()
    for index in job.cases:
        if interrupt.requested():
            return False
        case = catalog[index]
        evidence = Evidence()
        problem: Problem | None = None
        try:
            failure = run_case(case, factory, profile, evidence)
        except InternalError as error:
            failure, problem = None, _problem(f"case:{case.id}", error)
        results.put(("case", index, (failure, problem, evidence)))
        if failure is not None and failure.kind == "unreachable":
            return False
    return True


def _run_batches(
    job: WorkerJob, factory: TargetFactory, profile: Profile, results: Any, limit: Any
) -> None:
    """The worker's batches in order, each skipped once a batch before it ended the run."""
    for batch, size in job.batches:
        if batch > limit.value or interrupt.requested():
            return
        result = _run_batch(job, factory, profile, batch, size, results)
        results.put(("batch", batch, result))
        if result.ends_run:
            with limit.get_lock():
                limit.value = min(limit.value, batch)
            return


def _run_batch(
    job: WorkerJob, factory: TargetFactory, profile: Profile, batch: int, size: int,
    results: Any,
) -> BatchResult:
    report = ConformanceReport(job.target, profile, job.seed, 0, Evidence())
    state = RunState(report.evidence, job.steps_per_example)

    def progress(_phase: str, done: int, total: int) -> None:
        if done % PROGRESS_EVERY == 0 or done >= total:
            results.put(("progress", job.index, done))

    interrupted = False
    to_minimise = False
    try:
        to_minimise = _run_stateful(
            report, factory, profile, size, job.steps_per_example, job.seed, progress,
            batches=[(batch, size)], state=state, minimise_failure=False,
        )
    except KeyboardInterrupt:
        interrupted = True
    return BatchResult(
        batch=batch, evidence=report.evidence, examples=state.examples,
        shrink_runs=state.shrink_runs, depth=state.depth, digest=state.digest.hexdigest(),
        failures=report.failures, problems=report.problems, stopped=report.stopped,
        not_run=report.not_run, to_minimise=to_minimise,
        shrink_seconds=report.shrink_seconds, reproducible=report.reproducible,
        interrupted=interrupted,
    )


# ---------------------------------------------------------------------------------------------
# The parent
# ---------------------------------------------------------------------------------------------


@dataclass
class _Collected:
    """What the parent received from the workers."""

    cases: dict[int, tuple[Failure | None, Problem | None, Evidence]] = field(
        default_factory=dict)
    batches: dict[int, BatchResult] = field(default_factory=dict)
    errors: list[tuple[int, str]] = field(default_factory=list)
    #: Examples of each worker's batch in progress, for the aggregate progress line.
    current: dict[int, int] = field(default_factory=dict)
    interrupted: bool = False
    unreachable: bool = False
    workers: int = 1


def run_parallel(
    report: ConformanceReport,
    texts: list[str],
    options: dict[str, Any],
    factories: list[tuple[str, TargetFactory]],
    *,
    cases: bool,
    stateful: bool,
    examples: int,
    steps_per_example: int,
    seed: int,
    progress: ProgressFn | None,
    workers: int,
    batch_examples: int,
) -> None:
    """The case catalog and the stateful run split over ``workers`` processes, merged into
    ``report`` as one process would have written it. Ctrl-C raises ``KeyboardInterrupt``
    after the partial results are merged."""
    catalog = load_cases() if cases else []
    batches = batch_sizes(examples, batch_examples) if stateful and examples > 0 else []
    profile = report.profile
    jobs = [
        WorkerJob(index, texts[index % len(texts)], options, profile.name,
                  dict(profile.choices), list(range(index, len(catalog), workers)),
                  batches[index::workers], steps_per_example, seed)
        for index in range(workers)
    ]
    jobs = [job for job in jobs if job.cases or job.batches]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    stop = context.Event()
    limit = context.Value("q", len(batches))
    processes = {job.index: context.Process(target=worker_main, args=(job, results, stop, limit),
                                             name=f"vmbspec-worker-{job.index}", daemon=True)
                 for job in jobs}
    collected = _Collected(workers=workers)
    try:
        for process in processes.values():
            process.start()
        _collect(collected, processes, results, stop, limit, len(catalog), examples, progress)
    finally:
        stop.set()
        _end(processes)
        _merge(report, collected, catalog, batches, examples, steps_per_example, factories,
               workers)
    if collected.interrupted:
        raise KeyboardInterrupt


def _collect(
    collected: _Collected, processes: dict[int, Any], results: Any, stop: Any, limit: Any,
    case_count: int, examples: int, progress: ProgressFn | None,
) -> None:
    """Receive the workers' results until every worker is done (or gone)."""
    done: set[int] = set()
    stop_deadline = 0.0
    while len(done) < len(processes):
        if not collected.interrupted and interrupt.requested():
            collected.interrupted = True
            stop.set()
        if stop.is_set() and not stop_deadline:
            stop_deadline = time.monotonic() + STOP_GRACE_SECONDS
        if stop_deadline and time.monotonic() > stop_deadline:
            return  # the rest are ended by _end
        try:
            kind, key, payload = results.get(timeout=0.2)
        except queue_module.Empty:
            for index, process in processes.items():
                if index not in done and process.exitcode is not None:
                    done.add(index)
                    if process.exitcode != 0:
                        collected.errors.append((index, _died(index, process.exitcode)))
            continue
        if kind == "done":
            done.add(key)
        elif kind == "error":
            collected.errors.append((key, payload))
            stop.set()
        elif kind == "case":
            collected.cases[key] = payload
            failure = payload[0]
            if failure is not None and failure.kind == "unreachable":
                collected.unreachable = True
                limit.value = -1  # no stateful run after a target was lost in the cases
            if progress is not None:
                progress("cases", len(collected.cases), case_count)
        elif kind == "progress":
            collected.current[key] = payload
            _stateful_progress(collected, examples, progress)
        elif kind == "batch":
            collected.batches[key] = payload
            collected.current.pop(key % collected.workers, None)
            if payload.ends_run:
                with limit.get_lock():
                    limit.value = min(limit.value, key)
            _stateful_progress(collected, examples, progress)


def _died(index: int, exitcode: int) -> str:
    return (f"worker {index} ended with exit code {exitcode} before it reported (a script "
            "that calls run_conformance(workers=N) must do so under `if __name__ == "
            "'__main__':`: each worker process imports the script's main module)")


def _stateful_progress(collected: _Collected, examples: int, progress: ProgressFn | None) -> None:
    if progress is not None:
        finished = sum(result.examples for result in collected.batches.values())
        progress("stateful", min(examples, finished + sum(collected.current.values())),
                 examples)


def _end(processes: dict[int, Any]) -> None:
    """Wait a moment for the workers to exit, then end those that did not."""
    deadline = time.monotonic() + 5.0
    for process in processes.values():
        if process.pid is None:
            continue
        process.join(timeout=max(0.1, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(timeout=5.0)


def _merge(
    report: ConformanceReport, collected: _Collected, catalog: list[Any],
    batches: list[tuple[int, int]], examples: int, steps_per_example: int,
    factories: list[tuple[str, TargetFactory]], workers: int,
) -> None:
    """The workers' results into ``report``: the cases in catalog order, then the batches in
    batch order up to the first that ended the run (the first failure in batch order)."""
    for index, details in collected.errors:
        report.problems.append(Problem(f"worker {index}", "internal-error",
                                       details.strip().splitlines()[-1], details))
    _merge_cases(report, collected, catalog, examples if batches else 0)
    if collected.unreachable:
        return
    state = RunState(report.evidence, steps_per_example)
    digests: list[str] = []
    reproducible = True
    for batch, _size in batches:
        result = collected.batches.get(batch)
        if result is None:
            break
        report.evidence.merge(result.evidence)
        state.examples += result.examples
        state.shrink_runs += result.shrink_runs
        state.depth.update(result.depth)
        digests.append(result.digest)
        reproducible = reproducible and result.reproducible
        if result.ends_run:
            _take_ending(report, result, examples, state.examples,
                         factories[(batch % workers) % len(factories)][1])
            break
    if batches:
        report.examples = state.examples
        report.shrink_runs = state.shrink_runs
        report.steps_digest = combine_digests(digests)
        report.generation = state.depth_report()
        report.reproducible = reproducible


def _merge_cases(
    report: ConformanceReport, collected: _Collected, catalog: list[Any], examples: int
) -> None:
    previous: Failure | None = None
    lost: list[str] = []
    for index, case in enumerate(catalog):
        if index not in collected.cases:
            lost.append(f"case:{case.id}")
            continue
        failure, problem, evidence = collected.cases[index]
        report.evidence.merge(evidence)
        if problem is not None:
            report.problems.append(problem)
        if failure is not None and failure.kind == "unreachable":
            if not report.stopped:
                detail = failure.message.split(": ", 1)[-1]
                report.stopped = _unreachable_reason(detail, previous, f"case:{case.id}")
            lost.append(f"case:{case.id}")
            continue
        report.cases_run += 1
        if failure is not None:
            report.failures.append(failure)
        previous = failure
    if collected.unreachable:
        report.not_run = lost + ([f"stateful ({examples} examples)"] if examples else [])


def _take_ending(
    report: ConformanceReport, result: BatchResult, examples: int, generated: int,
    factory: TargetFactory,
) -> None:
    """The batch that ended the stateful run: its failure (minimised here, once), problem,
    cut or interruption."""
    report.problems.extend(result.problems)
    report.shrink_seconds = result.shrink_seconds
    if result.stopped:
        report.stopped = result.stopped
        report.not_run.extend(
            item if not item.startswith("stateful (") else
            f"stateful ({max(0, examples - generated)} of {examples} examples)"
            for item in result.not_run
        )
    for failure in result.failures:
        if result.to_minimise and failure is result.failures[-1] and not report.stopped:
            started = time.perf_counter()
            minimise_into(report, failure, factory, report.profile)
            report.shrink_seconds = round(
                result.shrink_seconds + time.perf_counter() - started, 3)
        report.failures.append(failure)
