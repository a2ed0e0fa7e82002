"""A touch's flush (:class:`bolt.hdl.flush.Flush`) in Amaranth's simulator, on a page engine's
plaintext buffer, with the reference model's page edit (``PlainPages.edit``) as the oracle: the
pending items go into the page's lowest free slots in list order, each slot's item's index
position noted in the page's map and the rest of the map kept; frames held past the list's
count are never written; the fill takes the same cycles whatever the list and the page
hold."""

from __future__ import annotations

import random

from bolt.hdl.accelerator import pack_fields
from bolt.hdl.flush import Flush
from bolt.hdl.hbm import FRAME_BANKS
from bolt.model.pages import PlainPages
from bolt.trace import Trace

from .page_slots import PAGE_PARAMS, random_item, simulate_on_page, slot_value


def _cases(p, rng):
    """(page, pending): the page's items and the bin's pending items (as many as it has free
    slots at most, as a bin's load bound keeps them)."""
    S = p.slots
    cases = []
    for count in (0, 1, 2, 3, S - 1, S):
        for fill in ("empty", "exactly", "holes", "last slot"):
            page = [None] * S
            if fill == "exactly":                 # as many free slots as pending items
                for s in rng.sample(range(S), S - count):
                    page[s] = random_item(p, rng)
            elif fill == "holes":
                for s in rng.sample(range(S), rng.randint(0, S - count)):
                    page[s] = random_item(p, rng)
            elif fill == "last slot" and count <= 1:  # the one free slot is the last
                page = [random_item(p, rng) for _ in range(S - 1)] + [None]
            cases.append((page, [random_item(p, rng) for _ in range(count)]))
    rng.shuffle(cases)
    return cases


def _frame(dut, p, item, ipos):
    key, value = item
    return pack_fields(dut.frame_layout, {
        "vlen": len(value), "value": int.from_bytes(value, "little"), "klen": len(key),
        "key": int.from_bytes(key, "little"), "ipos": ipos})


@PAGE_PARAMS
def test_flush_fills_the_lowest_free_slots_in_list_order(params):
    p, S = params, params.slots
    rng = random.Random(17)
    cases = _cases(p, rng)
    dut = Flush(params=p)
    seen = []

    async def bench(ctx, page_slots):
        for page, pending in cases:
            await page_slots.fill(ctx, page)
            # Every frame of the buffer, in random order: the list's, then ones past its count
            # (left from an earlier access), which the fill must not put in.
            positions = [rng.randrange(1, 1 << 10) for _ in pending]
            frames = [_frame(dut, p, item, ipos) for item, ipos in zip(pending, positions)]
            frames += [_frame(dut, p, random_item(p, rng), rng.randrange(1 << 10))
                       for _ in range(S - len(pending))]
            # The map before: whatever it held (the fill changes only the slots it fills).
            map_in = [(rng.randrange(2), rng.randrange(1 << 10)) for _ in range(S)]
            for s, (used, ipos) in enumerate(map_in):
                ctx.set(dut.map_in[s].used, used)
                ctx.set(dut.map_in[s].ipos, ipos)
            # Each bank's frames in random order, the banks' streams at once, each held
            # back at random (as the copies' ports answer).
            waiting = [rng.sample(range(bank, S, FRAME_BANKS), len(range(bank, S, FRAME_BANKS)))
                       for bank in range(FRAME_BANKS)]
            while any(waiting):
                for bank, hold in enumerate(dut.hold):
                    offer = bool(waiting[bank]) and rng.random() < 0.7
                    ctx.set(hold.valid, offer)
                    if offer:
                        index = waiting[bank].pop()
                        ctx.set(hold.payload.row, index // FRAME_BANKS)
                        ctx.set(hold.payload.frame.as_value(), frames[index])
                await ctx.tick()
            for hold in dut.hold:
                ctx.set(hold.valid, 0)
            ctx.set(dut.count, len(pending))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            while not ctx.get(dut.done):
                assert ctx.get(dut.busy)
                await ctx.tick()
                cycles += 1
            map_out = [(ctx.get(dut.map_out[s].used), ctx.get(dut.map_out[s].ipos))
                       for s in range(S)]
            await ctx.tick()
            assert not ctx.get(dut.busy)
            seen.append((cycles, map_in, positions, map_out, await page_slots.contents(ctx)))

    simulate_on_page(p, dut, bench)

    assert len(seen) == len(cases)
    for (page, pending), (cycles, map_in, positions, map_out, after) in zip(cases, seen):
        edited = list(page)
        _, free = PlainPages(p, b"", Trace()).edit(0, edited, None, pending)
        assert len(free) == len(pending)
        assert cycles == dut.fill_cycles
        expected = list(map_in)
        for slot, ipos in zip(free, positions):
            expected[slot] = (1, ipos)
        assert map_out == expected
        assert after == [slot_value(p, item) for item in edited]
