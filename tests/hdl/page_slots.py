"""A page engine's plaintext buffer behind a unit's slot port, for the unit tests of the units
that edit a page (:mod:`bolt.hdl.touch`, :mod:`bolt.hdl.flush`): the bench fills the page and
reads it back through the same slot ports, while ``bench`` is high."""

from __future__ import annotations

import pytest
from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.sim import Simulator

from bolt.hdl.pages import PageEngine
from bolt.model.pages import encode_slot
from bolt.params import Params


#: Two page formats: 24-byte slots (a 16-byte block spans up to two) and 11-byte ones (three).
PAGE_PARAMS = pytest.mark.parametrize(
    "params", [Params(capacity=1024, key_size=8, value_size=12),
               Params(capacity=1024, key_size=2, value_size=6)], ids=["V12", "V6"])


def random_item(p: Params, rng, key=None):
    """A (key, value) of random lengths (``key`` if given)."""
    key = key if key is not None else rng.randbytes(rng.randint(1, p.key_size))
    return key, rng.randbytes(rng.randint(0, p.value_size))


def simulate_on_page(p: Params, unit, bench):
    """Run the testbench ``bench(ctx, page)`` on ``unit`` (a component with a ``page`` slot
    port) over a page engine's buffer, ``page`` its :class:`PageSlots`."""
    m = Module()
    m.submodules.unit = unit
    m.submodules.page = page = PageSlots(p, unit.page)

    async def testbench(ctx):
        await bench(ctx, page)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()


def slot_value(p: Params, item) -> int:
    """A slot as the slot ports carry it: ``item`` = (key, value) encoded, None empty."""
    return 0 if item is None else int.from_bytes(encode_slot(p, *item), "little")


class PageSlots(Elaboratable):
    """The page of a :class:`~bolt.hdl.pages.PageEngine`, its slot ports driven by ``port``
    (a unit's ``Out(SlotPortSignature)``), or by the bench while ``bench`` is high."""

    def __init__(self, p: Params, port):
        self.p, self.port = p, port
        self.engine = PageEngine(p)
        self.bench = Signal()
        self.rd_idx, self.wr_en = Signal(range(p.slots)), Signal()
        self.wr_idx, self.wr = Signal(range(p.slots)), Signal(self.engine.slot_layout)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = engine = self.engine
        port, bench = self.port, self.bench
        m.d.comb += [port.rd.eq(engine.slot_rd), port.used.eq(engine.slot_used),
                     engine.slot_rd_idx.eq(Mux(bench, self.rd_idx, port.rd_idx)),
                     engine.slot_wr_en.eq(Mux(bench, self.wr_en, port.wr_en)),
                     engine.slot_wr_idx.eq(Mux(bench, self.wr_idx, port.wr_idx)),
                     engine.slot_wr.eq(Mux(bench, self.wr.as_value(), port.wr.as_value()))]
        return m

    async def fill(self, ctx, items):
        """Write the page: slot ``s`` holds ``items[s]`` (a (key, value) or None)."""
        ctx.set(self.bench, 1)
        ctx.set(self.wr_en, 1)
        for s, item in enumerate(items):
            ctx.set(self.wr_idx, s)
            ctx.set(self.wr.as_value(), slot_value(self.p, item))
            await ctx.tick()
        ctx.set(self.wr_en, 0)
        ctx.set(self.bench, 0)

    async def contents(self, ctx) -> list[int]:
        """Every slot of the page, read back."""
        ctx.set(self.bench, 1)
        slots = []
        for s in range(self.p.slots):
            ctx.set(self.rd_idx, s)
            await ctx.tick()
            slots.append(ctx.get(self.engine.slot_rd.as_value()))
        ctx.set(self.bench, 0)
        return slots
