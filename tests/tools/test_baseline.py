"""The Path-ORAM baseline (bolt.tools.baseline): a correct map with an exactly padded trace."""

import random

import pytest

from bolt import CapacityError, IntegrityError, KeySizeError, ValueTypeError
from bolt.tools.baseline import Z, PathOramMap, avl_max_height

KEY = bytes(range(16))


def check_avl(m: PathOramMap) -> None:
    """BST order, stored child heights, and balance of a count-only map's tree."""
    nodes = m._nodes

    def walk(nid, lo, hi):
        if not nid:
            return 0
        node = nodes[nid]
        assert (lo is None or node.key > lo) and (hi is None or node.key < hi)
        lh, rh = walk(node.left, lo, node.key), walk(node.right, node.key, hi)
        assert (node.lh, node.rh) == (lh, rh)
        assert abs(lh - rh) <= 1
        return 1 + max(lh, rh)

    assert walk(m._root, None, None) <= m.max_height
    assert len(nodes) == len(m)


def run_random_ops(m, ref, rng, count, universe):
    for _ in range(count):
        k = b"key%d" % rng.randrange(universe)
        u = rng.random()
        if u < 0.4:
            v = rng.randbytes(rng.randrange(m.params.value_size + 1))
            if k not in ref and len(ref) >= m.capacity:
                with pytest.raises(CapacityError):
                    m[k] = v
            else:
                assert m.put(k, v) == ref.get(k)
                ref[k] = v
        elif u < 0.7:
            assert m.get(k) == ref.get(k)
        elif k in ref:
            del m[k]
            del ref[k]
        else:
            with pytest.raises(KeyError):
                del m[k]
        assert len(m) == len(ref)


@pytest.mark.parametrize("count_only", [False, True])
def test_behaves_like_a_dict(count_only):
    rng = random.Random(1)
    m = PathOramMap(24, key_size=8, value_size=12, seed=2, master_key=KEY,
                    count_only=count_only)
    ref = {}
    run_random_ops(m, ref, rng, 400, 32)
    assert sorted(m) == sorted(ref)
    assert dict(m.items()) == ref
    if count_only:
        check_avl(m)


class RotationSpy(PathOramMap):
    """Counts the ORAM accesses made by rebalancing (the siblings a delete must fetch)."""
    rotation_fetches = 0

    def _rebalance(self, zid, z):
        before = self._accesses
        result = super()._rebalance(zid, z)
        self.rotation_fetches += self._accesses - before
        return result


def test_tree_stays_balanced_under_adversarial_orders():
    # Ascending inserts, then deletes from the middle out: many rotations, including the
    # delete rotations that fetch siblings; any op beyond the padding raises.
    m = RotationSpy(300, key_size=4, value_size=4, seed=0, count_only=True)
    for i in range(300):
        m[i.to_bytes(4, "big")] = b"v"
        check_avl(m)
    assert m.height() == 9                      # ascending inserts give a near-perfect tree
    inserts_max = m.max_real_accesses
    assert inserts_max <= m.height()            # an insert fetches only its path
    assert m.rotation_fetches == 0              # ... its rotations move only path nodes
    order = sorted(range(300), key=lambda i: abs(i - 150))
    for n, i in enumerate(order[:250]):
        del m[i.to_bytes(4, "big")]
        if n % 10 == 0:
            check_avl(m)
    check_avl(m)
    assert m.rotation_fetches > 0               # deletes fetched siblings for rotations
    assert m.max_real_accesses <= m.accesses_per_op
    assert sorted(m) == [i.to_bytes(4, "big") for i in sorted(order[250:])]


def test_bulk_load_then_ops():
    items = {b"k%03d" % i: b"v%d" % i for i in range(100)}
    m = PathOramMap.from_items(items, 128, key_size=8, value_size=8, seed=3, master_key=KEY)
    assert len(m) == 100
    assert m[b"k042"] == b"v42"
    m[b"k042"] = b"new"
    del m[b"k000"]
    items[b"k042"] = b"new"
    del items[b"k000"]
    assert dict(m.items()) == items


