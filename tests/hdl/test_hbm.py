"""The HBM address map and :class:`bolt.hdl.hbm.HbmMaster` in Amaranth's simulator."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from bolt.hdl.hbm import (FRAME_BANKS, FRAME_COPIES, INDEX_PORTS, HbmMap, HbmMaster,
                          MAX_BURST_BEATS, index_positions)
from bolt.params import Params

from .axi_model import AxiMemory


@pytest.mark.parametrize("capacity", [1 << 10, 1 << 16, 1 << 20])
def test_map_regions_are_disjoint_4k_aligned_and_hold_every_element(capacity):
    p = Params(capacity=capacity)
    hbm = HbmMap(p)
    regions = list(hbm.regions.values())
    # The index alone on its ports; each other port its regions one after another from 0:
    # the loads and staging on the data port, the lists and maps on the lists port, the
    # counters, each copy of the frames and the free stack each on a port of its own.
    on_port = {port: [r.name for r in regions if r.ports == (port,)]
               for port in range(hbm.index_ports, hbm.ports)}
    assert on_port == {
        hbm.data_port: ["loads", "staging"], hbm.lists_port: ["bins", "maps"],
        hbm.counters_port: ["counters"],
        **{port: [f"frames{copy}"] for copy, port in enumerate(hbm.frame_ports)},
        hbm.stack_port: ["stack"]}
    for names in on_port.values():
        on = [hbm.regions[name] for name in names]
        assert on[0].base == 0
        for before, after in zip(on, on[1:]):
            assert before.end == after.base
        assert hbm.port_sizes[on[0].ports[0]] == on[-1].end
    assert hbm.regions["index"].base == 0
    for region in regions:
        assert region.base % 4096 == 0
        assert -(-region.count // len(region.ports)) * region.stride <= region.size
    assert hbm.regions["index"].count == index_positions(p) >= p.index_entries
    assert hbm.regions["index"].ports == tuple(range(INDEX_PORTS)) == tuple(
        range(hbm.index_ports))
    assert hbm.ports == INDEX_PORTS + 4 + FRAME_COPIES
    assert len(hbm.frame_ports) == len(hbm.frame_copies) == FRAME_COPIES == 2 * FRAME_BANKS
    assert all(copy.count == p.frames for copy in hbm.frame_copies)
    # A flush reads its slots from its own copies, in turn.
    assert [hbm.frame_copy(flush, slot).name for flush in (0, 1)
            for slot in range(FRAME_BANKS + 1)] == [
        f"frames{flush * FRAME_BANKS + slot % FRAME_BANKS}" for flush in (0, 1)
        for slot in range(FRAME_BANKS + 1)]
    assert len({hbm.frame_copy(flush, slot).ports for flush in (0, 1)
                for slot in range(FRAME_BANKS)}) == FRAME_COPIES
    assert hbm.regions["loads"].count == p.bins
    assert hbm.clear_ends == [hbm.regions["index"].end] * INDEX_PORTS + [
        hbm.regions["staging"].end, hbm.regions["maps"].end] + [0] * (2 + FRAME_COPIES)
    # A page's map is one beat: the gather reads two of them.
    assert hbm.regions["maps"].element_beats == 1
    assert max(hbm.port_sizes) <= 2 ** hbm.address_width
    assert hbm.size == sum(hbm.port_sizes)


@pytest.mark.parametrize("ports", [1, 2, 4])
def test_every_element_has_a_place_of_its_own_and_the_clears_cover_the_cleared_regions(ports):
    hbm = HbmMap(Params(capacity=1024), index_ports=ports)
    # The index's ports, the data port and the lists port have something to clear.
    assert hbm.ports == ports + 4 + FRAME_COPIES == len(hbm.port_sizes)
    assert len(hbm.clears) == ports + 2
    places, cleared = {}, set()
    for clear in hbm.clears:
        port, = clear.ports
        cleared |= {(port, clear.address(i) // 64 + beat)
                    for i in range(clear.count) for beat in range(clear.stride // 64)}
    for region in hbm.regions.values():
        for i in range(region.count):
            port, address = region.port(i), region.address(i)
            assert address + region.stride <= hbm.port_sizes[port]
            for beat in range(region.element_beats):
                place = (port, address // 64 + beat)
                assert place not in places, (region.name, i, places.get(place))
                places[place] = (region.name, i)
                assert (place in cleared) == (region.name in ("index", "loads", "bins",
                                                              "maps", "staging"))
    # The index's entries alternate over the ports, a bucket's ways on all of them.
    index = hbm.regions["index"]
    assert {index.port(i) for i in range(ports)} == set(range(ports))


def _run(dut, bench, memory):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(memory.serve, background=True)
    sim.add_testbench(bench)
    sim.run()


def test_writes_reads_strobes_zero_bursts_and_fixed_step_end():
    hbm = HbmMap(Params(capacity=1024))
    dut = HbmMaster(hbm, port=hbm.data_port)
    memory = AxiMemory(dut.axi, latency=5, stall=0.3, seed=1)
    memory.beats.update({300: 7, 301: 8})
    wide = 512 * hbm.max_element_beats
    seen = {}

    async def bench(ctx):
        ctx.set(dut.rdata.ready, 1)

        async def step(requests, budget):
            ctx.set(dut.begin, 1)
            ctx.set(dut.budget, budget)
            await ctx.tick()
            ctx.set(dut.begin, 0)
            cycles, elements = 0, []

            async def cycle_until(signal):
                """One cycle at a time, keeping the elements that arrive, until ``signal``."""
                nonlocal cycles
                while True:
                    _, _, flag, valid, index, element = await ctx.tick().sample(
                        signal, dut.element_valid, dut.element_index, dut.element)
                    if valid:
                        elements.append((index, element))
                    cycles += 1
                    assert cycles < 2000, f"{signal} never rose"
                    if flag:
                        return

            for kind, fields in requests:
                port = dut.rd if kind == "r" else dut.wr
                ctx.set(port.payload, fields)
                ctx.set(port.valid, 1)
                await cycle_until(port.ready)
                ctx.set(port.valid, 0)
            await cycle_until(dut.done)
            return cycles, elements

        cycles, _ = await step([
            ("w", {"addr": 200 * 64, "beats": 2, "data": 5 | 6 << 512, "enable": 1, "zero": 0}),
            ("w", {"addr": 300 * 64, "beats": 2, "data": (1 << wide) - 1, "enable": 0,
                   "zero": 0}),
            ("w", {"addr": 4096, "beats": MAX_BURST_BEATS, "data": 0, "enable": 1, "zero": 1}),
        ], budget=300)
        seen["write step"] = cycles
        cycles, elements = await step([("r", {"addr": 300 * 64, "beats": 2}),
                                       ("r", {"addr": 200 * 64, "beats": 2})], budget=120)
        seen["read step"] = cycles
        seen["elements"] = elements
        seen["overruns before"] = ctx.get(dut.overruns)
        await step([("r", {"addr": 0, "beats": 64})], budget=10)
        seen["overruns after"] = ctx.get(dut.overruns)

    memory.beats.update({64 + i: 99 for i in range(MAX_BURST_BEATS)})
    _run(dut, bench, memory)
    assert memory.beats[200] == 5 and memory.beats[201] == 6
    assert memory.beats[300] == 7 and memory.beats[301] == 8      # no strobes, no change
    assert all(memory.beats[64 + i] == 0 for i in range(MAX_BURST_BEATS))
    assert memory.writes == [(200 * 64, 2), (300 * 64, 2), (4096, MAX_BURST_BEATS)]
    # A step ends at its budget (counted from the cycle after ``begin``) whatever the memory's
    # stalls, as long as they fit in it.
    assert seen["write step"] == 300 + 1 and seen["read step"] == 120 + 1
    assert [index for index, _ in seen["elements"]] == [0, 1]
    assert seen["elements"][0][1] & ((1 << 1024) - 1) == 7 | 8 << 512
    assert seen["elements"][1][1] & ((1 << 1024) - 1) == 5 | 6 << 512
    assert seen["overruns before"] == 0 and seen["overruns after"] == 1


def test_a_streamed_write_takes_each_beat_and_its_strobe_as_it_goes_out():
    """A burst longer than a write request's data: each beat from ``wbeat_data``, numbered on
    ``wbeat`` from the request's ``first``, strobed only with ``wbeat_enable``."""
    from amaranth.hdl import Module

    hbm = HbmMap(Params(capacity=1024))
    dut = HbmMaster(hbm, port=hbm.data_port)
    top = Module()
    top.submodules.hbm = dut
    top.d.comb += [dut.wbeat_data.eq(dut.wbeat * 3 + 1), dut.wbeat_enable.eq(dut.wbeat != 7)]
    memory = AxiMemory(dut.axi, latency=5, stall=0.3, seed=2)
    memory.beats.update({502: 42, 506: 43})
    done = []

    async def bench(ctx):
        ctx.set(dut.begin, 1)
        ctx.set(dut.budget, 40)
        await ctx.tick()
        ctx.set(dut.begin, 0)
        ctx.set(dut.wr.payload, {"addr": 500 * 64, "beats": 6, "data": 0, "enable": 1,
                                 "zero": 0, "streamed": 1, "first": 5})
        ctx.set(dut.wr.valid, 1)
        await ctx.tick().until(dut.wr.ready)
        ctx.set(dut.wr.valid, 0)
        await ctx.tick().until(dut.done)
        done.append(True)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(memory.serve, background=True)
    sim.add_testbench(bench)
    sim.run()
    assert done
    assert memory.writes == [(500 * 64, 6)]
    assert [memory.beats[500 + j] for j in range(6)] == [16, 19, 42, 25, 28, 31]
    assert memory.beats[506] == 43                     # past the burst: untouched


