"""The index lookup (:class:`bolt.hdl.lookup.Lookup`) in Amaranth's simulator, against a
Python statement of the rule: the key's entry wherever it is; a new key goes to the less full
bucket (ties to bucket 1) at its first free way, else the first free overflow entry."""

from __future__ import annotations

import random

from amaranth.hdl import Module
from amaranth.sim import Simulator

from bolt.hdl.accelerator import pack_fields
from bolt.hdl.hbm import HbmMap, HbmMaster
from bolt.hdl.lookup import Lookup
from bolt.params import Params

from .axi_model import AxiMemory


def _expected(p, table, key, bucket1, bucket2):
    depth, base = p.index_bucket_depth, p.index_buckets * p.index_bucket_depth
    places = ([bucket1 * depth + w for w in range(depth)] + [bucket2 * depth + w for w in range(depth)]
              + [base + e for e in range(p.index_overflow_entries)])
    found = [pos for pos in places if table.get(pos) == key]
    fills = [sum((b * depth + w) in table for w in range(depth)) for b in (bucket1, bucket2)]
    if fills[0] < depth or fills[1] < depth:
        bucket = bucket2 if fills[1] < fills[0] else bucket1
        free = next(bucket * depth + w for w in range(depth) if bucket * depth + w not in table)
    else:
        free = next((base + e for e in range(p.index_overflow_entries) if base + e not in table),
                    None)
    return (found[-1] if found else None), free


def test_lookup_finds_keys_and_free_places():
    p = Params(capacity=1024)
    hbm = HbmMap(p)
    dut = Lookup(p, hbm)
    rng = random.Random(3)
    depth, base = p.index_bucket_depth, p.index_buckets * p.index_bucket_depth
    cases, outcomes = [], []
    for n in range(24):
        bucket1, bucket2 = rng.randrange(p.index_buckets), rng.randrange(p.index_buckets)
        table = {}
        for bucket in (bucket1, bucket2):
            fill = rng.choice([0, 2, depth - 1, depth, depth])
            for way in rng.sample(range(depth), fill):
                table[bucket * depth + way] = rng.randbytes(4)
        if all(sum((b * depth + w) in table for w in range(depth)) == depth
               for b in (bucket1, bucket2)):
            for entry in rng.sample(range(p.index_overflow_entries),
                                    rng.choice([3, 40, p.index_overflow_entries])):
                table[base + entry] = rng.randbytes(4)
        key = rng.randbytes(5)
        if table and n % 3:
            table[rng.choice(sorted(table))] = key        # the key is present somewhere
        cases.append((table, key, bucket1, bucket2))

    m = Module()
    m.submodules.lookup = dut
    m.submodules.master = master = HbmMaster(hbm)
    m.d.comb += [master.rd.valid.eq(dut.rd.valid), master.rd.payload.eq(dut.rd.payload),
                 dut.rd.ready.eq(master.rd.ready), dut.beat.valid.eq(master.rdata.valid),
                 dut.beat.payload.eq(master.rdata.payload), master.rdata.ready.eq(1)]
    memory = AxiMemory(master.axi, latency=4, stall=0.2, seed=7)
    layout = dut.entry_layout

    async def bench(ctx):
        for table, key, bucket1, bucket2 in cases:
            memory.beats.clear()
            for pos, stored in table.items():
                memory.beats[hbm.regions["index"].address(pos) // 64] = pack_fields(layout, {
                    "valid": 1, "klen": len(stored), "key": int.from_bytes(stored, "little"),
                    "bin": pos % 7})
            ctx.set(dut.key, int.from_bytes(key, "little"))
            ctx.set(dut.klen, len(key))
            ctx.set(dut.bucket1, bucket1)
            ctx.set(dut.bucket2, bucket2)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            while not ctx.get(dut.done):
                await ctx.tick()
            found, free_ok = ctx.get(dut.found), ctx.get(dut.free_ok)
            outcomes.append((ctx.get(dut.pos) if found else None,
                             ctx.get(dut.free_pos) if free_ok else None,
                             ctx.get(dut.entry.bin) if found else None))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(memory.serve, background=True)
    sim.add_testbench(bench)
    sim.run()
    hits = 0
    for (table, key, bucket1, bucket2), (pos, free, bin_) in zip(cases, outcomes):
        want_pos, want_free = _expected(p, table, key, bucket1, bucket2)
        assert (pos, free) == (want_pos, want_free), (bucket1, bucket2)
        if want_pos is not None:
            hits += 1
            assert bin_ == want_pos % 7
    assert 0 < hits < len(cases)
    assert any(free is None for _, free, _ in outcomes)        # a full index was seen too
    assert memory.reads[:3] == [
        (hbm.regions["index"].address(cases[0][2] * depth), depth),
        (hbm.regions["index"].address(cases[0][3] * depth), depth),
        (hbm.regions["index"].address(base), p.index_overflow_entries)]
