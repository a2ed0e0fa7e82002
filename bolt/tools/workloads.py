"""Workloads: reproducible streams of operations on a map, as arrays.

A :class:`Workload` is what Setup loads (``setup_ids``) and ``length`` operations
(``op_codes[t]``, ``key_ids[t]``), all as numpy arrays, so the audit's trace engine can run
millions of them; :meth:`Workload.ops` and :attr:`Workload.preload` give the same operations as
bytes for a real backend (the model, the RTL, ``bolt.Map``). Unless its description says
otherwise, a workload starts from a half-full map (N/2 keys present, a universe of N ids), so
hits and misses mean something and two workloads differ only in their operations. The audit,
the benchmarks, ``bolt demo`` and ``bolt sim`` all draw from here.

Keys: key id ``i`` is a number and a length; by default the number is ``i`` and the length
``min(key_size, 8)`` bytes (big-endian). Workloads that vary key lengths give every id its own
length (0 to ``key_size``) and a number unique among the keys of that length. Values: the
op's index, repeated to the value's length (4 bytes unless the workload varies it, 0 to V).
All randomness comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..protocol import Op
from ..params import Params

__all__ = ["Workload", "WORKLOADS", "make_workload", "key_bytes", "present_count",
           "value_bytes", "DEFAULT_VALUE_BYTES"]

OpTuple = tuple[Op, bytes, bytes | None]
#: Value length of workloads that do not vary it.
DEFAULT_VALUE_BYTES = 4
_GET, _PUT, _DELETE = int(Op.GET), int(Op.PUT), int(Op.DELETE)


def key_bytes(params: Params, i: int, length: int | None = None) -> bytes:
    """The key numbered ``i`` on ``length`` bytes (default ``min(key_size, 8)``)."""
    return int(i).to_bytes(min(params.key_size, 8) if length is None else int(length), "big")


def value_bytes(params: Params, t: int, length: int = DEFAULT_VALUE_BYTES) -> bytes:
    """The value written by op ``t``: its index (4 bytes BE) repeated to ``length`` bytes."""
    length = min(int(length), params.value_size)
    word = int(t % 2**32).to_bytes(4, "big")
    return (word * (length // 4 + 1))[:length]


def present_count(params: Params) -> int:
    """Items bulk-loaded before most workloads: half the capacity."""
    return params.capacity // 2


@dataclass
class Workload:
    """A named, reproducible workload; every array has one entry per op (or per Setup item)."""

    name: str
    description: str
    params: Params
    length: int
    seed: int
    setup_ids: np.ndarray                  #: key ids Setup loads, in input order
    op_codes: np.ndarray                   #: int8 :class:`Op` codes
    key_ids: np.ndarray                    #: int64 key ids
    universe: int                          #: key ids are below this
    value_lengths: np.ndarray | None = None   #: per op (PUTs only), default 4 bytes
    setup_value_lengths: np.ndarray | None = None
    key_lengths: np.ndarray | None = None     #: per key id; None: min(key_size, 8)
    key_numbers: np.ndarray | None = None     #: per key id; None: the id itself
    #: Ground truth the adversary never sees: per op, 1 if its key is the key of op t - gap
    #: (re-access workloads), else 0; -1 where undefined.
    labels: np.ndarray | None = field(default=None, repr=False)

    def key(self, i: int) -> bytes:
        if self.key_lengths is None:
            return key_bytes(self.params, i)
        return key_bytes(self.params, self.key_numbers[i], self.key_lengths[i])

    def value(self, t: int, lengths: np.ndarray | None) -> bytes:
        return value_bytes(self.params, t, DEFAULT_VALUE_BYTES if lengths is None
                           else lengths[t])

    @property
    def preload(self) -> list[tuple[bytes, bytes]]:
        return [(self.key(i), self.value(n, self.setup_value_lengths))
                for n, i in enumerate(self.setup_ids.tolist())]

    def ops(self) -> Iterator[OpTuple]:
        for t, (op, i) in enumerate(zip(self.op_codes.tolist(), self.key_ids.tolist())):
            op = Op(op)
            yield op, self.key(i), self.value(t, self.value_lengths) if op == Op.PUT else None

    def __iter__(self) -> Iterator[OpTuple]:
        return self.ops()

    @property
    def same_key_as_previous(self) -> np.ndarray:
        same = np.zeros(self.length, bool)
        same[1:] = self.key_ids[1:] == self.key_ids[:-1]
        return same


# -- the generators -----------------------------------------------------------------------------
# Each takes (params, length, rng) and returns a dict of Workload fields (arrays of `length`).

def _distinct_stream(rng: np.random.Generator, low: int, high: int, length: int) -> np.ndarray:
    """Uniform ids in [low, high), each different from the one before (when high - low > 1)."""
    ids = rng.integers(low, high, size=length)
    if high - low > 1 and length > 1:
        # Shifting a repeat by a uniform nonzero offset keeps it uniform over the others.
        repeats = np.flatnonzero(ids[1:] == ids[:-1]) + 1
        while len(repeats):
            ids[repeats] = low + (ids[repeats] - low
                                  + rng.integers(1, high - low, len(repeats))) % (high - low)
            repeats = np.flatnonzero(ids[1:] == ids[:-1]) + 1
    return ids


def _half_full(p: Params, ops, keys, **extra):
    return dict(setup_ids=np.arange(present_count(p)), op_codes=np.asarray(ops, np.int8),
                key_ids=np.asarray(keys, np.int64), universe=p.capacity, **extra)


def _uniform(p, length, rng):
    """GET, PUT or DELETE (1/3 each) of a uniform key from a universe of N ids (half present):
    hits, misses, inserts and deletes; the item count stays near N/2."""
    return _half_full(p, rng.integers(0, 3, length), rng.integers(0, p.capacity, length))


def _hot_key(p, length, rng):
    """GET of one present key, over and over."""
    return _half_full(p, np.full(length, _GET), np.zeros(length))


def _scan(p, length, rng):
    """GET of the present keys in order 0, 1, 2, ..., N/2 - 1, then again (sequential)."""
    return _half_full(p, np.full(length, _GET), np.arange(length) % present_count(p))


def _zipf(p, length, rng):
    """GET (2/3) or PUT (1/3) of present keys by a Zipf law (exponent 1.2 over a random
    ranking): a few hot keys, a long tail."""
    n = present_count(p)
    weights = 1.0 / np.arange(1, n + 1) ** 1.2
    ranked = rng.permutation(n)
    keys = ranked[rng.choice(n, size=length, p=weights / weights.sum())]
    return _half_full(p, np.where(rng.random(length) < 2 / 3, _GET, _PUT), keys)


def _get_hits(p, length, rng):
    """GET of a uniform present key, never the key of the op before (all hits, distinct)."""
    return _half_full(p, np.full(length, _GET), _distinct_stream(rng, 0, present_count(p),
                                                                   length))


def _put_hits(p, length, rng):
    """PUT (update) of a uniform present key, never the key of the op before."""
    return _half_full(p, np.full(length, _PUT), _distinct_stream(rng, 0, present_count(p),
                                                                   length))


def _get_misses(p, length, rng):
    """GET of keys that are never present (misses only)."""
    n = present_count(p)
    keys = _distinct_stream(rng, n, p.capacity, length)
    return _half_full(p, np.full(length, _GET), keys)


def _deletes_only(p, length, rng):
    """DELETE only: uniform over the keys loaded by Setup, so hits until a key is gone,
    misses after."""
    return _half_full(p, np.full(length, _DELETE), rng.integers(0, present_count(p), length))


def _delete_insert(p, length, rng):
    """DELETE a present key, then PUT a fresh key (an insert), alternately: the item count
    stays N/2."""
    n = present_count(p)
    present = list(range(n))
    ops = np.where(np.arange(length) % 2 == 0, _DELETE, _PUT)
    keys = np.empty(length, np.int64)
    picks = rng.integers(0, 2**62, length)
    fresh = n
    for t in range(length):
        if t % 2 == 0:
            j = int(picks[t] % len(present))
            present[j], present[-1] = present[-1], present[j]
            keys[t] = present.pop()
        else:
            present.append(fresh)
            keys[t] = fresh
            fresh += 1
    return dict(setup_ids=np.arange(n), op_codes=ops.astype(np.int8), key_ids=keys,
                universe=fresh)


def _churn(p, length, rng):
    """PUT a fresh key, GET it, DELETE it, then the next fresh key: insert, read, delete."""
    n = present_count(p)
    step = np.arange(length)
    ops = np.choose(step % 3, [_PUT, _GET, _DELETE]).astype(np.int8)
    keys = n + step // 3
    return dict(setup_ids=np.arange(n), op_codes=ops, key_ids=keys,
                universe=int(n + length // 3 + 1))


def _same_key_twice(p, length, rng):
    """GET k, GET k, GET k', GET k', ...: every present key twice in a row (algorithm §8)."""
    ids = _distinct_stream(rng, 0, present_count(p), (length + 1) // 2)
    return _half_full(p, np.full(length, _GET), np.repeat(ids, 2)[:length])


def _reaccess(p, length, rng, gap: int = 1):
    """GET of present keys; each op, with probability 1/2, re-accesses the key of op t - gap
    (label 1), else a uniform present key other than that one (label 0)."""
    n = present_count(p)
    keys = _distinct_stream(rng, 0, n, length)
    labels = np.full(length, -1, np.int8)
    again = rng.random(length) < 0.5
    for t in range(gap, length):
        if again[t]:
            keys[t] = keys[t - gap]
        elif keys[t] == keys[t - gap]:
            keys[t] = (keys[t] + rng.integers(1, n)) % n
        labels[t] = again[t]
    return _half_full(p, np.full(length, _GET), keys, labels=labels)


def _mixed_lengths(p: Params, count: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Lengths 0..key_size, as evenly as each length's key space allows (one key of length 0,
    at most 256 of length 1, ...; the longest length takes the rest), and numbers unique
    within a length, for ``count`` distinct keys in random order."""
    rooms = [256 ** length for length in range(p.key_size + 1)]
    even = -(-count // len(rooms))
    per_length = [min(room, even) for room in rooms]
    per_length[-1] += count - sum(per_length)
    for length in range(len(rooms) - 1, -1, -1):   # fewer keys than lengths: trim the longest
        if per_length[length] < 0:
            per_length[length - 1] += per_length[length]
            per_length[length] = 0
    lengths, numbers = [], []
    for length, (room, take) in enumerate(zip(rooms, per_length)):
        lengths += [length] * take
        numbers += (rng.choice(room, size=take, replace=False).tolist() if room < 2**62
                    else list(range(take)))
    order = rng.permutation(count)
    return np.asarray(lengths)[order], np.asarray(numbers, dtype=object)[order]


def _key_lengths(p, length, rng):
    """GET or PUT (1/2 each) of uniform keys whose lengths run from 0 to key_size bytes (Setup
    loads half of them, so hits and misses; values 4 bytes)."""
    lengths, numbers = _mixed_lengths(p, p.capacity, rng)
    return dict(setup_ids=np.arange(present_count(p)),
                op_codes=np.where(rng.random(length) < 0.5, _GET, _PUT).astype(np.int8),
                key_ids=rng.integers(0, p.capacity, length), universe=p.capacity,
                key_lengths=lengths, key_numbers=numbers)


def _edge_lengths(rng, maximum: int, count: int) -> np.ndarray:
    """Lengths 0..maximum: 0 and the maximum a quarter of the time each (the edges, where a
    length-dependent shortcut would sit), uniform otherwise."""
    lengths = rng.integers(0, maximum + 1, count)
    edge = rng.random(count)
    return np.where(edge < 0.25, 0, np.where(edge < 0.5, maximum, lengths))


def _value_lengths(p, length, rng):
    """PUT of a uniform present key with a value of 0 to V bytes (the edges often), then GET
    of a uniform present key, alternately (Setup's values vary from 0 to V bytes too)."""
    n = present_count(p)
    return dict(setup_ids=np.arange(n),
                op_codes=np.where(np.arange(length) % 2 == 0, _PUT, _GET).astype(np.int8),
                key_ids=rng.integers(0, n, length), universe=p.capacity,
                value_lengths=_edge_lengths(rng, p.value_size, length),
                setup_value_lengths=_edge_lengths(rng, p.value_size, n))


@dataclass(frozen=True)
class WorkloadKind:
    generate: Callable
    description: str


#: name -> generator and one-line description.
WORKLOADS: dict[str, WorkloadKind] = {name: WorkloadKind(f, f.__doc__.split("\n")[0])
                                      for name, f in {
    "uniform": _uniform,
    "hot_key": _hot_key,
    "scan": _scan,
    "zipf": _zipf,
    "get_hits": _get_hits,
    "put_hits": _put_hits,
    "get_misses": _get_misses,
    "deletes_only": _deletes_only,
    "delete_insert": _delete_insert,
    "churn": _churn,
    "same_key_twice": _same_key_twice,
    "reaccess": _reaccess,
    "key_lengths": _key_lengths,
    "value_lengths": _value_lengths,
}.items()}


def make_workload(name: str, params: Params, length: int, seed: int = 0, **options) -> Workload:
    """The workload ``name`` (a key of :data:`WORKLOADS`) of ``length`` operations;
    ``options`` go to its generator (``gap=`` for ``reaccess``)."""
    try:
        kind = WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; choose from {sorted(WORKLOADS)}") from None
    if params.capacity < 8:
        raise ValueError("workloads need a capacity of at least 8")
    length = int(length)
    fields = kind.generate(params, length, np.random.default_rng(seed), **options)
    return Workload(name, kind.description, params, length, int(seed), **fields)
