"""The built-in simulator target: an independent Python model of the KMCL send path.

``SimTarget`` provides, structurally, the interface of ``conformance/target.py`` (it does not
import it: a target must not share code with the suite or the spec). Underneath:

- :mod:`adapters.sim.ring` a real ring buffer in a ``bytearray`` (control page, circular data,
  trailers, never-full rule, signal counting) with the host's reader;
- :mod:`adapters.sim.wire` the packet encoding, every field range-checked before packing;
- :mod:`adapters.sim.mdl` MDL validation and the sub-buffer -> GPA ranges rules;
- :mod:`adapters.sim.send` the send call's decisions, in order;
- :mod:`adapters.sim.channel` channels, packet objects, the FIFO queue, completions;
- :mod:`adapters.sim.bugs` named defects for the suite's detection self-test;
- :mod:`adapters.sim.readings` switches to follow another option of a reading of the
  documentation (``SimTarget(readings={"A5": "b"})``), each a correct implementation of it.

Handles are small ints, channels and packets drawn from one counter so that a packet handle
passed as a channel (or the reverse) is caught. A handle the target never issued raises
ValueError: that is the suite's mistake, not a call the target should answer with a status.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vmbspec.adapters.sim.bugs import BUGS, check_bugs
from vmbspec.adapters.sim.channel import (
    FREEABLE,
    OUTSTANDING,
    Channel,
    ChannelState,
    Packet,
    PacketState,
)
from vmbspec.adapters.sim.consts import U32_MAX
from vmbspec.adapters.sim.readings import READINGS, SIM_DEFAULTS, UNSAFE, check_readings
from vmbspec.adapters.sim.ring import Ring
from vmbspec.adapters.sim.send import send_with_external_mdl

__all__ = ["BUGS", "READINGS", "SIM_DEFAULTS", "UNSAFE", "SimTarget"]

_CAPABILITIES = frozenset({"ring-bytes", "robust-contract-violations", "reads-buffer-late"})


class SimTarget:
    """The simulator. ``SimTarget(bugs={"wrap32"})`` is a deliberately broken variant; see
    :data:`adapters.sim.bugs.BUGS` for every switch. The default has none.
    ``SimTarget(readings={"A5": "b"})`` follows another option of a reading of the
    documentation, correctly; see :data:`adapters.sim.readings.READINGS`. Both may be given:
    the name shows them all, ``sim[wrap32,A5=b]``."""

    name = "sim"
    capabilities = _CAPABILITIES

    def __init__(
        self, bugs: Iterable[str] = frozenset(), readings: Mapping[str, str] | None = None
    ) -> None:
        self.bugs = check_bugs(bugs)
        self.readings = check_readings(readings)
        switches = [*sorted(self.bugs), *self.readings.labels]
        if switches:
            self.name = "sim[" + ",".join(switches) + "]"
        if self.readings["A11"] == "at-call":
            # The buffer is never read after the call: nothing for the suite to exercise.
            self.capabilities = _CAPABILITIES - {"reads-buffer-late"}
        self._channels: dict[int, Channel] = {}
        self._packets: dict[int, Packet] = {}
        self._completions: list[tuple[int, int, bytes]] = []
        self._next_handle = 1
        #: Why the last rejected send was rejected ("" after an accepted one).
        self.last_rejection = ""
        #: free_packet calls on an outstanding or freed packet (ignored: reading A10; the
        #: ``busy-free-honoured`` switch honours those of an outstanding one).
        self.contract_violations = 0

    def __repr__(self) -> str:
        return f"SimTarget(bugs={sorted(self.bugs)!r}, readings={dict(self.readings.chosen)!r})"

    # -- handles ------------------------------------------------------------------------------

    def _handle(self) -> int:
        handle = self._next_handle
        self._next_handle += 1
        return handle

    def _channel(self, channel: int) -> Channel:
        try:
            return self._channels[channel]
        except (KeyError, TypeError):
            raise ValueError(f"{channel!r} is not a channel handle of this target") from None

    def _packet(self, packet: int) -> Packet:
        try:
            return self._packets[packet]
        except (KeyError, TypeError):
            raise ValueError(f"{packet!r} is not a packet handle of this target") from None

    def _record(self, packet: int, status: int, data: bytes) -> None:
        self._completions.append((packet, status, data))

    # -- channels -----------------------------------------------------------------------------

    def create_channel(self, ring_data_size: int) -> int:
        ring = Ring(ring_data_size, full_is_allowed="ring-full" in self.bugs)
        handle = self._handle()
        self._channels[handle] = Channel(handle, ring, self._record, self.bugs, self.readings)
        return handle

    def open_channel(self, channel: int) -> None:
        self._channel(channel).open()

    def disable_channel(self, channel: int) -> None:
        self._channel(channel).disable()

    # -- packets ------------------------------------------------------------------------------

    def allocate_packet(self, channel: int) -> int | None:
        owner = self._channel(channel)
        handle = self._handle()
        self._packets[handle] = Packet(handle, owner)
        return handle

    def free_packet(self, packet: int) -> None:
        target = self._packet(packet)
        if target.state not in FREEABLE:
            self.contract_violations += 1  # reading A10: survive it, change nothing
            if "busy-free-honoured" in self.bugs and target.state in OUTSTANDING:
                target.channel.free_busy(target)  # BUG: honoured instead.
            return
        target.move("free")

    def send_with_external_mdl(
        self,
        packet: int,
        buffer: bytearray | None,
        buffer_length: int,
        mdl: object,
        mdl_offset: int,
        mdl_length: int,
        flags: int,
    ) -> int:
        outcome = send_with_external_mdl(
            self._packet(packet),
            buffer,
            buffer_length,
            mdl,
            mdl_offset,
            mdl_length,
            flags,
            self.bugs,
            self.readings,
        )
        self.last_rejection = outcome.reason
        return outcome.status

    # -- host side ----------------------------------------------------------------------------

    def host_take_packet(self, channel: int) -> bytes | None:
        return self._channel(channel).host_take()

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 0 <= status <= U32_MAX:
            raise ValueError(f"completion status {status!r} is not an NTSTATUS (u32)")
        self._channel(channel).host_complete(transaction_id, status, bytes(data))

    def set_interrupt_mask(self, channel: int, mask: int) -> None:
        """The host's side of the control page: non-zero asks not to be signalled."""
        self._channel(channel).ring.interrupt_mask = mask

    # -- observations -------------------------------------------------------------------------

    def completions(self) -> list[tuple[int, int, bytes]]:
        calls, self._completions = self._completions, []
        return calls

    def ring_bytes(self, channel: int) -> bytes:
        return self._channel(channel).ring.snapshot()

    def signal_count(self, channel: int) -> int:
        """How many times the writer signalled the host (empty -> non-empty, mask 0)."""
        return self._channel(channel).ring.signals

    def packet_state(self, packet: int) -> PacketState:
        return self._packet(packet).state

    def channel_state(self, channel: int) -> ChannelState:
        return self._channel(channel).state

    def queued_count(self, channel: int) -> int:
        return len(self._channel(channel).queue)

    def close(self) -> None:
        self._channels.clear()
        self._packets.clear()
        self._completions.clear()


# The bug catalog is data (adapters/sim/bugs.py); render it into the class docstring so that
# help(SimTarget) documents every switch without a second copy to keep in step.
SimTarget.__doc__ = (
    (SimTarget.__doc__ or "")
    + "\n\n    Bug switches:\n\n"
    + "\n".join(f"    - ``{name}``: {what}" for name, what in BUGS.items())
    + "\n\n    Reading switches (``readings={READING: OPTION}``; without one, SIM_DEFAULTS):\n\n"
    + "\n".join(
        f"    - ``{reading}={option}``: {what}"
        for reading, options in READINGS.items()
        for option, what in options.items()
    )
)
