"""Running the probes on a target and inferring the options of each reading it follows.

Theory of operation
-------------------
A *probe* (:mod:`.load`) is a short step sequence whose verdicts under two options of a reading
have no outcome in common. To judge a target, each probe runs on a fresh target under
:class:`conformance.driver.Driver` for a candidate profile, exactly as ``vmbspec replay``
would run it: the profile is *consistent* with the target on that probe when the whole
sequence passes. A profile is consistent with the target when it passes every probe of the
readings it is being tested for.

Readings that interact are inferred jointly (issue 13, point 4): A2 and A3 both move the
FORCE_MDL_LENGTH bound, A1 and A5 both decide what MdlLength 0 covers on a chain, A1 and A9
both decide when the resolved length is 0. Their connected groups ({A1, A5, A9} and {A2, A3})
are tried as every combination of their options, on every probe of any reading of the group,
so that a target following A2 (b) cannot pass for one following A3 (c). Every other reading is
a group of its own. The readings outside a group are held at a *base*: the default options at
first, then the options the previous pass inferred, until a pass infers what its base was (at
most :data:`MAX_PASSES` passes), so a target that differs from the default in one reading is
not misjudged in another by a probe that happens to touch both.

Per reading, the result is the set of its options that some consistent combination takes:
one option ("follows (b)"), several ("cannot tell (a) from (c) by observation", with why), or
none ("follows no documented reading", with the call, what the target did and what each option
allows: a failure under every profile). A probe on which the target crashes, hangs or raises
is that reading's verdict (the crash, with the call), is left out of the joint inference of
the other readings of its group, and the probe goes on with the next probe.

The options the spec calls *unsafe* (the Z3 model's counterexamples that read past an MDL's
PFN array: READ-A3 (b) and (d), properties P7-b and P7-d) are never adopted silently: a
consistent safe option is preferred, and a target consistent only with an unsafe one is
flagged (and the probe's exit status says so).

The inferred profile is confirmed by a short ``check`` under it (the case catalog and a few
stateful examples, :func:`conformance.runner.run_conformance`) before it is reported.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vmbspec.conformance.driver import Driver, Evidence, StepError
from vmbspec.conformance.guard import TargetRaised, close_quietly
from vmbspec.conformance.probe.load import Probe, ProbeSet, Unobservable, reading_options
from vmbspec.conformance.report import describe_step
from vmbspec.conformance.runner import ConformanceReport, _classify, _make_target, run_conformance
from vmbspec.conformance.targets import TargetFactory
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.discriminate import JOINT
from vmbspec.spec.readings import READING_IDS, Profile

#: Readings whose options interact, inferred jointly: the spec's own list (the discriminating
#: search takes the same readings jointly, ``spec.discriminate.JOINT``).
INTERACTING: tuple[tuple[str, ...], ...] = JOINT
#: Passes over the groups, each with the others held at the previous pass's inference.
MAX_PASSES = 3
#: The confirmation check: stateful examples after the case catalog.
CONFIRM_EXAMPLES = 50
#: Profiles the confirmation tries at most: the one found, then others the probes left open.
MAX_CONFIRMATIONS = 4
#: Outcome kinds that are a fault of the target rather than an answer to judge.
FAULTS = frozenset({"crash", "hang", "target-error", "protocol-error"})


def _unsafe_options() -> dict[tuple[str, str], str]:
    """(reading, option) -> the Z3 property whose counterexample shows the option reading past
    an MDL's PFN array (``spec.proofs.properties``: expected "counterexample" on MDL-PFNS)."""
    from vmbspec.spec.arith import DEFAULT_ARITH_READINGS
    from vmbspec.spec.proofs.properties import PROPERTIES

    found: dict[tuple[str, str], str] = {}
    for prop in PROPERTIES:
        if prop.expected != "counterexample" or "MDL-PFNS" not in prop.requirements:
            continue
        if prop.readings.forced_bound != DEFAULT_ARITH_READINGS.forced_bound:
            found[("A3", prop.readings.forced_bound.value)] = prop.name
        if prop.readings.zero_length != DEFAULT_ARITH_READINGS.zero_length:
            found[("A1", prop.readings.zero_length.value)] = prop.name
    return found


