"""The host AXI4 bridge of the page engine (:class:`bolt.hdl.pages.HostAxiBridge`) in Amaranth's
simulator: whole pages as bursts split at 4 KB boundaries, write responses awaited."""

from __future__ import annotations

from amaranth.sim import Simulator

from bolt.hdl.pages import HostAxiBridge
from bolt.params import Params

from .axi_model import AxiMemory


def test_pages_move_as_bursts_split_at_4k_with_write_responses():
    p = Params(capacity=4096)                        # 1,152-byte pages, 18 beats
    dut = HostAxiBridge(p)
    memory = AxiMemory(dut.axi, latency=6, stall=0.3, seed=2)
    page = 3 * p.page_stride                         # bytes 3,456..4,607: crosses 4 KB
    first = (4096 - page) // 64
    for beat in range(p.page_beats):
        memory.beats[page // 64 + beat] = 1000 + beat
    seen = {}

    async def bench(ctx):
        ctx.set(dut.page.rd_data.ready, 1)
        ctx.set(dut.page.rd_req.payload, page)
        ctx.set(dut.page.rd_req.valid, 1)
        await ctx.tick().until(dut.page.rd_req.ready)
        ctx.set(dut.page.rd_req.valid, 0)
        beats = []
        while len(beats) < p.page_beats:
            _, _, valid, data = await ctx.tick().sample(dut.page.rd_data.valid,
                                                        dut.page.rd_data.payload)
            if valid:
                beats.append(data)
        seen["read"] = beats
        ctx.set(dut.page.wr_req.payload, page)
        ctx.set(dut.page.wr_req.valid, 1)
        await ctx.tick().until(dut.page.wr_req.ready)
        ctx.set(dut.page.wr_req.valid, 0)
        for beat in range(p.page_beats):
            ctx.set(dut.page.wr_data.payload, 2000 + beat)
            ctx.set(dut.page.wr_data.valid, 1)
            await ctx.tick().until(dut.page.wr_data.ready)
        ctx.set(dut.page.wr_data.valid, 0)
        seen["pending after the last beat"] = ctx.get(dut.writes_pending)
        cycles = 0
        while ctx.get(dut.writes_pending):
            await ctx.tick()
            cycles += 1
        seen["responses"] = cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(memory.serve, background=True)
    sim.add_testbench(bench)
    sim.run()
    assert memory.reads == [(page, first), (4096, p.page_beats - first)]
    assert seen["read"] == [1000 + beat for beat in range(p.page_beats)]
    assert memory.writes == [(page, first), (4096, p.page_beats - first)]
    assert memory.wlast_at == [first, p.page_beats - first]
    assert [memory.beats[page // 64 + beat] for beat in range(p.page_beats)] == \
        [2000 + beat for beat in range(p.page_beats)]
    assert seen["pending after the last beat"] == 1 and seen["responses"] >= 1
