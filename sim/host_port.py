"""The cocotb model of the accelerator's host-memory port, an AXI4 slave from cocotbext-axi.

:class:`HostPort` serves it with an ``AxiSlave`` whose target,
:class:`HostPageTarget`, reads and writes a :class:`bolt.trace.HostMemory` (or the RTL backend's
remote one) a page at a time, so the memory records exactly the trace the reference model
records: one read event of ``page_stride`` bytes at the first beat of a page read, one write
event at the last beat of a page write (a page may arrive as several bursts: AXI bursts never
cross 4 KB). Bytes are read and written live, so a test that tampers with the memory between
accesses is seen by the next read.

:func:`random_pauses` generators give it back-pressure and latency on every channel. (The HBM
port is served inside the simulated design: :mod:`bolt.sim.card`.)
"""

from __future__ import annotations

import itertools
import logging
import random

from cocotbext.axi import AxiBus, AxiSlave

__all__ = ["HostPageTarget", "HostPort", "random_pauses"]


def random_pauses(rng: random.Random, probability: float, longest: int = 8):
    """A pause generator for cocotbext-axi: runs of paused cycles (each run up to ``longest``
    cycles) start with ``probability`` per cycle."""
    while True:
        if rng.random() < probability:
            yield from itertools.repeat(True, rng.randint(1, longest))
        yield False


def _quiet(*logs) -> None:
    # cocotbext-axi logs every burst at INFO: thousands of lines per second of simulation.
    for log in logs:
        log.setLevel(logging.WARNING)


class HostPageTarget:
    """The ``AxiSlave`` target over a page-granular host memory (``read``/``write`` of whole
    pages), with one trace event per page moved."""

    def __init__(self, memory, page_stride: int):
        self.memory = memory
        self.page_stride = page_stride
        self._reading: tuple[int, bytes] | None = None
        self._writing: dict[int, bytearray] = {}

    def _page_of(self, address: int) -> int:
        return address - address % self.page_stride

    async def read(self, address: int, length: int) -> bytes:
        page = self._page_of(address)
        if address == page:         # the first beat of a page read
            self._reading = (page, self.memory.read(page, self.page_stride))
        if self._reading is None or self._reading[0] != page:
            raise ValueError(f"read at {address:#x} is not part of a whole-page read")
        offset = address - page
        return self._reading[1][offset:offset + length]

    async def write(self, address: int, data: bytes) -> None:
        page = self._page_of(address)
        received = self._writing.setdefault(page, bytearray())
        if address != page + len(received):
            raise ValueError(f"write at {address:#x} is not the next beat of page {page:#x}")
        received += data
        if len(received) == self.page_stride:
            del self._writing[page]
            self.memory.write(page, bytes(received))


def _channels(slave):
    return (slave.write_if.aw_channel, slave.write_if.w_channel, slave.write_if.b_channel,
            slave.read_if.ar_channel, slave.read_if.r_channel)


def _set_pauses(slave, rng: random.Random | None, probability: float) -> None:
    for channel in _channels(slave):      # each channel its own stream, drawn from ``rng``
        channel.set_pause_generator(
            random_pauses(random.Random(rng.getrandbits(64)), probability)
            if rng is not None and probability else None)


class HostPort:
    """Serve the ``host`` AXI4 port of ``dut`` from ``memory``.

    Parameters
    ----------
    memory :
        Has ``read(address, length)`` and ``write(address, data)`` of whole pages
        (:class:`bolt.trace.HostMemory`, or the RTL backend's remote memory).
    page_stride : int
        Bytes of one page.
    """

    def __init__(self, dut, memory, *, page_stride: int, prefix: str = "host"):
        self.target = HostPageTarget(memory, page_stride)
        self.slave = AxiSlave(AxiBus.from_prefix(dut, prefix + "_"), dut.clk, target=self.target)
        _quiet(self.slave.write_if.log, self.slave.read_if.log)

    def set_pauses(self, rng: random.Random | None, probability: float) -> None:
        """Back-pressure and random latency on every channel (``probability`` 0: none)."""
        _set_pauses(self.slave, rng, probability)