#: The unsafe options, with the Z3 property that shows each reading past the PFN array.
UNSAFE: Mapping[tuple[str, str], str] = _unsafe_options()


def probed_readings() -> tuple[str, ...]:
    """The readings with more than one option (A10, A13 and A14 have one: nothing to tell)."""
    return tuple(r for r in READING_IDS if len(reading_options(r)) > 1)


def reading_groups(readings: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """``readings`` in groups: the connected components of :data:`INTERACTING`."""
    group_of = {reading: {reading} for reading in readings}
    for joint in INTERACTING:
        present = [r for r in joint if r in group_of]
        merged = set().union(*(group_of[r] for r in present)) if present else set()
        for reading in merged:
            group_of[reading] = merged
    groups: list[tuple[str, ...]] = []
    for reading in readings:
        group = tuple(r for r in readings if r in group_of[reading])
        if group not in groups:
            groups.append(group)
    return tuple(groups)


def _defaults() -> dict[str, str]:
    return dict(Profile.default().choices)


def profile_of(choices: Mapping[str, str]) -> Profile:
    """``default+A3=c+A5=b``: the default profile with the choices that differ from it, in
    reading order (a name ``check --profile`` takes)."""
    profile = Profile.default()
    defaults = _defaults()
    for reading in READING_IDS:
        option = choices.get(reading, defaults[reading])
        if option != defaults[reading]:
            profile = profile.with_choice(reading, option)
    return profile


# ---------------------------------------------------------------------------------------------
# One probe on one target under one profile
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one run of a probe under one profile showed."""

    #: "pass"; "not-applicable" (the target's answers were allowed up to a step the profile
    #: makes impossible, such as completing a packet whose send it rejects: the driver
    #: refused that step before calling the target, so the profile stands); "nonconformance";
    #: a fault of the target (:data:`FAULTS`); "unreachable".
    kind: str
    #: The step (1-based) where it stopped, and that step in words; 0 and "" for a pass.
    step: int = 0
    call: str = ""
    message: str = ""
    requirements: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """The profile is consistent with what the target did on this probe."""
        return self.kind in ("pass", "not-applicable")

    @property
    def fault(self) -> bool:
        return self.kind in FAULTS

    def as_json(self) -> dict[str, Any]:
        if self.kind == "pass":
            return {"kind": "pass"}
        return {"kind": self.kind, "step": self.step, "call": self.call,
                "message": self.message, "requirements": list(self.requirements)}

    def line(self) -> str:
        if self.kind == "pass":
            return "pass"
        where = f"step {self.step}, {self.call}: " if self.step else ""
        return f"{self.kind} at {where}{self.message}"


class TargetUnreachable(Exception):
    """The target cannot be reached any more (a remote agent gone): probing stops."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.message)
        self.outcome = outcome


class ProbeRunner:
    """Runs probes on fresh targets of ``factory``, each (probe, profile) once."""

    def __init__(self, factory: TargetFactory) -> None:
        self.factory = factory
        self.runs = 0
        self.seconds = 0.0
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], Outcome] = {}

    def outcomes(self, probe: Probe) -> dict[tuple[tuple[str, str], ...], Outcome]:
        """Every run of ``probe`` so far: profile choices -> outcome."""
        return {choices: outcome for (ident, choices), outcome in self._cache.items()
                if ident == probe.id}

    def run(self, probe: Probe, profile: Profile) -> Outcome:
        key = (probe.id, tuple(sorted(profile.choices.items())))
        outcome = self._cache.get(key)
        if outcome is None:
            started = time.perf_counter()
            outcome = self._run(probe, profile)
            self.seconds += time.perf_counter() - started
            self.runs += 1
            self._cache[key] = outcome
        if outcome.kind == "unreachable":
            raise TargetUnreachable(outcome)
        return outcome

    def _run(self, probe: Probe, profile: Profile) -> Outcome:
        try:
            target = _make_target(self.factory)
        except TargetRaised as error:
            kind, requirements, message = _classify(error)
            return Outcome(kind, 0, "creating the target", message, requirements)
        driver = Driver(target, profile, Evidence())
        # A probe's steps carry no expectations; if one does, it is not the oracle here.
        driver.check_expectations = False
        try:
            for step in probe.steps:
                driver.execute(step)
        except StepError as error:
            # Refused before the target was called: every answer so far was allowed.
            return Outcome("not-applicable", len(driver.log), self._last(driver), str(error))
        except Exception as error:
            # A failure the target is to blame for; an error of vmbspec's own raises
            # conformance.runner.InternalError from _classify (never the target's verdict).
            kind, requirements, message = _classify(error)
            return Outcome(kind, len(driver.log), self._last(driver), message, requirements)
        finally:
            close_quietly(target)
        return Outcome("pass")

    @staticmethod
    def _last(driver: Driver) -> str:
        return describe_step(driver.log[-1]) if driver.log else ""


