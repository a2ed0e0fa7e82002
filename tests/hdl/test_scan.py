"""The control's log-depth decisions over a bin's slots in Amaranth's simulator, against the
reference model's own rules: an eviction list loses the key's pending entry as the model's
list does (``pending.index`` then ``del``), and a flushed item goes to the lowest free slot
that the model's page edit picks; and the one-hot multiplexer that chooses the control's HBM
requests."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from bolt.hdl.hbm import bin_record_layout, bin_record_without
from bolt.hdl.scan import lowest_set, one_hot_select, prefix_or
from bolt.model.pages import PlainPages
from bolt.params import Params
from bolt.trace import Trace


def _run(m, bench):
    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("capacity", [4096, 1 << 20])          # 13 and 14 slots
def test_bin_record_without_removes_the_entry_as_the_models_list_does(capacity):
    p = Params(capacity=capacity)
    layout = bin_record_layout(p)
    pending, frame = Signal(layout), Signal(p.frame_bits)
    m = Module()
    result = bin_record_without(m, pending, frame)
    rng = random.Random(capacity)
    mismatches = []

    async def bench(ctx):
        for _ in range(600):
            count = rng.randrange(p.slots + 1)
            # Frames from a small range, so that repeats and entries past the count match too.
            frames = [rng.randrange(p.frames if rng.random() < 0.5 else 8)
                      for _ in range(p.slots)]
            listed = frames[:count]
            wanted = rng.choice(listed) if listed and rng.random() < 0.7 else rng.randrange(8)
            ctx.set(pending, {"count": count, "frames": frames})
            ctx.set(frame, wanted)
            # The model: pending.index(entry), then del (bolt.model.accelerator). The record is
            # an array of ``slots`` entries: what follows the count moves up with the rest.
            expected = list(frames)
            if wanted in listed:
                del expected[listed.index(wanted)]
                expected.append(0)
            got = ctx.get(result)
            got_frames = [int(got.frames[i]) for i in range(p.slots)]
            got_count = int(got.count)
            if got_frames != expected or got_count != (count - 1) % (1 << len(result.count)):
                mismatches.append((count, frames, wanted, got_count, got_frames, expected))

    _run(m, bench)
    assert not mismatches, mismatches[:3]


@pytest.mark.parametrize("capacity", [4096, 1 << 20])
def test_lowest_set_is_the_lowest_free_slot_the_model_flushes_into(capacity):
    p = Params(capacity=capacity)
    used = Signal(p.slots)
    m = Module()
    slot = Signal(range(p.slots))
    m.d.comb += slot.eq(lowest_set([~bit for bit in used]))
    pages = PlainPages(p, bytes(16), Trace())
    rng = random.Random(capacity + 1)
    cases = [rng.getrandbits(p.slots) for _ in range(500)] + [(1 << s) - 1 for s in range(p.slots)]
    mismatches = []

    async def bench(ctx):
        for flags in cases:
            ctx.set(used, flags)
            slots = [(b"k", b"v") if flags >> s & 1 else None for s in range(p.slots)]
            _, free = pages.edit(0, slots, None, [(b"new", b"item")])
            if ctx.get(slot) != free[0]:
                mismatches.append((bin(flags), ctx.get(slot), free))
        # A full page has no free slot: the position is 0 (the flush never writes then).
        ctx.set(used, (1 << p.slots) - 1)
        if ctx.get(slot) != 0:
            mismatches.append(("full", ctx.get(slot)))

    _run(m, bench)
    assert not mismatches, mismatches[:3]


def test_prefix_or_is_every_prefix_and_log_deep():
    width = 14
    bits = Signal(width)
    m = Module()
    prefixes = Signal(width)
    network = prefix_or(list(bits))
    m.d.comb += [prefixes[i].eq(value) for i, value in enumerate(network)]
    rng = random.Random(5)
    mismatches = []

    async def bench(ctx):
        for value in [rng.getrandbits(width) for _ in range(300)] + [1 << i for i in range(width)]:
            ctx.set(bits, value)
            expected = sum(1 << i for i in range(width) if value & ((1 << (i + 1)) - 1))
            if ctx.get(prefixes) != expected:
                mismatches.append((bin(value), bin(ctx.get(prefixes)), bin(expected)))

    _run(m, bench)
    assert not mismatches, mismatches[:3]

    def depth(value):
        """OR levels of a network node (an input bit is level 0)."""
        operands = getattr(value, "operands", ())
        return 1 + max(map(depth, operands)) if operands else 0
    assert max(map(depth, network)) == (width - 1).bit_length()


def test_one_hot_select_is_the_chosen_value_or_zero_and_log_deep():
    """Each condition alone picks its value (constants, zeros and narrower values among
    them, as the control's requests have); none picks 0."""
    count, width = 37, 12
    conditions = Signal(count)
    values = [Signal(width, name=f"value_{i}") for i in range(count - 3)] + [5, 0, Signal(3)]
    chosen = Signal(width)
    network = one_hot_select(list(zip(conditions, values)))
    m = Module()
    m.d.comb += chosen.eq(network)
    rng = random.Random(7)
    mismatches = []

    async def bench(ctx):
        for _ in range(20):
            drawn = [rng.getrandbits(len(v)) if isinstance(v, Signal) else v for v in values]
            for value, number in zip(values, drawn):
                if isinstance(value, Signal):
                    ctx.set(value, number)
            for i in [None, *range(count)]:
                ctx.set(conditions, 0 if i is None else 1 << i)
                expected = 0 if i is None else drawn[i]
                if ctx.get(chosen) != expected:
                    mismatches.append((i, ctx.get(chosen), expected))

    _run(m, bench)
    assert not mismatches, mismatches[:3]

    def depth(value):
        """OR levels of the network (an AND of a condition and its value is level 0)."""
        if getattr(value, "operator", None) == "|":
            return 1 + max(map(depth, value.operands))
        return 0
    terms = count - 1                               # the zero is left out
    assert depth(network) == (terms - 1).bit_length()
