"""A cocotb driver that serves the accelerator's host-memory master port from a
:class:`bolt.trace.HostMemory`, so the memory records exactly the trace the model records.

The port (see :class:`bolt.hdl.accelerator.HostPortSignature`) has four valid/ready streams,
named from the accelerator's side:

``rd_req``  (accelerator → host)
    payload: byte address of a page (``page · page_stride``). One request reads one whole page:
    ``page_stride`` bytes.
``rd_data`` (host → accelerator)
    payload: one 64-byte beat, a 512-bit value equal to ``int.from_bytes(beat, "little")``;
    ``page_beats`` beats answer each read request, in address order.
``wr_req``  (accelerator → host)
    payload: byte address of a page. One request writes one whole page.
``wr_data`` (accelerator → host)
    ``page_beats`` beats follow each write request, in address order, same encoding as
    ``rd_data``.

Requests are served in order; a write is applied to the memory when its last beat arrives, so
a read requested after a write's last beat sees the written bytes. The driver records a read
(``memory.read``) when its request is accepted and a write (``memory.write``) when its last beat
arrives: one ``TraceEvent`` of ``page_stride`` bytes per page moved, as the reference model
records.

The driver is independent of any test: give it the DUT handle, the memory, the page stride and
the port's signal name prefix.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from bolt.params import BEAT_BYTES
from bolt.trace import HostMemory

__all__ = ["HostPortDriver"]


class HostPortDriver:
    """Serve a host-memory master port from ``memory``.

    Parameters
    ----------
    dut :
        The cocotb handle of the design.
    memory : HostMemory
        The untrusted host memory; its ``trace`` records every page moved.
    page_stride : int
        Bytes of one page transfer (a multiple of 64).
    clock :
        The clock handle; all handshakes are sampled on its rising edge.
    prefix : str
        Name prefix of the port's signals (``"host__"`` gives ``host__rd_req__valid``, ...).
    read_latency : int
        Cycles between an accepted read request and its first data beat (host-controlled).
    """

    def __init__(self, dut, memory: HostMemory, *, page_stride: int, clock, prefix: str = "host__",
                 read_latency: int = 2):
        if page_stride % BEAT_BYTES:
            raise ValueError(f"page_stride {page_stride} is not a multiple of {BEAT_BYTES}")
        self.memory = memory
        self.page_stride = page_stride
        self.beats = page_stride // BEAT_BYTES
        self.clock = clock
        self.read_latency = read_latency
        sig = lambda name: getattr(dut, prefix + name)  # noqa: E731
        self._rd_req = (sig("rd_req__valid"), sig("rd_req__ready"), sig("rd_req__payload"))
        self._rd_data = (sig("rd_data__valid"), sig("rd_data__ready"), sig("rd_data__payload"))
        self._wr_req = (sig("wr_req__valid"), sig("wr_req__ready"), sig("wr_req__payload"))
        self._wr_data = (sig("wr_data__valid"), sig("wr_data__ready"), sig("wr_data__payload"))
        self._tasks = []
        #: Times a write burst paused (``wr_data.valid`` low between two of its beats).
        self.write_stalls = 0

    def start(self) -> None:
        """Drive the host side's idle values and start serving both directions."""
        self._rd_req[1].value = 1
        self._rd_data[0].value = 0
        self._rd_data[2].value = 0
        self._wr_req[1].value = 1
        self._wr_data[1].value = 1
        self._tasks = [cocotb.start_soon(self._serve_reads()),
                       cocotb.start_soon(self._serve_writes())]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []

    async def _wait_request(self, valid) -> None:
        """Return in the ReadOnly phase of a cycle whose coming rising edge accepts a request."""
        while True:
            await ReadOnly()
            if int(valid.value):
                return
            await RisingEdge(valid)

    async def _serve_reads(self) -> None:
        req_valid, _, req_payload = self._rd_req
        data_valid, data_ready, data_payload = self._rd_data
        while True:
            await self._wait_request(req_valid)
            address = int(req_payload.value)
            await RisingEdge(self.clock)            # the request is accepted at this edge
            data = self.memory.read(address, self.page_stride)
            for _ in range(self.read_latency):
                await RisingEdge(self.clock)
            for beat in range(self.beats):
                data_payload.value = int.from_bytes(
                    data[beat * BEAT_BYTES:(beat + 1) * BEAT_BYTES], "little")
                data_valid.value = 1
                while True:
                    await ReadOnly()
                    accepted = int(data_ready.value)
                    await RisingEdge(self.clock)
                    if accepted:
                        break
            data_valid.value = 0

    async def _serve_writes(self) -> None:
        req_valid, _, req_payload = self._wr_req
        data_valid, _, data_payload = self._wr_data
        while True:
            await self._wait_request(req_valid)
            address = int(req_payload.value)
            await RisingEdge(self.clock)
            data = bytearray()
            while len(data) < self.page_stride:
                await ReadOnly()
                if int(data_valid.value):
                    data += int(data_payload.value).to_bytes(BEAT_BYTES, "little")
                    await RisingEdge(self.clock)    # the edge that takes this beat
                else:
                    # Sleep until the page is encrypted rather than waking every cycle.
                    self.write_stalls += bool(data)
                    await RisingEdge(data_valid)
            self.memory.write(address, bytes(data))


def new_host_memory(params) -> HostMemory:
    """A zeroed host memory of ``params.host_bytes`` bytes (all B pages)."""
    return HostMemory(params.host_bytes)
