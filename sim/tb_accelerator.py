"""cocotb testbench of :class:`bolt.hdl.accelerator.RtlAccelerator`, cosimulated against the
reference model :class:`bolt.model.ReferenceAccelerator`.

The same master key, salts, parameters and operations go to the RTL and to the model; the
RTL's host-memory port is served from a :class:`bolt.trace.HostMemory` that records the trace,
by the card's host model (:class:`bolt.sim.host_port.HostModelPort`; ``test_timing``: by
cocotbext-axi, :class:`bolt.sim.host_port.HostPort`), its HBM port by the simulated HBM of
:class:`bolt.sim.card.SimulatedCard`; all with random back-pressure on every channel
(``BOLT_PAUSES``: the chance a pause starts in a cycle on cocotbext-axi's host, the chance a
handshake is held in a cycle in the models). The tests compare responses, traces
(kind, address, length, in order, split per operation) and host bytes.

Parameters (environment): ``BOLT_PARAMS`` (JSON of :class:`~bolt.params.Params` arguments),
``BOLT_OPS`` (accesses), ``BOLT_SETUP_ITEMS`` (bulk Setup size), ``BOLT_SEED``,
``BOLT_CRYPTO`` (1: compare host bytes too), ``BOLT_REPORT`` (a JSON file for the cycle
statistics of ``test_timing``), ``BOLT_TIMING_OPS`` (accesses per timing workload),
``BOLT_COSIM_REPORT`` (a JSON file for the sizes, wall-clock times and peak memory of
``test_cosim``), ``BOLT_INITIAL_SETUP`` (0: ``test_cosim`` skips the empty first Setup).
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from collections import Counter

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from bolt.hdl.accelerator import unpack_response
from bolt.model.schedule import taken
from bolt.sim.card import HBM_LATENCY_SIMULATED, set_hbm
from bolt.sim.driver import AcceleratorDriver
from bolt.sim.host_port import HostModelPort, HostPort
from bolt.sim.streams import env_float, env_int
from bolt.model import ReferenceAccelerator
from bolt.protocol import HOST
from bolt.params import Params
from bolt.protocol import Op, Status
from bolt.trace import HostMemory


def _params() -> Params:
    return Params(**json.loads(os.environ.get("BOLT_PARAMS", '{"capacity": 1024, "value_size": 8}')))


class Bench:
    """The DUT with its host memory and HBM, driven one command at a time."""

    def __init__(self, dut, params: Params, master_key: bytes, salt: bytes, *,
                 pauses: float | None = None, seed: int = 0, host_model: bool = True,
                 items=()):
        self.dut = dut
        self.p = params
        self.master_key = master_key
        self.memory = HostMemory(params.host_bytes)
        self.driver = AcceleratorDriver(dut, params)
        pauses = env_float("BOLT_PAUSES", 0.1) if pauses is None else pauses
        if host_model:
            self.host = HostModelPort(dut, self.memory, page_stride=params.page_stride,
                                      latency=4, stall=pauses, seed=seed + 2)
        else:
            dut.host_model_select.value = 0
            self.host = HostPort(dut, self.memory, page_stride=params.page_stride)
            self.host.set_pauses(random.Random(seed), pauses)
        set_hbm(dut, stall=pauses, seed=seed + 1)
        self.model = ReferenceAccelerator(params, master_key=master_key, salt=salt,
                                          items=items)
        self.crypto = bool(env_int("BOLT_CRYPTO", 1))
        #: Per access: ((x is a host bin, y is a host bin), cycles). Which of x, y are host
        #: bins is what the trace (and the timing of its page requests) shows.
        self.cycles: list[tuple[tuple[bool, bool], int]] = []

    async def start(self, salt: bytes) -> None:
        await self.driver.start()
        await self.rtl_setup([], salt)
        self.check_trace("initial Setup")

    async def command(self, op: int, key: bytes = b"", value: bytes = b"", **extra):
        response = await self.driver.command(op, key, value, **extra)
        assert int(self.dut.overruns.value) == 0, "an HBM step overran its fixed schedule"
        return response

    async def rtl_setup(self, items, salt: bytes):
        self.memory.trace.begin_op()
        await self.driver.setup(self.master_key, salt, items)

    async def setup(self, items, salt: bytes) -> None:
        self.model.setup(items, salt=salt)
        await self.rtl_setup(items, salt)
        self.check_trace("Setup")
        self.check_bytes("Setup")

    async def access(self, op: Op, key: bytes, value: bytes | None, n: int = 0):
        roles = self._host_roles(key)
        expected = self.model.access(op, key, value)
        self.memory.trace.begin_op()
        got, cycles = await self.command(op, key, value or b"")
        events = self.memory.trace.last_op()
        want = self.model.trace.last_op()
        assert events == want, (f"op {n} {op.name} {key!r}: trace {events} != model {want}")
        expected = expected._replace(bound=None)  # the RTL says a bound was crossed, not which
        assert got == expected, f"op {n} {op.name} {key!r}: RTL {got} != model {expected}"
        if got.status != Status.INTEGRITY:   # a failed touch ends the access's trace
            assert sum(e.kind == "read" for e in events) == sum(roles), (n, roles, events)
        self.cycles.append((roles, cycles.total))
        return got

    def _host_roles(self, key: bytes) -> tuple[bool, bool]:
        """Whether the next access's x and y are host bins (from the model, before it runs)."""
        p = self.p
        (r, y), _ = self.model._drbg.peek_uniform(p.bins, 2)
        where = self.model.locate(key)
        x = where[1] if where is not None else r
        return x >= p.hbm_bins, y >= p.hbm_bins

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
    rng, master_key, salt0, salt1 = _secrets(env_int("BOLT_SEED", 1))
    items = {}
    while len(items) < env_int("BOLT_SETUP_ITEMS", 200):    # distinct keys
        items[_key(rng, p)] = _value(rng, p)
    started = time.perf_counter()
    if env_int("BOLT_INITIAL_SETUP", 1):     # an empty Setup first, as a new map has
        bench = Bench(dut, p, master_key, salt0)
        await bench.start(salt0)
        started = time.perf_counter()
        await bench.setup(items.items(), salt1)
    else:   # the items' Setup first (at N = 2^20 an empty one costs as much as theirs)
        bench = Bench(dut, p, master_key, salt1, items=items.items())
        await bench.driver.start()
        await bench.rtl_setup(items.items(), salt1)
        bench.check_trace("Setup")
        bench.check_bytes("Setup")
    setup_s = time.perf_counter() - started
    dut._log.info("cosim: Setup of %d items took %.1f s (RTL and model)", len(items), setup_s)
    setup_overruns = int(dut.overruns.value)
    dut._log.info("cosim: HBM steps over their budget in the Setup: %d", setup_overruns)
    known = list(items)
    ops = env_int("BOLT_OPS", 500)
    stats = Counter()
    started = time.perf_counter()
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
    access_s = time.perf_counter() - started
    bench.check_trace("workload")
    bench.check_bytes("workload")
    dut._log.info("cosim: %d ops, outcomes %s, map size %d", ops, dict(stats), len(bench.model))
    touches = Counter(sum(roles) for roles, _ in bench.cycles)
    dut._log.info("touch counts %s", dict(touches))
    path = os.environ.get("BOLT_COSIM_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({"setup items": len(items), "setup (s)": setup_s,
                       "HBM steps over budget in the Setup": setup_overruns, "accesses": ops,
                       "simulation peak memory (MiB)":
                           resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                       "accesses (s)": access_s, "outcomes": {f"{o} {s}": n for (o, s), n
                                                             in sorted(stats.items())},
                       "accesses by touches": dict(sorted(touches.items()))}, f, indent=1)


