"""What every backend of bolt.Map must do. Each test runs on the reference model and on the RTL
(Verilator); the reference model is the oracle for traces and host bytes."""

import random

import pytest

import bolt
from bolt import Params
from bolt.model import ReferenceAccelerator
from bolt.protocol import Op, Status
from bolt.trace import access_pages

from tests.conftest import MASTER_KEY, unique_salt

#: One parameter set for every backend (small, so the RTL builds and runs quickly).
PARAMS = dict(capacity=1024, key_size=16, value_size=8, load=8, hbm_fraction=0.2)


@pytest.fixture(scope="module", params=["reference", pytest.param("rtl", marks=pytest.mark.rtl)])
def shared_map(request):
    """One map per backend for the whole module (an RTL map is a running simulation)."""
    m = bolt.Map(**PARAMS, master_key=MASTER_KEY, backend=request.param)
    yield m
    m.close()


@pytest.fixture
def fresh(shared_map):
    """Reload the shared map with ``items`` (a Setup) and clear its trace."""
    def load(items=()):
        load.salt = unique_salt()       # the oracle's Setup takes the same one
        shared_map.load(items, unsafe_test_salt=load.salt)
        shared_map.trace.clear()
        return shared_map
    return load


def oracle(items, salt):
    """The model itself, set up as the map under test was (a bolt.Map takes a (master key,
    salt) pair once per process; the model, like the hardware's Setup command, takes any)."""
    model = ReferenceAccelerator(Params(**PARAMS), master_key=MASTER_KEY, salt=salt,
                                 items=dict(items).items())
    model.trace.clear()
    return model


def random_ops(rng, count, keys):
    for _ in range(count):
        key = rng.choice(keys)
        roll = rng.random()
        if roll < 0.4:
            yield "put", key, rng.randbytes(rng.randrange(9))
        elif roll < 0.8:
            yield "get", key, None
        else:
            yield "delete", key, None


def apply_model(model, op, key, value):
    """One operation on the model; returns what a bolt.Map over it would show the user."""
    response = model.access({"put": Op.PUT, "get": Op.GET, "delete": Op.DELETE}[op], key, value)
    if op == "put":
        return ("old", response.value)
    if response.status == Status.ABSENT:
        return ("missing",)
    return ("value", response.value) if op == "get" else ("deleted",)


def apply(m, op, key, value):
    """One operation through the public API; returns what the user sees."""
    try:
        if op == "put":
            return ("old", m.put(key, value))
        if op == "get":
            return ("value", m[key])
        del m[key]
        return ("deleted",)
    except KeyError:
        return ("missing",)


def test_same_answers_trace_and_host_bytes_as_the_model(fresh):
    rng = random.Random(11)
    items = {b"k%d" % i: rng.randbytes(rng.randrange(9)) for i in range(300)}
    m = fresh(items)
    model = oracle(items, fresh.salt)
    keys = list(items) + [b"new%d" % i for i in range(100)]
    for n, (op, key, value) in enumerate(random_ops(rng, 400, keys)):
        assert apply(m, op, key, value) == apply_model(model, op, key, value), f"op {n}"
    assert list(m.trace) == list(model.trace)
    assert m.trace.op_count == model.trace.op_count == 400
    assert m.host_memory.snapshot() == model.host_memory.snapshot()
    assert sorted(m) == sorted(model.keys()) and len(m) == len(model)


def test_setup_is_B_sequential_page_writes(fresh):
    m = fresh()
    m.load({b"a%d" % i: b"v" for i in range(500)})
    p = m.params
    assert list(m.trace) == [("write", page * p.page_stride, p.page_stride)
                             for page in range(p.host_bins)]


def test_every_access_is_0_1_or_2_touches_reads_then_writes(fresh):
    m = fresh({b"k%d" % i: b"v" for i in range(200)})
    rng = random.Random(5)
    for op, key, value in random_ops(rng, 300, [b"k%d" % i for i in range(400)]):
        apply(m, op, key, value)
    p = m.params
    counts = set()
    for events in m.trace.ops():
        pages = access_pages(events, p.page_stride)
        assert pages is not None, events
        counts.add(len(pages))
    assert counts == {0, 1, 2}


def test_outcomes_from_hidden_state_come_after_a_full_access(fresh):
    m = fresh({b"k%d" % i: b"v" for i in range(PARAMS["capacity"])})
    with pytest.raises(bolt.CapacityError):
        m[b"one too many"] = b"x"
    with pytest.raises(KeyError):
        m[b"absent"]
    with pytest.raises(KeyError):
        del m[b"absent"]
    assert m.trace.op_count == 3
    assert len(m) == PARAMS["capacity"] and m[b"k7"] == b"v"


def test_bad_input_never_reaches_the_accelerator(fresh):
    m = fresh({b"k": b"v"})
    for action, error in [(lambda: m.__setitem__(b"x" * 17, b""), bolt.KeySizeError),
                          (lambda: m.__setitem__(b"k", b"x" * 9), bolt.ValueSizeError),
                          (lambda: m.__getitem__(3.5), bolt.KeyTypeError),
                          (lambda: m.__setitem__(b"k", 7), bolt.ValueTypeError)]:
        with pytest.raises(error):
            action()
    assert len(m.trace) == 0 and m[b"k"] == b"v"


def test_tampered_page_raises_integrity_error(fresh):
    items = {b"k%d" % i: b"v%d" % i for i in range(300)}
    m = fresh(items)
    p = m.params
    m.host_memory[2 * p.page_stride + 5] ^= 0x80
    for _ in range(20):
        for key, value in items.items():
            try:
                assert m[key] == value
            except bolt.IntegrityError as error:
                assert error.page == 2
                return
    raise AssertionError("page 2 was never touched")


def test_a_closed_map_refuses_work():
    m = bolt.Map(**PARAMS)
    m.close()
    with pytest.raises(bolt.BackendError):
        m[b"k"] = b"v"
