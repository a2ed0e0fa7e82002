"""What a user sees while a host page stays corrupted, and how the map recovers (README,
"When a host page is corrupted")."""

import random

import pytest

import bolt
from bolt.protocol import HOST, PENDING

from tests.conftest import MASTER_KEY, unique_salt

PARAMS = dict(capacity=256, key_size=8, value_size=16, load=4, hbm_fraction=0.25)


@pytest.fixture
def corrupted():
    """A map with 150 items whose page of the most items is corrupted (a bit flipped)."""
    items = {b"k%d" % i: b"v%d" % i for i in range(150)}
    m = bolt.Map.from_items(items, **PARAMS, master_key=MASTER_KEY,
                            unsafe_test_salt=unique_salt())
    k, stride = m.params.hbm_bins, m.params.page_stride
    pages = [m.backend.locate(key)[1] - k for key in items
             if m.backend.locate(key)[0] == HOST]
    bad = max(set(pages), key=pages.count)
    good_bytes = m.host_memory[bad * stride:(bad + 1) * stride]
    m.host_memory[bad * stride + 9] ^= 0x04
    return m, items, bad, good_bytes


def in_bad_bin(m, bad, key):
    location = m.backend.locate(key)
    return location is not None and location[1] == bad + m.params.hbm_bins


def test_items_of_the_bad_page_fail_every_time_and_stay_counted(corrupted):
    m, items, bad, _ = corrupted
    victims = [key for key in items if in_bad_bin(m, bad, key)]
    assert victims
    for key in victims:
        for _ in range(3):
            with pytest.raises(bolt.IntegrityError) as raised:
                m[key]
            assert raised.value.page == bad
    for action in (lambda key: m.__setitem__(key, b"x"), lambda key: m.__delitem__(key)):
        with pytest.raises(bolt.IntegrityError):
            action(victims[0])
    assert len(m) == len(items) and sorted(m) == sorted(items)   # the trusted index


def test_other_items_answer_right_and_a_few_accesses_fail_until_retried(corrupted):
    m, items, bad, _ = corrupted
    others = [key for key in items if not in_bad_bin(m, bad, key)]
    rng = random.Random(1)
    failures = 0
    for _ in range(1500):
        key = rng.choice(others)
        if in_bad_bin(m, bad, key):          # re-placed into the bad bin: stuck (next test)
            continue
        try:
            assert m[key] == items[key]       # never a wrong value
        except bolt.IntegrityError as error:
            assert error.page == bad          # its y was the bad page
            failures += 1
            for retry in range(5):           # a retry draws a new y
                try:
                    assert m[key] == items[key]
                    break
                except bolt.IntegrityError:
                    assert retry < 4
    assert 0 < failures < 1500 * 4 / m.params.bins    # about 1 / M of them


def test_items_re_placed_into_the_bad_bin_are_stuck_until_recovery(corrupted):
    m, items, bad, good_bytes = corrupted
    others = [key for key in items if not in_bad_bin(m, bad, key)]
    stuck = None
    for n in range(5000):
        key = others[n % len(others)]
        try:
            m[key] = b"w%d" % n
            items[key] = b"w%d" % n
        except bolt.IntegrityError:
            pass
        if m.backend.locate(key)[0] == PENDING and in_bad_bin(m, bad, key):
            stuck = key
            break
    assert stuck is not None
    with pytest.raises(bolt.IntegrityError):
        m[stuck]
    assert stuck in list(m)
    # The host serves the page's right bytes again: the stuck item flushes in and reads back.
    stride = m.params.page_stride
    m.host_memory[bad * stride:(bad + 1) * stride] = good_bytes
    assert m[stuck] == items[stuck]
    assert all(m[key] == value for key, value in items.items())


def test_re_loading_from_the_users_own_copy_recovers_everything(corrupted):
    m, items, bad, _ = corrupted
    m.load(items)                      # a new Setup rewrites every page under a new salt
    assert all(m[key] == value for key, value in items.items())
    m[b"new"] = b"1"
    assert m[b"new"] == b"1" and len(m) == len(items) + 1