async def _quarter_full(dut, *, seed: int):
    """A started bench after a Setup of capacity / 4 random items; its random source and
    the items."""
    p = _params()
    rng, master_key, salt0, salt1 = _secrets(seed)
    bench = Bench(dut, p, master_key, salt0)
    await bench.start(salt0)
    items = dict((_key(rng, p), _value(rng, p)) for _ in range(p.capacity // 4))
    await bench.setup(items.items(), salt1)
    return bench, rng, items


@cocotb.test()
async def test_tamper(dut):
    """A page modified in host memory makes the RTL report INTEGRITY for it, like the model:
    a GET of a key stored in that page fails, every time, and keys elsewhere still read back."""
    bench, rng, items = await _quarter_full(dut, seed=env_int("BOLT_SEED", 1) + 7)
    p = bench.p
    stored = {key: bench.model.locate(key) for key in items}
    victim_key = next(key for key, where in stored.items() if where[0] == HOST)
    victim = stored[victim_key][1] - p.hbm_bins
    offset = victim * p.page_stride + rng.randrange(p.page_sealed_bytes)
    for memory in (bench.memory, bench.model.host_memory):
        memory[offset] ^= 1 << rng.randrange(8)
    for n in range(3):
        response = await bench.access(Op.GET, victim_key, None, n)
        assert response.status == Status.INTEGRITY and response.page == victim, response
    elsewhere = [key for key, where in stored.items()
                 if where[0] != HOST or where[1] - p.hbm_bins != victim]
    failures = 0
    for n, key in enumerate(rng.sample(elsewhere, 40), start=3):
        response = await bench.access(Op.GET, key, None, n)
        if response.status == Status.INTEGRITY:  # its access drew the tampered page as y
            assert response.page == victim, response
            failures += 1
        else:
            assert response.value == items[key], (key, response)
    bench.check_trace("tamper")
    dut._log.info("tamper: page %d fails verification; %d/40 other GETs touched it as y",
                  victim, failures)


def _role_name(roles) -> str:
    return "x " + ("host" if roles[0] else "HBM") + ", y " + ("host" if roles[1] else "HBM")


class RequestMonitor:
    """The cycle of every host event of an access, counted from the command's acceptance: each
    AXI read and write request (``AR``, ``AW``, with its burst length), the last beat of each
    burst, each write response, and the accelerator's response."""

    def __init__(self, dut):
        self.dut = dut
        self.events: list[tuple[str, int]] = []
        self._start = None
        self._cycle = 0
        cocotb.start_soon(self._run())

    def begin(self) -> None:
        self.events = []
        self._start = None

    async def _run(self) -> None:
        dut = self.dut
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            self._cycle += 1
            if int(dut.cmd__valid.value) and int(dut.cmd__ready.value):
                self._start = self._cycle
            if self._start is None:
                continue
            offset = self._cycle - self._start
            # A request with its burst length: where a page splits at 4 KB is public (its
            # address is in the trace) and moves the host's own timing.
            if int(dut.host__arvalid.value) and int(dut.host__arready.value):
                self.events.append((f"read {int(dut.host__arlen.value) + 1}", offset))
            if int(dut.host__awvalid.value) and int(dut.host__awready.value):
                self.events.append((f"write {int(dut.host__awlen.value) + 1}", offset))
            if int(dut.host__rvalid.value) and int(dut.host__rready.value) \
                    and int(dut.host__rlast.value):
                self.events.append(("read data", offset))
            if int(dut.host__wvalid.value) and int(dut.host__wready.value) \
                    and int(dut.host__wlast.value):
                self.events.append(("write data", offset))
            if int(dut.host__bvalid.value) and int(dut.host__bready.value):
                self.events.append(("write response", offset))
            if int(dut.resp__valid.value) and int(dut.resp__ready.value):
                self.events.append(("response", offset))


@cocotb.test()
async def test_timing(dut):
    """Page requests leave on a fixed schedule, under hot-key, uniform-hit and miss workloads
    with mixed ops, while HBM answers with random latency and back-pressure.

    The host's behaviour is public (it is the host), so every access replays the same host
    back-pressure from its command on; HBM keeps random pauses on every channel. Grouped by
    what is public (which of x, y are host bins, the extra DRBG words of the access:
    rejections and c2 redraws, randomness independent of the operations; how its pages split
    into bursts), every host event of every access of a group (each request, last data beat,
    write response, and the response) falls on the same cycle under every workload.
    """
    p = _params()
    rng, master_key, salt0, salt1 = _secrets(env_int("BOLT_SEED", 1) + 13)
    pauses = env_float("BOLT_PAUSES", 0.1)
    bench = Bench(dut, p, master_key, salt0, pauses=pauses, seed=5, host_model=False)
    monitor = RequestMonitor(dut)
    await bench.start(salt0)
    items = [(_key(rng, p), _value(rng, p)) for _ in range(p.capacity // 4)]
    await bench.setup(items, salt1)
    keys = [key for key, _ in items]
    n_ops = env_int("BOLT_TIMING_OPS", 300)
    workloads = {
        "hot key": lambda: (rng.choice([Op.GET, Op.PUT]), keys[0]),
        "uniform hits": lambda: (rng.choice([Op.GET, Op.PUT, Op.DELETE]), rng.choice(keys)),
        "misses": lambda: (rng.choice([Op.GET, Op.PUT, Op.DELETE]), _key(rng, p)),
    }
    report, schedules = {}, {}
    for name, draw in workloads.items():
        bench.cycles.clear()
        by_roles = {}
        for n in range(n_ops):
            op, key = draw()
            before = bench.model._drbg.words_drawn
            bench.host.set_pauses(random.Random(env_int("BOLT_SEED", 1)), pauses)
            dut.hbm_latency.value = rng.randint(1, HBM_LATENCY_SIMULATED)
            monitor.begin()
            await bench.access(op, key, _value(rng, p) if op == Op.PUT else None, n)
            extra = bench.model._drbg.words_drawn - before - 4
            roles, cycles = bench.cycles[-1]
            kinds = tuple(kind for kind, _ in monitor.events)
            # The rule of bolt.model.schedule with one access in flight: its page reads all
            # leave before its response, its page writes all after it.
            order = tuple(kind.split()[0] if kind[-1].isdigit() else kind for kind in kinds)
            answer = order.index("response")
            assert ("read" in order) == any(roles), monitor.events
            assert "read" not in order[answer:] and "read data" not in order[answer:], \
                monitor.events
            assert "write" not in order[:answer], monitor.events
            assert ("write" in order) == any(roles), monitor.events
            # The public part: which of x, y are host bins, the extra DRBG words, and how the
            # pages split into bursts (the burst lengths of the requests).
            group = (_role_name(roles), extra, kinds)
            schedules.setdefault(group, {}).setdefault(tuple(monitor.events), set()).add(
                (name, n))
            by_roles.setdefault(_role_name(roles), Counter())[cycles - extra] += 1
        report[name] = {role: dict(counts) for role, counts in sorted(by_roles.items())}
        dut._log.info("timing %s (cycles by x/y host bins, less the extra DRBG words): %s",
                      name, report[name])
    for group, seen in schedules.items():
        assert len(seen) == 1, f"{group[:2]}: page requests leave at " + "; ".join(
            f"{schedule} in {sorted(runs)[:4]}" for schedule, runs in seen.items())
    shared = sum(len({name for name, _ in next(iter(seen.values()))}) > 1
                 for seen in schedules.values())
    assert shared, "no schedule was seen under two workloads"
    report = {"timing": report,
              "schedules": [[*group[:2], *seen] for group, seen in schedules.items()]}
    path = os.environ.get("BOLT_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(report, f, indent=1, default=str)


class BackMonitor:
    """Every cycle: the commands the card takes, the responses, and when the accelerator's back
    goes idle and takes its next command (``idle`` high, then low the cycle after a take).
    Each take begins a new operation in ``trace``, so that the host events recorded between
    two takes are the first access's."""

    def __init__(self, dut, params: Params, trace):
        self.dut, self.params, self.trace = dut, params, trace
        #: Per command, in order: the cycle the design accepted it (the card's register holds
        #: it a cycle), its response with its stamps, the cycle the back took it.
        self.accepted, self.responses, self.takes = [], [], []
        self.idle_from: list[int] = []      #: cycles the back became idle
        self.cycle = 0
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        dut, was_idle = self.dut, True
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            self.cycle += 1
            idle = bool(int(dut.idle.value))
            if idle and not was_idle:
                self.idle_from.append(self.cycle)
            if was_idle and not idle:       # the back took a command in the cycle before
                self.takes.append(self.cycle - 1)
                self.trace.begin_op()
            was_idle = idle
            if int(dut.cmd__valid.value) and int(dut.cmd__ready.value):
                self.accepted.append(self.cycle + 1)
            if int(dut.resp__valid.value) and int(dut.resp__ready.value):
                self.responses.append(unpack_response(self.params, int(dut.resp__payload.value)))


@cocotb.test()
async def test_pipelined(dut):
    """Commands sent without waiting for the access before them to finish: the front takes
    the next command during that access and prepares it (PRF, draws), the back takes it once
    idle. Under random gaps between commands, host and HBM latency, and back-pressure on
    every channel, every access's host events (split at the back's takes), the host bytes
    and every response equal the model's, and each access is taken when the timing rule says
    (:func:`bolt.model.schedule.taken`: prepared, and the access before it idle)."""
    bench, rng, items = await _quarter_full(dut, seed=env_int("BOLT_SEED", 1) + 29)
    p = bench.p
    keys = list(items)
    ops = []
    for _ in range(env_int("BOLT_PIPELINED_OPS", 100)):
        op = rng.choices([Op.GET, Op.PUT, Op.DELETE], weights=[4, 4, 2])[0]
        key = rng.choice(keys) if rng.random() < 0.7 else _key(rng, p)
        # Some commands wait at the card for the front (0), some arrive during the access
        # before (its reads or its tail), some once the accelerator is idle.
        gap = rng.choice((0, 0, rng.randint(1, 40), rng.randint(1, 800)))
        ops.append((op, key, _value(rng, p) if op == Op.PUT else None, gap))
    expected = [bench.model.access(op, key, value)._replace(bound=None)
                for op, key, value, _ in ops]
    monitor = BackMonitor(dut, p, bench.memory.trace)
    await RisingEdge(dut.clk)       # the monitor runs from here
    for op, key, value, gap in ops:
        for _ in range(gap):
            await RisingEdge(dut.clk)
            dut.hbm_latency.value = rng.randint(1, HBM_LATENCY_SIMULATED)
            dut.host_model_latency.value = rng.randint(0, 64)
        await bench.driver.send(op, key, value or b"")
    while len(monitor.responses) < len(ops) or not int(dut.idle.value):
        await RisingEdge(dut.clk)
    await RisingEdge(dut.clk)
    assert int(dut.overruns.value) == 0, "an HBM step overran its fixed schedule"
    for n, ((got, _), want) in enumerate(zip(monitor.responses, expected)):
        assert got == want, f"op {n} {ops[n][0].name}: RTL {got} != model {want}"
    bench.check_trace("pipelined")
    bench.check_bytes("pipelined")
    # The rule: the stamps count from the design's acceptance; the back took each command
    # when it was prepared (the prelude of an access with nothing before it in flight) and
    # the access before it was idle.
    takes = [accept + cycles.taken_at for accept, (_, cycles)
             in zip(monitor.accepted, monitor.responses)]
    assert takes == monitor.takes
    prelude = monitor.responses[0][1].taken_at
    overlapped = 0
    for n in range(1, len(ops)):
        idle_before = max(c for c in monitor.idle_from if c <= takes[n])
        assert monitor.accepted[n] > takes[n - 1]       # the front holds one command
        assert takes[n] == taken(monitor.accepted[n], prelude, idle_before), (
            n, monitor.accepted[n], takes[n], idle_before)
        overlapped += monitor.accepted[n] < idle_before
    assert overlapped > len(ops) // 4, "too few commands arrived during the access before"
    dut._log.info("pipelined: %d accesses, %d taken into the front during the access before, "
                  "prelude %d cycles", len(ops), overlapped, prelude)