# ---------------------------------------------------------------------------------------------
# A group of readings
# ---------------------------------------------------------------------------------------------

Combination = tuple[str, ...]


@dataclass
class ProbeRecord:
    """A probe as it ran: its outcome per combination of the group's options."""

    probe: Probe
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: The target crashed, hung or raised on it (its outcome), if so.
    fault: Outcome | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.probe.id,
            "reading": self.probe.key,
            "source": self.probe.source,
            "why": self.probe.why,
            "separates": ["|".join("+".join(o) for o in pair) for pair in self.probe.separates],
            "steps": len(self.probe.steps),
            "fault": None if self.fault is None else self.fault.as_json(),
            "outcomes": {label: outcome.as_json() for label, outcome in self.outcomes.items()},
        }


@dataclass
class ReadingResult:
    """The verdict on one reading."""

    reading: str
    options: tuple[str, ...]
    consistent: tuple[str, ...]
    #: The option the inferred profile takes (the default or the first consistent one; the
    #: default when none is consistent).
    chosen: str
    #: "follows", "cannot-tell", "none", "crash" or "unsafe".
    verdict: str
    text: str
    #: Why several options remain, or why none does (per option).
    why: list[str] = field(default_factory=list)
    probes: list[ProbeRecord] = field(default_factory=list)
    group: tuple[str, ...] = ()
    #: The combinations of the group's options consistent with the target (joint readings:
    #: ``{"A2": "a", "A3": "c"}`` each), from which ``consistent`` is read.
    combinations: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict in ("follows", "cannot-tell")

    def as_json(self) -> dict[str, Any]:
        return {
            "reading": f"READ-{self.reading}",
            "options": list(self.options),
            "consistent": list(self.consistent),
            "chosen": self.chosen,
            "verdict": self.verdict,
            "text": self.text,
            "why": list(self.why),
            "inferred_with": [f"READ-{r}" for r in self.group if r != self.reading],
            "consistent_combinations": [
                "+".join(f"{r}={o}" for r, o in combo.items()) for combo in self.combinations
            ],
            "probes": [record.as_json() for record in self.probes],
        }


def _combinations(group: tuple[str, ...]) -> list[Combination]:
    """Every combination of the group's options: safe before unsafe, then fewer options away
    from the default, then the catalog's order (so the first consistent one is the choice)."""
    defaults = _defaults()
    combos = list(itertools.product(*(reading_options(r) for r in group)))

    def rank(combo: Combination) -> tuple[int, int, tuple[int, ...]]:
        unsafe = sum((r, o) in UNSAFE for r, o in zip(group, combo, strict=True))
        away = sum(o != defaults[r] for r, o in zip(group, combo, strict=True))
        order = tuple(reading_options(r).index(o) for r, o in zip(group, combo, strict=True))
        return unsafe, away, order

    return sorted(combos, key=rank)


def _label(group: tuple[str, ...], combo: Combination) -> str:
    return "+".join(f"{r}={o}" for r, o in zip(group, combo, strict=True))


def _option_words(reading: str, option: str) -> str:
    meaning = (CATALOG.reading(reading).options or {}).get(option, "")
    return f"({option}) {meaning}"


def _listed(options: Iterable[str]) -> str:
    shown = [f"({o})" for o in options]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " from " + shown[-1]


