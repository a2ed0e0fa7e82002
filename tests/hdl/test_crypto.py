"""The crypto cores' datapaths in Amaranth's simulator: the GHASH multiplier against GCM's
bit-serial definition, both AES-128 cores and a short GCM page against pycryptodome. (Their
Verilator builds, with stalls and whole GCM pages, are in ``tests/sim/test_crypto_cores.py``.)"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator
from Crypto.Cipher import AES

from bolt.hdl.aes import Aes128
from bolt.hdl.gcm import Gcm, gf128_mul, gf128_mul_int


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


@pytest.mark.parametrize("pipelined, stall", [(True, 0.0), (False, 0.0), (False, 0.5),
                                              (True, 0.5)],
                         ids=["pipelined", "iterative", "iterative-stalled",
                              "pipelined-stalled"])
def test_aes128_equals_pycryptodome(pipelined, stall):
    """Two keys, blocks sent back to back and the ciphertexts taken at once or, with
    ``stall``, blocks offered and ciphertexts taken each cycle by chance (so the pipeline
    runs with gaps and holds): every ciphertext equals pycryptodome's; taken at once, a block
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
                if sent < len(blocks) and not ctx.get(dut.i_stream.valid):
                    ctx.set(dut.i_stream.payload, int.from_bytes(blocks[sent], "big"))
                    ctx.set(dut.i_stream.valid, rng.random() >= stall)
                accepted = ctx.get(dut.i_stream.valid) and ctx.get(dut.i_stream.ready)
                if ctx.get(dut.o_stream.valid) and ctx.get(dut.o_stream.ready):
                    got.append(ctx.get(dut.o_stream.payload).to_bytes(16, "big"))
                    taken_at.append(cycle)
                await ctx.tick()
                cycle += 1
                if accepted:
                    sent += 1
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


@pytest.mark.parametrize("lanes, size, stall", [
    (1, 40, 0), (2, 40, 0), (2, 64, 0), (3, 40, 0), (2, 1092, 0), (2, 1092, 0.3), (3, 40, 0.3)])
def test_gcm_page_equals_pycryptodome(lanes, size, stall):
    """Two pages under one key, sealed then opened, the second time with a wrong tag, a group
    of ``lanes`` blocks per transfer (sizes with a partial last block, a short last group and
    whole groups), input and output each held back in a ``stall`` share of cycles:
    ciphertexts, plaintexts and tags equal pycryptodome's, only the wrong tag is reported,
    and a page without stalls takes ``cycles_per_page`` from start to start."""
    dut = Gcm(plaintext_bytes=size, lanes=lanes)
    rng = random.Random(11)
    key = rng.randbytes(16)
    pages = [(rng.randbytes(12), rng.randbytes(size)) for _ in range(2)]
    results, starts = [], []

    def groups(data):
        blocks = [int.from_bytes(data[i:i + 16].ljust(16, b"\0"), "big")
                  for i in range(0, len(data), 16)]
        blocks += [rng.getrandbits(128)] * (-len(blocks) % lanes)   # lanes past the page
        return [sum(b << (128 * j) for j, b in enumerate(blocks[i:i + lanes]))
                for i in range(0, len(blocks), lanes)]

    async def bench(ctx):
        ctx.set(dut.key_stream.payload, int.from_bytes(key, "big"))
        ctx.set(dut.key_stream.valid, 1)
        await ctx.tick().until(dut.key_stream.ready)
        ctx.set(dut.key_stream.valid, 0)
        ctx.set(dut.o_stream.ready, 1)
        ctx.set(dut.result_stream.ready, 1)
        cycle = 0
        for decrypt, tamper in ((0, False), (1, False), (1, True)):
            for nonce, data in pages:
                sealed, tag = AES.new(key, AES.MODE_GCM, nonce=nonce).encrypt_and_digest(data)
                ctx.set(dut.start_stream.payload,
                        {"nonce": int.from_bytes(nonce, "big"), "decrypt": decrypt})
                ctx.set(dut.start_stream.valid, 1)
                while True:
                    _, _, ready = await ctx.tick().sample(dut.start_stream.ready)
                    cycle += 1
                    if ready:
                        break
                starts.append(cycle)
                ctx.set(dut.start_stream.valid, 0)
                ctx.set(dut.tag_stream.payload, int.from_bytes(tag, "big") ^ int(tamper))
                ctx.set(dut.tag_stream.valid, decrypt)
                out = []
                for group in groups(sealed if decrypt else data):
                    ctx.set(dut.i_stream.payload, group)
                    while True:
                        # A group moves in and out in the same cycle, or neither does.
                        ctx.set(dut.i_stream.valid, rng.random() >= stall)
                        ctx.set(dut.o_stream.ready, rng.random() >= stall)
                        _, _, moved, out_moved, payload = await ctx.tick().sample(
                            dut.i_stream.valid & dut.i_stream.ready,
                            dut.o_stream.valid & dut.o_stream.ready, dut.o_stream.payload)
                        cycle += 1
                        assert moved == out_moved
                        if moved:
                            break
                    out.append(payload)
                ctx.set(dut.i_stream.valid, 0)
                ctx.set(dut.o_stream.ready, 1)
                while True:
                    _, _, valid, result = await ctx.tick().sample(
                        dut.result_stream.valid, dut.result_stream.payload)
                    cycle += 1
                    if valid:
                        break
                ctx.set(dut.tag_stream.valid, 0)
                got = b"".join(block.to_bytes(16, "big") for v in out
                               for block in ((v >> (128 * j)) & (2**128 - 1)
                                             for j in range(lanes)))
                results.append((got[:size] == (data if decrypt else sealed),
                                not any(got[size:]),
                                result.tag == int.from_bytes(tag, "big"),
                                result.mismatch == tamper))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert results == [(True, True, True, True)] * 6
    assert dut.groups == -(-size // (16 * lanes))
    gaps = {b - a for a, b in zip(starts, starts[1:])}
    if stall:
        assert min(gaps) >= dut.cycles_per_page < max(gaps)
    else:
        assert gaps == {dut.cycles_per_page}
