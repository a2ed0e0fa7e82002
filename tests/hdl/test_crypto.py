"""The crypto cores' datapaths in Amaranth's simulator: the GHASH multiplier against GCM's
bit-serial definition, and both AES-128 cores against pycryptodome. (Their Verilator builds,
with stalls and whole GCM pages, are in ``tests/sim/test_crypto_cores.py``.)"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from Crypto.Cipher import AES

from bolt.hdl.aes import Aes128
from bolt.hdl.gcm import gf128_mul, gf128_mul_int


def test_gf128_mul_equals_the_bit_serial_definition():
    m = Module()
    a, b = Signal(128), Signal(128)
    product = gf128_mul(m, a, b, name="product")
    rng = random.Random(5)
    top = 1 << 127                      # the coefficient of x^0
    cases = [(0, 0), (top, top), (1, 1), (2**128 - 1, 2**128 - 1), (top, rng.getrandbits(128))]
    cases += [(1 << i, 1 << j) for i in range(128) for j in range(0, 128, 9)]   # every fold
    cases += [(rng.getrandbits(128), rng.getrandbits(128)) for _ in range(500)]
    wrong = []

    async def bench(ctx):
        for x, y in cases:
            ctx.set(a, x)
            ctx.set(b, y)
            if ctx.get(product) != gf128_mul_int(x, y):
                wrong.append((hex(x), hex(y)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not wrong, wrong[:3]


@pytest.mark.parametrize("pipelined, stall", [(True, 0.0), (False, 0.0), (False, 0.5)],
                         ids=["pipelined", "iterative", "iterative-stalled"])
def test_aes128_equals_pycryptodome(pipelined, stall):
    """Two keys, blocks sent back to back (the ciphertexts taken at once or, with ``stall``,
    each cycle by chance): every ciphertext equals pycryptodome's; taken at once, a block
    every ``cycles_per_block``."""
    dut = Aes128(pipelined=pipelined)
    rng = random.Random(7)
    taken_at = []
    keys = [rng.randbytes(16) for _ in range(2)]
    blocks = [rng.randbytes(16) for _ in range(6)]
    got, expected = [], []

    async def bench(ctx):
        cycle = 0
        for key in keys:
            ctx.set(dut.key_stream.payload, int.from_bytes(key, "big"))
            ctx.set(dut.key_stream.valid, 1)
            await ctx.tick().until(dut.key_stream.ready)
            ctx.set(dut.key_stream.valid, 0)
            sent = 0
            while len(got) < len(expected) + len(blocks):
                ctx.set(dut.o_stream.ready, rng.random() >= stall)
                if sent < len(blocks):
                    ctx.set(dut.i_stream.payload, int.from_bytes(blocks[sent], "big"))
                    ctx.set(dut.i_stream.valid, 1)
                accepted = ctx.get(dut.i_stream.valid) and ctx.get(dut.i_stream.ready)
                if ctx.get(dut.o_stream.valid) and ctx.get(dut.o_stream.ready):
                    got.append(ctx.get(dut.o_stream.payload).to_bytes(16, "big"))
                    taken_at.append(cycle)
                await ctx.tick()
                cycle += 1
                if accepted:
                    sent += 1
                    if sent == len(blocks):
                        ctx.set(dut.i_stream.valid, 0)
            expected.extend(AES.new(key, AES.MODE_ECB).encrypt(block) for block in blocks)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == expected
    gaps = {b - a for a, b in zip(taken_at, taken_at[1:])}
    if stall:
        assert max(gaps) > dut.cycles_per_block
    else:
        assert min(gaps) == dut.cycles_per_block
