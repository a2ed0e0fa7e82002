"""Setup salts: fresh from the OS at every Setup; one given from outside is for reproducible
tests only, named so, and refused when its (master key, salt) pair was set up before."""

import pytest

import bolt
from bolt.tools.faults import recorded_nonces

from tests.conftest import MASTER_KEY, unique_salt

SMALL = dict(capacity=64, key_size=8, value_size=8, load=4)


def test_a_test_salt_is_refused_the_second_time_with_the_same_master_key():
    salt = unique_salt()
    first = bolt.Map(**SMALL, master_key=MASTER_KEY, unsafe_test_salt=salt)
    with pytest.raises(bolt.SaltReuseError, match="reuse GCM nonces"):
        bolt.Map(**SMALL, master_key=MASTER_KEY, unsafe_test_salt=salt)
    with pytest.raises(bolt.SaltReuseError):
        bolt.Map.from_items({b"a": b"1"}, **SMALL, master_key=MASTER_KEY, unsafe_test_salt=salt)
    first[b"a"] = b"1"
    with pytest.raises(bolt.SaltReuseError):
        first.load({b"b": b"2"}, unsafe_test_salt=salt)
    assert first[b"a"] == b"1" and len(first) == 1           # the refused load changed nothing
    bolt.Map(**SMALL, master_key=bytes(16), unsafe_test_salt=salt)   # another master key


def test_there_is_no_plain_salt_keyword():
    for call in (lambda: bolt.Map(**SMALL, salt=bytes(15)),
                 lambda: bolt.Map.from_items({}, **SMALL, salt=bytes(15)),
                 lambda: bolt.Map(**SMALL).load({}, salt=bytes(15))):
        with pytest.raises(TypeError, match="salt"):
            call()


@pytest.mark.parametrize("salt, error", [("fifteen chars!!", TypeError), (12345, TypeError),
                                         (bytes(14), ValueError), (bytes(16), ValueError)])
def test_a_bad_test_salt_gets_a_clear_error(salt, error):
    with pytest.raises(error, match="test salt must be 15 bytes"):
        bolt.Map(**SMALL, master_key=MASTER_KEY, unsafe_test_salt=salt)
    m = bolt.Map.from_items({b"a": b"1"}, **SMALL)
    with pytest.raises(error, match="test salt must be 15 bytes"):
        m.load({b"b": b"2"}, unsafe_test_salt=salt)
    assert m[b"a"] == b"1"


def test_nonces_never_repeat_across_maps_and_setups_under_one_master_key():
    with recorded_nonces() as count:
        for _ in range(4):
            m = bolt.Map(**SMALL, master_key=MASTER_KEY)
            for setup in range(5):
                m.load({b"k%d" % i: b"v" for i in range(setup * 5)})
                for i in range(60):
                    m[b"k%d" % (i % 40)] = b"w%d" % i
    assert count.page_keys == 4 * 6 and count.seals > 4 * 5 * 60
    assert count.repeats == 0


def test_the_recorder_would_see_a_reused_pair():
    from bolt.model import ReferenceAccelerator
    p = bolt.Params(**SMALL)
    with recorded_nonces() as count:
        for _ in range(2):       # the model takes any salt, as the hardware's Setup does
            ReferenceAccelerator(p, master_key=MASTER_KEY, salt=bytes(15))
    assert count.repeats == p.host_bins


@pytest.mark.parametrize("salts", ["drawn", "given"])
def test_pages_of_an_earlier_setup_replayed_after_a_new_one_are_detected(salts):
    given = salts == "given"
    items = {b"k%d" % i: b"old%d" % i for i in range(40)}
    m = bolt.Map.from_items(items, **SMALL, master_key=MASTER_KEY,
                            unsafe_test_salt=unique_salt() if given else None)
    first = m.host_memory.snapshot()
    m.load({key: b"new" for key in items}, unsafe_test_salt=unique_salt() if given else None)
    m.host_memory[:] = first                      # the host serves the first Setup's pages
    errors = 0
    for key in items:
        try:
            assert m[key] == b"new"               # never an old value
        except bolt.IntegrityError:
            errors += 1
    assert errors > len(items) // 2
