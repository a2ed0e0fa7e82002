"""cocotb testbench of :class:`bolt.hdl.sampler.UniformSampler` (:class:`bolt.crypto.Drbg` is
the oracle).

The design under test is a bank of samplers for several ``n`` sharing ``key`` and ``restart``
(``tests/test_rtl_crypto.py``'s ``SamplerBank``): output ``o<i>`` is ``UniformSampler(n_i)``'s.
``UniformSampler(2**32)`` accepts every word (mask all ones), so its output is the raw DRBG
word stream.

Environment: ``SAMPLER_NS`` (comma-separated ``n_i``, must match the build), ``SAMPLER_KEYS``,
``SAMPLER_SAMPLES`` (per key and output), ``SAMPLER_STALL`` (stall chance of every output),
``SAMPLER_SEED``.
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from bolt.crypto import Drbg
from bolt.hdl.aes import Aes128
from bolt.sim.streams import CycleCounter, StreamSink, env_float, env_int, start_clock_and_reset

NS = [int(n) for n in os.environ["SAMPLER_NS"].split(",")]


async def begin(dut) -> None:
    """Quiet inputs (a failed earlier test may have left a ``ready`` high), clock, reset."""
    dut.restart.value = 0
    dut.key.value = 0
    for i in range(len(NS)):
        getattr(dut, f"o{i}__ready").value = 0
    await start_clock_and_reset(dut)


async def restart(dut, key: bytes) -> None:
    """Present ``key`` and pulse ``restart`` for one cycle (the key stays)."""
    dut.key.value = int.from_bytes(key, "big")
    dut.restart.value = 1
    await RisingEdge(dut.clk)
    dut.restart.value = 0


def expected(key: bytes, n: int, count: int) -> list[int]:
    drbg = Drbg(key)
    return [drbg.uniform(n) for _ in range(count)]


async def collect(dut, count: int, *, stall: float, rng) -> list[list[int]]:
    sinks = [StreamSink(dut, f"o{i}", stall=stall, rng=rng) for i in range(len(NS))]
    tasks = [sink.start(count) for sink in sinks]
    return [await task for task in tasks]


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def samples_match_drbg(dut):
    """For several keys: after a restart every output gives ``Drbg(key).uniform(n)``'s samples
    in order, the ``2**32`` output the raw word stream; random stalls on every output. Some
    restarts come while the buffers are full of the previous key's samples."""
    await begin(dut)
    rng = random.Random(env_int("SAMPLER_SEED", 1))
    stall = env_float("SAMPLER_STALL", 0.3)
    count = env_int("SAMPLER_SAMPLES", 40)
    keys = [bytes(16), bytes(range(16))] + [rng.randbytes(16)
                                            for _ in range(env_int("SAMPLER_KEYS", 4) - 2)]
    for number, key in enumerate(keys):
        await restart(dut, key)
        if number % 2:
            await ClockCycles(dut.clk, 400)        # let every buffer fill up first
        got = await collect(dut, count, stall=stall, rng=rng)
        for n, samples in zip(NS, got):
            want = expected(key, n, count)
            assert samples == want, f"key {key.hex()}, n={n}: {samples} != {want}"
            assert all(0 <= s < n for s in samples)
        if 2**32 in NS:
            words = Drbg(key).words(count)
            assert got[NS.index(2**32)] == words, "the n=2^32 output is not the DRBG word stream"
        # Take a few more, then restart with the same key mid-stream: it starts over.
        await collect(dut, 3, stall=stall, rng=rng)
        await restart(dut, key)
        again = await collect(dut, 8, stall=stall, rng=rng)
        for n, samples in zip(NS, again):
            assert samples == expected(key, n, 8), f"restart mid-stream, n={n}: {samples}"
    dut._log.info("%d keys x %d samples of U(n) for n in %s match Drbg", len(keys), count, NS)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def throughput_and_buffer(dut):
    """No stalls: the word stream's rate (one AES block of 4 words per 15 cycles), and a full
    buffer is drained one sample per cycle."""
    await begin(dut)
    key = bytes(range(16, 32))
    await restart(dut, key)
    counter = CycleCounter(dut.clk)
    words = NS.index(2**32)
    got = await StreamSink(dut, f"o{words}").receive(64)
    cycles = counter.cycles
    assert got == Drbg(key).words(64)
    # 16 blocks, each: 1 cycle to issue, the iterative AES's latency, 4 to push its words.
    per_block = 1 + Aes128(pipelined=False).latency + 4
    dut._log.info("64 DRBG words in %d cycles after restart", cycles)
    assert 16 * per_block <= cycles <= 16 * per_block + 3, cycles
    # Buffer: fill, then every output delivers one sample per cycle while the buffer lasts.
    await restart(dut, key)
    await ClockCycles(dut.clk, 600)
    valid_run = 0
    for i in range(len(NS)):
        getattr(dut, f"o{i}__ready").value = 1
    while True:
        await ReadOnly()
        if not all(getattr(dut, f"o{i}__valid").value for i in range(len(NS))):
            break
        valid_run += 1
        await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    for i in range(len(NS)):
        getattr(dut, f"o{i}__ready").value = 0
    depth = env_int("SAMPLER_DEPTH", 16)
    dut._log.info("full buffers gave %d samples back to back (depth %d)", valid_run, depth)
    assert valid_run >= depth - 4, (valid_run, depth)
