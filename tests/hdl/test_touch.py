"""The take of the touch (:class:`bolt.hdl.touch.Take`) in Amaranth's simulator, on a page
engine's plaintext buffer, with the reference model's page edit (``PlainPages.edit``) as the
oracle: the key's item comes out of its slot, or, if the slot does not hold the key, the page
stays as it was; the result comes two cycles after the request, whatever the page holds."""

from __future__ import annotations

import random

from bolt.errors import IntegrityError
from bolt.hdl.touch import Take
from bolt.model.pages import PlainPages
from bolt.trace import Trace

from .page_slots import PAGE_PARAMS, random_item, simulate_on_page, slot_value


def _cases(p, rng):
    """(page, slot, key, take): the page's items, the slot the index names for ``key``, and
    whether the access takes the item out."""
    S = p.slots
    cases = []
    for fill in ("empty", "full", "half"):
        for placed in ("there", "elsewhere", "other key", "key prefix", "no take", "none"):
            for slot in (0, S - 1, rng.randrange(S)):
                page = [None] * S
                if fill == "full":
                    page = [random_item(p, rng) for _ in range(S)]
                elif fill == "half":
                    page = [random_item(p, rng) if rng.random() < 0.5 else None for _ in range(S)]
                key = rng.randbytes(rng.randint(1, p.key_size - 1))
                take = placed not in ("no take", "none")
                if placed in ("there", "no take"):
                    page[slot] = random_item(p, rng, key)
                elif placed == "none":
                    page[slot] = None
                elif placed == "elsewhere":
                    if fill != "full":
                        page[slot] = None          # the slot is empty
                    page[(slot + 1) % S] = random_item(p, rng, key)
                elif placed == "other key":
                    page[slot] = random_item(p, rng, bytes(b ^ 1 for b in key))
                else:                               # the key and a zero byte: klen differs
                    page[slot] = random_item(p, rng, key + b"\0")
                cases.append((page, slot, key, take))
    rng.shuffle(cases)
    return cases


def _expected(p, page, slot, key, take):
    """The model's edit: (holds, the page afterwards, the value taken out or None)."""
    edited = list(page)
    try:
        value, _ = PlainPages(p, b"", Trace()).edit(0, edited, (slot, key), [])
    except IntegrityError:
        return False, page, None
    return True, (edited if take else page), value


@PAGE_PARAMS
def test_take_empties_the_keys_slot_or_changes_nothing(params):
    p = params
    rng = random.Random(13)
    cases = _cases(p, rng)
    dut = Take(params=p)
    seen = []

    async def bench(ctx, page_slots):
        for page, slot, key, take in cases:
            await page_slots.fill(ctx, page)
            ctx.set(dut.request.payload.slot, slot)
            ctx.set(dut.request.payload.klen, len(key))
            ctx.set(dut.request.payload.key, int.from_bytes(key, "little"))
            ctx.set(dut.request.payload.take, take)
            ctx.set(dut.request.valid, 1)
            assert ctx.get(dut.request.ready)
            await ctx.tick()
            ctx.set(dut.request.valid, 0)
            cycles = 1
            while not ctx.get(dut.result.valid):
                assert not ctx.get(dut.request.ready)
                await ctx.tick()
                cycles += 1
            # Back-pressure now and then: nothing is written before the result is taken.
            for _ in range(rng.choice([0, 0, 3])):
                await ctx.tick()
            result = ctx.get(dut.result.payload)
            ctx.set(dut.result.ready, 1)
            await ctx.tick()
            ctx.set(dut.result.ready, 0)
            seen.append((cycles, result.holds, result.vlen, result.value,
                         await page_slots.contents(ctx)))

    simulate_on_page(p, dut, bench)

    assert len(seen) == len(cases)
    outcomes = set()
    for (page, slot, key, take), (cycles, holds, vlen, value, after) in zip(cases, seen):
        expected_holds, expected_page, taken = _expected(p, page, slot, key, take)
        assert cycles == 2
        assert holds == expected_holds
        assert after == [slot_value(p, item) for item in expected_page]
        if taken is not None:
            assert (vlen, value) == (len(taken), int.from_bytes(taken, "little"))
        outcomes.add((expected_holds, take))
    assert outcomes == {(True, True), (False, True), (True, False), (False, False)}
