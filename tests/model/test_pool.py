"""The trusted-pool placement (algorithm §13) in the reference model: its draws, where each
access leaves the key and the pool slot's holder, Setup's pool filling, the unchanged trace
law, crossed bounds and failed touches."""

import random

import numpy as np
import pytest
from scipy import stats

import bolt
from bolt import Params
from bolt.crypto import Drbg, derive_subkeys
from bolt.model import ReferenceAccelerator
from bolt.protocol import HOST, POOL, Op, Status
from bolt.trace import access_pages
from bolt.tools.faults import contents

from tests.conftest import MASTER_KEY, SALT


def pool_params(pool_size=None, **options):
    base = dict(capacity=64, key_size=4, value_size=4, load=4, hbm_fraction=0.25)
    return Params(**{**base, **options}, placement="pool", pool_size=pool_size)


def items_of(count):
    return [(b"k%d" % i, b"v%d" % i) for i in range(count)]


def pages_of(accelerator):
    """The host pages of the last access, in trace order (its reads, then its writes)."""
    pages = access_pages(accelerator.trace.last_op(), accelerator.params.page_stride)
    assert pages is not None
    return pages


def test_params_validate_the_placement():
    assert Params().placement == "two-choice" and Params().pool_size == 0
    p = Params(placement="pool")
    assert p.pool_size == p.bins and Params(**p.arguments()) == p
    assert "placement" not in Params().arguments()     # the two-choice design's five, as before
    assert Params(placement="pool", pool_size=np.int64(7)).pool_size == 7
    for bad in (dict(placement="three-choice"), dict(pool_size=4),
                dict(placement="pool", pool_size=0),
                dict(placement="pool", pool_size=2**16 + 1),
                dict(placement="pool", pool_size=2.5)):
        with pytest.raises(ValueError):
            Params(**bad)


def test_the_pool_is_in_the_hbm_budget():
    two_choice, pool = Params().hbm_budget(), Params(placement="pool").hbm_budget()
    # P slots of (flag, key length, key, value length, value); nothing else grows at these sizes.
    assert pool.pool == Params().bins * Params().slot_bytes
    assert pool.total - two_choice.total == pool.pool
    assert ("pool", pool.pool) in pool.items() and two_choice.pool == 0


@pytest.mark.parametrize("channel", [False, True])
def test_the_rtl_backend_refuses_the_pool(channel):
    with pytest.raises(ValueError, match="two-choice placement only"):
        bolt.Map(64, placement="pool", backend="rtl", channel=channel)


@pytest.mark.parametrize("pool_size", [1, 5, None])
def test_each_access_follows_algorithm_13(pool_size):
    """An independent replay of algorithm §13 from the DRBG: the draws (s = U(P) after c2, on
    every access), x, the touches, and where the key and the slot's holder end up."""
    p = pool_params(pool_size)
    k, m, size = p.hbm_bins, p.bins, p.pool_size
    acc = ReferenceAccelerator(p, master_key=MASTER_KEY, salt=SALT, items=items_of(40))
    shadow = Drbg(derive_subkeys(MASTER_KEY, SALT).drbg)
    shadow.advance(acc._drbg.words_drawn)
    rng, state = random.Random(pool_size), acc._state
    oracle = dict(items_of(40))
    outcomes = set()
    for t in range(1500):
        op = rng.choice(list(Op))
        key = b"k%d" % rng.randrange(70)
        value = b"%d" % t if op == Op.PUT else None
        r, y, c1 = shadow.uniform(m), shadow.uniform(m), shadow.uniform(m)
        c2 = shadow.uniform(m)
        while c2 == c1:
            c2 = shadow.uniform(m)
        s = shadow.uniform(size)
        before, holder, loads = acc.locate(key), state.pool[s], list(state.loads)
        response = acc.access(op, key, value)
        assert acc._drbg.words_drawn == shadow.words_drawn
        x = r if before is None or before[0] == POOL else before[1]
        assert pages_of(acc) == [b - k for b in (x, y) if b >= k]
        assert response.value == oracle.get(key)
        if response.status == Status.FULL:
            assert acc.locate(key) is None
            continue
        assert response.status == (Status.FOUND if before else Status.ABSENT)
        stored = op == Op.PUT or (op == Op.GET and before is not None)
        if op == Op.DELETE:
            oracle.pop(key, None)
        if op == Op.PUT:
            oracle[key] = value
        if not stored:
            assert acc.locate(key) is None if op == Op.DELETE else True
            if before is not None and before[0] == POOL:
                assert state.pool[before[2]] is None
            outcomes.add(("not stored", before is not None))
            continue
        assert acc.locate(key) == (POOL, None, s) and state.pool[s] == (key, oracle[key])
        if holder is None or holder[0] == key:
            outcomes.add(("empty slot or itself", before is not None and before[0]))
        elif before is not None and before[0] == POOL:
            assert acc.locate(holder[0]) == (POOL, None, before[2])    # a swap
            assert state.loads == loads
            outcomes.add(("swap",))
        else:
            if before is not None:
                loads[x] -= 1      # the key left its bin before the holder was placed
            nb = c1 if loads[c1] <= loads[c2] else c2
            assert acc.locate(holder[0])[1] == nb
            outcomes.add(("displaced", before is not None))
        if t % 100 == 0:
            assert contents(acc) == oracle
    assert contents(acc) == oracle
    assert {("displaced", True), ("displaced", False), ("not stored", True),
            ("not stored", False)} <= outcomes
    if size > 1:
        assert ("swap",) in outcomes