class GroupInference:
    """The inference of one group of readings, with the others held at ``base``."""

    def __init__(self, group: tuple[str, ...], probes: Sequence[Probe],
                 unobservable: Sequence[Unobservable], base: Mapping[str, str],
                 runner: ProbeRunner) -> None:
        self.group = group
        self.probes = [p for p in probes if set(p.readings) & set(group)]
        self.unobservable = [u for u in unobservable if u.reading in group]
        self.base = dict(base)
        self.runner = runner
        self.combos = _combinations(group)
        self.records = {p.id: ProbeRecord(p) for p in self.probes}

    def profile(self, combo: Combination) -> Profile:
        return profile_of({**self.base, **dict(zip(self.group, combo, strict=True))})

    def first_failure(self, combo: Combination,
                      probes: Iterable[Probe]) -> tuple[Probe, Outcome] | None:
        """The first of ``probes`` that ``combo`` fails (a probe the target faulted on is
        skipped: it is its own reading's verdict), or None."""
        for probe in probes:
            record = self.records[probe.id]
            if record.fault is not None:
                continue
            outcome = self.runner.run(probe, self.profile(combo))
            record.outcomes[_label(self.group, combo)] = outcome
            if outcome.fault:
                record.fault = outcome
                continue
            if not outcome.passed:
                return probe, outcome
        return None

    def infer(self) -> dict[str, ReadingResult]:
        alive = [c for c in self.combos if self.first_failure(c, self.probes) is None]
        results: dict[str, ReadingResult] = {}
        for index, reading in enumerate(self.group):
            own = [p for p in self.probes if reading in p.readings]
            faults = [r for r in (self.records[p.id] for p in own) if r.fault is not None]
            if faults:
                results[reading] = self._crash(reading, faults)
                continue
            survivors = alive
            if not survivors:
                # No combination passes every probe of the group: judge this reading by its
                # own probes (the other readings of the group still take every option).
                survivors = [c for c in self.combos if self.first_failure(c, own) is None]
            if not survivors:
                results[reading] = self._none(reading, index, own)
                continue
            results[reading] = self._consistent(reading, index, survivors, own)
            results[reading].combinations = [
                dict(zip(self.group, combo, strict=True)) for combo in survivors]
        return results

    def _records(self, probes: Iterable[Probe]) -> list[ProbeRecord]:
        return [self.records[p.id] for p in probes]

    def _crash(self, reading: str, faults: list[ProbeRecord]) -> ReadingResult:
        why = [f"probe {r.probe.id}: {r.fault.line()}" for r in faults if r.fault]
        first = faults[0].fault
        assert first is not None
        kind = {"crash": "crashed", "hang": "hung"}.get(first.kind, "raised")
        return ReadingResult(
            reading, reading_options(reading), (), _defaults()[reading], "crash",
            f"the target {kind} on a probe call (probe {faults[0].probe.id}, {first.call})",
            why, self._records(self.probes), self.group)

    def _none(self, reading: str, index: int, own: list[Probe]) -> ReadingResult:
        why = []
        for option in reading_options(reading):
            combos = [c for c in self.combos if c[index] == option]
            # The combination closest to the base for the other readings of the group.
            combos.sort(key=lambda c: sum(
                o != self.base.get(r, o) for r, o in zip(self.group, c, strict=True)))
            failed = self.first_failure(combos[0], own) if combos else None
            if failed is None:
                continue
            probe, outcome = failed
            why.append(f"{_option_words(reading, option)}: probe {probe.id}, step "
                       f"{outcome.step} ({outcome.call}): {outcome.message}")
        return ReadingResult(
            reading, reading_options(reading), (), _defaults()[reading], "none",
            "follows no documented reading: a failure under every profile", why,
            self._records(self.probes), self.group)

    def _consistent(self, reading: str, index: int, survivors: list[Combination],
                    own: list[Probe]) -> ReadingResult:
        consistent = tuple(o for o in reading_options(reading)
                           if any(c[index] == o for c in survivors))
        chosen = survivors[0][index]
        unsafe = (reading, chosen) in UNSAFE
        records = self._records(self.probes)
        if len(consistent) == 1:
            text = f"follows ({chosen})"
            why: list[str] = []
        else:
            text = f"cannot tell {_listed(consistent)} by observation"
            why = self._why_several(reading, consistent, own, survivors[0])
            default = _defaults()[reading]
            why.append(f"the profile takes ({chosen}): "
                       + ("the default" if chosen == default else
                          f"the first consistent option (the default ({default}) is not)"))
        if unsafe:
            text += (f"; UNSAFE: ({chosen}) reads past the MDL's PFN array (Z3 counterexample "
                     f"{UNSAFE[(reading, chosen)]})")
        for option in consistent:
            if option != chosen and (reading, option) in UNSAFE:
                why.append(f"({option}) is consistent too but UNSAFE (Z3 counterexample "
                           f"{UNSAFE[(reading, option)]}): not adopted")
        return ReadingResult(reading, reading_options(reading), consistent, chosen,
                             "unsafe" if unsafe else
                             ("follows" if len(consistent) == 1 else "cannot-tell"),
                             text, why, records, self.group)

    def _why_several(self, reading: str, consistent: tuple[str, ...], own: list[Probe],
                     chosen: Combination) -> list[str]:
        why = []
        told = set(consistent)
        for entry in self.unobservable:
            if entry.reading == reading and len(told & set(entry.options)) > 1:
                shown = [o for o in consistent if o in entry.options]
                why.append(f"{_listed(shown)}: unobservable at the interface: {entry.why}")
                told -= set(shown[1:])
        if len(told) > 1:
            left = [o for o in consistent if o in told]
            splitting = [p.id for p in own if _splits(p, reading, left)]
            others = {r: o for r, o in zip(self.group, chosen, strict=True)
                      if r != reading and o != _defaults()[r]}
            if not own:
                why.append(f"calls.json has no probe of READ-{reading}")
            elif splitting and others:
                following = ", ".join(f"{r}={o}" for r, o in others.items())
                why.append(
                    f"{_listed(left)}: the probes that tell them apart ({', '.join(splitting)}) "
                    f"do so under other options of {', '.join(others)}; this target follows "
                    f"{following}, under which each allows its answers")
            else:
                why.append(
                    f"{_listed(left)}: the target's answers to every probe ({len(own)} of "
                    f"READ-{reading}) are allowed under each (no probe separates what this "
                    "target does)")
        return why


