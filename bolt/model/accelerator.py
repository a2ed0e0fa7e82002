"""The reference model of the BOLT accelerator: Setup (algorithm §4) and Access (section 3).

Everything else (the RTL cosimulation, the audit, the benchmarks) is checked against this model.
It answers with the same :class:`~bolt.protocol.Response` codes as the RTL; :class:`bolt.Map`
turns them into Python results and exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import compress, islice

import numpy as np

from ..crypto import Drbg, derive_subkeys, master_key_or_new, new_salt
from ..errors import (BOUND_BIN_LOAD, BOUND_PAGE_COUNTER, BOUND_VALUE_FRAMES,
                      BoundExceededError, CapacityError, IntegrityError)
from ..params import Params
from ..protocol import BARE_RESPONSES, HBM, HOST, PENDING, POOL, Op, Response, Status
from ..trace import Trace
from .pages import COUNTER_LIMIT, EncodedItems, HostItems, PlainPages, SealedPages
from .placement import OUT_OF_SAMPLES, place

__all__ = ["ReferenceAccelerator", "MODEL_VERSION"]

#: Below this a page's counter has room for an access's two writes of it (the quick check).
_TWO_WRITES_LEFT = COUNTER_LIMIT - 2
# Enum members as module constants: an enum's attribute lookup costs more than the comparison.
_GET, _PUT, _DELETE = Op.GET, Op.PUT, Op.DELETE
_FOUND, _FULL, _BOUND, _INTEGRITY = Status.FOUND, Status.FULL, Status.BOUND, Status.INTEGRITY
_new_response = tuple.__new__   # skips the namedtuple's Python-level __new__ (every access)
_ABSENT_RESPONSE = BARE_RESPONSES[Status.ABSENT]

#: What the reference backend's attestation measures besides the parameters: change it with any
#: change of the model's behaviour (traces, host bytes or answers).
MODEL_VERSION = "bolt-omap reference model 1"


class _State:
    """The trusted state of one Setup: index, frames, eviction buffer, loads, pages."""

    def __init__(self, params: Params, pages):
        self.index: dict[bytes, tuple[int, int, int]] = {}
        self.loads = [0] * params.bins
        self.frames: list[bytes | None] = [None] * params.frames
        self.free_frames = list(range(params.frames - 1, -1, -1))  # frame 0 is taken first
        self.pending: list[list[tuple[bytes, int]]] = [[] for _ in range(params.host_bins)]
        # The trusted pool of algorithm §13: slot -> (key, value) or None (empty without one).
        self.pool: list[tuple[bytes, bytes] | None] = [None] * params.pool_size
        self.pages = pages


class ReferenceAccelerator:
    """The BOLT accelerator, in Python.

    Parameters
    ----------
    params : Params
        The public parameters.
    master_key : bytes, optional
        16-byte AES-128 master key; drawn from the OS if omitted.
    salt : bytes, optional
        15-byte salt of the first Setup; drawn from the OS if omitted. Taken unchecked, as the
        hardware's Setup command takes it (the cosimulation sets the model and the RTL up with
        one salt): a salt reused under one master key reuses GCM nonces. ``bolt.Map``, the
        user's API, takes one only as ``unsafe_test_salt=`` and refuses a pair seen before.
    items : iterable of (bytes, bytes)
        What the first Setup loads (validated key and value bytes).
    crypto : bool
        False selects the trace-only mode of algorithm §9: the same DRBG, placement and
        trace, with page contents kept in the clear in Python instead of sealed host pages.
    trace : Trace, optional
        Where to record the host trace (a new one if omitted).

    The constructor runs the first Setup, so a new accelerator already owns its B host pages.
    """

    def __init__(self, params: Params, *, master_key: bytes | None = None,
                 salt: bytes | None = None, items: Iterable[tuple[bytes, bytes]] = (),
                 crypto: bool = True, trace: Trace | None = None):
        master_key = master_key_or_new(master_key)
        self.params = params
        self.trace = trace if trace is not None else Trace()
        self._master_key = master_key
        self._pages_class = SealedPages if crypto else PlainPages
        # Whether every host bin drawn is touched (the audit's planted variants override
        # _touches): then an access does not ask per bin.
        self._touches_all = type(self)._touches is ReferenceAccelerator._touches
        self.setup(items, salt=salt)

    # -- the public state the tests and the adversary may look at -------------------------------

    @property
    def host_memory(self):
        """The untrusted host byte store (None in trace-only mode)."""
        return self._state.pages.host

    def __len__(self) -> int:
        return len(self._state.index)

    @property
    def drbg_words(self) -> int:
        """DRBG words drawn since the last Setup began (public: the stream's position depends
        on the stream alone)."""
        return self._drbg.words_drawn

    def keys(self) -> Iterator[bytes]:
        """Keys held, read from the trusted index (no host access)."""
        return iter(list(self._state.index))

    def locate(self, key: bytes) -> tuple[int, int | None, int] | None:
        """Where the trusted index places ``key``: (HBM|PENDING, bin, frame), (HOST, bin, slot),
        (POOL, None, pool slot) or None. For tests and debugging; the host cannot see this."""
        return self._state.index.get(key)

    def occupancy(self) -> dict[str, int]:
        """How full each bounded structure is now (trusted state; for benchmarks and tests)."""
        state, k = self._state, self.params.hbm_bins
        occupancy = {
            "items": len(state.index),
            "max bin load": max(state.loads),
            "items in HBM bins": sum(state.loads[:k]),
            "pending items": sum(len(queue) for queue in state.pending),
            "frames in use": self.params.frames - len(state.free_frames),
        }
        if self.params.pooled:
            occupancy["pool items"] = self.params.pool_size - state.pool.count(None)
        return occupancy

    # -- Setup (algorithm §4) ------------------------------------------------------------------

    def setup(self, items: Iterable[tuple[bytes, bytes]], *, salt: bytes | None = None,
              master_key: bytes | None = None) -> None:
        """Bulk-load ``items`` (validated (key, value) byte pairs), replacing the whole map;
        ``master_key`` replaces the master key (the channel's Setup sends one every time).

        The last value of a repeated key wins. On an error nothing changes. Items given as
        :class:`~bolt.model.pages.EncodedItems` fill the host slots with their encodings.
        """
        p = self.params
        if master_key is not None:
            master_key = master_key_or_new(master_key)
        if isinstance(items, EncodedItems):   # made for this Setup alone: not copied
            encoded = items.slots
        else:
            encoded, items = None, dict(items)
        if len(items) > p.capacity:
            raise CapacityError(f"{len(items)} items exceed the capacity of {p.capacity}")
        subkeys = derive_subkeys(master_key or self._master_key,
                                 salt if salt is not None else new_salt())
        drbg = Drbg(subkeys.drbg)
        state = _State(p, self._pages_class(p, subkeys.page, self.trace))
        # The pool placement puts the first P items in pool slots 0, 1, ... (algorithm §13);
        # Setup draws for, and places by two-choice, the rest.
        pooled = list(islice(items.items(), p.pool_size))
        state.pool[:len(pooled)] = pooled
        binned = dict(islice(items.items(), len(pooled), None)) if pooled else items
        k, slots, m, count = p.hbm_bins, p.slots, p.bins, len(binned)
        # Draw about two samples an item in one batch, place every item (compiled), then
        # consume exactly the words used, so the stream continues where one-at-a-time draws
        # would.
        wanted = 2 * count + 16
        while True:
            samples, ends = drbg.peek_uniform_array(m, wanted)
            loads = np.zeros(m, dtype=np.int64)
            chosen = np.empty(count, dtype=np.int64)
            ranks = np.empty(count, dtype=np.int64)
            placed, used = place(samples, loads, slots, count, chosen, ranks)
            if used != OUT_OF_SAMPLES:       # rare: c2 redraws ate the margin
                break
            wanted *= 2
        if placed < count:
            raise BoundExceededError("bin load", f"Setup found both bins of item {placed} "
                                                 f"full ({slots} items); nothing was loaded")
        if used:
            drbg.advance(ends[used - 1])
        state.loads[:] = loads.tolist()
        # HBM-bin items take frames 0, 1, ... in item order; host-bin items their page slot.
        # Column by column (numpy, compress): a million items, no Python frame each.
        keys, values = list(binned), list(binned.values())
        in_hbm = chosen < k
        hbm_count = int(np.count_nonzero(in_hbm))
        if hbm_count > p.frames:
            raise BoundExceededError("value frames", "Setup ran out of value frames for HBM "
                                                     "bins; nothing was loaded")
        where = np.where(in_hbm, np.cumsum(in_hbm) - 1, ranks)
        state.index = {key: (POOL, None, slot) for slot, (key, _) in enumerate(pooled)}
        state.index.update(zip(keys, zip(np.where(in_hbm, HBM, HOST).tolist(), chosen.tolist(),
                                         where.tolist())))
        state.frames[:hbm_count] = list(compress(values, in_hbm.tolist()))
        del state.free_frames[len(state.free_frames) - hbm_count:]
        in_host = ~in_hbm
        host_flags = in_host.tolist()
        host_items = HostItems(chosen[in_host] - k, ranks[in_host],
                               list(compress(keys, host_flags)), list(compress(values, host_flags)),
                               None if encoded is None else encoded[len(pooled):][in_host])
        self.trace.begin_op()
        state.pages.setup(host_items)
        self._state, self._drbg = state, drbg
        self._master_key = master_key or self._master_key

    # -- Access (algorithm §3) -----------------------------------------------------------------

    def access(self, op: Op, key: bytes, value: bytes | None = None) -> Response:
        """One Access. ``key`` and ``value`` are validated bytes; ``value`` only for PUT.

        Decide, then commit: every check that can refuse the access runs before anything
        changes, and an access that fails part way (a page that does not verify, an exception
        from the host store or anywhere else) leaves the map's content as it was (see
        :meth:`_restore`); only the DRBG stays advanced.
        """
        p, state = self.params, self._state
        k, m = p.hbm_bins, p.bins
        self.trace.begin_op()
        # Step 1: every access draws all four, in this order (and s = U(P) after them with
        # the pool, algorithm §13).
        r, y, c1, c2 = self._drbg.uniforms(m, 4)
        while c2 == c1:
            c2 = self._drbg.uniform(m)
        s = self._drbg.uniform(p.pool_size) if p.pooled else None
        # Step 2: look the key up and decide, from trusted state only. A pooled key is in no
        # bin: its x is r, as for a miss.
        location = state.index.get(key)
        found = location is not None
        kind, x, where = location if found else (None, r, None)
        if kind == POOL:
            x = r
        in_bin = found and kind != POOL
        # replace: the key is stored again (re-placed by two-choice, or put in the pool).
        replace = op == _PUT or (op == _GET and found)
        full = op == _PUT and not found and len(state.index) >= p.capacity
        # places: an item goes to a bin by two-choice: the key itself, or with the pool the
        # holder it displaces from slot s (none when s is empty or the key swaps within the
        # pool).
        places = replace and not full and (
            not p.pooled or (kind != POOL and state.pool[s] is not None))
        bound = self._crossed_bound(in_bin, kind, x, y, c1, c2) if places else None
        if found and kind == HOST and y >= k and bound is None \
                and not state.free_frames and not state.pending[x - k]:
            # Taken out of page x, the item would need a frame to wait in if the touch of y
            # then failed, and none would be free: it stays in its page.
            bound = BOUND_VALUE_FRAMES
        # The key's item is taken out only if it will be stored again or is deleted; otherwise
        # (a re-placement that would cross a bound) it stays where it is, and nothing is lost.
        take = found and bound is None and (replace or op == _DELETE)
        counters = state.pages.counters
        if x >= k and counters[x - k] > _TWO_WRITES_LEFT or \
                y >= k and counters[y - k] > _TWO_WRITES_LEFT:
            self._check_counters(x, y)
        pending_position = None
        taken: list[bytes | None] = []     # the value taken out of page x, once x is written
        try:
            if take and kind == PENDING:
                pending_position = state.pending[x - k].index((key, where))
                del state.pending[x - k][pending_position]
            # Step 3, in the order of algorithm §12: both page reads, then both writes.
            touched = []
            touches_all = self._touches_all
            if x >= k and (touches_all or self._touches(x)):
                touched.append(x)
            if y >= k and (touches_all or self._touches(y)):
                touched.append(y)
            if touched:
                self._touch_all(touched, x, (where, key) if take and kind == HOST else None,
                                taken)
        except BaseException as error:
            self._restore(key, kind, x, where, pending_position, taken[0] if taken else None)
            if isinstance(error, IntegrityError):
                return Response(_INTEGRITY, page=error.page)
            raise
        # Step 4: the key's value, from its frame or from its slot.
        old_value = None
        if take:
            if kind == HOST:
                old_value = taken[0]
            elif kind == POOL:
                _, old_value = state.pool[where]
                state.pool[where] = None
            else:
                old_value = state.frames[where]
                state.frames[where] = None
                state.free_frames.append(where)
            if in_bin:
                state.loads[x] -= 1
            del state.index[key]
        elif found:
            old_value = self._peek(kind, where)
        # Steps 5 and 6.
        if full:
            return Response(_FULL)
        if bound is not None:
            return Response(_BOUND, old_value, bound=bound)
        if replace:
            new_value = value if op == _PUT else old_value
            if p.pooled:
                self._pool(key, new_value, s, c1, c2, where if kind == POOL else None)
            else:
                self._place(key, new_value, self._choose(c1, c2))
        if not found:
            return _ABSENT_RESPONSE
        return _new_response(Response, (_FOUND, old_value, None, None))

    # -- the pieces of Access ----------------------------------------------------------------------

    def _crossed_bound(self, found, kind, x, y, c1, c2) -> str | None:
        """The bound the re-placement of step 6 would cross, or None if it finds room;
        computed before the touches from what they will free, so that a crossing never
        strands a taken item."""
        state, k, slots = self._state, self.params.hbm_bins, self.params.slots
        loads = state.loads
        if loads[c1] - (found and c1 == x) >= slots and loads[c2] - (found and c2 == x) >= slots:
            return BOUND_BIN_LOAD
        if state.free_frames:   # a frame is free already (what the touches free is >= 0)
            return None
        # An item pending in x is counted among x's pending and as its own frame: subtract it.
        freed = (found and kind != HOST) - (found and kind == PENDING)
        if x >= k:
            freed += len(state.pending[x - k])
        if y >= k and y != x:
            freed += len(state.pending[y - k])
        return None if len(state.free_frames) + freed >= 1 else BOUND_VALUE_FRAMES

    def _check_counters(self, x: int, y: int) -> None:
        """Refuse, before anything changes, an access whose page writes would need a write
        counter beyond :data:`~bolt.model.pages.COUNTER_LIMIT` (x == y writes it twice)."""
        k, counters = self.params.hbm_bins, self._state.pages.counters
        pages = [b - k for b in (x, y) if b >= k]
        for page in pages:
            if counters[page] + pages.count(page) > COUNTER_LIMIT:
                raise BoundExceededError(
                    BOUND_PAGE_COUNTER, f"host page {page}'s write counter is at "
                    f"{counters[page]}; this access's writes would pass its 64-bit limit "
                    "(re-load the map: a Setup starts every counter afresh under a new salt)")

    def _touches(self, bin_: int) -> bool:
        """Whether this access touches host bin ``bin_`` (always; the audit's planted
        variants override it)."""
        return True

    def _touch_all(self, touched: list[int], x: int, take, taken: list) -> None:
        """Touch the host bins ``touched`` (x's first) in the order of algorithm §12: read
        both pages, verify both, take the key's item out of page x (``take`` = (slot, key), or
        None) and flush each bin's pending items into its page (algorithm §3, step 3) on chip,
        then write both pages back. The value taken out of x is appended to ``taken`` once
        x's page is written.

        Nothing changes before the first write (a page that does not verify changes nothing);
        each page write is done together with its flush's bookkeeping. For x == y the second
        touch works on the first one's result, forwarded on chip (its own read returned the
        bytes from before the first write), so the page is written twice, under two fresh
        counters.
        """
        # Written out for at most two pages, without loops or comprehensions: in CPython 3.11
        # each of those costs more than the page calls themselves (this runs on every access).
        state, k = self._state, self.params.hbm_bins
        pages = state.pages
        first = touched[0] - k
        second = touched[1] - k if len(touched) == 2 else None
        raw = pages.read(first)
        if second is not None:
            second_raw = pages.read(second)
        content = pages.open(first, raw)
        if second is not None:
            # x == y: the second touch works on the first one's result, forwarded on chip.
            second_content = content if second == first else pages.open(second, second_raw, 1)
        # Both edits before either write: an edit that fails (IntegrityError) changes nothing.
        edit = self._edit_page
        value, slots, flushed = edit(first, content, take if touched[0] == x else None, True)
        if second is not None:
            second_edit = edit(second, second_content,
                               take if touched[1] == x and touched[0] != x else None,
                               second != first)
        self._write_page(first, content, slots, flushed)
        if touched[0] == x:
            taken.append(value)
        if second is not None:
            self._write_page(second, second_content, second_edit[1], second_edit[2])
            if touched[1] == x and not taken:
                taken.append(second_edit[0])

    def _edit_page(self, page: int, content, take, flush: bool) -> tuple:
        """Take the key's item out of ``page`` (``take`` = (slot, key), or None) and, if
        ``flush``, move its bin's pending items into its free slots, on chip; nothing in
        the trusted state changes yet. Returns the value taken (or None), the slots the
        pending items went to and how many of them did."""
        queue = self._state.pending[page] if flush else ()
        if not queue and take is None:      # nothing to take out or flush in
            return None, (), 0
        frames = self._state.frames
        value, slots = self._state.pages.edit(page, content, take,
                                              [(key, frames[frame]) for key, frame in queue])
        return value, slots, len(queue)

    def _write_page(self, page: int, content, slots, flushed: int) -> None:
        """Write ``page`` back and commit its flush: the flushed items' index entries, their
        frames freed (the write and its bookkeeping are done together or not at all)."""
        state = self._state
        state.pages.write(page, content)
        if flushed:
            queue, bin_ = state.pending[page], page + self.params.hbm_bins
            index, frames, free_frames = state.index, state.frames, state.free_frames
            for (key, frame), slot in zip(queue[:flushed], slots):
                index[key] = (HOST, bin_, slot)
                frames[frame] = None
                free_frames.append(frame)
            del queue[:flushed]

    def _choose(self, c1: int, c2: int) -> int:
        """Two-choice: the less loaded of c1 and c2, c1 on a tie."""
        loads = self._state.loads
        return c1 if loads[c1] <= loads[c2] else c2

    def _pool(self, key: bytes, value: bytes, s: int, c1: int, c2: int,
              vacated: int | None) -> None:
        """Put the key in pool slot ``s`` (algorithm §13). Its holder takes the key's old pool
        slot ``vacated`` (a swap), or else goes to a bin by two-choice."""
        state = self._state
        holder = state.pool[s]
        state.pool[s] = (key, value)
        state.index[key] = (POOL, None, s)
        if holder is None:
            return
        if vacated is not None:
            state.pool[vacated] = holder
            state.index[holder[0]] = (POOL, None, vacated)
        else:
            self._place(*holder, self._choose(c1, c2))

    def _place(self, key: bytes, value: bytes, nb: int) -> None:
        state, k = self._state, self.params.hbm_bins
        state.loads[nb] += 1
        frame = state.free_frames.pop()
        state.frames[frame] = value
        if nb < k:
            state.index[key] = (HBM, nb, frame)
        else:
            state.pending[nb - k].append((key, frame))
            state.index[key] = (PENDING, nb, frame)

    def _peek(self, kind, where) -> bytes | None:
        """The value of an item left in place (HBM or pending: its frame; pool: its slot;
        host: unknown)."""
        if kind == POOL:
            return self._state.pool[where][1]
        return None if kind == HOST else self._state.frames[where]

    def _restore(self, key, kind, x, where, pending_position, taken_value) -> None:
        """Put the key's item back after an access failed part way.

        Each touch is atomic: its page write and its flush of the eviction buffer are done
        together or not at all, so a touch that failed changed nothing. A touch of x that
        completed stays done (the host holds that page under its new counter); the key's item
        it took out then waits in x's eviction buffer, in a frame the access made sure of
        before it started (its touch of x freed x's pending frames, or one was free already).
        """
        state, k = self._state, self.params.hbm_bins
        if pending_position is not None:
            state.pending[x - k].insert(pending_position, (key, where))
        elif taken_value is not None:
            frame = state.free_frames.pop()
            state.frames[frame] = taken_value
            state.pending[x - k].append((key, frame))
            state.index[key] = (PENDING, x, frame)