def test_writes_wait_in_the_queue_not_at_the_port_and_go_out_in_order():
    """A client offering writes back to back is never held while the port is busy: each is
    taken the cycle it is offered (up to the queue's depth), they go out in the order taken,
    and the step is not done before the last one's response."""
    hbm = HbmMap(Params(capacity=1024))
    dut = HbmMaster(hbm, port=hbm.data_port)
    memory = AxiMemory(dut.axi, latency=5, stall=0.5, seed=4)
    count = 20
    taken_at, done_at = [], []

    async def bench(ctx):
        ctx.set(dut.begin, 1)
        ctx.set(dut.budget, 2)
        await ctx.tick()
        ctx.set(dut.begin, 0)
        cycle = 0
        for n in range(count):
            ctx.set(dut.wr.payload, {"addr": (100 + 4 * n) * 64, "beats": 2,
                                     "data": n + 1 | (n + 50) << 512, "enable": 1, "zero": 0})
            ctx.set(dut.wr.valid, 1)
            _, _, ready = await ctx.tick().sample(dut.wr.ready)
            cycle += 1
            assert ready
            taken_at.append(cycle)
        ctx.set(dut.wr.valid, 0)
        while True:
            _, _, done = await ctx.tick().sample(dut.done)
            cycle += 1
            if done:
                done_at.append(cycle)
                return

    _run(dut, bench, memory)
    assert taken_at == list(range(1, count + 1))
    assert memory.writes == [((100 + 4 * n) * 64, 2) for n in range(count)]
    for n in range(count):
        assert memory.beats[100 + 4 * n] == n + 1 and memory.beats[101 + 4 * n] == n + 50
    # Half the memory's handshakes stall: the 40 beats alone take well over the 20 cycles in
    # which the requests were taken.
    assert done_at and done_at[0] > count + 2 * count // 2