def _splits(probe: Probe, reading: str, options: Sequence[str]) -> bool:
    """Whether ``probe`` claims to separate two of ``options`` of ``reading`` (the other
    readings of a joint key the same on both sides)."""
    index = probe.readings.index(reading)
    for first, second in probe.separates:
        rest_same = all(a == b for i, (a, b) in enumerate(zip(first, second, strict=True))
                        if i != index)
        if rest_same and first[index] != second[index] and \
                {first[index], second[index]} <= set(options):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# The whole probe
# ---------------------------------------------------------------------------------------------


@dataclass
class ProbeResult:
    target: str
    calls: str
    readings: list[ReadingResult]
    profile: Profile
    runs: int
    passes: int
    seconds: float = 0.0
    probe_seconds: float = 0.0
    confirmation: ConformanceReport | None = None
    #: Profiles the probes left open whose confirmation check failed (name, summary), before
    #: the one in ``profile``.
    rejected_profiles: list[tuple[str, str]] = field(default_factory=list)
    #: Why probing stopped early (the target became unreachable), "" when it did not.
    stopped: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def unsafe(self) -> list[tuple[str, str]]:
        """The (reading, option) pairs the target follows that the spec calls unsafe."""
        return [(r.reading, r.chosen) for r in self.readings if r.verdict == "unsafe"]

    @property
    def confirmed(self) -> bool | None:
        return None if self.confirmation is None else self.confirmation.passed

    @property
    def passed(self) -> bool:
        """Every reading follows a documented safe option and the confirmation passed."""
        return (all(r.ok for r in self.readings) and not self.stopped
                and self.confirmed is not False and not self.problems)


def _choose(results: Mapping[str, ReadingResult]) -> dict[str, str]:
    choices = _defaults()
    for reading, result in results.items():
        choices[reading] = result.chosen
    return choices


def _one_pass(groups: Sequence[tuple[str, ...]], probes: ProbeSet, base: Mapping[str, str],
              runner: ProbeRunner) -> dict[str, ReadingResult]:
    results: dict[str, ReadingResult] = {}
    for group in groups:
        inference = GroupInference(group, probes.probes, probes.unobservable, base, runner)
        results.update(inference.infer())
    return results


