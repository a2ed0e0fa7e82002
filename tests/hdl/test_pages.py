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


def test_two_engines_share_the_host_port_in_order():
    """PagePortArbiter: both engines ask for a page in the same cycle; a's read goes out first
    and each page's beats reach the engine that asked; then a's write goes out before b's."""
    import random

    from bolt.hdl.pages import PagePortArbiter

    p = Params(capacity=1024, value_size=8)          # 6 beats a page
    n = p.page_beats
    dut = PagePortArbiter(p)
    rng = random.Random(3)
    seen = {"requests": [], "a": [], "b": [], "writes": []}

    async def host(ctx):
        """Takes read requests (with stalls), answers each page in request order, then takes
        write requests one at a time with their beats."""
        asked = []
        ctx.set(dut.host.rd_req.ready, 1)
        while len(asked) < 2:
            ctx.set(dut.host.rd_req.ready, rng.random() < 0.6)
            _, _, valid, ready, address = await ctx.tick().sample(
                dut.host.rd_req.valid, dut.host.rd_req.ready, dut.host.rd_req.payload)
            if valid and ready:
                asked.append(address)
        ctx.set(dut.host.rd_req.ready, 0)
        seen["requests"] = asked
        for address in asked:
            for beat in range(n):
                ctx.set(dut.host.rd_data.payload, address * 100 + beat)
                ctx.set(dut.host.rd_data.valid, 1)
                await ctx.tick().until(dut.host.rd_data.ready)
                ctx.set(dut.host.rd_data.valid, 0)
                if rng.random() < 0.3:
                    await ctx.tick()
        for _ in range(2):
            ctx.set(dut.host.wr_req.ready, 1)
            while True:
                _, _, valid, address = await ctx.tick().sample(dut.host.wr_req.valid,
                                                               dut.host.wr_req.payload)
                if valid:
                    break
            ctx.set(dut.host.wr_req.ready, 0)
            beats = []
            ctx.set(dut.host.wr_data.ready, 1)
            while len(beats) < n:
                _, _, valid, data = await ctx.tick().sample(dut.host.wr_data.valid,
                                                            dut.host.wr_data.payload)
                if valid:
                    beats.append(data)
            ctx.set(dut.host.wr_data.ready, 0)
            seen["writes"].append((address, beats))

    def engine(name, port, address):
        async def run(ctx):
            ctx.set(port.rd_req.payload, address)
            ctx.set(port.rd_req.valid, 1)
            await ctx.tick().until(port.rd_req.ready)
            ctx.set(port.rd_req.valid, 0)
            ctx.set(port.rd_data.ready, 1)
            while len(seen[name]) < n:
                _, _, valid, data = await ctx.tick().sample(port.rd_data.valid,
                                                            port.rd_data.payload)
                if valid:
                    seen[name].append(data)
            ctx.set(port.wr_req.payload, address)
            ctx.set(port.wr_req.valid, 1)
            await ctx.tick().until(port.wr_req.ready)
            ctx.set(port.wr_req.valid, 0)
            for beat in range(n):
                ctx.set(port.wr_data.payload, address * 10 + beat)
                ctx.set(port.wr_data.valid, 1)
                await ctx.tick().until(port.wr_data.ready)
            ctx.set(port.wr_data.valid, 0)
        return run

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(host)
    sim.add_testbench(engine("a", dut.a, 7))
    sim.add_testbench(engine("b", dut.b, 9))
    sim.run_until(1e-8 * 2000)
    assert seen["requests"] == [7, 9]
    assert seen["a"] == [700 + beat for beat in range(n)]
    assert seen["b"] == [900 + beat for beat in range(n)]
    assert seen["writes"] == [(7, [70 + beat for beat in range(n)]),
                              (9, [90 + beat for beat in range(n)])]
