"""The page engine (:class:`bolt.hdl.pages.PageEngine`) and its host AXI4 bridge
(:class:`bolt.hdl.pages.HostAxiBridge`) in Amaranth's simulator: pages sealed and opened as
the reference cipher does, in cycles that do not depend on their bytes; whole pages as bursts
split at 4 KB boundaries, write responses awaited."""

from __future__ import annotations

import random
from collections import deque

import pytest
from amaranth.sim import Simulator

from bolt.crypto import PageCipher
from bolt.hdl.pages import PAGE_GCM_LANES, HostAxiBridge, PageEngine
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


def _serve_host(host, beats, host_pages, *, stall, seed, log):
    """A host for ``host`` (the page engine's streams): pages of ``beats`` beats by byte
    address in ``host_pages``, each handshake held in ``stall`` of the cycles at random; a page
    written lands in ``host_pages``; ``log`` gets ``(cycle, event, address)``. Setting
    ``log.restart`` starts the cycle count and the random stalls (``seed``) over, so that each
    page operation meets the same host."""
    rng = random.Random(seed)

    async def serve(ctx):
        reading, writing, cycle = deque(), None, 0
        while True:
            if log.restart:
                rng.seed(seed)
                cycle, log.restart = 0, False
            go = [rng.random() >= stall for _ in range(4)]
            ctx.set(host.rd_req.ready, go[0])
            ctx.set(host.wr_req.ready, go[1] and writing is None)
            ctx.set(host.wr_data.ready, go[2] and writing is not None)
            if reading:
                ctx.set(host.rd_data.payload, reading[0])
            ctx.set(host.rd_data.valid, bool(reading) and go[3])
            (_, _, rd_valid, rd_addr, rd_ready, wr_valid, wr_addr, wr_ready, w_valid, w_data,
             w_ready, d_valid, d_ready) = await ctx.tick().sample(
                host.rd_req.valid, host.rd_req.payload, host.rd_req.ready,
                host.wr_req.valid, host.wr_req.payload, host.wr_req.ready,
                host.wr_data.valid, host.wr_data.payload, host.wr_data.ready,
                host.rd_data.valid, host.rd_data.ready)
            if rd_valid and rd_ready:
                log.append((cycle, "read", rd_addr))
                reading.extend(host_pages[rd_addr])
            if d_valid and d_ready:
                reading.popleft()
            if wr_valid and wr_ready:
                log.append((cycle, "write", wr_addr))
                writing = (wr_addr, [])
            if w_valid and w_ready:
                writing[1].append(w_data)
                if len(writing[1]) == beats:
                    host_pages[writing[0]] = writing[1]
                    log.append((cycle, "written", writing[0]))
                    writing = None
            cycle += 1

    return serve


class _Log(list):
    restart = False


#: 312-byte pages (key_size 8, V = 12): 20 blocks, the last one partial, and a tag across the
#: last two of 6 beats.
_SMALL = Params(capacity=1024, key_size=8, value_size=12)
#: 11-byte slots: a block spans up to three of them (the plaintext's four banks).
_TINY_SLOTS = Params(capacity=1024, key_size=1, value_size=6)
#: The ciphertext bit a tampering host flips (in the first beat).
_FLIP = 1 << 77


def _beats(sealed: bytes, p: Params) -> list[int]:
    """A sealed page as the host holds it: zero padded, in beats."""
    padded = sealed.ljust(p.page_stride, b"\0")
    return [int.from_bytes(padded[64 * b:64 * (b + 1)], "little") for b in range(p.page_beats)]


def _slots(plaintext: bytes, p: Params) -> list[int]:
    """A page plaintext's slots, each as the slot ports carry it."""
    return [int.from_bytes(plaintext[s * p.slot_bytes:(s + 1) * p.slot_bytes], "little")
            for s in range(p.slots)]


