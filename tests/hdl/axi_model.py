"""An AXI4 slave for Amaranth's simulator: a beat-addressed memory with random latency and
back-pressure, recording every burst (for the unit tests of the HBM and host ports)."""

from __future__ import annotations

import random
from collections import deque


class AxiMemory:
    """Serve ``axi`` (an :class:`bolt.hdl.hbm.AxiSignature` master) from ``beats``
    (beat address -> 512-bit int, missing = 0). ``stall``: chance a handshake is held in a
    cycle; reads return ``latency`` cycles after their request at the earliest."""

    def __init__(self, axi, *, latency: int = 3, stall: float = 0.0, seed: int = 0):
        self.axi = axi
        self.beats: dict[int, int] = {}
        self.latency = latency
        self.stall = stall
        self.rng = random.Random(seed)
        self.reads: list[tuple[int, int]] = []     # (byte address, beats) of each AR
        self.writes: list[tuple[int, int]] = []    # (byte address, beats) of each AW
        self.wlast_at: list[int] = []              # beat count within each W burst at wlast

    def _go(self) -> bool:
        return self.rng.random() >= self.stall

    async def serve(self, ctx):
        axi = self.axi
        reads, writes, responses = deque(), deque(), 0
        cycle, r_beat, w_beat = 0, 0, 0
        while True:
            ar_ready, aw_ready, w_ready, b_valid = self._go(), self._go(), self._go(), False
            r_valid = bool(reads) and reads[0][2] <= cycle and self._go()
            ctx.set(axi.arready, ar_ready)
            ctx.set(axi.awready, aw_ready)
            ctx.set(axi.wready, w_ready and bool(writes))
            if r_valid:
                address, length, _ = reads[0]
                ctx.set(axi.rdata, self.beats.get(address // 64 + r_beat, 0))
                ctx.set(axi.rlast, r_beat == length - 1)
            ctx.set(axi.rvalid, r_valid)
            b_valid = responses > 0 and self._go()
            ctx.set(axi.bvalid, b_valid)
            # What the master drives, sampled at the clock edge (after every testbench and
            # the design have settled this cycle).
            (_, _, arvalid, araddr, arlen, awvalid, awaddr, awlen, wvalid, wdata, wstrb, wlast,
             rready, bready) = await ctx.tick().sample(
                axi.arvalid, axi.araddr, axi.arlen, axi.awvalid, axi.awaddr, axi.awlen,
                axi.wvalid, axi.wdata, axi.wstrb, axi.wlast, axi.rready, axi.bready)
            ar, aw = ar_ready and arvalid, aw_ready and awvalid
            w = w_ready and bool(writes) and wvalid
            r, b = r_valid and rready, b_valid and bready
            for valid_request, address, beats in ((ar, araddr, arlen + 1), (aw, awaddr, awlen + 1)):
                # AXI4: a burst never crosses a 4 KB boundary.
                assert not valid_request or address // 4096 == (address + 64 * beats - 1) // 4096, \
                    f"a {beats}-beat burst at {address:#x} crosses 4 KB"
            if ar:
                request = (araddr, arlen + 1)
                self.reads.append(request)
                reads.append((*request, cycle + self.latency))
            if aw:
                request = (awaddr, awlen + 1)
                self.writes.append(request)
                writes.append(request)
            if w:
                address, length = writes[0]
                strobes, data = wstrb, wdata
                old = self.beats.get(address // 64 + w_beat, 0)
                mask = sum(0xFF << (8 * i) for i in range(64) if strobes >> i & 1)
                self.beats[address // 64 + w_beat] = (old & ~mask) | (data & mask)
                w_beat += 1
                if wlast:
                    assert w_beat == length, (w_beat, length)
                    self.wlast_at.append(w_beat)
                    writes.popleft()
                    w_beat = 0
                    responses += 1
            if r:
                r_beat += 1
                if r_beat == reads[0][1]:
                    reads.popleft()
                    r_beat = 0
            if b:
                responses -= 1
            cycle += 1