def test_every_operation_has_the_same_trace_shape_and_formula_bytes():
    m = PathOramMap.from_items({b"a": b"1", b"b": b"2", b"c": b"3"}, 4, key_size=4,
                               value_size=8, seed=5, master_key=KEY)
    m.trace.clear()
    m[b"a"]                      # GET hit
    m.get(b"zz")                 # GET miss
    m[b"a"] = b"x"               # PUT update
    m[b"d"] = b"4"               # PUT insert (now full)
    with pytest.raises(CapacityError):
        m[b"e"] = b"5"           # PUT into a full map: the full trace, then the error
    del m[b"b"]                  # DELETE hit (rotations possible)
    with pytest.raises(KeyError):
        del m[b"q"]              # DELETE miss
    ops = m.trace.ops()
    assert len(ops) == 7
    shapes = {tuple((e.kind, e.length) for e in op) for op in ops}
    assert len(shapes) == 1
    (shape,) = shapes
    path = m.levels + 1
    # A accesses, each reads then writes one root-to-leaf path of whole buckets.
    assert len(shape) == m.accesses_per_op * 2 * path
    assert [k for k, _ in shape[:2 * path]] == ["read"] * path + ["write"] * path
    assert all(length == m.bucket_stride for _, length in shape)
    for op in ops:
        assert sum(e.length for e in op) == m.bytes_per_op
        # Each access's reads and writes cover the same path, root first.
        for a in range(m.accesses_per_op):
            acc = op[a * 2 * path:(a + 1) * 2 * path]
            reads = [e.address // m.bucket_stride for e in acc[:path]]
            assert reads == [e.address // m.bucket_stride for e in acc[path:]]
            assert reads[0] == 0
            assert all(b in (2 * a_ + 1, 2 * a_ + 2) for a_, b in zip(reads, reads[1:]))


def test_byte_formula():
    m = PathOramMap(1 << 10, key_size=16, value_size=64, count_only=True)
    assert m.levels == 10 and m.buckets == 2047
    assert m.id_bytes == 2 and m.leaf_bytes == 2
    # block: valid 1 + id 2 + leaf 2 + (klen 1 + key 16 + vlen 2 + value 64 + ids 4 + heights 2)
    assert m.block_bytes == 94
    assert m.bucket_stride == 448                      # 4*94 + 16 = 392 -> 7 beats
    assert m.max_height == avl_max_height(1024) == 14
    assert m.accesses_per_op == 40
    assert m.bytes_per_op == 40 * 2 * 11 * 448
    assert m.blocks_per_op == 40 * 2 * 11 * Z


def test_avl_max_height():
    assert [avl_max_height(n) for n in (1, 2, 3, 4, 6, 7, 11, 12)] == [1, 2, 2, 3, 3, 4, 4, 5]
    assert avl_max_height(2**20) == 28


def test_count_only_trace_equals_the_full_trace():
    rng = random.Random(9)
    items = {b"k%d" % i: b"v" for i in range(40)}
    full = PathOramMap.from_items(items, 64, key_size=6, value_size=6, seed=11, master_key=KEY)
    fast = PathOramMap.from_items(items, 64, key_size=6, value_size=6, seed=11,
                                  count_only=True)
    run_random_ops(full, dict(items), random.Random(4), 150, 80)
    run_random_ops(fast, dict(items), random.Random(4), 150, 80)
    assert full.trace == fast.trace
    assert full.trace.op_count == 151
    # Setup: every bucket written once, in ascending order.
    setup = full.trace.ops()[0]
    assert [e.address for e in setup] == [b * full.bucket_stride for b in range(full.buckets)]
    assert {e.kind for e in setup} == {"write"}
    del rng


def test_host_sees_only_ciphertext_and_tampering_is_detected():
    m = PathOramMap.from_items({b"secret-key": b"secret-value"}, 8, key_size=12,
                               value_size=16, seed=1, master_key=KEY)
    assert b"secret" not in m.host_memory.snapshot()
    m.host_memory[0] ^= 1          # flip a bit of the root bucket
    with pytest.raises(IntegrityError):
        m[b"secret-key"]


def test_input_checks_match_bolt_map():
    m = PathOramMap(8, key_size=4, value_size=4, count_only=True)
    with pytest.raises(KeySizeError):
        m[b"toolong"] = b"x"
    with pytest.raises(ValueTypeError):
        m[b"k"] = "not bytes"
    m["k"] = b"x"                  # str keys are UTF-8, as in bolt.Map
    assert m[b"k"] == b"x"
    assert m.trace.op_count == 3   # the empty Setup, then two operations; errors made none


def test_tree_stays_balanced_under_random_inserts_and_deletes():
    rng = random.Random(12)
    m = RotationSpy(1500, key_size=4, value_size=4, seed=1, count_only=True)
    keys = rng.sample(range(1 << 30), 1500)
    for i, k in enumerate(keys):
        m[k.to_bytes(4, "big")] = b"v"
        if i % 100 == 0:
            check_avl(m)
    rng.shuffle(keys)
    for i, k in enumerate(keys[:1400]):
        del m[k.to_bytes(4, "big")]
        if i % 50 == 0:
            check_avl(m)
    check_avl(m)
    assert m.rotation_fetches > 0
    assert sorted(m) == sorted(k.to_bytes(4, "big") for k in keys[1400:])
