"""bolt.Map: traces, determinism, errors and bad input."""

import copy
import pickle
import random

import pytest

import bolt
from bolt.model import ReferenceAccelerator
from bolt.protocol import Op
from bolt.trace import access_pages

from tests.conftest import MASTER_KEY, unique_salt


def make_map(p, items=(), **options):
    return bolt.Map.from_items(items, p.capacity, key_size=p.key_size, value_size=p.value_size,
                               load=p.load, hbm_fraction=p.hbm_fraction, **options)


def pages_touched(p, events):
    """Check the shape of one access's events (reads, then writes of the same pages) and return
    the pages it touched."""
    pages = access_pages(events, p.page_stride)
    assert pages is not None, events
    return pages


@pytest.mark.parametrize("count", [0, 1, 200])
def test_setup_trace_is_B_sequential_page_writes(small_params, count):
    p = small_params
    m = make_map(p, {b"%d" % i: b"v" for i in range(count)})
    setup = [("write", page * p.page_stride, p.page_stride) for page in range(p.host_bins)]
    assert m.trace.op_count == 1 and list(m.trace) == setup  # from_items: one Setup
    m.trace.clear()
    m.load({b"%d" % i: b"w" for i in range(count)})
    assert m.trace.op_count == 1 and list(m.trace) == setup


def test_every_access_is_zero_one_or_two_page_touches(small_params):
    p = small_params
    m = make_map(p, {b"%d" % i: b"v" for i in range(100)})
    rng = random.Random(7)
    m.trace.clear()
    kinds = set()
    for _ in range(3000):
        key = b"%d" % rng.randrange(200)
        op = rng.choice(list(Op))
        response = m.backend.access(op, key, b"x" if op == Op.PUT else None)
        kinds.add((op, response.status))
    ops = m.trace.ops()
    assert len(ops) == 3000
    assert m.trace.last_op() == ops[-1]
    touches = [len(pages_touched(p, events)) for events in ops]
    assert set(touches) == {0, 1, 2}
    assert {(op, status) for op in Op for status in (bolt.Status.FOUND, bolt.Status.ABSENT)} <= kinds


def test_last_op_of_an_empty_trace_is_an_error():
    with pytest.raises(IndexError, match="no operation"):
        bolt.trace.Trace().last_op()


def test_same_key_and_ops_give_same_trace_and_bytes(small_params):
    """A map replays exactly on the model set up with the same master key and salt."""
    rng = random.Random(3)
    ops = [(b"%d" % rng.randrange(50),
            bytes(rng.randrange(256) for _ in range(rng.randrange(17)))
            if rng.random() < 0.5 else None) for _ in range(300)]
    items = {b"a": b"1", b"b": b"2"}

    def run(master_key):
        m = make_map(small_params, items, master_key=master_key,
                     unsafe_test_salt=(salt := unique_salt()))
        model = ReferenceAccelerator(small_params, master_key=master_key, salt=salt,
                                     items=items.items())
        for key, value in ops:
            if value is None:
                assert m.get(key) == model.access(Op.GET, key).value
            else:
                m[key] = value
                model.access(Op.PUT, key, value)
        assert list(m.trace) == list(model.trace)
        assert m.host_memory.snapshot() == model.host_memory.snapshot()
        return m.host_memory.snapshot(), dict((k, m.get(k)) for k in list(m))

    first, other = run(MASTER_KEY), run(bytes(16))
    assert other[0] != first[0]
    assert other[1] == first[1]  # same content, whatever the key


def test_a_fresh_salt_per_setup_changes_every_page():
    a, b = bolt.Map(64, master_key=MASTER_KEY), bolt.Map(64, master_key=MASTER_KEY)
    stride = a.params.page_stride
    snap_a, snap_b = a.host_memory.snapshot(), b.host_memory.snapshot()
    assert all(snap_a[i:i + stride] != snap_b[i:i + stride] for i in range(0, len(snap_a), stride))


def test_missing_keys_raise_after_a_full_access(small_params):
    m = make_map(small_params, {b"here": b"1"})
    m.trace.clear()
    with pytest.raises(KeyError):
        m[b"gone"]
    with pytest.raises(KeyError):
        del m["gone"]
    assert m.get("gone", b"default") == b"default"
    assert m.trace.op_count == 3
    assert m[b"here"] == b"1" and "here" in m and "gone" not in m


def test_str_and_bytes_keys_are_the_same_key(small_params):
    m = make_map(small_params)
    m["clé"] = b"1"
    assert m["clé".encode()] == b"1"
    assert list(m) == ["clé".encode()]


