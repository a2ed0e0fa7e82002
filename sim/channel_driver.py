"""A cocotb driver of the sealed accelerator's frame streams and key port.

:class:`ChannelDriver` drives :class:`bolt.hdl.channel.SealedAccelerator` as the host and the
security monitor do: it installs a session's keys on ``key_port``, and passes command frames
in on ``frames_in`` one at a time, collecting whatever ``frames_out`` answers before the channel
is ready for the next one (Setup's key and item frames get no answer).
"""

from __future__ import annotations

from cocotb.simtime import get_sim_time
from cocotb.triggers import First, ReadOnly, RisingEdge

from bolt.hdl.accelerator import Cycles, unpack_fields
from bolt.hdl.channel import STAMPS_LAYOUT
from bolt.params import Params
from bolt.sim.streams import CLOCK_PERIOD_NS, offer, start_clock_and_reset

__all__ = ["ChannelDriver"]


class ChannelDriver:
    """Drive ``dut``'s ``frames_in``/``frames_out``/``key_port`` (clock ``clk``, reset ``rst``)."""

    def __init__(self, dut, params: Params, *, clock_period_ns: int = CLOCK_PERIOD_NS):
        self.dut = dut
        self.params = params
        self.clock_period_ns = clock_period_ns

    async def start(self) -> None:
        """Start the clock and hold reset for three cycles."""
        dut = self.dut
        dut.frames_in__valid.value = 0
        dut.key_port__valid.value = 0
        dut.frames_out__ready.value = 1
        await start_clock_and_reset(dut, period_ns=self.clock_period_ns)

    async def install_keys(self, command_key: bytes, response_key: bytes,
                           command_sequence: int = 0, response_sequence: int = 0) -> None:
        """The on-chip key port: a session's frame keys and the sequence numbers it goes on
        from (0 and 0 for a new session)."""
        dut = self.dut
        dut.key_port__payload.value = (int.from_bytes(command_key, "big")
                                       | int.from_bytes(response_key, "big") << 128
                                       | command_sequence << 256 | response_sequence << 320)
        await offer(dut.clk, dut.key_port__valid, dut.key_port__ready)

    async def session_state(self) -> tuple[bool, int, int]:
        """``(open, next command sequence, next response sequence)`` of the loaded session."""
        await ReadOnly()
        state = int(self.dut.session_state.value)
        await RisingEdge(self.dut.clk)
        return bool(state & 1), (state >> 1) & (2**64 - 1), (state >> 65) & (2**64 - 1)

    async def exchange(self, frames) -> tuple[list, list, int]:
        """Pass ``frames`` in; return the answers, the cycle stamps of each answer and the
        cycles of the whole batch.

        An answer's stamps are :class:`~bolt.hdl.accelerator.Cycles` counted from its frame's
        acceptance (the core's own, from the ``stamps`` port, moved by the cycles the frame
        took to reach the core; ``idle_at`` when the core is idle again), or the cycles
        to the answer alone if the core gave none (a frame the channel refused).
        """
        dut, p = self.dut, self.params
        answers, cycles, total = [], [], 0
        for frame in frames:
            dut.frames_in__payload.value = (int.from_bytes(frame[:p.command_frame_bytes],
                                                           "little")
                                            | len(frame) << (8 * p.command_frame_bytes))
            await offer(dut.clk, dut.frames_in__valid, dut.frames_in__ready)
            accepted = get_sim_time("ns")
            answered = None
            while True:     # wakes when an answer is offered or the channel is idle again
                await ReadOnly()
                count = round((get_sim_time("ns") - accepted) / self.clock_period_ns) + 1
                answering = int(dut.frames_out__valid.value)
                if answering:
                    answers.append(int(dut.frames_out__payload.value).to_bytes(
                        p.response_frame_bytes, "little"))
                    cycles.append(count)
                    answered = self._answer_stamps(count)
                # The next frame could be taken during this access's writes; it is sent once
                # the core is idle, so that every host event of this access is in.
                if int(dut.frames_in__ready.value) and int(dut.idle.value):
                    await RisingEdge(dut.clk)
                    break
                if answering:      # taken at this edge; the next cycle may offer another
                    await RisingEdge(dut.clk)
                else:
                    await First(RisingEdge(dut.frames_out__valid),
                                RisingEdge(dut.frames_in__ready), RisingEdge(dut.idle))
            if answered is not None:    # a plain tuple: the parent need not import the HDL
                cycles[-1] = tuple(answered._replace(idle_at=count))
            total += count
        return answers, cycles, total

    def _answer_stamps(self, count: int) -> Cycles | None:
        """The stamps of the answer offered ``count`` cycles after its frame was taken, if the
        core answered that frame."""
        stamps = unpack_fields(STAMPS_LAYOUT, int(self.dut.stamps.value))
        if not stamps["answered"]:
            return None
        opened = stamps["opened"]

        def moved(stamp: int) -> int:   # 0 stays 0: the access had no such event
            return stamp + opened if stamp else 0
        return Cycles(count, moved(stamps["reads_at"]), moved(stamps["data_at"]),
                      ready_at=moved(stamps["ready_at"]), taken_at=moved(stamps["taken_at"]),
                      responded_at=moved(stamps["cycles"]))
