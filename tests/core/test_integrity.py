"""The host tampers with its pages: every access that touches them fails, none returns a
wrong value, and items elsewhere stay readable."""

import pytest

import bolt
from bolt.protocol import HOST

from tests.conftest import MASTER_KEY, unique_salt


@pytest.fixture
def loaded(small_params):
    p = small_params
    items = {b"k%d" % i: b"value%d" % i for i in range(150)}
    m = bolt.Map.from_items(items, p.capacity, key_size=p.key_size, value_size=p.value_size,
                            load=p.load, hbm_fraction=p.hbm_fraction, master_key=MASTER_KEY,
                            unsafe_test_salt=unique_salt())
    return m, items


def page_range(m, page):
    stride = m.params.page_stride
    return slice(page * stride, (page + 1) * stride)


def read_until_page_is_touched(m, items, pages):
    """GET keys in turn; every answer before the failure must be right. Returns the error."""
    for round_ in range(50):
        for key, value in items.items():
            start = len(m.trace)
            try:
                assert m[key] == value
            except bolt.IntegrityError as error:
                touched = {e.address // m.params.page_stride for e in m.trace[start:]}
                assert error.page in pages and error.page in touched
                return error
    raise AssertionError("the tampered page was never touched")


def test_flipped_bit(loaded):
    m, items = loaded
    m.host_memory[page_range(m, 3).start + 100] ^= 0x01
    error = read_until_page_is_touched(m, items, {3})
    assert "page 3" in str(error)


def test_swapped_pages(loaded):
    m, items = loaded
    a, b = m.host_memory[page_range(m, 1)], m.host_memory[page_range(m, 2)]
    m.host_memory[page_range(m, 1)], m.host_memory[page_range(m, 2)] = b, a
    read_until_page_is_touched(m, items, {1, 2})


def test_replayed_stale_page(loaded):
    m, items = loaded
    stale = m.host_memory[page_range(m, 4)]
    keys = iter(list(items) * 20)
    while m.host_memory[page_range(m, 4)] == stale:
        m[next(keys)]
    m.host_memory[page_range(m, 4)] = stale
    read_until_page_is_touched(m, items, {4})


def test_items_off_the_tampered_page_stay_readable(loaded):
    m, items = loaded
    bad = 5
    m.host_memory[page_range(m, bad).start] ^= 0xFF
    bin_of_bad = bad + m.params.hbm_bins
    for key, value in items.items():
        for attempt in range(30):
            location = m.backend.locate(key)
            try:
                assert m[key] == value
                break
            except bolt.IntegrityError as error:
                assert error.page == bad
                if location[0] == HOST and location[1] == bin_of_bad:
                    break  # its page is gone: it can only fail, never answer wrongly
        else:
            raise AssertionError(f"{key!r} off the tampered page never read back")
    assert len(m) == len(items)
