"""A cocotb driver of the accelerator's command and response streams.

:class:`AcceleratorDriver` sends one command at a time on ``cmd``, waits for its response on
``resp`` and for the accelerator to be idle, and runs Setup as its three command kinds; or
only sends (:meth:`~AcceleratorDriver.send`), for commands in flight together. The RTL
backend's simulation server and the cosimulation testbench both drive the accelerator
through it.
"""

from __future__ import annotations

from cocotb.simtime import get_sim_time
from cocotb.triggers import RisingEdge

from bolt.hdl.accelerator import Cmd, pack_command, unpack_response
from bolt.params import Params
from bolt.protocol import Response, Status
from bolt.sim.streams import CLOCK_PERIOD_NS, offer, start_clock_and_reset, until_high

__all__ = ["AcceleratorDriver", "SetupFailed"]


class SetupFailed(RuntimeError):
    """The accelerator refused a Setup command (a bound crossed while placing the items)."""

    def __init__(self, response: Response):
        self.response = response
        super().__init__(f"Setup command answered {response.status.name}")


class AcceleratorDriver:
    """Drive ``dut``'s ``cmd``/``resp`` streams (clock ``clk``, reset ``rst``).

    Parameters
    ----------
    dut :
        The cocotb handle of a :class:`bolt.hdl.accelerator.RtlAccelerator`.
    params : Params
        The parameters the design was generated with.
    clock_period_ns : int
        Period of the clock this driver starts.
    """

    def __init__(self, dut, params: Params, *, clock_period_ns: int = CLOCK_PERIOD_NS):
        self.dut = dut
        self.params = params
        self.clock_period_ns = clock_period_ns

    async def start(self) -> None:
        """Start the clock and hold reset for three cycles."""
        dut = self.dut
        dut.cmd__valid.value = 0
        dut.resp__ready.value = 1
        await start_clock_and_reset(dut, period_ns=self.clock_period_ns)

    async def send(self, op: int, key: bytes = b"", value: bytes = b"", **extra) -> None:
        """Offer one command and return once it is taken, without waiting for its answer:
        the accelerator's front takes it while the access before it still runs."""
        dut = self.dut
        dut.cmd__payload.value = pack_command(self.params, op, key, value, **extra)
        await offer(dut.clk, dut.cmd__valid, dut.cmd__ready)

    async def command(self, op: int, key: bytes = b"", value: bytes = b"",
                      **extra) -> tuple[Response, int]:
        """Send one command; return its response and its cycle stamps (:class:`Cycles`)."""
        dut = self.dut
        await self.send(op, key, value, **extra)
        await until_high(dut.resp__valid)
        word = int(dut.resp__payload.value)
        response, cycles = unpack_response(self.params, word)
        # The accelerator answers before its page writes and re-placement are done; wait
        # until it is idle again, so every event of this access is in (its front would take
        # the next command before then: :meth:`send` alone sends them so).
        answered = get_sim_time("ns")
        await RisingEdge(dut.clk)
        await until_high(dut.idle)
        after = round((get_sim_time("ns") - answered) / self.clock_period_ns)
        await RisingEdge(dut.clk)
        return response, cycles._replace(idle_at=cycles.total + after)

    async def setup(self, master_key: bytes, salt: bytes, items) -> int:
        """Setup: derive the subkeys, place every distinct key (the last value wins, in
        ``dict(items)`` order), write all pages. Returns the cycles it took."""
        total = 0
        commands = [(Cmd.SETUP_BEGIN, b"", b"", {"master_key": master_key, "salt": salt})]
        commands += [(Cmd.SETUP_ITEM, key, value, {}) for key, value in dict(items).items()]
        commands.append((Cmd.SETUP_END, b"", b"", {}))
        for op, key, value, extra in commands:
            response, cycles = await self.command(op, key, value, **extra)
            total += cycles.total
            if response.status != Status.ABSENT:
                raise SetupFailed(response)
        return total