def test_done_follows_the_handshakes_and_the_budget_cycle_by_cycle():
    """``done`` comes from registers set a cycle ahead: in every cycle it must say what the
    handshakes seen so far say (every request accepted since ``begin`` answered, ``budget``
    cycles past ``begin``), whatever the requests, their times, the memory's stalls and
    whether the step overruns its budget."""
    import random

    hbm = HbmMap(Params(capacity=1024))
    dut = HbmMaster(hbm, port=hbm.data_port)
    memory = AxiMemory(dut.axi, latency=4, stall=0.4, seed=5)
    rng = random.Random(11)
    checked, overruns = [], []

    async def watch(ctx):
        begun, budget, cycle, reads, writes = None, 0, 0, 0, 0
        async for (_, _, begin, offered_budget, rd, write, rlast, bdone, done_before
                   ) in ctx.tick().sample(
                dut.begin, dut.budget, dut.rd.valid & dut.rd.ready,
                dut.wr.valid & dut.wr.ready, dut.rdata.valid & dut.rdata.ready
                & dut.rdata.payload.last, dut.axi.bvalid & dut.axi.bready, dut.done):
            cycle += 1
            reads += rd - rlast
            writes += write - bdone
            if begin:
                begun, budget, reads, writes = cycle, 2**32, 0, 0
            elif begun == cycle - 1:
                budget = offered_budget          # read in the step's first cycle
            if begun is not None:
                want = cycle - begun >= budget and reads == writes == 0
                checked.append((ctx.get(dut.done), want))

    async def bench(ctx):
        ctx.set(dut.rdata.ready, 1)
        for _ in range(40):
            ctx.set(dut.begin, 1)
            ctx.set(dut.budget, rng.randrange(2, 40))
            await ctx.tick()
            ctx.set(dut.begin, 0)
            for _ in range(rng.randrange(4)):
                for _ in range(rng.randrange(3)):
                    await ctx.tick()
                if rng.random() < 0.5:
                    port, fields = dut.rd, {"addr": 64 * rng.randrange(64),
                                            "beats": rng.randrange(1, 3)}
                else:
                    port, fields = dut.wr, {"addr": 64 * rng.randrange(64), "beats": 2,
                                            "data": rng.getrandbits(64), "enable": 1}
                ctx.set(port.payload, fields)
                ctx.set(port.valid, 1)
                await ctx.tick().until(port.ready)
                ctx.set(port.valid, 0)
            await ctx.tick().until(dut.done)
            for _ in range(rng.randrange(3)):
                await ctx.tick()
        overruns.append(ctx.get(dut.overruns))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(memory.serve, background=True)
    sim.add_testbench(watch, background=True)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) > 500
    bad = [(n, got, want) for n, (got, want) in enumerate(checked) if got != want]
    assert not bad, bad[:10]
    assert {want for _, want in checked} == {0, 1}
    assert 0 < overruns[0] < 40 and memory.reads and memory.writes   # some steps overran