def infer_readings(
    factory: TargetFactory,
    probes: ProbeSet,
    *,
    target: str = "",
    confirm: bool = True,
    confirm_examples: int = CONFIRM_EXAMPLES,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> ProbeResult:
    """Probe the target of ``factory`` with ``probes``; confirm the profile found by a short
    check (``confirm``). Raises ``conformance.runner.InternalError`` on a bug of vmbspec."""
    started = time.perf_counter()
    runner = ProbeRunner(factory)
    groups = reading_groups(probed_readings())
    base = _defaults()
    results: dict[str, ReadingResult] = {}
    stopped = ""
    passes = 0
    try:
        for passes in range(1, MAX_PASSES + 1):
            if progress is not None:
                progress(f"probing, pass {passes}")
            results = _one_pass(groups, probes, base, runner)
            chosen = _choose(results)
            if chosen == base:
                break
            base = chosen
    except TargetUnreachable as unreachable:
        stopped = f"the target became unreachable: {unreachable.outcome.message}"
    ordered = [results[r] for r in probed_readings() if r in results]
    profile = profile_of(_choose(results))
    result = ProbeResult(target, probes.generated_by or probes.path, ordered, profile,
                         runner.runs, passes, stopped=stopped)
    result.probe_seconds = time.perf_counter() - started
    if confirm and not stopped:
        _confirm(result, factory, confirm_examples, seed, progress)
    result.seconds = time.perf_counter() - started
    return result


def _named_readings(report: ConformanceReport) -> set[str]:
    """The readings the failures of ``report`` name (``READ-A12`` -> ``A12``)."""
    return {rid.removeprefix("READ-") for failure in report.failures
            for rid in failure.requirements if rid.startswith("READ-")}


def _alternatives(result: ProbeResult, named: set[str]) -> list[Profile]:
    """The other profiles the probes left open where the failed check points: each group of
    readings the failures name switched to another safe combination of options consistent
    with the target, one group at a time."""
    chosen = dict(result.profile.choices)
    found = [result.profile]
    seen_groups: set[tuple[str, ...]] = set()
    for reading in result.readings:
        group = reading.group or (reading.reading,)
        if group in seen_groups or not reading.ok:
            continue
        seen_groups.add(group)
        combos = reading.combinations or [{reading.reading: o} for o in reading.consistent]
        for combo in combos:
            if any((r, o) in UNSAFE for r, o in combo.items()):
                continue
            profile = profile_of({**chosen, **combo})
            if profile.choices != result.profile.choices and profile not in found:
                found.append(profile)
    def changed(profile: Profile) -> set[str]:
        return {r for r in READING_IDS if profile[r] != result.profile[r]}

    return [profile for profile in found[1:] if changed(profile) & named]


def _confirm(result: ProbeResult, factory: TargetFactory, examples: int, seed: int,
             progress: Callable[[str], None] | None) -> None:
    """The short check under the profile found. When it fails (the target's answers, not
    an error of vmbspec), every reading followed a documented option and the probes left
    other options open on a reading the failures name, each of those is checked in turn
    (:func:`_alternatives`); the first that passes becomes the profile, and the report says
    what failed."""
    first: tuple[Profile, ConformanceReport] | None = None
    queue = [result.profile]
    while queue and len(result.rejected_profiles) < MAX_CONFIRMATIONS:
        profile = queue.pop(0)
        if progress is not None:
            progress(f"confirming: check --profile {profile.name}")
        report = run_conformance(factory, profile=profile, examples=examples, seed=seed,
                                 cases=True)
        if report.verdict != "FAIL":
            if first is not None:
                _adopt(result, first[0], profile)
            result.profile, result.confirmation = profile, report
            return
        result.rejected_profiles.append((profile.name, report.summary()))
        if first is None:
            first = (profile, report)
            if all(reading.ok for reading in result.readings):
                queue = _alternatives(result, _named_readings(report))
    if first is not None:  # every one failed: the profile found, and its failures
        result.profile, result.confirmation = first
        del result.rejected_profiles[0]


def _adopt(result: ProbeResult, failed: Profile, profile: Profile) -> None:
    """Say in each reading's verdict which option the confirmed profile takes, when that is
    not the one the probes preferred."""
    for reading in result.readings:
        option = profile[reading.reading]
        if option == reading.chosen:
            continue
        reading.chosen = option
        reading.why = [w for w in reading.why if not w.startswith("the profile takes")]
        reading.why.append(f"the profile takes ({option}): the check under {failed.name} "
                           f"failed, under {profile.name} it passed")
