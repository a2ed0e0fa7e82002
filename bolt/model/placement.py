"""Setup's two-choice placement of every item (algorithm §4), compiled with numba when large.

A Setup of 2^20 items makes 2^20 sequential, load-dependent choices; in pure Python that loop
alone took about 2 s. The kernel consumes the DRBG's ``U(M)`` samples exactly as one-at-a-time
draws would (c1, c2, c2 redrawn while equal to c1), so the stream continues where the RTL's does.
"""

from __future__ import annotations

__all__ = ["place", "place_two_choice", "OUT_OF_SAMPLES", "COMPILE_FROM_ITEMS"]

#: ``place_two_choice`` ran out of samples: call again with more.
OUT_OF_SAMPLES = -1


#: Setups of at least this many items run the compiled kernel; smaller ones run the same
#: function as plain Python, which is quicker than loading numba (about 1 s per process).
COMPILE_FROM_ITEMS = 20_000

_compiled = None
#: numba comes with the ``tools`` extra; without it large Setups run the plain function
#: (about 2 s per 2^20 items), with the same result.
_numba_missing = False


def place(samples, loads, slots, count, chosen, ranks):
    """:func:`place_two_choice`, compiled with numba (cached on disk) for large Setups."""
    global _compiled, _numba_missing
    if count < COMPILE_FROM_ITEMS or _numba_missing:
        return place_two_choice(samples, loads, slots, count, chosen, ranks)
    if _compiled is None:
        try:
            import numba
        except ImportError:
            _numba_missing = True
            return place_two_choice(samples, loads, slots, count, chosen, ranks)
        _compiled = numba.njit(cache=True, nogil=True)(place_two_choice)
    return _compiled(samples, loads, slots, count, chosen, ranks)


def place_two_choice(samples, loads, slots, count, chosen, ranks):
    """Place ``count`` items; return ``(placed, used)``.

    ``loads`` (updated in place), ``chosen`` and ``ranks`` (each item's bin and slot rank) are
    int64 arrays. ``placed == count`` on success; ``placed < count`` when item ``placed`` found
    both its bins full (a crossed bound); ``used == OUT_OF_SAMPLES`` when ``samples`` ran out.
    ``used`` is the number of samples consumed.
    """
    n = samples.shape[0]
    j = 0
    for i in range(count):
        if j + 2 > n:
            return i, OUT_OF_SAMPLES
        c1 = samples[j]
        c2 = samples[j + 1]
        j += 2
        while c2 == c1:
            if j >= n:
                return i, OUT_OF_SAMPLES
            c2 = samples[j]
            j += 1
        nb = c1 if loads[c1] <= loads[c2] else c2
        rank = loads[nb]
        if rank >= slots:
            return i, j
        loads[nb] = rank + 1
        chosen[i] = nb
        ranks[i] = rank
    return count, j
