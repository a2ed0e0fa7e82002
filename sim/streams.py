"""cocotb helpers for Amaranth valid/ready streams on a Verilator model.

An Amaranth stream member ``foo`` becomes the top-level ports ``foo__valid``, ``foo__ready``
and ``foo__payload``. :class:`StreamSource` and :class:`StreamSink` drive and collect them with
random stalls: the source idles for a random number of cycles before offering each item (it
never withdraws an offered item), the sink lowers ``ready`` at random. Transfers are sampled in
the ``ReadOnly`` phase before each rising edge, so combinational ``ready``/``valid`` paths are
seen after they settle.
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb import simtime
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from bolt.sim.verilator import MAIN_CLOCK_ENV

__all__ = ["env_int", "env_float", "CLOCK_PERIOD_NS", "start_clock", "start_clock_and_reset", "until_high", "offer",
           "StreamSource", "StreamSink", "CycleCounter"]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


#: The clock period every driver and testbench simulates (it only scales simulated time).
CLOCK_PERIOD_NS = 10


def start_clock(clk, period_ns: int = CLOCK_PERIOD_NS) -> None:
    """Drive ``clk`` from C++: the executable's main loop drives it when the environment asks
    (:data:`bolt.sim.verilator.MAIN_CLOCK_ENV`, set for the RTL backend's simulations), else
    cocotb's GPI clock does.

    cocotb's default clock is a Python task, two Python wake-ups per cycle: with it an idle
    accelerator simulated at a third of the speed it reaches with the GPI clock. The GPI clock
    in turn writes the clock through VPI and registers a timer at every edge, a few per cent
    of the time of a simulation that runs for millions of cycles.
    """
    half_period = os.environ.get(MAIN_CLOCK_ENV)
    if not half_period:
        Clock(clk, period_ns, unit="ns", impl="gpi").start()
    elif 2 * int(half_period) != simtime.convert(period_ns, "ns", to="step"):
        raise ValueError(f"the simulation's main loop drives {clk._name} with a half period of "
                         f"{half_period} steps, not half of {period_ns} ns")


async def start_clock_and_reset(dut, cycles: int = 3, *, period_ns: int = CLOCK_PERIOD_NS):
    """Start a clock on ``dut.clk`` and hold ``dut.rst`` for ``cycles`` cycles."""
    start_clock(dut.clk, period_ns)
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


async def until_high(signal) -> None:
    """Return in the ``ReadOnly`` phase of the first cycle in which ``signal`` is high.

    Waits on the signal's own rising edge, not on every clock: a command or a frame keeps the
    accelerator busy for a thousand cycles or so, and a Python wake-up per cycle costs more
    than Verilator's evaluation of the cycle.
    """
    await ReadOnly()
    while not int(signal.value):
        await RisingEdge(signal)
        await ReadOnly()


async def offer(clk, valid, ready) -> None:
    """Raise ``valid`` and hold it until the transfer's clock edge (``ready`` high)."""
    valid.value = 1
    await until_high(ready)
    await RisingEdge(clk)
    valid.value = 0


class StreamSource:
    """Offers items on stream ``name`` of ``dut``; ``stall`` is the chance of an idle cycle."""

    def __init__(self, dut, name: str, *, stall: float = 0.0, rng: random.Random | None = None):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.stall = stall
        self.rng = rng or random.Random()
        self.valid.value = 0
        self.sent = 0

    async def send(self, items) -> None:
        """Transfer every item in order; return after the last transfer's clock edge."""
        for item in items:
            while self.stall and self.rng.random() < self.stall:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.valid.value = 1
            self.payload.value = item
            while True:
                await ReadOnly()
                fired = bool(self.ready.value)
                await RisingEdge(self.clk)
                if fired:
                    break
            self.sent += 1
        self.valid.value = 0

    def start(self, items):
        return cocotb.start_soon(self.send(list(items)))


class StreamSink:
    """Accepts items from stream ``name``; ``stall`` is the chance ``ready`` is low in a cycle."""

    def __init__(self, dut, name: str, *, stall: float = 0.0, rng: random.Random | None = None):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.stall = stall
        self.rng = rng or random.Random()
        self.ready.value = 0

    async def receive(self, count: int) -> list[int]:
        """Collect ``count`` items; return after the last transfer's clock edge."""
        items: list[int] = []
        while len(items) < count:
            take = not (self.stall and self.rng.random() < self.stall)
            self.ready.value = int(take)
            await ReadOnly()
            if take and self.valid.value:
                items.append(int(self.payload.value))   # int(): 1-bit payloads are a Logic
            await RisingEdge(self.clk)
        self.ready.value = 0
        return items

    def start(self, count: int):
        return cocotb.start_soon(self.receive(count))


class CycleCounter:
    """Counts rising edges of ``clk`` since :meth:`reset` (for latency/throughput checks)."""

    def __init__(self, clk):
        self.clk = clk
        self.cycles = 0
        cocotb.start_soon(self._count())

    async def _count(self):
        while True:
            await RisingEdge(self.clk)
            self.cycles += 1

    def reset(self):
        self.cycles = 0