def _store_and_load(p: Params, pages, *, seed: int, lanes: int):
    """For each ``(plaintext, tamper)`` of ``pages``: store ``plaintext`` as page 5 under
    counter 7 and load it back (one ciphertext bit flipped if ``tamper``), each operation
    with the same randomly stalling host (``seed``). Returns the key, and for each page the
    host's beats, the load's ``ok``, the slots read back and when each host event and the
    ``done`` of each operation happened, and the slots' flags (``slot_used``) after the slot
    writes and after the load. GCM takes ``lanes`` blocks a cycle."""
    key = bytes(range(16, 32))
    dut = PageEngine(p, lanes=lanes)
    address = 5 * p.page_stride
    host_pages, results = {}, []
    log = _Log()

    async def bench(ctx):
        # GCM takes the key first (about 22 cycles, once per key).
        ctx.set(dut.key, int.from_bytes(key, "big"))
        ctx.set(dut.rekey, 1)
        await ctx.tick()
        ctx.set(dut.rekey, 0)
        for _ in range(40):
            await ctx.tick()
        for plaintext, tamper in pages:
            used = []
            ctx.set(dut.slot_wr_en, 1)
            for s, slot in enumerate(_slots(plaintext, p)):
                ctx.set(dut.slot_wr_idx, s)
                ctx.set(dut.slot_wr.as_value(), slot)
                await ctx.tick()
            ctx.set(dut.slot_wr_en, 0)
            used.append(ctx.get(dut.slot_used))
            log.clear()
            for op in ("store", "load"):
                if op == "load" and tamper:
                    beats = host_pages[address]
                    host_pages[address] = [beats[0] ^ _FLIP] + beats[1:]
                ctx.set(dut.page, 5)
                ctx.set(dut.counter, 7)
                ctx.set(getattr(dut, op), 1)
                log.restart = True
                await ctx.tick()
                ctx.set(getattr(dut, op), 0)
                if op == "load":         # the counter follows the read request
                    ctx.set(dut.decrypt, 1)
                    await ctx.tick()
                    ctx.set(dut.decrypt, 0)
                cycles = 1
                while not ctx.get(dut.done):
                    await ctx.tick()
                    cycles += 1
                log.append((cycles, "done", op))
                if op == "store":
                    stored = host_pages[address]
            used.append(ctx.get(dut.slot_used))
            slots = []
            for s in range(p.slots):       # a synchronous read: the slot named a cycle before
                ctx.set(dut.slot_rd_idx, s)
                await ctx.tick()
                slots.append(ctx.get(dut.slot_rd.as_value()))
            results.append((stored, ctx.get(dut.ok), slots, used, list(log)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(_serve_host(dut.host, p.page_beats, host_pages, stall=0.3, seed=seed,
                                  log=log), background=True)
    sim.add_testbench(bench)
    sim.run()
    return key, results


@pytest.mark.parametrize("lanes", [1, PAGE_GCM_LANES, 4])
@pytest.mark.parametrize("p", [_SMALL, _TINY_SLOTS], ids=["24-byte slots", "11-byte slots"])
def test_page_engine_seals_opens_and_takes_the_same_cycles_for_any_page(p, lanes):
    """A page stored through the engine is the reference cipher's sealed page, zero padded; it
    loads back to the same slots, whose flags ``slot_used`` follows through slot writes and
    the load; a flipped ciphertext bit fails the tag; and every host event
    and ``done`` falls on the same cycle whatever the page's bytes and whether it verifies
    (given the host's own timing); with GCM taking one, two or four blocks a cycle."""
    plaintexts = [bytearray(random.Random(n).randbytes(p.page_plaintext_bytes)) for n in range(2)]
    for s in (0, 3, 4, p.slots - 1):                 # some empty slots (flag byte 0)
        plaintexts[0][s * p.slot_bytes] = 0
    plaintexts = [bytes(plaintext) for plaintext in plaintexts]
    key, results = _store_and_load(p, [(plaintexts[0], False), (plaintexts[1], True)], seed=9,
                                   lanes=lanes)
    for plaintext, tamper, (stored, ok, slots, used, log) in zip(plaintexts, (False, True),
                                                                  results):
        flags = sum(1 << s for s in range(p.slots) if plaintext[s * p.slot_bytes])
        assert [event[1] for event in log] == ["write", "written", "done", "read", "done"]
        assert stored == _beats(PageCipher(key).seal(5, 7, plaintext), p)
        assert ok == (not tamper)
        assert used[0] == flags
        if not tamper:
            assert slots == _slots(plaintext, p)
            assert used[1] == flags
    assert results[0][4] == results[1][4]
