"""cocotb testbench of :class:`bolt.hdl.accelerator.Accelerator`, cosimulated against the
reference model :class:`bolt.model.Accelerator`.

The same master key, salts, parameters and operations go to the RTL and to the model; the
RTL's host-memory port is served by :class:`bolt.host.memory.HostPortDriver` from a
:class:`bolt.trace.HostMemory` that records the trace. The tests compare responses, traces
(kind, address, length, in order, split per operation) and host bytes.

Parameters (environment): ``BOLT_PARAMS`` (JSON of :class:`~bolt.params.Params` arguments),
``BOLT_OPS`` (accesses), ``BOLT_SETUP_ITEMS`` (bulk Setup size), ``BOLT_SEED``,
``BOLT_CRYPTO`` (1: compare host bytes too), ``BOLT_REPORT`` (a JSON file for the cycle
statistics of ``test_timing``), ``BOLT_TIMING_OPS`` (accesses per timing workload).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from bolt.hdl.accelerator import Cmd, pack_command, unpack_response
from bolt.host.memory import HostPortDriver
from bolt.model import Accelerator as Model
from bolt.params import Params
from bolt.protocol import Op, Status
from bolt.trace import HostMemory


def _params() -> Params:
    return Params(**json.loads(os.environ.get("BOLT_PARAMS", '{"capacity": 1024, "value_size": 8}')))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


class Bench:
    """The DUT with its host memory, driven one command at a time."""

    def __init__(self, dut, params: Params, master_key: bytes, salt: bytes):
        self.dut = dut
        self.p = params
        self.master_key = master_key
        self.memory = HostMemory(params.host_bytes)
        self.driver = HostPortDriver(dut, self.memory, page_stride=params.page_stride,
                                     clock=dut.clk, read_latency=2)
        self.model = Model(params, master_key=master_key, salt=salt)
        self.crypto = bool(_env_int("BOLT_CRYPTO", 1))
        self.cycles: list[tuple[int, int]] = []   # (touches, cycles) per access

    async def start(self, salt: bytes) -> None:
        dut = self.dut
        Clock(dut.clk, 10, unit="ns").start()
        dut.cmd__valid.value = 0
        dut.resp__ready.value = 1
        dut.rst.value = 1
        self.driver.start()
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        await self.rtl_setup([], salt)
        self.check_trace("initial Setup")

    async def command(self, op: int, key: bytes = b"", value: bytes = b"", **extra):
        dut = self.dut
        dut.cmd__payload.value = pack_command(self.p, op, key, value, **extra)
        dut.cmd__valid.value = 1
        while True:
            await ReadOnly()
            accepted = int(dut.cmd__ready.value)
            await RisingEdge(dut.clk)
            if accepted:
                break
        dut.cmd__valid.value = 0
        await ReadOnly()
        if not int(dut.resp__valid.value):
            await RisingEdge(dut.resp__valid)
            await ReadOnly()
        word = int(dut.resp__payload.value)
        await RisingEdge(dut.clk)
        return unpack_response(self.p, word)

    async def rtl_setup(self, items, salt: bytes):
        self.memory.trace.begin_op()
        response, _ = await self.command(Cmd.SETUP_BEGIN, master_key=self.master_key, salt=salt)
        assert response.status == Status.ABSENT, response
        for key, value in dict(items).items():
            response, _ = await self.command(Cmd.SETUP_ITEM, key, value)
            assert response.status == Status.ABSENT, response
        response, _ = await self.command(Cmd.SETUP_END)
        assert response.status == Status.ABSENT, response

    async def setup(self, items, salt: bytes) -> None:
        self.model.setup(items, salt=salt)
        await self.rtl_setup(items, salt)
        self.check_trace("Setup")
        self.check_bytes("Setup")

    async def access(self, op: Op, key: bytes, value: bytes | None, n: int = 0):
        expected = self.model.access(op, key, value)
        self.memory.trace.begin_op()
        got, cycles = await self.command(op, key, value or b"")
        events = self.memory.trace.ops()[-1]
        want = self.model.trace.ops()[-1]
        assert events == want, (f"op {n} {op.name} {key!r}: trace {events} != model {want}")
        assert got == expected, f"op {n} {op.name} {key!r}: RTL {got} != model {expected}"
        touches = sum(e.kind == "read" for e in events)
        self.cycles.append((touches, cycles))
        return got

    def check_trace(self, what: str) -> None:
        assert self.memory.trace == self.model.trace, f"{what}: traces differ"

    def check_bytes(self, what: str) -> None:
        if self.crypto:
            assert self.memory.snapshot() == self.model.host_memory.snapshot(), \
                f"{what}: host bytes differ"


def _key(rng: random.Random, p: Params) -> bytes:
    return rng.randbytes(rng.randint(1, p.key_size))


def _value(rng: random.Random, p: Params) -> bytes:
    return rng.randbytes(rng.randint(0, p.value_size))


def _secrets(seed: int):
    rng = random.Random(seed)
    return rng, rng.randbytes(16), rng.randbytes(15), rng.randbytes(15)


@cocotb.test()
async def test_cosim(dut):
    """Bulk Setup, then a mixed GET/PUT/DELETE workload: hits, misses, overwrites, deletes."""
    p = _params()
    rng, master_key, salt0, salt1 = _secrets(_env_int("BOLT_SEED", 1))
    bench = Bench(dut, p, master_key, salt0)
    await bench.start(salt0)
    items = [(_key(rng, p), _value(rng, p)) for _ in range(_env_int("BOLT_SETUP_ITEMS", 200))]
    await bench.setup(items, salt1)
    known = [key for key, _ in items]
    ops = _env_int("BOLT_OPS", 500)
    stats = Counter()
    for n in range(ops):
        op = rng.choices([Op.GET, Op.PUT, Op.DELETE], weights=[4, 4, 2])[0]
        key = rng.choice(known) if known and rng.random() < 0.7 else _key(rng, p)
        value = _value(rng, p) if op == Op.PUT else None
        response = await bench.access(op, key, value, n)
        stats[(op.name, response.status.name)] += 1
        if op == Op.PUT and key not in known:
            known.append(key)
        if n % 250 == 249:
            bench.check_bytes(f"after op {n}")
    bench.check_trace("workload")
    bench.check_bytes("workload")
    dut._log.info("cosim: %d ops, outcomes %s, map size %d", ops, dict(stats), len(bench.model))
    touches = Counter(t for t, _ in bench.cycles)
    dut._log.info("touch counts %s", dict(touches))


@cocotb.test()
async def test_tamper(dut):
    """A page modified in host memory makes the RTL report INTEGRITY for it, like the model."""
    p = _params()
    rng, master_key, salt0, salt1 = _secrets(_env_int("BOLT_SEED", 1) + 7)
    bench = Bench(dut, p, master_key, salt0)
    await bench.start(salt0)
    items = [(_key(rng, p), _value(rng, p)) for _ in range(50)]
    await bench.setup(items, salt1)
    victim = rng.randrange(p.host_bins)
    offset = victim * p.page_stride + rng.randrange(p.page_sealed_bytes)
    for memory in (bench.memory, bench.model.host_memory):
        memory[offset] ^= 0x40
    seen = 0
    for n in range(400):
        key = rng.choice(items)[0]
        response = await bench.access(Op.GET, key, None, n)
        if response.status == Status.INTEGRITY:
            assert response.page == victim
            seen += 1
            if seen == 3:
                break
    assert seen, "no access touched the tampered page"
    bench.check_trace("tamper")
    dut._log.info("tamper: %d integrity errors on page %d, all matching the model", seen, victim)


@cocotb.test()
async def test_timing(dut):
    """Cycle counts of Access, by number of host touches, under hot-key, uniform and miss
    workloads and a mix of ops: the distributions must be identical."""
    p = _params()
    rng, master_key, salt0, salt1 = _secrets(_env_int("BOLT_SEED", 1) + 13)
    bench = Bench(dut, p, master_key, salt0)
    await bench.start(salt0)
    items = [(_key(rng, p), _value(rng, p)) for _ in range(p.capacity // 4)]
    await bench.setup(items, salt1)
    keys = [key for key, _ in items]
    n_ops = _env_int("BOLT_TIMING_OPS", 300)
    workloads = {
        "hot key": lambda: (rng.choice([Op.GET, Op.PUT]), keys[0]),
        "uniform hits": lambda: (rng.choice([Op.GET, Op.PUT, Op.DELETE]), rng.choice(keys)),
        "misses": lambda: (rng.choice([Op.GET, Op.PUT, Op.DELETE]), _key(rng, p)),
    }
    report = {}
    for name, draw in workloads.items():
        bench.cycles.clear()
        words_before = []
        for n in range(n_ops):
            op, key = draw()
            before = bench.model._drbg.words_drawn
            await bench.access(op, key, _value(rng, p) if op == Op.PUT else None, n)
            # Extra DRBG words (c2 redrawn because equal to c1, or rejections): public
            # randomness, independent of the operation.
            words_before.append(bench.model._drbg.words_drawn - before - 4)
        by_touch = {}
        for (touches, cycles), extra in zip(bench.cycles, words_before):
            by_touch.setdefault(touches, Counter())[cycles - extra] += 1
        raw = {}
        for touches, cycles in bench.cycles:
            raw.setdefault(touches, Counter())[cycles] += 1
        report[name] = {"adjusted": {t: dict(c) for t, c in sorted(by_touch.items())},
                        "raw": {t: dict(c) for t, c in sorted(raw.items())}}
        dut._log.info("timing %s: cycles by touches %s", name, report[name]["raw"])
    # The cycle count, once the public extra DRBG draws are accounted, is one value per
    # number of touches, the same under every workload.
    values = {}
    for name, r in report.items():
        for touches, counter in r["adjusted"].items():
            values.setdefault(touches, set()).update(counter)
    for touches, seen in values.items():
        assert len(seen) == 1, f"{touches} touches: cycle counts {seen} differ across workloads"
    path = os.environ.get("BOLT_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1, default=str)
