"""The readings of the documentation the simulator can follow, one switch per option.

The page of ``VmbPacketSendWithExternalMdl`` can be read more than one way in fourteen places
(reference §5, readings A1 to A14). Without a switch the simulator follows one option of each,
the one docs/target-behaviour.md describes. ``SimTarget(readings={"A5": "b"})`` makes it a
correct implementation of another option instead: the switch changes the real code path (the
sub-buffer walk of :mod:`adapters.sim.mdl`, the decisions of :mod:`adapters.sim.send`, the
channel of :mod:`adapters.sim.channel`), never a separate fake.

The catalog is data, as :mod:`adapters.sim.bugs` is: reading -> option -> what the simulator
then does. It is the simulator's own account, written from the page, not a copy of the spec's
(a target must not share its understanding with the oracle that judges it). Every reading is
listed with at least the option the simulator follows by default, so that any profile a target
can follow has a name here; an option given explicitly that is the default changes nothing.

Two options are *unsafe* (:data:`UNSAFE`): A3 (b) and (d) let a range run past the MDL's PFN
array. C would read memory the MDL does not describe; the simulator puts :data:`POISON_PFN
<adapters.sim.mdl.POISON_PFN>` on the wire there instead, as the ``wrap32`` bug switch does.

Options the simulator cannot distinguish from its default by construction (A7 ``either`` and
``ignore``, A8 ``any-error`` and ``exact``) are accepted and documented as such: its statuses are
already the recommended ones, and it already ignores the unknown flag bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: reading -> option -> what the simulator does when it follows that option.
READINGS: dict[str, dict[str, str]] = {
    "A1": {
        "a": "MdlLength 0 is the rest after MdlOffset: of the whole chain without "
        "FORCE_MDL_LENGTH, of the first MDL with it",
        "b": "MdlLength 0 is ByteCount bytes from MdlOffset (the whole chain's bytes without "
        "FORCE_MDL_LENGTH, the first MDL's with it), so a non-zero MdlOffset usually runs past "
        "the end and is rejected",
        "c": "MdlLength 0 with a non-zero MdlOffset is rejected; with MdlOffset 0 it is the "
        "entire MDL",
        "d": "MdlLength 0 is the rest of the first MDL after MdlOffset, even without "
        "FORCE_MDL_LENGTH (a chain's later MDLs are then never sent)",
    },
    "A2": {
        "a": "MdlOffset counts from the first byte the MDL describes (byte 0 of ByteCount)",
        "b": "MdlOffset counts from StartVa, the start of the MDL's first page: byte "
        "ByteOffset is MdlOffset ByteOffset. Only the origin moves: a sub-buffer still lies in "
        "the bytes the MDL describes, so an MdlOffset below ByteOffset is rejected",
    },
    "A3": {
        "a": "with FORCE_MDL_LENGTH, MdlOffset + length <= ROUND_TO_PAGES(ByteOffset + "
        "ByteCount) - ByteOffset; longer is rejected",
        "b": "UNSAFE: the bound is ROUND_TO_PAGES(ByteCount); with ByteOffset != 0 a range can "
        "run into the page after the MDL (a poison PFN on the wire)",
        "c": "a longer length is silently cut to the bound of (a) and the call accepted",
        "d": "UNSAFE: no bound at all; a range past the MDL names poison PFNs (a packet that "
        "can never fit is still rejected)",
    },
    "A4": {
        "a": "a send without WAIT_FOR_COMPLETION is rejected",
        "b": "a send without WAIT_FOR_COMPLETION is accepted; the packet asks for no "
        "completion (descriptor flags 0) and completes once when it is written to the ring "
        "(one completion-routine call, STATUS_SUCCESS, no bytes); a later host completion of "
        "that transaction calls nothing. Cancelled like any packet if disabled while queued",
        "c": "WAIT_FOR_COMPLETION is set implicitly: the send is handled as if it had it",
    },
    "A5": {
        "a": "an MDL chain without FORCE_MDL_LENGTH is one logical buffer, one range per MDL "
        "touched",
        "b": "MdlOffset and MdlLength apply to the first MDL; each later MDL of the chain is "
        "sent whole, one range each (MDLs with ByteCount 0 are skipped)",
        "c": "only the first MDL of a chain is used, with or without FORCE_MDL_LENGTH",
    },
    "A6": {
        "a": "a NULL MDL with MdlOffset and MdlLength 0 sends an in-band packet; otherwise it "
        "is rejected",
        "b": "a NULL MDL is always rejected",
    },
    "A7": {
        "either": "the same as ignore (one of the two outcomes the reading allows)",
        "ignore": "flag bits outside 0x7 are ignored",
        "reject": "a send with flag bits outside 0x7 is rejected",
    },
    "A8": {
        "any-error": "the simulator's statuses, which are the recommended ones (see exact)",
        "exact": "each rule's recommended status: STATUS_INVALID_DEVICE_STATE for a busy or "
        "freed packet, STATUS_DEVICE_REMOVED on a disabled channel, STATUS_INVALID_PARAMETER "
        "for every other rule (the same as without the switch: the switch pins it)",
    },
    "A9": {
        "reject": "a resolved external length of 0 is rejected",
        "no-range": "a resolved external length of 0 sends an in-band packet (type 6) with "
        "no range",
    },
    "A10": {
        "contract": "a send of a busy or freed packet is rejected, a free of a busy one ignored",
    },
    "A11": {
        "call-or-write": "a queued packet without PAGED_BUFFER reads the caller's buffer again "
        "when it is written (capability reads-buffer-late)",
        "at-call": "the in-line buffer is always copied at the call and never read again (the "
        "capability reads-buffer-late is not declared)",
    },
    "A12": {
        "cancel": "disable completes each outstanding packet once with STATUS_CANCELLED",
        "any-error": "disable completes each outstanding packet once with STATUS_UNSUCCESSFUL",
    },
    "A13": {
        "reject": "a packet that can never fit is rejected with STATUS_INVALID_PARAMETER",
    },
    "A14": {
        "reject": "Buffer NULL with BufferLength > 0 is rejected",
    },
}

#: The option each reading follows without a switch.
SIM_DEFAULTS: Mapping[str, str] = MappingProxyType(
    {
        "A1": "a",
        "A2": "a",
        "A3": "a",
        "A4": "a",
        "A5": "a",
        "A6": "a",
        "A7": "ignore",
        "A8": "exact",
        "A9": "reject",
        "A10": "contract",
        "A11": "call-or-write",
        "A12": "cancel",
        "A13": "reject",
        "A14": "reject",
    }
)

#: Options the simulator follows by behaving exactly as another (reading, option) does.
SAME_AS: Mapping[tuple[str, str], str] = MappingProxyType(
    {("A7", "either"): "ignore", ("A8", "any-error"): "exact"}
)

#: Options under which a packet may name pages past the MDL's PFN array.
UNSAFE: frozenset[tuple[str, str]] = frozenset({("A3", "b"), ("A3", "d")})


def _number(reading: str) -> int:
    return int(reading[1:])


def known_options() -> str:
    """Every reading and its options, for a message: ``A1=a|b|c|d, A2=a|b, ...``."""
    return ", ".join(f"{key}={'|'.join(options)}" for key, options in READINGS.items())


@dataclass(frozen=True)
class Readings:
    """The options chosen explicitly; every other reading follows :data:`SIM_DEFAULTS`."""

    chosen: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, reading: str) -> str:
        """The option the simulator follows for ``reading`` (after :data:`SAME_AS`)."""
        option = self.chosen.get(reading, SIM_DEFAULTS[reading])
        return SAME_AS.get((reading, option), option)

    @property
    def labels(self) -> tuple[str, ...]:
        """``("A3=c", "A5=b")``: the explicit choices in reading order."""
        keys = sorted(self.chosen, key=_number)
        return tuple(f"{key}={self.chosen[key]}" for key in keys)

    @property
    def unsafe(self) -> tuple[str, ...]:
        """The explicit choices that are unsafe options."""
        return tuple(f"{k}={v}" for k, v in self.chosen.items() if (k, v) in UNSAFE)


#: The simulator without a reading switch.
DEFAULT_READINGS = Readings()


def check_readings(readings: Mapping[str, str] | None) -> Readings:
    """The choices as :class:`Readings`; ValueError names an unknown reading or option."""
    if readings is None:
        return Readings()
    if not isinstance(readings, Mapping):
        raise ValueError(
            "readings must be a mapping of reading to option such as {'A5': 'b'}, not "
            f"{type(readings).__name__}"
        )
    chosen: dict[str, str] = {}
    for reading, option in readings.items():
        if not isinstance(reading, str) or not isinstance(option, str):
            raise ValueError(
                f"a reading and its option are strings such as 'A5': 'b', not {reading!r}: "
                f"{option!r}"
            )
        options = READINGS.get(reading)
        if options is None:
            raise ValueError(
                f"unknown reading {reading!r}; the simulator's readings: {known_options()}"
            )
        if option not in options:
            raise ValueError(
                f"reading {reading} has no option {option!r} the simulator follows; its "
                f"options: {', '.join(options)}"
            )
        chosen[reading] = option
    return Readings(MappingProxyType(chosen))
