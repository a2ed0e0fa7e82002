"""cocotb testbench of :class:`bolt.hdl.index.Index`: inserts, lookups, updates and deletes
against a Python dict, with the two bucket numbers drawn at random per key, and the number of
cycles of every lookup (which must not depend on hit, miss, bucket fill or overflow use).

Environment: ``BOLT_PARAMS`` (JSON of Params arguments), ``BOLT_OPS``, ``BOLT_SEED``.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from bolt.hdl.accelerator import pack_fields, unpack_fields
from bolt.hdl.index import entry_layout, position_layout
from bolt.protocol import HBM
from bolt.params import Params
from bolt.sim.streams import env_int, start_clock_and_reset


@cocotb.test()
async def test_index(dut):
    p = Params(**json.loads(os.environ.get("BOLT_PARAMS", '{"capacity": 256}')))
    rng = random.Random(env_int("BOLT_SEED", 1))
    ops = env_int("BOLT_OPS", 600)
    elay, play = entry_layout(p), position_layout(p)
    for name in ("start", "clear", "wr_en"):
        getattr(dut, name).value = 0
    await start_clock_and_reset(dut, cycles=2)

    async def pulse_and_wait(name):
        getattr(dut, name).value = 1
        await RisingEdge(dut.clk)
        getattr(dut, name).value = 0
        cycles = 1
        while True:
            await ReadOnly()
            if int(dut.done.value):
                break
            await RisingEdge(dut.clk)
            cycles += 1
        return cycles

    await pulse_and_wait("clear")
    await RisingEdge(dut.clk)
    # Few buckets of the key space are used, so buckets fill and the overflow area is used.
    hot_buckets = [rng.randrange(p.index_buckets) for _ in range(3)]
    reference: dict[bytes, tuple[int, int]] = {}   # key -> (bin, loc)
    buckets: dict[bytes, tuple[int, int]] = {}
    cycles_seen = set()
    outcomes = {"hit": 0, "miss": 0, "overflow": 0}

    async def lookup(key):
        if key not in buckets:
            buckets[key] = (rng.choice(hot_buckets), rng.choice(hot_buckets))
        b1, b2 = buckets[key]
        dut.key.value = int.from_bytes(key.ljust(p.key_size, b"\0"), "little")
        dut.klen.value = len(key)
        dut.bucket1.value, dut.bucket2.value = b1, b2
        await RisingEdge(dut.clk)
        cycles = await pulse_and_wait("start")
        cycles_seen.add(cycles)
        result = (int(dut.found.value), unpack_fields(elay, int(dut.entry.value)),
                  int(dut.pos.value), int(dut.free_ok.value), int(dut.free_pos.value))
        await RisingEdge(dut.clk)
        return result

    async def write(pos, fields):
        dut.wr_pos.value = pos
        dut.wr_entry.value = pack_fields(elay, fields)
        dut.wr_en.value = 1
        await RisingEdge(dut.clk)
        dut.wr_en.value = 0

    keys = [rng.randbytes(rng.randint(1, p.key_size)) for _ in range(60)]
    for n in range(ops):
        key = rng.choice(keys)
        found, entry, pos, free_ok, free_pos = await lookup(key)
        assert bool(found) == (key in reference), f"op {n}: found={found} for {key!r}"
        if found:
            outcomes["hit"] += 1
            assert (entry["bin"], entry["loc"]) == reference[key]
            assert entry["klen"] == len(key)
            if unpack_fields(play, pos)["overflow"]:
                outcomes["overflow"] += 1
            if rng.random() < 0.4:
                await write(pos, {})
                del reference[key]
            else:
                loc = (rng.randrange(p.bins), rng.randrange(p.frames))
                await write(pos, {"valid": 1, "kind": HBM, "klen": len(key),
                                  "key": int.from_bytes(key.ljust(p.key_size, b"\0"), "little"),
                                  "bin": loc[0], "loc": loc[1]})
                reference[key] = loc
        else:
            outcomes["miss"] += 1
            assert free_ok, "index full"
            loc = (rng.randrange(p.bins), rng.randrange(p.frames))
            await write(free_pos, {"valid": 1, "kind": HBM, "klen": len(key),
                                   "key": int.from_bytes(key.ljust(p.key_size, b"\0"), "little"),
                                   "bin": loc[0], "loc": loc[1]})
            reference[key] = loc
    assert len(cycles_seen) == 1, f"lookup cycle counts vary: {cycles_seen}"
    assert outcomes["overflow"] > 0, "the overflow area was never exercised"
    dut._log.info("index: %s, every lookup %d cycles", outcomes, cycles_seen.pop())
