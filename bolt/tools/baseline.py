"""The baseline a user would otherwise pick: an oblivious AVL tree over Path ORAM.

:class:`PathOramMap` has the interface of :class:`bolt.Map` (a ``MutableMapping`` of bytes keys
to bytes values with a recorded host :attr:`~PathOramMap.trace`), so the benchmark measures both
the same way.

Path ORAM (Stefanov et al., CCS 2013)
    A binary tree of ``2^L`` leaves, ``L = max(1, ceil(log2 N))``, whose ``2^(L+1) − 1``
    buckets each hold ``Z = 4`` blocks and live in untrusted host memory, bucket ``i`` (heap
    order: root 0, children ``2i+1``, ``2i+2``) at byte address ``i · bucket_stride``. Every
    ORAM access reads the ``L + 1`` buckets of one root-to-leaf path (root first) and then
    writes them back (root first), re-encrypted, after greedy eviction from the stash. The
    stash and the **position map** (block id → leaf) are held in trusted memory (HBM), like
    BOLT's index: no recursion, so the baseline pays no host bytes for its position map. This
    favours the baseline.

Blocks and buckets
    Block plaintext: ``valid (1) ‖ block id (id_bytes) ‖ leaf (leaf_bytes) ‖ AVL node``, the node
    being ``key length (1) ‖ key (key_size) ‖ value length (2) ‖ value (V) ‖ left id ‖ right id
    ‖ left height (1) ‖ right height (1)``; ids are 1..N (0 is "none") in the fewest whole bytes.
    A bucket is sealed as one AES-128-GCM message of its ``Z`` block plaintexts, nonce ``bucket
    index (4 BE) ‖ write counter (8 BE)`` (counters kept in trusted memory, as BOLT's are), then
    the 16-byte tag; ``bucket_stride`` is that rounded up to 64-byte beats, and every bucket
    read and write moves the whole stride, exactly as BOLT's pages do.

Oblivious AVL tree (Wang et al., "Oblivious Data Structures", CCS 2014)
    Each tree node is one ORAM block; the root id and the tree size are trusted registers. Each
    node stores its children's heights, so a rotation needs no read beyond the nodes it moves.
    An operation fetches the nodes it needs, each once (one ORAM access; the block stays pinned
    in the stash until the operation ends and is remapped to a fresh leaf), and is then padded
    with dummy accesses (a uniformly random path) to the same count for every operation::

        A = 3·h − 2,   h = the largest AVL height (in nodes) of a tree of N nodes

    since a search or insert fetches at most ``h`` nodes (the rotations of an insert only move
    nodes on its path) and a delete fetches at most ``h`` nodes down to the node it unlinks,
    then at most two more (the sibling and its inner child) for a rotation at each of the at
    most ``h − 1`` ancestors. Host bytes per operation are therefore exactly
    ``A · 2 · (L + 1) · bucket_stride`` for GET, PUT and DELETE, hit or miss.
    An AVL tree rather than a B+ tree: its nodes hold one item, and a B+ tree leaf of ``b``
    items makes every block (and every bucket on every path) ``b`` times bigger, which costs
    more bytes per operation than the AVL tree's deeper paths for any fan-out that keeps the
    tree shallow.

Count-only mode
    ``count_only=True`` keeps the nodes in trusted Python objects and the bucket contents
    nowhere, but draws the same leaves from the same generator and records the same trace
    events (addresses and lengths), so byte and block counts are exact; a test checks that
    its trace equals the full mode's. It has no host memory (``host_memory`` is None) and
    nothing is encrypted; use it for large N, where the full tree does not fit in memory.

Randomness: leaves come from ``random.SystemRandom`` (the OS) unless ``seed`` is given, in which
case from ``random.Random(seed)`` (reproducible; for tests and benchmarks only).
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Iterator, Mapping, MutableMapping

from ..errors import CapacityError, IntegrityError
from ..map import Map
from ..params import BEAT_BYTES, TAG_BYTES, Params
from ..trace import HostMemory, Trace

__all__ = ["PathOramMap", "avl_max_height"]

#: Blocks per bucket (Stefanov et al.'s recommended Z).
Z = 4
_NONCE_BYTES = 12


def avl_max_height(n: int) -> int:
    """Largest height (in nodes on a root-to-leaf path) of an AVL tree of at most ``n`` nodes.

    The fewest nodes of an AVL tree of height ``h`` are ``F(h+2) − 1`` (Fibonacci).
    """
    fewest = [0, 1]  # fewest nodes for heights 0, 1
    while True:
        nxt = fewest[-1] + fewest[-2] + 1
        if nxt > n:
            return len(fewest) - 1
        fewest.append(nxt)


def _nbytes(values: int) -> int:
    """Bytes needed to store the integers 0 .. values-1 (at least one)."""
    return max(1, ((values - 1).bit_length() + 7) // 8)


class _Node:
    __slots__ = ("key", "value", "left", "right", "lh", "rh")

    def __init__(self, key: bytes, value: bytes, left=0, right=0, lh=0, rh=0):
        self.key, self.value = key, value
        self.left, self.right, self.lh, self.rh = left, right, lh, rh

    @property
    def height(self) -> int:
        return 1 + max(self.lh, self.rh)


class PathOramMap(MutableMapping):
    """An oblivious map: an AVL tree over Path ORAM; see the module docstring.

    Parameters
    ----------
    capacity : int
        N, the most items (and ORAM blocks).
    key_size, value_size : int
        As for :class:`bolt.Map`.
    master_key : bytes, optional
        16-byte AES key for the buckets; drawn from the OS if omitted.
    seed : int, optional
        Seed for the leaf generator (reproducible runs); the OS generator if omitted.
    count_only : bool
        Record the exact trace without storing or encrypting buckets (large N).
    """

    # The same input checks (types, sizes, str keys as UTF-8) and errors as bolt.Map.
    _key = Map._key
    _value = Map._value

    def __init__(self, capacity: int = 65536, *, key_size: int = 16, value_size: int = 64,
                 master_key: bytes | None = None, seed: int | None = None,
                 count_only: bool = False):
        # Only capacity, key_size and value_size matter here; Params checks them.
        self.params = Params(capacity=capacity, key_size=key_size, value_size=value_size,
                             load=1, hbm_fraction=0.0)
        self.capacity = capacity
        self.levels = max(1, math.ceil(math.log2(capacity)))       # L
        self.leaves = 1 << self.levels
        self.buckets = 2 * self.leaves - 1
        self.id_bytes = _nbytes(capacity + 1)
        self.leaf_bytes = _nbytes(self.leaves)
        self.node_bytes = (1 + key_size + 2 + value_size + 2 * self.id_bytes + 2)
        self.block_bytes = 1 + self.id_bytes + self.leaf_bytes + self.node_bytes
        self.bucket_plaintext_bytes = Z * self.block_bytes
        self.bucket_stride = (-(-(self.bucket_plaintext_bytes + TAG_BYTES) // BEAT_BYTES)
                              * BEAT_BYTES)
        self.max_height = avl_max_height(capacity)
        self.accesses_per_op = 3 * self.max_height - 2                # A
        self.count_only = count_only
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()
        if count_only:
            self.trace = Trace()
            self.host_memory = None
        else:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
            if master_key is None:
                master_key = os.urandom(16)
            if not isinstance(master_key, (bytes, bytearray)) or len(master_key) != 16:
                raise ValueError("master_key must be 16 bytes")
            self._aead = AESGCM(bytes(master_key))
            self.host_memory = HostMemory(self.buckets * self.bucket_stride)
            self.trace = self.host_memory.trace
        self._reset()
        self.max_stash = 0              # most blocks ever in the stash (full mode)
        self.max_real_accesses = 0      # most ORAM accesses an operation needed before padding

    def _reset(self) -> None:
        self._pos = [0] * (self.capacity + 1)        # trusted position map: id -> leaf
        self._free = list(range(self.capacity, 0, -1))  # free ids, pop() gives the lowest
        self._root = 0
        self._size = 0
        self._nodes: dict[int, _Node] = {}            # count-only: every node; full: unused
        self._stash: dict[int, _Node] = {}             # full mode: id -> node
        self._counters = [0] * self.buckets if not self.count_only else None
        self._cache: dict[int, _Node] = {}             # nodes fetched by the current op
        self._ready = False                             # set by the first Setup

    @classmethod
    def from_items(cls, items: Mapping | Iterable[tuple], capacity: int = 65536,
                   **options) -> "PathOramMap":
        """A map bulk-loaded with ``items`` (see :meth:`load`)."""
        new = cls(capacity, **options)
        new.load(items)
        return new

    # -- derived figures ------------------------------------------------------------------------

    @property
    def bytes_per_access(self) -> int:
        """Host bytes of one ORAM access: L + 1 bucket reads and L + 1 bucket writes."""
        return 2 * (self.levels + 1) * self.bucket_stride

    @property
    def bytes_per_op(self) -> int:
        """Host bytes of every map operation: A ORAM accesses."""
        return self.accesses_per_op * self.bytes_per_access

    @property
    def blocks_per_op(self) -> int:
        """ORAM blocks moved (read or written) by every map operation."""
        return self.accesses_per_op * 2 * (self.levels + 1) * Z

    # -- Setup ----------------------------------------------------------------------------------

    def load(self, items: Mapping | Iterable[tuple]) -> None:
        """Replace the content by a bulk load: a perfectly balanced AVL tree of the items
        (the last of a repeated key wins), each node on a random leaf, placed in the deepest
        bucket of its path with room (the stash otherwise), then every bucket written once in
        ascending order. The trace is the same for every input of the same size parameters."""
        if isinstance(items, Mapping):
            items = items.items()
        table = dict((self._key(k), self._value(v)) for k, v in items)
        if len(table) > self.capacity:
            raise CapacityError(f"{len(table)} items exceed capacity {self.capacity}")
        keys = sorted(table)
        self._reset()
        self._ready = True
        self.trace.begin_op()
        nodes: dict[int, _Node] = {}
        next_id = iter(range(1, len(keys) + 1))

        def build(lo: int, hi: int) -> tuple[int, int]:
            if lo >= hi:
                return 0, 0
            mid = (lo + hi) // 2
            nid = next(next_id)
            node = _Node(keys[mid], table[keys[mid]])
            nodes[nid] = node
            node.left, node.lh = build(lo, mid)
            node.right, node.rh = build(mid + 1, hi)
            return nid, node.height

        self._root, _ = build(0, len(keys))
        self._size = len(keys)
        self._free = list(range(self.capacity, len(keys), -1))
        for nid in range(1, len(keys) + 1):
            self._pos[nid] = self._rng.getrandbits(self.levels)
        if self.count_only:
            self._nodes = nodes
            for bucket in range(self.buckets):
                self.trace.record("write", bucket * self.bucket_stride, self.bucket_stride)
            return
        contents: list[list[int]] = [[] for _ in range(self.buckets)]
        first_leaf = self.leaves - 1
        for nid in range(1, len(keys) + 1):
            bucket = first_leaf + self._pos[nid]
            while True:
                if len(contents[bucket]) < Z:
                    contents[bucket].append(nid)
                    break
                if bucket == 0:
                    self._stash[nid] = nodes[nid]
                    break
                bucket = (bucket - 1) // 2
        self.max_stash = max(self.max_stash, len(self._stash))
        for bucket in range(self.buckets):
            self._write_bucket(bucket, [(nid, nodes[nid]) for nid in contents[bucket]])

    # -- the ORAM ---------------------------------------------------------------------------------

    def _path(self, leaf: int) -> list[int]:
        """Buckets of the path to ``leaf``, root first."""
        bucket = self.leaves - 1 + leaf
        path = [bucket]
        while bucket:
            bucket = (bucket - 1) // 2
            path.append(bucket)
        path.reverse()
        return path

    def _encode(self, nid: int, node: _Node) -> bytes:
        ib = self.id_bytes
        return b"".join((
            b"\x01", nid.to_bytes(ib, "big"), self._pos[nid].to_bytes(self.leaf_bytes, "big"),
            len(node.key).to_bytes(1, "big"), node.key.ljust(self.params.key_size, b"\0"),
            len(node.value).to_bytes(2, "big"),
            node.value.ljust(self.params.value_size, b"\0"),
            node.left.to_bytes(ib, "big"), node.right.to_bytes(ib, "big"),
            bytes((node.lh, node.rh))))

    def _decode(self, block: bytes) -> tuple[int, _Node]:
        ib, ks, vs = self.id_bytes, self.params.key_size, self.params.value_size
        at = 1
        nid = int.from_bytes(block[at:at + ib], "big")
        at += ib + self.leaf_bytes
        klen = block[at]
        key = block[at + 1:at + 1 + klen]
        at += 1 + ks
        vlen = int.from_bytes(block[at:at + 2], "big")
        value = block[at + 2:at + 2 + vlen]
        at += 2 + vs
        left = int.from_bytes(block[at:at + ib], "big")
        right = int.from_bytes(block[at + ib:at + 2 * ib], "big")
        at += 2 * ib
        return nid, _Node(key, value, left, right, block[at], block[at + 1])

    def _write_bucket(self, bucket: int, blocks: list[tuple[int, _Node]]) -> None:
        plain = b"".join(self._encode(nid, node) for nid, node in blocks)
        plain += bytes(self.bucket_plaintext_bytes - len(plain))
        self._counters[bucket] += 1
        nonce = bucket.to_bytes(4, "big") + self._counters[bucket].to_bytes(8, "big")
        sealed = self._aead.encrypt(nonce, plain, None)
        self.host_memory.write(bucket * self.bucket_stride,
                               sealed + bytes(self.bucket_stride - len(sealed)))

    def _read_bucket(self, bucket: int) -> None:
        """Read, verify and decrypt one bucket; its real blocks join the stash."""
        from cryptography.exceptions import InvalidTag
        data = self.host_memory.read(bucket * self.bucket_stride, self.bucket_stride)
        nonce = bucket.to_bytes(4, "big") + self._counters[bucket].to_bytes(8, "big")
        try:
            plain = self._aead.decrypt(nonce, data[:self.bucket_plaintext_bytes + TAG_BYTES],
                                       None)
        except InvalidTag:
            raise IntegrityError(bucket, f"ORAM bucket {bucket} failed verification") from None
        bb = self.block_bytes
        for at in range(0, len(plain), bb):
            if plain[at]:
                nid, node = self._decode(plain[at:at + bb])
                self._stash[nid] = node

    def _access_path(self, leaf: int) -> None:
        """Read the path to ``leaf`` into the stash and write it back with greedy eviction of
        every stash block not pinned by the current operation."""
        path = self._path(leaf)
        stride = self.bucket_stride
        if self.count_only:
            for bucket in path:
                self.trace.record("read", bucket * stride, stride)
            for bucket in path:
                self.trace.record("write", bucket * stride, stride)
            return
        for bucket in path:
            self._read_bucket(bucket)
        self.max_stash = max(self.max_stash, len(self._stash))
        # Greedy eviction: a block may go to any bucket at or above its deepest common level.
        levels = self.levels
        by_depth: list[list[int]] = [[] for _ in range(levels + 1)]
        for nid in self._stash:
            if nid in self._cache:
                continue
            common = levels - (self._pos[nid] ^ leaf).bit_length()
            by_depth[common].append(nid)
        placed: list[list[int]] = [[] for _ in range(levels + 1)]
        waiting: list[int] = []
        for depth in range(levels, -1, -1):
            waiting.extend(by_depth[depth])
            take = min(Z, len(waiting))
            if take:
                placed[depth] = waiting[-take:]
                del waiting[-take:]
        for depth, bucket in enumerate(path):
            self._write_bucket(bucket, [(nid, self._stash.pop(nid)) for nid in placed[depth]])

    def _fetch(self, nid: int) -> _Node:
        """The node ``nid``, fetched by one ORAM access unless this op already has it."""
        node = self._cache.get(nid)
        if node is not None:
            return node
        self._accesses += 1
        leaf = self._pos[nid]
        self._pos[nid] = self._rng.getrandbits(self.levels)   # remap before the write-back
        if self.count_only:
            node = self._nodes[nid]
            self._cache[nid] = node
            self._access_path(leaf)
        else:
            self._cache[nid] = None   # pin: not evicted by this write-back
            self._access_path(leaf)
            node = self._stash[nid]
            self._cache[nid] = node
        return node

    def _new_node(self, key: bytes, value: bytes) -> int:
        nid = self._free.pop()
        node = _Node(key, value)
        self._pos[nid] = self._rng.getrandbits(self.levels)
        self._cache[nid] = node
        if self.count_only:
            self._nodes[nid] = node
        else:
            self._stash[nid] = node
        return nid

    def _free_node(self, nid: int) -> None:
        self._cache.pop(nid, None)
        if self.count_only:
            del self._nodes[nid]
        else:
            del self._stash[nid]
        self._free.append(nid)

    def _begin(self) -> None:
        if not self._ready:
            self.load(())     # an empty Setup writes (and seals) every bucket once
        self.trace.begin_op()
        self._accesses = 0
        self._cache.clear()

    def _end(self) -> None:
        """Pad with dummy accesses to A, then release the op's nodes to eviction."""
        if self._accesses > self.accesses_per_op:
            raise AssertionError(f"an operation made {self._accesses} ORAM accesses, more than "
                                 f"the padding bound {self.accesses_per_op}")
        self.max_real_accesses = max(self.max_real_accesses, self._accesses)
        dummies = self.accesses_per_op - self._accesses
        self._cache.clear()
        for _ in range(dummies):
            self._access_path(self._rng.getrandbits(self.levels))

    # -- the AVL tree -----------------------------------------------------------------------------

    def _descend(self, key: bytes) -> tuple[list[tuple[int, _Node, bool]], int, _Node | None]:
        """Path of (id, node, went_left) from the root to where ``key`` is or would be."""
        path = []
        nid = self._root
        while nid:
            node = self._fetch(nid)
            if key == node.key:
                return path, nid, node
            left = key < node.key
            path.append((nid, node, left))
            nid = node.left if left else node.right
        return path, 0, None

    def _rebalance(self, zid: int, z: _Node) -> tuple[int, int]:
        """Restore the AVL balance at ``z``; return the subtree's new root and height."""
        bf = z.lh - z.rh
        if bf > 1:
            yid = z.left
            y = self._fetch(yid)
            if y.lh >= y.rh:                         # left-left: rotate right at z
                z.left, z.lh = y.right, y.rh
                y.right, y.rh = zid, z.height
                return yid, y.height
            xid = y.right                            # left-right
            x = self._fetch(xid)
            y.right, y.rh = x.left, x.lh
            z.left, z.lh = x.right, x.rh
            x.left, x.lh = yid, y.height
            x.right, x.rh = zid, z.height
            return xid, x.height
        if bf < -1:
            yid = z.right
            y = self._fetch(yid)
            if y.rh >= y.lh:                         # right-right: rotate left at z
                z.right, z.rh = y.left, y.lh
                y.left, y.lh = zid, z.height
                return yid, y.height
            xid = y.left                             # right-left
            x = self._fetch(xid)
            y.left, y.lh = x.right, x.rh
            z.right, z.rh = x.left, x.lh
            x.right, x.rh = yid, y.height
            x.left, x.lh = zid, z.height
            return xid, x.height
        return zid, z.height

    def _fix_up(self, path, child: int, height: int) -> None:
        for nid, node, left in reversed(path):
            if left:
                node.left, node.lh = child, height
            else:
                node.right, node.rh = child, height
            child, height = self._rebalance(nid, node)
        self._root = child

    def _put(self, key: bytes, value: bytes) -> bytes | None:
        path, nid, node = self._descend(key)
        if node is not None:
            old, node.value = node.value, value
            return old
        if self._size >= self.capacity:
            raise CapacityError(f"the map is full; {key!r} was not stored")
        self._fix_up(path, self._new_node(key, value), 1)
        self._size += 1
        return None

    def _delete(self, key: bytes) -> bytes | None:
        path, nid, node = self._descend(key)
        if node is None:
            return None
        old = node.value
        if node.left and node.right:                 # unlink the successor instead
            path.append((nid, node, False))
            sid = node.right
            succ = self._fetch(sid)
            while succ.left:
                path.append((sid, succ, True))
                sid = succ.left
                succ = self._fetch(sid)
            node.key, node.value = succ.key, succ.value
            nid, node = sid, succ
        child, height = (node.left, node.lh) if node.left else (node.right, node.rh)
        self._free_node(nid)
        self._fix_up(path, child, height)
        self._size -= 1
        return old

    def _op(self, function, *args):
        """Run one padded operation; an outcome error is raised only after the padding."""
        self._begin()
        error = None
        try:
            result = function(*args)
        except CapacityError as e:
            result, error = None, e
        self._end()
        if error is not None:
            raise error
        return result

    # -- MutableMapping ---------------------------------------------------------------------------

    def __getitem__(self, key) -> bytes:
        key = self._key(key)
        node = self._op(lambda k: self._descend(k)[2], key)
        if node is None:
            raise KeyError(key)
        return node.value

    def __setitem__(self, key, value) -> None:
        self._op(self._put, self._key(key), self._value(value))

    def put(self, key, value) -> bytes | None:
        """Store ``value``; return the old value or None (one operation)."""
        return self._op(self._put, self._key(key), self._value(value))

    def __delitem__(self, key) -> None:
        key = self._key(key)
        if self._op(self._delete, key) is None:
            raise KeyError(key)

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        """Keys in sorted order, by an in-order walk that fetches every node once (one
        operation of ``len(self)`` ORAM accesses, unpadded: iteration reveals only the size)."""
        self._begin()
        keys = []
        stack, nid = [], self._root
        while stack or nid:
            while nid:
                node = self._fetch(nid)
                self._cache.pop(nid)   # read only: free to be evicted again
                stack.append(node)
                nid = node.left
            node = stack.pop()
            keys.append(node.key)
            nid = node.right
        return iter(keys)

    def height(self) -> int:
        """Height of the tree (trusted bookkeeping, for tests; no ORAM access)."""
        nodes = self._nodes if self.count_only else None
        if nodes is None:
            raise NotImplementedError("height() is for count-only maps")
        return nodes[self._root].height if self._root else 0

    def __repr__(self) -> str:
        return (f"<PathOramMap {self._size}/{self.capacity} items, L={self.levels}, "
                f"A={self.accesses_per_op}{', count-only' if self.count_only else ''}>")