def test_setup_fills_the_pool_first_then_places_the_rest_as_two_choice():
    """The first P distinct items (input order) go to pool slots 0, 1, ...; the rest are placed
    exactly as a two-choice Setup of the rest alone places them: same draws, same host bytes."""
    items = items_of(30) + [(b"k3", b"again"), (b"k35", b"x")]
    p = pool_params(5)
    pool = ReferenceAccelerator(p, master_key=MASTER_KEY, salt=SALT, items=items)
    two_choice_params = Params(**{**p.arguments(), "placement": "two-choice", "pool_size": None})
    rest = list(dict(items).items())[5:]
    two_choice = ReferenceAccelerator(two_choice_params, master_key=MASTER_KEY, salt=SALT,
                                      items=rest)
    assert pool._state.pool == [(b"k0", b"v0"), (b"k1", b"v1"), (b"k2", b"v2"),
                                (b"k3", b"again"), (b"k4", b"v4")]
    assert [pool.locate(b"k%d" % i) for i in range(5)] == [(POOL, None, i) for i in range(5)]
    assert pool.host_memory.snapshot() == two_choice.host_memory.snapshot()
    assert pool._drbg.words_drawn == two_choice._drbg.words_drawn
    assert pool._state.loads == two_choice._state.loads
    assert list(pool.trace) == list(two_choice.trace)        # B page writes, in order
    for key, _ in rest:
        assert pool.locate(key) == two_choice.locate(key)
    assert contents(pool) == dict(items)


def test_a_small_setup_leaves_the_high_slots_empty():
    p = pool_params(None)
    acc = ReferenceAccelerator(p, master_key=MASTER_KEY, salt=SALT, items=items_of(3))
    assert acc._state.pool == items_of(3) + [None] * (p.pool_size - 3)
    assert acc._state.loads == [0] * p.bins and acc._drbg.words_drawn == 0


def test_trace_shape_and_touch_law_are_unchanged():
    """0, 1 or 2 whole-page touches, x and y each a uniform bin: the touch counts follow
    (1-h)^2, 2h(1-h), h^2 whatever the workload (hot key, hits, misses, inserts, deletes)."""
    p = pool_params(None, capacity=256)
    acc = ReferenceAccelerator(p, master_key=MASTER_KEY, salt=SALT, items=items_of(128),
                               crypto=False)
    rng = random.Random(7)
    counts = np.zeros(3, int)
    for t in range(6000):
        op, key = ((Op.GET, b"k0") if t % 2 else
                   (rng.choice(list(Op)), b"k%d" % rng.randrange(256)))
        acc.trace.clear()
        acc.access(op, key, b"v" if op == Op.PUT else None)
        counts[len(pages_of(acc))] += 1
    h = p.host_fraction
    expected = np.array([(1 - h) ** 2, 2 * h * (1 - h), h * h]) * counts.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-4


def test_a_displaced_holder_with_no_free_frame_crosses_the_bound_and_changes_nothing():
    p = pool_params(2)
    acc = ReferenceAccelerator(p, master_key=MASTER_KEY, salt=SALT, items=items_of(20))
    state = acc._state
    hoard, state.free_frames = state.free_frames, []   # the holder of s finds no frame

    def content():
        free = state.free_frames
        state.free_frames = free + hoard
        try:
            return contents(acc)
        finally:
            state.free_frames = free
    for t in range(200):          # until an access has nothing pending in x or y to flush
        before, pool = content(), list(state.pool)
        response = acc.access(Op.PUT, b"new%d" % t, b"n")
        if response.status == Status.BOUND:
            assert response.bound == "value frames"
            assert content() == before and state.pool == pool
            return
        assert response.status == Status.ABSENT and acc.locate(b"new%d" % t)[0] == POOL
    raise AssertionError("never crossed the bound")


def test_a_failed_touch_of_y_loses_nothing():
    """A key taken out of page x on its way to the pool: the touch of y fails, the key waits
    in x's eviction buffer, the pool and every other item are as before."""
    p = pool_params(4)
    acc = ReferenceAccelerator(p, master_key=MASTER_KEY, salt=SALT, items=items_of(40))
    k, state, stride = p.hbm_bins, acc._state, p.page_stride
    for _ in range(200):
        (_, y), _ = acc._drbg.peek_uniform(p.bins, 2)
        key = next((key for key, (kind, x, _) in state.index.items()
                    if kind == HOST and x != y), None)
        if y >= k and key is not None:
            break
        acc.access(Op.GET, b"missing")
    else:
        raise AssertionError("never found a host key with y a host page")
    before, pool = contents(acc), list(state.pool)
    address = (y - k) * stride + 3
    acc.host_memory[address] ^= 1
    assert acc.access(Op.GET, key).status == Status.INTEGRITY
    acc.host_memory[address] ^= 1
    assert contents(acc) == before and state.pool == pool
    assert acc.access(Op.GET, key).value == before[key]
