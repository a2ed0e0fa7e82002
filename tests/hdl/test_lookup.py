"""The index lookup (:class:`bolt.hdl.lookup.Lookup`) in Amaranth's simulator, against a
Python statement of the rule: the key's entry wherever it is; a new key goes to the less full
bucket (ties to bucket 1) at its first free way, else the first free overflow entry. The
buckets are in the simulated HBM, the overflow area on chip, filled through the lookup's write
port and emptied by its clear."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from bolt.hdl.accelerator import pack_fields
from bolt.hdl.hbm import HbmMap, HbmMaster, index_bucket_stride
from bolt.hdl.lookup import Lookup
from bolt.params import Params

from .axi_model import AxiMemory


def _layout(p):
    """(bucket depth, bucket stride, the overflow area's first position)."""
    stride = index_bucket_stride(p)
    return p.index_bucket_depth, stride, p.index_buckets * stride


def _expected(p, table, key, bucket1, bucket2):
    depth, stride, base = _layout(p)
    places = ([bucket1 * stride + w for w in range(depth)] + [bucket2 * stride + w for w in range(depth)]
              + [base + e for e in range(p.index_overflow_entries)])
    found = [pos for pos in places if table.get(pos) == key]
    fills = [sum((b * stride + w) in table for w in range(depth)) for b in (bucket1, bucket2)]
    if fills[0] < depth or fills[1] < depth:
        bucket = bucket2 if fills[1] < fills[0] else bucket1
        free = next(bucket * stride + w for w in range(depth) if bucket * stride + w not in table)
    else:
        free = next((base + e for e in range(p.index_overflow_entries) if base + e not in table),
                    None)
    return (found[-1] if found else None), free


def _cases(p, rng, count):
    """Random buckets and index contents, the key present in two of three cases."""
    depth, stride, base = _layout(p)
    cases = []
    for n in range(count):
        bucket1, bucket2 = rng.randrange(p.index_buckets), rng.randrange(p.index_buckets)
        table = {}
        for bucket in (bucket1, bucket2):
            fill = rng.choice([0, 2, depth - 1, depth, depth])
            for way in rng.sample(range(depth), fill):
                table[bucket * stride + way] = rng.randbytes(4)
        if rng.random() < 0.7:
            for entry in rng.sample(range(p.index_overflow_entries),
                                    rng.choice([1, 3, 40, p.index_overflow_entries])):
                table[base + entry] = rng.randbytes(4)
        key = rng.randbytes(5)
        if table and n % 3:
            table[rng.choice(sorted(table))] = key        # the key is present somewhere
        cases.append((table, key, bucket1, bucket2))
    return cases


def _entry(layout, stored, pos):
    return pack_fields(layout, {"valid": 1, "klen": len(stored),
                                "key": int.from_bytes(stored, "little"), "bin": pos % 7})


@pytest.mark.parametrize("capacity, ports, latency, stall", [
    (1024, 2, 4, 0.2), (1024, 2, 1, 0.0), (1024, 2, 30, 0.0), (1024, 1, 4, 0.2),
    (1024, 4, 3, 0.1), (1 << 17, 2, 2, 0.1)])
def test_lookup_finds_keys_and_free_places(capacity, ports, latency, stall):
    p = Params(capacity=capacity)
    hbm = HbmMap(p, index_ports=ports)
    dut = Lookup(p, hbm)
    rng = random.Random(3)
    depth, stride, base = _layout(p)
    index = hbm.regions["index"]
    cases = _cases(p, rng, 24)
    outcomes, cycles = [], []

    m = Module()
    m.submodules.lookup = dut
    memories = []
    for port in range(ports):
        m.submodules[f"master{port}"] = master = HbmMaster(hbm, port=port)
        m.d.comb += [master.rd.valid.eq(dut.rd[port].valid),
                     master.rd.payload.eq(dut.rd[port].payload),
                     dut.rd[port].ready.eq(master.rd.ready),
                     dut.beat[port].valid.eq(master.rdata.valid),
                     dut.beat[port].payload.eq(master.rdata.payload), master.rdata.ready.eq(1)]
        memories.append(AxiMemory(master.axi, latency=latency, stall=stall, seed=7 + port))
    layout = dut.entry_layout

    def beat(pos):
        """Where index entry ``pos`` lies: its port's memory and beat address."""
        return memories[index.port(pos)].beats, index.address(pos) // 64

    async def bench(ctx):
        for table, key, bucket1, bucket2 in cases:
            # Every case from an empty overflow area; its entries (and, ignored, some bucket
            # positions) through the write port in random order, as the control's index
            # writes come.
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            await ctx.tick().repeat(dut.clear_cycles)
            for memory in memories:
                memory.beats.clear()
            writes = sorted(table.items())
            rng.shuffle(writes)
            for pos, stored in writes:
                if pos < base:
                    beats, address = beat(pos)
                    beats[address] = _entry(layout, stored, pos)
                ctx.set(dut.write, 1)
                ctx.set(dut.write_pos, pos)
                ctx.set(dut.write_entry.as_value(), _entry(layout, stored, pos))
                await ctx.tick()
            # The key and free overflow entries in the HBM copy of the overflow area, which no
            # lookup reads.
            for e in range(p.index_overflow_entries):
                beats, address = beat(base + e)
                beats[address] = _entry(layout, key, base + e)
            ctx.set(dut.write, 0)
            await ctx.tick()
            ctx.set(dut.key, int.from_bytes(key, "little"))
            ctx.set(dut.klen, len(key))
            ctx.set(dut.bucket1, bucket1)
            ctx.set(dut.bucket2, bucket2)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            n = 1
            while not ctx.get(dut.done):
                await ctx.tick()
                n += 1
            cycles.append(n)
            found, free_ok = ctx.get(dut.found), ctx.get(dut.free_ok)
            outcomes.append((ctx.get(dut.pos) if found else None,
                             ctx.get(dut.free_pos) if free_ok else None,
                             ctx.get(dut.entry.bin) if found else None))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    for memory in memories:
        sim.add_testbench(memory.serve, background=True)
    sim.add_testbench(bench)
    sim.run()
    hits = in_overflow = 0
    for (table, key, bucket1, bucket2), (pos, free, bin_) in zip(cases, outcomes):
        want_pos, want_free = _expected(p, table, key, bucket1, bucket2)
        assert (pos, free) == (want_pos, want_free), (bucket1, bucket2)
        if want_pos is not None:
            hits += 1
            in_overflow += want_pos >= base
            assert bin_ == want_pos % 7
    assert 0 < hits < len(cases) and in_overflow
    assert any(free is None for _, free, _ in outcomes)        # a full index was seen too
    assert any(free is not None and free >= base for _, free, _ in outcomes)
    # Two bursts a lookup on every port, each bucket's ways there (from its first way on the
    # port), the same length on every port.
    stripe = -(-depth // ports)
    for port, memory in enumerate(memories):
        firsts = [[pos for pos in range(b * stride, b * stride + ports) if index.port(pos) == port]
                  for _, _, bucket1, bucket2 in cases for b in (bucket1, bucket2)]
        assert memory.reads == [(index.address(first), stripe) for first, in firsts]
        # No burst crosses a 4 KB boundary (AXI4 forbids it), at depth 9 too.
        assert all(address // 4096 == (address + 64 * beats - 1) // 4096
                   for address, beats in memory.reads)
    assert min(cycles) >= dut.scan_cycles
    if stall == 0:
        # Whatever the key, contents and outcome, a lookup takes the same cycles: from the
        # cycle after ``start``, the overflow scan or, if longer, the latency and then a
        # port's share of both buckets' beats, a beat a cycle (the ports side by side).
        assert set(cycles) == {1 + max(dut.scan_cycles, latency + dut.beats)}, cycles
        assert dut.beats == 2 * -(-depth // ports)
