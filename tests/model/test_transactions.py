"""An access decides, then commits: whatever fails part way (a page that does not verify, the
host store, a counter at its limit), the map's content is as before and no item is lost."""

import pytest

import bolt
from bolt.model import ReferenceAccelerator
from bolt.model.pages import COUNTER_LIMIT
from bolt.protocol import HOST, PENDING, Op, Status
from bolt.tools.faults import contents, snapshot

from tests.conftest import MASTER_KEY


@pytest.fixture(params=[{}, dict(placement="pool", pool_size=8)], ids=["two-choice", "pool"])
def loaded(small_params, request):
    """150 items under either placement (algorithm §13: a small pool, most items in bins)."""
    params = bolt.Params(**small_params.arguments(), **request.param)
    items = {b"k%d" % i: b"v%d" % i for i in range(150)}
    return ReferenceAccelerator(params, master_key=MASTER_KEY, items=items.items()), items


def next_y(acc):
    """The bin the next access draws as y."""
    (_, y), _ = acc._drbg.peek_uniform(acc.params.bins, 2)
    return y


def advance_until(acc, items, wanted):
    """GET keys in turn until ``wanted(key)`` holds for some key before the next access."""
    for round_ in range(100):
        for key in items:
            if wanted(key):
                return key
            acc.access(Op.GET, key)
    raise AssertionError("never found")


def page_slice(acc, page):
    stride = acc.params.page_stride
    return slice(page * stride, (page + 1) * stride)


@pytest.mark.parametrize("op", list(Op))
@pytest.mark.parametrize("x_has_pending", [False, True])
def test_touch_of_y_failing_with_no_free_frame_loses_nothing(loaded, op, x_has_pending):
    acc, items = loaded
    state, k = acc._state, acc.params.hbm_bins

    def wanted(key):
        kind, x, _ = state.index[key]
        y = next_y(acc)
        return (kind == HOST and y >= k and y != x
                and bool(state.pending[x - k]) == x_has_pending)
    key = advance_until(acc, items, wanted)
    y_page = next_y(acc) - k
    hoarded, state.free_frames = state.free_frames, []     # the pool is empty
    good = acc.host_memory[page_slice(acc, y_page)]
    acc.host_memory[page_slice(acc, y_page).start + 7] ^= 0x10
    response = acc.access(op, key, b"new" if op == Op.PUT else None)
    assert response == (Status.INTEGRITY, None, y_page, None)
    acc.host_memory[page_slice(acc, y_page)] = good      # the host gives the page back
    state.free_frames = hoarded + state.free_frames
    assert contents(acc) == items and len(acc) == len(items)
    assert acc.access(Op.GET, key).value == items[key]


def test_a_counter_at_its_limit_refuses_the_access_before_any_change(loaded):
    acc, items = loaded
    state, k = acc._state, acc.params.hbm_bins
    key = advance_until(acc, items, lambda key: state.index[key][0] == PENDING
                        and next_y(acc) >= k and next_y(acc) != state.index[key][1])
    y_page = next_y(acc) - k
    counter, state.pages.counters[y_page] = state.pages.counters[y_page], COUNTER_LIMIT
    before, events, words = snapshot(acc), len(acc.trace), acc._drbg.words_drawn
    with pytest.raises(bolt.BoundExceededError) as raised:
        acc.access(Op.GET, key)
    assert raised.value.bound == "page counter" and f"page {y_page}" in str(raised.value)
    assert snapshot(acc) == before and len(acc.trace) == events   # nothing happened
    assert acc._drbg.words_drawn > words                           # but the draws are spent
    state.pages.counters[y_page] = counter
    assert contents(acc) == items and acc.access(Op.GET, key).value == items[key]


class _FailingStore:
    """A host store whose next write raises, having stored nothing."""

    def __init__(self, store, fail_on):
        self.store, self.fail_on, self.writes = store, fail_on, 0

    def read_in_place(self, address, length):
        return self.store.read_in_place(address, length)

    def write_in_place(self, address, length):
        self.writes += 1
        if self.writes == self.fail_on:
            raise OSError("host link down")
        return self.store.write_in_place(address, length)


@pytest.mark.parametrize("fail_on", [1, 2])
def test_a_failed_page_write_changes_nothing_it_did_not_complete(loaded, fail_on):
    acc, items = loaded
    state, k = acc._state, acc.params.hbm_bins
    key = advance_until(acc, items, lambda key: state.index[key][0] in (HOST, PENDING)
                        and next_y(acc) >= k and next_y(acc) != state.index[key][1])
    store = state.pages.host
    before = snapshot(acc)
    state.pages.host = _FailingStore(store, fail_on)
    with pytest.raises(OSError):
        acc.access(Op.DELETE, key)
    state.pages.host = store
    if fail_on == 1:                 # x's write failed: nothing at all changed
        assert snapshot(acc) == before
    assert contents(acc) == items    # every page verifies under its counter; nothing lost
    assert acc.access(Op.DELETE, key).value == items[key]
