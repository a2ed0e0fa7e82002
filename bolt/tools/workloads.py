"""Workload generators: reproducible streams of (op, key, value) for a given map.

A :class:`Workload` is the content to bulk-load by Setup (``preload``) and a generator of
exactly ``length`` operations ``(Op, key, value-or-None)``. Every workload starts from the same
half-full map (keys ``0 .. N/2 - 1`` present), so hits and misses mean something and two
workloads differ only in their operations. The leakage audit (``bolt.tools.audit``), the benchmarks
and ``bolt demo`` all draw from here.

Key ``i`` is the big-endian integer ``i`` on ``min(key_size, 8)`` bytes; values are short
(their bytes never reach the trace). All randomness comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ..params import Params
from ..protocol import Op

__all__ = ["Workload", "WORKLOADS", "make_workload", "key_bytes", "present_count"]

OpTuple = tuple[Op, bytes, bytes | None]


def key_bytes(params: Params, i: int) -> bytes:
    """The key with id ``i``."""
    return int(i).to_bytes(min(params.key_size, 8), "big")


def present_count(params: Params) -> int:
    """Items bulk-loaded before every workload: half the capacity."""
    return params.capacity // 2


def _value(params: Params, i: int) -> bytes:
    return int(i % 2**32).to_bytes(4, "big")[: params.value_size]


@dataclass
class Workload:
    """A named, reproducible workload: what Setup loads, then ``length`` operations."""

    name: str
    description: str
    params: Params
    length: int
    seed: int
    _generate: Callable[[Params, int, np.random.Generator], Iterator[OpTuple]]
    #: Ground truth per op, for measurements (never shown to the adversary): filled as ops run.
    #: 1 if op t has the same key as op t-1.
    same_key_as_previous: list[bool] | None = None

    @property
    def preload(self) -> list[tuple[bytes, bytes]]:
        p = self.params
        return [(key_bytes(p, i), _value(p, i)) for i in range(present_count(p))]

    def ops(self) -> Iterator[OpTuple]:
        rng = np.random.default_rng(self.seed)
        previous = None
        same = self.same_key_as_previous = []
        count = 0
        for op in self._generate(self.params, self.length, rng):
            same.append(op[1] == previous)
            previous = op[1]
            yield op
            count += 1
        assert count == self.length, f"workload {self.name} yielded {count} != {self.length}"

    def __iter__(self) -> Iterator[OpTuple]:
        return self.ops()


# -- the generators ---------------------------------------------------------------------------
# Each takes (params, length, rng) and yields exactly `length` operations.

def _distinct_stream(rng: np.random.Generator, low: int, high: int, length: int):
    """Uniform ids in [low, high), each different from the one before (when high - low > 1)."""
    ids = rng.integers(low, high, size=length)
    if high - low > 1:
        for t in range(1, length):
            while ids[t] == ids[t - 1]:
                ids[t] = rng.integers(low, high)
    return ids


def _uniform(p, length, rng):
    """GET, PUT or DELETE (1/3 each) of a uniform key from a universe of N ids (half present):
    hits, misses, inserts and deletes; the item count stays near N/2."""
    ops = rng.integers(0, 3, size=length)
    ids = rng.integers(0, p.capacity, size=length)
    for t in range(length):
        op = Op(int(ops[t]))
        yield op, key_bytes(p, ids[t]), _value(p, t) if op == Op.PUT else None


def _hot_key(p, length, rng):
    """GET of one present key, over and over."""
    key = key_bytes(p, 0)
    for _ in range(length):
        yield Op.GET, key, None


def _scan(p, length, rng):
    """GET of the present keys in order 0, 1, 2, ..., N/2 - 1, then again."""
    n = present_count(p)
    for t in range(length):
        yield Op.GET, key_bytes(p, t % n), None


def _get_hits(p, length, rng):
    """GET of a uniform present key, never the key of the op before (all hits, distinct)."""
    for i in _distinct_stream(rng, 0, present_count(p), length):
        yield Op.GET, key_bytes(p, i), None


def _put_hits(p, length, rng):
    """PUT (update) of a uniform present key, never the key of the op before."""
    for t, i in enumerate(_distinct_stream(rng, 0, present_count(p), length)):
        yield Op.PUT, key_bytes(p, i), _value(p, t)


def _get_misses(p, length, rng):
    """GET of keys that are never present (all misses)."""
    n = present_count(p)
    for i in _distinct_stream(rng, p.capacity, p.capacity + 4 * max(n, 1), length):
        yield Op.GET, key_bytes(p, i), None


def _deletes(p, length, rng):
    """DELETE of a uniform present key, then PUT of a fresh key (an insert), alternately:
    half the ops are deletes and the item count stays N/2."""
    present = list(range(present_count(p)))
    fresh = 2 * p.capacity
    for t in range(length):
        if t % 2 == 0:
            j = int(rng.integers(0, len(present)))
            present[j], present[-1] = present[-1], present[j]
            yield Op.DELETE, key_bytes(p, present.pop()), None
        else:
            present.append(fresh)
            fresh += 1
            yield Op.PUT, key_bytes(p, present[-1]), _value(p, t)


def _same_key_twice(p, length, rng):
    """GET k, GET k, GET k', GET k', ...: every present key twice in a row (algorithm §8)."""
    ids = _distinct_stream(rng, 0, present_count(p), (length + 1) // 2)
    for t in range(length):
        yield Op.GET, key_bytes(p, ids[t // 2]), None


#: name -> (generator, one-line description)
WORKLOADS: dict[str, tuple[Callable, str]] = {
    "uniform": (_uniform, "GET/PUT/DELETE of uniform keys, half present"),
    "hot_key": (_hot_key, "GET of one present key repeated"),
    "scan": (_scan, "GET of every present key in order, cyclically"),
    "get_hits": (_get_hits, "GET of uniform present keys (all hits, distinct consecutive)"),
    "put_hits": (_put_hits, "PUT updating uniform present keys (distinct consecutive)"),
    "get_misses": (_get_misses, "GET of absent keys (all misses)"),
    "deletes": (_deletes, "DELETE a present key / PUT a new key, alternately"),
    "same_key_twice": (_same_key_twice, "GET of each present key twice in a row"),
}


def make_workload(name: str, params: Params, length: int, seed: int = 0) -> Workload:
    """The workload ``name`` (a key of :data:`WORKLOADS`) of ``length`` operations."""
    try:
        generate, description = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; choose from {sorted(WORKLOADS)}") from None
    if params.capacity < 8:
        raise ValueError("workloads need a capacity of at least 8")
    return Workload(name, description, params, int(length), int(seed), generate)
