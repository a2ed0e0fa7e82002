"""A trace-only engine of the reference design, compiled with numba, for large audit samples.

It follows the reference model (:class:`bolt.model.ReferenceAccelerator`) step for step where
the host trace depends on it: the same DRBG stream (algorithm §6, the AES-CTR words of the
same DRBG key), Setup's two-choice placement, and per access the draws ``r, y, c1, c2``, the
lookup, the touches of x then y, the eviction-buffer flushes, the bound checks (a full bin, no
free frame) and the re-placement. It keeps no keys' bytes, values, pages or crypto: a key is an
integer id, and per bin only its load and its pending count. ``tests/tools`` checks that its
pages equal the full model's trace on the same inputs, so it stands in for the model wherever
the audit needs millions of accesses (about 10^7 at N = 2^16 in a minute on one core).

The re-placement is one step, :func:`_replace`, fed by one draw step, :func:`_access_draws`;
the trusted-pool placement (``Params(placement="pool")``, algorithm §13) is a second branch of
both: the extra draw ``s = U(P)`` and :func:`_enter_pool`, which swaps within the pool or
re-places the holder it displaces.

Output per access: the host pages touched, in trace order (x's page then y's; -1 for none), and
the status the model would answer (ABSENT, FOUND, FULL or BOUND). The events of an access are
the reads of those pages then their writes, in the same order (algorithm §12): the pages say
it all, and :func:`bolt.trace.access_pages` reads them back out of a recorded trace.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..crypto import Drbg, derive_subkeys, uniform_mask
from ..errors import BoundExceededError
from ..params import Params
from ..protocol import Op, Status

__all__ = ["TraceEngine", "EngineRun", "NO_PAGE"]

#: Page entry of an op that touched fewer than two pages.
NO_PAGE = -1
#: DRBG words kept in hand before each access: an access draws at least four samples, and
#: needing more than this many words (each U(n) word accepted with probability > 1/2) has a
#: probability below 1e-14; if it happens the access is simply retried on fresh words.
_WORD_MARGIN = 64
#: Words generated per refill.
_CHUNK_WORDS = 1 << 22

_GET, _PUT, _DELETE = int(Op.GET), int(Op.PUT), int(Op.DELETE)
_ABSENT, _FOUND, _FULL, _BOUND = (int(Status.ABSENT), int(Status.FOUND), int(Status.FULL),
                                  int(Status.BOUND))


@njit(cache=True, inline="always")
def _uniform(words, pos, n, mask):
    # U(n) of algorithm §6; -1 when the words ran out.
    while pos < words.shape[0]:
        w = words[pos] & mask
        pos += 1
        if w < n:
            return w, pos
    return -1, pos


@njit(cache=True, inline="always")
def _two_choices(words, pos, m, mask):
    c1, pos = _uniform(words, pos, m, mask)
    c2, pos = _uniform(words, pos, m, mask)
    while c2 == c1 and c2 >= 0:
        c2, pos = _uniform(words, pos, m, mask)
    return c1, c2, pos


@njit(cache=True, nogil=True)
def _setup_kernel(words, pos, first, keys, m, mask, slots, load, item_bin, item_epoch):
    """Place items ``first..``; returns (next item, word position, crossed bound)."""
    for i in range(first, keys.shape[0]):
        start = pos
        c1, c2, pos = _two_choices(words, pos, m, mask)
        if c1 < 0 or c2 < 0:
            return i, start, False
        nb = c1 if load[c1] <= load[c2] else c2
        if load[nb] >= slots:
            return i, pos, True
        load[nb] += 1
        item_bin[keys[i]] = nb
        item_epoch[keys[i]] = -1          # stored in its page (or an HBM frame)
    return keys.shape[0], pos, False


@njit(cache=True, inline="always")
def _access_draws(words, pos, m, mask, pool_size, pool_mask):
    # Step 1 of algorithm §3: r, y, c1, c2, every access, in this order; with the pool
    # (algorithm §13) s = U(P) after them (-1 without one).
    r, pos = _uniform(words, pos, m, mask)
    y, pos = _uniform(words, pos, m, mask)
    c1, c2, pos = _two_choices(words, pos, m, mask)
    s = -1
    if pool_size > 0:
        s, pos = _uniform(words, pos, pool_size, pool_mask)
        if s < 0:
            c2 = -1          # out of words: the caller retries the access
    return r, y, c1, c2, s, pos


@njit(cache=True, inline="always")
def _is_pending(key, b, k, item_epoch, epoch):
    return b >= k and item_epoch[key] == epoch[b]


@njit(cache=True, inline="always")
def _replace(key, c1, c2, k, load, pend, epoch, item_bin, item_epoch):
    # Step 6: two-choice re-placement (HBM frame, or pending in the eviction buffer).
    nb = c1 if load[c1] <= load[c2] else c2
    load[nb] += 1
    item_bin[key] = nb
    if nb >= k:
        pend[nb] += 1
        item_epoch[key] = epoch[nb]
    return nb


@njit(cache=True, inline="always")
def _enter_pool(key, s, vacated, c1, c2, k, state, load, pend, epoch, item_bin, item_epoch,
                pool_key, item_slot):
    # Algorithm §13: the key takes pool slot s; its holder takes the key's old slot (a swap)
    # or is re-placed by two-choice.
    holder = pool_key[s]
    pool_key[s] = key
    item_slot[key] = s
    if holder < 0:
        return
    if vacated >= 0:
        pool_key[vacated] = holder
        item_slot[holder] = vacated
    else:
        item_slot[holder] = -1
        _replace(holder, c1, c2, k, load, pend, epoch, item_bin, item_epoch)
        state[0] -= 1


@njit(cache=True, nogil=True)
def _access_kernel(words, pos, first, ops, keys, m, mask, k, slots, capacity, state, load,
                   pend, epoch, item_bin, item_epoch, pool_size, pool_mask, pool_key,
                   item_slot, pages, statuses):
    """Run accesses ``first..``; returns (next access, word position).

    ``state`` = [free frames, items present]; ``pool_size`` 0 for two-choice placement."""
    for t in range(first, ops.shape[0]):
        if pos + _WORD_MARGIN > words.shape[0]:
            return t, pos
        start = pos
        r, y, c1, c2, s, pos = _access_draws(words, pos, m, mask, pool_size, pool_mask)
        if r < 0 or y < 0 or c1 < 0 or c2 < 0:
            return t, start
        op = ops[t]
        key = keys[t]
        x = item_bin[key]
        in_bin = x >= 0
        slot = item_slot[key] if pool_size > 0 else -1
        found = in_bin or slot >= 0
        pending = in_bin and _is_pending(key, x, k, item_epoch, epoch)
        in_frame = in_bin and (x < k or pending)
        if not in_bin:
            x = r                 # a miss, or a pooled key: a random bin
        replacing = op == _PUT or (op == _GET and found)
        full = op == _PUT and not found and state[1] >= capacity
        # Whether an item goes to a bin by two-choice: the key itself, or with the pool the
        # holder of slot s (none if s is empty or the key swaps within the pool).
        places = replacing and not full and (
            pool_size == 0 or (slot < 0 and pool_key[s] >= 0))
        # The model's decision, from trusted state only: a crossed bound changes nothing.
        bound = False
        if places:
            l1 = load[c1] - (1 if in_bin and c1 == x else 0)
            l2 = load[c2] - (1 if in_bin and c2 == x else 0)
            freed = (1 if in_frame else 0) - (1 if pending else 0)
            if x >= k:
                freed += pend[x]
            if y >= k and y != x:
                freed += pend[y]
            bound = min(l1, l2) >= slots or state[0] + freed < 1
        if in_bin and not in_frame and y >= k and not bound and state[0] == 0 and pend[x] == 0:
            # An item taken out of page x would have no frame to wait in if y's touch failed.
            bound = True
        take = found and not bound and (replacing or op == _DELETE)
        if take and pending:
            pend[x] -= 1
            item_epoch[key] = -1
        # Step 3: touches flush the bin's pending items into its page, freeing frames.
        n = 0
        for b in (x, y):
            if b >= k:
                pages[t, n] = b - k
                n += 1
                state[0] += pend[b]
                pend[b] = 0
                epoch[b] += 1
        if take:
            if slot >= 0:
                pool_key[slot] = -1
                item_slot[key] = -1
            else:
                if in_frame:
                    state[0] += 1
                load[x] -= 1
                item_bin[key] = -1
            state[1] -= 1
        if full:
            statuses[t] = _FULL
        elif bound:
            statuses[t] = _BOUND
        else:
            statuses[t] = _FOUND if found else _ABSENT
            if replacing:
                state[1] += 1
                if pool_size == 0:
                    _replace(key, c1, c2, k, load, pend, epoch, item_bin, item_epoch)
                    state[0] -= 1
                else:
                    _enter_pool(key, s, slot, c1, c2, k, state, load, pend, epoch, item_bin,
                                item_epoch, pool_key, item_slot)
    return ops.shape[0], pos


@dataclass
class EngineRun:
    """What a run of the engine produced."""

    pages: np.ndarray      #: (T, 2) int32, the host pages each access touched, -1 for none
    statuses: np.ndarray   #: (T,) int8, :class:`~bolt.protocol.Status` codes

    @property
    def counts(self) -> np.ndarray:
        """Pages touched per access (0, 1 or 2)."""
        return (self.pages >= 0).sum(axis=1).astype(np.int8)


class TraceEngine:
    """The reference design's trace, from key ids, without crypto.

    Parameters
    ----------
    params : Params
        The public parameters.
    master_key, salt : bytes
        As for the model: the DRBG key is the model's (algorithm §5).
    setup_keys : array of int
        Ids of the keys Setup loads, in input order (distinct).
    universe : int
        Key ids run over ``0 .. universe - 1``.
    """

    def __init__(self, params: Params, *, master_key: bytes, salt: bytes, setup_keys,
                 universe: int):
        self.params = p = params
        self._drbg = Drbg(derive_subkeys(master_key, salt).drbg)
        self._mask = uniform_mask(p.bins)
        self._load = np.zeros(p.bins, np.int64)
        self._pend = np.zeros(p.bins, np.int64)
        self._epoch = np.zeros(p.bins, np.int64)
        self._item_bin = np.full(universe, -1, np.int64)
        self._item_epoch = np.full(universe, -1, np.int64)
        # The pool (algorithm §13): each slot's key id, each key id's slot (-1: none).
        self._pool_mask = uniform_mask(max(1, p.pool_size))
        self._pool_key = np.full(max(1, p.pool_size), -1, np.int64)
        self._item_slot = np.full(universe if p.pooled else 1, -1, np.int64)
        all_keys = np.asarray(setup_keys, np.int64)
        if len(all_keys) > p.capacity:
            raise ValueError(f"{len(all_keys)} Setup items exceed the capacity {p.capacity}")
        if len(np.unique(all_keys)) != len(all_keys):
            raise ValueError("Setup key ids must be distinct")
        # Setup fills pool slots 0, 1, ... with the first P items; the rest go to bins.
        pooled, keys = all_keys[:p.pool_size], all_keys[p.pool_size:]
        self._pool_key[:len(pooled)] = pooled
        self._item_slot[pooled] = np.arange(len(pooled))
        done, crossed = 0, False
        while done < len(keys) and not crossed:
            words = self._words(2 * (len(keys) - done) + _WORD_MARGIN)
            done, used, crossed = _setup_kernel(words, 0, done, keys, p.bins, self._mask,
                                              p.slots, self._load, self._item_bin,
                                              self._item_epoch)
            self._drbg.advance(used)
        if crossed:
            raise BoundExceededError("bin load", "Setup found both bins of an item full")
        hbm_items = int(self._load[:p.hbm_bins].sum())
        if hbm_items > p.frames:
            raise BoundExceededError("value frames", "Setup ran out of value frames")
        self._state = np.array([p.frames - hbm_items, len(all_keys)], np.int64)

    def _words(self, count: int) -> np.ndarray:
        """The next ``count`` DRBG words (not consumed: the kernels report what they used)."""
        return self._drbg.stream(self._drbg.words_drawn, count).astype(np.int64)

    def run(self, ops, keys) -> EngineRun:
        """Run accesses ``(ops[t], keys[t])`` (:class:`~bolt.protocol.Op` codes, key ids)."""
        p = self.params
        ops = np.asarray(ops, np.int64)
        keys = np.asarray(keys, np.int64)
        count = len(ops)
        pages = np.full((count, 2), NO_PAGE, np.int32)
        statuses = np.zeros(count, np.int8)
        done = 0
        while done < count:
            words = self._words(min(_CHUNK_WORDS, 8 * (count - done) + _WORD_MARGIN))
            done, used = _access_kernel(words, 0, done, ops, keys, p.bins, self._mask,
                                        p.hbm_bins, p.slots, p.capacity, self._state,
                                        self._load, self._pend, self._epoch, self._item_bin,
                                        self._item_epoch, p.pool_size, self._pool_mask,
                                        self._pool_key, self._item_slot, pages, statuses)
            self._drbg.advance(used)
        return EngineRun(pages, statuses)
