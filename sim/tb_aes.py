"""cocotb testbench of :class:`bolt.hdl.aes.Aes128` (pycryptodome is the oracle).

Environment: ``AES_PIPELINED`` (1/0, must match the build), ``AES_KEYS`` and
``AES_BLOCKS_PER_KEY`` (random keys and blocks per key), ``AES_STALL`` (stall chance on every
stream), ``AES_SEED``.
"""

from __future__ import annotations

import random

import cocotb
from Crypto.Cipher import AES

from bolt.hdl.aes import Aes128
from bolt.sim.streams import (CycleCounter, StreamSink, StreamSource, env_float, env_int,
                              start_clock_and_reset)

PIPELINED = bool(env_int("AES_PIPELINED", 1))


def _aes(key: bytes, block: bytes) -> int:
    return int.from_bytes(AES.new(key, AES.MODE_ECB).encrypt(block), "big")


async def _encrypt(dut, key: bytes, blocks: list[bytes], *, stall: float, rng) -> list[int]:
    await StreamSource(dut, "key_stream", stall=stall, rng=rng).send([int.from_bytes(key, "big")])
    source = StreamSource(dut, "i_stream", stall=stall, rng=rng)
    sink = StreamSink(dut, "o_stream", stall=stall, rng=rng)
    source.start(int.from_bytes(b, "big") for b in blocks)
    return await sink.receive(len(blocks))


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def fips197_example(dut):
    """FIPS-197 appendix C.1: AES-128 of 00112233..ff under 000102..0f."""
    await start_clock_and_reset(dut)
    key = bytes(range(16))
    block = bytes.fromhex("00112233445566778899aabbccddeeff")
    out = await _encrypt(dut, key, [block], stall=0.0, rng=random.Random(0))
    assert out == [0x69C4E0D86A7B0430D8CDB78070B4C55A], hex(out[0])


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def random_pairs_with_stalls(dut):
    """Hundreds of random key/plaintext pairs, random stalls on all three streams."""
    await start_clock_and_reset(dut)
    rng = random.Random(env_int("AES_SEED", 1))
    stall = env_float("AES_STALL", 0.3)
    total = 0
    for _ in range(env_int("AES_KEYS", 30)):
        key = rng.randbytes(16)
        blocks = [rng.randbytes(16) for _ in range(env_int("AES_BLOCKS_PER_KEY", 10))]
        out = await _encrypt(dut, key, blocks, stall=stall, rng=rng)
        expected = [_aes(key, b) for b in blocks]
        assert out == expected, f"key {key.hex()}: {[hex(x) for x in out]} != {[hex(x) for x in expected]}"
        total += len(blocks)
    dut._log.info("%d random pairs match pycryptodome", total)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def latency_and_throughput(dut):
    """No stalls: the first block's latency and the cycles for a burst, as documented."""
    await start_clock_and_reset(dut)
    rng = random.Random(5)
    key = rng.randbytes(16)
    await StreamSource(dut, "key_stream").send([int.from_bytes(key, "big")])
    blocks = [rng.randbytes(16) for _ in range(32)]
    counter = CycleCounter(dut.clk)
    source = StreamSource(dut, "i_stream")
    sink = StreamSink(dut, "o_stream")
    source.start(int.from_bytes(b, "big") for b in blocks)
    out = await sink.receive(len(blocks))
    assert out == [_aes(key, b) for b in blocks]
    cycles = counter.cycles
    aes = Aes128(pipelined=PIPELINED)
    latency, per_block = aes.latency, aes.cycles_per_block
    # Key expansion (pipelined: 10 cycles) precedes the first accepted block.
    setup = 10 if PIPELINED else 0
    expected = setup + latency + per_block * (len(blocks) - 1) + 1
    dut._log.info("32 blocks in %d cycles (expected %d)", cycles, expected)
    assert cycles <= expected + 2, (cycles, expected)