@pytest.mark.parametrize("action, error", [
    (lambda m: m.__setitem__(b"k" * 9, b"v"), bolt.KeySizeError),
    (lambda m: m.__setitem__("ééééé", b"v"), bolt.KeySizeError),  # 10 UTF-8 bytes
    (lambda m: m.__setitem__(b"k", b"v" * 17), bolt.ValueSizeError),
    (lambda m: m.__setitem__(5, b"v"), bolt.KeyTypeError),
    (lambda m: m.__setitem__(b"k", "text"), bolt.ValueTypeError),
    (lambda m: m.__setitem__(b"k", None), bolt.ValueTypeError),
    (lambda m: m.__getitem__(None), bolt.KeyTypeError),
    (lambda m: m.__delitem__(b"k" * 9), bolt.KeySizeError),
    (lambda m: m.load([(b"ok", b"v"), (b"bad", b"v" * 17)]), bolt.ValueSizeError),
    (lambda m: m.load([(b"k%d" % i, b"") for i in range(257)]), bolt.CapacityError),
    (lambda m: m.__setitem__("\ud800", b"v"), bolt.KeyTypeError),   # no UTF-8 form
    (lambda m: m.get("a\udfff"), bolt.KeyTypeError),
    (lambda m: m.load("ab"), TypeError),
    (lambda m: m.load([b"ab"]), TypeError),
    (lambda m: m.load([(b"k", b"v", b"extra")]), TypeError),
    (lambda m: m.load(7), TypeError),
])
def test_bad_input_is_rejected_before_any_access(small_params, action, error):
    items = {b"k%d" % i: b"v%d" % i for i in range(50)}
    m = make_map(small_params, items)
    before = (len(m.trace), m.host_memory.snapshot())
    with pytest.raises(error) as raised:
        action(m)
    assert str(raised.value)
    assert (len(m.trace), m.host_memory.snapshot()) == before
    assert {k: m[k] for k in items} == items and len(m) == 50


def test_error_classes_are_also_builtin_ones():
    assert issubclass(bolt.KeySizeError, ValueError) and issubclass(bolt.ValueSizeError, ValueError)
    assert issubclass(bolt.KeyTypeError, TypeError) and issubclass(bolt.ValueTypeError, TypeError)


def test_full_map_reports_capacity_after_the_access_and_keeps_content():
    m = bolt.Map(16, key_size=4, value_size=4, load=2)
    items = {b"%d" % i: b"v%d" % i for i in range(16)}
    m.update(items)
    m.trace.clear()
    with pytest.raises(bolt.CapacityError):
        m[b"new"] = b"x"
    assert m.trace.op_count == 1
    m[b"3"] = b"over"  # an overwrite of a present key still works when full
    items[b"3"] = b"over"
    assert dict((k, m[k]) for k in items) == items and b"new" not in m


def test_too_many_items_for_setup():
    with pytest.raises(bolt.CapacityError):
        bolt.Map.from_items({b"%d" % i: b"" for i in range(17)}, 16)


def test_exhausted_frame_pool_is_reported_and_loses_nothing(small_params):
    m = make_map(small_params, {b"k%d" % i: b"v%d" % i for i in range(120)})
    state = m.backend._state
    hoarded, state.free_frames = state.free_frames, []  # as if every frame were in use
    with pytest.raises(bolt.BoundExceededError):
        m[b"new"] = b"x"
    assert b"new" not in list(m)
    errors = 0
    for i in range(120):
        try:
            assert m[b"k%d" % i] == b"v%d" % i
        except bolt.BoundExceededError:
            errors += 1
    state.free_frames = hoarded + state.free_frames
    assert errors > 0
    assert {k: m[k] for k in list(m)} == {b"k%d" % i: b"v%d" % i for i in range(120)}


def test_a_map_refuses_to_be_copied(small_params):
    m = make_map(small_params)
    for clone in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError):
            clone(m)


def test_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        bolt.Map(64, backend="fpga")


@pytest.mark.parametrize("bound", ["value frames", "bin load"])
def test_bound_exceeded_names_the_bound_crossed(small_params, bound):
    # The model names the bound when called directly; a response frame carries no name (the RTL
    # has none to give, and model and RTL frames are byte for byte alike).
    m = make_map(small_params, {b"k%d" % i: b"v%d" % i for i in range(100)}, channel=False)
    state = m.backend._state
    saved = list(state.free_frames), list(state.loads)
    if bound == "value frames":
        state.free_frames.clear()
    else:
        state.loads[:] = [small_params.slots] * small_params.bins
    with pytest.raises(bolt.BoundExceededError) as raised:
        m[b"new"] = b"x"
    assert raised.value.bound == bound and bound in str(raised.value)
    state.free_frames[:], state.loads[:] = saved
    assert b"new" not in list(m) and len(m) == 100
