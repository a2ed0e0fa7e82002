"""Validation of the analytical bounds of algorithm §1 by simulating the access process.

:func:`simulate` runs Setup and then ``accesses`` accesses of algorithm §3 on *loads only*:
no keys' bytes, no values, no crypto, no host memory. Its state is, per bin, the load; per host
bin, the number of items pending in the eviction buffer; per item, its bin and whether it is
pending. It tracks, after every access, the four quantities that algorithm §1 bounds:

- the largest load of any bin,
- the number of items in HBM bins,
- the number of items waiting in the eviction buffer (pending for a host bin),
- the number of value frames in use (the sum of the two above),

and records their running maxima at a few hundred checkpoints for a plot over time.

The kernel is compiled with numba (a well-kept, widely used JIT compiler for numeric Python,
already a project dependency), which makes 10^8 accesses at N = 2^20 take minutes on one core.

Randomness: the simulator studies the *distribution* of the process, so it draws from numba's
``np.random`` (a Mersenne Twister seeded by ``seed``), not from the map's AES DRBG of algorithm
§6. The draws per access follow §3 (``r``, ``y``, ``c1``, ``c2`` redrawn until
``≠ c1``), Setup's follow docs/design.md (``c1``, ``c2`` per item), and "pending" is tracked
with a per-bin flush epoch so a flush is O(1).

Workload: by default every access is a GET of a uniformly random present key on a map filled to
capacity (the worst case: every access re-places an item). With ``put``/``delete`` fractions,
each access instead picks a key uniformly from a universe of N key ids and is a GET, PUT or
DELETE of it; a key that is absent is a miss (GET/DELETE) or an insert (PUT, refused when the
map is full, as a ``CapacityError`` would be).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..params import Params

__all__ = ["BoundsResult", "simulate", "QUANTITIES"]

#: The four quantities of algorithm §1, in the order of the result arrays.
QUANTITIES = ("bin load", "items in HBM bins", "eviction buffer", "value frames")

_kernel = None


def _get_kernel():
    """Compile (once per process; numba caches to disk) and return the simulation kernel."""
    global _kernel
    if _kernel is not None:
        return _kernel
    from numba import njit

    @njit(cache=True, nogil=True)
    def kernel(n_bins, n_hbm, slots, n_keys, n_setup, accesses, p_put, p_delete,
               seed, checkpoints, do_check, pool_size):
        np.random.seed(seed)
        load = np.zeros(n_bins, np.int32)
        pend = np.zeros(n_bins, np.int32)        # pending items per bin (HBM bins stay 0)
        epoch = np.zeros(n_bins, np.int32)       # flushes of each bin so far
        item_bin = np.full(n_keys, -1, np.int32)  # -1: absent
        item_epoch = np.zeros(n_keys, np.int32)   # epoch of item_bin at its placement
        # The trusted pool (algorithm §13; pool_size 0: two-choice): each slot's key, each
        # key's slot (-1: none).
        pool_key = np.full(max(1, pool_size), -1, np.int32)
        item_slot = np.full(n_keys if pool_size > 0 else 1, -1, np.int32)
        pool_items = 0
        hbm_items = 0
        pending = 0
        present = 0
        refused_bin = 0      # re-placements refused because the chosen bin was full (slots)
        refused_full = 0     # PUTs of a new key into a full map
        touches = np.zeros(3, np.int64)
        n_ops = np.zeros(3, np.int64)  # GET, PUT, DELETE
        hits = 0

        # -- Setup: the first P items in pool slots 0, 1, ... (with the pool), the rest by
        # two-choice placement, host bins filled directly (nothing pending) -----------------
        pool_items = min(pool_size, n_setup)
        for i in range(pool_items):
            pool_key[i] = i
            item_slot[i] = i
        present = pool_items
        for i in range(pool_items, n_setup):
            c1 = np.random.randint(0, n_bins)
            c2 = np.random.randint(0, n_bins)
            while c2 == c1:
                c2 = np.random.randint(0, n_bins)
            nb = c1 if load[c1] <= load[c2] else c2
            if load[nb] >= slots:
                refused_bin += 1
                continue
            load[nb] += 1
            item_bin[i] = nb
            item_epoch[i] = -1  # stored, never pending
            if nb < n_hbm:
                hbm_items += 1
            present += 1

        max_load = 0
        for b in range(n_bins):
            if load[b] > max_load:
                max_load = load[b]
        max_hbm = hbm_items
        max_pending = pending
        max_frames = hbm_items + pending
        max_pool = pool_items
        n_cp = checkpoints.shape[0]
        cp_max = np.zeros((n_cp, 4), np.int64)
        cp_cur = np.zeros((n_cp, 3), np.int64)
        cp = 0

        p_full_get = p_put == 0.0 and p_delete == 0.0
        for t in range(accesses):
            # 1. draws of algorithm §3, all of them, every access
            r = np.random.randint(0, n_bins)
            y = np.random.randint(0, n_bins)
            c1 = np.random.randint(0, n_bins)
            c2 = np.random.randint(0, n_bins)
            while c2 == c1:
                c2 = np.random.randint(0, n_bins)
            s = np.random.randint(0, pool_size) if pool_size > 0 else -1
            # the workload: which key, which op
            if p_full_get:
                op = 0
                if present == n_keys:
                    key = np.random.randint(0, n_keys)
                else:
                    key = np.random.randint(0, n_keys)
                    while item_bin[key] < 0 and (pool_size == 0 or item_slot[key] < 0):
                        key = np.random.randint(0, n_keys)
            else:
                u = np.random.random()
                op = 2 if u < p_delete else (1 if u < p_delete + p_put else 0)
                key = np.random.randint(0, n_keys)
            n_ops[op] += 1
            # 2. look up and decide. store: the key is stored again (PUT, GET hit); mover:
            # the item re-placed by two-choice (the key itself, or with the pool the holder
            # of slot s, none if s is empty or the key is pooled: a swap)
            x = item_bin[key]
            in_bin = x >= 0
            slot = item_slot[key] if pool_size > 0 else -1
            hit = in_bin or slot >= 0
            if hit:
                hits += 1
            store = op == 1 or (op == 0 and hit)
            if store and not hit and present >= n_keys:
                refused_full += 1
                store = False
            mover = -1
            nb = -1
            if store:
                if pool_size == 0:
                    mover = key
                elif slot < 0:
                    mover = pool_key[s]
            if mover >= 0:
                l1 = load[c1] - (1 if in_bin and c1 == x else 0)
                l2 = load[c2] - (1 if in_bin and c2 == x else 0)
                nb = c1 if l1 <= l2 else c2
                if min(l1, l2) >= slots:
                    refused_bin += 1
                    if pool_size == 0:
                        nb = x if hit else -1   # design.md: back to x (room was just made)
                    else:
                        store = False           # a crossed bound changes nothing
                        mover = -1
                        nb = -1
            take = in_bin and (store or op == 2 or pool_size == 0)
            if take and x >= n_hbm and item_epoch[key] == epoch[x]:
                pend[x] -= 1
                pending -= 1
            if not in_bin:
                x = r
            # 3. touches of x then y: each flushes the bin's pending items to its page
            nt = 0
            if x >= n_hbm:
                nt += 1
                pending -= pend[x]
                pend[x] = 0
                epoch[x] += 1
            if y >= n_hbm:
                nt += 1
                pending -= pend[y]
                pend[y] = 0
                epoch[y] += 1
            touches[nt] += 1
            # 4. the item leaves bin x (or its pool slot)
            if take:
                load[x] -= 1
                if x < n_hbm:
                    hbm_items -= 1
                item_bin[key] = -1
                present -= 1
            if slot >= 0 and (store or op == 2):
                pool_key[slot] = -1
                item_slot[key] = -1
                pool_items -= 1
                present -= 1
            # 6. with the pool: the key into slot s, its holder to the key's old slot (a
            # swap) or to bin nb; without: the key itself to bin nb
            if store and pool_size > 0:
                holder = pool_key[s]
                pool_key[s] = key
                item_slot[key] = s
                present += 1
                if holder < 0:
                    pool_items += 1
                elif slot >= 0:
                    pool_key[slot] = holder
                    item_slot[holder] = slot
                    pool_items += 1
                else:
                    item_slot[holder] = -1
            if nb >= 0:
                load[nb] += 1
                item_bin[mover] = nb
                if pool_size == 0:
                    present += 1
                if nb < n_hbm:
                    hbm_items += 1
                else:
                    pend[nb] += 1
                    pending += 1
                    item_epoch[mover] = epoch[nb]
                if load[nb] > max_load:
                    max_load = load[nb]
            if pool_items > max_pool:
                max_pool = pool_items
            if hbm_items > max_hbm:
                max_hbm = hbm_items
            if pending > max_pending:
                max_pending = pending
            if hbm_items + pending > max_frames:
                max_frames = hbm_items + pending
            while cp < n_cp and checkpoints[cp] == t + 1:
                cp_max[cp, 0] = max_load
                cp_max[cp, 1] = max_hbm
                cp_max[cp, 2] = max_pending
                cp_max[cp, 3] = max_frames
                cp_cur[cp, 0] = hbm_items
                cp_cur[cp, 1] = pending
                cp_cur[cp, 2] = present
                cp += 1
            if do_check:
                # state invariants, O(N): for tests on small maps only
                total = 0
                h = 0
                for b in range(n_bins):
                    total += load[b]
                    if b < n_hbm:
                        h += load[b]
                        if pend[b] != 0:
                            raise AssertionError("HBM bin with pending items")
                    elif pend[b] < 0 or pend[b] > load[b]:
                        raise AssertionError("pending count out of range")
                    if load[b] > slots:
                        raise AssertionError("bin over slots")
                if total != present - pool_items or h != hbm_items:
                    raise AssertionError("loads do not sum to the items present")
                q = 0
                for j in range(pool_size):
                    if pool_key[j] >= 0:
                        q += 1
                        if item_slot[pool_key[j]] != j or item_bin[pool_key[j]] >= 0:
                            raise AssertionError("pool slot and item disagree")
                if q != pool_items:
                    raise AssertionError("pool count inconsistent")
                p = 0
                cnt = np.zeros(n_bins, np.int32)
                for k in range(n_keys):
                    b = item_bin[k]
                    if b >= n_hbm and item_epoch[k] == epoch[b]:
                        p += 1
                        cnt[b] += 1
                if p != pending:
                    raise AssertionError("pending total inconsistent with items")
                for b in range(n_bins):
                    if cnt[b] != pend[b]:
                        raise AssertionError("per-bin pending inconsistent with items")
        final_load = load.copy()
        stats = np.array([max_load, max_hbm, max_pending, max_frames, refused_bin,
                          refused_full, hits, present, max_pool, pool_items], np.int64)
        return stats, touches, n_ops, cp_max, cp_cur, final_load

    _kernel = kernel
    return kernel


@dataclass
class BoundsResult:
    """What :func:`simulate` measured, next to the analytical bounds of :class:`Params`."""

    params: Params
    accesses: int
    seed: int
    seconds: float
    maxima: dict[str, int]
    bounds: dict[str, float]
    touches: np.ndarray            #: accesses with 0, 1, 2 host-bin touches
    ops: dict[str, int]
    hits: int
    refused_bin: int               #: re-placements into a full bin (load == slots)
    refused_full: int              #: PUTs of a new key into a full map
    present: int                   #: items present at the end
    checkpoints: np.ndarray        #: access counts at which the series below were recorded
    running_max: np.ndarray        #: (checkpoints, 4) running maxima of QUANTITIES
    current: np.ndarray            #: (checkpoints, 3) items in HBM bins, pending, present
    final_load: np.ndarray = field(repr=False)
    pool_max: int = 0              #: most items the pool held at once (algorithm §13)
    pool_final: int = 0            #: items in the pool at the end

    @property
    def crossed(self) -> list[str]:
        """Names of the quantities whose observed maximum exceeds its analytical bound."""
        return [q for q in QUANTITIES if self.maxima[q] > self.bounds[q]]

    def rows(self):
        """Table rows (quantity, max observed, bound, max / bound, status); with the pool, its
        occupancy against its P slots last (full by design once N >= P items are present)."""
        rows = []
        for q in QUANTITIES:
            m, b = self.maxima[q], self.bounds[q]
            rows.append((q, m, f"{b:.2f}", f"{m / b:.3f}" if b else "-",
                         "CROSSED" if m > b else "ok"))
        if self.params.pooled:
            size = self.params.pool_size
            rows.append(("pool occupancy", self.pool_max, f"{size} (P)",
                         f"{self.pool_max / size:.3f}", "ok" if self.pool_max <= size
                         else "CROSSED"))
        return rows

    def to_json(self) -> dict:
        p = self.params
        return {
            "capacity": p.capacity, "load": p.load, "hbm_fraction": p.hbm_fraction,
            "bins": p.bins, "hbm_bins": p.hbm_bins, "host_bins": p.host_bins,
            "slots": p.slots, "accesses": self.accesses, "seed": self.seed,
            "seconds": self.seconds, "maxima": self.maxima, "bounds": self.bounds,
            "crossed": self.crossed, "touches": self.touches.tolist(), "ops": self.ops,
            "hits": self.hits, "refused_bin": self.refused_bin,
            "refused_full": self.refused_full, "present": self.present,
            "placement": p.placement, "pool_size": p.pool_size, "pool_max": self.pool_max,
            "pool_final": self.pool_final,
        }


def _checkpoints(accesses: int, count: int) -> np.ndarray:
    if accesses <= 0:
        return np.zeros(0, np.int64)
    if count >= accesses:
        return np.arange(1, accesses + 1, dtype=np.int64)
    # Log-spaced (the plot's time axis is logarithmic), always ending at the last access.
    points = np.geomspace(1, accesses, num=min(count, accesses)).round().astype(np.int64)
    points[-1] = accesses
    return np.unique(points)


def simulate(params: Params, accesses: int, *, seed: int = 0, fill: float = 1.0,
             put: float = 0.0, delete: float = 0.0, checkpoints: int = 400,
             check_invariants: bool = False) -> BoundsResult:
    """Setup of ``round(fill·N)`` items, then ``accesses`` accesses; see the module docstring.

    ``check_invariants`` re-verifies the whole state after every access (O(N) each: tests only).
    """
    if not 0 <= fill <= 1:
        raise ValueError("fill must be in [0, 1]")
    if put < 0 or delete < 0 or put + delete > 1:
        raise ValueError("put and delete fractions must be >= 0 and sum to at most 1")
    n_setup = round(fill * params.capacity)
    if put == 0 and delete == 0 and n_setup == 0 and accesses > 0:
        raise ValueError("an all-GET-hit workload needs a non-empty map (fill > 0)")
    kernel = _get_kernel()
    points = _checkpoints(accesses, checkpoints)
    start = time.perf_counter()
    stats, touches, n_ops, cp_max, cp_cur, final_load = kernel(
        params.bins, params.hbm_bins, params.slots, params.capacity, n_setup, accesses,
        float(put), float(delete), seed, points, check_invariants, params.pool_size)
    seconds = time.perf_counter() - start
    maxima = dict(zip(QUANTITIES, (int(v) for v in stats[:4])))
    bounds = dict(zip(QUANTITIES, (params.bin_load_bound, params.hbm_items_bound,
                                   params.eviction_bound, params.frames_bound)))
    return BoundsResult(
        params=params, accesses=accesses, seed=seed, seconds=seconds, maxima=maxima,
        bounds=bounds, touches=touches, ops=dict(zip(("get", "put", "delete"),
                                                     (int(v) for v in n_ops))),
        hits=int(stats[6]), refused_bin=int(stats[4]), refused_full=int(stats[5]),
        present=int(stats[7]), checkpoints=points, running_max=cp_max, current=cp_cur,
        final_load=final_load, pool_max=int(stats[8]), pool_final=int(stats[9]))


def plot(results: list[BoundsResult], path) -> None:
    """One PNG: for each quantity, the running maximum over accesses against its bound."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    for ax, (qi, q) in zip(axes.flat, enumerate(QUANTITIES)):
        for n, res in enumerate(results):
            color = f"C{n % 10}"
            p = res.params
            label = (f"N=2^{math.log2(p.capacity):g} c={p.load} α={p.hbm_fraction}"
                     + (f" pool P={p.pool_size}" if p.pooled else ""))
            if len(res.checkpoints):
                ax.plot(res.checkpoints, res.running_max[:, qi], color=color, label=label)
            ax.axhline(res.bounds[q], color=color, linestyle="--", linewidth=0.8)
        ax.set_title(f"{q}: running max (solid) vs bound (dashed)")
        ax.set_xlabel("accesses")
        ax.set_xscale("log")
        if q != "bin load":
            ax.set_yscale("log")
    axes.flat[0].legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
